//! Desktop app resource figures (a benchmark, not a test: `#[ignore]`d and
//! asserting nothing about speed). Run with `scripts/bench-app.sh`, which
//! prints, for the whole app process tree (the `squawk` process and its
//! WebKit web and network processes):
//!
//! - memory when idle and connected: the sum of RSS and the sum of PSS
//!   (proportional set size, shared pages split between the processes that
//!   map them; from `/proc/PID/smaps_rollup`);
//! - CPU, % of one core, over 20 s idle and over 20 s while receiving a
//!   bot's continuous speech (utime + stime from `/proc/PID/stat`), and the
//!   busiest threads in each window (`/proc/PID/task/TID/stat`);
//! - global talk key → Floor Granted as the app sees it (its own event
//!   timestamps, `--print-events`), 10 presses through xdotool.
//!
//! The app runs in a private Xvfb with PulseAudio null sinks, as in
//! `app_e2e`, so its audio path (cpal capture and playout) is live.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The pid and all its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = rest.split_whitespace().nth(1).unwrap().parse().unwrap();
        parent.push((pid, ppid));
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// utime + stime of every process in the tree, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split_whitespace().collect();
            f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
        })
        .sum()
}

/// (sum of RSS, sum of PSS) of the tree, KiB.
fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .fold((0, 0), |(r, p), t| {
            (r + field(&t, "Rss:"), p + field(&t, "Pss:"))
        })
}

/// utime + stime of every thread in the tree, in clock ticks, by
/// "process/thread" name (threads of one name summed).
fn thread_ticks(pids: &[u32]) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for p in pids {
        let proc_name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let name = &stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()];
            let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
                .split_whitespace()
                .collect();
            let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
            *out.entry(format!("{}/{name}", proc_name.trim()))
                .or_insert(0) += ticks;
        }
    }
    out
}

/// CPU of the tree over `window`, % of one core, and the busiest threads
/// (name, % of one core), busiest first.
fn cpu_percent(pids: &[u32], window: Duration) -> (f64, Vec<(String, f64)>) {
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let t0 = cpu_ticks(pids);
    let th0 = thread_ticks(pids);
    let start = Instant::now();
    std::thread::sleep(window); // the measurement window itself
    let t1 = cpu_ticks(pids);
    let th1 = thread_ticks(pids);
    let secs = start.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / ticks_per_s / secs * 100.0;
    let mut threads: Vec<(String, f64)> = th1
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                pct(t - th0.get(name).copied().unwrap_or(0).min(*t)),
            )
        })
        .filter(|(_, p)| *p > 0.0)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    threads.truncate(8);
    (pct(t1 - t0), threads)
}

/// One line of the busiest threads.
fn busiest(threads: &[(String, f64)]) -> String {
    threads
        .iter()
        .map(|(n, p)| format!("{n} {p:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
#[ignore = "benchmark: run scripts/bench-app.sh"]
fn app_resources() {
    let out = out_dir("app_bench");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let mut app = spawn_app(&x, &pulse, &server, &out, "bench", &["--talk-key", "F9"]);
    app_ready(&mut app);

    // Press -> Floor Granted as the app sees it: from its talk-key event to
    // its Floor Granted event, both stamped by the app.
    let mut access = Vec::new();
    for _ in 0..10 {
        x.xdotool(&["keydown", "F9"]);
        let down = app_event(&mut app, Duration::from_secs(5), "talk_key");
        let granted = app_event(&mut app, Duration::from_secs(5), "floor_granted");
        x.xdotool(&["keyup", "F9"]);
        app_event(&mut app, Duration::from_secs(5), "talk_ended");
        access.push(granted["at_ms"].as_f64().unwrap() - down["at_ms"].as_f64().unwrap());
    }
    access.sort_by(f64::total_cmp);
    // Let WebKit settle after the first paint.
    std::thread::sleep(Duration::from_secs(5));
    let pids = tree(app.pid());
    let (rss, pss) = memory_kib(&pids);
    let (idle_cpu, idle_threads) = cpu_percent(&pids, Duration::from_secs(20));

    let mut bot = server.talker(
        "Talker",
        "bench",
        &speech("F1_harvard_phrases.wav"),
        &["--repeat", "4", "--gap-ms", "0"],
    );
    bot.expect_event(Duration::from_secs(10), "floor_granted");
    app_event(&mut app, Duration::from_secs(5), "floor_taken");
    let (rx_cpu, rx_threads) = cpu_percent(&pids, Duration::from_secs(20));
    let (rss_rx, pss_rx) = memory_kib(&pids);
    drop(bot);

    println!(
        "\ndesktop app process tree ({} processes), binaries from {}:",
        pids.len(),
        bin_dir().display()
    );
    for p in &pids {
        let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        let (r, s) = memory_kib(&[*p]);
        println!(
            "  {:<22} RSS {:>6.1} MiB  PSS {:>6.1} MiB  CPU time so far {:>5.2} s",
            name.trim(),
            r as f64 / 1024.0,
            s as f64 / 1024.0,
            cpu_ticks(&[*p]) as f64 / 100.0
        );
    }
    println!(
        "  talk key -> Floor Granted: p50 {:.2} ms, max {:.2} ms (n = {})",
        access[access.len() / 2],
        access[access.len() - 1],
        access.len()
    );
    println!(
        "  idle, connected:   RSS sum {:>6.1} MiB   PSS sum {:>6.1} MiB   CPU {:>5.2} % of a core",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0,
        idle_cpu
    );
    println!(
        "  receiving speech:  RSS sum {:>6.1} MiB   PSS sum {:>6.1} MiB   CPU {:>5.2} % of a core",
        rss_rx as f64 / 1024.0,
        pss_rx as f64 / 1024.0,
        rx_cpu
    );
    println!(
        "  busiest threads idle (% of a core):      {}",
        busiest(&idle_threads)
    );
    println!(
        "  busiest threads receiving (% of a core): {}",
        busiest(&rx_threads)
    );
}
