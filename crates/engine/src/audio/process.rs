//! Capture processing before the encoder: noise suppression and automatic
//! gain control (pure: frames in, frames out; no clock, no device, no
//! allocation after [`CaptureProcessor::new`]).
//!
//! ```text
//! frame (20 ms, 48 kHz mono) ─▶ input gain ─▶ noise suppression ─▶ AGC ─▶ meter, mic test, Opus
//! ```
//!
//! **Noise suppression** is RNNoise (J.-M. Valin, "A Hybrid DSP/Deep
//! Learning Approach to Real-Time Full-Band Speech Enhancement", 2018)
//! through `nnnoiseless`, its maintained Rust port: 10 ms frames of 480
//! samples at 48 kHz in the range of an `i16`, 10 ms of delay (its
//! overlap-add window), and a voice-activity probability per 10 ms, which
//! the gain control uses.
//!
//! **Automatic gain control** ([`Agc`]) brings speech to [`TARGET_DBFS`]:
//! it follows the level of the frames that hold speech (by the voice
//! probability, or without noise suppression by a gate above the noise
//! floor of the last 2 s), moves its gain by at most [`SLEW_UP_DB`] /
//! [`SLEW_DOWN_DB`] per frame within [`MIN_GAIN_DB`]..[`MAX_GAIN_DB`], holds
//! it through pauses (background noise is not pumped up), and limits each
//! frame's peak to [`LIMIT`].
//!
//! The engine runs the processing only on frames it uses (transmitting,
//! mic test, level meter), so an idle app spends nothing on it; the frames
//! in between are [`CaptureProcessor::observe`]d so that the denoiser's
//! window and pitch history are primed with the real audio (the last
//! 40 ms) before the next press.

use nnnoiseless::DenoiseState;

use super::FRAME_SAMPLES;

/// RNNoise's frame: 480 samples, 10 ms at 48 kHz.
const HALF: usize = DenoiseState::FRAME_SIZE;
/// RNNoise works on samples in the range of an `i16`.
const I16_SCALE: f32 = 32768.0;
/// Input kept to prime the denoiser: 40 ms, more than its pitch filter's
/// history (RNNoise's `PITCH_BUF_SIZE`, 1728 samples: 36 ms).
const PRIME: usize = 4 * HALF;

/// The speech level the gain control aims at, dBFS RMS over a frame of
/// speech (peaks are about 12 dB above: well clear of full scale).
pub const TARGET_DBFS: f32 = -20.0;
/// Highest gain the control applies, dB: a quiet headset an arm's length
/// away.
pub const MAX_GAIN_DB: f32 = 24.0;
/// Lowest gain, dB: a microphone held against the mouth.
pub const MIN_GAIN_DB: f32 = -12.0;
/// Largest gain rise per 20 ms frame, dB (10 dB/s): slow enough not to be
/// heard as pumping.
pub const SLEW_UP_DB: f32 = 0.2;
/// Largest gain fall per 20 ms frame, dB (25 dB/s).
pub const SLEW_DOWN_DB: f32 = 0.5;
/// Highest peak after the gain, linear (-1 dBFS).
pub const LIMIT: f32 = 0.891;
/// Voice probability (RNNoise, 0..1) at which a frame counts as speech.
pub const SPEECH_PROBABILITY: f32 = 0.6;
/// Without a voice probability, a frame counts as speech this far above
/// the tracked noise floor, dB.
pub const GATE_DB: f32 = 10.0;
/// Frames quieter than this, dBFS RMS, are never speech.
pub const SILENCE_DBFS: f32 = -60.0;

/// How fast the speech level estimate follows a louder frame (per frame:
/// about 100 ms) and a quieter one (about 1 s).
const LEVEL_ATTACK: f32 = 0.2;
const LEVEL_RELEASE: f32 = 0.02;
/// The noise floor is the quietest frame of the last [`FLOOR_BLOCKS`]
/// blocks of [`FLOOR_BLOCK_FRAMES`] frames (minimum statistics, 2 s):
/// speech pauses between words often enough for it to find the noise.
const FLOOR_BLOCK_FRAMES: u32 = 25;
const FLOOR_BLOCKS: usize = 4;

