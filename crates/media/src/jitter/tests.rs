//! Behaviour tests for [`JitterBuffer`], driven by simulated time.

use super::*;

/// One 20 ms frame at 48 kHz, in RTP timestamp units.
const FRAME_TS: u32 = 960;
/// Pop period of the simulated playout clock (20 ms), µs.
const POP_US: u64 = 20_000;

/// A simulated packet arrival.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// Arrival time after `t0`, µs.
    at_us: u64,
    seq: u16,
    ts: u32,
    marker: bool,
    /// Payload identity (the payload is its 4 big-endian bytes).
    id: u32,
}

fn payload(id: u32) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

fn id_of(p: &[u8]) -> u32 {
    <[u8; 4]>::try_from(p).map_or(u32::MAX, u32::from_be_bytes)
}

/// `n` packets, one per `period_us` of sender time, seq/ts counting up from
/// `seq0`/`ts0`, the k-th arriving `delay_us(k)` after it was sent.
fn stream(
    n: u32,
    seq0: u16,
    ts0: u32,
    period_us: u64,
    delay_us: impl Fn(u32) -> u64,
) -> Vec<Arrival> {
    (0..n)
        .map(|k| Arrival {
            at_us: u64::from(k) * period_us + delay_us(k),
            seq: seq0.wrapping_add(k as u16),
            ts: ts0.wrapping_add(k * FRAME_TS),
            marker: k == 0,
            id: k,
        })
        .collect()
}

/// Result of a simulation.
struct Run {
    /// (pop time after t0 in µs, output) for every pop.
    outputs: Vec<(u64, Playout)>,
    /// (packet id, outcome) for every push, in arrival order.
    pushes: Vec<(u32, PushOutcome)>,
    /// Stats right after every pop.
    trace: Vec<(u64, JitterStats)>,
    /// Largest number of buffered packets seen after any push.
    max_buffered: usize,
    events: Vec<JitterEvent>,
}

impl Run {
    /// Ids of the played frames, in playout order.
    fn frames(&self) -> Vec<u32> {
        self.outputs
            .iter()
            .filter_map(|(_, p)| match p {
                Playout::Frame(data) => Some(id_of(data)),
                _ => None,
            })
            .collect()
    }

    /// Pop time of the frame with payload `id`.
    fn played_at(&self, id: u32) -> Option<u64> {
        self.outputs.iter().find_map(|(t, p)| match p {
            Playout::Frame(data) if id_of(data) == id => Some(*t),
            _ => None,
        })
    }

    /// Outputs strictly between the frames `a` and `b`.
    fn between(&self, a: u32, b: u32) -> Vec<Playout> {
        let is = |p: &Playout, id: u32| matches!(p, Playout::Frame(d) if id_of(d) == id);
        let start = self.outputs.iter().position(|(_, p)| is(p, a));
        let end = self.outputs.iter().position(|(_, p)| is(p, b));
        match (start, end) {
            (Some(s), Some(e)) if s < e => self.outputs[s + 1..e]
                .iter()
                .map(|(_, p)| p.clone())
                .collect(),
            _ => panic!("frames {a} and {b} not both played in order"),
        }
    }

    /// Stats right after frame `id` was played (excludes the conceal frames
    /// that follow the end of a transmission).
    fn stats_at_frame(&self, id: u32) -> JitterStats {
        self.played_at(id)
            .map_or_else(JitterStats::default, |t| self.stats_at(t))
    }

    /// Stats after the last pop at or before `t_us`.
    fn stats_at(&self, t_us: u64) -> JitterStats {
        self.trace
            .iter()
            .take_while(|(t, _)| *t <= t_us)
            .last()
            .map(|(_, s)| *s)
            .unwrap_or_default()
    }

    fn outcome(&self, id: u32) -> Vec<PushOutcome> {
        self.pushes
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, o)| *o)
            .collect()
    }
}

/// Applies `arrivals` in time order (an arrival at the same instant as a pop
/// goes first) and pops every [`POP_US`] from `first_pop_us`, `pops` times.
fn simulate(jb: &mut JitterBuffer, arrivals: &[Arrival], first_pop_us: u64, pops: usize) -> Run {
    simulate_with_period(jb, arrivals, first_pop_us, POP_US, pops)
}

