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

use std::time::Duration;

use common::{usage::*, *};

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

/// The desktop app as a dispatcher console (window 1024×760, so the console
/// layout) monitoring 8 and then 24 channels while 4 bots talk continuously
/// in 4 of them: CPU of the whole process tree (% of one core) and memory,
/// over 20 s of receiving.
#[test]
#[ignore = "benchmark: run scripts/bench-app.sh"]
fn app_monitoring() {
    let out = out_dir("app_monitoring");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let wav = speech("F1_harvard_phrases.wav");
    println!("\ndesktop app monitoring channels, 4 talking at once:");
    for n in [8usize, 24] {
        let names: Vec<String> = (1..=n).map(|i| format!("m{i:02}")).collect();
        let mut extra: Vec<&str> = Vec::new();
        for c in &names[1..] {
            extra.extend(["--channel", c.as_str()]);
        }
        let mut app = spawn_app(&x, &pulse, &server, &out, &names[0], &extra);
        app_event(&mut app, Duration::from_secs(30), "media");
        let joined = |app: &Proc| {
            app.seen
                .iter()
                .filter(|l| l.contains("\"type\":\"joined\""))
                .count()
        };
        while joined(&app) < n {
            app_event(&mut app, Duration::from_secs(30), "joined");
        }
        let windows = x.xdotool(&["search", "--sync", "--onlyvisible", "--name", "^Squawk$"]);
        for w in windows.lines() {
            x.xdotool(&["windowsize", w, "1024", "760"]);
        }
        std::thread::sleep(Duration::from_secs(3));
        let pids = tree(app.pid());
        let (idle_cpu, _) = cpu_percent(&pids, Duration::from_secs(10));
        let bots: Vec<Proc> = names[..4]
            .iter()
            .map(|c| {
                server.talker(
                    &format!("T{c}"),
                    c,
                    &wav,
                    &["--repeat", "12", "--gap-ms", "0"],
                )
            })
            .collect();
        for _ in 0..4 {
            app_event(&mut app, Duration::from_secs(10), "floor_taken");
        }
        std::thread::sleep(Duration::from_secs(2));
        print_receiving(n, idle_cpu, &tree(app.pid()));
        let shot = out.join(format!("console-{n}.png"));
        let mut import = std::process::Command::new("import");
        x.env(&mut import);
        let _ = import.args(["-window", "root"]).arg(&shot).status();
        drop(bots);
        drop(app);
        std::thread::sleep(Duration::from_secs(2));
    }
}
