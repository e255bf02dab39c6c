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
//!
//! With `--accounts`, the server has accounts (a fresh data directory with
//! one user) and every client says `hello` with that user's access token,
//! so each connect verifies a token and every join evaluates the user's
//! rights; the figures then also give the cost of a sign-in (Argon2id, over
//! HTTP, p50 of 10) and of one token verification (in this process, µs).

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
    /// A server with accounts: every client signs in as one user (see the
    /// module docs).
    #[arg(long)]
    pub accounts: bool,
}

/// The user the `--accounts` storm signs in as, and its password.
const STORM_USER: (&str, &str) = ("storm", "storm password");

/// Makes a data directory with the storm user, through the server's
/// command line (as an operator would).
fn accounts_dir(bin: &PathBuf) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("squawk-storm-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut add = std::process::Command::new(bin)
        .arg("--data-dir")
        .arg(&dir)
        .args(["user", "add", STORM_USER.0])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("squawk-server user add")?;
    add.stdin
        .take()
        .context("stdin")?
        .write_all(format!("{}\n", STORM_USER.1).as_bytes())?;
    anyhow::ensure!(add.wait()?.success(), "squawk-server user add failed");
    Ok(dir)
}

/// Mean cost of one access-token verification, µs (HS256, in process).
fn token_verify_us() -> f64 {
    use squawk_server::accounts::{Role, token::TokenKey};
    let key = TokenKey::from_bytes(&[7; 32]);
    let now = 1_800_000_000;
    let token = key.issue(1, "storm", Role::User, now, Duration::from_secs(900));
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let ok = key.verify(std::hint::black_box(&token), now).is_ok();
        assert!(ok, "a fresh token verifies");
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// One client: connects, joins, reports its connect → admitted time, then
/// reads (and discards) presence until `stop`.
async fn client(
    url: String,
    token: Option<String>,
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
            token,
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
    let data_dir = if args.accounts {
        Some(accounts_dir(&bin)?)
    } else {
        None
    };
    let data_arg = data_dir.as_ref().map(|d| d.to_string_lossy().into_owned());
    let extra: Vec<&str> = match &data_arg {
        Some(d) => vec!["--data-dir", d.as_str()],
        None => Vec::new(),
    };
    let server = ServerProc::start_for_clients_with(&bin, args.clients, None, &extra)?;
    let url = server.url();
    // One sign-in for everyone; ten more, timed (Argon2id is the cost).
    let (token, login_ms) = if args.accounts {
        let mut times = Vec::new();
        let mut token = None;
        for _ in 0..11 {
            let t = Instant::now();
            let tokens = squawk_engine::account::login(
                &url,
                &Default::default(),
                STORM_USER.0,
                STORM_USER.1,
            )
            .await?;
            times.push(t.elapsed());
            token = Some(tokens.access_token);
        }
        times.remove(0);
        times.sort();
        (token, quantile_ms(&times, 0.5))
    } else {
        (None, None)
    };
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
        let (channels, token) = (args.channels, token.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = client(url, token, i, channels, admitted, retries, stop.clone()).await
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
    if let Some(d) = &data_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    let result = json!({
        "type": "storm",
        "server": "squawk",
        "accounts": args.accounts,
        "login_ms_p50": login_ms,
        "token_verify_us": args.accounts.then(|| (token_verify_us() * 100.0).round() / 100.0),
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
        if args.accounts {
            println!(
                "accounts on: every hello verified a token; sign-in p50 {} ms, token verification {} µs",
                result["login_ms_p50"], result["token_verify_us"]
            );
        }
    }
    Ok(())
}
