//! Continuity-preserving RTP header rewriting for one outgoing SFU track.
//!
//! The SFU forwards the Opus RTP of whoever holds a channel's floor to each
//! listener over a single outgoing track (one SSRC, one sequence-number space,
//! one timestamp space). Every talker has its own SSRC, random initial sequence
//! number and random initial timestamp (RFC 3550 §5.1), so the raw headers
//! jump arbitrarily at every change of talker. [`TrackRewriter`] maps the
//! headers of whichever source is current onto one continuous outgoing stream:
//!
//! * Within one source the sequence and timestamp offsets are constant, so
//!   losses (gaps), reordering and timestamp spacing (including DTX gaps) pass
//!   through unchanged.
//! * On a change of source the outgoing sequence number continues at
//!   `highest + 1` (the listener sees no false loss) and the outgoing
//!   timestamp advances by the wall time elapsed since the last forwarded
//!   packet (at least one 20 ms frame), with the marker bit set to flag the
//!   start of a talk-spurt (RFC 3551 §4.1).
//!
//! The rewriter holds no clock: arrival time is passed in as an [`Instant`].

use std::time::{Duration, Instant};

/// A same-SSRC sequence jump larger than this many packets (forward or back)
/// is treated as a restart of the source (a new source with the same SSRC).
/// 1000 packets is 20 s of 20 ms Opus frames. Compare `MAX_DROPOUT` in
/// RFC 3550 §A.1.
pub const MAX_SEQ_JUMP: i64 = 1000;

/// Number of most recent sequence numbers per source remembered for duplicate
/// detection (128 packets = 2.56 s at 20 ms per packet). A packet older than
/// this relative to the source's highest sequence number is dropped, because
/// it can no longer be told apart from a duplicate and is far too late to be
/// useful to the listener anyway.
pub const REPLAY_WINDOW: u64 = 128;

/// After a switch away from a source, packets of that source that are newer
/// than anything forwarded from it but arrive within this grace period are
/// still treated as stragglers (its tail was in flight) rather than as the
/// source taking the floor again.
pub const STRAGGLER_GRACE: Duration = Duration::from_millis(100);

/// How far (in packets) beyond a retired source's highest sequence number a
/// packet may be and still count as a straggler during [`STRAGGLER_GRACE`].
const STRAGGLER_AHEAD: i16 = 50;

/// How many previous sources are remembered for straggler detection.
const MAX_RETIRED: usize = 8;

/// Minimum timestamp advance on a change of source: one frame, in
/// milliseconds (one 20 ms Opus frame = 960 units at 48 kHz).
const MIN_ADVANCE_MS: u64 = 20;

/// The rewritten header fields of one forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Outgoing sequence number, extended to 64 bits with rollovers counted
    /// as in RFC 3550 §A.1 (the wire value is the low 16 bits, see
    /// [`Rewritten::wire_seq`]). Starts at the `initial_seq` given to
    /// [`TrackRewriter::new`].
    pub seq: u64,
    /// Outgoing RTP timestamp in units of the clock rate given to
    /// [`TrackRewriter::new`] (48 kHz for Opus), wrapping at 2^32.
    pub timestamp: u32,
    /// Outgoing RTP marker bit: `true` on the first packet of a new source
    /// (start of a talk-spurt, RFC 3551 §4.1), otherwise the incoming marker.
    pub marker: bool,
}

impl Rewritten {
    /// The 16-bit sequence number to put on the wire (`seq` modulo 2^16).
    #[must_use]
    pub fn wire_seq(&self) -> u16 {
        (self.seq & 0xFFFF) as u16
    }
}

/// Rewrites RTP sequence numbers and timestamps from a succession of sources
/// (talkers) into one continuous outgoing stream. One instance per outgoing
/// track, i.e. per channel per listener. Sans-IO: no clock, no threads.
#[derive(Debug, Clone)]
pub struct TrackRewriter {
    clock_rate: u32,
    state: OutState,
    /// Sources switched away from, oldest first, at most [`MAX_RETIRED`].
    retired: Vec<Retired>,
    /// Set by [`TrackRewriter::resume`]: the next packet starts afresh.
    resync: bool,
}

