//! Floor control end to end: simultaneous presses, and media enforcement
//! against a client that sends audio without the floor.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::*;

#[test]
fn simultaneous_presses_grant_exactly_one() {
    let server = TestServer::start();
    let wav = speech("M1_harvard_phrases.wav");
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 4000;
    let at = at.to_string();
    let a = server.talker("A", "X", &wav, &["--at-unix-ms", &at]);
    let b = server.talker("B", "X", &wav, &["--at-unix-ms", &at]);
    let (ca, la) = a.wait(Duration::from_secs(30));
    let (cb, lb) = b.wait(Duration::from_secs(30));
    let granted = |lines: &[String]| lines.iter().any(|l| l.contains("\"floor_granted\""));
    let denied = |lines: &[String]| lines.iter().any(|l| l.contains("\"floor_deny\""));
    assert!(
        granted(&la) ^ granted(&lb),
        "exactly one Floor Granted: A {la:?} B {lb:?}"
    );
    assert!(
        denied(&la) ^ denied(&lb),
        "exactly one Floor Deny: A {la:?} B {lb:?}"
    );
    // The loser exits 3 (denied), the winner 0.
    let mut codes = [ca, cb];
    codes.sort();
    assert_eq!(codes, [0, 3]);
}

#[test]
fn media_without_the_floor_is_dropped_by_the_server() {
    let server = TestServer::start();
    let out = out_dir("floor_rogue");
    let wav = speech("M2_harvard_phrases.wav");
    let rec = out.join("listener.wav");
    let l = server.listener("L", "X", &rec, 10);
    let mut rogue = server.bot(
        "R",
        &["rogue", "--channel", "X", "--wav", wav.to_str().unwrap()],
    );
    rogue.expect_event(Duration::from_secs(20), "ready");
    let done = rogue.expect_event(Duration::from_secs(20), "rogue_done");
    assert!(
        done["rtp_sent"].as_u64().unwrap() > 100,
        "the rogue really sent audio: {done}"
    );
    let stats = server.get_json("/stats");
    assert!(
        stats["dropped_no_floor"].as_u64().unwrap() > 100,
        "server dropped it: {stats}"
    );
    assert_eq!(
        stats["rtp_out"].as_u64().unwrap(),
        0,
        "nothing was forwarded: {stats}"
    );
    let (code, _) = l.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let report = silence(&rec);
    assert!(
        report["peak"].as_f64().unwrap() < 0.001,
        "the listener heard the rogue: {report}"
    );
}

#[test]
fn a_talker_that_vanishes_frees_the_floor() {
    let server = TestServer::start();
    let wav = speech("F1_harvard_phrases.wav");
    let mut b = server.listener("B", "X", Path::new("/dev/null"), 30);
    let mut a = server.talker("A", "X", &wav, &[]);
    a.expect_event(Duration::from_secs(10), "floor_granted");
    b.expect_event(Duration::from_secs(10), "floor_taken");
    assert_eq!(server.get_json("/stats")["peers"], 2);
    drop(a); // SIGKILL mid-transmission: the socket closes, nothing is said.
    let idle = b.expect_event(Duration::from_secs(10), "floor_idle");
    assert_eq!(idle["channel"], "X");
    // The floor is free again and the dead peer's media state is gone.
    let mut c = server.talker("C", "X", &wav, &[]);
    c.expect_event(Duration::from_secs(10), "floor_granted");
    assert_eq!(
        server.get_json("/stats")["peers"],
        2,
        "A's peer was freed, C's added"
    );
}

#[test]
fn max_talk_time_revokes_the_floor() {
    let server = TestServer::start_with(&["--max-talk-secs", "2"]);
    let wav = speech("F2_harvard_phrases.wav");
    let mut b = server.listener("B", "X", Path::new("/dev/null"), 30);
    let mut a = server.talker("A", "X", &wav, &[]);
    let granted = a.expect_event(Duration::from_secs(10), "floor_granted");
    assert_eq!(granted["channel"], "X");
    let t0 = std::time::Instant::now();
    a.expect_event(Duration::from_secs(10), "floor_revoke");
    let held = t0.elapsed();
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(5),
        "revoked after {held:?}"
    );
    b.expect_event(Duration::from_secs(5), "floor_idle");
}

