//! Hostile datagrams at the media port (issue 15): while a talker speaks to
//! a listener, 20,000 datagrams a second of junk (random bytes, malformed
//! and unknown STUN, DTLS records, RTP and RTCP of unknown SSRCs) arrive at
//! the server's media port from eight other addresses.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use common::*;

/// A small deterministic generator (xorshift64*): the junk replays.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// The `i`-th datagram: each kind in turn.
    fn datagram(&mut self, i: u64) -> Vec<u8> {
        let len = 13 + (self.next() % 300) as usize;
        match i % 6 {
            // Random bytes, any first byte.
            0 => {
                let n = 1 + (self.next() % 1200) as usize;
                self.bytes(n)
            }
            // STUN header (binding request, magic cookie) with garbage
            // attributes whose lengths do not add up.
            1 => {
                let mut d = vec![0x00, 0x01, 0x00, 0x40, 0x21, 0x12, 0xA4, 0x42];
                d.extend(self.bytes(12 + 64));
                d
            }
            // A well-formed binding request for a username nobody has:
            // asks every peer of the worker whether it is theirs.
            2 => {
                let user = b"nobody:nothing12";
                let mut d = vec![0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xA4, 0x42];
                d.extend(self.bytes(12));
                d.extend([0x00, 0x06, 0x00, 0x10]);
                d.extend(user);
                d
            }
            // DTLS 1.2 records: a handshake and application data.
            3 => {
                let mut d = vec![
                    if self.next().is_multiple_of(2) {
                        22
                    } else {
                        23
                    },
                    0xFE,
                    0xFD,
                ];
                d.extend(self.bytes(8));
                d.extend(((len - 13) as u16).to_be_bytes());
                d.extend(self.bytes(len - 13));
                d
            }
            // RTP (version 2, Opus PT 111) from an unknown SSRC.
            4 => {
                let mut d = vec![0x80, 111];
                d.extend(self.bytes(len - 2));
                d
            }
            // RTCP sender and receiver reports of unknown SSRCs.
            _ => {
                let mut d = vec![0x81, 200 + (self.next() % 2) as u8, 0x00, 0x06];
                d.extend(self.bytes(24));
                d
            }
        }
    }
}

/// Sends junk to `target` at `rate` datagrams a second from 8 sockets until
/// `stop`; returns how many were sent.
fn flood(target: SocketAddr, rate: u64, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let sockets: Vec<UdpSocket> = (0..8)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a flood socket"))
            .collect();
        let mut junk = Junk(0x5eed);
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let d = junk.datagram(sent);
                // A full socket buffer is the flood's problem, not the test's.
                let _ = sockets[(sent % 8) as usize].send_to(&d, target);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the parenthesised command name: utime is the 14th
    // field of the line, stime the 15th, in clock ticks (100 per second).
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[test]
fn junk_at_the_media_port_does_not_disturb_a_talk_or_flood_the_log() {
    let out = out_dir("hostile_e2e");
    let port = free_udp_port();
    let log = out.join("server.log");
    let server = TestServer::start_on_media(port, &[], &log);
    let source = speech("F1_harvard_phrases.wav");
    let rec = out.join("l.wav");
    let mut listener = server.listener("L", "N", &rec, 14);
    let mut talker = server.talker("T", "N", &source, &["--delay-ms", "1500"]);
    let log_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let stray_before = server.get_json("/stats")["stray_datagrams"]
        .as_u64()
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (started, cpu_before) = (Instant::now(), cpu_time(server.proc.pid()));
    let flooder = flood(
        SocketAddr::from(([127, 0, 0, 1], port)),
        20_000,
        stop.clone(),
    );
    talker.expect_event(Duration::from_secs(10), "floor_granted");
    talker.expect_event(Duration::from_secs(20), "talk_ended");
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().expect("flood thread");
    let (secs, cpu) = (
        started.elapsed().as_secs_f64(),
        (cpu_time(server.proc.pid()) - cpu_before).as_secs_f64(),
    );
    let (code, _) = talker.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "talker failed");
    let received = listener.expect_event(Duration::from_secs(20), "received");
    let (code, _) = listener.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "listener failed");

    let rate = sent as f64 / secs;
    let stray = server.get_json("/stats")["stray_datagrams"]
        .as_u64()
        .unwrap()
        - stray_before;
    let cpu_pct = cpu / secs * 100.0;
    let log_growth = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) - log_before;
    eprintln!(
        "flood: {sent} datagrams in {secs:.1} s ({rate:.0}/s); server counted {stray} stray; \
         server CPU {cpu_pct:.0} % of a core; log grew {log_growth} bytes"
    );
    // The flood was what the test claims.
    assert!(
        rate >= 15_000.0,
        "the flood reached only {rate:.0} datagrams/s"
    );
    // The server saw it and set it aside, counted, not logged line by line.
    assert!(
        stray as f64 >= 0.5 * sent as f64,
        "{stray} of {sent} counted stray"
    );
    assert!(
        log_growth < 16 * 1024,
        "the log grew {log_growth} bytes during the flood"
    );
    // Generous: junk costs the server a map lookup each, not a busy core.
    assert!(
        cpu_pct < 90.0,
        "server CPU {cpu_pct:.0} % of a core during the flood"
    );
    // The talk was not disturbed.
    let report = &received["report"];
    assert_eq!(report["talker"], "T");
    assert!(report["lost"].as_u64().unwrap() <= 5, "{received}");
    assert_intelligible(&compare(&source, &rec), "L under the flood");
}
