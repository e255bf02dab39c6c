//! Fuzzing harnesses over the media logic, for the `cargo fuzz` targets in
//! `fuzz/` (feature `fuzz`) and for the tests that replay their committed
//! corpora and regressions. Each takes arbitrary bytes, never panics on any
//! of them, and asserts the invariants that hold for every input.

use std::{
    collections::{BTreeSet, HashSet},
    time::{Duration, Instant},
};

use crate::{
    JitterBuffer, JitterConfig, Playout, PushOutcome, RedPayload, RedReceiver, RedSender,
    TrackRewriter,
};

/// Reads a fuzzer's bytes as fixed-size fields (zeros once they run out).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// The SFU's RTP rewriter for one outgoing track fed arbitrary packets:
/// sources switching (a few SSRCs, so that switches back and stragglers
/// happen), any sequence numbers and timestamps, resumes, time passing.
///
/// Invariants: nothing panics; the first packet gets exactly the initial
/// sequence number and timestamp; no two forwarded packets share an
/// outgoing (extended) sequence number, so a listener never sees a
/// duplicate that is not one.
pub fn rewrite(data: &[u8]) {
    let mut b = Bytes(data);
    let (initial_seq, initial_ts) = (b.u16(), b.u32());
    let mut rw = TrackRewriter::new(48_000, initial_seq, initial_ts);
    let mut now = Instant::now();
    let mut out = HashSet::new();
    let mut first = true;
    while !b.is_empty() {
        let op = b.u8();
        now += Duration::from_millis(u64::from(op >> 4) * 10);
        if op & 0x0f == 0x0f {
            rw.resume();
            continue;
        }
        let ssrc = match op & 0x03 {
            3 => b.u32(),
            s => u32::from(s),
        };
        let (seq, ts, marker) = (b.u16(), b.u32(), op & 0x04 != 0);
        let Some(r) = rw.rewrite(now, ssrc, seq, ts, marker) else {
            continue;
        };
        if std::mem::take(&mut first) {
            assert_eq!((r.wire_seq(), r.timestamp), (initial_seq, initial_ts));
        }
        assert!(
            out.insert(r.seq),
            "outgoing sequence number {} forwarded twice",
            r.seq
        );
    }
}

/// The jitter buffer fed arbitrary packets at arbitrary times, popped at
/// arbitrary moments, with an arbitrary (sanitized) configuration.
///
/// Invariants: nothing panics; each accepted packet is played as a
/// [`Playout::Frame`] at most once and only accepted packets are played or
/// used for FEC; the buffer stays bounded; the target delay stays within
/// the configured bounds.
pub fn jitter(data: &[u8]) {
    let mut b = Bytes(data);
    let cfg = JitterConfig {
        frame_ms: u32::from(b.u8() % 60) + 1,
        clock_rate: 48_000,
        min_delay_ms: u32::from(b.u8()),
        max_delay_ms: u32::from(b.u16() % 1000),
        initial_delay_ms: u32::from(b.u8()) * 2,
        idle_after_ms: u32::from(b.u8()) * 4,
        cushion_ms: u32::from(b.u8() % 41),
        clean_cushion_ms: u32::from(b.u8() % 41),
    }
    .sanitized();
    let mut jb = JitterBuffer::new(cfg);
    let mut now = Instant::now();
    let mut accepted = BTreeSet::new();
    let mut played = BTreeSet::new();
    let mut id = 0u32;
    while !b.is_empty() {
        let op = b.u8();
        now += Duration::from_millis(u64::from(op >> 3));
        if op & 0x07 < 3 {
            // A pop: what to play for one slot.
            match jb.pop(now) {
                Playout::Frame(p) => {
                    let n = payload_id(&p);
                    assert!(accepted.contains(&n), "played packet {n}, never accepted");
                    assert!(played.insert(n), "packet {n} played twice");
                }
                Playout::Fec(p) => {
                    let n = payload_id(&p);
                    assert!(accepted.contains(&n), "FEC from packet {n}, never accepted");
                }
                Playout::Idle | Playout::Conceal | Playout::Silence => {}
            }
        } else {
            let (seq, ts, marker) = (b.u16(), b.u32(), op & 0x04 != 0);
            id += 1;
            if jb.push(now, seq, ts, marker, &id.to_le_bytes()) == PushOutcome::Accepted {
                accepted.insert(id);
            }
        }
        while jb.poll_event().is_some() {}
        let s = jb.stats();
        assert!(s.played <= s.packets, "{s:?}");
        assert!(jb.buffered_packets() <= crate::jitter::MAX_CAPACITY as usize + 1);
        assert!(
            (cfg.min_delay_ms..=cfg.max_delay_ms).contains(&s.target_delay_ms),
            "target {} ms outside {}..={} ms",
            s.target_delay_ms,
            cfg.min_delay_ms,
            cfg.max_delay_ms
        );
    }
}

