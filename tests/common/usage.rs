//! CPU and memory of a process tree, from `/proc`, for the benchmarks.

#![allow(clippy::unwrap_used)] // a panic is the failure report

use std::time::{Duration, Instant};

/// The pid and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
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
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            let f: Vec<&str> = s[s.rfind(')').unwrap() + 2..].split_whitespace().collect();
            f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
        })
        .sum()
}

/// (sum of RSS, sum of PSS) of the tree, KiB.
pub fn memory_kib(pids: &[u32]) -> (u64, u64) {
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
pub fn thread_ticks(pids: &[u32]) -> std::collections::BTreeMap<String, u64> {
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
pub fn cpu_percent(pids: &[u32], window: Duration) -> (f64, Vec<(String, f64)>) {
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
pub fn busiest(threads: &[(String, f64)]) -> String {
    threads
        .iter()
        .map(|(n, p)| format!("{n} {p:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Measures `pids` for 20 s while receiving and prints the monitoring
/// benchmark's line for `n` channels (with the idle CPU measured before).
pub fn print_receiving(n: usize, idle_cpu: f64, pids: &[u32]) {
    let (cpu, threads) = cpu_percent(pids, Duration::from_secs(20));
    let (rss, pss) = memory_kib(pids);
    println!(
        "  {n:>2} channels: idle CPU {idle_cpu:>5.2} %; receiving 4: CPU {cpu:>5.2} % of a core, \
         RSS sum {:>6.1} MiB, PSS sum {:>6.1} MiB ({} processes)",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0,
        pids.len()
    );
    println!("     busiest threads: {}", busiest(&threads));
}
