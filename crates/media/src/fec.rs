//! Tuning Opus in-band FEC to the loss the far end measures.
//!
//! libopus adds in-band FEC (LBRR, RFC 6716 §2.1.7) in proportion to the
//! packet loss it is told to expect (`OPUS_SET_PACKET_LOSS_PERC`): at 0 % it
//! sends none, and the higher the figure the more of each packet's bits go
//! to the redundant copy of the frame before. The right figure is the loss
//! on the path, which only the receiver sees: it reports it in every RTCP
//! receiver report block as *fraction lost*, the share of the packets
//! expected since its previous report that did not arrive (RFC 3550
//! §6.4.1, 8 bits: lost / expected × 256).
//!
//! [`FecTuner`] turns that series of reports into the encoder's figure:
//!
//! * it **rises at once** to a higher measured loss (a listener losing
//!   speech costs more than the few kbps of FEC);
//! * it **falls slowly**, halving its distance to a lower measurement every
//!   [`FecTunerConfig::half_life_packets`] packets sent, so a lucky second
//!   on a bad link does not take the FEC away;
//! * it **ignores reports that cover no speech**: a push-to-talk uplink is
//!   silent most of the time, and a report over an idle second says
//!   "0 % lost" about packets nobody sent;
//! * it stays within [`FecTunerConfig::floor_pct`] and
//!   [`FecTunerConfig::ceiling_pct`], and only asks for a change of at
//!   least [`FecTunerConfig::step_pct`] points (or one reaching a bound), so
//!   the encoder is not reconfigured every second for noise in the
//!   measurement.
//!
//! Sans-IO: the caller feeds each new report with the number of packets it
//! sent since the last one, and applies what [`FecTuner::report`] returns.
//! No clock: the decay counts packets, not seconds, so silence neither ages
//! nor refreshes the estimate.

/// Bounds and pace of a [`FecTuner`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FecTunerConfig {
    /// The figure before any report, percent (0-100). Default 10.
    pub initial_pct: u8,
    /// Lowest figure asked for, percent. Default 5: FEC stays on for the
    /// first losses of a clean link (libopus sends none at 0).
    pub floor_pct: u8,
    /// Highest figure asked for, percent. Default 50: beyond that the
    /// primary frame would lose too many bits to its copy.
    pub ceiling_pct: u8,
    /// Smallest change, in percentage points, worth reconfiguring the
    /// encoder for. Default 2.
    pub step_pct: u8,
    /// Packets sent over which a falling estimate halves its distance to
    /// the measurement. Default 500 (10 s of 20 ms frames).
    pub half_life_packets: u32,
    /// A report counts only if at least this many packets were sent since
    /// the previous one. Default 10 (200 ms of speech).
    pub min_packets: u32,
}

impl Default for FecTunerConfig {
    fn default() -> Self {
        Self {
            initial_pct: 10,
            floor_pct: 5,
            ceiling_pct: 50,
            step_pct: 2,
            half_life_packets: 500,
            min_packets: 10,
        }
    }
}

/// Chooses the Opus encoder's expected packet loss from RTCP receiver
/// reports. See the module docs.
#[derive(Debug, Clone)]
pub struct FecTuner {
    config: FecTunerConfig,
    /// Smoothed loss, fraction 0.0-1.0.
    estimate: f64,
    /// The figure last handed out (or the initial one), percent.
    applied: u8,
}

impl FecTuner {
    /// A tuner that starts at `config.initial_pct`, clamped to the bounds.
    #[must_use]
    pub fn new(config: FecTunerConfig) -> Self {
        let ceiling = config.ceiling_pct.clamp(config.floor_pct, 100);
        let config = FecTunerConfig {
            ceiling_pct: ceiling,
            step_pct: config.step_pct.max(1),
            half_life_packets: config.half_life_packets.max(1),
            ..config
        };
        let applied = config.initial_pct.clamp(config.floor_pct, ceiling);
        Self {
            config,
            estimate: f64::from(applied) / 100.0,
            applied,
        }
    }

    /// The figure the encoder should be running with now, percent.
    #[must_use]
    pub fn expected_loss_pct(&self) -> u8 {
        self.applied
    }

