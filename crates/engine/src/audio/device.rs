//! Real audio devices: through a PulseAudio server when one answers
//! ([`super::pulse`], with device choice and fallback by
//! [`super::select::Selector`]), else through cpal (the default devices, or
//! a name substring, without fallback).
//!
//! PulseAudio: each stream has its own thread blocking on it (20 ms
//! reads of 48 kHz mono for capture, 20 ms frames from the [`Mixer`] written
//! into a 40 ms queue for playout, so the device clock paces playout; while
//! the mixer has nothing to play the thread sleeps until it does); the
//! thread also follows the [`Selector`] (lists the devices every 2 s,
//! reopens on the default or the chosen device) and reports each
//! [`DeviceChange`].
//!
//! cpal: each device lives on its own thread (cpal streams are not `Send` on every
//! platform). The cpal callbacks only move samples between the device and a
//! pre-allocated lock-free ring buffer and wake their thread
//! (`Thread::unpark`): no locks, no allocation, no blocking. The threads
//! sleep until woken (at most 100 ms), so an idle app does not poll.
//! - capture thread: woken per 20 ms of samples; ring → downmixed mono at
//!   the device rate → rubato to 48 kHz → 20 ms [`CapturedFrame`]s to the
//!   engine;
//! - playout thread: woken when the output ring runs below about 40 ms;
//!   tops it up by pulling frames from the [`Mixer`] (so the device clock
//!   paces playout) → rubato to the device rate → ring → callback (mono
//!   copied to every channel; silence on underrun).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ringbuf::{
    HeapRb,
    traits::{Consumer, Observer, Producer, Split},
};
use tokio::sync::mpsc;

use super::{
    CapturedFrame, FRAME_SAMPLES, SAMPLE_RATE,
    mixer::{Layout, Mixer},
    pulse,
    resample::StreamResampler,
    select::{DeviceChange, Selector, Step},
};

/// Where a device thread reports what happened to its device.
pub type Notify = Box<dyn FnMut(DeviceChange) + Send>;

/// Why a device could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No device matched.
    #[error("no {kind} device{}", .name.as_ref().map(|n| format!(" matching {n:?}")).unwrap_or_default())]
    NotFound {
        /// "input" or "output".
        kind: &'static str,
        /// The requested name.
        name: Option<String>,
    },
    /// cpal failed.
    #[error("{0}")]
    Cpal(String),
    /// The device rate cannot be converted.
    #[error(transparent)]
    Resample(#[from] super::resample::ResampleError),
}

fn cpal_err(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Cpal(e.to_string())
}

fn pick(input: bool, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let kind = if input { "input" } else { "output" };
    let not_found = || DeviceError::NotFound {
        kind,
        name: name.map(str::to_owned),
    };
    match name {
        None => if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or_else(not_found),
        Some(wanted) => {
            let devices: Vec<cpal::Device> = if input {
                host.input_devices().map_err(cpal_err)?.collect()
            } else {
                host.output_devices().map_err(cpal_err)?.collect()
            };
            devices
                .into_iter()
                .find(|d| {
                    d.description()
                        .is_ok_and(|desc| desc.name().contains(wanted))
                })
                .ok_or_else(not_found)
        }
    }
}

/// Prefers 48 kHz f32 so that nothing needs resampling; else the default.
fn pick_config(
    device: &cpal::Device,
    input: bool,
) -> Result<cpal::SupportedStreamConfig, DeviceError> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device
            .supported_input_configs()
            .map_err(cpal_err)?
            .collect()
    } else {
        device
            .supported_output_configs()
            .map_err(cpal_err)?
            .collect()
    };
    let best = ranges
        .iter()
        .filter(|r| r.sample_format() == cpal::SampleFormat::F32)
        .find_map(|r| (*r).try_with_sample_rate(SAMPLE_RATE));
    match best {
        Some(c) => Ok(c),
        None if input => device.default_input_config().map_err(cpal_err),
        None => device.default_output_config().map_err(cpal_err),
    }
}

/// A running device thread; stops on drop.
pub struct DeviceHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    choose: Option<DeviceChooser>,
}

impl DeviceHandle {
    /// Switches the device while it runs; `None` on cpal, which cannot.
    pub fn chooser(&self) -> Option<DeviceChooser> {
        self.choose.clone()
    }
}