/// The floor queue (TS 24.380 "queued"): B asks while A talks, waits at
/// position 1, and is granted when A finishes, with no Floor Idle between;
/// the listener hears A's talk and then B's.
#[test]
fn a_queued_request_is_granted_when_the_holder_finishes() {
    let server = TestServer::start();
    let out = out_dir("floor_queue");
    let rec = out.join("listener.wav");
    let mut l = server.listener("L", "X", &rec, 25);
    let mut a = server.talker("A", "X", &speech("F1_harvard_phrases.wav"), &[]);
    a.expect_event(Duration::from_secs(20), "floor_granted");
    let mut b = server.talker("B", "X", &speech("M1_harvard_phrases.wav"), &["--queue"]);
    let queued = b.expect_event(Duration::from_secs(20), "floor_queued");
    assert_eq!(queued["position"], 1, "{queued}");
    let granted = b.expect_event(Duration::from_secs(30), "floor_granted");
    let a_sent = a.expect_event(Duration::from_secs(10), "talk_ended")["rtp_sent"]
        .as_u64()
        .unwrap();
    // B pressed while A had seconds of its 6 s clip left: the grant waited
    // for A's release.
    let waited = granted["access_ms"].as_f64().unwrap();
    assert!(
        waited > 1000.0,
        "granted {waited} ms after the press: {granted}"
    );
    let b_sent = b.expect_event(Duration::from_secs(30), "talk_ended")["rtp_sent"]
        .as_u64()
        .unwrap();
    assert!(a_sent > 200 && b_sent > 100, "A sent {a_sent}, B {b_sent}");
    for p in [a, b] {
        assert_eq!(p.wait(Duration::from_secs(10)).0, 0);
    }
    // The listener saw A, then B straight after (no floor_idle between).
    let is_floor = |l: &str| l.contains("\"floor_taken\"") || l.contains("\"floor_idle\"");
    let first = l.expect_line(Duration::from_secs(10), "floor event", is_floor);
    let next = l.expect_line(Duration::from_secs(10), "floor event", is_floor);
    assert!(first.contains("\"talker\":\"A\""), "{first}");
    assert!(
        next.contains("\"floor_taken\"") && next.contains("\"talker\":\"B\""),
        "{next}"
    );
    // With no gap between the talkers the listener's jitter buffer sees one
    // stream; the engine cuts it at B's Floor Taken: one report per talker,
    // together holding both talkers' packets.
    let first = l.expect_event(Duration::from_secs(20), "received");
    let second = l.expect_event(Duration::from_secs(20), "received");
    assert_eq!(first["report"]["talker"], "A", "{first}");
    assert_eq!(second["report"]["talker"], "B", "{second}");
    let packets = first["report"]["packets"].as_u64().unwrap()
        + second["report"]["packets"].as_u64().unwrap();
    assert!(
        packets + 20 >= a_sent + b_sent,
        "{packets} received of {a_sent} + {b_sent}: {first} {second}"
    );
    let a_heard = first["report"]["packets"].as_u64().unwrap();
    assert!(
        a_heard + 20 >= a_sent && a_heard <= a_sent + 20,
        "A's report holds A's talk: {first}"
    );
    assert_eq!(l.wait(Duration::from_secs(30)).0, 0);
}

