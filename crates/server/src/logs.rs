//! Rate-limited logging: at most [`LINES_PER_WINDOW`] lines per kind of
//! event per [`WINDOW`]; the next line after a quiet spell says how many
//! were left out. A storm of 2,000 connections or a client sending garbage
//! costs a few lines, not one per message.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Lines of one kind allowed per window.
pub(crate) const LINES_PER_WINDOW: u32 = 5;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    window_start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

/// One kind of log line. Use through `limited!`.
#[derive(Debug)]
pub(crate) struct Limiter {
    state: Mutex<State>,
}

impl Limiter {
    /// A limiter with nothing logged yet.
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                window_start: None,
                lines: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of
    /// lines left out before it, `None` to leave this one out.
    pub(crate) fn check(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-log.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.window_start
            .is_none_or(|t| now.saturating_duration_since(t) >= WINDOW)
        {
            s.window_start = Some(now);
            s.lines = 0;
        }
        if s.lines >= LINES_PER_WINDOW {
            s.suppressed += 1;
            return None;
        }
        s.lines += 1;
        Some(std::mem::take(&mut s.suppressed))
    }
}

/// `limited!(warn, "kind", "format", args..)`: a `tracing` event at the
/// given level, rate-limited per call site, with `suppressed = N` when
/// earlier lines were left out.
macro_rules! limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMITER: $crate::logs::Limiter = $crate::logs::Limiter::new();
        if let Some(suppressed) = LIMITER.check(::std::time::Instant::now()) {
            if suppressed > 0 {
                ::tracing::$level!(suppressed, $($arg)+);
            } else {
                ::tracing::$level!($($arg)+);
            }
        }
    }};
}
pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_the_next_window_counts_what_was_left_out() {
        let l = Limiter::new();
        let t = Instant::now();
        let written = (0..1000).filter(|_| l.check(t).is_some()).count();
        assert_eq!(written, LINES_PER_WINDOW as usize);
        assert_eq!(
            l.check(t + WINDOW),
            Some(1000 - u64::from(LINES_PER_WINDOW))
        );
        assert_eq!(l.check(t + WINDOW), Some(0));
    }
}
