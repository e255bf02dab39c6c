//! Audio sent before Floor Granted, held by the SFU (pure: packets and time
//! in, packets out).
//!
//! A client starts sending at the press of its talk key, at the same time
//! as its Floor Request (3GPP TS 24.380 §6.2.4.3); the media (UDP) and the
//! request (the signaling WebSocket) travel separately, and the grant comes
//! back a round trip later. Packets that arrive before the floor is routed
//! to their sender are held here instead of dropped; when the grant answers
//! the request at once, the worker forwards what was held first, so the
//! listeners hear the transmission from its first syllable. Nothing held is
//! forwarded on a Floor Deny, while queued, or on a grant out of the queue
//! (the talker said something else meanwhile): it ages out.
//!
//! Bounds: at most [`HOLD_PACKETS`] per sender (the oldest go first), only
//! packets that arrived within [`HOLD_WINDOW`] of the grant, and only the
//! last run of them without a [`RUN_GAP`] pause.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use squawk_protocol::ClientId;

use super::FwdPacket;

/// Longest time a packet waits for its sender's grant: a 1 s round trip,
/// more than a satellite hop (~600 ms) or a congested mobile link.
pub(crate) const HOLD_WINDOW: Duration = Duration::from_millis(1000);

/// Most packets held per sender: [`HOLD_WINDOW`] of 20 ms frames.
pub(crate) const HOLD_PACKETS: usize = 50;

/// A pause in a sender's packets this long ends a run: packets before it
/// belong to an earlier press. A talker sends a packet every 20 ms (60 ms
/// at most, Opus's longest frame) until it stops.
pub(crate) const RUN_GAP: Duration = Duration::from_millis(200);

/// Per sender, its packets received while it held no floor, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Held {
    senders: HashMap<ClientId, VecDeque<FwdPacket>>,
}

impl Held {
    /// Holds `pkt` from `sender` (which holds no floor). Returns how many
    /// packets this dropped: the oldest, once [`HOLD_PACKETS`] are held, and
    /// any older than [`HOLD_WINDOW`] before `pkt.arrival`.
    pub(crate) fn hold(&mut self, sender: ClientId, pkt: FwdPacket) -> u64 {
        let q = self.senders.entry(sender).or_default();
        let mut dropped = 0;
        while q.front().is_some_and(|p| {
            q.len() >= HOLD_PACKETS
                || pkt.arrival.saturating_duration_since(p.arrival) > HOLD_WINDOW
        }) {
            q.pop_front();
            dropped += 1;
        }
        q.push_back(pkt);
        dropped
    }

    /// The floor was granted to `sender` in answer to its request: its held
    /// packets that arrived within [`HOLD_WINDOW`] before `now`, oldest
    /// first, appended to `out`. Returns how many were too old (dropped).
    /// Nothing stays held for `sender`.
    pub(crate) fn release(
        &mut self,
        sender: ClientId,
        now: Instant,
        out: &mut Vec<(ClientId, FwdPacket)>,
    ) -> u64 {
        let Some(q) = self.senders.remove(&sender) else {
            return 0;
        };
        let (held, start) = (q.len(), out.len());
        // The last run of packets arriving without a pause: what came
        // before a pause (the end of an earlier transmission still in
        // flight when its floor ended) is not this one's.
        let run = q
            .iter()
            .zip(q.iter().skip(1))
            .rposition(|(a, b)| b.arrival.saturating_duration_since(a.arrival) > RUN_GAP)
            .map_or(0, |i| i + 1);
        out.extend(
            q.into_iter()
                .skip(run)
                .filter(|p| now.saturating_duration_since(p.arrival) <= HOLD_WINDOW)
                .map(|p| (sender, p)),
        );
        (held - (out.len() - start)) as u64
    }

    /// Drops what `sender` has held (it left, lost the floor, or its grant
    /// did not answer a request). Returns how many.
    pub(crate) fn forget(&mut self, sender: ClientId) -> u64 {
        self.senders.remove(&sender).map_or(0, |q| q.len() as u64)
    }

