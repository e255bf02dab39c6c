//! One direction of an impaired link, as a sans-IO state machine.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
    time::{Duration, Instant},
};

use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::profile::{Loss, Profile};

/// One direction of a link: datagrams go in with [`Link::offer`] and come
/// out of [`Link::poll_output`] when the [`Profile`] lets them.
///
/// No clock and no sockets: time is passed in, so the same model drives the
/// UDP relay ([`crate::Relay`]) and simulated-clock tests. Randomness comes
/// from a seeded generator, so a seed replays the same losses and delays
/// for the same sequence of inputs.
///
/// Drive rule: offer datagrams as they arrive (time never goes backwards
/// across calls), then call [`Link::poll_output`] until it returns `None`;
/// call it again no later than [`Link::poll_timeout`].
#[derive(Debug)]
pub struct Link<T> {
    profile: Profile,
    rng: StdRng,
    /// Gilbert-Elliott state: in Bad.
    bad: bool,
    in_flight: BinaryHeap<Reverse<InFlight<T>>>,
    seq: u64,
    /// Latest arrival scheduled (keeps delivery FIFO without `reorder`).
    last_arrival: Option<Instant>,
    /// With a rate cap: when the sender has finished serialising what is
    /// queued.
    sender_free_at: Option<Instant>,
    outage_until: Option<Instant>,
    stats: LinkStats,
}

/// What a [`Link`] has done so far, in datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Offered to the link.
    pub offered: u64,
    /// Delivered by [`Link::poll_output`].
    pub delivered: u64,
    /// Lost by the [`Loss`] model.
    pub lost: u64,
    /// Dropped because the link was in an outage.
    pub outage: u64,
    /// Dropped because the rate cap's queue was full.
    pub queue_full: u64,
}

