//! Devices through a PulseAudio server (PulseAudio itself, or PipeWire's
//! pulse server): listing, and blocking record and playback streams on
//! libpulse, each driven by its own device thread (its own connection and
//! main loop, iterated by that thread).
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
    let (mut mainloop, mut context) = connect_server()?;
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
        iterate(&mut mainloop, true)?;
    }
    context.disconnect();
    let devices = devices.borrow().clone();
    Ok(devices)
}

/// A blocking stream to or from one device, driven on the calling thread:
/// its own connection and a standard (not threaded) main loop that the
/// stream's [`read`](Self::read) and [`write`](Self::write) iterate. So a
/// device thread wakes once per fragment the server sends or asks for,
/// where libpulse's simple API wakes its own main-loop thread and then the
/// caller (twice as many wake-ups, measured in `docs/benchmarks.md`).
///
/// Fields drop in order: the stream before its connection, the connection
/// before its main loop.
pub struct Stream {
    stream: pulse::stream::Stream,
    context: Context,
    mainloop: Mainloop,
    /// Captured audio peeked from the server and not yet read (record).
    pending: Vec<f32>,
}

fn spec(channels: u8) -> pulse::sample::Spec {
    pulse::sample::Spec {
        format: pulse::sample::Format::FLOAT32NE,
        channels,
        rate: SAMPLE_RATE,
    }
}

fn open_err(device: Option<&str>, what: &str) -> String {
    match device {
        Some(d) => format!("cannot open {d}: {what}"),
        None => format!("cannot open the default device: {what}"),
    }
}

/// Why a stream or its connection stopped, for people.
fn pa_err(e: pulse::error::PAErr) -> String {
    e.to_string().unwrap_or_else(|| format!("error {}", e.0))
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
        Self::open(device, "Microphone", 1, |stream, flags| {
            stream.connect_record(device, Some(&attr), flags)
        })
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
        Self::open(device, "Voice", channels as u8, |stream, flags| {
            stream.connect_playback(device, Some(&attr), flags, None, None)
        })
    }

    /// Connects to the server (never starting one), creates the stream,
    /// connects it with `connect` and waits until it is ready.
    fn open(
        device: Option<&str>,
        name: &str,
        channels: u8,
        connect: impl FnOnce(
            &mut pulse::stream::Stream,
            pulse::stream::FlagSet,
        ) -> Result<(), pulse::error::PAErr>,
    ) -> Result<Self, String> {
        let fail = |what: &str| open_err(device, what);
        let (mainloop, mut context) = connect_server().map_err(|e| fail(&e))?;
        let mut stream = pulse::stream::Stream::new(&mut context, name, &spec(channels), None)
            .ok_or_else(|| fail(&pa_err(context.errno())))?;
        // As libpulse's simple API asks: fragsize and tlength are the
        // latency wanted end to end, the device's own buffer included.
        connect(&mut stream, pulse::stream::FlagSet::ADJUST_LATENCY)
            .map_err(|e| fail(&pa_err(e)))?;
        let mut this = Self {
            stream,
            context,
            mainloop,
            pending: Vec::new(),
        };
        loop {
            this.iterate(true).map_err(|e| fail(&e))?;
            if this.stream.get_state() == pulse::stream::State::Ready {
                return Ok(this);
            }
        }
    }

    /// Runs the main loop once (`block`: waiting for the server if nothing
    /// is pending); an error once the stream or its connection has failed.
    fn iterate(&mut self, block: bool) -> Result<(), String> {
        iterate(&mut self.mainloop, block)?;
        if !self.context.get_state().is_good() {
            return Err(pa_err(self.context.errno()));
        }
        match self.stream.get_state() {
            pulse::stream::State::Failed | pulse::stream::State::Terminated => {
                Err(pa_err(self.context.errno()))
            }
            _ => Ok(()),
        }
    }

    /// Fills `samples` with captured audio (blocks until it has arrived).
    ///
    /// # Errors
    /// The stream failed: its device was removed, or the server went away.
    pub fn read(&mut self, samples: &mut [f32]) -> Result<(), String> {
        while self.pending.len() < samples.len() {
            match self.stream.peek().map_err(pa_err)? {
                pulse::stream::PeekResult::Empty => self.iterate(true)?,
                pulse::stream::PeekResult::Hole(_) => self.stream.discard().map_err(pa_err)?,
                pulse::stream::PeekResult::Data(data) => {
                    self.pending.extend(
                        data.chunks_exact(4)
                            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    self.stream.discard().map_err(pa_err)?;
                }
            }
        }
        samples.copy_from_slice(&self.pending[..samples.len()]);
        self.pending.drain(..samples.len());
        Ok(())
    }

    /// Queues `samples` (interleaved left, right in stereo; blocks while the buffer holds
    /// [`PLAYBACK_TARGET_MS`]).
    ///
    /// # Errors
    /// The stream failed: its device was removed, or the server went away.
    pub fn write(&mut self, samples: &[f32]) -> Result<(), String> {
        let data: &[u8] = bytemuck::cast_slice(samples);
        // What the server said while nothing was written (a paused
        // stream's requests, an underflow) is taken in first.
        self.iterate(false)?;
        while self.stream.writable_size().unwrap_or(0) < data.len() {
            self.iterate(true)?;
        }
        self.stream
            .write(data, None, 0, pulse::stream::SeekMode::Relative)
            .map_err(pa_err)
    }
}

/// A connection to the server (never starting one) and its main loop,
/// once the connection is ready.
///
/// # Errors
/// Why the server could not be reached, for people.
fn connect_server() -> Result<(Mainloop, Context), String> {
    let mut mainloop = Mainloop::new().ok_or("cannot create a PulseAudio main loop")?;
    let mut context =
        Context::new(&mainloop, CLIENT_NAME).ok_or("cannot create a PulseAudio context")?;
    context
        .connect(None, FlagSet::NOAUTOSPAWN, None)
        .map_err(|e| format!("no PulseAudio server: {}", pa_err(e)))?;
    loop {
        iterate(&mut mainloop, true)?;
        match context.get_state() {
            State::Ready => return Ok((mainloop, context)),
            State::Failed | State::Terminated => {
                return Err("no PulseAudio server (connection refused)".into());
            }
            _ => {}
        }
    }
}

/// Runs `mainloop` once.
fn iterate(mainloop: &mut Mainloop, block: bool) -> Result<(), String> {
    match mainloop.iterate(block) {
        IterateResult::Success(_) => Ok(()),
        IterateResult::Quit(_) => Err("the PulseAudio main loop quit".to_string()),
        IterateResult::Err(e) => Err(format!("PulseAudio: {}", pa_err(e))),
    }
}