fn simulate_with_period(
    jb: &mut JitterBuffer,
    arrivals: &[Arrival],
    first_pop_us: u64,
    period_us: u64,
    pops: usize,
) -> Run {
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    let mut sorted = arrivals.to_vec();
    sorted.sort_by_key(|a| a.at_us);
    let mut next = 0;
    let mut run = Run {
        outputs: Vec::new(),
        pushes: Vec::new(),
        trace: Vec::new(),
        max_buffered: 0,
        events: Vec::new(),
    };
    for k in 0..pops as u64 {
        let pop_us = first_pop_us + k * period_us;
        while let Some(a) = sorted.get(next).filter(|a| a.at_us <= pop_us) {
            let outcome = jb.push(at(a.at_us), a.seq, a.ts, a.marker, &payload(a.id));
            run.pushes.push((a.id, outcome));
            run.max_buffered = run.max_buffered.max(jb.buffered_packets());
            next += 1;
        }
        let out = jb.pop(at(pop_us));
        run.outputs.push((pop_us, out));
        run.trace.push((pop_us, jb.stats()));
        while let Some(e) = jb.poll_event() {
            run.events.push(e);
        }
    }
    run
}

/// Deterministic 64-bit LCG (Knuth's MMIX constants); no `rand` crate.
struct Lcg(u64);

impl Lcg {
    /// Uniform in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn ended_stats(events: &[JitterEvent]) -> Vec<JitterStats> {
    events
        .iter()
        .filter_map(|e| match e {
            JitterEvent::StreamEnded { stats } => Some(*stats),
            JitterEvent::StreamStarted => None,
        })
        .collect()
}

#[test]
fn steady_stream_plays_every_frame_once_in_order_after_initial_delay() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Packet k sent at 20k ms, arriving 5 ms later; pops at 20k ms.
    let arrivals = stream(150, 1000, 77_000, POP_US, |_| 5_000);
    let run = simulate(&mut jb, &arrivals, 0, 200);

    assert_eq!(run.frames(), (0..150).collect::<Vec<_>>());
    // First arrival at 5 ms + 40 ms initial target = 45 ms -> pop at 60 ms.
    assert_eq!(run.played_at(0), Some(60_000));
    assert!(run.outputs[..3].iter().all(|(_, p)| *p == Playout::Idle));
    // Frames back to back: no conceal, FEC or silence in between.
    assert!(
        run.between(0, 149)
            .iter()
            .all(|p| matches!(p, Playout::Frame(_)))
    );
    let mid = run.stats_at(1_500_000);
    assert_eq!(mid.current_delay_ms, 55, "delay stays at the start delay");
    let s = jb.stats();
    assert_eq!((s.lost, s.late, s.duplicates), (0, 0, 0));
    assert_eq!((s.drift_dropped, s.drift_inserted, s.underruns), (0, 0, 0));
    assert_eq!(s.played, 150);
    assert!(s.jitter_ms.abs() < 1e-9, "no jitter: {}", s.jitter_ms);
    assert_eq!(
        run.events.first(),
        Some(&JitterEvent::StreamStarted),
        "start event first"
    );
}

#[test]
fn reordered_pairs_still_play_in_order() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Odd packets arrive 4 ms after sending, even ones 25 ms: 1,0,3,2,...
    let arrivals = stream(
        100,
        40,
        0,
        POP_US,
        |k| if k % 2 == 0 { 25_000 } else { 4_000 },
    );
    let run = simulate(&mut jb, &arrivals, 0, 160);
    assert_eq!(run.pushes[0].0, 1, "seq 1 arrives first");
    assert_eq!(run.frames(), (0..100).collect::<Vec<_>>());
    let s = jb.stats();
    assert_eq!((s.lost, s.late, s.fec_recovered), (0, 0, 0));
}

#[test]
fn single_loss_is_recovered_with_fec_of_next_packet() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = stream(30, 0, 0, POP_US, |_| 5_000);
    arrivals.retain(|a| a.id != 10);
    let run = simulate(&mut jb, &arrivals, 0, 60);
    assert_eq!(run.between(9, 11), vec![Playout::Fec(payload(11))]);
    let expected: Vec<u32> = (0..30).filter(|&k| k != 10).collect();
    assert_eq!(run.frames(), expected);
    let s = run.stats_at_frame(29);
    assert_eq!((s.lost, s.fec_recovered, s.concealed), (1, 1, 0));
}

