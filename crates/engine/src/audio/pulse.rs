//! Devices through a PulseAudio server (PulseAudio itself, or PipeWire's
//! pulse server): listing, and blocking record and playback streams on
//! libpulse's simple API, each driven by its own device thread.
//!
//! Why not cpal's PulseAudio host: it caps a record stream's buffer at one
//! period, so the server drops what the client has not read in time (3.7 s
//! delivered in 4 s on this machine; decision (p) in `docs/decisions.md`).
//! Here a record stream's buffer is the server's maximum and audio comes in
//! 20 ms fragments; a playback stream keeps [`PLAYBACK_TARGET_MS`] queued.
//!
//! Format: 48 kHz f32 native-endian, mono for capture, stereo for
//! playout (or mono); the server converts to and from the device's own format and
//! rate, so nothing here resamples.

use std::{cell::RefCell, rc::Rc};

use libpulse_binding as pulse;
use libpulse_simple_binding::Simple;
use pulse::{
    callbacks::ListResult,
    context::{Context, FlagSet, State},
    mainloop::standard::{IterateResult, Mainloop},
};

use super::{SAMPLE_RATE, select::DeviceInfo};

/// The application name PulseAudio shows (pavucontrol, `pactl`).
const CLIENT_NAME: &str = "Squawk";

/// Capture fragment: how often a record stream delivers, ms. One frame:
/// a frame is sent once its last sample is in, so smaller fragments would
/// only wake the thread more often.
pub const CAPTURE_FRAGMENT_MS: u32 = super::FRAME_MS;

/// Audio kept queued in a playback stream's server-side buffer, ms: two
/// 20 ms frames.
pub const PLAYBACK_TARGET_MS: u32 = 40;

/// Bytes of `ms` of f32 audio in `channels` channels at [`SAMPLE_RATE`].
fn bytes(ms: u32, channels: u32) -> u32 {
    SAMPLE_RATE / 1000 * ms * channels * 4
}

/// The server's devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    /// Sources (microphones, and the monitors of outputs), in the server's
    /// order.
    pub inputs: Vec<DeviceInfo>,
    /// Sinks.
    pub outputs: Vec<DeviceInfo>,
}

fn listed<T>(result: ListResult<T>, out: &mut Vec<DeviceInfo>, f: impl Fn(T) -> DeviceInfo) {
    if let ListResult::Item(item) = result {
        out.push(f(item));
    }
}

/// Lists the server's sources and sinks (one connection, two round trips:
/// a few ms). Never starts a server.
///
/// # Errors
/// Why the server could not be reached or asked, for people.
pub fn list() -> Result<Devices, String> {
    let mut mainloop = Mainloop::new().ok_or("cannot create a PulseAudio main loop")?;
    let mut context =
        Context::new(&mainloop, CLIENT_NAME).ok_or("cannot create a PulseAudio context")?;
    context
        .connect(None, FlagSet::NOAUTOSPAWN, None)
        .map_err(|e| format!("no PulseAudio server: {e}"))?;
    let iterate = |mainloop: &mut Mainloop| match mainloop.iterate(true) {
        IterateResult::Success(_) => Ok(()),
        IterateResult::Quit(_) => Err("the PulseAudio main loop quit".to_string()),
        IterateResult::Err(e) => Err(format!("PulseAudio: {e}")),
    };
    loop {
        iterate(&mut mainloop)?;
        match context.get_state() {
            State::Ready => break,
            State::Failed | State::Terminated => {
                return Err("no PulseAudio server (connection refused)".into());
            }
            _ => {}
        }
    }
    let devices = Rc::new(RefCell::new(Devices::default()));
    let d = devices.clone();
    let sources = context.introspect().get_source_info_list(move |r| {
        listed(r, &mut d.borrow_mut().inputs, |s| DeviceInfo {
            name: s.name.as_deref().unwrap_or_default().to_owned(),
            description: s.description.as_deref().unwrap_or_default().to_owned(),
        });
    });
    let d = devices.clone();
    let sinks = context.introspect().get_sink_info_list(move |r| {
        listed(r, &mut d.borrow_mut().outputs, |s| DeviceInfo {
            name: s.name.as_deref().unwrap_or_default().to_owned(),
            description: s.description.as_deref().unwrap_or_default().to_owned(),
        });
    });
    while sources.get_state() == pulse::operation::State::Running
        || sinks.get_state() == pulse::operation::State::Running
    {
        iterate(&mut mainloop)?;
    }
    context.disconnect();
    let devices = devices.borrow().clone();
    Ok(devices)
}