/// Tells a running device thread to use another device (`None`: the
/// default), as [`start_capture`] and [`start_playout`] choose one.
#[derive(Debug, Clone)]
pub struct DeviceChooser(std::sync::mpsc::Sender<Option<String>>);

impl DeviceChooser {
    /// Switches to `name` within one stream read or write (10 to 20 ms).
    pub fn choose(&self, name: Option<String>) {
        let _ = self.0.send(name);
    }
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Longest a device thread waits for its stream's callback before it looks
/// at its ring anyway (and at the stop flag): a stalled device costs a
/// wake-up every 100 ms, never a busy loop.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Samples kept queued for the output device at `rate` Hz: about two
/// frames (40 ms), low latency without underruns.
fn queued_target(rate: u32) -> usize {
    2 * rate as usize / 50
}

/// Wakes the thread that created it each time a frame's worth (20 ms) of
/// samples has arrived, from an audio callback. `Thread::unpark` does not
/// block: one atomic swap, and a futex wake only if the thread sleeps.
struct FrameWake {
    thread: std::thread::Thread,
    per_frame: usize,
    pending: usize,
}

impl FrameWake {
    /// For a device at `rate` Hz; the thread to wake is the current one.
    fn new(rate: u32) -> Self {
        Self {
            thread: std::thread::current(),
            per_frame: (rate as usize / 50).max(1),
            pending: 0,
        }
    }

    /// `n` samples (per channel) arrived; true if the thread was woken.
    fn arrived(&mut self, n: usize) -> bool {
        self.pending += n;
        let wake = self.pending >= self.per_frame;
        if wake {
            self.pending %= self.per_frame;
            self.thread.unpark();
        }
        wake
    }
}

/// Opens the capture device `name` (`None`: the default) and sends 20 ms
/// frames to `frames`; changes of device go to `notify`.
///
/// With a PulseAudio server, `name` is a source's name or description
/// ([`super::select::DeviceInfo::is`]); a missing or failing one falls back
/// to the default and comes back when it can ([`Selector`]). Without one,
/// cpal opens the first device whose name contains `name`.
///
/// # Errors
/// [`DeviceError`] if cpal cannot find or open the device; the error is
/// reported before this returns. With PulseAudio, this returns once the
/// first stream opened or a notice said why none could.
pub fn start_capture(
    name: Option<String>,
    frames: GatedFrames,
    notify: Notify,
) -> Result<DeviceHandle, DeviceError> {
    if pulse::list().is_ok() {
        return spawn_pulse("capture", name, notify, move |stop, follow| {
            pulse_capture(frames, &stop, follow);
        });
    }
    cpal_capture(name, frames)
}

/// A capture thread's way to the engine: frames pass while the gate is
/// open (someone uses them: a transmission, the meter, the mic test);
/// while it is closed only the newest is kept, in place, and it goes first
/// when the gate opens. An idle app then wakes its engine for no frame at
/// all, yet a press still gets the frame that was being captured.
pub struct GatedFrames {
    tx: mpsc::Sender<CapturedFrame>,
    gate: Arc<AtomicBool>,
    kept: Option<CapturedFrame>,
}

impl GatedFrames {
    /// Frames to `tx` while `gate` is true.
    pub fn new(tx: mpsc::Sender<CapturedFrame>, gate: Arc<AtomicBool>) -> Self {
        Self {
            tx,
            gate,
            kept: None,
        }
    }