/// Floor priority with pre-emption (on by default): a dispatcher's `high`
/// request revokes a normal talker, and an `emergency` one revokes the
/// dispatcher; each revoked talker learns who pre-empted it, and every
/// member sees each new talker. The listener's recording holds each
/// talker's speech in its own segment: scored against that talker's
/// source, and not matching the talker it replaced.
#[test]
fn higher_priority_preempts_the_talker() {
    let server = TestServer::start();
    let dir = out_dir("preemption_chain");
    let rec = dir.join("listener.wav");
    let (a_wav, d_wav, e_wav) = (
        speech("F1_harvard_phrases.wav"),
        speech("F2_harvard_phrases.wav"),
        speech("M1_harvard_phrases.wav"),
    );
    let mut l = server.listener("L", "X", &rec, 25);
    let mut a = server.talker("A", "X", &a_wav, &[]);
    a.expect_event(Duration::from_secs(20), "floor_granted");
    // D presses 1.5 s after joining, so that A's segment is long enough
    // to score.
    let mut d = server.talker(
        "D",
        "X",
        &d_wav,
        &["--priority", "high", "--delay-ms", "1500"],
    );
    d.expect_event(Duration::from_secs(20), "floor_granted");
    let revoked = a.expect_event(Duration::from_secs(10), "floor_revoke");
    assert_eq!(revoked["reason"], "preempted", "{revoked}");
    assert_eq!(revoked["by"]["name"], "D", "{revoked}");
    // An equal priority does not pre-empt: a second dispatcher is denied.
    let mut d2 = server.talker("D2", "X", &d_wav, &["--priority", "high"]);
    d2.expect_event(Duration::from_secs(20), "floor_deny");
    let mut e = server.talker("E", "X", &e_wav, &["--priority", "emergency"]);
    e.expect_event(Duration::from_secs(20), "floor_granted");
    let revoked = d.expect_event(Duration::from_secs(10), "floor_revoke");
    assert_eq!(revoked["reason"], "preempted", "{revoked}");
    assert_eq!(revoked["by"]["name"], "E", "{revoked}");
    e.expect_event(Duration::from_secs(20), "talk_ended");
    let taken: Vec<(String, f64)> = (0..3)
        .map(|_| {
            let t = l.expect_event(Duration::from_secs(20), "floor_taken");
            (
                t["talker"].as_str().unwrap().to_string(),
                t["ms_into_recording"].as_f64().expect("recording"),
            )
        })
        .collect();
    let order: Vec<&str> = taken.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(order, ["A", "D", "E"]);
    assert_eq!(a.wait(Duration::from_secs(10)).0, 0);
    assert_eq!(d.wait(Duration::from_secs(10)).0, 0);
    assert_eq!(d2.wait(Duration::from_secs(10)).0, 3, "denied");
    assert_eq!(e.wait(Duration::from_secs(10)).0, 0);
    assert_eq!(l.wait(Duration::from_secs(40)).0, 0);

    // Each segment, from its Floor Taken (plus 200 ms for the previous
    // talker's last packets in the jitter buffer) to the next one.
    let ms = |v: f64| v.to_string();
    let sources = [&a_wav, &d_wav, &e_wav];
    let mut scores = Vec::new();
    for (i, (who, from)) in taken.iter().enumerate() {
        let from = ms(from + 200.0);
        let mut args: Vec<String> = vec!["--after-ms".into(), from];
        if let Some((_, next)) = taken.get(i + 1) {
            args.extend(["--until-ms".into(), ms(*next)]);
        }
        let score = |source: &Path| {
            let mut all: Vec<&Path> = args.iter().map(Path::new).collect();
            all.extend([Path::new("--loop"), source, rec.as_path()]);
            audio_check(&all)
        };
        let own = score(sources[i]);
        assert_intelligible(&own, &format!("{who}'s segment"));
        // The talker it replaced is not what is heard there.
        if i > 0 {
            let other = score(sources[i - 1]);
            let s = other["stoi"].as_f64().unwrap_or(0.0);
            assert!(
                s < own["stoi"].as_f64().unwrap() - 0.2,
                "{who}'s segment against the previous talker's speech: {other} vs {own}"
            );
        }
        scores.push(format!("{who} {:.3}", own["stoi"].as_f64().unwrap()));
    }
    eprintln!("STOI per segment: {}", scores.join(", "));
}