/// Whether anything has been forwarded yet.
#[derive(Debug, Clone)]
enum OutState {
    /// Nothing forwarded yet: the first packet gets exactly these values.
    Fresh { initial_seq: u16, initial_ts: u32 },
    /// A source is current.
    Forwarding { source: Source, out: OutPosition },
}

/// Where the outgoing stream stands, across sources.
#[derive(Debug, Clone, Copy)]
struct OutPosition {
    /// Highest extended outgoing sequence number forwarded so far.
    highest_seq: u64,
    /// The newest (wrap-aware) outgoing timestamp forwarded so far.
    newest_ts: u32,
    /// Arrival time of the packet that carried `newest_ts`.
    newest_at: Instant,
}

/// The current source and its constant offsets.
#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    /// Extended incoming sequence number of this source's first packet.
    first_in: i64,
    /// Highest extended incoming sequence number seen from this source.
    highest_in: i64,
    /// Outgoing extended sequence number given to `first_in`.
    first_out: u64,
    /// Added (mod 2^32) to incoming timestamps.
    ts_offset: u32,
    /// Bit `i` set: incoming extended seq `highest_in - i` was forwarded.
    seen: u128,
}

/// A source that was switched away from.
#[derive(Debug, Clone, Copy)]
struct Retired {
    ssrc: u32,
    /// Its highest incoming 16-bit sequence number.
    highest_seq: u16,
    /// When it stopped being current.
    retired_at: Instant,
}

