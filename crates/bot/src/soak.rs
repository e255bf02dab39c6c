//! `squawk-bot soak`: a long run of the server under steady talk and
//! churn, to see that nothing grows or complains (issue 15).
//!
//! C channels × M members of the load generator's light str0m clients
//! ([`crate::load`]): one talker per channel holds the floor and sends a
//! 20 ms packet every 20 ms for the whole run, the others count what they
//! receive. Beside them, a visitor arrives every `--churn-secs`: a client
//! that brings its media up, joins a channel while its talker talks (late
//! entry), waits for the first RTP packet and leaves.
//!
//! Talkers whose talk time runs out (Floor Revoke) press again at once.
//!
//! Figures (one JSON line with `--json`): server RSS after the warm-up and
//! at the end (and its growth, %), every 5 minutes and the largest
//! sample, visitors served and
//! failed with their join → first RTP p50/p95, delivery to the steady
//! listeners, server CPU, and the server log's error- and warning-level
//! lines (it runs at its default level, info, as an operator runs it).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    bench::{ServerProc, cpu_seconds_of},
    load::{Counters, LateEntry, late_join, quantile_ms, start_rooms},
};

/// `squawk-bot soak` options.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Channels, one talker each, talking the whole run.
    #[arg(long, default_value_t = 8)]
    pub channels: usize,
    /// Members per channel, the talker included.
    #[arg(long, default_value_t = 15)]
    pub members: usize,
    /// Length of the run after the warm-up, minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Warm-up before the baseline RSS is taken, s.
    #[arg(long, default_value_t = 60)]
    pub warmup: u64,
    /// One visitor (join, hear, leave) every this many seconds.
    #[arg(long, default_value_t = 2.0)]
    pub churn_secs: f64,
    /// Print one JSON line instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// The server binary [default: squawk-server next to this program].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Where the server's log goes [default: a file in the temp directory].
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// Counts one visitor's outcome: served (with its join → first RTP time)
/// or failed (the first failure printed).
fn tally(
    done: anyhow::Result<LateEntry>,
    served: &mut usize,
    failed: &mut usize,
    first_rtp: &mut Vec<Duration>,
) {
    match done {
        Ok(entry) => {
            *served += 1;
            first_rtp.push(entry.joined + entry.first_rtp);
        }
        Err(e) => {
            if *failed == 0 {
                eprintln!("visitor: {e:#}");
            }
            *failed += 1;
        }
    }
}

/// Runs the soak and prints its figures.
pub async fn run(args: &SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.members >= 2, "--members must be at least 2");
    anyhow::ensure!(args.churn_secs > 0.0, "--churn-secs must be positive");
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("squawk-server"),
    };
    let log = args.log.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("squawk-soak-{}.log", std::process::id()))
    });
    let clients = args.channels * args.members;
    // Room for the visitors, one at a time, and their admission rate.
    let server = ServerProc::start_logged(&bin, clients + 64, &log)?;
    let url = server.url();
    let counters = Arc::new(Counters::default());
    let (tasks, _) = start_rooms(&url, args.channels, args.members, &counters).await?;
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    let rss0 = server.rss_mib()?;
    let (cpu0, me0) = (server.cpu_seconds()?, cpu_seconds_of(std::process::id())?);
    let (tx0, rx0) = (
        counters.sent.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let mut churn = tokio::time::interval(Duration::from_secs_f64(args.churn_secs));
    let mut sample = tokio::time::interval(Duration::from_secs(10));
    let (mut served, mut failed, mut first_rtp, mut rss_max) = (0usize, 0usize, Vec::new(), rss0);
    let mut k = 0;
    let mut visitors = tokio::task::JoinSet::new();
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let (mut ticks, mut by_5min) = (0u64, Vec::new());
    while t0.elapsed() < run_for {
        tokio::select! {
            _ = churn.tick() => {
                let url = url.clone();
                let room = k % args.channels;
                visitors.spawn(async move { late_join(&url, room, k).await });
                k += 1;
            }
            Some(done) = visitors.join_next() => tally(done?, &mut served, &mut failed, &mut first_rtp),
            _ = sample.tick() => {
                let rss = server.rss_mib()?;
                rss_max = rss_max.max(rss);
                // One sample every 5 minutes for the report (10 s ticks).
                if ticks % 30 == 0 {
                    by_5min.push(round1(rss));
                }
                ticks += 1;
                anyhow::ensure!(
                    counters.failed.load(Ordering::Relaxed) == 0,
                    "a steady client failed"
                );
            }
        }
    }
    while let Some(done) = visitors.join_next().await {
        tally(done?, &mut served, &mut failed, &mut first_rtp);
    }
    let wall = t0.elapsed().as_secs_f64();
    let rss1 = server.rss_mib()?;
    let (cpu1, me1) = (server.cpu_seconds()?, cpu_seconds_of(std::process::id())?);
    let (tx1, rx1) = (
        counters.sent.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
    );
    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    drop(server);
    first_rtp.sort();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for line in BufReader::new(std::fs::File::open(&log)?)
        .lines()
        .map_while(Result::ok)
    {
        errors += usize::from(line.contains(" ERROR "));
        warnings += usize::from(line.contains(" WARN "));
    }
    let expected = (tx1 - tx0) as f64 * (args.members - 1) as f64;
    let result = json!({
        "type": "soak",
        "channels": args.channels,
        "members": args.members,
        "minutes": round1(wall / 60.0),
        "server_rss_mb_start": round1(rss0),
        "server_rss_mb_end": round1(rss1),
        "server_rss_mb_max": round1(rss_max),
        "server_rss_mb_every_5_min": by_5min,
        "server_rss_growth_pct": ((rss1 - rss0) / rss0 * 1e4).round() / 100.0,
        "visitors": served + failed,
        "visitors_failed": failed,
        "visitor_join_to_first_rtp_ms_p50": quantile_ms(&first_rtp, 0.5),
        "visitor_join_to_first_rtp_ms_p95": quantile_ms(&first_rtp, 0.95),
        "delivery": if expected > 0.0 { ((rx1 - rx0) as f64 / expected * 1e4).round() / 1e4 } else { f64::NAN },
        "server_cpu_pct_of_core": round1((cpu1 - cpu0) / wall * 100.0),
        "loadgen_cpu_pct": round1((me1 - me0) / wall * 100.0),
        "log_errors": errors,
        "log_warnings": warnings,
        "log": log,
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "soak {} min, {} channels × {}: server RSS {} → {} MB ({} %), max {} MB; \
             {} visitors ({} failed), join → first RTP p95 {} ms; delivery {}; \
             server {} % of a core; log: {} errors, {} warnings ({})",
            result["minutes"],
            args.channels,
            args.members,
            result["server_rss_mb_start"],
            result["server_rss_mb_end"],
            result["server_rss_growth_pct"],
            result["server_rss_mb_max"],
            result["visitors"],
            failed,
            result["visitor_join_to_first_rtp_ms_p95"],
            result["delivery"],
            result["server_cpu_pct_of_core"],
            errors,
            warnings,
            log.display(),
        );
    }
    Ok(())
}