    /// One 20 ms frame, captured from `at`.
    fn send(&mut self, at: Instant, pcm: &[f32]) {
        if self.gate.load(Ordering::Relaxed) {
            if let Some(kept) = self.kept.take() {
                let _ = self.tx.try_send(kept);
            }
            let _ = self.tx.try_send(CapturedFrame {
                at,
                pcm: pcm.into(),
            });
            return;
        }
        match &mut self.kept {
            Some(k) if k.pcm.len() == pcm.len() => {
                k.at = at;
                k.pcm.copy_from_slice(pcm);
            }
            _ => {
                self.kept = Some(CapturedFrame {
                    at,
                    pcm: pcm.into(),
                })
            }
        }
    }
}

/// Opens the playout device `name` (`None`: the default) pulling from
/// `mixer`; changes of device go to `notify`. A stereo mixer's left and
/// right go to the device's first two channels.
///
/// Devices are chosen as by [`start_capture`], among sinks.
///
/// # Errors
/// [`DeviceError`] if cpal cannot find or open the device.
pub fn start_playout(
    name: Option<String>,
    mixer: Mixer,
    notify: Notify,
) -> Result<DeviceHandle, DeviceError> {
    if pulse::list().is_ok() {
        return spawn_pulse("playout", name, notify, move |stop, follow| {
            pulse_playout(mixer, &stop, follow);
        });
    }
    cpal_playout(name, mixer)
}

/// Runs `body` on a thread named `name`, with the [`Follow`] of the device
/// `wanted`; returns once the thread is ready (its first attempt to open a
/// stream made).
fn spawn_pulse<S: 'static>(
    name: &str,
    wanted: Option<String>,
    notify: Notify,
    body: impl FnOnce(Arc<AtomicBool>, Follow<S>) + Send + 'static,
) -> Result<DeviceHandle, DeviceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (choose_tx, choose_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let follow = Follow {
                selector: Selector::new(wanted, Instant::now()),
                stream: None,
                notify,
                choices: choose_rx,
                ready: Some(Box::new(move || {
                    let _ = ready_tx.send(());
                })),
            };
            body(stop2, follow);
        })
        .map_err(cpal_err)?;
    // A thread that ended before its first open also drops the sender.
    let _ = ready_rx.recv();
    Ok(DeviceHandle {
        stop,
        thread: Some(thread),
        choose: Some(DeviceChooser(choose_tx)),
    })
}

/// One device thread's view of its [`Selector`]: does what it says with
/// `open` and `list`, reports its notices, and says when the thread is
/// ready (its first open tried).
struct Follow<S> {
    selector: Selector,
    stream: Option<S>,
    notify: Notify,
    /// The user's choices of device ([`DeviceChooser`]).
    choices: std::sync::mpsc::Receiver<Option<String>>,
    ready: Option<Box<dyn FnOnce() + Send>>,
}

impl<S> Follow<S> {
    fn report(&mut self, change: Option<DeviceChange>) {
        if let Some(change) = change {
            tracing::info!("audio device: {change:?}");
            (self.notify)(change);
        }
    }

    /// Runs the selector's steps until a stream runs; `None` after waiting
    /// (at most one 20 ms frame) while there is none.
    fn stream(
        &mut self,
        list: fn(&pulse::Devices) -> &[super::select::DeviceInfo],
        open: impl Fn(Option<&str>) -> Result<S, String>,
    ) -> Option<&mut S> {
        while let Ok(wanted) = self.choices.try_recv() {
            self.selector.choose(wanted, Instant::now());
        }
        loop {
            let now = Instant::now();
            match self.selector.next(now) {
                Step::Run => return self.stream.as_mut(),
                Step::List => {
                    let devices = pulse::list();
                    let devices = devices.as_ref().map(list).map_err(Clone::clone);
                    let change = self.selector.listed(devices, now);
                    self.report(change);
                }
                Step::Open(device) => {
                    self.stream = None;
                    let result = open(device.as_deref()).map(|s| self.stream = Some(s));
                    let change = self.selector.opened(result, now);
                    self.report(change);
                    if let Some(ready) = self.ready.take() {
                        ready();
                    }
                }
                Step::Wait(until) => {
                    if let Some(ready) = self.ready.take() {
                        ready();
                    }
                    self.stream = None;
                    std::thread::sleep(
                        until
                            .saturating_duration_since(now)
                            .min(Duration::from_millis(u64::from(super::FRAME_MS))),
                    );
                    return None;
                }
            }
        }
    }

    /// The running stream failed.
    fn lost(&mut self, reason: String) {
        self.stream = None;
        let change = self.selector.lost(reason, Instant::now());
        self.report(change);
    }
}