    /// One new receiver report about our stream: its `fraction_lost`
    /// (0.0-1.0, the RFC 3550 §6.4.1 field divided by 256) and the number
    /// of RTP packets we sent since the previous report was fed in.
    ///
    /// Returns the new expected loss, percent, when the encoder should be
    /// reconfigured; `None` when the figure stays (the report covered too
    /// little speech, or the change is below the step).
    pub fn report(&mut self, fraction_lost: f64, packets_sent: u32) -> Option<u8> {
        if packets_sent < self.config.min_packets || !fraction_lost.is_finite() {
            return None;
        }
        let measured = fraction_lost.clamp(0.0, 1.0);
        if measured >= self.estimate {
            self.estimate = measured;
        } else {
            let keep =
                0.5f64.powf(f64::from(packets_sent) / f64::from(self.config.half_life_packets));
            self.estimate = measured + (self.estimate - measured) * keep;
        }
        let floor = self.config.floor_pct;
        let ceiling = self.config.ceiling_pct;
        // Whole percent, rounded up: 2.1 % measured asks for 3.
        let target = ((self.estimate * 100.0 - 1e-9).ceil().max(0.0) as u8).clamp(floor, ceiling);
        let moved = target.abs_diff(self.applied);
        let at_bound = target == floor || target == ceiling;
        if moved >= self.config.step_pct || (moved > 0 && at_bound) {
            self.applied = target;
            Some(target)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuner() -> FecTuner {
        FecTuner::new(FecTunerConfig::default())
    }

    /// One second of speech: 50 packets.
    const SECOND: u32 = 50;

    #[test]
    fn a_lossy_link_raises_the_figure_at_the_first_report() {
        let mut t = tuner();
        assert_eq!(t.expected_loss_pct(), 10);
        // 51/256 ≈ 19.9 % lost.
        assert_eq!(t.report(51.0 / 256.0, SECOND), Some(20));
        assert_eq!(t.expected_loss_pct(), 20);
        // The same loss again changes nothing.
        assert_eq!(t.report(51.0 / 256.0, SECOND), None);
    }

    #[test]
    fn a_clean_link_lowers_it_slowly_down_to_the_floor() {
        let mut t = tuner();
        t.report(0.30, SECOND);
        assert_eq!(t.expected_loss_pct(), 30);
        // One clean second is a tenth of the 500-packet half-life:
        // 30 % × 0.5^0.1 ≈ 28 %.
        assert_eq!(t.report(0.0, SECOND), Some(28));
        let mut seconds = 1;
        let mut trail = vec![];
        while t.expected_loss_pct() > 5 {
            if let Some(p) = t.report(0.0, SECOND) {
                trail.push(p);
            }
            seconds += 1;
            assert!(seconds < 200, "never reached the floor: {trail:?}");
        }
        // Half the distance after ~10 s, the floor after ~25 s of speech.
        assert!((20..=30).contains(&seconds), "{seconds} s: {trail:?}");
        assert!(trail.windows(2).all(|w| w[0] > w[1]), "{trail:?}");
        assert_eq!(*trail.last().unwrap(), 5);
        // Never below the floor.
        assert_eq!(t.report(0.0, SECOND * 100), None);
        assert_eq!(t.expected_loss_pct(), 5);
    }

    #[test]
    fn reports_over_silence_change_nothing() {
        let mut t = tuner();
        t.report(0.20, SECOND);
        for _ in 0..1_000 {
            // Idle push-to-talk: the server reports 0 % of nothing.
            assert_eq!(t.report(0.0, 0), None);
            assert_eq!(t.report(0.0, 9), None);
        }
        assert_eq!(t.expected_loss_pct(), 20);
    }

    #[test]
    fn small_wobbles_do_not_reconfigure_the_encoder() {
        let mut t = tuner();
        assert_eq!(t.report(0.11, SECOND), None, "11 % against 10: one point");
        assert_eq!(t.report(0.12, SECOND), Some(12));
        assert_eq!(t.report(0.13, SECOND), None);
    }

    #[test]
    fn the_ceiling_bounds_a_dead_link_and_bad_values_are_ignored() {
        let mut t = tuner();
        assert_eq!(t.report(1.0, SECOND), Some(50));
        assert_eq!(t.report(f64::NAN, SECOND), None);
        assert_eq!(t.report(7.0, SECOND), None, "clamped to 100 % lost");
        assert_eq!(t.expected_loss_pct(), 50);
        let mut t = FecTuner::new(FecTunerConfig {
            initial_pct: 90,
            floor_pct: 20,
            ceiling_pct: 10,
            ..FecTunerConfig::default()
        });
        assert_eq!(
            t.expected_loss_pct(),
            20,
            "a ceiling under the floor is the floor"
        );
        assert_eq!(t.report(-3.0, SECOND), None);
    }
}