#[test]
fn two_consecutive_losses_conceal_then_fec() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = stream(40, 0, 0, POP_US, |_| 5_000);
    arrivals.retain(|a| a.id != 20 && a.id != 21);
    let run = simulate(&mut jb, &arrivals, 0, 60);
    assert_eq!(
        run.between(19, 22),
        vec![Playout::Conceal, Playout::Fec(payload(22))]
    );
    let s = run.stats_at_frame(39);
    assert_eq!((s.lost, s.fec_recovered, s.concealed), (2, 1, 1));
}

#[test]
fn duplicates_are_ignored_and_counted() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = stream(30, 0, 0, POP_US, |_| 5_000);
    let five = arrivals[5];
    let three = arrivals[3];
    // 5 again while still buffered; 3 again long after it was played.
    arrivals.push(Arrival {
        at_us: five.at_us + 1_000,
        ..five
    });
    arrivals.push(Arrival {
        at_us: 400_000,
        ..three
    });
    let run = simulate(&mut jb, &arrivals, 0, 60);
    assert_eq!(
        run.outcome(5),
        vec![PushOutcome::Accepted, PushOutcome::Duplicate]
    );
    assert_eq!(
        run.outcome(3),
        vec![PushOutcome::Accepted, PushOutcome::Duplicate]
    );
    assert_eq!(run.frames(), (0..30).collect::<Vec<_>>());
    let s = jb.stats();
    assert_eq!((s.duplicates, s.late, s.packets), (2, 0, 30));
}

#[test]
fn packet_after_its_slot_is_late_and_not_played() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = stream(30, 0, 0, POP_US, |_| 5_000);
    // Packet 10 (slot at 260 ms) arrives at 400 ms.
    arrivals[10].at_us = 400_000;
    let run = simulate(&mut jb, &arrivals, 0, 60);
    assert_eq!(run.outcome(10), vec![PushOutcome::Late]);
    assert_eq!(run.between(9, 11), vec![Playout::Fec(payload(11))]);
    let s = jb.stats();
    assert_eq!((s.late, s.lost), (1, 1));
}

#[test]
fn packet_arriving_just_before_its_slot_is_used() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = stream(100, 0, 0, POP_US, |_| 5_000);
    // Slot of packet 80 is the pop at 60 + 1600 ms; it arrives 1 ms before,
    // after 81 and 82 (a single outlier does not move the 95th percentile).
    arrivals[80].at_us = 1_659_000;
    let run = simulate(&mut jb, &arrivals, 0, 120);
    assert_eq!(run.outcome(80), vec![PushOutcome::Accepted]);
    assert_eq!(run.played_at(80), Some(1_660_000));
    assert_eq!(run.frames(), (0..100).collect::<Vec<_>>());
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn jitter_grows_target_and_nothing_is_late_after_adaptation() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut lcg = Lcg(0x5EED_1234);
    // 30 s of packets with a 50 ms base delay ± 30 ms uniform jitter.
    let delays: Vec<u64> = (0..1500).map(|_| 20_000 + lcg.below(60_001)).collect();
    let arrivals = stream(1500, 7, 1_000_000, POP_US, |k| delays[k as usize]);
    let run = simulate(&mut jb, &arrivals, 3_000, 1600);

    let early = run.stats_at(5_000_000);
    let end = jb.stats();
    assert!(
        early.target_delay_ms >= 60 && end.target_delay_ms >= 60,
        "target grew from 40 ms: {} / {}",
        early.target_delay_ms,
        end.target_delay_ms
    );
    assert!(
        end.target_delay_ms <= 120,
        "but not absurdly: {}",
        end.target_delay_ms
    );
    assert!(
        (14.0..26.0).contains(&end.jitter_ms),
        "RFC 3550 jitter of ±30 ms uniform is ≈ 20 ms: {}",
        end.jitter_ms
    );
    assert_eq!(end.lost, early.lost, "no losses after adaptation");
    assert_eq!(end.late, early.late, "no late packets after adaptation");
    let frames = run.frames();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "played in order");
    assert_eq!(
        frames.len() as u64 + end.drift_dropped + end.lost,
        1500,
        "every packet is played, dropped or lost exactly once"
    );
}

