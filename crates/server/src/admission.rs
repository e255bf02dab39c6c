//! Admission control, pure (time passed in): who may open a connection, and
//! how fast a connection may send. The limits and their defaults are
//! [`crate::config::Limits`]; each refusal has a stable [`ErrorCode`].

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use squawk_protocol::ErrorCode;

use crate::config::Limits;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.at = now;
    }

    /// Whether the bucket is full again at `now` (nothing to remember).
    fn full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

#[derive(Debug)]
struct PerIp {
    open: usize,
    bucket: TokenBucket,
}

/// Connection admission: totals, per IP address, and new connections per
/// second per IP address.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    open: usize,
    per_ip: HashMap<IpAddr, PerIp>,
    last_sweep: Option<Instant>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The stable code sent to the client.
    pub code: ErrorCode,
}

impl Refusal {
    /// A sentence for the client and the log.
    pub(crate) fn message(&self, limits: &Limits) -> String {
        match self.code {
            ErrorCode::ServerFull => format!(
                "the server is full ({} connections); try again later",
                limits.max_connections
            ),
            ErrorCode::TooManyConnections => format!(
                "too many connections from your address (at most {})",
                limits.max_connections_per_ip
            ),
            _ => format!(
                "too many new connections from your address (at most {} per second); retry in a second",
                limits.new_connections_per_ip_per_sec
            ),
        }
    }
}

impl Admission {
    /// Nobody connected yet.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            open: 0,
            per_ip: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Admits a new connection from `ip` at `now`, or says why not. An
    /// admitted connection must be [`Admission::release`]d when it ends.
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.sweep(now);
        let limits = self.limits;
        let entry = self.per_ip.entry(ip).or_insert_with(|| PerIp {
            open: 0,
            bucket: TokenBucket::new(
                limits.new_connections_per_ip_per_sec,
                limits.new_connections_per_ip_burst,
                now,
            ),
        });
        // The rate counts attempts, refused ones too: a client that hammers
        // a full server is slowed down as well.
        if !entry.bucket.take(now) {
            return Err(Refusal {
                code: ErrorCode::ConnectRateLimited,
            });
        }
        if self.open >= limits.max_connections {
            return Err(Refusal {
                code: ErrorCode::ServerFull,
            });
        }
        if entry.open >= limits.max_connections_per_ip {
            return Err(Refusal {
                code: ErrorCode::TooManyConnections,
            });
        }
        entry.open += 1;
        self.open += 1;
        Ok(())
    }

    /// An admitted connection from `ip` ended.
    pub(crate) fn release(&mut self, ip: IpAddr) {
        if let Some(e) = self.per_ip.get_mut(&ip) {
            e.open = e.open.saturating_sub(1);
            self.open = self.open.saturating_sub(1);
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    /// Forgets addresses with no connection and a full bucket, at most once
    /// a minute, so that the table does not grow with every address seen.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.per_ip.retain(|_, e| e.open > 0 || !e.bucket.full(now));
    }
}

/// The message rate of one connection: [`Limits::messages_per_sec`]
/// sustained, bursts of twice that.
pub(crate) fn message_bucket(limits: &Limits, now: Instant) -> TokenBucket {
    TokenBucket::new(
        limits.messages_per_sec,
        limits.messages_per_sec.saturating_mul(2),
        now,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn limits() -> Limits {
        Limits {
            max_connections: 5,
            max_connections_per_ip: 3,
            new_connections_per_ip_per_sec: 2,
            new_connections_per_ip_burst: 4,
            ..Limits::default()
        }
    }

    #[test]
    fn per_ip_and_total_limits_with_their_codes() {
        let t = Instant::now();
        let mut a = Admission::new(limits());
        for _ in 0..3 {
            a.admit(ip(1), t).unwrap();
        }
        assert_eq!(
            a.admit(ip(1), t).unwrap_err().code,
            ErrorCode::TooManyConnections
        );
        a.admit(ip(2), t).unwrap();
        a.admit(ip(2), t).unwrap();
        assert_eq!(a.admit(ip(3), t).unwrap_err().code, ErrorCode::ServerFull);
        a.release(ip(1));
        assert_eq!(a.open(), 4);
        a.admit(ip(3), t).unwrap();
    }

    #[test]
    fn new_connections_per_second_after_the_burst() {
        let t = Instant::now();
        let mut a = Admission::new(Limits {
            max_connections_per_ip: 100,
            max_connections: 100,
            ..limits()
        });
        for _ in 0..4 {
            a.admit(ip(1), t).unwrap();
        }
        assert_eq!(
            a.admit(ip(1), t).unwrap_err().code,
            ErrorCode::ConnectRateLimited
        );
        assert!(a.admit(ip(2), t).is_ok(), "other addresses are not slowed");
        let later = t + Duration::from_millis(500); // one token at 2 per second
        a.admit(ip(1), later).unwrap();
        assert!(a.admit(ip(1), later).is_err());
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let t = Instant::now();
        let mut a = Admission::new(limits());
        a.admit(ip(1), t).unwrap();
        a.release(ip(1));
        a.admit(ip(2), t + Duration::from_secs(61)).unwrap();
        assert_eq!(a.per_ip.len(), 1, "ip 1 has nothing open and a full bucket");
    }

    #[test]
    fn message_rate() {
        let t = Instant::now();
        let mut b = message_bucket(
            &Limits {
                messages_per_sec: 10,
                ..Limits::default()
            },
            t,
        );
        let burst = (0..100).filter(|_| b.take(t)).count();
        assert_eq!(burst, 20);
        let second = t + Duration::from_secs(1);
        let more = (0..100).filter(|_| b.take(second)).count();
        assert_eq!(more, 10);
    }
}
