//! The desktop app as a person uses it: the real `squawk` binary in a real
//! window under Xvfb, its microphone a PulseAudio null sink fed with real
//! speech, connected to a local server. A synthetic press of the global
//! talk key (xdotool, X11 key events) while the window does not have the
//! focus makes it talk, and a bot in the channel records the speech.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::*;

/// One transmission with the talk key, as a person does it: key down
/// (`down`), Floor Granted on `desk` and the bot sees the app talk, the
/// window's talk button turns green (--talk in ui/style.css; screenshot
/// `shot`), speech into the microphone, key up (`up`), the talk ends.
struct Talk<'a> {
    x: &'a Xvfb,
    pulse: &'a Pulse,
    source: &'a Path,
    shot: PathBuf,
}

impl Talk<'_> {
    fn run(&self, app: &mut Proc, bot: &mut Proc, down: impl FnOnce(), up: impl FnOnce()) {
        down();
        let granted = app_event(app, Duration::from_secs(5), "floor_granted");
        assert_eq!(granted["channel"], "desk");
        assert_eq!(
            bot.expect_event(Duration::from_secs(5), "floor_taken")["talker"],
            "Desk"
        );
        self.x
            .screenshot_ptt(&self.shot, PTT_TALKING_GREEN, "talk button while talking");
        self.pulse.play_into_mic(self.source);
        up();
        app_event(app, Duration::from_secs(5), "talk_ended");
    }
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

    let mut app = spawn_app(&x, &pulse, &server, &out, "desk", &["--talk-key", "F9"]);
    let status = app_event(&mut app, Duration::from_secs(30), "talk_key_status");
    assert_eq!(status["available"], true, "{status}");
    app_ready(&mut app);

    // The app window exists but does not have the keyboard focus.
    let window = x.xdotool(&["search", "--sync", "--name", "^Squawk$"]);
    let window = window.lines().next().unwrap().to_string();
    let focus = x.xdotool(&["getwindowfocus", "-f"]);
    assert_ne!(focus, window, "the app window must not have the focus");

    let talk = Talk {
        x: &x,
        pulse: &pulse,
        source: &source,
        shot: out.join("app-talking.png"),
    };
    talk.run(
        &mut app,
        &mut bot,
        || {
            x.xdotool(&["keydown", "F9"]);
        },
        || {
            x.xdotool(&["keyup", "F9"]);
        },
    );
    let received = bot.expect_event(Duration::from_secs(10), "received");
    assert_eq!(received["report"]["talker"], "Desk");
    let (code, _) = bot.wait(Duration::from_secs(40));
    assert_eq!(code, 0);
    x.screenshot_ptt(
        &out.join("app-idle.png"),
        PTT_IDLE_BLUE,
        "talk button after release",
    );
    drop(app);

    // The connection is remembered in the user's config directory.
    let saved = std::fs::read_to_string(out.join("config/org.squawk.desktop/settings.json"))
        .expect("settings.json written after connecting");
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["servers"][0], server.ws_url().as_str());
    assert_eq!(saved["name"], "Desk");
    assert_eq!(saved["channels"], serde_json::json!(["desk"]));

    let report = compare(&source, &rec);
    eprintln!("app -> bot: {report}");
    assert_speech(&report, "bot hearing the app");
}

