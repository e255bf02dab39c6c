//! Browser-client latency figures (a benchmark, not a test: it asserts
//! nothing about speed and is `#[ignore]`d). Run with
//! `scripts/bench-browser.sh`, which prints:
//!
//! - **link opened → first audio heard**: a bot talks a steady tone into a
//!   channel; a fresh page opens `/c/CHANNEL?name=…` and its WebAudio
//!   analyser dates the first audible sample of the downlink. From the
//!   moment the driver asks the page to load (Unix ms) to that sample.
//! - **browser mouth-to-ear**: page A holds the floor with its microphone
//!   gain at 0 and mixes 150 ms 1 kHz bursts into its uplink after the gain
//!   stage; page B, in the same browser, dates each burst's first sample.
//!   Capture processing and the output device are outside this span;
//!   everything from the uplink track to the listener's decoded audio
//!   (Opus encode, pacing, SRTP, the SFU, NetEq jitter buffer, decode) is in.
//! - **console monitoring** (`browser_monitoring`): a 1280×800 page in the
//!   console layout monitoring 8 and then 24 channels while 4 bots talk in 4
//!   of them: CPU (% of one core) and memory of the whole Chromium process
//!   tree (and its node driver) over 20 s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::time::Duration;

use common::{usage::*, *};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

#[test]
#[ignore = "benchmark: run scripts/bench-browser.sh"]
fn browser_latency() {
    let runs: usize = std::env::var("SQUAWK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let server = TestServer::start();
    let out = out_dir("browser_bench");
    let tone = out.join("tone.wav");
    write_tone(&tone, 50);
    let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));

    // Link opened -> first audio heard.
    let mut bot = server.talker("Tone", "L", &tone, &[]);
    bot.expect_event(Duration::from_secs(10), "floor_granted");
    let mut first = Vec::new();
    for i in 0..runs {
        let page = format!("l{i}");
        let opened = browser.open(&page, &server.page_url("L", &format!("Late{i}")));
        let heard = browser.wait(
            &page,
            "(squawkApp.engine.debug.downlinks().find(d => d.firstAudioAt) || {}).firstAudioAt",
            Duration::from_secs(20),
        );
        let ms = heard.as_f64().unwrap() - opened as f64;
        eprintln!("link opened -> first audio, run {i}: {ms:.0} ms");
        first.push(ms);
        browser.cmd(serde_json::json!({"cmd": "close_page", "page": page}));
    }
    drop(bot);

    // Browser mouth-to-ear, page A -> server -> page B.
    browser.open("a", &server.page_url("M", "A"));
    browser.open("b", &server.page_url("M", "B"));
    browser.wait_ready("a", "M");
    browser.wait_ready("b", "M");
    browser.eval("a", "squawkApp.engine.setGain(0), true");
    browser.press("a");
    browser.wait(
        "a",
        "document.getElementById('ptt').dataset.state === 'talking'",
        Duration::from_secs(5),
    );
    let mut m2e = Vec::new();
    for i in 0..runs * 2 {
        // Quiet first, so that the burst is a fresh onset at B.
        browser.wait(
            "b",
            "squawkApp.engine.debug.downlinks().every(d => d.level < 0.001)",
            Duration::from_secs(5),
        );
        let sent = browser.eval("a", "squawkApp.engine.debug.injectBurst(150)");
        let sent = sent.as_f64().unwrap();
        let js = format!(
            "(squawkApp.engine.debug.downlinks().flatMap(d => d.onsets).find(t => t > {sent}))"
        );
        let heard = browser.wait("b", &js, Duration::from_secs(5));
        let ms = heard.as_f64().unwrap() - sent;
        eprintln!("mouth-to-ear, burst {i}: {ms:.1} ms");
        m2e.push(ms);
    }
    browser.release("a");
    browser.quit();

    let line = |name: &str, v: &mut Vec<f64>| {
        println!(
            "{name:<34} p50 {:>7.1} ms   min {:>7.1}   max {:>7.1}   (n = {})",
            percentile(v, 0.5),
            v[0],
            v[v.len() - 1],
            v.len()
        );
    };
    println!(
        "\nbrowser client, Chromium {}, loopback:",
        browser_version()
    );
    line("link opened -> first audio heard", &mut first);
    line("browser mouth-to-ear (A -> SFU -> B)", &mut m2e);
}

fn browser_version() -> String {
    std::process::Command::new("/usr/bin/chromium")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "benchmark: run scripts/bench-browser.sh"]
fn browser_monitoring() {
    let server = TestServer::start();
    let wav = speech("F1_harvard_phrases.wav");
    println!(
        "\nbrowser console monitoring channels, 4 talking at once ({}):",
        browser_version()
    );
    for n in [8usize, 24] {
        let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));
        browser.open("p", &server.page_url("m01", "Desk"));
        browser.viewport("p", 1280, 800);
        browser.wait_ready("p", "m01");
        for i in 2..=n {
            browser.eval("p", &format!("squawkApp.engine.join('m{i:02}'), true"));
        }
        browser.wait(
            "p",
            &format!("document.querySelectorAll('#tiles .tile').length === {n}"),
            Duration::from_secs(30),
        );
        let pids = tree(browser.proc.pid());
        let (idle_cpu, _) = cpu_percent(&pids, Duration::from_secs(10));
        let bots: Vec<Proc> = (1..=4)
            .map(|i| {
                let c = format!("m{i:02}");
                server.talker(
                    &format!("T{c}"),
                    &c,
                    &wav,
                    &["--repeat", "12", "--gap-ms", "0"],
                )
            })
            .collect();
        browser.wait(
            "p",
            "document.querySelectorAll('#tiles .tile.live').length === 4",
            Duration::from_secs(20),
        );
        print_receiving(n, idle_cpu, &tree(browser.proc.pid()));
        drop(bots);
        browser.quit();
    }
}