impl TrackRewriter {
    /// Creates a rewriter for one outgoing track.
    ///
    /// `clock_rate` is the RTP clock rate in Hz (48_000 for Opus, RFC 7587
    /// §4.1); `initial_seq` and `initial_ts` are the random starting sequence
    /// number and RTP timestamp of the outgoing stream (RFC 3550 §5.1). The
    /// first forwarded packet gets exactly these values.
    #[must_use]
    pub fn new(clock_rate: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            state: OutState::Fresh {
                initial_seq,
                initial_ts,
            },
            retired: Vec::new(),
            resync: false,
        }
    }

    /// Rewrites one incoming packet from source `ssrc` with its 16-bit
    /// sequence number `seq`, RTP `timestamp` (clock-rate units) and marker
    /// bit, arriving at `now`.
    ///
    /// Returns `None` when the packet must be dropped:
    /// * a duplicate of a packet already forwarded from the current source;
    /// * a straggler older than the current source's first forwarded packet
    ///   (its outgoing number would collide with the previous source's);
    /// * older than [`REPLAY_WINDOW`] packets behind the current source's
    ///   highest sequence number;
    /// * a late packet from a previous source after a switch: not newer than
    ///   the highest forwarded from that source, or only slightly newer and
    ///   within [`STRAGGLER_GRACE`] of the switch.
    ///
    /// A packet from any other SSRC, or from the current SSRC with a sequence
    /// jump beyond [`MAX_SEQ_JUMP`], starts a new source.
    pub fn rewrite(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        marker: bool,
    ) -> Option<Rewritten> {
        if std::mem::take(&mut self.resync) && matches!(self.state, OutState::Forwarding { .. }) {
            let (next_out, out_ts) = self.switch_position(now);
            return Some(self.start_source(now, ssrc, seq, timestamp, next_out, out_ts));
        }
        match &mut self.state {
            OutState::Fresh {
                initial_seq,
                initial_ts,
            } => {
                let (first_out, out_ts) = (u64::from(*initial_seq), *initial_ts);
                Some(self.start_source(now, ssrc, seq, timestamp, first_out, out_ts))
            }
            OutState::Forwarding { source, out } => {
                if source.ssrc == ssrc {
                    let ext = extend_seq(seq, source.highest_in);
                    if (ext - source.highest_in).abs() <= MAX_SEQ_JUMP {
                        return forward(source, out, now, ext, timestamp, marker);
                    }
                }
                // A different SSRC, or the same SSRC restarted.
                if self.is_straggler(now, ssrc, seq) {
                    return None;
                }
                let (next_out, out_ts) = self.switch_position(now);
                Some(self.start_source(now, ssrc, seq, timestamp, next_out, out_ts))
            }
        }
    }

    /// The listener skipped packets on purpose (its downlink was paused,
    /// e.g. muted): the next packet, whatever its source, continues the
    /// outgoing stream as a change of source does (sequence number at
    /// `highest + 1`, timestamp advanced by the wall time, marker set), so
    /// the listener sees no loss for what it chose not to receive.
    pub fn resume(&mut self) {
        self.resync = true;
    }

    /// Outgoing sequence number and timestamp for the first packet of a new
    /// source arriving at `now`.
    fn switch_position(&self, now: Instant) -> (u64, u32) {
        match &self.state {
            OutState::Fresh {
                initial_seq,
                initial_ts,
            } => (u64::from(*initial_seq), *initial_ts),
            OutState::Forwarding { out, .. } => {
                let elapsed = now.saturating_duration_since(out.newest_at);
                let advance = duration_to_units(elapsed, self.clock_rate).max(duration_to_units(
                    Duration::from_millis(MIN_ADVANCE_MS),
                    self.clock_rate,
                ));
                (
                    out.highest_seq.saturating_add(1),
                    out.newest_ts.wrapping_add(advance),
                )
            }
        }
    }

    /// Makes `ssrc` the current source, its packet (`seq`, `timestamp`)
    /// becoming outgoing (`first_out`, `out_ts`) with the marker set.
    fn start_source(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        first_out: u64,
        out_ts: u32,
    ) -> Rewritten {
        if let OutState::Forwarding { source, .. } = &self.state {
            let old = Retired {
                ssrc: source.ssrc,
                highest_seq: (source.highest_in & 0xFFFF) as u16,
                retired_at: now,
            };
            self.retired.retain(|r| r.ssrc != old.ssrc);
            self.retired.push(old);
        }
        // A source that takes over again is current, not retired (a restarted
        // source keeps its previous incarnation as the retired record).
        if let OutState::Forwarding { source, .. } = &self.state
            && source.ssrc != ssrc
        {
            self.retired.retain(|r| r.ssrc != ssrc);
        }
        if self.retired.len() > MAX_RETIRED {
            let excess = self.retired.len() - MAX_RETIRED;
            self.retired.drain(..excess);
        }
        let first_in = i64::from(seq);
        self.state = OutState::Forwarding {
            source: Source {
                ssrc,
                first_in,
                highest_in: first_in,
                first_out,
                ts_offset: out_ts.wrapping_sub(timestamp),
                seen: 1,
            },
            out: OutPosition {
                highest_seq: first_out,
                newest_ts: out_ts,
                newest_at: now,
            },
        };
        Rewritten {
            seq: first_out,
            timestamp: out_ts,
            marker: true,
        }
    }

    /// Whether a packet from `ssrc` that does not belong to the current
    /// source is a late packet of a retired source.
    fn is_straggler(&self, now: Instant, ssrc: u32, seq: u16) -> bool {
        let Some(r) = self.retired.iter().find(|r| r.ssrc == ssrc) else {
            return false;
        };
        let ahead = seq.wrapping_sub(r.highest_seq) as i16;
        let not_newer = ahead <= 0 && i64::from(ahead) > -MAX_SEQ_JUMP;
        let in_grace = now.saturating_duration_since(r.retired_at) < STRAGGLER_GRACE
            && ahead > 0
            && ahead <= STRAGGLER_AHEAD;
        not_newer || in_grace
    }
}

