//! `squawk-netsim`: the impairing UDP relay of the test kit as a command,
//! for benchmarks and manual trials.
//!
//! ```text
//! squawk-netsim --listen 127.0.0.2:7400 --upstream 127.0.0.1:7400 \
//!     --uplink "loss=10%" --downlink "burst=20%/3,delay=40ms"
//! ```
//!
//! Prints `squawk-netsim ready listen=ADDR` once listening, then reads
//! commands from stdin, one per line, and answers each with one JSON line:
//! `profiles UPLINK DOWNLINK` (change both impairments), `outage MS` (cut
//! every client both ways), `stats` (counters). Ends at end of input or on
//! a signal.

use std::{
    io::{BufRead, Write},
    net::SocketAddr,
    time::Duration,
};

use clap::Parser;
use squawk_netsim::{LinkStats, Profile, Relay, RelayConfig};

/// An impairing UDP relay (see the crate docs for profiles).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where clients send (the address the server advertises).
    #[arg(long)]
    listen: SocketAddr,
    /// The server's real media address.
    #[arg(long)]
    upstream: SocketAddr,
    /// Impairment client → server, e.g. `loss=10%` or `burst=20%/3,delay=40ms`.
    #[arg(long, default_value = "clean")]
    uplink: Profile,
    /// Impairment server → client.
    #[arg(long, default_value = "clean")]
    downlink: Profile,
    /// Seed of the random losses and delays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn stats_json(s: &LinkStats) -> String {
    format!(
        "{{\"offered\":{},\"delivered\":{},\"lost\":{},\"outage\":{},\"queue_full\":{}}}",
        s.offered, s.delivered, s.lost, s.outage, s.queue_full
    )
}

fn main() {
    let args = Args::parse();
    let relay = match Relay::start(RelayConfig {
        listen: args.listen,
        upstream: args.upstream,
        uplink: args.uplink,
        downlink: args.downlink,
        seed: args.seed,
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("squawk-netsim: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    println!("squawk-netsim ready listen={}", relay.local_addr());
    let mut out = std::io::stdout();
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["profiles", up, down] => match (up.parse::<Profile>(), down.parse::<Profile>()) {
                (Ok(up), Ok(down)) => {
                    relay.set_profiles(up, down);
                    "{\"ok\":true}".to_string()
                }
                (Err(e), _) | (_, Err(e)) => format!("{{\"error\":{:?}}}", e.to_string()),
            },
            ["outage", ms] => match ms.parse::<u64>() {
                Ok(ms) => {
                    relay.outage(Duration::from_millis(ms));
                    "{\"ok\":true}".to_string()
                }
                Err(_) => "{\"error\":\"outage MS: whole milliseconds\"}".to_string(),
            },
            ["stats"] => {
                let s = relay.stats();
                format!(
                    "{{\"clients\":{},\"uplink\":{},\"downlink\":{}}}",
                    s.clients,
                    stats_json(&s.uplink),
                    stats_json(&s.downlink)
                )
            }
            [] => continue,
            _ => format!("{{\"error\":{:?}}}", format!("unknown command: {line}")),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}
