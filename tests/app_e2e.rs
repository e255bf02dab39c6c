//! The desktop app as a person uses it: the real `squawk` binary in a real
//! window under Xvfb, its microphone a PulseAudio null sink fed with real
//! speech, connected to a local server. A synthetic press of the global
//! talk key (xdotool, X11 key events) while the window does not have the
//! focus makes it talk, and a bot in the channel records the speech.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

/// A private Xvfb server on the first free display number from :90.
struct Xvfb {
    display: String,
    _proc: Proc,
}

impl Xvfb {
    fn start() -> Self {
        let n = (90..140)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free X display number");
        let display = format!(":{n}");
        let mut cmd = Command::new("Xvfb");
        cmd.args([&display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"]);
        let proc = Proc::spawn("Xvfb", &mut cmd);
        let socket = format!("/tmp/.X11-unix/X{n}");
        let end = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            assert!(Instant::now() < end, "Xvfb {display} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            display,
            _proc: proc,
        }
    }

    fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .env("DISPLAY", &self.display)
            .args(args)
            .output()
            .expect("run xdotool");
        assert!(
            out.status.success(),
            "xdotool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Takes screenshots into `path` until the pixel at (x, y) has colour
    /// `rgb` (`#rrggbb`): the window shows a state, as a person would see it.
    fn screenshot_when(&self, path: &Path, x: u32, y: u32, rgb: &str, what: &str) {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            self.screenshot(path);
            let out = Command::new("convert")
                .arg(path)
                .args(["-crop", &format!("1x1+{x}+{y}"), "-depth", "8", "txt:-"])
                .output()
                .expect("run convert");
            let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
            let now = text
                .split_whitespace()
                .find(|w| w.starts_with('#') && w.len() == 7)
                .unwrap_or_default()
                .to_string();
            if now == rgb {
                return;
            }
            assert!(
                Instant::now() < end,
                "{what}: pixel ({x},{y}) is {now}, not {rgb}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, path: &Path) {
        let ok = Command::new("import")
            .env("DISPLAY", &self.display)
            .args(["-window", "root", "-crop", "420x640+0+0"])
            .arg(path)
            .status()
            .expect("run import");
        assert!(ok.success());
    }
}

/// A point inside the talk button of the 420-pixel-wide window, away from
/// its label.
const PTT_X: u32 = 210;
const PTT_Y: u32 = 110;
/// `--talk` and `--idle` in ui/style.css.
const TALKING_GREEN: &str = "#2ea043";
const IDLE_BLUE: &str = "#1f6feb";

/// Waits for the app's `--print-events` line of `type`.
fn app_event(app: &mut Proc, timeout: Duration, ty: &str) -> Value {
    let line = app.expect_line(timeout, ty, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == ty)
    });
    serde_json::from_str(&line).unwrap()
}

#[test]
fn the_global_talk_key_talks_while_the_window_is_in_the_background() {
    let out = out_dir("app_e2e");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let source = speech("M1_harvard_phrases.wav");
    let rec = out.join("bot.wav");
    let mut bot = server.listener("B", "desk", &rec, 30);

    let mut cmd = Command::new(bin("squawk"));
    cmd.args([
        "--server",
        &server.ws_url(),
        "--name",
        "Desk",
        "--channel",
        "desk",
        "--talk-key",
        "F9",
        "--print-events",
    ])
    .env("DISPLAY", &x.display)
    .env("XDG_CONFIG_HOME", out.join("config"))
    .env("XDG_DATA_HOME", out.join("data"))
    .env("NO_AT_BRIDGE", "1");
    pulse.env(&mut cmd);
    let mut app = Proc::spawn("app", &mut cmd);
    let status = app_event(&mut app, Duration::from_secs(30), "talk_key_status");
    assert_eq!(status["available"], true, "{status}");
    // Media up and the channel joined, in either order.
    app_event(&mut app, Duration::from_secs(30), "media");
    if !app.seen.iter().any(|l| l.contains("\"type\":\"joined\"")) {
        app_event(&mut app, Duration::from_secs(10), "joined");
    }

    // The app window exists but does not have the keyboard focus.
    let window = x.xdotool(&["search", "--sync", "--name", "^Squawk$"]);
    let window = window.lines().next().unwrap().to_string();
    let focus = x.xdotool(&["getwindowfocus", "-f"]);
    assert_ne!(focus, window, "the app window must not have the focus");

    x.xdotool(&["keydown", "F9"]);
    let granted = app_event(&mut app, Duration::from_secs(5), "floor_granted");
    assert_eq!(granted["channel"], "desk");
    assert_eq!(
        bot.expect_event(Duration::from_secs(5), "floor_taken")["talker"],
        "Desk"
    );
    // The talk button turns green (--talk in ui/style.css) in the window.
    x.screenshot_when(
        &out.join("app-talking.png"),
        PTT_X,
        PTT_Y,
        TALKING_GREEN,
        "talk button while talking",
    );
    pulse.play_into_mic(&source);
    x.xdotool(&["keyup", "F9"]);
    app_event(&mut app, Duration::from_secs(5), "talk_ended");
    let received = bot.expect_event(Duration::from_secs(10), "received");
    assert_eq!(received["report"]["talker"], "Desk");
    let (code, _) = bot.wait(Duration::from_secs(40));
    assert_eq!(code, 0);
    x.screenshot_when(
        &out.join("app-idle.png"),
        PTT_X,
        PTT_Y,
        IDLE_BLUE,
        "talk button after release",
    );
    drop(app);

    let report = compare(&source, &rec);
    eprintln!("app -> bot: {report}");
    assert_speech(&report, "bot hearing the app");
}
