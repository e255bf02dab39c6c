//! WAV ends for bots, tests and benchmarks: a source that plays clips in
//! real time (silence between them) and file reading/writing helpers.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc as std_mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use super::{CapturedFrame, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, resample::StreamResampler};

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// hound could not read or write it.
    #[error("{path}: {source}")]
    Hound {
        /// File.
        path: String,
        /// Cause.
        source: hound::Error,
    },
    /// The sample rate could not be converted.
    #[error(transparent)]
    Resample(#[from] super::resample::ResampleError),
}

/// Reads a WAV file of any rate, bit depth and channel count as 48 kHz mono
/// f32 (channels averaged, resampled with rubato when needed).
///
/// # Errors
/// [`WavError`] if the file cannot be read.
pub fn read_mono_48k(path: &Path) -> Result<Vec<f32>, WavError> {
    let herr = |source| WavError::Hound {
        path: path.display().to_string(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(herr)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(herr)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(herr)?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    if spec.sample_rate == SAMPLE_RATE {
        return Ok(mono);
    }
    let mut r = StreamResampler::new(spec.sample_rate, SAMPLE_RATE)?;
    let mut out =
        Vec::with_capacity(mono.len() * SAMPLE_RATE as usize / spec.sample_rate as usize + 1);
    r.process(&mono, &mut out);
    r.process(&vec![0.0; spec.sample_rate as usize / 50], &mut out); // flush the tail
    Ok(out)
}

/// A 48 kHz mono 16-bit WAV writer.
pub struct WavWriter {
    inner: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    path: String,
}

impl WavWriter {
    /// Creates (truncates) `path`.
    ///
    /// # Errors
    /// [`WavError`] if the file cannot be created.
    pub fn create(path: &Path) -> Result<Self, WavError> {
        Self::create_channels(path, 1)
    }

    /// Creates (truncates) `path` for `channels` interleaved channels
    /// (48 kHz, 16-bit).
    ///
    /// # Errors
    /// [`WavError`] if the file cannot be created.
    pub fn create_channels(path: &Path, channels: u16) -> Result<Self, WavError> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let inner = hound::WavWriter::create(path, spec).map_err(|source| WavError::Hound {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            inner,
            path: path.display().to_string(),
        })
    }

    /// Appends samples (-1.0..1.0, clipped; interleaved when the file has
    /// several channels).
    ///
    /// # Errors
    /// [`WavError`] on an I/O error.
    pub fn write(&mut self, pcm: &[f32]) -> Result<(), WavError> {
        for s in pcm {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            self.inner
                .write_sample(v)
                .map_err(|source| WavError::Hound {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Finishes the header.
    ///
    /// # Errors
    /// [`WavError`] on an I/O error.
    pub fn finish(self) -> Result<(), WavError> {
        let path = self.path;
        self.inner
            .finalize()
            .map_err(|source| WavError::Hound { path, source })
    }
}

struct Clip {
    pcm: Arc<[f32]>,
    done: oneshot::Sender<Instant>,
}

/// A microphone made of WAV clips: a thread emits one [`CapturedFrame`]
/// every 20 ms on an absolute schedule (no drift), taken from the clip being
/// played or silence. [`WavSource::play`] queues a clip.
///
/// Like a real device, a frame holding the samples of `[t − 20 ms, t)` is
/// delivered at `t`, and its [`CapturedFrame::at`] is `t − 20 ms` (when its
/// first sample was "spoken"); so latency measured from it includes the
/// framing delay.
pub struct WavSource {
    clips: std_mpsc::Sender<Clip>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WavSource {
    /// Starts the pacing thread, sending frames to `frames`.
    pub fn start(frames: mpsc::Sender<CapturedFrame>) -> Self {
        let (clips, rx) = std_mpsc::channel::<Clip>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wav-source".into())
            .spawn(move || {
                let period = Duration::from_millis(u64::from(FRAME_MS));
                let mut next = Instant::now();
                let mut current: Option<(Clip, usize)> = None;
                while !stop2.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    let mut pcm = vec![0.0f32; FRAME_SAMPLES].into_boxed_slice();
                    if current.is_none() {
                        current = rx.try_recv().ok().map(|c| (c, 0));
                    }
                    if let Some((clip, pos)) = current.as_mut() {
                        let n = (clip.pcm.len() - *pos).min(FRAME_SAMPLES);
                        pcm[..n].copy_from_slice(&clip.pcm[*pos..*pos + n]);
                        *pos += n;
                        if *pos >= clip.pcm.len()
                            && let Some((clip, _)) = current.take()
                        {
                            // The clip's last sample ends this frame, delivered now.
                            let _ = clip.done.send(next);
                        }
                    }
                    // A full queue means the engine is gone or stalled: drop.
                    let at = next.checked_sub(period).unwrap_or(next);
                    let _ = frames.try_send(CapturedFrame { at, pcm });
                    next += period;
                }
            })
            .ok();
        Self {
            clips,
            stop,
            thread,
        }
    }

    /// Queues a clip (48 kHz mono). The receiver fires with the time its
    /// last sample was captured (the end of its last frame); so its first
    /// sample was captured at that time minus the clip's duration.
    pub fn play(&self, pcm: Arc<[f32]>) -> oneshot::Receiver<Instant> {
        let (done, rx) = oneshot::channel();
        let _ = self.clips.send(Clip { pcm, done });
        rx
    }
}

impl Drop for WavSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