fn pulse_capture(mut frames: GatedFrames, stop: &AtomicBool, mut follow: Follow<pulse::Stream>) {
    let mut fragment = vec![0.0f32; (SAMPLE_RATE / 1000 * pulse::CAPTURE_FRAGMENT_MS) as usize];
    let mut frame: Vec<f32> = Vec::with_capacity(FRAME_SAMPLES);
    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = follow.stream(|d| &d.inputs, pulse::Stream::record) else {
            frame.clear();
            continue;
        };
        if let Err(e) = stream.read(&mut fragment) {
            follow.lost(e);
            frame.clear();
            continue;
        }
        frame.extend_from_slice(&fragment);
        if frame.len() >= FRAME_SAMPLES {
            // The newest sample was captured about now.
            let now = Instant::now();
            let age = Duration::from_millis(u64::from(super::FRAME_MS));
            frames.send(now.checked_sub(age).unwrap_or(now), &frame[..FRAME_SAMPLES]);
            frame.drain(..FRAME_SAMPLES);
        }
    }
}

fn pulse_playout(mut mixer: Mixer, stop: &AtomicBool, mut follow: Follow<pulse::Stream>) {
    let channels = mixer.layout().channels();
    // One block at a time, as the server asks for it (its minimum request
    // is a block): each is mixed when there is room for it.
    let mut frame = vec![0.0f32; super::mixer::BLOCK_SAMPLES * channels];
    let stereo = channels == 2;
    let open = move |device: Option<&str>| pulse::Stream::playback(device, stereo);
    while !stop.load(Ordering::Relaxed) {
        if mixer.is_idle() && !mixer.wait_for_input(IDLE_WAKE) {
            // Nothing to hear: no silence is mixed or written (the server
            // plays silence once the queue runs dry), but the device is
            // still looked after.
            let _ = follow.stream(|d| &d.outputs, open);
            continue;
        }
        mixer.mix(Instant::now(), &mut frame);
        let Some(stream) = follow.stream(|d| &d.outputs, open) else {
            // No device: the block is dropped, and so is the rest of the
            // frame the wait took, so the mixer keeps time.
            for _ in 1..FRAME_SAMPLES / super::mixer::BLOCK_SAMPLES {
                mixer.mix(Instant::now(), &mut frame);
            }
            continue;
        };
        if let Err(e) = stream.write(&frame) {
            follow.lost(e);
        }
    }
}

/// [`start_capture`] through cpal.
fn cpal_capture(
    name: Option<String>,
    mut frames: GatedFrames,
) -> Result<DeviceHandle, DeviceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), DeviceError>>();
    let thread = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let opened = (|| {
                let device = pick(true, name.as_deref())?;
                let config = pick_config(&device, true)?;
                let rate = config.sample_rate();
                let channels = usize::from(config.channels().max(1));
                // One second of mono audio at the device rate.
                let (mut prod, cons) = HeapRb::<f32>::new(rate as usize).split();
                // The callback wakes this thread once a frame's worth of
                // samples has arrived: 50 wake-ups a second, not a poll.
                let mut wake = FrameWake::new(rate);
                let stream_config: cpal::StreamConfig = config.into();
                let err_fn = |e| tracing::warn!("capture stream: {e}");
                let stream = match config.sample_format() {
                    cpal::SampleFormat::F32 => device.build_input_stream(
                        stream_config,
                        move |data: &[f32], _| {
                            for frame in data.chunks(channels) {
                                let _ = prod.try_push(frame.iter().sum::<f32>() / channels as f32);
                            }
                            let _ = wake.arrived(data.len() / channels);
                        },
                        err_fn,
                        None,
                    ),
                    cpal::SampleFormat::I16 => device.build_input_stream(
                        stream_config,
                        move |data: &[i16], _| {
                            for frame in data.chunks(channels) {
                                let sum: f32 = frame.iter().map(|s| f32::from(*s) / 32768.0).sum();
                                let _ = prod.try_push(sum / channels as f32);
                            }
                            let _ = wake.arrived(data.len() / channels);
                        },
                        err_fn,
                        None,
                    ),
                    other => {
                        return Err(DeviceError::Cpal(format!(
                            "unsupported sample format {other}"
                        )));
                    }
                }
                .map_err(cpal_err)?;
                stream.play().map_err(cpal_err)?;
                let resampler = StreamResampler::new(rate, SAMPLE_RATE)?;
                Ok((stream, cons, resampler))
            })();
            let (stream, mut cons, mut resampler) = match opened {
                Ok(v) => {
                    let _ = ready_tx.send(Ok(()));
                    v
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut raw = vec![0.0f32; 4096];
            let mut at48 = Vec::with_capacity(FRAME_SAMPLES * 4);
            while !stop2.load(Ordering::Relaxed) {
                std::thread::park_timeout(IDLE_WAKE);
                loop {
                    let n = cons.pop_slice(&mut raw);
                    if n == 0 {
                        break;
                    }
                    resampler.process(&raw[..n], &mut at48);
                }
                let now = Instant::now();
                let ready = at48.len() / FRAME_SAMPLES;
                for i in 0..ready {
                    // The newest sample was captured about now; date frames back from it.
                    let age = Duration::from_micros(
                        ((at48.len() - i * FRAME_SAMPLES) as u64 * 1_000_000)
                            / u64::from(SAMPLE_RATE),
                    );
                    frames.send(
                        now.checked_sub(age).unwrap_or(now),
                        &at48[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES],
                    );
                }
                at48.drain(..ready * FRAME_SAMPLES);
            }
            drop(stream);
        })
        .map_err(cpal_err)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(DeviceHandle {
            stop,
            thread: Some(thread),
            choose: None,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeviceError::Cpal("capture thread died".into())),
    }
}

