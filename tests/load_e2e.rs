//! `squawk-bot load` (the forwarding load generator) against a real server:
//! its str0m clients connect, the talkers are granted, and the listeners
//! count what the SFU forwards. Speed is for the benchmark; this checks that
//! the generator measures something true (every packet delivered).

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
    assert_eq!(load.wait(Duration::from_secs(20)).0, 0);
}
