//! End to end on loopback through the real server: bot A talks real speech
//! into channel X; B and C in X record it; D in Y records silence.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn speech_reaches_the_channel_and_only_the_channel() {
    let server = TestServer::start();
    let out = out_dir("voice_e2e");
    let source = speech("F1_harvard_phrases.wav");
    let rec = |n: &str| out.join(format!("{n}.wav"));
    let (b_wav, c_wav, d_wav) = (rec("b"), rec("c"), rec("d"));
    let stats = out.join("b.jsonl");
    let secs = "14"; // as the listeners below
    let mut b = server.bot(
        "B",
        &[
            "listen",
            "--channel",
            "X",
            "--record",
            b_wav.to_str().unwrap(),
            "--seconds",
            secs,
            "--stats",
            stats.to_str().unwrap(),
        ],
    );
    let c = server.listener("C", "X", &c_wav, 14);
    let d = server.listener("D", "Y", &d_wav, 14);
    b.expect_event(Duration::from_secs(20), "ready");
    let mut a = server.bot(
        "A",
        &["talk", "--channel", "X", "--wav", source.to_str().unwrap()],
    );
    a.expect_event(Duration::from_secs(20), "ready");
    let granted = a.expect_event(Duration::from_secs(10), "floor_granted");
    assert_eq!(granted["channel"], "X");
    let ended = a.expect_event(Duration::from_secs(20), "talk_ended");
    assert!(
        ended["rtp_sent"].as_u64().unwrap() > 200,
        "about 6 s of speech is ~300 packets: {ended}"
    );
    let (code, _) = a.wait(Duration::from_secs(10));
    assert_eq!(code, 0);
    b.expect_event(Duration::from_secs(10), "floor_taken");
    let received = b.expect_event(Duration::from_secs(20), "received");
    assert_eq!(received["report"]["talker"], "A");
    assert!(
        received["report"]["packets"].as_u64().unwrap() > 200,
        "{received}"
    );
    for p in [b, c, d] {
        let (code, _) = p.wait(Duration::from_secs(30));
        assert_eq!(code, 0);
    }

    for (who, wav) in [("B", &b_wav), ("C", &c_wav)] {
        let report = compare(&source, wav);
        eprintln!("{who}: {report}");
        assert_speech(&report, who);
    }
    // The listeners' audio was protected by the SFU's own SRTP sender, not
    // str0m's (only a listener's first packet goes through str0m), and it
    // decrypted: the recordings above are speech.
    let sfu = server.get_json("/stats");
    let (out, direct) = (
        sfu["rtp_out"].as_u64().unwrap(),
        sfu["rtp_out_direct"].as_u64().unwrap(),
    );
    assert!(out > 400, "two listeners got the talk: {sfu}");
    assert!(
        direct + 2 >= out,
        "all but the first packet per listener: {sfu}"
    );
    assert_eq!(sfu["send_dropped"], 0, "{sfu}");
    let d_report = silence(&d_wav);
    eprintln!("D: {d_report}");
    assert!(
        d_report["seconds"].as_f64().unwrap() > 10.0,
        "D recorded: {d_report}"
    );
    assert!(
        d_report["peak"].as_f64().unwrap() < 0.001,
        "D in channel Y heard something: {d_report}"
    );

    let line = std::fs::read_to_string(&stats).expect("stats file");
    let first: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("one transmission")).unwrap();
    for key in [
        "channel",
        "talker",
        "start_unix_ms",
        "duration_ms",
        "packets",
        "lost",
        "recovered_fec",
        "concealed",
        "jitter_ms",
        "jitter_buffer_ms",
    ] {
        assert!(first.get(key).is_some(), "stats line lacks {key}: {first}");
    }
    // The clip is 5.96 s, plus the 250 ms release tail.
    let duration = first["duration_ms"].as_u64().unwrap();
    assert!(
        (5_500..=6_800).contains(&duration),
        "duration {duration} ms: {first}"
    );
}

/// A dispatcher monitors two channels on one connection and hears both.
#[test]
fn one_connection_monitors_two_channels() {
    let server = TestServer::start();
    let out = out_dir("dispatcher");
    let rec = out.join("dispatcher.wav");
    let (f1, m1) = (
        speech("F1_harvard_phrases.wav"),
        speech("M1_harvard_phrases.wav"),
    );
    let mut d = server.bot(
        "Dispatch",
        &[
            "listen",
            "--channel",
            "X",
            "--channel",
            "Y",
            "--record",
            rec.to_str().unwrap(),
            "--seconds",
            "20",
        ],
    );
    d.expect_event(Duration::from_secs(20), "ready");
    let mut a = server.talker("A", "X", &f1, &[]);
    a.expect_event(Duration::from_secs(10), "floor_granted");
    assert_eq!(a.wait(Duration::from_secs(20)).0, 0);
    let mut b = server.talker("B", "Y", &m1, &[]);
    b.expect_event(Duration::from_secs(10), "floor_granted");
    assert_eq!(b.wait(Duration::from_secs(20)).0, 0);
    let mut heard = Vec::new();
    for _ in 0..2 {
        let r = d.expect_event(Duration::from_secs(20), "received");
        heard.push((
            r["report"]["channel"].as_str().unwrap().to_string(),
            r["report"]["talker"].as_str().unwrap().to_string(),
        ));
    }
    heard.sort();
    assert_eq!(
        heard,
        vec![
            ("X".to_string(), "A".to_string()),
            ("Y".to_string(), "B".to_string())
        ]
    );
    assert_eq!(d.wait(Duration::from_secs(30)).0, 0);
    for (who, source) in [("X from A", &f1), ("Y from B", &m1)] {
        let report = compare(source, &rec);
        eprintln!("dispatcher, {who}: {report}");
        assert_speech(&report, who);
    }
}
