//! Closing the gaps that dropped packets leave in an RTP sequence.
//!
//! An SFU drops some packets of a talker's stream on purpose: padding-only
//! packets (RFC 3550 §5.1; Chromium sends some beside its RED audio for
//! bandwidth probing) carry no audio, and forwarding them would make every
//! listener play an empty frame. Dropping them without more would leave a
//! gap that each listener's jitter buffer counts and conceals as a loss.
//! [`SeqCompactor`] renumbers the rest so that the dropped numbers vanish:
//! a packet's outgoing number is its own minus the dropped numbers before
//! it, so a real loss still shows as a gap (the receiver's loss accounting
//! and RED recovery stay right) and reordering passes through.
//!
//! Sans-IO, bounded: dropped numbers are remembered for [`WINDOW`] packets.

use std::collections::VecDeque;

/// How far behind the newest packet (in packets) a dropped number is still
/// remembered: 512 packets, 10 s of 20 ms audio. An older packet is
/// renumbered as if every remembered drop came before it (the SFU's
/// rewriter drops packets that old anyway).
pub const WINDOW: i64 = 512;

/// Renumbers one RTP stream's sequence numbers around dropped packets.
#[derive(Debug, Clone, Default)]
pub struct SeqCompactor {
    /// Highest extended sequence number seen (dropped or kept).
    highest: Option<i64>,
    /// Dropped extended numbers within [`WINDOW`], ascending.
    dropped: VecDeque<i64>,
    /// Dropped numbers forgotten (older than the window).
    forgotten: i64,
    /// Highest extended number handed out by [`SeqCompactor::map`].
    highest_kept: Option<i64>,
}

impl SeqCompactor {
    /// A compactor that has seen nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn extend(&mut self, seq: u16) -> i64 {
        let ext = self
            .highest
            .map_or(i64::from(seq), |h| crate::rewrite::extend_seq(seq, h));
        let highest = self.highest.map_or(ext, |h| h.max(ext));
        self.highest = Some(highest);
        while self.dropped.front().is_some_and(|&d| d < highest - WINDOW) {
            self.dropped.pop_front();
            self.forgotten += 1;
        }
        ext
    }

    /// The packet numbered `seq` is dropped: later packets close its gap.
    /// One that arrives after a later packet was already renumbered leaves
    /// its gap (closing it then would give two packets one number).
    pub fn drop_packet(&mut self, seq: u16) {
        let ext = self.extend(seq);
        if self.highest_kept.is_some_and(|k| ext < k) {
            return;
        }
        if let Err(at) = self.dropped.binary_search(&ext) {
            self.dropped.insert(at, ext);
        }
    }

    /// The outgoing number of the kept packet numbered `seq`.
    pub fn map(&mut self, seq: u16) -> u16 {
        let ext = self.extend(seq);
        self.highest_kept = Some(self.highest_kept.map_or(ext, |k| k.max(ext)));
        let before = self.dropped.partition_point(|&d| d < ext) as i64;
        (ext - self.forgotten - before) as u16
    }

    /// Whether nothing was ever dropped (every number maps to itself).
    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.dropped.is_empty() && self.forgotten == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_numbers_vanish_and_losses_stay_gaps() {
        let mut c = SeqCompactor::new();
        assert_eq!(c.map(100), 100);
        assert_eq!(c.map(101), 101);
        c.drop_packet(102);
        assert_eq!(c.map(103), 102);
        // 104 lost: still a gap after renumbering.
        assert_eq!(c.map(105), 104);
        c.drop_packet(106);
        c.drop_packet(107);
        assert_eq!(c.map(108), 105);
        assert!(!c.is_identity());
    }

    #[test]
    fn reordered_packets_keep_their_place() {
        let mut c = SeqCompactor::new();
        c.map(10);
        c.drop_packet(12);
        // 13 arrives before 11: 11 is before the dropped number, 13 after.
        assert_eq!(c.map(13), 12);
        assert_eq!(c.map(11), 11);
        // A padding packet that arrives after a later packet was renumbered
        // leaves its gap: no two packets share a number.
        assert_eq!(c.map(15), 14);
        c.drop_packet(14);
        assert_eq!(c.map(16), 15);
    }

    #[test]
    fn numbers_wrap_and_old_drops_are_forgotten_but_still_counted() {
        let mut c = SeqCompactor::new();
        c.map(65_534);
        c.drop_packet(65_535);
        assert_eq!(c.map(0), 65_535);
        assert_eq!(c.map(1), 0);
        let mut seq = 1u16;
        for _ in 0..2000 {
            seq = seq.wrapping_add(1);
            c.map(seq);
        }
        assert!(c.dropped.is_empty(), "bounded memory");
        assert_eq!(c.map(seq.wrapping_add(1)), seq);
    }

    #[test]
    fn without_drops_it_is_the_identity() {
        let mut c = SeqCompactor::new();
        for s in [5u16, 7, 6, 65_535, 9] {
            assert_eq!(c.map(s), s);
        }
        assert!(c.is_identity());
    }
}