/// The engine's jitter settings: a 5 ms cushion on a clean link, one
/// frame after trouble.
fn engine_like() -> JitterConfig {
    JitterConfig {
        min_delay_ms: 5,
        clean_cushion_ms: 5,
        ..JitterConfig::default()
    }
}

/// The first loss on a clean link raises the cushion to a frame at once,
/// so every later loss finds its successor buffered and is rebuilt from
/// its in-band FEC; once [`TROUBLE_MEMORY`] passes without loss, the
/// target falls back below a frame.
#[test]
fn loss_raises_the_cushion_to_a_frame_until_the_link_is_clean_again() {
    let mut jb = JitterBuffer::new(engine_like());
    let mut lcg = Lcg(0xF0EC);
    // 10 s clean, 10 s losing every tenth packet, 40 s clean again; 1-3 ms
    // of transit throughout.
    let lossy = |k: u32| (500..1000).contains(&k) && k % 10 == 5;
    let delays: Vec<u64> = (0..3000).map(|_| 1_000 + lcg.below(2_001)).collect();
    let arrivals: Vec<Arrival> = stream(3000, 1, 0, POP_US, |k| delays[k as usize])
        .into_iter()
        .filter(|a| !lossy(a.id))
        .collect();
    let run = simulate(&mut jb, &arrivals, 3_000, 3100);
    let clean = run.stats_at(10_000_000);
    assert!(
        (5..=8).contains(&clean.target_delay_ms) && clean.lost == 0,
        "clean: {clean:?}"
    );
    let lossy_end = run.stats_at(20_500_000);
    assert!(
        lossy_end.target_delay_ms >= 20,
        "a frame of cushion while losing: {lossy_end:?}"
    );
    assert_eq!(lossy_end.lost, 50, "{lossy_end:?}");
    // The first loss found the buffer empty (one underrun, its slot played
    // a frame late); each one after it had its successor in hand.
    assert_eq!(lossy_end.fec_recovered, 50, "{lossy_end:?}");
    assert!(lossy_end.underruns <= 1, "{lossy_end:?}");
    let end = run.stats_at(60_000_000);
    assert!(
        end.target_delay_ms <= 8,
        "clean again after the trouble memory: {end:?}"
    );
    assert_eq!(end.lost, 50, "{end:?}");
}

/// With a clean-link cushion of a few ms (the engine's 5), a clean link's
/// target sits just above its jitter, below one frame, and every packet
/// plays on time; jitter that starts later raises the target at once, and
/// the packets it makes late are played after an underrun, never lost.
#[test]
fn a_small_cushion_keeps_a_clean_links_target_below_one_frame() {
    let cfg = engine_like();
    let mut jb = JitterBuffer::new(cfg);
    let mut lcg = Lcg(0x5EED);
    // 10 s with 1-3 ms of transit (scheduling noise), then 10 s of 1-31 ms.
    let delays: Vec<u64> = (0..1000)
        .map(|k| {
            if k < 500 {
                1_000 + lcg.below(2_001)
            } else {
                1_000 + lcg.below(30_001)
            }
        })
        .collect();
    // Pops 3 ms after the sender's frame clock: the worst phase for a
    // cushion of 5 ms is covered by the jitter window, not by luck.
    let arrivals = stream(1000, 1, 0, POP_US, |k| delays[k as usize]);
    let run = simulate(&mut jb, &arrivals, 3_000, 1100);
    let clean = run.stats_at(10_000_000);
    assert!(
        (5..=8).contains(&clean.target_delay_ms),
        "clean target {} ms",
        clean.target_delay_ms
    );
    assert_eq!(
        (clean.lost, clean.underruns, clean.late),
        (0, 0, 0),
        "{clean:?}"
    );
    let jittery = run.stats_at(20_000_000);
    assert!(
        jittery.target_delay_ms >= 30,
        "target up with the jitter: {jittery:?}"
    );
    assert_eq!(jittery.lost, 0, "{jittery:?}");
    let frames = run.frames();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "played in order");
    assert_eq!(
        frames.len() as u64 + jittery.drift_dropped,
        1000,
        "every packet is played or dropped to shrink the delay"
    );
}

