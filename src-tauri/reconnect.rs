//! Reconnect delays after a lost connection: exponential backoff with
//! jitter, the same schedule as the browser engine (`ui/engine-browser.js`):
//! 0.5 s, then 1 s for every later attempt, each delay ±20 %, so that many
//! clients cut off by one server restart do not all come back in the same
//! instant, yet every one is back within about 1.2 s (plus its connection
//! set-up) of the server returning. A retry a second costs a down server
//! one refused TCP connection per client; a server that is up but full
//! refuses with its admission limits (`server_full`, `connect_rate_limited`).

use std::time::Duration;

/// First delay.
pub const FIRST: Duration = Duration::from_millis(500);
/// Largest delay.
pub const MAX: Duration = Duration::from_secs(1);

/// The backoff schedule of one outage. Pure: the caller supplies the
/// jitter, a number in `0.0..=1.0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A fresh schedule (the next delay is about [`FIRST`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay before the next attempt: `min(MAX, FIRST × 2^attempts)`
    /// scaled by `0.8 + 0.4 × jitter`.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let base = FIRST.saturating_mul(1u32 << self.attempt.min(16)).min(MAX);
        self.attempt = self.attempt.saturating_add(1);
        base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A jitter value in `0.0..1.0` from the clock's nanoseconds: enough to
/// spread clients apart, no random-number crate needed.
pub fn clock_jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_second_then_every_second() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..8).map(|_| b.next(0.5).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 1000, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn jitter_spreads_each_delay_by_twenty_percent() {
        assert_eq!(Backoff::new().next(0.0), Duration::from_millis(400));
        assert_eq!(Backoff::new().next(1.0), Duration::from_millis(600));
        assert_eq!(
            Backoff::new().next(7.0),
            Duration::from_millis(600),
            "clamped"
        );
        let j = clock_jitter();
        assert!((0.0..1.0).contains(&j));
        // Many attempts never overflow.
        let mut b = Backoff::new();
        for _ in 0..100 {
            assert!(b.next(1.0) <= Duration::from_millis(1200));
        }
    }
}