fn db_to_lin(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Mean-square level of `pcm`, dBFS (-100 for digital silence).
fn level_dbfs(pcm: &[f32]) -> f32 {
    if pcm.is_empty() {
        return -100.0;
    }
    let ms = pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32;
    if ms > 0.0 {
        (10.0 * ms.log10()).max(-100.0)
    } else {
        -100.0
    }
}

/// Automatic gain control over 20 ms frames (see the module's notes).
#[derive(Debug, Clone)]
pub struct Agc {
    /// Estimated speech level before the gain, dBFS RMS.
    speech_db: f32,
    /// The quietest frame of each of the last blocks, dBFS RMS, newest
    /// last (0 dBFS: not seen yet).
    minima: [f32; FLOOR_BLOCKS],
    /// The quietest frame of the current block, and its frames so far.
    block_min: f32,
    block_frames: u32,
    /// Gain at the end of the last frame, dB.
    gain_db: f32,
}

impl Default for Agc {
    fn default() -> Self {
        Self {
            speech_db: TARGET_DBFS,
            minima: [0.0; FLOOR_BLOCKS],
            block_min: 0.0,
            block_frames: 0,
            gain_db: 0.0,
        }
    }
}

impl Agc {
    /// The gain applied at the end of the last frame, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Applies the gain to one frame in place (any length; the slew limits
    /// assume 20 ms). `voice` is the frame's voice probability (0..1) when
    /// noise suppression measured one; `None` uses the noise-floor gate.
    pub fn process(&mut self, pcm: &mut [f32], voice: Option<f32>) {
        let db = level_dbfs(pcm);
        self.block_min = self.block_min.min(db);
        self.block_frames += 1;
        let floor = self.minima.iter().fold(self.block_min, |m, v| m.min(*v));
        if self.block_frames == FLOOR_BLOCK_FRAMES {
            self.minima.rotate_left(1);
            self.minima[FLOOR_BLOCKS - 1] = self.block_min;
            self.block_min = 0.0;
            self.block_frames = 0;
        }
        let speech = db > SILENCE_DBFS
            && match voice {
                Some(p) => p >= SPEECH_PROBABILITY,
                None => db > floor + GATE_DB,
            };
        if speech {
            let k = if db > self.speech_db {
                LEVEL_ATTACK
            } else {
                LEVEL_RELEASE
            };
            self.speech_db += (db - self.speech_db) * k;
        }
        let want = (TARGET_DBFS - self.speech_db).clamp(MIN_GAIN_DB, MAX_GAIN_DB);
        let mut next = self.gain_db + (want - self.gain_db).clamp(-SLEW_DOWN_DB, SLEW_UP_DB);
        let peak = pcm.iter().fold(0f32, |m, s| m.max(s.abs()));
        let mut start = db_to_lin(self.gain_db);
        if peak > 0.0 {
            let limit_db = 20.0 * (LIMIT / peak).log10();
            if next > limit_db {
                // A sudden loud frame: the limited gain for all of it (a
                // ramp from the higher gain would clip its first samples).
                next = limit_db.max(MIN_GAIN_DB - 40.0);
                start = start.min(db_to_lin(next));
            }
        }
        let end = db_to_lin(next);
        let n = pcm.len().max(1) as f32;
        for (i, s) in pcm.iter_mut().enumerate() {
            let g = start + (end - start) * (i + 1) as f32 / n;
            *s = (*s * g).clamp(-LIMIT, LIMIT);
        }
        self.gain_db = next;
    }
}

/// Noise suppression and gain control of one capture stream.
pub struct CaptureProcessor {
    denoise: Box<DenoiseState<'static>>,
    agc: Agc,
    /// The last [`PRIME`] samples of input (`i16` scale), oldest first, to
    /// prime the denoiser after frames it did not see.
    last: [f32; PRIME],
    /// Whether the denoiser saw the frame just before the next one.
    continuous: bool,
    scratch_in: [f32; HALF],
    scratch_out: [f32; HALF],
}

impl std::fmt::Debug for CaptureProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureProcessor")
            .field("agc", &self.agc)
            .field("continuous", &self.continuous)
            .finish_non_exhaustive()
    }
}

impl Default for CaptureProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl CaptureProcessor {
    /// A processor with a fresh denoiser (about 100 KB) and gain control.
    pub fn new() -> Self {
        Self {
            denoise: DenoiseState::new(),
            agc: Agc::default(),
            last: [0.0; PRIME],
            continuous: false,
            scratch_in: [0.0; HALF],
            scratch_out: [0.0; HALF],
        }
    }

    /// The gain control's state.
    pub fn agc(&self) -> &Agc {
        &self.agc
    }