/// Forwards a packet of the current source (extended incoming seq `ext`).
fn forward(
    source: &mut Source,
    out: &mut OutPosition,
    now: Instant,
    ext: i64,
    timestamp: u32,
    marker: bool,
) -> Option<Rewritten> {
    if ext < source.first_in {
        return None;
    }
    if ext > source.highest_in {
        let shift = ext - source.highest_in;
        source.seen = if shift >= REPLAY_WINDOW as i64 {
            0
        } else {
            source.seen << shift
        };
        source.seen |= 1;
        source.highest_in = ext;
    } else {
        let back = (source.highest_in - ext) as u64;
        if back >= REPLAY_WINDOW || source.seen & (1u128 << back) != 0 {
            return None;
        }
        source.seen |= 1u128 << back;
    }
    let out_seq = source
        .first_out
        .saturating_add((ext - source.first_in) as u64);
    let out_ts = timestamp.wrapping_add(source.ts_offset);
    out.highest_seq = out.highest_seq.max(out_seq);
    if (out_ts.wrapping_sub(out.newest_ts) as i32) > 0 {
        out.newest_ts = out_ts;
        out.newest_at = now;
    }
    Some(Rewritten {
        seq: out_seq,
        timestamp: out_ts,
        marker,
    })
}

/// Extends a 16-bit sequence number to the value nearest `reference`
/// (RFC 3550 §A.1 style rollover handling).
/// `seq` extended to 64 bits as the value nearest `reference` (an extended
/// sequence number), RFC 3550 §A.1: within ±2^15 of it.
pub(crate) fn extend_seq(seq: u16, reference: i64) -> i64 {
    let delta = seq.wrapping_sub((reference & 0xFFFF) as u16) as i16;
    reference + i64::from(delta)
}

