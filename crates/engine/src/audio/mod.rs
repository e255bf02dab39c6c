//! The audio path: pluggable ends (real cpal devices, or WAV files paced in
//! real time), resampling, 20 ms framing and the receive mixer.
//!
//! ```text
//! capture:  source ─(20 ms frames, 48 kHz mono f32)─▶ engine: gain ▶ NS ▶ AGC ▶ PTT ▶ Opus ▶ RTP
//! playout:  RTP ▶ per-channel jitter buffer ▶ Opus decode/FEC/PLC ▶ mix ▶ sink
//! ```
//!
//! Devices: a PulseAudio server's when one answers (chosen by name, with
//! fallback to the default: [`select`]), else cpal's.
//!
//! Real-time rule: cpal callbacks only copy between the device buffer and a
//! pre-allocated lock-free ring ([`ringbuf`]); they never lock, allocate or
//! block. Resampling, framing, decoding and mixing run on worker threads.

pub mod controls;
pub mod device;
pub mod mixer;
pub mod process;
pub mod pulse;
pub mod resample;
pub mod select;
pub mod wav;

use std::time::Instant;

/// Sample rate of the whole engine, Hz (Opus fullband, RFC 7587 §4.1).
pub const SAMPLE_RATE: u32 = 48_000;
/// Frame duration, ms.
pub const FRAME_MS: u32 = 20;
/// Samples per frame at [`SAMPLE_RATE`], mono: 960.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE / 1000 * FRAME_MS) as usize;

/// One 20 ms frame of captured audio.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// When the frame's first sample was captured (or scheduled, for WAV).
    pub at: Instant,
    /// [`FRAME_SAMPLES`] samples, 48 kHz mono, -1.0..1.0.
    pub pcm: Box<[f32]>,
}

/// Where captured audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InputSpec {
    /// No microphone: the engine can listen only.
    #[default]
    None,
    /// A device: `None` for the default, or a name ([`device::start_capture`]).
    Device(Option<String>),
    /// Clips played on demand through [`wav::WavSource`], silence between.
    Wav,
}

/// Where received audio goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OutputSpec {
    /// Nowhere: packets are counted, not decoded (load generators).
    #[default]
    None,
    /// A device: `None` for the default, or a name ([`device::start_playout`]).
    Device(Option<String>),
    /// A 48 kHz 16-bit WAV file written in real time, silence included,
    /// for `seconds` (or until the engine stops); mono, or stereo with each
    /// channel's pan ([`mixer::ChannelMix`]).
    Wav {
        /// Output file.
        path: std::path::PathBuf,
        /// Length to record, seconds; `None` until the engine stops.
        seconds: Option<f64>,
        /// Two channels (left, right) instead of one.
        stereo: bool,
    },
}