#[derive(Debug)]
struct InFlight<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Link<T> {
    /// A link that impairs as `profile` says, its randomness seeded with
    /// `seed`.
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self {
            profile,
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            in_flight: BinaryHeap::new(),
            seq: 0,
            last_arrival: None,
            sender_free_at: None,
            outage_until: None,
            stats: LinkStats::default(),
        }
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Changes the impairment for the datagrams offered from now on (those
    /// in flight keep their delivery times).
    pub fn set_profile(&mut self, profile: Profile) {
        self.profile = profile;
    }

    /// Takes the link down for `length` from `now`: every datagram offered
    /// until then is dropped. Datagrams already in flight still arrive (they
    /// left before the cut).
    pub fn outage(&mut self, now: Instant, length: Duration) {
        self.outage_until = Some(now + length);
    }

    /// Whether the link is down at `now`.
    pub fn is_down(&self, now: Instant) -> bool {
        self.outage_until.is_some_and(|until| now < until)
    }

    /// Offers a datagram of `size` bytes (its payload, for the rate cap) at
    /// `now`. It is then lost, dropped, or scheduled for delivery.
    pub fn offer(&mut self, now: Instant, size: usize, item: T) {
        self.stats.offered += 1;
        if self.is_down(now) {
            self.stats.outage += 1;
            return;
        }
        if self.lose() {
            self.stats.lost += 1;
            return;
        }
        let Some(departure) = self.depart(now, size) else {
            self.stats.queue_full += 1;
            return;
        };
        let mut at = departure + self.delay();
        if !self.profile.reorder
            && let Some(last) = self.last_arrival
        {
            at = at.max(last);
        }
        self.last_arrival = Some(self.last_arrival.map_or(at, |l| l.max(at)));
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq: self.seq,
            item,
        }));
    }

    /// The next datagram due at or before `now`, in delivery order.
    pub fn poll_output(&mut self, now: Instant) -> Option<T> {
        if self.in_flight.peek()?.0.at > now {
            return None;
        }
        let Reverse(next) = self.in_flight.pop()?;
        self.stats.delivered += 1;
        Some(next.item)
    }

    /// When the next datagram is due, if any is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.0.at)
    }

    /// Datagrams in flight (offered, not yet delivered).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Counters since the link was made.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Draws whether the next datagram is lost (and, for Gilbert-Elliott,
    /// the state for the one after).
    fn lose(&mut self) -> bool {
        match self.profile.loss {
            Loss::None => false,
            Loss::Random { p } => self.rng.random_bool(p.clamp(0.0, 1.0)),
            Loss::GilbertElliott(ge) => {
                let p_loss = if self.bad { ge.loss_bad } else { ge.loss_good };
                let lost = self.rng.random_bool(p_loss.clamp(0.0, 1.0));
                let flip = if self.bad { ge.r } else { ge.p };
                if self.rng.random_bool(flip.clamp(0.0, 1.0)) {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }

    /// When a datagram of `size` bytes offered at `now` has left the
    /// sender, or `None` when the rate cap's queue is full.
    fn depart(&mut self, now: Instant, size: usize) -> Option<Instant> {
        let Some(kbps) = self.profile.rate_kbps else {
            return Some(now);
        };
        let start = self.sender_free_at.map_or(now, |free| free.max(now));
        if start - now > self.profile.queue {
            return None;
        }
        let bits = size as f64 * 8.0;
        let sending = Duration::from_secs_f64(bits / (f64::from(kbps.max(1)) * 1000.0));
        let done = start + sending;
        self.sender_free_at = Some(done);
        Some(done)
    }

    /// This datagram's one-way delay: `delay` ± uniform `jitter`, at least 0.
    fn delay(&mut self) -> Duration {
        let base = self.profile.delay.as_secs_f64();
        let spread = self.profile.jitter.as_secs_f64();
        if spread == 0.0 {
            return self.profile.delay;
        }
        let d = base + self.rng.random_range(-spread..=spread);
        Duration::from_secs_f64(d.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::GilbertElliott;

    /// Offers `n` datagrams 20 ms apart (numbered), draining as time goes;
    /// returns (number, arrival offset from the first offer) per delivery.
    fn run(link: &mut Link<u32>, n: u32) -> Vec<(u32, Duration)> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        let drain = |link: &mut Link<u32>, now: Instant, out: &mut Vec<(u32, Duration)>| {
            while let Some(x) = link.poll_output(now) {
                out.push((x, now - t0));
            }
        };
        for i in 0..n {
            let now = t0 + Duration::from_millis(20) * i;
            // Deliver what falls due before this offer, at its own time.
            while let Some(due) = link.poll_timeout().filter(|&d| d <= now) {
                drain(link, due, &mut out);
            }
            link.offer(now, 100, i);
        }
        while let Some(due) = link.poll_timeout() {
            drain(link, due, &mut out);
        }
        out
    }

    #[test]
    fn clean_link_delivers_everything_at_once_in_order() {
        let mut link = Link::new(Profile::clean(), 1);
        let out = run(&mut link, 50);
        let expect: Vec<_> = (0..50)
            .map(|i| (i, Duration::from_millis(20) * i))
            .collect();
        assert_eq!(out, expect);
        assert_eq!(link.stats().delivered, 50);
    }

    #[test]
    fn random_loss_loses_its_share_and_a_seed_replays_it() {
        let mut a = Link::new(Profile::random_loss(0.1), 7);
        let out = run(&mut a, 20_000);
        let lost = 20_000 - out.len();
        assert!((1_800..=2_200).contains(&lost), "lost {lost} of 20000");
        assert_eq!(a.stats().lost as usize, lost);
        let mut b = Link::new(Profile::random_loss(0.1), 7);
        assert_eq!(run(&mut b, 20_000), out, "same seed, same losses");
        let mut c = Link::new(Profile::random_loss(0.1), 8);
        assert_ne!(run(&mut c, 20_000), out, "another seed, other losses");
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_of_the_mean_length() {
        let ge = GilbertElliott::bursty(0.2, 4.0).expect("valid");
        let mut link = Link::new(
            Profile {
                loss: Loss::GilbertElliott(ge),
                ..Profile::default()
            },
            3,
        );
        let n = 50_000;
        let got: Vec<u32> = run(&mut link, n).into_iter().map(|(i, _)| i).collect();
        let mut delivered = vec![false; n as usize];
        for i in got {
            delivered[i as usize] = true;
        }
        let lost = delivered.iter().filter(|d| !**d).count() as f64 / f64::from(n);
        let bursts = delivered.windows(2).filter(|w| w[0] && !w[1]).count() as f64;
        let mean_burst = lost * f64::from(n) / bursts;
        assert!((0.18..=0.22).contains(&lost), "mean loss {lost}");
        assert!((3.5..=4.5).contains(&mean_burst), "mean burst {mean_burst}");
        // Random loss of the same mean has bursts of 1/(1-0.2) = 1.25.
    }

    #[test]
    fn delay_and_jitter_stay_in_their_band_and_keep_order_unless_asked() {
        let profile: Profile = "delay=50ms,jitter=30ms".parse().expect("valid");
        let mut link = Link::new(profile.clone(), 11);
        let out = run(&mut link, 2_000);
        assert_eq!(out.len(), 2_000);
        let mut spread = (Duration::MAX, Duration::ZERO);
        for (k, (i, at)) in out.iter().enumerate() {
            assert_eq!(*i as usize, k, "FIFO without reorder");
            let d = *at - Duration::from_millis(20) * *i;
            spread = (spread.0.min(d), spread.1.max(d));
        }
        // FIFO can hold a datagram behind a slower one, so only the lower
        // bound is the profile's; the upper one is the band's top.
        assert!(spread.0 >= Duration::from_millis(20), "{spread:?}");
        assert!(spread.1 <= Duration::from_millis(80), "{spread:?}");
        assert!(
            spread.1 - spread.0 >= Duration::from_millis(40),
            "{spread:?}"
        );

        let mut reordering = Link::new(
            Profile {
                reorder: true,
                ..profile
            },
            11,
        );
        let out = run(&mut reordering, 2_000);
        let swapped = out.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(swapped > 100, "{swapped} swaps");
        for (i, at) in &out {
            let d = *at - Duration::from_millis(20) * *i;
            assert!(d >= Duration::from_millis(20) && d <= Duration::from_millis(80));
        }
    }

    #[test]
    fn rate_cap_serialises_and_drops_beyond_its_queue() {
        // 100-byte datagrams every 20 ms are 40 kbit/s; a 20 kbit/s cap
        // sends one per 40 ms, so the queue grows 20 ms per datagram until
        // it holds 100 ms, then drops about every other one.
        let profile: Profile = "rate=20kbps,queue=100ms".parse().expect("valid");
        let mut link = Link::new(profile, 1);
        let out = run(&mut link, 500);
        let gaps: Vec<Duration> = out.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert!(
            gaps.iter()
                .all(|g| *g >= Duration::from_millis(40) - Duration::from_micros(1))
        );
        let s = link.stats();
        assert!((230..=270).contains(&s.queue_full), "{s:?}");
        assert_eq!(s.delivered + s.queue_full, 500);
        // Queueing delay is bounded by the queue plus one datagram's sending.
        for (i, at) in &out {
            assert!(*at - Duration::from_millis(20) * *i <= Duration::from_millis(141));
        }
    }

    #[test]
    fn outage_drops_what_is_offered_until_it_ends() {
        let mut link = Link::new("delay=30ms".parse().expect("valid"), 1);
        let t0 = Instant::now();
        link.offer(t0, 10, 0);
        link.outage(t0 + Duration::from_millis(10), Duration::from_millis(100));
        assert!(link.is_down(t0 + Duration::from_millis(10)));
        link.offer(t0 + Duration::from_millis(20), 10, 1);
        link.offer(t0 + Duration::from_millis(109), 10, 2);
        link.offer(t0 + Duration::from_millis(110), 10, 3);
        assert!(!link.is_down(t0 + Duration::from_millis(110)));
        // The one sent before the cut arrives in the middle of it.
        assert_eq!(link.poll_timeout(), Some(t0 + Duration::from_millis(30)));
        assert_eq!(link.poll_output(t0 + Duration::from_millis(29)), None);
        assert_eq!(link.poll_output(t0 + Duration::from_millis(30)), Some(0));
        assert_eq!(link.poll_output(t0 + Duration::from_millis(140)), Some(3));
        assert_eq!(link.poll_output(t0 + Duration::from_secs(1)), None);
        assert_eq!(link.stats().outage, 2);
    }
}
