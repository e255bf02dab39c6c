//! `squawk-bot load` (the forwarding load generator) and `squawk-bot storm`
//! against a real server: the load's str0m clients connect, the talkers are
//! granted, the listeners count what the SFU forwards, late joiners hear the
//! talker; the storm's clients are all admitted. Speed is for the benchmark;
//! this checks that the generators measure something true.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn the_load_generator_delivers_every_packet_and_reports_its_figures() {
    let server = bin("squawk-server");
    let mut load = Proc::spawn(
        "load",
        std::process::Command::new(bin("squawk-bot")).args([
            "load",
            "--rooms",
            "2",
            "--members",
            "4",
            "--seconds",
            "3",
            "--warmup",
            "1",
            "--late-joins",
            "4",
            "--json",
            "--server-bin",
            server.to_str().unwrap(),
        ]),
    );
    let line = load.expect_line(Duration::from_secs(60), "result line", |l| {
        l.contains("\"type\":\"result\"")
    });
    let r: serde_json::Value = serde_json::from_str(&line).unwrap();
    eprintln!("load: {r}");
    assert_eq!(
        (r["rooms"].as_u64(), r["members"].as_u64()),
        (Some(2), Some(4))
    );
    // 2 talkers × 50 packets/s × 3 listeners each.
    let pps = r["forwarded_pps"].as_f64().unwrap();
    assert!(
        (270.0..=330.0).contains(&pps),
        "forwarded {pps} packets/s: {r}"
    );
    let delivery = r["delivery"].as_f64().unwrap();
    assert!(delivery >= 0.99, "delivery {delivery}: {r}");
    for key in [
        "server_cpu_us_per_forwarded_pkt",
        "server_rss_mb",
        "added_delay_p99_ms",
        "loadgen_cpu_pct",
    ] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {r}");
    }
    // Late entry: each joiner was told who talks after `joined`, and heard
    // the talker (the figures exist only for joiners that got audio).
    assert_eq!(r["late_joins"], 4, "{r}");
    assert_eq!(r["late_floor_taken_after_joined"], 4, "{r}");
    for key in [
        "late_join_to_joined_ms_p95",
        "late_joined_to_first_rtp_ms_p95",
    ] {
        assert!(r[key].as_f64().is_some_and(|v| v >= 0.0), "{key}: {r}");
    }
    assert_eq!(load.wait(Duration::from_secs(20)).0, 0);
}

#[test]
fn the_storm_generator_admits_every_client_and_reports_its_figures() {
    let server = bin("squawk-server");
    let mut storm = Proc::spawn(
        "storm",
        std::process::Command::new(bin("squawk-bot")).args([
            "storm",
            "--clients",
            "300",
            "--channels",
            "6",
            "--json",
            "--server-bin",
            server.to_str().unwrap(),
        ]),
    );
    let line = storm.expect_line(Duration::from_secs(90), "storm line", |l| {
        l.contains("\"type\":\"storm\"")
    });
    let r: serde_json::Value = serde_json::from_str(&line).unwrap();
    eprintln!("storm: {r}");
    assert_eq!(r["clients"], 300, "{r}");
    let (p50, max) = (
        r["admit_ms_p50"].as_f64().unwrap(),
        r["admit_ms_max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= max, "{r}");
    assert!(
        r["admit_all_s"].as_f64().unwrap() * 1000.0 >= max,
        "the last admission ends the storm: {r}"
    );
    let (idle, peak) = (
        r["server_rss_idle_mb"].as_f64().unwrap(),
        r["server_rss_peak_mb"].as_f64().unwrap(),
    );
    assert!(idle > 0.0 && peak >= idle, "{r}");
    assert!(r["server_cpu_s"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(storm.wait(Duration::from_secs(20)).0, 0);
}