/// The buffer follows jitter down as well as up: after 10 s of ±30 ms jitter
/// the link turns clean, and within a few seconds both the target and the
/// delay frames actually play at come back to the clean link's, by dropping
/// frames (not by losing any).
#[test]
fn jitter_that_ends_brings_target_and_playout_delay_back_down() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut lcg = Lcg(0xD0_0D);
    // 30 s of packets: 10 s at 50 ms ± 30 ms, then 20 s at a steady 20 ms.
    let delays: Vec<u64> = (0..1500)
        .map(|k| {
            if k < 500 {
                20_000 + lcg.below(60_001)
            } else {
                20_000
            }
        })
        .collect();
    let arrivals = stream(1500, 7, 1_000_000, POP_US, |k| delays[k as usize]);
    let run = simulate(&mut jb, &arrivals, 3_000, 1600);

    let jittery = run.stats_at(10_000_000);
    assert!(
        jittery.target_delay_ms >= 60 && jittery.current_delay_ms >= 40,
        "up during the jitter: target {} ms, current {} ms",
        jittery.target_delay_ms,
        jittery.current_delay_ms
    );
    let clean = run.stats_at(20_000_000);
    let end = run.stats_at(30_000_000);
    for (when, s) in [("10 s after", clean), ("20 s after", end)] {
        assert!(
            s.target_delay_ms <= 30,
            "target back down {when} the jitter ended: {} ms",
            s.target_delay_ms
        );
        assert!(
            s.current_delay_ms <= s.target_delay_ms + 2 * 20,
            "playout delay back down {when}: {} ms for a target of {} ms",
            s.current_delay_ms,
            s.target_delay_ms
        );
    }
    assert!(
        end.drift_dropped > jittery.drift_dropped,
        "the delay came down by dropping frames"
    );
    assert_eq!(end.lost, jittery.lost, "nothing lost on the clean link");
    assert_eq!(end.late, jittery.late, "nothing late on the clean link");
}

#[test]
fn sender_clock_faster_is_bounded_by_drift_drops() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Sender sends every 19.9 ms (0.5% fast) for 60 s; playout pops every 20 ms.
    let n = 3015;
    let arrivals = stream(n, 100, 0, 19_900, |_| 5_000);
    let run = simulate(&mut jb, &arrivals, 0, 3030);
    let s = jb.stats();
    assert!(
        (10..=20).contains(&s.drift_dropped),
        "≈ 15 frames (300 ms) must be dropped over 60 s: {}",
        s.drift_dropped
    );
    assert!(run.max_buffered <= 6, "level bounded: {}", run.max_buffered);
    assert_eq!((s.lost, s.late, s.underruns), (0, 0, 0));
    let last_delay = run.stats_at(58_000_000).current_delay_ms;
    assert!(last_delay <= 80, "delay does not grow: {last_delay} ms");
    let frames = run.frames();
    assert!(frames.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(frames.len() as u64 + s.drift_dropped, u64::from(n));
}

#[test]
fn sender_clock_slower_gives_bounded_conceals_and_no_growing_delay() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Sender sends every 20.1 ms (0.5% slow) for 60 s.
    let n = 2985;
    let arrivals = stream(n, 100, 0, 20_100, |_| 5_000);
    let run = simulate(&mut jb, &arrivals, 0, 3010);
    assert_eq!(run.frames(), (0..n).collect::<Vec<_>>(), "nothing dropped");
    let s = run.stats_at_frame(n - 1);
    assert!(
        (10..=25).contains(&s.concealed),
        "≈ 15 frames (300 ms) must be filled in over 60 s: {}",
        s.concealed
    );
    assert_eq!((s.lost, s.late, s.drift_dropped), (0, 0, 0));
    assert!(run.max_buffered <= 4, "level bounded: {}", run.max_buffered);
    let delays: Vec<u32> = (10..=59)
        .map(|sec| run.stats_at(sec * 1_000_000).current_delay_ms)
        .collect();
    assert!(
        delays.iter().all(|&d| d <= 60),
        "delay does not grow: {delays:?}"
    );
}

/// Packets 0..=9, then packets 10.. after a `gap_ms` pause in sender time
/// (timestamps jump accordingly, sequence numbers stay contiguous).
fn with_pause(gap_ms: u64, marker_after_gap: bool) -> Vec<Arrival> {
    let gap_ts = gap_ms as u32 * 48;
    (0..30u32)
        .map(|k| {
            let after = k >= 10;
            let send_us = u64::from(k) * 20_000 + if after { gap_ms * 1000 } else { 0 };
            Arrival {
                at_us: send_us + 5_000,
                seq: 500 + k as u16,
                ts: 9_000 + k * FRAME_TS + if after { gap_ts } else { 0 },
                marker: k == 0 || (k == 10 && marker_after_gap),
                id: k,
            }
        })
        .collect()
}