    /// Processes one frame of [`FRAME_SAMPLES`] samples (-1.0..1.0) in
    /// place: noise suppression (10 ms of delay), then gain control, each
    /// when switched on. Returns the frame's voice probability (0..1, the
    /// higher of its two 10 ms halves) when noise suppression ran.
    pub fn process(
        &mut self,
        pcm: &mut [f32],
        noise_suppression: bool,
        auto_gain: bool,
    ) -> Option<f32> {
        debug_assert_eq!(pcm.len(), FRAME_SAMPLES);
        let voice = if noise_suppression {
            if !self.continuous {
                // The denoiser's window and pitch history still hold audio
                // from its last use: feed it the 40 ms just before this
                // frame, so that its delayed output continues the stream as
                // captured.
                for chunk in self.last.chunks_exact(HALF) {
                    self.denoise.process_frame(&mut self.scratch_out, chunk);
                }
            }
            self.remember(pcm);
            let mut voice = 0f32;
            for half in pcm.chunks_exact_mut(HALF) {
                for (d, s) in self.scratch_in.iter_mut().zip(half.iter()) {
                    *d = s * I16_SCALE;
                }
                let p = self
                    .denoise
                    .process_frame(&mut self.scratch_out, &self.scratch_in);
                voice = voice.max(p);
                for (d, s) in half.iter_mut().zip(self.scratch_out.iter()) {
                    *d = (s / I16_SCALE).clamp(-1.0, 1.0);
                }
            }
            self.continuous = true;
            Some(voice)
        } else {
            self.observe(pcm);
            None
        };
        if auto_gain {
            self.agc.process(pcm, voice);
        }
        voice
    }

    /// Notes a frame that is not processed (nobody uses it): keeps it to
    /// prime the denoiser when processing starts again.
    pub fn observe(&mut self, pcm: &[f32]) {
        self.remember(pcm);
        self.continuous = false;
    }

    /// Appends `pcm` (the raw input) to the priming history.
    fn remember(&mut self, pcm: &[f32]) {
        let pcm = &pcm[pcm.len().saturating_sub(PRIME)..];
        self.last.copy_within(pcm.len().., 0);
        let at = PRIME - pcm.len();
        for (d, s) in self.last[at..].iter_mut().zip(pcm) {
            *d = s * I16_SCALE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise generator (xorshift32), -1.0..1.0.
    struct Noise(u32);
    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
        }
        fn frame(&mut self, rms: f32) -> Vec<f32> {
            // Uniform noise on -1..1 has an RMS of 1/√3.
            (0..FRAME_SAMPLES)
                .map(|_| self.next() * rms * 3f32.sqrt())
                .collect()
        }
    }

    /// A 20 ms frame of a voiced-speech-like tone (200 Hz and harmonics)
    /// at `rms` linear.
    fn tone(rms: f32, frame: usize) -> Vec<f32> {
        (0..FRAME_SAMPLES)
            .map(|i| {
                let t = (frame * FRAME_SAMPLES + i) as f32 / 48_000.0;
                let w = 2.0 * std::f32::consts::PI * 200.0 * t;
                // 1, 1/2, 1/3: mean square (1 + 1/4 + 1/9) / 2.
                let v = w.sin() + (2.0 * w).sin() / 2.0 + (3.0 * w).sin() / 3.0;
                v * rms / (1.3611f32 / 2.0).sqrt()
            })
            .collect()
    }

    fn dbfs(pcm: &[f32]) -> f32 {
        level_dbfs(pcm)
    }

    #[test]
    fn quiet_speech_is_brought_to_the_target_level() {
        let mut agc = Agc::default();
        let quiet = db_to_lin(-38.0);
        let mut out = 0.0;
        // 5 s of speech: the gain needs 18 dB / 0.2 dB per frame = 90 frames.
        for n in 0..250 {
            let mut f = tone(quiet, n);
            agc.process(&mut f, Some(0.95));
            out = dbfs(&f);
        }
        assert!((agc.gain_db() - 18.0).abs() < 0.5, "{}", agc.gain_db());
        assert!((out - TARGET_DBFS).abs() < 0.5, "{out}");
    }

