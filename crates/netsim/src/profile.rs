//! What a link does to the datagrams it carries: [`Profile`] and [`Loss`].

use std::{fmt, str::FromStr, time::Duration};

/// The impairment of one direction of a link.
///
/// Each datagram offered at time `t` is, in this order: lost (by [`Loss`]),
/// or queued behind the ones before it when a rate cap is set (and dropped
/// if that queue already holds more than `queue` of sending time), then
/// delivered after `delay` ± `jitter`. Without `reorder`, a datagram is
/// never delivered before the one offered before it (jitter then bunches
/// datagrams as a real queue does); with it, jitter may swap them.
///
/// Written as text (the relay's command line, test names) as comma-separated
/// items, for example `loss=10%`, `burst=20%/3,delay=40ms`,
/// `delay=50ms,jitter=30ms,reorder`, `rate=32kbps,queue=100ms`, or `clean`:
///
/// | item | meaning |
/// |---|---|
/// | `clean` | no impairment (the default of every item) |
/// | `loss=P%` | independent random loss with probability P % |
/// | `burst=P%/B` | Gilbert-Elliott loss: P % of datagrams lost on average, in bursts of B datagrams on average ([`GilbertElliott::bursty`]) |
/// | `delay=Nms` | mean one-way delay |
/// | `jitter=Nms` | each datagram's delay uniform in `delay` ± N ms (never below 0) |
/// | `reorder` | jitter may deliver datagrams out of order |
/// | `rate=Nkbps` | rate cap (IP payload bits; UDP/IP headers not counted) |
/// | `queue=Nms` | drop-tail bound of the rate cap's queue, in sending time; default 200 ms |
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Mean one-way delay.
    pub delay: Duration,
    /// Half-width of the uniform spread of each datagram's delay.
    pub jitter: Duration,
    /// Whether jitter may reorder datagrams (false: delivery stays FIFO).
    pub reorder: bool,
    /// How datagrams are lost.
    pub loss: Loss,
    /// Rate cap in kbit/s (1000 bit/s), or none.
    pub rate_kbps: Option<u32>,
    /// With a rate cap: the most sending time queued before a datagram is
    /// dropped (drop-tail).
    pub queue: Duration,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: false,
            loss: Loss::None,
            rate_kbps: None,
            queue: Duration::from_millis(200),
        }
    }
}

impl Profile {
    /// No impairment at all.
    pub fn clean() -> Self {
        Self::default()
    }

    /// Independent random loss with probability `p` (0..=1).
    pub fn random_loss(p: f64) -> Self {
        Self {
            loss: Loss::Random { p },
            ..Self::default()
        }
    }
}

/// How a link loses datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Nothing lost.
    None,
    /// Each datagram lost with probability `p` (0..=1), independently.
    Random {
        /// Loss probability.
        p: f64,
    },
    /// Bursts of loss (a two-state Markov chain per datagram).
    GilbertElliott(GilbertElliott),
}

/// The Gilbert-Elliott loss model: a Good and a Bad state, a transition
/// drawn per datagram, and a loss probability in each state.
///
/// Mean loss = `loss_good` × r/(p+r) + `loss_bad` × p/(p+r); with
/// `loss_good` = 0 and `loss_bad` = 1 (the simple Gilbert model) the mean
/// burst is 1/r datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving Good → Bad at a datagram.
    pub p: f64,
    /// Probability of moving Bad → Good at a datagram.
    pub r: f64,
    /// Loss probability in Good.
    pub loss_good: f64,
    /// Loss probability in Bad.
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The simple Gilbert model (everything lost in Bad, nothing in Good)
    /// losing `mean_loss` (0..1) of datagrams in bursts of `mean_burst`
    /// datagrams (≥ 1) on average.
    ///
    /// # Errors
    /// [`ProfileError::Value`] when `mean_loss` is outside 0..1 or
    /// `mean_burst` below 1, or when the two cannot be met together (a
    /// mean loss near 1 with short bursts).
    pub fn bursty(mean_loss: f64, mean_burst: f64) -> Result<Self, ProfileError> {
        let bad = |reason: &str| ProfileError::Value {
            item: format!("burst={}%/{mean_burst}", mean_loss * 100.0),
            reason: reason.to_string(),
        };
        if !(0.0..1.0).contains(&mean_loss) {
            return Err(bad("the mean loss must be at least 0 % and below 100 %"));
        }
        if mean_burst.is_nan() || mean_burst < 1.0 {
            return Err(bad("the mean burst must be at least 1 datagram"));
        }
        let r = 1.0 / mean_burst;
        // Stationary P(Bad) = p / (p + r) = mean_loss.
        let p = mean_loss * r / (1.0 - mean_loss);
        if p > 1.0 {
            return Err(bad("that much loss needs longer bursts"));
        }
        Ok(Self {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        })
    }

    /// The long-run fraction of datagrams lost.
    pub fn mean_loss(&self) -> f64 {
        let total = self.p + self.r;
        if total == 0.0 {
            return self.loss_good;
        }
        self.loss_good * self.r / total + self.loss_bad * self.p / total
    }
}