#[test]
fn short_dtx_gap_already_buffered_plays_silence_not_loss() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // ts(10) - ts(9) = 60 ms: the sender skipped two frames (DTX). Packet 10
    // arrives at 225 ms, before frame 9 plays at 240 ms.
    let run = simulate(&mut jb, &with_pause(40, false), 0, 80);
    assert_eq!(run.between(9, 10), vec![Playout::Silence; 2]);
    assert_eq!(run.frames(), (0..30).collect::<Vec<_>>());
    let s = run.stats_at_frame(29);
    assert_eq!((s.lost, s.concealed, s.underruns, s.silence), (0, 0, 0, 2));
}

#[test]
fn dtx_gap_in_real_time_keeps_schedule_without_loss() {
    let cfg = JitterConfig {
        idle_after_ms: 1000,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(cfg);
    let run = simulate(&mut jb, &with_pause(380, false), 0, 80);
    let gap = run.between(9, 10);
    assert_eq!(gap.len(), 19, "the 400 ms gap lasts 19 slots: {gap:?}");
    let conceals = gap.iter().filter(|p| **p == Playout::Conceal).count();
    assert_eq!(conceals as u32, MAX_CONCEAL_RUN, "PLC then silence");
    assert!(gap[conceals..].iter().all(|p| *p == Playout::Silence));
    // Same delay after the gap as before it.
    assert_eq!(
        run.played_at(10),
        Some(run.played_at(9).unwrap_or(0) + 400_000)
    );
    let s = jb.stats();
    assert_eq!((s.lost, s.underruns), (0, 0));
    assert_eq!(run.frames(), (0..30).collect::<Vec<_>>());
}

#[test]
fn new_talker_after_short_pause_plays_silence_not_loss() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // SFU switch: marker and timestamp advanced by the 200 ms wall-clock gap.
    let run = simulate(&mut jb, &with_pause(180, true), 0, 80);
    let gap = run.between(9, 10);
    assert_eq!(gap.len(), 9);
    assert!(!gap.iter().any(|p| matches!(p, Playout::Fec(_))));
    let s = jb.stats();
    assert_eq!((s.lost, s.underruns, s.late), (0, 0, 0));
    assert_eq!(run.frames(), (0..30).collect::<Vec<_>>());
}

#[test]
fn talker_switch_does_not_disturb_the_buffered_tail_of_the_previous_talker() {
    let cfg = JitterConfig {
        min_delay_ms: 100,
        initial_delay_ms: 100,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(cfg);
    // Talker A (0..20, 5 ms path) hands over at once to talker B (20..40,
    // marker on 20, 45 ms path): B's first packet arrives while A's last
    // frames are still buffered.
    let mut arrivals = stream(40, 300, 0, POP_US, |k| if k < 20 { 5_000 } else { 45_000 });
    arrivals[20].marker = true;
    let run = simulate(&mut jb, &arrivals, 0, 80);
    // B's first packet arrives at 445 ms; A's frames 17..=19 play at
    // 460..=500 ms.
    assert!(arrivals[20].at_us < run.played_at(17).unwrap_or(0));
    // A's tail plays back to back: its delay is not judged against B's
    // transit times. Only B gets a cushion frame inserted.
    assert!(
        run.between(15, 19)
            .iter()
            .all(|p| matches!(p, Playout::Frame(_)))
    );
    assert_eq!(run.between(19, 20), vec![Playout::Conceal]);
    assert_eq!(run.frames(), (0..40).collect::<Vec<_>>());
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn huge_timestamp_jump_resyncs_instead_of_long_silence() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // Timestamps jump by 5 s while only 100 ms of wall time pass.
    let mut arrivals = with_pause(100, true);
    for a in arrivals.iter_mut().skip(10) {
        a.ts = a.ts.wrapping_add(5 * 48_000);
    }
    let run = simulate(&mut jb, &arrivals, 0, 80);
    let gap = run.between(9, 10);
    assert!(gap.len() <= 10, "no 5 s of silence: {} slots", gap.len());
    assert_eq!(run.frames(), (0..30).collect::<Vec<_>>());
    let s = jb.stats();
    assert_eq!((s.lost, s.late), (0, 0));
    // Once resynced it plays with the target delay after the spurt's arrival.
    let resumed = run.played_at(10).unwrap_or(0);
    assert!(resumed >= arrivals[10].at_us + 30_000);
    assert!(resumed < arrivals[10].at_us + 60_000);
}

#[test]
fn backward_timestamp_jump_resyncs_and_dtx_is_still_detected() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // From packet 10 on, timestamps are 5 s lower (sender clock reset);
    // from packet 20 on, a further 40 ms DTX gap (sent 40 ms later).
    let mut arrivals = stream(30, 0, 10_000_000, POP_US, |k| {
        if k >= 20 { 45_000 } else { 5_000 }
    });
    for a in arrivals.iter_mut().skip(10) {
        a.ts = a.ts.wrapping_sub(5 * 48_000);
    }
    for a in arrivals.iter_mut().skip(20) {
        a.ts = a.ts.wrapping_add(2 * FRAME_TS);
    }
    let run = simulate(&mut jb, &arrivals, 0, 80);
    assert_eq!(run.frames(), (0..30).collect::<Vec<_>>());
    assert!(run.between(9, 10).len() <= 3, "no long stall at the jump");
    assert_eq!(
        run.between(19, 20),
        vec![Playout::Silence; 2],
        "the schedule follows the new timestamps"
    );
    let s = run.stats_at_frame(29);
    assert_eq!((s.lost, s.late), (0, 0));
}

