//! The user's audio controls: input gain, output volume, mic test and the
//! input level meter. Pure functions and a small accumulator, so they are
//! tested without devices.

use serde::{Deserialize, Serialize};

use super::FRAME_MS;

/// Highest input gain accepted (linear): +12 dB.
pub const MAX_INPUT_GAIN: f32 = 4.0;
/// Highest output volume accepted (linear): unity.
pub const MAX_OUTPUT_VOLUME: f32 = 1.0;

/// The audio controls of one engine. All fields are linear factors or
/// switches; values out of range are clamped by [`AudioControls::clamped`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioControls {
    /// Microphone gain applied before encoding and metering, linear,
    /// 0.0 to [`MAX_INPUT_GAIN`]. Default 1.0.
    pub input_gain: f32,
    /// Gain of everything played out, linear, 0.0 to
    /// [`MAX_OUTPUT_VOLUME`]. Default 1.0.
    pub output_volume: f32,
    /// Mic test: captured audio (after gain) is played back locally, as
    /// the user will be heard, without being sent. Default off.
    pub mic_test: bool,
    /// Whether [`crate::LocalEvent::Level`] is reported (every
    /// [`METER_PERIOD_MS`]). Off by default: nobody is looking.
    pub meter: bool,
    /// Noise suppression (RNNoise) on the captured audio, after the input
    /// gain ([`super::process`]; adds 10 ms of delay). Default on.
    pub noise_suppression: bool,
    /// Automatic gain control on the captured audio, after noise
    /// suppression ([`super::process::Agc`]). Default on.
    pub auto_gain: bool,
}

impl Default for AudioControls {
    fn default() -> Self {
        Self {
            input_gain: 1.0,
            output_volume: 1.0,
            mic_test: false,
            meter: false,
            noise_suppression: true,
            auto_gain: true,
        }
    }
}

impl AudioControls {
    /// The same controls with gains clamped to their ranges; a NaN gain
    /// becomes the default 1.0.
    pub fn clamped(self) -> Self {
        let clamp = |v: f32, max: f32| if v.is_nan() { 1.0 } else { v.clamp(0.0, max) };
        Self {
            input_gain: clamp(self.input_gain, MAX_INPUT_GAIN),
            output_volume: clamp(self.output_volume, MAX_OUTPUT_VOLUME),
            ..self
        }
    }
}

/// Multiplies `pcm` by `gain` and clips to -1.0..1.0 (a no-op at unity).
pub fn apply_gain(pcm: &mut [f32], gain: f32) {
    if gain == 1.0 {
        return;
    }
    for s in pcm {
        *s = (*s * gain).clamp(-1.0, 1.0);
    }
}

/// Input level over one meter period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ts_rs::TS)]
pub struct Level {
    /// Highest absolute sample, 0.0 (silence) to 1.0 (full scale).
    pub peak: f32,
    /// RMS level, dBFS (full-scale sine ≈ -3 dBFS); -100 for digital silence.
    pub rms_dbfs: f32,
}

/// How often the meter reports, ms (5 frames): smooth enough for the eye,
/// and 10 events per second at most.
pub const METER_PERIOD_MS: u32 = 100;

/// Accumulates frames into one [`Level`] per [`METER_PERIOD_MS`].
#[derive(Debug, Default, Clone)]
pub struct LevelMeter {
    frames: u32,
    peak: f32,
    sum_sq: f64,
    samples: u64,
}

impl LevelMeter {
    /// Adds one frame; returns the level when a period is complete.
    pub fn push(&mut self, pcm: &[f32]) -> Option<Level> {
        for &s in pcm {
            self.peak = self.peak.max(s.abs());
            self.sum_sq += f64::from(s) * f64::from(s);
        }
        self.samples += pcm.len() as u64;
        self.frames += 1;
        if self.frames < METER_PERIOD_MS / FRAME_MS {
            return None;
        }
        let ms = if self.samples == 0 {
            0.0
        } else {
            self.sum_sq / self.samples as f64
        };
        let rms_dbfs = if ms > 0.0 {
            (10.0 * ms.log10()).max(-100.0) as f32
        } else {
            -100.0
        };
        let level = Level {
            peak: self.peak.min(1.0),
            rms_dbfs,
        };
        *self = Self::default();
        Some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn sine(amplitude: f32) -> Vec<f32> {
        (0..FRAME_SAMPLES)
            .map(|i| amplitude * (i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn meter_reports_every_five_frames() {
        let mut m = LevelMeter::default();
        let frame = sine(0.5);
        for _ in 0..4 {
            assert_eq!(m.push(&frame), None);
        }
        let level = m.push(&frame).expect("fifth frame completes a period");
        assert!((level.peak - 0.5).abs() < 0.01, "{level:?}");
        // A sine of amplitude A has RMS A/√2: 0.5 → -9.03 dBFS.
        assert!((level.rms_dbfs - -9.03).abs() < 0.1, "{level:?}");
        // The next period starts from nothing.
        for _ in 0..4 {
            assert_eq!(m.push(&vec![0.0; FRAME_SAMPLES]), None);
        }
        let silent = m.push(&vec![0.0; FRAME_SAMPLES]).unwrap();
        assert_eq!(
            silent,
            Level {
                peak: 0.0,
                rms_dbfs: -100.0
            }
        );
    }

    #[test]
    fn gain_scales_and_clips() {
        let mut pcm = vec![0.1, -0.3, 0.6, -0.9];
        apply_gain(&mut pcm, 2.0);
        assert_eq!(pcm, vec![0.2, -0.6, 1.0, -1.0]);
        apply_gain(&mut pcm, 0.0);
        assert!(pcm.iter().all(|s| *s == 0.0));
    }

    #[test]
    fn controls_are_clamped() {
        let c = AudioControls {
            input_gain: 9.0,
            output_volume: f32::NAN,
            mic_test: true,
            meter: false,
            noise_suppression: false,
            auto_gain: true,
        }
        .clamped();
        assert_eq!(c.input_gain, MAX_INPUT_GAIN);
        assert_eq!(c.output_volume, 1.0);
        assert!(c.mic_test);
        let c = AudioControls {
            input_gain: -1.0,
            output_volume: 2.0,
            ..Default::default()
        }
        .clamped();
        assert_eq!((c.input_gain, c.output_volume), (0.0, 1.0));
    }
}
