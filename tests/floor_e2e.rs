//! Floor control end to end: simultaneous presses, and media enforcement
//! against a client that sends audio without the floor.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

#[test]
fn simultaneous_presses_grant_exactly_one() {
    let server = TestServer::start();
    let wav = speech("M1_harvard_phrases.wav");
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 4000;
    let at = at.to_string();
    let mut a = server.bot("A", &["talk", "--channel", "X", "--wav", wav.to_str().unwrap(), "--at-unix-ms", &at]);
    let mut b = server.bot("B", &["talk", "--channel", "X", "--wav", wav.to_str().unwrap(), "--at-unix-ms", &at]);
    a.expect_event(Duration::from_secs(20), "ready");
    b.expect_event(Duration::from_secs(20), "ready");
    let (ca, la) = a.wait(Duration::from_secs(30));
    let (cb, lb) = b.wait(Duration::from_secs(30));
    let granted = |lines: &[String]| lines.iter().any(|l| l.contains("\"floor_granted\""));
    let denied = |lines: &[String]| lines.iter().any(|l| l.contains("\"floor_deny\""));
    assert!(granted(&la) ^ granted(&lb), "exactly one Floor Granted: A {la:?} B {lb:?}");
    assert!(denied(&la) ^ denied(&lb), "exactly one Floor Deny: A {la:?} B {lb:?}");
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
    let mut l = server.bot("L", &["listen", "--channel", "X", "--record", rec.to_str().unwrap(), "--seconds", "10"]);
    l.expect_event(Duration::from_secs(20), "ready");
    let mut rogue = server.bot("R", &["rogue", "--channel", "X", "--wav", wav.to_str().unwrap()]);
    rogue.expect_event(Duration::from_secs(20), "ready");
    let done = rogue.expect_event(Duration::from_secs(20), "rogue_done");
    assert!(done["rtp_sent"].as_u64().unwrap() > 100, "the rogue really sent audio: {done}");
    let stats = server.get_json("/stats");
    assert!(stats["dropped_no_floor"].as_u64().unwrap() > 100, "server dropped it: {stats}");
    assert_eq!(stats["rtp_out"].as_u64().unwrap(), 0, "nothing was forwarded: {stats}");
    let (code, _) = l.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let report = silence(&rec);
    assert!(report["peak"].as_f64().unwrap() < 0.001, "the listener heard the rogue: {report}");
}