#[test]
fn network_stall_slips_schedule_instead_of_losing() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    // From packet 10 on, everything arrives 100 ms later (path change).
    let arrivals = stream(40, 0, 0, POP_US, |k| if k >= 10 { 105_000 } else { 5_000 });
    let run = simulate(&mut jb, &arrivals, 0, 80);
    // Frame 9 at 240 ms; 10 arrives at 305 ms: pops 260, 280, 300 are empty.
    assert_eq!(run.between(9, 10), vec![Playout::Conceal; 3]);
    assert_eq!(run.played_at(10), Some(320_000));
    assert_eq!(run.frames(), (0..40).collect::<Vec<_>>());
    let s = jb.stats();
    assert_eq!((s.lost, s.late, s.underruns), (0, 0, 3));
}

#[test]
fn stream_ends_after_idle_with_per_stream_stats() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut arrivals = stream(10, 0, 0, POP_US, |_| 5_000);
    arrivals.retain(|a| a.id != 4);
    // A second transmission 2 s later, continuing the numbering.
    arrivals.extend(stream(5, 10, 300_000, POP_US, |_| 2_000_000));
    let run = simulate(&mut jb, &arrivals, 0, 150);

    let starts = run
        .events
        .iter()
        .filter(|e| **e == JitterEvent::StreamStarted)
        .count();
    assert_eq!(starts, 2);
    let ended = ended_stats(&run.events);
    assert_eq!(ended.len(), 2);
    assert_eq!(
        (ended[0].packets, ended[0].played, ended[0].lost),
        (9, 9, 1)
    );
    assert_eq!(
        (ended[1].packets, ended[1].played, ended[1].lost),
        (5, 5, 0)
    );
    // Last arrival at 185 ms + 300 ms idle: Idle from the pop at 500 ms on,
    // until the second stream plays.
    let idle_from = run
        .outputs
        .iter()
        .position(|(t, _)| *t == 500_000)
        .unwrap_or(0);
    assert_ne!(run.outputs[idle_from - 1].1, Playout::Idle);
    assert!(
        run.outputs[idle_from..]
            .iter()
            .take_while(|(t, _)| *t < 2_000_000)
            .all(|(_, p)| *p == Playout::Idle)
    );
    assert!(!jb.is_active());
    assert_eq!(
        jb.pop(Instant::now() + Duration::from_secs(10)),
        Playout::Idle
    );
}