/// A profile written as text that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// An item that is not one of those in [`Profile`]'s table.
    #[error(
        "unknown impairment {0:?} (expected clean, loss=P%, burst=P%/B, delay=Nms, jitter=Nms, reorder, rate=Nkbps or queue=Nms)"
    )]
    Unknown(String),
    /// A known item with a value out of range or unreadable.
    #[error("bad impairment {item:?}: {reason}")]
    Value {
        /// The item as written.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn percent(item: &str, v: &str) -> Result<f64, ProfileError> {
    let n: f64 = v
        .strip_suffix('%')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ProfileError::Value {
            item: item.to_string(),
            reason: "expected a percentage such as 10%".into(),
        })?;
    if !(0.0..=100.0).contains(&n) {
        return Err(ProfileError::Value {
            item: item.to_string(),
            reason: "a percentage is from 0% to 100%".into(),
        });
    }
    Ok(n / 100.0)
}

fn millis(item: &str, v: &str) -> Result<Duration, ProfileError> {
    v.strip_suffix("ms")
        .and_then(|n| n.parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| ProfileError::Value {
            item: item.to_string(),
            reason: "expected whole milliseconds such as 40ms".into(),
        })
}

impl FromStr for Profile {
    type Err = ProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Profile::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match (key, value) {
                ("clean", "") => {}
                ("reorder", "") => p.reorder = true,
                ("loss", v) => {
                    p.loss = Loss::Random {
                        p: percent(item, v)?,
                    }
                }
                ("burst", v) => {
                    let (loss, burst) = v.split_once('/').ok_or_else(|| ProfileError::Value {
                        item: item.to_string(),
                        reason: "expected P%/B, e.g. burst=20%/3".into(),
                    })?;
                    let burst: f64 = burst.parse().map_err(|_| ProfileError::Value {
                        item: item.to_string(),
                        reason: "the burst length is a number of datagrams".into(),
                    })?;
                    p.loss =
                        Loss::GilbertElliott(GilbertElliott::bursty(percent(item, loss)?, burst)?);
                }
                ("delay", v) => p.delay = millis(item, v)?,
                ("jitter", v) => p.jitter = millis(item, v)?,
                ("queue", v) => p.queue = millis(item, v)?,
                ("rate", v) => {
                    let kbps = v
                        .strip_suffix("kbps")
                        .and_then(|n| n.parse::<u32>().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| ProfileError::Value {
                            item: item.to_string(),
                            reason: "expected a positive whole rate such as 64kbps".into(),
                        })?;
                    p.rate_kbps = Some(kbps);
                }
                _ => return Err(ProfileError::Unknown(item.to_string())),
            }
        }
        Ok(p)
    }
}

impl fmt::Display for Profile {
    /// The text form, readable again by [`Profile::from_str`] (a bursty
    /// loss prints as its mean loss and burst length).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = Vec::new();
        match self.loss {
            Loss::None => {}
            Loss::Random { p } => items.push(format!("loss={}%", p * 100.0)),
            Loss::GilbertElliott(ge) => {
                items.push(format!("burst={}%/{}", ge.mean_loss() * 100.0, 1.0 / ge.r));
            }
        }
        if !self.delay.is_zero() {
            items.push(format!("delay={}ms", self.delay.as_millis()));
        }
        if !self.jitter.is_zero() {
            items.push(format!("jitter={}ms", self.jitter.as_millis()));
        }
        if self.reorder {
            items.push("reorder".into());
        }
        if let Some(kbps) = self.rate_kbps {
            items.push(format!("rate={kbps}kbps"));
            items.push(format!("queue={}ms", self.queue.as_millis()));
        }
        if items.is_empty() {
            items.push("clean".into());
        }
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_reads_every_item() {
        let p: Profile = "burst=20%/4, delay=40ms,jitter=15ms,reorder,rate=32kbps,queue=80ms"
            .parse()
            .expect("valid");
        let Loss::GilbertElliott(ge) = p.loss else {
            panic!("bursty loss expected, got {:?}", p.loss);
        };
        assert!((ge.mean_loss() - 0.2).abs() < 1e-12);
        assert!((ge.r - 0.25).abs() < 1e-12);
        assert_eq!(p.delay, Duration::from_millis(40));
        assert_eq!(p.jitter, Duration::from_millis(15));
        assert!(p.reorder);
        assert_eq!(p.rate_kbps, Some(32));
        assert_eq!(p.queue, Duration::from_millis(80));
        assert_eq!(p.to_string().parse::<Profile>(), Ok(p));
        assert_eq!("clean".parse::<Profile>(), Ok(Profile::clean()));
        assert_eq!("loss=10%".parse::<Profile>(), Ok(Profile::random_loss(0.1)));
    }

    #[test]
    fn bad_text_says_what_is_wrong() {
        for (text, needle) in [
            ("loss=10", "percentage"),
            ("loss=150%", "0% to 100%"),
            ("burst=20%", "P%/B"),
            ("burst=20%/0.5", "at least 1 datagram"),
            ("burst=90%/1", "longer bursts"),
            ("delay=1s", "milliseconds"),
            ("rate=0kbps", "positive"),
            ("wobble", "unknown impairment"),
        ] {
            let e = text.parse::<Profile>().expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
