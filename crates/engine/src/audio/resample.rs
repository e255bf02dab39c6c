//! Streaming sample-rate conversion with rubato (mono f32).

use rubato::{
    Async, FixedAsync, PolynomialDegree, Resampler as _,
    audioadapter_buffers::direct::InterleavedSlice,
};

/// Converts a mono stream from one rate to another in chunks of any size.
/// A pass-through when both rates are equal.
pub struct StreamResampler {
    inner: Option<Async<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
}

/// Rates rubato could not work with.
#[derive(Debug, thiserror::Error)]
#[error("cannot resample {from} Hz to {to} Hz: {reason}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    reason: String,
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz.
    ///
    /// # Errors
    /// [`ResampleError`] if rubato refuses the ratio (e.g. a rate of 0).
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        if from == to {
            return Ok(Self {
                inner: None,
                pending: Vec::new(),
                scratch: Vec::new(),
            });
        }
        let err = |reason: String| ResampleError { from, to, reason };
        if from == 0 || to == 0 {
            return Err(err("rate is zero".into()));
        }
        let chunk = (from / 100).max(1) as usize; // 10 ms of input
        let inner = Async::<f32>::new_poly(
            f64::from(to) / f64::from(from),
            1.1,
            PolynomialDegree::Cubic,
            chunk,
            1,
            FixedAsync::Input,
        )
        .map_err(|e| err(e.to_string()))?;
        let scratch = vec![0.0; inner.output_frames_max()];
        Ok(Self {
            inner: Some(inner),
            pending: Vec::with_capacity(chunk * 4),
            scratch,
        })
    }

    /// Appends the resampled form of `input` to `out`. Output lags input by
    /// up to one 10 ms chunk.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return;
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        loop {
            let need = inner.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let chunk = &self.pending[used..used + need];
            let cap = self.scratch.len();
            let (Ok(inp), Ok(mut outp)) = (
                InterleavedSlice::new(chunk, 1, need),
                InterleavedSlice::new_mut(&mut self.scratch, 1, cap),
            ) else {
                break;
            };
            match inner.process_into_buffer(&inp, &mut outp, None) {
                Ok((consumed, produced)) => {
                    used += consumed;
                    out.extend_from_slice(&self.scratch[..produced]);
                }
                Err(_) => break,
            }
        }
        self.pending.drain(..used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_length_and_keeps_a_tone() {
        let mut r = StreamResampler::new(44_100, 48_000).unwrap();
        let input: Vec<f32> = (0..44_100)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 0.5)
            .collect();
        let mut out = Vec::new();
        for chunk in input.chunks(333) {
            r.process(chunk, &mut out);
        }
        assert!(
            (47_000..=48_000).contains(&out.len()),
            "1 s at 44.1 kHz became {} samples",
            out.len()
        );
        // Count zero crossings over the steady part: 440 Hz → ~880 per second.
        let steady = &out[1000..out.len() - 1000];
        let crossings = steady
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count() as f32;
        let hz = crossings / (steady.len() as f32 / 48_000.0);
        assert!((430.0..450.0).contains(&hz), "tone came out at {hz} Hz");
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut r = StreamResampler::new(48_000, 48_000).unwrap();
        let mut out = Vec::new();
        r.process(&[0.1, 0.2], &mut out);
        assert_eq!(out, vec![0.1, 0.2]);
        assert!(StreamResampler::new(0, 48_000).is_err());
    }
}
