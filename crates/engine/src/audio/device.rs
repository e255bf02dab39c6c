//! Real audio devices through cpal.
//!
//! Each device lives on its own thread (cpal streams are not `Send` on every
//! platform). The cpal callbacks only move samples between the device and a
//! pre-allocated lock-free ring buffer: no locks, no allocation, no blocking.
//! - capture thread: ring → downmixed mono at the device rate → rubato to
//!   48 kHz → 20 ms [`CapturedFrame`]s to the engine;
//! - playout thread: keeps the output ring about 40 ms full by pulling
//!   frames from the [`Mixer`] (so the device clock paces playout) →
//!   rubato to the device rate → ring → callback (mono copied to every
//!   channel; silence on underrun).

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

use super::{CapturedFrame, FRAME_SAMPLES, SAMPLE_RATE, mixer::Mixer, resample::StreamResampler};

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
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often the device threads service their rings.
const SERVICE: Duration = Duration::from_millis(5);

/// Opens a capture device and sends 20 ms frames to `frames`.
///
/// # Errors
/// [`DeviceError`] if the device cannot be found or opened; the error is
/// reported before this returns.
pub fn start_capture(
    name: Option<String>,
    frames: mpsc::Sender<CapturedFrame>,
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
                let stream_config: cpal::StreamConfig = config.into();
                let err_fn = |e| tracing::warn!("capture stream: {e}");
                let stream = match config.sample_format() {
                    cpal::SampleFormat::F32 => device.build_input_stream(
                        stream_config,
                        move |data: &[f32], _| {
                            for frame in data.chunks(channels) {
                                let _ = prod.try_push(frame.iter().sum::<f32>() / channels as f32);
                            }
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
                std::thread::sleep(SERVICE);
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
                    let pcm: Box<[f32]> = at48[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES].into();
                    let _ = frames.try_send(CapturedFrame {
                        at: now.checked_sub(age).unwrap_or(now),
                        pcm,
                    });
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
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeviceError::Cpal("capture thread died".into())),
    }
}

/// Opens a playout device pulling from `mixer`.
///
/// # Errors
/// [`DeviceError`] if the device cannot be found or opened.
pub fn start_playout(name: Option<String>, mut mixer: Mixer) -> Result<DeviceHandle, DeviceError> {
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
                let (prod, mut cons) = HeapRb::<f32>::new(rate as usize).split();
                let stream_config: cpal::StreamConfig = config.into();
                let err_fn = |e| tracing::warn!("playout stream: {e}");
                let stream = match config.sample_format() {
                    cpal::SampleFormat::F32 => device.build_output_stream(
                        stream_config,
                        move |data: &mut [f32], _| {
                            for frame in data.chunks_mut(channels) {
                                let s = cons.try_pop().unwrap_or(0.0);
                                frame.fill(s);
                            }
                        },
                        err_fn,
                        None,
                    ),
                    cpal::SampleFormat::I16 => device.build_output_stream(
                        stream_config,
                        move |data: &mut [i16], _| {
                            for frame in data.chunks_mut(channels) {
                                let s = cons.try_pop().unwrap_or(0.0);
                                frame.fill((s.clamp(-1.0, 1.0) * 32767.0) as i16);
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
                let resampler = StreamResampler::new(SAMPLE_RATE, rate)?;
                Ok((stream, prod, resampler, rate))
            })();
            let (stream, mut prod, mut resampler, rate) = match opened {
                Ok(v) => {
                    let _ = ready_tx.send(Ok(()));
                    v
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            // Keep about two frames queued at the device: low latency, no underruns.
            let target = 2 * rate as usize / 50;
            let mut frame = vec![0.0f32; FRAME_SAMPLES];
            let mut out = Vec::with_capacity(rate as usize / 10);
            while !stop2.load(Ordering::Relaxed) {
                while prod.occupied_len() < target {
                    mixer.mix(Instant::now(), &mut frame);
                    out.clear();
                    resampler.process(&frame, &mut out);
                    prod.push_slice(&out);
                }
                std::thread::sleep(SERVICE);
            }
            drop(stream);
        })
        .map_err(cpal_err)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(DeviceHandle {
            stop,
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DeviceError::Cpal("playout thread died".into())),
    }
}