/// An emergency (TS 24.379 emergency alert): E raises it while A talks; the
/// dispatcher L is alerted and acknowledges; E's press, asked at normal
/// priority, pre-empts A because of the emergency; a member joining during
/// it gets the alert with its acknowledgement as state; E's cancel reaches
/// everyone.
#[test]
fn an_emergency_is_alerted_acknowledged_talks_first_and_is_cancelled() {
    let server = TestServer::start();
    let wav = speech("F1_harvard_phrases.wav");
    let mut l = server.bot(
        "L",
        &[
            "listen",
            "--channel",
            "X",
            "--record",
            "/dev/null",
            "--seconds",
            "30",
            "--ack-emergencies",
        ],
    );
    l.expect_event(Duration::from_secs(20), "ready");
    let mut a = server.talker("A", "X", &wav, &[]);
    a.expect_event(Duration::from_secs(20), "floor_granted");
    let mut e = server.talker("E", "X", &wav, &["--emergency"]);
    let raised = e.expect_event(Duration::from_secs(10), "emergency");
    assert_eq!(raised["originator"]["name"], "E", "{raised}");
    let alert = l.expect_event(Duration::from_secs(10), "emergency");
    assert_eq!(alert["originator"]["name"], "E", "{alert}");
    assert!(alert["acked_by"].is_null(), "{alert}");
    let ack = l.expect_event(Duration::from_secs(10), "emergency_ack");
    assert_eq!(ack["by"]["name"], "L", "{ack}");
    e.expect_event(Duration::from_secs(20), "floor_granted");
    let revoked = a.expect_event(Duration::from_secs(10), "floor_revoke");
    assert_eq!(revoked["reason"], "preempted", "{revoked}");
    assert_eq!(revoked["by"]["name"], "E", "{revoked}");
    // Joining during the emergency: the alert, already acknowledged, as state.
    let mut late = server.bot(
        "J",
        &[
            "listen",
            "--channel",
            "X",
            "--record",
            "/dev/null",
            "--seconds",
            "20",
        ],
    );
    let state = late.expect_event(Duration::from_secs(20), "emergency");
    assert_eq!(state["originator"]["name"], "E", "{state}");
    assert_eq!(state["acked_by"]["name"], "L", "{state}");
    let over = e.expect_event(Duration::from_secs(30), "emergency_cancel");
    assert_eq!(over["by"]["name"], "E", "{over}");
    for p in [&mut l, &mut late] {
        let c = p.expect_event(Duration::from_secs(10), "emergency_cancel");
        assert_eq!(c["originator"], raised["originator"]["id"], "{c}");
    }
    assert_eq!(e.wait(Duration::from_secs(10)).0, 0);
    assert_eq!(a.wait(Duration::from_secs(10)).0, 0);
    drop((l, late));
}