/// A blocking stream to or from one device.
pub struct Stream {
    simple: Simple,
}

fn spec(channels: u8) -> pulse::sample::Spec {
    pulse::sample::Spec {
        format: pulse::sample::Format::FLOAT32NE,
        channels,
        rate: SAMPLE_RATE,
    }
}

fn open_err(device: Option<&str>, e: pulse::error::PAErr) -> String {
    let what = e.to_string().unwrap_or_else(|| format!("error {}", e.0));
    match device {
        Some(d) => format!("cannot open {d}: {what}"),
        None => format!("cannot open the default device: {what}"),
    }
}

impl Stream {
    /// Opens a mono record stream on the source `device` (`None`: the
    /// default) that delivers [`CAPTURE_FRAGMENT_MS`] fragments.
    ///
    /// # Errors
    /// The server's reason, for people.
    pub fn record(device: Option<&str>) -> Result<Self, String> {
        let attr = pulse::def::BufferAttr {
            maxlength: u32::MAX,
            tlength: u32::MAX,
            prebuf: u32::MAX,
            minreq: u32::MAX,
            fragsize: bytes(CAPTURE_FRAGMENT_MS, 1),
        };
        Simple::new(
            None,
            CLIENT_NAME,
            pulse::stream::Direction::Record,
            device,
            "Microphone",
            &spec(1),
            None,
            Some(&attr),
        )
        .map(|simple| Self { simple })
        .map_err(|e| open_err(device, e))
    }

    /// Opens a playback stream (stereo, or mono) on the sink `device`
    /// (`None`: the default) keeping [`PLAYBACK_TARGET_MS`] queued.
    ///
    /// # Errors
    /// The server's reason, for people.
    pub fn playback(device: Option<&str>, stereo: bool) -> Result<Self, String> {
        let channels = if stereo { 2 } else { 1 };
        let attr = pulse::def::BufferAttr {
            maxlength: u32::MAX,
            tlength: bytes(PLAYBACK_TARGET_MS, channels),
            prebuf: u32::MAX,
            // Asked for one mixer block at a time, so a transmission
            // starts on the mixer's 5 ms grid, not at the next 20 ms.
            minreq: bytes(super::mixer::BLOCK_MS, channels),
            fragsize: u32::MAX,
        };
        Simple::new(
            None,
            CLIENT_NAME,
            pulse::stream::Direction::Playback,
            device,
            "Voice",
            &spec(channels as u8),
            None,
            Some(&attr),
        )
        .map(|simple| Self { simple })
        .map_err(|e| open_err(device, e))
    }

    /// Fills `samples` with captured audio (blocks until it has arrived).
    ///
    /// # Errors
    /// The stream failed: its device was removed, or the server went away.
    pub fn read(&self, samples: &mut [f32]) -> Result<(), String> {
        self.simple
            .read(bytemuck::cast_slice_mut(samples))
            .map_err(stream_err)
    }

    /// Queues `samples` (interleaved left, right in stereo; blocks while the buffer holds
    /// [`PLAYBACK_TARGET_MS`]).
    ///
    /// # Errors
    /// The stream failed: its device was removed, or the server went away.
    pub fn write(&self, samples: &[f32]) -> Result<(), String> {
        self.simple
            .write(bytemuck::cast_slice(samples))
            .map_err(stream_err)
    }
}

fn stream_err(e: pulse::error::PAErr) -> String {
    e.to_string().unwrap_or_else(|| format!("error {}", e.0))
}
