//! RFC 2198 redundant audio data (RED) for Opus RTP, as libwebrtc negotiates
//! it (`a=rtpmap:63 red/48000/2`, `a=fmtp:63 111/111`).
//!
//! A RED payload carries the current (primary) Opus frame and copies of the
//! frames sent just before it (the redundant blocks), so a burst of up to
//! `levels` lost packets is repaired from the next packet that arrives. It is
//! the remedy for the loss Opus in-band FEC cannot cover: LBRR repairs only
//! the one packet before the one that arrives (RFC 6716 §2.1.7), at a lower
//! quality, while RED copies the frames themselves.
//!
//! # Wire format (RFC 2198 §3)
//!
//! ```text
//! redundant header (4 bytes, F=1):  |1| block PT (7) | timestamp offset (14) | length (10) |
//! ... one per redundant block, oldest first ...
//! primary header (1 byte, F=0):     |0| block PT (7) |
//! block payloads in the same order, the primary's last (its length is the rest)
//! ```
//!
//! # The distance rule
//!
//! RFC 2198 gives a redundant block a timestamp offset, not a sequence number.
//! Squawk's senders ([`RedSender`]) only put in a block that is exactly `d`
//! packets back *and* exactly `d` frames earlier, so a receiver
//! ([`RedReceiver`]) places a block with offset `d × frame` at sequence number
//! `primary − d`. libwebrtc's sender keeps the same rule while every 20 ms
//! produces a packet, that is with Opus DTX off (its default; Squawk's answers
//! do not ask for DTX from browsers).
//!
//! Sans-IO and allocation-free in steady state: parsing borrows the packet,
//! [`RedSender`] reuses its history buffers.

use std::collections::VecDeque;
use std::fmt;

/// Largest timestamp offset a redundant header can carry (14 bits), RTP
/// clock units: 16383, 341 ms at 48 kHz.
pub const MAX_TS_OFFSET: u32 = 0x3fff;
/// Largest redundant block a header can describe (10 bits), bytes.
pub const MAX_BLOCK_LEN: usize = 0x3ff;
/// Most redundant blocks a [`RedSender`] puts in one packet, and the furthest
/// back (in packets) a [`RedReceiver`] places a block.
pub const MAX_LEVELS: usize = 8;

/// Why a payload is not RFC 2198 RED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedError {
    /// The payload ends inside the block headers (no primary header).
    TruncatedHeaders,
    /// The redundant blocks' lengths add up to more than the payload holds.
    TruncatedBlocks,
    /// The primary block's payload type is not the codec RED was negotiated
    /// for (RFC 2198 allows it; Squawk forwards only Opus).
    ForeignPrimary {
        /// The payload type found in the primary header.
        pt: u8,
    },
}

impl fmt::Display for RedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedHeaders => write!(f, "RED payload ends inside its block headers"),
            Self::TruncatedBlocks => write!(f, "RED block lengths exceed the payload"),
            Self::ForeignPrimary { pt } => write!(f, "RED primary block has payload type {pt}"),
        }
    }
}

impl std::error::Error for RedError {}

/// One block of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedBlock<'a> {
    /// The block's payload type (7 bits).
    pub pt: u8,
    /// Primary timestamp minus this block's, RTP clock units (0 for the
    /// primary).
    pub ts_offset: u32,
    /// The block's bytes (an Opus packet).
    pub payload: &'a [u8],
}

/// A parsed RED payload, borrowing the packet.
#[derive(Debug, Clone, Copy)]
pub struct RedPayload<'a> {
    /// The redundant headers, 4 bytes each.
    headers: &'a [u8],
    /// The redundant blocks' bytes, back to back.
    blocks: &'a [u8],
    /// The primary block.
    pub primary: RedBlock<'a>,
}

