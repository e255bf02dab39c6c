//! `squawk-bot storm`: a connect storm against a server it starts.
//!
//! N WebSocket clients (signaling only, no media) connect at once, as every
//! client of a restarted server would, each says `hello`, joins one of C
//! channels (client `i` joins `storm{i mod C}`) and asks `list_channels`,
//! then keeps reading. The server handles a client's messages in order, so
//! the `channels` reply means the client is a member: it is admitted. (A
//! client without media never gets `joined`, which waits for its downlink
//! track.) A refused connect (a full accept backlog) is retried after
//! 100 ms, up to 20 times, as a real client would, and counted. Figures (one
//! JSON line with `--json`): the time from the first connect to the last
//! admission, each client's first connect attempt → admitted p50/p95/max,
//! the server's CPU over the storm, its peak RSS (`VmHWM`) and its RSS once
//! settled.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use squawk_protocol::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::{connect_async, tungstenite::Message};

use crate::{bench::ServerProc, load::quantile_ms};

/// `squawk-bot storm` options.
#[derive(Debug, clap::Args)]
pub struct StormArgs {
    /// WebSocket clients connecting at once.
    #[arg(long, default_value_t = 2000)]
    pub clients: usize,
    /// Channels they join, spread evenly.
    #[arg(long, default_value_t = 20)]
    pub channels: usize,
    /// Give up when not everyone is in after this long, s.
    #[arg(long, default_value_t = 120)]
    pub deadline: u64,
    /// Print one JSON line instead of a sentence.
    #[arg(long)]
    pub json: bool,
    /// The server binary [default: squawk-server next to this program].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
}

/// One client: connects, joins, reports its connect → admitted time, then
/// reads (and discards) presence until `stop`.
async fn client(
    url: String,
    i: usize,
    channels: usize,
    admitted: mpsc::UnboundedSender<Duration>,
    retries: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut attempt = 0;
    let ws = loop {
        match connect_async(url.as_str()).await {
            Ok((ws, _)) => break ws,
            Err(_) if attempt < 20 => {
                attempt += 1;
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("connect, 20 retries"),
        }
    };
    let (mut tx, mut rx) = ws.split();
    for m in [
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            name: format!("S{i}"),
            password: None,
            token: None,
        },
        ClientMessage::Join {
            channel: format!("storm{}", i % channels).parse()?,
        },
        ClientMessage::ListChannels,
    ] {
        tx.send(Message::Text(m.to_json().into())).await?;
    }
    let mut member = false;
    while let Some(msg) = rx.next().await {
        let Message::Text(text) = msg? else { continue };
        match ServerMessage::from_json(&text)? {
            ServerMessage::Channels { .. } if !member => {
                member = true;
                let _ = admitted.send(start.elapsed());
            }
            ServerMessage::Error { code, message } => {
                anyhow::bail!("server error {code:?}: {message}")
            }
            _ => {}
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    anyhow::ensure!(stop.load(Ordering::Relaxed), "signaling closed");
    Ok(())
}

/// Runs the storm and prints its figures.
pub async fn run(args: &StormArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.channels >= 1, "--channels must be at least 1");
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("squawk-server"),
    };
    let server = ServerProc::start_for_clients(&bin, args.clients, None)?;
    let url = server.url();
    let rss_idle = server.rss_mib()?;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let (admitted_tx, mut admitted_rx) = mpsc::unbounded_channel();
    let cpu0 = server.cpu_seconds()?;
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let (url, admitted, stop, failed, retries) = (
            url.clone(),
            admitted_tx.clone(),
            stop.clone(),
            failed.clone(),
            retries.clone(),
        );
        let channels = args.channels;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = client(url, i, channels, admitted, retries, stop.clone()).await
                && !stop.load(Ordering::Relaxed)
                && failed.fetch_add(1, Ordering::Relaxed) == 0
            {
                eprintln!("storm client {i}: {e:#}");
            }
        }));
    }
    drop(admitted_tx);
    let mut times = Vec::with_capacity(args.clients);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.deadline);
    while times.len() < args.clients {
        anyhow::ensure!(failed.load(Ordering::Relaxed) == 0, "a storm client failed");
        match tokio::time::timeout_at(deadline, admitted_rx.recv()).await {
            Ok(Some(t)) => times.push(t),
            Ok(None) => anyhow::bail!("storm clients ended before all were admitted"),
            Err(_) => anyhow::bail!(
                "only {} of {} clients admitted after {} s",
                times.len(),
                args.clients,
                args.deadline
            ),
        }
    }
    let admit_s = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu0;
    // Settled: presence deltas delivered, buffers returned.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (peak, settled) = (server.peak_rss_mib()?, server.rss_mib()?);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    times.sort();
    let result = json!({
        "type": "storm",
        "server": "squawk",
        "clients": args.clients,
        "channels": args.channels,
        "admit_all_s": (admit_s * 100.0).round() / 100.0,
        "admitted_per_s": (args.clients as f64 / admit_s).round(),
        "admit_ms_p50": quantile_ms(&times, 0.5),
        "admit_ms_p95": quantile_ms(&times, 0.95),
        "admit_ms_max": quantile_ms(&times, 1.0),
        "connect_retries": retries.load(Ordering::Relaxed),
        "server_cpu_s": (cpu * 100.0).round() / 100.0,
        "server_rss_idle_mb": (rss_idle * 10.0).round() / 10.0,
        "server_rss_peak_mb": (peak * 10.0).round() / 10.0,
        "server_rss_settled_mb": (settled * 10.0).round() / 10.0,
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "{} clients into {} channels: all admitted in {} s (connect → member p50 {} ms, \
             p95 {} ms, {} connect retries); server CPU {} s, RSS peak {} MB, settled {} MB",
            args.clients,
            args.channels,
            result["admit_all_s"],
            result["admit_ms_p50"],
            result["admit_ms_p95"],
            result["connect_retries"],
            result["server_cpu_s"],
            result["server_rss_peak_mb"],
            result["server_rss_settled_mb"],
        );
    }
    Ok(())
}