/// The next output instant from the ring: (left, right), equal in mono.
fn pop_frame(cons: &mut impl Consumer<Item = f32>, stereo: bool) -> (f32, f32) {
    let l = cons.try_pop().unwrap_or(0.0);
    let r = if stereo {
        cons.try_pop().unwrap_or(0.0)
    } else {
        l
    };
    (l, r)
}

/// Writes (left, right) into one device frame of any width.
fn spread<T: Copy>(frame: &mut [T], l: f32, r: f32, conv: impl Fn(f32) -> T) {
    match frame {
        [only] => *only = conv((l + r) / 2.0),
        [a, b, rest @ ..] => {
            *a = conv(l);
            *b = conv(r);
            rest.fill(conv((l + r) / 2.0));
        }
        [] => {}
    }
}

/// [`start_playout`] through cpal. A stereo mixer's left and right go to
/// the device's first two channels (further channels get their average); a
/// mono device gets the average, a mono mixer every channel.
fn cpal_playout(name: Option<String>, mut mixer: Mixer) -> Result<DeviceHandle, DeviceError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), DeviceError>>();
    let thread = std::thread::Builder::new()
        .name("playout".into())
        .spawn(move || {
            let opened = (|| {
                let device = pick(false, name.as_deref())?;
                let config = pick_config(&device, false)?;
                let rate = config.sample_rate();
                let channels = usize::from(config.channels().max(1));
                let stereo = mixer.layout() == Layout::Stereo;
                // The ring holds frames of the mixer's layout (L, R pairs in stereo).
                let width = mixer.layout().channels();
                let (prod, mut cons) = HeapRb::<f32>::new(rate as usize * width).split();
                // The callback wakes this thread when the ring runs below
                // its target: it mixes as the device consumes, not on a poll.
                let target = queued_target(rate);
                let worker = std::thread::current();
                let stream_config: cpal::StreamConfig = config.into();
                let err_fn = |e| tracing::warn!("playout stream: {e}");
                let stream = match config.sample_format() {
                    cpal::SampleFormat::F32 => device.build_output_stream(
                        stream_config,
                        move |data: &mut [f32], _| {
                            for frame in data.chunks_mut(channels) {
                                let (l, r) = pop_frame(&mut cons, stereo);
                                spread(frame, l, r, |s| s);
                            }
                            if cons.occupied_len() < target * width {
                                worker.unpark();
                            }
                        },
                        err_fn,
                        None,
                    ),
                    cpal::SampleFormat::I16 => device.build_output_stream(
                        stream_config,
                        move |data: &mut [i16], _| {
                            for frame in data.chunks_mut(channels) {
                                let (l, r) = pop_frame(&mut cons, stereo);
                                spread(frame, l, r, |s| (s.clamp(-1.0, 1.0) * 32767.0) as i16);
                            }
                            if cons.occupied_len() < target * width {
                                worker.unpark();
                            }
                        },
                        err_fn,
                        None,
                    ),
                    other => {
                        return Err(DeviceError::Cpal(format!(
                            "unsupported sample format {other}"
                        )));
                    }
                }
                .map_err(cpal_err)?;
                stream.play().map_err(cpal_err)?;
                let resamplers = (0..width)
                    .map(|_| StreamResampler::new(SAMPLE_RATE, rate))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((stream, prod, resamplers, rate))
            })();
            let (stream, mut prod, mut resamplers, rate) = match opened {
                Ok(v) => {
                    let _ = ready_tx.send(Ok(()));
                    v
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let target = queued_target(rate);
            let width = resamplers.len();
            let mut frame = vec![0.0f32; FRAME_SAMPLES * width];
            let mut side = vec![0.0f32; FRAME_SAMPLES];
            let mut outs: Vec<Vec<f32>> = vec![Vec::with_capacity(rate as usize / 10); width];
            let mut interleaved = Vec::with_capacity(rate as usize / 5);
            while !stop2.load(Ordering::Relaxed) {
                while prod.occupied_len() < target * width {
                    mixer.mix(Instant::now(), &mut frame);
                    for (ch, (r, out)) in resamplers.iter_mut().zip(&mut outs).enumerate() {
                        for (d, s) in side.iter_mut().zip(frame.iter().skip(ch).step_by(width)) {
                            *d = *s;
                        }
                        out.clear();
                        r.process(&side, out);
                    }
                    // Each side's resampler has the same state, so the same length.
                    let n = outs.iter().map(Vec::len).min().unwrap_or(0);
                    interleaved.clear();
                    for i in 0..n {
                        interleaved.extend(outs.iter().map(|o| o[i]));
                    }
                    prod.push_slice(&interleaved);
                }
                std::thread::park_timeout(IDLE_WAKE);
            }
            drop(stream);
        })
        .map_err(cpal_err)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(DeviceHandle {
            stop,
            thread: Some(thread),
            choose: None,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeviceError::Cpal("playout thread died".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_thread_is_woken_once_per_frame_of_samples() {
        // 48 kHz: 960 samples a frame; callbacks of 441 samples (a 9.2 ms
        // period) wake it on the 3rd, 5th, 7th... callback, keeping the rest.
        let mut w = FrameWake::new(48_000);
        let woken: Vec<bool> = (0..7).map(|_| w.arrived(441)).collect();
        assert_eq!(woken, [false, false, true, false, true, false, true]);
        assert_eq!(w.pending, 7 * 441 - 3 * 960);
        // A callback bigger than a frame wakes once and keeps the remainder.
        let mut w = FrameWake::new(44_100);
        assert!(w.arrived(2_000));
        assert_eq!(w.pending, 2_000 % 882);
    }

    #[test]
    fn a_closed_gate_keeps_only_the_newest_frame_and_sends_it_first_on_opening() {
        let (tx, mut rx) = mpsc::channel(8);
        let gate = Arc::new(AtomicBool::new(false));
        let mut frames = GatedFrames::new(tx, gate.clone());
        let t0 = Instant::now();
        let at = |n: u64| t0 + Duration::from_millis(20 * n);
        for n in 0..5 {
            frames.send(at(n), &[n as f32; FRAME_SAMPLES]);
        }
        assert!(rx.try_recv().is_err(), "nothing passes a closed gate");
        gate.store(true, Ordering::Relaxed);
        frames.send(at(5), &[5.0; FRAME_SAMPLES]);
        frames.send(at(6), &[6.0; FRAME_SAMPLES]);
        let got: Vec<(Instant, f32)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| (f.at, f.pcm[0]))
            .collect();
        assert_eq!(got, [(at(4), 4.0), (at(5), 5.0), (at(6), 6.0)]);
        gate.store(false, Ordering::Relaxed);
        frames.send(at(7), &[7.0; FRAME_SAMPLES]);
        assert!(rx.try_recv().is_err(), "closed again");
    }

    #[test]
    fn a_wake_is_not_lost_when_it_comes_before_the_thread_sleeps() {
        // The callback may run between the thread's last look at its ring
        // and its park: the token stays set and the park returns at once
        // (well before the hour it would otherwise wait).
        let mut w = FrameWake::new(48_000);
        assert!(w.arrived(960));
        let t0 = Instant::now();
        std::thread::park_timeout(Duration::from_secs(3600));
        assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    }
}