#[test]
fn first_frame_of_a_stream_is_played() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    let ms = |k: u64| t0 + Duration::from_millis(k);
    assert_eq!(
        jb.push(ms(7), 65_000, 123, true, b"hello"),
        PushOutcome::Accepted
    );
    let outs: Vec<Playout> = (0..6).map(|k| jb.pop(ms(20 * k))).collect();
    assert_eq!(
        outs,
        vec![
            Playout::Idle,
            Playout::Idle,
            Playout::Idle,
            Playout::Frame(b"hello".to_vec()),
            Playout::Conceal,
            Playout::Conceal,
        ]
    );
    assert_eq!(jb.poll_event(), Some(JitterEvent::StreamStarted));
    assert_eq!(jb.poll_event(), None);
}

#[test]
fn stale_packet_after_stream_end_does_not_start_a_stream() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    let ms = |k: u64| t0 + Duration::from_millis(k);
    for k in 0..40u16 {
        if k < 5 {
            let seq = 200 + k;
            jb.push(
                ms(20 * u64::from(k) + 5),
                seq,
                u32::from(k) * FRAME_TS,
                k == 0,
                b"a",
            );
        }
        jb.pop(ms(20 * u64::from(k)));
    }
    // Last arrival 85 ms + 300 ms idle: ended by the pop at 400 ms.
    assert!(!jb.is_active());
    assert_eq!(
        jb.push(ms(800), 203, 3 * FRAME_TS, false, b"x"),
        PushOutcome::Late
    );
    assert!(!jb.is_active());
    assert_eq!(jb.stats().late, 1);
    // The next transmission (newer sequence number) starts normally.
    assert_eq!(
        jb.push(ms(810), 205, 99_999, true, b"y"),
        PushOutcome::Accepted
    );
    assert!(jb.is_active());
}

#[test]
fn sequence_and_timestamp_wraparound() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let arrivals = stream(40, 65_520, u32::MAX - 10 * FRAME_TS, POP_US, |k| {
        if k % 2 == 0 { 15_000 } else { 5_000 }
    });
    assert_eq!(arrivals[16].seq, 0);
    let run = simulate(&mut jb, &arrivals, 0, 70);
    assert_eq!(run.frames(), (0..40).collect::<Vec<_>>());
    let s = run.stats_at_frame(39);
    assert_eq!((s.lost, s.late, s.duplicates, s.concealed), (0, 0, 0, 0));
}

#[test]
fn packets_too_far_ahead_are_rejected_and_memory_is_bounded() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    assert_eq!(jb.push(t0, 100, 0, true, b"a"), PushOutcome::Accepted);
    assert_eq!(
        jb.push(t0, 150, 50 * FRAME_TS, false, b"b"),
        PushOutcome::TooFarAhead
    );
    assert_eq!(
        jb.push(t0, 149, 49 * FRAME_TS, false, b"c"),
        PushOutcome::Accepted
    );
    for seq in 101..=200u16 {
        jb.push(t0, seq, u32::from(seq - 100) * FRAME_TS, false, b"d");
    }
    assert_eq!(jb.buffered_packets(), 50);
    assert_eq!(jb.stats().too_far_ahead, 52);
}

#[test]
fn nonsense_config_and_input_do_not_panic() {
    let cfg = JitterConfig {
        frame_ms: 0,
        clock_rate: 0,
        min_delay_ms: 500,
        max_delay_ms: 10,
        initial_delay_ms: 0,
        idle_after_ms: 0,
        cushion_ms: u32::MAX,
        clean_cushion_ms: u32::MAX,
    };
    let mut jb = JitterBuffer::new(cfg);
    assert_eq!(jb.config().max_delay_ms, 500);
    assert_eq!(jb.config().initial_delay_ms, 500);
    assert_eq!(jb.config().cushion_ms, 10_000);
    let t0 = Instant::now();
    let mut lcg = Lcg(42);
    for k in 0..2000u64 {
        // Arbitrary sequence numbers, timestamps and even time going back.
        let now = t0 + Duration::from_millis(lcg.below(5_000));
        jb.push(
            now,
            lcg.below(65_536) as u16,
            lcg.below(1 << 32) as u32,
            k % 7 == 0,
            &[],
        );
        let _ = jb.pop(now);
    }
    let mut jb = JitterBuffer::new(JitterConfig::default());
    for k in 0..2000u64 {
        let now = t0 + Duration::from_millis(k * 3);
        jb.push(
            now,
            lcg.below(65_536) as u16,
            lcg.below(1 << 32) as u32,
            false,
            b"z",
        );
        let _ = jb.pop(now);
    }
    assert!(jb.buffered_packets() <= 50);
}