    #[test]
    fn gain_moves_no_faster_than_its_slew_limits() {
        let mut agc = Agc::default();
        let mut before = agc.gain_db();
        for n in 0..100 {
            let mut f = tone(db_to_lin(-45.0), n);
            agc.process(&mut f, Some(1.0));
            let step = agc.gain_db() - before;
            assert!(step <= SLEW_UP_DB + 1e-4, "rose {step} dB at frame {n}");
            before = agc.gain_db();
        }
        // A hot microphone after that: the gain falls, by at most
        // SLEW_DOWN_DB a frame unless the limiter has to act.
        for n in 0..100 {
            let mut f = tone(db_to_lin(-10.0), n);
            agc.process(&mut f, Some(1.0));
            assert!(
                f.iter().all(|s| s.abs() <= LIMIT),
                "frame {n} over the limit"
            );
        }
        // Speech at -10 dBFS wants -10 dB.
        assert!((agc.gain_db() - -10.0).abs() < 0.6, "{}", agc.gain_db());
    }

    #[test]
    fn loud_speech_is_turned_down_to_the_minimum_gain_at_most() {
        let mut agc = Agc::default();
        for n in 0..200 {
            let mut f = tone(db_to_lin(-6.0), n);
            agc.process(&mut f, Some(1.0));
        }
        assert!(
            (agc.gain_db() - MIN_GAIN_DB).abs() < 1e-3,
            "{}",
            agc.gain_db()
        );
    }

    #[test]
    fn pauses_and_noise_do_not_raise_the_gain() {
        let mut agc = Agc::default();
        let mut noise = Noise(7);
        // 10 s of background noise the voice detector calls no speech.
        for _ in 0..500 {
            let mut f = noise.frame(db_to_lin(-35.0));
            agc.process(&mut f, Some(0.05));
        }
        assert_eq!(agc.gain_db(), 0.0);
        // Without a voice probability, the gate learns the floor and holds.
        let mut gated = Agc::default();
        for _ in 0..500 {
            let mut f = noise.frame(db_to_lin(-45.0));
            gated.process(&mut f, None);
        }
        assert!(gated.gain_db().abs() < 0.5, "{}", gated.gain_db());
        // Speech 15 dB above that floor passes the gate and is raised.
        for n in 0..150 {
            let mut f = tone(db_to_lin(-30.0), n);
            gated.process(&mut f, None);
        }
        assert!(gated.gain_db() > 5.0, "{}", gated.gain_db());
    }

    #[test]
    fn a_sudden_shout_after_quiet_speech_is_limited_not_clipped() {
        let mut agc = Agc::default();
        for n in 0..300 {
            let mut f = tone(db_to_lin(-50.0), n);
            agc.process(&mut f, Some(1.0));
        }
        assert!((agc.gain_db() - MAX_GAIN_DB).abs() < 1e-3);
        let mut shout = tone(db_to_lin(-6.0), 301);
        agc.process(&mut shout, Some(1.0));
        let peak = shout.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(peak <= LIMIT && peak > LIMIT * 0.9, "{peak}");
        // Its shape is kept: limited by one gain, not flattened sample by
        // sample (a clipped tone's RMS would be near its peak).
        assert!(dbfs(&shout) < 20.0 * peak.log10() - 3.0);
    }

    #[test]
    fn suppression_removes_stationary_noise_and_keeps_a_frame_in_range() {
        let mut p = CaptureProcessor::new();
        let mut noise = Noise(3);
        let mut last = -100.0;
        for _ in 0..100 {
            let mut f = noise.frame(db_to_lin(-30.0));
            p.process(&mut f, true, false);
            assert!(f.iter().all(|s| (-1.0..=1.0).contains(s)));
            last = dbfs(&f);
        }
        // RNNoise takes white noise down by well over 10 dB.
        assert!(last < -45.0, "noise after suppression {last} dBFS");
    }

    #[test]
    fn with_both_off_the_frame_is_untouched() {
        let mut p = CaptureProcessor::new();
        let f = tone(0.1, 0);
        let mut g = f.clone();
        assert_eq!(p.process(&mut g, false, false), None);
        assert_eq!(f, g);
    }

    #[test]
    fn after_unprocessed_frames_the_output_continues_the_captured_stream() {
        // A denoiser that last ran on a loud tone, then saw silence it did
        // not process: the first processed frame must not replay the tone
        // from its delay line.
        let mut p = CaptureProcessor::new();
        for n in 0..50 {
            let mut f = tone(0.3, n);
            p.process(&mut f, true, false);
        }
        let silence = vec![0.0; FRAME_SAMPLES];
        for _ in 0..10 {
            p.observe(&silence);
        }
        let mut f = silence.clone();
        p.process(&mut f, true, false);
        let peak = f.iter().fold(0f32, |m, s| m.max(s.abs()));
        // The tone was at 0.3 RMS (peaks near 0.6): 30 dB below that.
        assert!(peak < 0.02, "stale audio replayed: peak {peak}");
    }
}
