//! Opus encoding and decoding (libopus 1.6 bundled by the `opus` 0.4 crate;
//! see `docs/decisions.md` for why not `audiopus`).

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate, bits per second. Default 24 000 (24 kbps).
    pub bitrate: i32,
    /// In-band FEC (LBRR, RFC 6716 §2.1.7). Default on.
    pub fec: bool,
    /// Expected packet loss, percent (0-100), before the server's first
    /// receiver report; libopus only adds FEC data when this is above 0.
    /// Default 10. With `adapt_fec` the engine then follows the measured
    /// loss ([`squawk_media::FecTuner`]).
    pub expected_loss_pct: i32,
    /// Follow the uplink loss the server reports in RTCP receiver reports
    /// (RFC 3550 §6.4.1) with the expected packet loss, between 5 and
    /// 50 %. Default on.
    pub adapt_fec: bool,
    /// Discontinuous transmission (RFC 7587 §3.1.3). Default on.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate: 24_000,
            fec: true,
            expected_loss_pct: 10,
            adapt_fec: true,
            dtx: true,
        }
    }
}

/// Largest Opus packet we produce, bytes (RFC 6716 §3.4 allows 1275 per frame).
pub const MAX_PACKET: usize = 1275;

/// An Opus VOIP encoder for 20 ms mono frames at 48 kHz.
pub struct Encoder {
    inner: opus::Encoder,
    out: Vec<u8>,
}

impl Encoder {
    /// Creates an encoder.
    ///
    /// # Errors
    /// libopus refused a setting (e.g. a bitrate out of 500..=512000).
    pub fn new(config: OpusConfig) -> Result<Self, opus::Error> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(config.bitrate))?;
        inner.set_inband_fec(config.fec)?;
        inner.set_packet_loss_perc(config.expected_loss_pct)?;
        inner.set_dtx(config.dtx)?;
        Ok(Self {
            inner,
            out: vec![0; MAX_PACKET],
        })
    }

    /// Sets the expected packet loss, percent (0-100), from the next frame
    /// on: the share of bits libopus gives to in-band FEC.
    ///
    /// # Errors
    /// libopus refused the value (outside 0..=100).
    pub fn set_expected_loss_pct(&mut self, pct: i32) -> Result<(), opus::Error> {
        self.inner.set_packet_loss_perc(pct)
    }

    /// Encodes one frame of [`FRAME_SAMPLES`] samples (-1.0..1.0). Returns
    /// the packet; one or two bytes means DTX silence (not to be sent).
    ///
    /// # Errors
    /// The frame has the wrong length or libopus failed.
    pub fn encode(&mut self, pcm: &[f32]) -> Result<&[u8], opus::Error> {
        let n = self.inner.encode_float(pcm, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// An Opus decoder producing 20 ms mono frames at 48 kHz.
pub struct Decoder {
    inner: opus::Decoder,
}

/// What to decode for one frame slot.
#[derive(Debug, Clone, Copy)]
pub enum DecodeInput<'a> {
    /// A received packet.
    Packet(&'a [u8]),
    /// Recover the missing frame from the in-band FEC of the next packet.
    Fec(&'a [u8]),
    /// Packet loss concealment (no data).
    Conceal,
}

impl Decoder {
    /// Creates a decoder.
    ///
    /// # Errors
    /// libopus failed to allocate.
    pub fn new() -> Result<Self, opus::Error> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one frame into `out` ([`FRAME_SAMPLES`] samples). Corrupt
    /// packets are concealed rather than failing the stream.
    pub fn decode(&mut self, input: DecodeInput<'_>, out: &mut [f32]) {
        let out = &mut out[..FRAME_SAMPLES];
        let res = match input {
            DecodeInput::Packet(p) => self.inner.decode_float(p, out, false),
            DecodeInput::Fec(p) => self.inner.decode_float(p, out, true),
            DecodeInput::Conceal => self.inner.decode_float(&[], out, false),
        };
        if res.is_err() {
            // A corrupt packet from the network must not stop playout: conceal.
            if self.inner.decode_float(&[], out, false).is_err() {
                out.fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, hz: f32) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (i as f32 * hz * std::f32::consts::TAU / SAMPLE_RATE as f32).sin())
            .collect()
    }

    #[test]
    fn round_trip_keeps_a_tone() {
        let mut enc = Encoder::new(OpusConfig::default()).unwrap();
        let mut dec = Decoder::new().unwrap();
        let pcm = tone(FRAME_SAMPLES * 50, 440.0);
        let mut out = vec![0.0; FRAME_SAMPLES];
        let mut energy = 0.0;
        for (i, frame) in pcm.chunks(FRAME_SAMPLES).enumerate() {
            let pkt = enc.encode(frame).unwrap().to_vec();
            assert!(
                pkt.len() > 2 && pkt.len() < 200,
                "24 kbps is ~60 bytes per 20 ms, got {}",
                pkt.len()
            );
            dec.decode(DecodeInput::Packet(&pkt), &mut out);
            if i > 10 {
                energy += out.iter().map(|s| s * s).sum::<f32>();
            }
        }
        let rms = (energy / (39.0 * FRAME_SAMPLES as f32)).sqrt();
        assert!(
            (0.15..0.3).contains(&rms),
            "tone of rms 0.21 decoded at rms {rms}"
        );
    }

    #[test]
    fn silence_becomes_dtx_and_garbage_is_concealed() {
        let mut enc = Encoder::new(OpusConfig::default()).unwrap();
        let silent = vec![0.0; FRAME_SAMPLES];
        let sizes: Vec<usize> = (0..30)
            .map(|_| enc.encode(&silent).unwrap().len())
            .collect();
        assert!(
            sizes[20..].iter().any(|&n| n <= 2),
            "DTX kicks in on silence: {sizes:?}"
        );
        let mut dec = Decoder::new().unwrap();
        let mut out = vec![1.0; FRAME_SAMPLES];
        dec.decode(
            DecodeInput::Packet(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            &mut out,
        );
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
}