/// A Wayland desktop: no client can grab a key, so the talk key comes from
/// the GlobalShortcuts portal. The session's portal here is the kit's
/// stand-in on the session's own bus; the window itself is drawn through
/// X11 (Xvfb), as under XWayland.
#[test]
fn on_wayland_the_talk_key_comes_from_the_global_shortcuts_portal() {
    let out = out_dir("app_e2e_portal");
    let x = Xvfb::start();
    let portal = portal::FakePortal::start(&x.bus);
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let source = speech("M1_harvard_phrases.wav");
    let rec = out.join("bot.wav");
    let mut bot = server.listener("B", "desk", &rec, 30);

    let mut cmd = app_command(
        &x,
        &pulse,
        &server,
        &out,
        "desk",
        &["--talk-key", "Control+Shift+KeyT"],
    );
    cmd.env("WAYLAND_DISPLAY", "wayland-squawk-test")
        .env("GDK_BACKEND", "x11");
    let mut app = Proc::spawn("app", &mut cmd);
    let asking = app_event(&mut app, Duration::from_secs(30), "talk_key_status");
    assert_eq!(asking["backend"], "portal", "{asking}");
    assert_eq!(asking["pending"], true, "{asking}");
    let status = app_event(&mut app, Duration::from_secs(30), "talk_key_status");
    assert_eq!(status["available"], true, "{status}");
    assert_eq!(
        status["trigger"], "CTRL+SHIFT+t",
        "the desktop's trigger: {status}"
    );
    let session = portal.wait_bound("talk", Duration::from_secs(5));
    assert_eq!(
        session.shortcuts,
        vec![("talk".to_string(), Some("CTRL+SHIFT+t".to_string()))],
        "one talk shortcut, the key in the XDG shortcuts format"
    );
    app_ready(&mut app);

    // Activated is the key going down: the app talks; Deactivated: it stops.
    let talk = Talk {
        x: &x,
        pulse: &pulse,
        source: &source,
        shot: out.join("app-talking-portal.png"),
    };
    talk.run(
        &mut app,
        &mut bot,
        || portal.press(&session, "talk"),
        || portal.release(&session, "talk"),
    );
    let received = bot.expect_event(Duration::from_secs(10), "received");
    assert_eq!(received["report"]["talker"], "Desk");

    // The user gives the shortcut another key in the desktop's settings.
    portal.change_trigger(&session, "talk", "Shift+F12");
    let changed = app_event(&mut app, Duration::from_secs(5), "talk_key_status");
    assert_eq!(changed["trigger"], "Shift+F12", "{changed}");
    assert_eq!(changed["available"], true);

    // A key down, then the portal goes away before the key up: the app
    // stops talking and says the key is gone.
    portal.press(&session, "talk");
    app_event(&mut app, Duration::from_secs(5), "floor_granted");
    portal.stop();
    let gone = app_event(&mut app, Duration::from_secs(5), "talk_key_status");
    assert_eq!(gone["available"], false, "{gone}");
    assert!(
        gone["reason"].as_str().unwrap().contains("portal"),
        "{gone}"
    );
    if !app
        .seen
        .iter()
        .any(|l| l.contains("\"type\":\"talk_ended\""))
    {
        app_event(&mut app, Duration::from_secs(5), "talk_ended");
    }

    let (code, _) = bot.wait(Duration::from_secs(40));
    assert_eq!(code, 0);
    // Taken once the bot is done: an Xvfb capture can lag the window's
    // latest paint, and the hint line changed just before the button.
    x.screenshot_ptt(
        &out.join("app-portal-gone.png"),
        PTT_IDLE_BLUE,
        "talk button after the portal left",
    );
    let report = compare(&source, &rec);
    eprintln!("app (portal key) -> bot: {report}");
    assert_speech(&report, "bot hearing the app");
}