impl<'a> RedPayload<'a> {
    /// Parses an RTP payload of the RED payload type.
    ///
    /// # Errors
    /// [`RedError::TruncatedHeaders`] or [`RedError::TruncatedBlocks`] when
    /// the structure does not fit in `data`. The work is bounded by
    /// `data.len()`.
    pub fn parse(data: &'a [u8]) -> Result<Self, RedError> {
        let mut at = 0;
        let mut total = 0usize;
        loop {
            let Some(&b0) = data.get(at) else {
                return Err(RedError::TruncatedHeaders);
            };
            if b0 & 0x80 == 0 {
                break;
            }
            let Some(h) = data.get(at..at + 4) else {
                return Err(RedError::TruncatedHeaders);
            };
            total += (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
            at += 4;
        }
        let headers = &data[..at];
        let primary_pt = data[at] & 0x7f;
        let body = &data[at + 1..];
        if total > body.len() {
            return Err(RedError::TruncatedBlocks);
        }
        Ok(Self {
            headers,
            blocks: &body[..total],
            primary: RedBlock {
                pt: primary_pt,
                ts_offset: 0,
                payload: &body[total..],
            },
        })
    }

    /// The redundant blocks, in packet order (oldest first as senders write
    /// them).
    pub fn redundant(&self) -> impl Iterator<Item = RedBlock<'a>> + 'a {
        let blocks = self.blocks;
        let mut start = 0usize;
        self.headers.chunks_exact(4).map(move |h| {
            let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
            let payload = &blocks[start..start + len];
            start += len;
            RedBlock {
                pt: h[0] & 0x7f,
                ts_offset: (u32::from(h[1]) << 6) | u32::from(h[2] >> 2),
                payload,
            }
        })
    }

    /// How many redundant blocks the payload carries.
    #[must_use]
    pub fn redundant_count(&self) -> usize {
        self.headers.len() / 4
    }
}

/// Appends to `out` the RED payload of `primary` (payload type `pt`) with
/// `redundant` (oldest first) before it. A block whose offset or length does
/// not fit the header's fields is left out, so the result always parses.
pub fn encode(out: &mut Vec<u8>, pt: u8, primary: &[u8], redundant: &[RedBlock<'_>]) {
    let fits = |b: &&RedBlock<'_>| b.ts_offset <= MAX_TS_OFFSET && b.payload.len() <= MAX_BLOCK_LEN;
    for b in redundant.iter().filter(fits) {
        let len = b.payload.len();
        out.push(0x80 | (b.pt & 0x7f));
        out.push((b.ts_offset >> 6) as u8);
        out.push((((b.ts_offset & 0x3f) as u8) << 2) | ((len >> 8) as u8 & 0x03));
        out.push((len & 0xff) as u8);
    }
    out.push(pt & 0x7f);
    for b in redundant.iter().filter(fits) {
        out.extend_from_slice(b.payload);
    }
    out.extend_from_slice(primary);
}

/// Sets the payload type of every block header of the RED payload `data`
/// to `pt` (an SFU forwarding one payload to listeners who each negotiated
/// their own Opus payload type). Stops at the first header that does not
/// fit; a payload from [`encode`] always does.
pub fn set_block_pts(data: &mut [u8], pt: u8) {
    let mut at = 0;
    while let Some(b) = data.get_mut(at) {
        let last = *b & 0x80 == 0;
        *b = (*b & 0x80) | (pt & 0x7f);
        if last {
            return;
        }
        at += 4;
    }
}

/// One packet sent earlier, kept for redundancy.
#[derive(Debug, Clone)]
struct Sent {
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
}

/// The sending side: wraps each outgoing Opus packet with copies of the
/// `levels` packets before it.
///
/// Only a packet exactly `d` sequence numbers back whose timestamp is exactly
/// `d × frame_ticks` earlier goes in (the distance rule of the module docs):
/// across a DTX pause or a change of talker nothing is repeated.
#[derive(Debug, Clone)]
pub struct RedSender {
    levels: usize,
    frame_ticks: u32,
    /// The newest packets wrapped, oldest first, at most `levels`.
    history: VecDeque<Sent>,
}

impl RedSender {
    /// A sender repeating up to `levels` earlier packets (clamped to
    /// [`MAX_LEVELS`]; 0 sends the primary alone) of one frame each,
    /// `frame_ticks` RTP clock units long (960: 20 ms at 48 kHz).
    #[must_use]
    pub fn new(levels: usize, frame_ticks: u32) -> Self {
        let levels = levels.min(MAX_LEVELS);
        Self {
            levels,
            frame_ticks: frame_ticks.max(1),
            history: VecDeque::with_capacity(levels),
        }
    }

    /// The configured number of redundant blocks.
    #[must_use]
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// Appends to `out` the RED payload for the Opus packet (`seq`, `ts`,
    /// `payload`) of payload type `pt`, and remembers the packet for the
    /// next ones.
    pub fn wrap(&mut self, pt: u8, seq: u16, ts: u32, payload: &[u8], out: &mut Vec<u8>) {
        let mut blocks = [RedBlock {
            pt,
            ts_offset: 0,
            payload: &[],
        }; MAX_LEVELS];
        let mut n = 0;
        for d in (1..=self.levels).rev() {
            let want_seq = seq.wrapping_sub(d as u16);
            let offset = d as u32 * self.frame_ticks;
            if let Some(s) = self
                .history
                .iter()
                .find(|s| s.seq == want_seq && ts.wrapping_sub(s.ts) == offset)
            {
                blocks[n] = RedBlock {
                    pt,
                    ts_offset: offset,
                    payload: &s.payload,
                };
                n += 1;
            }
        }
        encode(out, pt, payload, &blocks[..n]);
        self.remember(seq, ts, payload);
    }

    fn remember(&mut self, seq: u16, ts: u32, payload: &[u8]) {
        if self.levels == 0 {
            return;
        }
        let mut slot = if self.history.len() == self.levels {
            self.history.pop_front().unwrap_or(Sent {
                seq,
                ts,
                payload: Vec::new(),
            })
        } else {
            Sent {
                seq,
                ts,
                payload: Vec::with_capacity(payload.len()),
            }
        };
        slot.seq = seq;
        slot.ts = ts;
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.history.push_back(slot);
    }

    /// Forgets the history (a new stream starts).
    pub fn reset(&mut self) {
        self.history.clear();
    }
}

/// A packet a RED payload carries, as [`RedReceiver::unwrap`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwrapped<'a> {
    /// Its 16-bit sequence number.
    pub seq: u16,
    /// Its RTP timestamp.
    pub ts: u32,
    /// Its Opus payload.
    pub payload: &'a [u8],
    /// `true`: a redundant block filling a packet that had not arrived.
    pub recovered: bool,
}

/// The receiving side of one RTP stream: turns each RED packet into the
/// packets it carries, in order: the redundant blocks that fill a gap just
/// before it (recovered), then the primary.
///
/// A block is placed by the distance rule (module docs) and handed out only
/// when no packet at or after its sequence number has arrived, so it never
/// stands in for audio already received; a packet that arrives after its
/// recovered copy is a duplicate for the jitter buffer or rewriter to drop.
#[derive(Debug, Clone)]
pub struct RedReceiver {
    frame_ticks: u32,
    /// Highest extended sequence number seen.
    highest: Option<i64>,
    recovered: u64,
}

impl RedReceiver {
    /// A receiver for frames of `frame_ticks` RTP clock units (960: 20 ms at
    /// 48 kHz).
    #[must_use]
    pub fn new(frame_ticks: u32) -> Self {
        Self {
            frame_ticks: frame_ticks.max(1),
            highest: None,
            recovered: 0,
        }
    }

