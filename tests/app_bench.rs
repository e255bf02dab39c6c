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
        "  busiest threads idle (% of a core, switches/s):      {}",
        busiest(&idle_threads)
    );
    println!(
        "  busiest threads receiving (% of a core, switches/s): {}",
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

/// Idle memory and CPU of a whole process tree: `settle` first (a window's
/// first paint), then RSS and PSS sums and 20 s of CPU (% of one core).
fn idle_figures(root: u32, settle: Duration) -> (u64, u64, f64, usize) {
    std::thread::sleep(settle);
    let pids = tree(root);
    let (rss, pss) = memory_kib(&pids);
    let (cpu, _) = cpu_percent(&pids, Duration::from_secs(20));
    (rss, pss, cpu, pids.len())
}

/// The app's own cost, in one run and the same session (one Xvfb, one
/// PulseAudio daemon with null sinks): the app idle and connected; an
/// empty Tauri 2 window (`examples/empty_window.rs`, same tauri build and
/// window size), the floor any Tauri app starts from; and the Mumble 1.3.4
/// client (Debian `mumble`), idle with its audio engine running (its
/// capture and playback streams open in PulseAudio), set to push-to-talk,
/// not connected (its first-run certificate wizard is cancelled; it
/// needs a server certificate's approval to connect). Prints the three and
/// the app's share above the empty window.
#[test]
#[ignore = "benchmark: run scripts/bench-app.sh"]
fn app_beside_an_empty_window_and_mumble() {
    let out = out_dir("app_baselines");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let settle = Duration::from_secs(5);

    let mut app = spawn_app(&x, &pulse, &server, &out, "bench", &[]);
    app_ready(&mut app);
    let squawk = idle_figures(app.pid(), settle);
    drop(app);

    let empty = bin_dir().join("examples/empty_window");
    assert!(
        empty.exists(),
        "{} not built: scripts/bench-app.sh builds it",
        empty.display()
    );
    let mut cmd = std::process::Command::new(&empty);
    cmd.env("XDG_CONFIG_HOME", out.join("empty-config"))
        .env("XDG_DATA_HOME", out.join("empty-data"))
        .env("NO_AT_BRIDGE", "1");
    x.env(&mut cmd);
    pulse.env(&mut cmd);
    let window = Proc::spawn("empty_window", &mut cmd);
    x.xdotool(&[
        "search",
        "--sync",
        "--onlyvisible",
        "--name",
        "^Empty window$",
    ]);
    let baseline = idle_figures(window.pid(), settle);
    drop(window);

    // Mumble: its settings say the wizards ran ("lastupdate") and that it
    // talks on push-to-talk (audio/transmit 2), like Squawk.
    let home = out.join("mumble-home");
    std::fs::create_dir_all(home.join(".config/Mumble")).unwrap();
    std::fs::write(
        home.join(".config/Mumble/Mumble.conf"),
        "[General]\nlastupdate=2\n\n[audio]\ntransmit=2\n\n[ui]\nfirsttime=false\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new("mumble");
    cmd.env("HOME", &home).env("NO_AT_BRIDGE", "1");
    x.env(&mut cmd);
    pulse.env(&mut cmd);
    let mumble = Proc::spawn("mumble", &mut cmd);
    let wizard = x.xdotool(&[
        "search",
        "--sync",
        "--onlyvisible",
        "--name",
        "^Certificate Management$",
    ]);
    // No window manager gives it focus: click its Cancel button (bottom
    // right of the wizard) and check that it went.
    if let Some(w) = wizard.lines().next() {
        let geometry = x.xdotool(&["getwindowgeometry", "--shell", w]);
        let field = |k: &str| -> i64 {
            geometry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (cx, cy) = (field("WIDTH") - 60, field("HEIGHT") - 25);
        x.xdotool(&[
            "mousemove",
            "--window",
            w,
            &cx.to_string(),
            &cy.to_string(),
            "click",
            "1",
        ]);
    }
    std::thread::sleep(Duration::from_secs(2));
    let visible = |name: &str| {
        std::process::Command::new("xdotool")
            .env("DISPLAY", &x.display)
            .args(["search", "--onlyvisible", "--name", name])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    };
    let wizard_open = visible("^Certificate Management$");
    let mut pactl = std::process::Command::new("pactl");
    pulse.env(&mut pactl);
    let streams = pactl
        .args(["list", "short", "source-outputs"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    let mumble_figures = idle_figures(mumble.pid(), settle);
    drop(mumble);

    let row = |name: &str, (rss, pss, cpu, n): (u64, u64, f64, usize)| {
        println!(
            "  {name:<34} {n:>2} processes   RSS {:>6.1} MiB   PSS {:>6.1} MiB   CPU {cpu:>5.2} % of a core",
            rss as f64 / 1024.0,
            pss as f64 / 1024.0
        );
    };
    println!(
        "\nidle, in one session (binaries from {}):",
        bin_dir().display()
    );
    row("Squawk app, connected", squawk);
    row("empty Tauri 2 window", baseline);
    row("Mumble 1.3.4, push-to-talk", mumble_figures);
    println!(
        "  Squawk above the empty window:     RSS {:>+6.1} MiB   PSS {:>+6.1} MiB   CPU {:>+5.2} points",
        (squawk.0 as f64 - baseline.0 as f64) / 1024.0,
        (squawk.1 as f64 - baseline.1 as f64) / 1024.0,
        squawk.2 - baseline.2
    );
    println!(
        "  Mumble: {streams} capture stream(s) open in PulseAudio; certificate wizard {}",
        if wizard_open {
            "still open (measured with it)"
        } else {
            "cancelled"
        }
    );
}