/// Converts a wall-clock duration into RTP clock units at `clock_rate` Hz,
/// capped at 2^31 - 1 so the result still reads as a forward step.
fn duration_to_units(d: Duration, clock_rate: u32) -> u32 {
    let units = d.as_nanos().saturating_mul(u128::from(clock_rate)) / 1_000_000_000;
    u32::try_from(units.min(i32::MAX as u128)).unwrap_or(i32::MAX as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0xAAAA_0001;
    const B: u32 = 0xBBBB_0002;

    fn ms(k: u64) -> Duration {
        Duration::from_millis(k)
    }

    /// Feeds `n` consecutive 20 ms packets from `ssrc` starting at `seq`,
    /// `ts`, arriving every 20 ms from `start`; returns the outputs.
    fn feed(
        rw: &mut TrackRewriter,
        start: Instant,
        ssrc: u32,
        seq: u16,
        ts: u32,
        n: u16,
    ) -> Vec<Rewritten> {
        (0..n)
            .filter_map(|i| {
                rw.rewrite(
                    start + ms(20 * u64::from(i)),
                    ssrc,
                    seq.wrapping_add(i),
                    ts.wrapping_add(960 * u32::from(i)),
                    false,
                )
            })
            .collect()
    }

    #[test]
    fn first_packet_gets_initial_values_and_marker() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 1000, 5_000_000);
        let out = rw.rewrite(t0, A, 31_000, 123, false);
        assert_eq!(
            out,
            Some(Rewritten {
                seq: 1000,
                timestamp: 5_000_000,
                marker: true
            })
        );
        let next = rw.rewrite(t0 + ms(20), A, 31_001, 123 + 960, false);
        assert_eq!(
            next,
            Some(Rewritten {
                seq: 1001,
                timestamp: 5_000_960,
                marker: false
            })
        );
    }

    #[test]
    fn a_resumed_listener_sees_no_gap_for_what_it_skipped() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 100, 10_000);
        assert_eq!(feed(&mut rw, t0, A, 5_000, 0, 10).len(), 10);
        // Paused for 75 packets (1.5 s), then resumed: seq 5085 follows 109.
        rw.resume();
        let at = t0 + ms(20 * 85);
        let first = rw.rewrite(at, A, 5_085, 960 * 85, false).unwrap();
        assert_eq!((first.seq, first.marker), (110, true));
        assert_eq!(
            first.timestamp,
            10_000 + 960 * 9 + 960 * 76,
            "advanced by the wall time"
        );
        let next = rw.rewrite(at + ms(20), A, 5_086, 960 * 86, false).unwrap();
        assert_eq!((next.seq, next.marker), (111, false));
        assert_eq!(next.timestamp, first.timestamp + 960);
        // Without a resume the same pause is a 75-packet gap.
        let mut plain = TrackRewriter::new(48_000, 100, 10_000);
        feed(&mut plain, t0, A, 5_000, 0, 10);
        assert_eq!(
            plain.rewrite(at, A, 5_085, 960 * 85, false).unwrap().seq,
            185
        );
    }

    #[test]
    fn continuity_across_talker_changes_a_b_a() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 100, 10_000);
        let a1 = feed(&mut rw, t0, A, 40_000, 7_777_777, 10);
        assert_eq!(a1.len(), 10);
        assert_eq!(a1[9].seq, 109);
        assert_eq!(a1[9].timestamp, 10_000 + 9 * 960);

        // B starts 500 ms after A's last packet (A's last at t0+180ms).
        let b_start = t0 + ms(180 + 500);
        let b = feed(&mut rw, b_start, B, 3, 99, 5);
        assert_eq!(b.len(), 5);
        assert_eq!(b[0].seq, 110, "no false loss across the switch");
        assert_eq!(b[0].timestamp, 10_000 + 9 * 960 + 24_000, "500 ms later");
        assert!(b[0].marker);
        for (i, p) in b.iter().enumerate().skip(1) {
            assert_eq!(p.seq, 110 + i as u64);
            assert_eq!(p.timestamp, b[0].timestamp + 960 * i as u32);
            assert!(!p.marker);
        }

        // A takes the floor again, continuing its own numbering 1 s later.
        let a_again = b_start + ms(80 + 1000);
        let a2 = feed(&mut rw, a_again, A, 40_010, 7_777_777 + 200_000, 3);
        assert_eq!(a2.len(), 3);
        assert_eq!(a2[0].seq, 115);
        assert_eq!(a2[0].timestamp, b[4].timestamp + 48_000);
        assert!(a2[0].marker);
        assert_eq!(a2[2].seq, 117);
    }

    #[test]
    fn gaps_are_preserved_within_a_source() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 0);
        let first = rw.rewrite(t0, A, 500, 1000, false);
        let after_gap = rw.rewrite(t0 + ms(60), A, 503, 1000 + 3 * 960, false);
        assert_eq!(first.map(|r| r.seq), Some(0));
        assert_eq!(after_gap.map(|r| (r.seq, r.timestamp)), Some((3, 3 * 960)));
    }

    #[test]
    fn reordering_is_preserved_and_late_fill_in_accepted() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 10, 0);
        let order = [0u16, 2, 1, 4, 3];
        let out: Vec<_> = order
            .iter()
            .enumerate()
            .filter_map(|(i, &s)| {
                rw.rewrite(
                    t0 + ms(20 * i as u64),
                    A,
                    200 + s,
                    u32::from(s) * 960,
                    false,
                )
            })
            .map(|r| (r.seq, r.timestamp))
            .collect();
        assert_eq!(
            out,
            vec![(10, 0), (12, 1920), (11, 960), (14, 3840), (13, 2880)]
        );
    }

    #[test]
    fn seq_and_timestamp_wraparound() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 65_534, u32::MAX - 960);
        // Incoming also wraps: seq 65533.., ts near u32::MAX.
        let out = feed(&mut rw, t0, A, 65_533, u32::MAX - 1000, 6);
        let seqs: Vec<u64> = out.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![65_534, 65_535, 65_536, 65_537, 65_538, 65_539]);
        let wire: Vec<u16> = out.iter().map(Rewritten::wire_seq).collect();
        assert_eq!(wire, vec![65_534, 65_535, 0, 1, 2, 3]);
        for w in out.windows(2) {
            assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 960);
        }
        assert!(out[2].timestamp < out[0].timestamp, "outgoing ts wrapped");
    }

    #[test]
    fn stragglers_from_previous_source_are_dropped() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 0);
        feed(&mut rw, t0, A, 100, 0, 5); // A: 100..=104
        let b0 = rw.rewrite(t0 + ms(200), B, 7, 55, false);
        assert_eq!(b0.map(|r| r.seq), Some(5));
        // Old A packet (already-forwarded range) arrives late: dropped.
        assert_eq!(rw.rewrite(t0 + ms(210), A, 103, 3 * 960, false), None);
        // A's tail packet never seen before but arriving just after the
        // switch: still a straggler.
        assert_eq!(rw.rewrite(t0 + ms(220), A, 105, 5 * 960, false), None);
        // B continues unaffected.
        let b1 = rw.rewrite(t0 + ms(220), B, 8, 55 + 960, false);
        assert_eq!(b1.map(|r| (r.seq, r.marker)), Some((6, false)));
    }

    #[test]
    fn straggler_older_than_current_source_start_is_dropped() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 0);
        feed(&mut rw, t0, A, 100, 0, 3);
        assert_eq!(
            rw.rewrite(t0 + ms(100), B, 51, 960, false).map(|r| r.seq),
            Some(3)
        );
        // B's seq 50 was overtaken by 51 and would collide with A's numbers.
        assert_eq!(rw.rewrite(t0 + ms(105), B, 50, 0, false), None);
    }

    #[test]
    fn duplicates_are_dropped() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 0);
        assert!(rw.rewrite(t0, A, 9, 0, false).is_some());
        assert!(rw.rewrite(t0 + ms(20), A, 10, 960, false).is_some());
        assert_eq!(rw.rewrite(t0 + ms(21), A, 10, 960, false), None);
        assert_eq!(rw.rewrite(t0 + ms(22), A, 9, 0, false), None);
        // A reordered, never-seen packet in between is still accepted.
        assert!(rw.rewrite(t0 + ms(40), A, 12, 2880, false).is_some());
        assert_eq!(
            rw.rewrite(t0 + ms(41), A, 11, 1920, false).map(|r| r.seq),
            Some(2)
        );
        assert_eq!(rw.rewrite(t0 + ms(42), A, 11, 1920, false), None);
    }

    #[test]
    fn timestamp_advance_follows_elapsed_time_with_one_frame_minimum() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 1_000);
        rw.rewrite(t0, A, 1, 0, false);
        // Switch 1 ms later: the minimum advance of one 20 ms frame applies.
        let b = rw.rewrite(t0 + ms(1), B, 1, 0, false);
        assert_eq!(b.map(|r| r.timestamp), Some(1_000 + 960));
        // Switch 2.5 s after B's packet: 2.5 s * 48 kHz = 120_000 units.
        let a = rw.rewrite(t0 + ms(2_501), A, 2, 960, false);
        assert_eq!(
            a.map(|r| (r.seq, r.timestamp, r.marker)),
            Some((2, 1_960 + 120_000, true))
        );
    }

    #[test]
    fn same_ssrc_restart_is_a_new_source() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 0);
        feed(&mut rw, t0, A, 100, 0, 3); // out 0..=2
        let restarted = rw.rewrite(t0 + ms(500), A, 30_000, 4_000_000, false);
        assert_eq!(
            restarted.map(|r| (r.seq, r.timestamp, r.marker)),
            Some((3, 2 * 960 + 22_080, true))
        );
        // A packet of the old incarnation is a straggler, not another restart.
        assert_eq!(rw.rewrite(t0 + ms(510), A, 101, 960, false), None);
        let next = rw.rewrite(t0 + ms(520), A, 30_001, 4_000_960, false);
        assert_eq!(next.map(|r| r.seq), Some(4));
    }

    #[test]
    fn packets_beyond_replay_window_are_dropped() {
        let t0 = Instant::now();
        let mut rw = TrackRewriter::new(48_000, 0, 0);
        rw.rewrite(t0, A, 0, 0, false);
        rw.rewrite(t0 + ms(1), A, 300, 300 * 960, false);
        // 1 is 299 behind the highest: older than the 128-packet window.
        assert_eq!(rw.rewrite(t0 + ms(2), A, 1, 960, false), None);
        // 250 is within the window and never seen: forwarded at its place.
        assert_eq!(
            rw.rewrite(t0 + ms(3), A, 250, 250 * 960, false)
                .map(|r| r.seq),
            Some(250)
        );
    }
}