    /// Packets recovered from redundant blocks so far.
    #[must_use]
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// A packet of the stream that came without RED (the plain payload
    /// type): it moves the stream's position as a RED packet does.
    pub fn observe(&mut self, seq: u16) {
        self.advance(seq);
    }

    fn extend(&self, seq: u16) -> i64 {
        self.highest
            .map_or(i64::from(seq), |h| crate::rewrite::extend_seq(seq, h))
    }

    fn advance(&mut self, seq: u16) -> i64 {
        let ext = self.extend(seq);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        ext
    }

    /// Unwraps the RED packet (`seq`, `ts`, `red`) whose primary must be of
    /// payload type `primary_pt`, handing each packet it carries to `out`,
    /// oldest first.
    ///
    /// # Errors
    /// [`RedError::ForeignPrimary`] (nothing is handed out, the stream's
    /// position does not move) when the primary is of another payload type.
    pub fn unwrap<'a>(
        &mut self,
        primary_pt: u8,
        seq: u16,
        ts: u32,
        red: &RedPayload<'a>,
        mut out: impl FnMut(Unwrapped<'a>),
    ) -> Result<(), RedError> {
        if red.primary.pt != primary_pt {
            return Err(RedError::ForeignPrimary { pt: red.primary.pt });
        }
        let before = self.highest;
        let ext = self.extend(seq);
        if before.is_none_or(|h| ext > h + 1) {
            for b in red.redundant() {
                if b.pt != primary_pt || b.ts_offset == 0 || b.ts_offset % self.frame_ticks != 0 {
                    continue;
                }
                let d = i64::from(b.ts_offset / self.frame_ticks);
                if d > MAX_LEVELS as i64 {
                    continue;
                }
                let k = ext - d;
                // Only a gap in front of everything received so far, each
                // sequence number once even if a block is repeated.
                if k > self.highest.unwrap_or(i64::MIN) && k < ext {
                    self.highest = Some(k);
                    self.recovered += 1;
                    out(Unwrapped {
                        seq: k as u16,
                        ts: ts.wrapping_sub(b.ts_offset),
                        payload: b.payload,
                        recovered: true,
                    });
                }
            }
        }
        self.advance(seq);
        out(Unwrapped {
            seq,
            ts,
            payload: red.primary.payload,
            recovered: false,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT: u8 = 111;
    const FRAME: u32 = 960;

    fn frame(seq: u16) -> Vec<u8> {
        vec![seq as u8; 40 + usize::from(seq % 7)]
    }

    /// Wraps packets `seqs` (20 ms apart from timestamp 1000) with a sender
    /// of `levels`, returning each RED payload.
    fn send(levels: usize, seqs: impl IntoIterator<Item = u16>) -> Vec<(u16, u32, Vec<u8>)> {
        let mut s = RedSender::new(levels, FRAME);
        seqs.into_iter()
            .map(|seq| {
                let ts = 1000 + u32::from(seq) * FRAME;
                let mut out = Vec::new();
                s.wrap(PT, seq, ts, &frame(seq), &mut out);
                (seq, ts, out)
            })
            .collect()
    }

    /// Runs `packets` (some dropped) through a receiver: what came out.
    fn receive(packets: &[(u16, u32, Vec<u8>)]) -> Vec<(u16, u32, Vec<u8>, bool)> {
        let mut r = RedReceiver::new(FRAME);
        let mut got = Vec::new();
        for (seq, ts, data) in packets {
            let red = RedPayload::parse(data).expect("parses");
            r.unwrap(PT, *seq, *ts, &red, |u| {
                got.push((u.seq, u.ts, u.payload.to_vec(), u.recovered))
            })
            .expect("opus primary");
        }
        got
    }

    #[test]
    fn encode_and_parse_round_trip_with_rfc_2198_fields() {
        let a = [1u8; 300];
        let b = [2u8; 5];
        let mut out = Vec::new();
        let blocks = [
            RedBlock {
                pt: PT,
                ts_offset: 1920,
                payload: &a,
            },
            RedBlock {
                pt: 0,
                ts_offset: MAX_TS_OFFSET,
                payload: &b,
            },
        ];
        encode(&mut out, PT, &[9, 9, 9], &blocks);
        // Headers 4 + 4, primary header 1, then 300 + 5 + 3 bytes.
        assert_eq!(out.len(), 9 + 308);
        // First header: F=1, PT 111, offset 1920, length 300 (RFC 2198 §3).
        assert_eq!(
            &out[..4],
            &[
                0x80 | 111,
                (1920 >> 6) as u8,
                ((1920 & 0x3f) << 2) as u8 | 1,
                44
            ]
        );
        assert_eq!(out[8], PT);
        let p = RedPayload::parse(&out).expect("parses");
        assert_eq!(p.redundant_count(), 2);
        assert_eq!(p.redundant().collect::<Vec<_>>(), blocks.to_vec());
        assert_eq!(
            p.primary,
            RedBlock {
                pt: PT,
                ts_offset: 0,
                payload: &[9, 9, 9]
            }
        );
    }

    #[test]
    fn block_payload_types_are_set_in_place() {
        let mut out = Vec::new();
        let blocks = [
            RedBlock {
                pt: PT,
                ts_offset: 1920,
                payload: &[1, 1],
            },
            RedBlock {
                pt: PT,
                ts_offset: 960,
                payload: &[2],
            },
        ];
        encode(&mut out, PT, &[3], &blocks);
        set_block_pts(&mut out, 109);
        let p = RedPayload::parse(&out).expect("parses");
        assert_eq!(
            p.redundant()
                .map(|b| (b.pt, b.ts_offset, b.payload.to_vec()))
                .collect::<Vec<_>>(),
            vec![(109, 1920, vec![1, 1]), (109, 960, vec![2])]
        );
        assert_eq!((p.primary.pt, p.primary.payload), (109, &[3][..]));
        // A truncated payload is left as far as it goes.
        let mut short = vec![0x80 | 111, 0];
        set_block_pts(&mut short, 109);
        assert_eq!(short, vec![0x80 | 109, 0]);
    }

    #[test]
    fn blocks_that_do_not_fit_the_header_fields_are_left_out() {
        let long = [0u8; MAX_BLOCK_LEN + 1];
        let mut out = Vec::new();
        let blocks = [
            RedBlock {
                pt: PT,
                ts_offset: 960,
                payload: &long,
            },
            RedBlock {
                pt: PT,
                ts_offset: MAX_TS_OFFSET + 1,
                payload: &[1],
            },
            RedBlock {
                pt: PT,
                ts_offset: 960,
                payload: &[2],
            },
        ];
        encode(&mut out, PT, &[3], &blocks);
        let p = RedPayload::parse(&out).expect("parses");
        assert_eq!(
            p.redundant().map(|b| b.payload).collect::<Vec<_>>(),
            vec![&[2u8][..]]
        );
        assert_eq!(p.primary.payload, &[3]);
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert_eq!(
            RedPayload::parse(&[]).unwrap_err(),
            RedError::TruncatedHeaders
        );
        assert_eq!(
            RedPayload::parse(&[0x80 | 111, 0, 0]).unwrap_err(),
            RedError::TruncatedHeaders
        );
        assert_eq!(
            RedPayload::parse(&[0x80 | 111, 0, 4, 0]).unwrap_err(),
            RedError::TruncatedHeaders
        );
        // One block of 5 bytes announced, 2 present.
        assert_eq!(
            RedPayload::parse(&[0x80 | 111, 15, 0, 5, 111, 1, 2]).unwrap_err(),
            RedError::TruncatedBlocks
        );
        // A primary header alone is a RED payload with an empty primary.
        let p = RedPayload::parse(&[111]).expect("parses");
        assert_eq!((p.redundant_count(), p.primary.payload.len()), (0, 0));
        // Every byte string either parses or is an error.
        for len in 0..12u8 {
            for fill in [0x00, 0x7f, 0x80, 0xff] {
                let data: Vec<u8> = (0..len).map(|i| fill ^ i).collect();
                if let Ok(p) = RedPayload::parse(&data) {
                    let n: usize = p.redundant().map(|b| b.payload.len()).sum();
                    assert!(n + p.primary.payload.len() <= data.len());
                }
            }
        }
    }

    #[test]
    fn a_burst_up_to_the_levels_is_recovered_in_order() {
        let sent = send(2, 0..10);
        // 3 and 4 lost (a burst of two), 7 lost alone.
        let arrived: Vec<_> = sent
            .iter()
            .filter(|p| ![3, 4, 7].contains(&p.0))
            .cloned()
            .collect();
        let got = receive(&arrived);
        let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
        for (seq, ts, payload, recovered) in &got {
            assert_eq!(*ts, 1000 + u32::from(*seq) * FRAME, "timestamp of {seq}");
            assert_eq!(payload, &frame(*seq), "payload of {seq}");
            assert_eq!(
                *recovered,
                [3, 4, 7].contains(seq),
                "recovered flag of {seq}"
            );
        }
    }

    #[test]
    fn a_burst_longer_than_the_levels_recovers_only_the_newest() {
        let sent = send(2, 0..8);
        let arrived: Vec<_> = sent
            .iter()
            .filter(|p| !(2..=4).contains(&p.0))
            .cloned()
            .collect();
        let got = receive(&arrived);
        let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
        assert_eq!(seqs, vec![0, 1, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn nothing_is_repeated_across_a_dtx_pause_or_a_restart() {
        let mut s = RedSender::new(2, FRAME);
        let mut out = Vec::new();
        s.wrap(PT, 10, 0, &frame(10), &mut out);
        out.clear();
        // Contiguous sequence number, but 400 ms later (DTX).
        s.wrap(PT, 11, 19_200, &frame(11), &mut out);
        assert_eq!(
            RedPayload::parse(&out).expect("parses").redundant_count(),
            0
        );
        out.clear();
        s.wrap(PT, 12, 20_160, &frame(12), &mut out);
        let p = RedPayload::parse(&out).expect("parses");
        assert_eq!(
            p.redundant().map(|b| b.ts_offset).collect::<Vec<_>>(),
            vec![FRAME]
        );
        s.reset();
        out.clear();
        s.wrap(PT, 13, 21_120, &frame(13), &mut out);
        assert_eq!(
            RedPayload::parse(&out).expect("parses").redundant_count(),
            0
        );
    }

    #[test]
    fn a_reordered_packet_is_not_recovered_twice_and_late_ones_pass_through() {
        let sent = send(2, 0..6);
        // 3 arrives after 4: 4 recovers it, then the real 3 passes as a
        // (duplicate) primary; 5 recovers nothing.
        let order = [0usize, 1, 2, 4, 3, 5];
        let arrived: Vec<_> = order.iter().map(|&i| sent[i].clone()).collect();
        let got = receive(&arrived);
        let seqs: Vec<(u16, bool)> = got.iter().map(|g| (g.0, g.3)).collect();
        assert_eq!(
            seqs,
            vec![
                (0, false),
                (1, false),
                (2, false),
                (3, true),
                (4, false),
                (3, false),
                (5, false)
            ]
        );
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut s = RedSender::new(1, FRAME);
        let mut r = RedReceiver::new(FRAME);
        let mut got = Vec::new();
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            let ts = (u32::MAX - 1000).wrapping_add(i as u32 * FRAME);
            let mut out = Vec::new();
            s.wrap(PT, seq, ts, &frame(seq), &mut out);
            if seq == 0 {
                continue; // lost
            }
            let red = RedPayload::parse(&out).expect("parses");
            r.unwrap(PT, seq, ts, &red, |u| got.push((u.seq, u.recovered, u.ts)))
                .expect("opus");
        }
        let ts0 = (u32::MAX - 1000).wrapping_add(2 * FRAME);
        assert_eq!(got[2], (0, true, ts0));
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![65534, 65535, 0, 1]
        );
        assert_eq!(r.recovered(), 1);
    }

    #[test]
    fn a_foreign_primary_is_refused_and_foreign_blocks_are_skipped() {
        let mut out = Vec::new();
        encode(&mut out, 0, &[1], &[]);
        let red = RedPayload::parse(&out).expect("parses");
        let mut r = RedReceiver::new(FRAME);
        let mut n = 0;
        assert_eq!(
            r.unwrap(PT, 1, 960, &red, |_| n += 1),
            Err(RedError::ForeignPrimary { pt: 0 })
        );
        assert_eq!(n, 0);
        r.observe(1);
        out.clear();
        // Seq 3 arrives with a PCMU block for 2 and an Opus block 1.5 frames back.
        encode(
            &mut out,
            PT,
            &[3],
            &[
                RedBlock {
                    pt: 0,
                    ts_offset: FRAME,
                    payload: &[2],
                },
                RedBlock {
                    pt: PT,
                    ts_offset: FRAME * 3 / 2,
                    payload: &[2],
                },
            ],
        );
        let red = RedPayload::parse(&out).expect("parses");
        let mut got = Vec::new();
        r.unwrap(PT, 3, 3 * FRAME, &red, |u| got.push(u.seq))
            .expect("opus");
        assert_eq!(got, vec![3]);
    }

    #[test]
    fn plain_packets_move_the_position_so_nothing_received_is_replaced() {
        let sent = send(2, 0..4);
        let mut r = RedReceiver::new(FRAME);
        let mut got = Vec::new();
        // 0..=2 arrive as plain Opus, 3 as RED carrying 1 and 2.
        for seq in 0..3 {
            r.observe(seq);
        }
        let red = RedPayload::parse(&sent[3].2).expect("parses");
        r.unwrap(PT, 3, sent[3].1, &red, |u| got.push(u.seq))
            .expect("opus");
        assert_eq!(got, vec![3]);
    }

    #[test]
    fn the_sender_reuses_its_buffers_and_caps_its_levels() {
        let s = RedSender::new(100, FRAME);
        assert_eq!(s.levels(), MAX_LEVELS);
        let sent = send(0, 0..3);
        for (_, _, data) in &sent {
            assert_eq!(
                RedPayload::parse(data).expect("parses").redundant_count(),
                0
            );
        }
        let sent = send(3, 0..10);
        let counts: Vec<usize> = sent
            .iter()
            .map(|p| RedPayload::parse(&p.2).expect("parses").redundant_count())
            .collect();
        assert_eq!(counts, vec![0, 1, 2, 3, 3, 3, 3, 3, 3, 3]);
    }
}
