//! The server under a connect storm, and late entry, end to end on
//! loopback with real speech.
//!
//! Storm: 2,000 WebSocket clients say hello and join 20 channels while 500
//! more send malformed frames (50 of them faster than the message rate
//! allows), and A talks four speech clips to B in another channel. Every
//! Floor Request of A's is granted, B's recording holds every clip
//! intelligibly, every storm client gets its `welcome` and is a member, the
//! server stays under 300 MB and writes under 1 MB of log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

const STORM_CLIENTS: usize = 2000;
const STORM_CHANNELS: usize = 20;
const HOSTILE_CLIENTS: usize = 500;
/// Hostile clients that also exceed the message rate.
const FLOODERS: usize = 50;

#[derive(Default)]
struct Storm {
    welcomed: AtomicU64,
    errors_to_hostile: AtomicU64,
    rate_limited: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Option<Ws> {
    // Retry a refused connect (a full accept backlog); never a protocol error.
    for _ in 0..20 {
        if let Ok((ws, _)) = connect_async(url).await {
            return Some(ws);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One storm client: hello and join (signaling only, no PeerConnection),
/// then read everything until stopped.
async fn member(url: String, i: usize, storm: Arc<Storm>) {
    let Some(mut ws) = connect(&url).await else {
        storm.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let channel = format!("storm{}", i % STORM_CHANNELS);
    for m in [
        json!({"type": "hello", "version": 2, "name": format!("s{i}")}),
        json!({"type": "join", "channel": channel}),
    ] {
        if ws.send(Message::Text(m.to_string().into())).await.is_err() {
            storm.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    while !storm.stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                storm.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "welcome" {
            storm.welcomed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = ws.close(None).await;
}

/// One hostile client: garbage frames of every kind, with or without hello.
async fn hostile(url: String, i: usize, storm: Arc<Storm>) {
    let Some(ws) = connect(&url).await else {
        storm.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let reader = {
        let storm = storm.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "error" {
                        storm.errors_to_hostile.fetch_add(1, Ordering::Relaxed);
                        if v["code"] == "rate_limited" {
                            storm.rate_limited.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };
    let garbage: [Message; 6] = [
        Message::Text("{not json".into()),
        Message::Text(r#"{"type":"teleport"}"#.into()),
        Message::Text(r#"{"type":"join","channel":"../../etc"}"#.into()),
        Message::Text(r#"{"type":"floor_request","channel":"radio","priority":999}"#.into()),
        Message::Binary(vec![0xff; 64].into()),
        Message::Text(format!(r#"{{"type":"offer","sdp":"{}"}}"#, "x".repeat(500)).into()),
    ];
    if i.is_multiple_of(2) {
        let hello = json!({"type": "hello", "version": 2, "name": format!("h{i}")});
        let _ = tx.send(Message::Text(hello.to_string().into())).await;
    }
    let flood = i < FLOODERS;
    let mut n = 0usize;
    while !storm.stop.load(Ordering::Relaxed) {
        // Flooders pass the bucket (100 at once, 50/s) every 2 s; the rest
        // send 2 frames a second. The load generator shares the 2 cores with
        // the server and the bots, so it must not starve them itself.
        let burst = if flood { 150 } else { 1 };
        for _ in 0..burst {
            if tx.send(garbage[n % garbage.len()].clone()).await.is_err() {
                reader.abort();
                return;
            }
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(if flood { 2000 } else { 500 })).await;
    }
    let _ = tx.close().await;
    reader.abort();
}

/// The server's peak resident memory, MB (VmHWM).
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

#[test]
fn a_connect_storm_costs_a_talking_channel_nothing() {
    let out = out_dir("storm_e2e");
    let config = out.join("server.toml");
    // Every client comes from 127.0.0.1: lift the per-address limits.
    std::fs::write(
        &config,
        "[limits]\nmax_connections = 5000\nmax_connections_per_ip = 5000\n\
         new_connections_per_ip_per_sec = 5000\nnew_connections_per_ip_burst = 5000\n",
    )
    .unwrap();
    let log = out.join("server.log");
    let server = TestServer::start_logged(&["--config", config.to_str().unwrap()], &log);
    let clips = [
        "F1_harvard_phrases.wav",
        "M1_harvard_phrases.wav",
        "F2_harvard_phrases.wav",
        "M2_harvard_phrases.wav",
    ];
    let rec = out.join("b.wav");
    let b = server.listener("B", "radio", &rec, 55);

    let storm = Arc::new(Storm::default());
    let url = server.ws_url();
    let started = Instant::now();
    let storm_thread = {
        let storm = storm.clone();
        std::thread::spawn(move || {
            // The load generator runs at the lowest CPU priority: it must
            // load the server, not starve the listener bot it measures
            // (both share this machine's two cores with it).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_start(lowest_priority)
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for i in 0..STORM_CLIENTS {
                    tasks.push(tokio::spawn(member(url.clone(), i, storm.clone())));
                }
                for i in 0..HOSTILE_CLIENTS {
                    tasks.push(tokio::spawn(hostile(url.clone(), i, storm.clone())));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
        })
    };

    // A talks each clip as its own transmission (its own connection and
    // Floor Request) while the storm goes on.
    for clip in clips {
        let source = speech(clip);
        let mut a = server.talker("A", "radio", &source, &[]);
        a.expect_event(Duration::from_secs(30), "floor_granted");
        a.expect_event(Duration::from_secs(30), "talk_ended");
        let (code, lines) = a.wait(Duration::from_secs(20));
        assert_eq!(code, 0, "A's Floor Request must be granted: {lines:?}");
    }
    // The storm clients have no PeerConnection, so they never get `joined`
    // (it waits for the downlink track); membership shows in the channel
    // list: every storm client is a member of its channel.
    let url = server.ws_url();
    let channels = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut ws = connect(&url).await.expect("probe connects");
            for m in [
                json!({"type": "hello", "version": 2, "name": "probe"}),
                json!({"type": "list_channels"}),
            ] {
                ws.send(Message::Text(m.to_string().into())).await.unwrap();
            }
            loop {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    panic!("probe: connection ended")
                };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "channels" {
                    return v["channels"].as_array().unwrap().clone();
                }
            }
        });
    let admitted: u64 = channels
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("storm"))
        .map(|c| {
            assert_eq!(c["members"], STORM_CLIENTS / STORM_CHANNELS, "{c}");
            c["members"].as_u64().unwrap()
        })
        .sum();
    eprintln!(
        "storm after A's talk ({:.1} s): {} welcomed, {admitted} members, \
         {} errors to hostile clients ({} rate_limited), {} failed",
        started.elapsed().as_secs_f64(),
        storm.welcomed.load(Ordering::Relaxed),
        storm.errors_to_hostile.load(Ordering::Relaxed),
        storm.rate_limited.load(Ordering::Relaxed),
        storm.failed.load(Ordering::Relaxed),
    );
    let rss = peak_rss_mb(server.proc.pid());
    storm.stop.store(true, Ordering::Relaxed);
    storm_thread.join().unwrap();

    assert_eq!(b.wait(Duration::from_secs(60)).0, 0);
    for clip in clips {
        let report = compare(&speech(clip), &rec);
        eprintln!("B heard {clip}: {report}");
        assert_intelligible(&report, &format!("B, {clip}, during the storm"));
    }
    assert_eq!(
        storm.failed.load(Ordering::Relaxed),
        0,
        "no storm client lost"
    );
    // Every storm client and the 250 hostile ones that said hello.
    assert_eq!(
        storm.welcomed.load(Ordering::Relaxed),
        STORM_CLIENTS as u64,
        "every storm client got its welcome"
    );
    assert_eq!(
        admitted, STORM_CLIENTS as u64,
        "every storm client is a member"
    );
    assert!(
        storm.rate_limited.load(Ordering::Relaxed) >= FLOODERS as u64,
        "flooders are told they are rate limited"
    );
    assert!(storm.errors_to_hostile.load(Ordering::Relaxed) > HOSTILE_CLIENTS as u64);
    eprintln!("server peak RSS {rss:.1} MB");
    assert!(rss < 300.0, "server peak RSS {rss:.1} MB");
    let log_bytes = std::fs::metadata(&log).unwrap().len();
    eprintln!("server log {log_bytes} bytes");
    assert!(log_bytes < 1_000_000, "server log {log_bytes} bytes");
    assert_eq!(server.get_json("/health")["status"], "ok");
}

#[test]
fn a_late_joiner_learns_who_talks_and_hears_them_at_once() {
    let server = TestServer::start();
    let out = out_dir("late_entry_e2e");
    let source = speech("F1_harvard_phrases.wav");
    let mut a = server.talker("A", "radio", &source, &[]);
    a.expect_event(Duration::from_secs(10), "floor_granted");
    // The floor is taken: C joins now.
    let rec = out.join("c.wav");
    let rec_s = rec.to_str().unwrap();
    let mut c = server.bot(
        "C",
        &[
            "listen",
            "--channel",
            "radio",
            "--record",
            rec_s,
            "--seconds",
            "5",
        ],
    );
    let joined = c.expect_event(Duration::from_secs(20), "joined");
    assert_eq!(joined["channel"], "radio");
    let taken = c.expect_event(Duration::from_secs(5), "floor_taken");
    assert_eq!(taken["talker"], "A", "{taken}");
    // (A floor_taken before joined would be dropped by the bot, as by any
    // client, for a channel it is not in: waiting for it here would fail.)
    let heard = c.expect_event(Duration::from_secs(5), "receive_started");
    let after = heard["ms_after_joined"].as_f64().unwrap();
    eprintln!("late entry: first audio played {after} ms after joined");
    assert!(after <= 300.0, "heard the talker {after} ms after joined");
    assert_eq!(c.wait(Duration::from_secs(20)).0, 0);
    a.expect_event(Duration::from_secs(10), "talk_ended");
    // C heard the rest of A's speech from the middle: compare with the
    // matching stretch of the source.
    let report = audio_check(&[std::path::Path::new("--loop"), &source, &rec]);
    eprintln!("C (late entry): {report}");
    assert_intelligible(&report, "C, joined while A talked");
}

/// Lowers the calling thread to nice 19 (Linux: nice is per thread).
fn lowest_priority() {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()) else {
        return;
    };
    let _ = std::process::Command::new("renice")
        .args(["-n", "19", "-p", tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