/// Mute at the SFU: a listener in X and Y with Y muted gets X's talk and
/// not one packet of Y's, though both talk at once; then a listener that
/// mutes and unmutes Y during a talk gets Y's packets again within 100 ms.
#[test]
fn a_muted_channel_sends_nothing_to_its_listener() {
    let server = TestServer::start();
    let mut l = server.bot(
        "L",
        &[
            "listen",
            "--channel",
            "X",
            "--channel",
            "Y",
            "--mute",
            "Y",
            "--record",
            "/dev/null",
            "--seconds",
            "12",
        ],
    );
    l.expect_event(Duration::from_secs(20), "ready");
    l.expect_event(Duration::from_secs(10), "muted");
    let mut a = server.talker("A", "X", &speech("F1_harvard_phrases.wav"), &[]);
    let mut b = server.talker("B", "Y", &speech("M1_harvard_phrases.wav"), &[]);
    let sent: Vec<u64> = [&mut a, &mut b]
        .into_iter()
        .map(|p| {
            p.expect_event(Duration::from_secs(30), "talk_ended")["rtp_sent"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(sent.iter().all(|n| *n > 200), "both talked: {sent:?}");
    let done = l.expect_event(Duration::from_secs(30), "done");
    let by = &done["rtp_received_by_channel"];
    assert_eq!(by["Y"], 0, "the muted channel: {done}");
    assert!(by["X"].as_u64().unwrap() + 5 >= sent[0], "X heard: {done}");
    assert_eq!(l.wait(Duration::from_secs(10)).0, 0);
    // Y's downlink carries audio first, then is muted mid-talk, then
    // unmuted: the first packet after the unmute is the measure.
    let mut u = server.bot(
        "U",
        &[
            "listen",
            "--channel",
            "Y",
            "--mute",
            "Y",
            "--mute-after-ms",
            "2500",
            "--unmute-after-ms",
            "5000",
            "--record",
            "/dev/null",
            "--seconds",
            "8",
        ],
    );
    u.expect_event(Duration::from_secs(20), "ready");
    // A steady tone: speech has pauses, in which DTX sends nothing.
    let tone = out_dir("floor_mute").join("tone.wav");
    write_tone(&tone, 8);
    let b = server.talker("B2", "Y", &tone, &[]);
    let muted = u.expect_event(Duration::from_secs(10), "muted");
    assert_eq!(muted["muted"], true, "{muted}");
    // Muted mid-talk: nothing more arrives, so the stream ends with its report.
    u.expect_event(Duration::from_secs(10), "received");
    let unmuted = u.expect_event(Duration::from_secs(20), "unmuted");
    let ms = unmuted["first_rtp_ms"].as_f64().unwrap();
    assert!(ms < 100.0, "resumed {ms} ms after the unmute: {unmuted}");
    assert_eq!(b.wait(Duration::from_secs(30)).0, 0);
    assert_eq!(u.wait(Duration::from_secs(20)).0, 0);
}

/// All-call: one press into W, X, Y and Z while Z is busy. T is granted W,
/// X and Y and denied Z; the listeners of W, X and Y hear T's speech, Z's
/// listener gets none of it (only Z's own talker).
#[test]
fn an_all_call_reaches_every_granted_channel() {
    let server = TestServer::start();
    let out = out_dir("floor_all_call");
    let wav = speech("M2_harvard_phrases.wav");
    let chans = ["W", "X", "Y", "Z"];
    let recs: Vec<_> = chans.iter().map(|c| out.join(format!("{c}.wav"))).collect();
    let mut ls: Vec<Proc> = chans
        .iter()
        .zip(&recs)
        .map(|(c, rec)| {
            let mut l = server.bot(
                &format!("L{c}"),
                &[
                    "listen",
                    "--channel",
                    c,
                    "--record",
                    rec.to_str().unwrap(),
                    "--seconds",
                    "14",
                ],
            );
            l.expect_event(Duration::from_secs(20), "ready");
            l
        })
        .collect();
    let mut z = server.talker("Zt", "Z", &speech("F2_harvard_phrases.wav"), &[]);
    z.expect_event(Duration::from_secs(20), "floor_granted");
    let mut args = vec!["talk"];
    for c in chans {
        args.extend(["--channel", c]);
    }
    args.extend(["--wav", wav.to_str().unwrap()]);
    let mut t = server.bot("T", &args);
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < chans.len() {
        let line = t.expect_line(Duration::from_secs(20), "floor answer", |l| {
            l.contains("\"floor_granted\"") || l.contains("\"floor_deny\"")
        });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        answers.insert(
            v["channel"].as_str().unwrap().to_string(),
            v["event"].as_str().unwrap().to_string(),
        );
    }
    for c in ["W", "X", "Y"] {
        assert_eq!(answers[c], "floor_granted", "{answers:?}");
    }
    assert_eq!(answers["Z"], "floor_deny", "{answers:?}");
    assert_eq!(t.wait(Duration::from_secs(30)).0, 3, "a channel was busy");
    assert_eq!(z.wait(Duration::from_secs(30)).0, 0);
    let heard: Vec<String> = ls
        .iter_mut()
        .map(|l| {
            let taken = l.expect_event(Duration::from_secs(20), "floor_taken");
            taken["talker"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(heard, ["T", "T", "T", "Zt"]);
    for l in ls {
        assert_eq!(l.wait(Duration::from_secs(30)).0, 0);
    }
    for (c, rec) in chans.iter().zip(&recs).take(3) {
        assert_intelligible(&compare(&wav, rec), &format!("listener of {c}"));
    }
    let z_heard = compare(&wav, &recs[3]);
    let stoi = z_heard["stoi"].as_f64().unwrap_or(0.0);
    assert!(stoi < 0.6, "Z's listener heard T: {z_heard}");
}

/// Pan per channel: A talks in X and B in Y at the same time; the listener
/// puts X on the left and Y on the right. Its stereo recording has A's
/// speech on the left side only and B's on the right side only.
#[test]
fn panned_channels_land_on_their_own_side() {
    let server = TestServer::start();
    let out = out_dir("floor_pan");
    let rec = out.join("stereo.wav");
    let (fa, fb) = (
        speech("F1_harvard_phrases.wav"),
        speech("M1_harvard_phrases.wav"),
    );
    let mut l = server.bot(
        "L",
        &[
            "listen",
            "--channel",
            "X",
            "--channel",
            "Y",
            "--pan",
            "X=left",
            "--pan",
            "Y=right",
            "--record",
            rec.to_str().unwrap(),
            "--seconds",
            "12",
        ],
    );
    l.expect_event(Duration::from_secs(20), "ready");
    let a = server.talker("A", "X", &fa, &[]);
    let b = server.talker("B", "Y", &fb, &[]);
    for p in [a, b] {
        assert_eq!(p.wait(Duration::from_secs(30)).0, 0);
    }
    assert_eq!(l.wait(Duration::from_secs(30)).0, 0);
    let side =
        |n: &str, src: &Path| audio_check(&[Path::new("--channel"), Path::new(n), src, &rec]);
    assert_intelligible(&side("0", &fa), "left side: A in X");
    assert_intelligible(&side("1", &fb), "right side: B in Y");
    for (n, other) in [("0", &fb), ("1", &fa)] {
        let cross = side(n, other);
        let stoi = cross["stoi"].as_f64().unwrap_or(0.0);
        assert!(stoi < 0.6, "side {n} carries the other channel: {cross}");
    }
}

/// Patch: a dispatcher patches X and Y; A talks in X and L, a member of Y
/// only, is told of the patch, sees A take the floor in Y and hears A's
/// speech; after the patch is split, B talks in Y while A talks in X again.
#[test]
fn a_patch_carries_a_talker_into_the_other_channel() {
    let server = TestServer::start();
    let out = out_dir("floor_patch");
    let rec = out.join("y.wav");
    let wav = speech("F2_harvard_phrases.wav");
    let mut l = server.listener("L", "Y", &rec, 12);
    let mut d = server.bot(
        "D",
        &[
            "patch",
            "--channel",
            "X",
            "--channel",
            "Y",
            "--seconds",
            "9",
        ],
    );
    d.expect_event(Duration::from_secs(20), "ready");
    let patched = d.expect_event(Duration::from_secs(10), "patched");
    assert_eq!(
        patched["channels"],
        serde_json::json!(["X", "Y"]),
        "{patched}"
    );
    let seen = l.expect_event(Duration::from_secs(10), "patched");
    assert_eq!(seen["by"]["name"], "D", "{seen}");
    let a = server.talker("A", "X", &wav, &[]);
    let taken = l.expect_event(Duration::from_secs(20), "floor_taken");
    assert_eq!(
        (&taken["channel"], &taken["talker"]),
        (&"Y".into(), &"A".into())
    );
    assert_eq!(a.wait(Duration::from_secs(30)).0, 0);
    d.expect_event(Duration::from_secs(30), "unpatched");
    assert_eq!(d.wait(Duration::from_secs(10)).0, 0);
    assert_eq!(l.wait(Duration::from_secs(30)).0, 0);
    assert_intelligible(&compare(&wav, &rec), "Y's listener hearing X's talker");
    // Split again: two talks at once, one per channel.
    let a = server.talker("A2", "X", &wav, &[]);
    let b = server.talker("B", "Y", &speech("M2_harvard_phrases.wav"), &[]);
    for p in [a, b] {
        assert_eq!(p.wait(Duration::from_secs(30)).0, 0, "both granted");
    }
}

/// Instant recall: the listener replays A's transmission once it has ended;
/// the replay is in its recording after the live talk, and intelligible.
#[test]
fn a_received_transmission_is_replayed() {
    let server = TestServer::start();
    let out = out_dir("floor_recall");
    let rec = out.join("recall.wav");
    let wav = speech("M1_harvard_phrases.wav");
    let mut l = server.bot(
        "L",
        &[
            "listen",
            "--channel",
            "X",
            "--record",
            rec.to_str().unwrap(),
            "--seconds",
            "18",
            "--replay-first",
        ],
    );
    l.expect_event(Duration::from_secs(20), "ready");
    let a = server.talker("A", "X", &wav, &[]);
    assert_eq!(a.wait(Duration::from_secs(30)).0, 0);
    let report = l.expect_event(Duration::from_secs(20), "received");
    let id = report["report"]["recall_id"]
        .as_u64()
        .expect("kept for recall");
    let started = l.expect_event(Duration::from_secs(10), "replay_started");
    assert_eq!(started["id"], id);
    let at = started["ms_into_recording"].as_f64().unwrap();
    l.expect_event(Duration::from_secs(20), "replay_ended");
    assert_eq!(l.wait(Duration::from_secs(30)).0, 0);
    // From the replay's start on, the recording holds the replay only.
    let replayed = audio_check(&[
        Path::new("--after-ms"),
        Path::new(&at.to_string()),
        &wav,
        &rec,
    ]);
    assert_intelligible(&replayed, "the replay");
    let delay = replayed["delay_ms"].as_f64().unwrap();
    assert!(delay < 100.0, "the replay starts when reported: {replayed}");
}

/// The value of the Prometheus sample `name` (with its labels) in a
/// `/metrics` text; 0 when absent (a counter not yet created).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Prometheus `/metrics` moves as a talk happens: a grant, a Floor Deny
/// `busy` for a second talker, the forwarded packets, the connections.
#[test]
fn the_metrics_count_a_talk_and_a_busy_floor() {
    let server = TestServer::start();
    let before = server.get_text("/metrics");
    let wav = speech("F2_harvard_phrases.wav");
    let mut l = server.listener("L", "X", Path::new("/dev/null"), 15);
    let mut a = server.talker("A", "X", &wav, &[]);
    a.expect_event(Duration::from_secs(20), "floor_granted");
    let mut b = server.talker("B", "X", &wav, &[]);
    b.expect_event(Duration::from_secs(20), "floor_deny");
    let during = server.get_text("/metrics");
    assert_eq!(sample(&during, "squawk_connections"), 3.0, "{during}");
    assert_eq!(b.wait(Duration::from_secs(10)).0, 3);
    assert_eq!(a.wait(Duration::from_secs(30)).0, 0);
    l.expect_event(Duration::from_secs(20), "floor_idle");
    let after = server.get_text("/metrics");
    let moved = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(moved("squawk_floor_grants_total"), 1.0, "{after}");
    assert_eq!(
        moved("squawk_floor_denies_total{reason=\"busy\"}"),
        1.0,
        "{after}"
    );
    let forwarded: f64 = (0..2)
        .map(|w| moved(&format!("squawk_rtp_forwarded_total{{worker=\"{w}\"}}")))
        .sum();
    // F2 is 5.6 s: about 280 packets of 20 ms, to one listener.
    assert!(forwarded > 200.0, "forwarded {forwarded}: {after}");
    assert!(after.trim_end().ends_with("# EOF"), "{after}");
    drop(l);
}

/// `--log-format json`: every line the server logs is one JSON object
/// with its time, level and message, and a talk is in them.
#[test]
fn the_server_logs_one_json_object_per_line_when_asked() {
    let out = out_dir("json_logs");
    let log = out.join("server.log");
    let server = TestServer::start_logged(&["--log-format", "json"], &log);
    let wav = speech("M1_harvard_phrases.wav");
    let mut a = server.talker("A", "X", &wav, &[]);
    a.expect_event(Duration::from_secs(20), "floor_granted");
    assert_eq!(a.wait(Duration::from_secs(30)).0, 0);
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["fields"].is_object(),
            "{l}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "squawk-server listening"),
        "{text}"
    );
}