/// RED (RFC 2198) fed arbitrary packets: each one parsed, unwrapped by a
/// receiver (arbitrary sequence numbers and timestamps, so gaps, reordering
/// and wraps), and its primary wrapped again by a sender.
///
/// Invariants: nothing panics; every block a parse yields lies inside the
/// packet; a receiver hands out the primary last and a recovered packet
/// only for a sequence number newer than any it handed out before (so
/// never one that arrived); what the sender makes parses back to the same
/// primary with only blocks of its own payload type, at whole frames.
pub fn red(data: &[u8]) {
    let mut b = Bytes(data);
    let levels = usize::from(b.u8() % 10);
    let mut rx = RedReceiver::new(960);
    let mut tx = RedSender::new(levels, 960);
    let mut newest: Option<i64> = None;
    let mut out = Vec::new();
    while !b.is_empty() {
        let (seq, ts, len) = (b.u16(), b.u32(), usize::from(b.u8()));
        let take = len.min(b.0.len());
        let (packet, rest) = b.0.split_at(take);
        b = Bytes(rest);
        let Ok(red) = RedPayload::parse(packet) else {
            continue;
        };
        let inside: usize = red.redundant().map(|x| x.payload.len()).sum::<usize>()
            + red.primary.payload.len()
            + red.redundant_count() * 4
            + 1;
        assert!(inside <= packet.len(), "blocks outside the packet");
        let mut handed = Vec::new();
        let _ = rx.unwrap(111, seq, ts, &red, |u| handed.push(u));
        if let Some(last) = handed.last() {
            assert!(!last.recovered && last.seq == seq, "the primary comes last");
        }
        let ext = |s: u16, around: Option<i64>| {
            around.map_or(i64::from(s), |h| crate::rewrite::extend_seq(s, h))
        };
        for u in &handed {
            let e = ext(u.seq, newest);
            if u.recovered {
                assert!(
                    newest.is_none_or(|n| e > n),
                    "recovered {} behind {newest:?}",
                    u.seq
                );
            }
            newest = Some(newest.map_or(e, |n| n.max(e)));
        }
        out.clear();
        tx.wrap(111, seq, ts, red.primary.payload, &mut out);
        let again = RedPayload::parse(&out).expect("the sender's RED parses");
        assert_eq!(again.primary.payload, red.primary.payload);
        assert!(again.redundant_count() <= levels);
        for x in again.redundant() {
            assert_eq!(x.pt, 111);
            assert!(
                x.ts_offset > 0 && x.ts_offset % 960 == 0,
                "offset {}",
                x.ts_offset
            );
        }
    }
}

fn payload_id(p: &[u8]) -> u32 {
    let bytes: [u8; 4] = p
        .try_into()
        .unwrap_or_else(|_| panic!("payload {p:?} is not one pushed"));
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use squawk_protocol::fuzz::replay;

    use super::*;

    #[test]
    fn rewrite_corpus_replays() {
        let n = replay("rewrite", rewrite);
        assert!(n >= 10, "the rewrite corpus has {n} inputs");
    }

    #[test]
    fn red_corpus_replays() {
        let n = replay("red", red);
        assert!(n >= 10, "the red corpus has {n} inputs");
    }

    #[test]
    fn jitter_corpus_replays() {
        let n = replay("jitter", jitter);
        assert!(n >= 10, "the jitter corpus has {n} inputs");
    }
}