    /// Packets held for `sender`.
    #[cfg(test)]
    pub(crate) fn len(&self, sender: ClientId) -> usize {
        self.senders.get(&sender).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn pkt(seq: u16, arrival: Instant) -> FwdPacket {
        FwdPacket {
            ssrc: 1,
            seq,
            timestamp: u32::from(seq) * 960,
            marker: false,
            payload: Arc::from(&[seq as u8][..]),
            arrival,
            audio_level: None,
            voice_activity: None,
            red: None,
        }
    }

    fn seqs(out: &[(ClientId, FwdPacket)]) -> Vec<u16> {
        out.iter().map(|(_, p)| p.seq).collect()
    }

    /// What arrived before the grant comes out in order, once.
    #[test]
    fn a_grant_releases_the_held_packets_in_order_once() {
        let t0 = Instant::now();
        let mut h = Held::default();
        for i in 0..5 {
            assert_eq!(
                h.hold(7, pkt(i, t0 + Duration::from_millis(20 * u64::from(i)))),
                0
            );
        }
        h.hold(8, pkt(100, t0));
        let mut out = Vec::new();
        assert_eq!(h.release(7, t0 + Duration::from_millis(100), &mut out), 0);
        assert_eq!(seqs(&out), [0, 1, 2, 3, 4]);
        assert!(out.iter().all(|(c, _)| *c == 7));
        out.clear();
        assert_eq!(h.release(7, t0 + Duration::from_millis(120), &mut out), 0);
        assert!(out.is_empty(), "released once");
        assert_eq!(h.len(8), 1, "another sender's packets stay held");
    }

    /// A sender that keeps sending without a floor holds at most
    /// HOLD_PACKETS, the newest.
    #[test]
    fn holding_is_bounded_by_count() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut dropped = 0;
        for i in 0..(HOLD_PACKETS as u16 + 30) {
            dropped += h.hold(7, pkt(i, t0));
        }
        assert_eq!(dropped, 30);
        assert_eq!(h.len(7), HOLD_PACKETS);
        let mut out = Vec::new();
        h.release(7, t0, &mut out);
        assert_eq!(out.first().map(|(_, p)| p.seq), Some(30));
        assert_eq!(
            out.last().map(|(_, p)| p.seq),
            Some(HOLD_PACKETS as u16 + 29)
        );
    }

    /// Packets older than the window are not forwarded: neither those that
    /// aged while others arrived nor those that aged waiting for the grant.
    #[test]
    fn holding_is_bounded_by_age() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut h = Held::default();
        h.hold(7, pkt(0, ms(0)));
        h.hold(7, pkt(1, ms(500)));
        assert_eq!(h.hold(7, pkt(2, ms(1200))), 1, "seq 0 is 1.2 s older");
        let mut out = Vec::new();
        assert_eq!(h.release(7, ms(1600), &mut out), 1, "seq 1 waited 1.1 s");
        assert_eq!(seqs(&out), [2]);
    }

    /// Packets before a pause (an earlier press's end, still in flight when
    /// its floor ended) are not forwarded with the next grant.
    #[test]
    fn only_the_last_run_before_the_grant_is_released() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut h = Held::default();
        h.hold(7, pkt(0, ms(0)));
        h.hold(7, pkt(1, ms(20)));
        h.hold(7, pkt(2, ms(400)));
        h.hold(7, pkt(3, ms(420)));
        h.hold(7, pkt(4, ms(440)));
        let mut out = vec![(9, pkt(99, ms(0)))];
        assert_eq!(h.release(7, ms(450), &mut out), 2);
        assert_eq!(seqs(&out), [99, 2, 3, 4], "appended after what was there");
    }

    /// A deny, a queue or a grant from the queue forgets what was held.
    #[test]
    fn forget_drops_everything_held() {
        let t0 = Instant::now();
        let mut h = Held::default();
        h.hold(7, pkt(0, t0));
        h.hold(7, pkt(1, t0));
        assert_eq!(h.forget(7), 2);
        assert_eq!(h.forget(7), 0);
        let mut out = Vec::new();
        h.release(7, t0, &mut out);
        assert!(out.is_empty());
    }
}