/// The server crashes (SIGKILL) while the app talks with its global key
/// held: the app ends its transmission at once (`talk_ended`, talk button
/// idle again) and reconnects; with the server down for 3 s, it is back in
/// its channel with media up within 2 s of the server listening again. The
/// floor is free (a bot's press is granted while the key is still held), the
/// app is told of the bot's transmission, and the held key requests nothing
/// again after the reconnect.
#[test]
fn a_crash_mid_transmission_ends_it_and_the_app_is_back_within_two_seconds() {
    let out = out_dir("app_reconnect");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let http = format!("127.0.0.1:{}", free_port());
    let server = TestServer::start_at(&http, &[]);
    let mut app = spawn_app(&x, &pulse, &server, &out, "desk", &["--talk-key", "F9"]);
    let status = app_event(&mut app, Duration::from_secs(30), "talk_key_status");
    assert_eq!(status["available"], true, "{status}");
    app_ready(&mut app);
    x.xdotool(&["keydown", "F9"]);
    app_event(&mut app, Duration::from_secs(5), "floor_granted");

    drop(server); // killed
    let down = std::time::Instant::now();
    let ended = app_event(&mut app, Duration::from_secs(5), "talk_ended");
    assert_eq!(ended["channel"], "desk");
    let r = app_event(&mut app, Duration::from_secs(10), "connection");
    assert_eq!(r["state"], "reconnecting", "{r}");
    assert!(
        r["retry_in_ms"].as_u64().unwrap() <= 600,
        "first retry after about 0.5 s: {r}"
    );
    x.screenshot_ptt(
        &out.join("app-crash-talk-ended.png"),
        PTT_IDLE_BLUE,
        "talk button once the transmission ended",
    );
    // The outage: the app retries meanwhile (nothing to wait for).
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));

    let server = TestServer::start_at(&http, &[]);
    let back = std::time::Instant::now();
    let (mut media, mut joined) = (false, false);
    while !(media && joined) {
        let line = app.expect_line(Duration::from_secs(10), "media up and desk joined", |l| {
            l.contains("\"type\":\"media\"") || l.contains("\"type\":\"joined\"")
        });
        media |= line.contains("\"connected\":true");
        joined |= line.contains("\"channel\":\"desk\"") && line.contains("\"joined\"");
    }
    let took = back.elapsed();
    eprintln!("app back in desk with media {took:?} after the server");
    assert!(
        took <= Duration::from_secs(2),
        "back {took:?} after the server, more than 2 s"
    );
    // F9 is still down: nothing was requested again, and the floor is free.
    let mut bot = server.talker("Bot", "desk", &speech("M1_harvard_phrases.wav"), &[]);
    bot.expect_event(Duration::from_secs(10), "floor_granted");
    let taken = app_event(&mut app, Duration::from_secs(5), "floor_taken");
    assert_eq!(taken["talker_name"], "Bot");
    assert_eq!(taken["channel"], "desk");
    x.xdotool(&["keyup", "F9"]);
    let (code, _) = bot.wait(Duration::from_secs(20));
    assert_eq!(code, 0);
    let since = app
        .seen
        .iter()
        .rposition(|l| l.contains("\"type\":\"welcome\""))
        .expect("welcome after the reconnect");
    assert!(
        !app.seen[since..]
            .iter()
            .any(|l| l.contains("\"floor_granted\"") || l.contains("\"floor_deny\"")),
        "the held key must not request the floor again after the reconnect"
    );
}

/// How long the crashed server stays down: longer than the first retry
/// delays, so that the capped backoff is what brings the app back.
const OUTAGE: Duration = Duration::from_secs(3);

#[test]
fn a_second_start_hands_over_to_the_running_app_and_exits() {
    let out = out_dir("app_single_instance");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let mut first = spawn_app(&x, &pulse, &server, &out, "desk", &[]);
    app_ready(&mut first);
    // Started again in the same desktop session (same D-Bus session bus):
    // it finds the running app, asks it to show its window, and exits
    // without connecting.
    let second = spawn_app(&x, &pulse, &server, &out, "desk", &[]);
    let (code, lines) = second.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "second instance: {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("\"welcome\"")),
        "the second instance must not connect: {lines:?}"
    );
    // The first is still there, alone: a bot joining finds two members, and
    // the app hears of the bot as a presence delta.
    let rec = out.join("bot.wav");
    let rec = rec.to_str().unwrap();
    let mut bot = server.bot(
        "B",
        &[
            "listen",
            "--channel",
            "desk",
            "--record",
            rec,
            "--seconds",
            "5",
        ],
    );
    let joined = bot.expect_event(Duration::from_secs(20), "joined");
    let mut names: Vec<&str> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["B", "Desk"], "Desk and the bot only: {joined}");
    first.expect_line(Duration::from_secs(10), "member_joined with the bot", |l| {
        l.contains("\"type\":\"member_joined\"") && l.contains("\"B\"")
    });
}
