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

/// Per thread of the tree, by "process/thread" name (threads of one name
/// summed): utime + stime in clock ticks, and context switches (voluntary
/// and not, from `/proc/PID/task/TID/status`): a thread that sleeps and
/// wakes switches once per wake-up.
pub fn thread_ticks(pids: &[u32]) -> std::collections::BTreeMap<String, (u64, u64)> {
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
            let switches: u64 = std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            let e = out
                .entry(format!("{}/{name}", proc_name.trim()))
                .or_insert((0, 0));
            e.0 += ticks;
            e.1 += switches;
        }
    }
    out
}

/// One thread's share of a measurement window.
#[derive(Debug, Clone)]
pub struct ThreadUse {
    /// "process/thread".
    pub name: String,
    /// CPU, % of one core.
    pub cpu: f64,
    /// Context switches per second (about its wake-ups).
    pub switches_per_s: f64,
}

/// CPU of the tree over `window`, % of one core, and the busiest threads,
/// busiest first (the 8 with the most CPU, then any other waking more
/// than 10 times a second).
pub fn cpu_percent(pids: &[u32], window: Duration) -> (f64, Vec<ThreadUse>) {
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let t0 = cpu_ticks(pids);
    let th0 = thread_ticks(pids);
    let start = Instant::now();
    std::thread::sleep(window); // the measurement window itself
    let t1 = cpu_ticks(pids);
    let th1 = thread_ticks(pids);
    let secs = start.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / ticks_per_s / secs * 100.0;
    let mut threads: Vec<ThreadUse> = th1
        .iter()
        .map(|(name, (t, sw))| {
            let (t_0, sw_0) = th0.get(name).copied().unwrap_or((0, 0));
            ThreadUse {
                name: name.clone(),
                cpu: pct(t - t_0.min(*t)),
                switches_per_s: (sw - sw_0.min(*sw)) as f64 / secs,
            }
        })
        .filter(|u| u.cpu > 0.0 || u.switches_per_s > 10.0)
        .collect();
    threads.sort_by(|a, b| b.cpu.total_cmp(&a.cpu));
    let mut kept: Vec<ThreadUse> = threads.iter().take(8).cloned().collect();
    kept.extend(
        threads
            .into_iter()
            .skip(8)
            .filter(|u| u.switches_per_s > 10.0),
    );
    (pct(t1 - t0), kept)
}

/// One line of the busiest threads: "name CPU% (switches/s)".
pub fn busiest(threads: &[ThreadUse]) -> String {
    threads
        .iter()
        .map(|u| format!("{} {:.1} ({:.0}/s)", u.name, u.cpu, u.switches_per_s))
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
