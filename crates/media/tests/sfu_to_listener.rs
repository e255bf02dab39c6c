//! End to end through both modules: two talkers take turns, the SFU's
//! `TrackRewriter` merges them into one outgoing track, and a listener's
//! `JitterBuffer` plays it.

use std::time::{Duration, Instant};

use squawk_media::{JitterBuffer, JitterConfig, JitterEvent, Playout, TrackRewriter};

/// A packet as sent by a talker: (capture time ms, ssrc, seq, ts, id).
type Sent = (u64, u32, u16, u32, u32);

#[test]
fn talker_change_through_sfu_plays_both_talkers_without_loss() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // A talks for 1 s (ids 0..50); B starts 150 ms after A's last frame with
    // its own random numbering (ids 100..150). B's path to the SFU is 40 ms
    // longer than A's (5 ms); SFU to listener is 10 ms.
    let mut sent: Vec<(u64, Sent)> = Vec::new();
    for k in 0..50u32 {
        let cap = u64::from(k) * 20;
        sent.push((
            cap + 5,
            (
                cap,
                0xA,
                60_000u16.wrapping_add(k as u16),
                4_000_000_000u32.wrapping_add(k * 960),
                k,
            ),
        ));
    }
    for k in 0..50u32 {
        let cap = 980 + 150 + u64::from(k) * 20;
        sent.push((cap + 45, (cap, 0xB, 7 + k as u16, 123 + k * 960, 100 + k)));
    }
    sent.sort_by_key(|(arrive_sfu, _)| *arrive_sfu);

    let mut rewriter = TrackRewriter::new(48_000, 65_500, 7);
    let mut to_listener = Vec::new();
    for (arrive_sfu, (_, ssrc, seq, ts, id)) in sent {
        if let Some(out) = rewriter.rewrite(at(arrive_sfu), ssrc, seq, ts, false) {
            to_listener.push((arrive_sfu + 10, out, id));
        }
    }
    assert_eq!(to_listener.len(), 100, "SFU forwards everything");

    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut played = Vec::new();
    let mut next = 0;
    for pop in 0..150u64 {
        let now = pop * 20;
        while let Some((arrival, out, id)) = to_listener.get(next).filter(|p| p.0 <= now) {
            jb.push(
                at(*arrival),
                out.wire_seq(),
                out.timestamp,
                out.marker,
                &id.to_be_bytes(),
            );
            next += 1;
        }
        played.push(jb.pop(at(now)));
    }
    let frames: Vec<u32> = played
        .iter()
        .filter_map(|p| match p {
            Playout::Frame(d) => <[u8; 4]>::try_from(d.as_slice())
                .ok()
                .map(u32::from_be_bytes),
            _ => None,
        })
        .collect();
    let expected: Vec<u32> = (0..50).chain(100..150).collect();
    assert_eq!(frames, expected, "both talkers, in order, nothing dropped");
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late, stats.fec_recovered), (0, 0, 0));
    // One continuous stream for the listener across the talker change.
    assert_eq!(jb.poll_event(), Some(JitterEvent::StreamStarted));
    match jb.poll_event() {
        Some(JitterEvent::StreamEnded { stats }) => {
            assert_eq!((stats.packets, stats.played, stats.lost), (100, 100, 0));
        }
        other => panic!("expected the end of the one stream, got {other:?}"),
    }
    assert_eq!(jb.poll_event(), None);
    assert!(!played.iter().any(|p| matches!(p, Playout::Fec(_))));
}
