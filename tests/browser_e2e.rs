//! The browser client end to end: headless Debian Chromium (playwright-core)
//! opens the link the server serves, talks from a fake microphone fed with
//! real speech, hears a bot, and contends for the floor with one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// How long the page holds the talk button, ms (about one pass of F2).
const HOLD_MS: u64 = 5000;

#[test]
fn browser_talks_and_a_bot_in_the_channel_records_it() {
    let server = TestServer::start();
    let out = out_dir("browser_talks");
    let source = speech("F2_harvard_phrases.wav");
    let rec = out.join("bot.wav");
    let mut bot = server.listener("B", "web", &rec, 20);
    let mut browser = Browser::chromium(&source);
    browser.open("p", &server.page_url("web", "Browser"));
    browser.wait_ready("p", "web");
    browser.screenshot("p", &out.join("browser-idle.png"));

    let pressed = browser.press("p");
    browser.wait_ptt("p", "talking", Duration::from_secs(5));
    let taken = bot.expect_event(Duration::from_secs(5), "floor_taken");
    assert_eq!(taken["talker"], "Browser");
    // The audio panel's input level meter moves with the speech.
    browser.eval("p", "document.getElementById('audio').open = true");
    browser.wait(
        "p",
        "document.getElementById('level').value > 0.05",
        Duration::from_secs(3),
    );
    browser.screenshot("p", &out.join("browser-talking.png"));
    std::thread::sleep(Duration::from_millis(
        HOLD_MS.saturating_sub(unix_ms() - pressed),
    ));
    browser.release("p");
    browser.wait_ptt("p", "idle", Duration::from_secs(5));
    let received = bot.expect_event(Duration::from_secs(10), "received");
    assert_eq!(received["report"]["talker"], "Browser");
    let cues = browser.eval("p", "SquawkCues.history()");
    assert_eq!(
        cues,
        serde_json::json!(["permit", "end"]),
        "talk-permit chirp, then end beep"
    );
    let sent = browser.eval("p", "squawkApp.engine.debug.rtpStats()");
    eprintln!("page uplink: {sent}");
    // Chromium also sends padding-only packets beside its RED audio (about
    // 20 in this talk; `packetsSent` counts them), which the server drops.
    let padding: f64 = (0..2)
        .filter_map(|w| {
            server.metric(&format!(
                "squawk_rtp_dropped_total{{worker=\"{w}\",reason=\"padding\"}}"
            ))
        })
        .sum();
    eprintln!("padding-only packets dropped by the server: {padding}");
    let packets = sent["outbound"][0]["packetsSent"].as_u64().unwrap() - padding as u64;
    assert!(
        (200..=280).contains(&packets),
        "about {HOLD_MS} ms + 250 ms tail of 20 ms frames, and nothing while idle: {sent}"
    );
    browser.quit();
    let (code, _) = bot.wait(Duration::from_secs(30));
    assert_eq!(code, 0);

    let report = compare_looped(&source, &rec);
    eprintln!("browser -> bot: {report}");
    assert_intelligible(&report, "bot hearing the browser");
}

/// The first syllable (issue 14): the page sends from the press, the SFU
/// holds that audio until Floor Granted and forwards it then. The server
/// delays every client message by 100 ms (a debug-build knob), so the
/// grant comes a 100 ms round trip after the media sent with the request;
/// before, the page sent nothing until the grant and those 100 ms were lost.
#[test]
fn the_first_syllable_before_floor_granted_reaches_the_listener() {
    const DELAY_MS: u64 = 100;
    const TALK_MS: u64 = 2000;
    const TAIL_MS: u64 = 250;
    let server = TestServer::start_env(&[("SQUAWK_DEBUG_SIGNAL_DELAY_MS", "100")]);
    let out = out_dir("browser_first_syllable");
    let source = speech("F2_harvard_phrases.wav");
    let rec = out.join("bot.wav");
    let mut bot = server.listener("B", "first", &rec, 15);
    let mut browser = Browser::chromium(&source);
    browser.open("p", &server.page_url("first", "Browser"));
    browser.wait_ready("p", "first");

    let pressed = browser.press("p");
    browser.wait_ptt("p", "talking", Duration::from_secs(5));
    let granted_after = unix_ms() - pressed;
    std::thread::sleep(Duration::from_millis(
        TALK_MS.saturating_sub(unix_ms() - pressed),
    ));
    let released = browser.release("p");
    browser.wait_ptt("p", "idle", Duration::from_secs(5));
    let received = bot.expect_event(Duration::from_secs(10), "received");
    let held_forwarded: f64 = (0..2)
        .filter_map(|w| {
            server.metric(&format!(
                "squawk_rtp_held_forwarded_total{{worker=\"{w}\"}}"
            ))
        })
        .sum();
    let sent = browser.eval("p", "squawkApp.engine.debug.rtpStats()");
    eprintln!(
        "granted {granted_after} ms after the press; held and forwarded {held_forwarded}; \
         page uplink {sent}; listener {received}"
    );
    assert!(
        granted_after >= DELAY_MS,
        "the grant took the delayed round trip: {granted_after} ms"
    );
    // 100 ms of 20 ms frames were sent before the grant reached the SFU.
    assert!(
        held_forwarded >= 3.0,
        "the SFU held the audio sent before the grant and forwarded it: {held_forwarded}"
    );
    // Everything from the press to the end of the release tail, but for
    // the capture's start (a frame or so): the first 50 ms are there.
    let heard_ms = received["report"]["packets"].as_u64().unwrap() * 20;
    let spoken_ms = released - pressed + TAIL_MS;
    eprintln!("heard {heard_ms} ms of {spoken_ms} ms from the press to the end of the tail");
    assert!(
        heard_ms + 50 >= spoken_ms,
        "the listener got {heard_ms} ms of 20 ms frames for {spoken_ms} ms from the press \
         to the end of the tail: more than 50 ms clipped"
    );
    assert!(
        heard_ms <= spoken_ms + 100,
        "no more than was said: {heard_ms} ms for {spoken_ms} ms"
    );
    browser.quit();
    let (code, _) = bot.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let report = compare_looped(&source, &rec);
    eprintln!("browser -> bot, held start: {report}");
    assert_intelligible(&report, "bot hearing the browser's held start");
}

#[test]
fn a_bot_talks_and_the_page_shows_and_hears_it() {
    let server = TestServer::start();
    let out = out_dir("browser_hears");
    let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));
    browser.open("p", &server.page_url("ops", "Web"));
    browser.wait_ready("p", "ops");
    let mut bot = server.talker("Dispatch", "ops", &speech("F1_harvard_phrases.wav"), &[]);
    bot.expect_event(Duration::from_secs(10), "floor_granted");
    // The channel list, as the "join another channel" box offers it.
    browser.eval("p", "squawkApp.engine.listChannels(), true");
    let known = browser.wait(
        "p",
        "squawkApp.ui.known.find(c => c.name === 'ops' && c.members === 2)",
        Duration::from_secs(5),
    );
    assert_eq!(known["fixed"], false, "{known}");

    // The UI shows who talks, where.
    let shown = browser.wait_talker_shown("p");
    assert_eq!(shown, "Dispatch");
    assert_eq!(browser.ptt_state("p"), "receiving");
    assert_eq!(
        browser.eval("p", "document.getElementById('rx-chan').textContent"),
        "on #ops"
    );
    // The page's own measurements: RTP arrives, and its WebAudio analyser
    // hears it.
    browser.wait_received_and_heard("p", "ops", Duration::from_secs(10));
    browser.screenshot("p", &out.join("browser-receiving.png"));
    // The same page on a tablet and a desktop screen (phone is the default).
    browser.viewport("p", 820, 1180);
    browser.screenshot("p", &out.join("browser-receiving-tablet.png"));
    browser.viewport("p", 1280, 800);
    browser.screenshot("p", &out.join("browser-receiving-desktop.png"));

    bot.expect_event(Duration::from_secs(20), "talk_ended");
    browser.wait(
        "p",
        "document.getElementById('rx').hidden && document.getElementById('ptt').dataset.state === 'idle'",
        Duration::from_secs(5),
    );
    let cues = browser.eval("p", "SquawkCues.history()");
    assert_eq!(cues, serde_json::json!(["incoming", "end"]));
    let (code, _) = bot.wait(Duration::from_secs(20));
    assert_eq!(code, 0);
    browser.quit();
}

#[test]
fn floor_contention_between_a_browser_and_a_bot() {
    let server = TestServer::start();
    let wav = speech("M1_harvard_phrases.wav");
    let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));
    browser.open("p", &server.page_url("X", "Web"));
    browser.wait_ready("p", "X");

    // 1. The browser holds the floor: the bot is denied.
    browser.press("p");
    browser.wait_ptt("p", "talking", Duration::from_secs(5));
    let bot = server.talker("Bot", "X", &wav, &[]);
    let (code, lines) = bot.wait(Duration::from_secs(20));
    assert_eq!(code, 3, "the bot was denied: {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("\"floor_deny\"")),
        "{lines:?}"
    );
    browser.release("p");
    browser.wait_ptt("p", "idle", Duration::from_secs(5));

    // 2. The bot holds the floor: the browser is denied and shows Busy.
    let mut bot = server.talker("Bot", "X", &wav, &[]);
    bot.expect_event(Duration::from_secs(10), "floor_granted");
    browser.wait_ptt("p", "receiving", Duration::from_secs(5));
    browser.press("p");
    browser.wait_ptt("p", "busy", Duration::from_secs(5));
    assert_eq!(
        browser.eval("p", "document.getElementById('ptt-sub').textContent"),
        "someone else is talking"
    );
    browser.release("p");
    let (code, _) = bot.wait(Duration::from_secs(20));
    assert_eq!(code, 0);

    // 3. Both press at the same instant: exactly one Floor Granted.
    let at = unix_ms() + 4000;
    browser.eval(
        "p",
        &format!(
            "setTimeout(() => document.getElementById('ptt').dispatchEvent(new PointerEvent('pointerdown', {{pointerId: 1}})), {at} - Date.now()), true"
        ),
    );
    let bot = server.talker("Bot", "X", &wav, &["--at-unix-ms", &at.to_string()]);
    let outcome: Value = browser.wait(
        "p",
        "['talking', 'busy'].includes(document.getElementById('ptt').dataset.state) && document.getElementById('ptt').dataset.state",
        Duration::from_secs(10),
    );
    browser.eval("p", "document.getElementById('ptt').dispatchEvent(new PointerEvent('pointerup', {pointerId: 1})), true");
    let (code, lines) = bot.wait(Duration::from_secs(30));
    let bot_granted = lines.iter().any(|l| l.contains("\"floor_granted\""));
    let browser_granted = outcome == "talking";
    assert!(
        bot_granted ^ browser_granted,
        "exactly one Floor Granted: browser {outcome}, bot {lines:?}"
    );
    assert_eq!(code, if bot_granted { 0 } else { 3 });
    browser.quit();
}

/// How long a restarted server stays down in the restart tests: longer
/// than the first retry delays, so that the capped backoff is what brings
/// the clients back.
const OUTAGE: Duration = Duration::from_secs(3);

/// The server restarts (SIGTERM, as a service manager does it) while a page
/// talks: the talker is told `shutting_down`, its transmission ends (talk
/// button idle) and the listener's page stops showing a talker. With the
/// server down for 3 s, both pages are back in the channel with media up
/// within 2 s of it listening again; nobody holds the floor (the listener's
/// press is granted at once, while the former talker still holds its
/// button), and the talker hears it.
#[test]
fn a_restart_mid_transmission_ends_it_and_every_page_is_back_within_two_seconds() {
    let out = out_dir("browser_restart");
    let http = format!("127.0.0.1:{}", free_port());
    let server = TestServer::start_at(&http, &[]);
    let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));
    for (page, name) in [("a", "Ann"), ("b", "Bea")] {
        browser.open(page, &server.page_url("X", name));
        browser.wait_ready(page, "X");
        // What the page's engine says, dated on the wall clock.
        browser.eval(
            page,
            "window.seen = {}; squawkApp.engine.onEvent((ev) => { \
               const k = ev.type === 'error' ? 'error_' + ev.code : ev.type; \
               if (ev.type !== 'media' || ev.connected) seen[k] = Date.now(); }); true",
        );
    }
    browser.press("a");
    browser.wait_ptt("a", "talking", Duration::from_secs(5));
    assert_eq!(browser.wait_talker_shown("b"), "Ann");

    assert_eq!(server.stop(Duration::from_secs(10)), 0, "exit code");
    let down = unix_ms();
    let told = browser.wait(
        "a",
        "seen.error_shutting_down && seen.talk_ended && document.getElementById('ptt').dataset.state === 'idle' && document.getElementById('error').textContent",
        Duration::from_secs(5),
    );
    eprintln!("talker told: {told}");
    browser.wait(
        "b",
        "seen.error_shutting_down && document.getElementById('rx').hidden",
        Duration::from_secs(5),
    );
    browser.screenshot("a", &out.join("restart-talker-told.png"));
    // The outage: the pages retry meanwhile (nothing to wait for).
    std::thread::sleep(OUTAGE.saturating_sub(Duration::from_millis(unix_ms() - down)));
    for page in ["a", "b"] {
        browser.eval(page, "seen = {}; true");
    }

    let server = TestServer::start_at(&http, &[]);
    let back = unix_ms();
    for page in ["a", "b"] {
        let at = browser.wait(
            page,
            "seen.joined && seen.media && squawkApp.ui.channels.get('X').members.length === 2 && Math.max(seen.joined, seen.media)",
            Duration::from_secs(10),
        );
        let took = at.as_u64().unwrap().saturating_sub(back);
        eprintln!("{page}: back in X with media {took} ms after the server");
        assert!(
            took <= 2000,
            "{page} came back {took} ms after the server, more than 2 s"
        );
    }
    // Nobody holds the floor: Ann still holds her button, yet Bea's press
    // is granted, and Ann hears her.
    assert_eq!(browser.ptt_state("a"), "idle");
    browser.press("b");
    browser.wait_ptt("b", "talking", Duration::from_secs(5));
    assert_eq!(browser.wait_talker_shown("a"), "Bea");
    browser.wait_heard("a", "X", Duration::from_secs(5));
    browser.release("b");
    browser.release("a");
    browser.wait_ptt("b", "idle", Duration::from_secs(5));
    drop(server);
    browser.quit();
}

/// An SFU worker fails (a debug build's worker 0 panics on SIGUSR1, as a
/// bug would make it): only its own connections go down. The page homed on
/// worker 0 is told `media_failed`, reconnects and is back in its channel
/// with media up within 2 s, and then hears a bot there; meanwhile a talker
/// and a listener homed on worker 1 talk on through the failure without a
/// gap or an error. `/metrics` shows where each connection was homed and the
/// one failure.
#[test]
fn a_failed_worker_takes_down_only_its_own_clients_and_they_reconnect() {
    let server = TestServer::start(); // two workers
    let out = out_dir("browser_worker_failure");
    let peers = |w: u32| server.metric(&format!("squawk_worker_peers{{worker=\"{w}\"}}"));
    // The page first: the least loaded worker, 0. Then channel B's listener
    // (now worker 1 is the less loaded) and its talker (with its co-member).
    let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));
    browser.open("a", &server.page_url("A", "Ann"));
    browser.wait_ready("a", "A");
    browser.eval(
        "a",
        "window.seen = {}; squawkApp.engine.onEvent((ev) => { \
           const k = ev.type === 'error' ? 'error_' + ev.code : ev.type; \
           if (ev.type !== 'media' || ev.connected) seen[k] = Date.now(); }); true",
    );
    let rec = out.join("b-listener.wav");
    let mut listener = server.listener("Lis", "B", &rec, 12);
    let source = speech("M1_harvard_phrases.wav");
    let mut talker = server.talker("Tal", "B", &source, &["--delay-ms", "500"]);
    assert_eq!((peers(0), peers(1)), (Some(1.0), Some(2.0)), "homing");
    talker.expect_event(Duration::from_secs(10), "floor_granted");
    // Well into the transmission: B's audio is flowing through worker 1.
    listener.expect_event(Duration::from_secs(5), "floor_taken");
    std::thread::sleep(Duration::from_millis(1000));

    let kill = std::process::Command::new("kill")
        .args(["-USR1", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let failed = browser.wait("a", "seen.error_media_failed", Duration::from_secs(5));
    let failed = failed.as_u64().expect("time of media_failed");
    let at = browser.wait(
        "a",
        &format!(
            "seen.joined > {failed} && seen.media > {failed} && Math.max(seen.joined, seen.media)"
        ),
        Duration::from_secs(10),
    );
    let took = at.as_u64().unwrap() - failed;
    eprintln!("a: back in A with media {took} ms after media_failed");
    assert!(
        took <= 2000,
        "back {took} ms after the failure, more than 2 s"
    );
    assert_eq!(
        server.metric("squawk_worker_failures_total{worker=\"0\"}"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("squawk_worker_failures_total{worker=\"1\"}"),
        Some(0.0)
    );
    // The page is whole again: it hears a talker in its channel.
    let mut other = server.talker("Bob", "A", &speech("F1_harvard_phrases.wav"), &[]);
    other.expect_event(Duration::from_secs(10), "floor_granted");
    browser.wait_heard("a", "A", Duration::from_secs(5));

    // Worker 1's pair never noticed: one transmission, heard whole.
    let (code, talked) = talker.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "talker: {talked:?}");
    let (code, lines) = listener.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "listener: {lines:?}");
    for (who, lines) in [("talker", &talked), ("listener", &lines)] {
        assert!(
            !lines.iter().any(|l| l.contains("\"error\"")),
            "{who} saw an error: {lines:?}"
        );
    }
    let reports: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "received")
        .map(|v| v["report"].clone())
        .collect();
    assert_eq!(reports.len(), 1, "one transmission: {reports:?}");
    let lost = reports[0]["lost"].as_u64().unwrap();
    assert!(
        lost <= 5,
        "{lost} packets missing at the listener: {reports:?}"
    );
    let report = compare(&source, &rec);
    eprintln!("worker 1's talk through the failure: {report}");
    assert_intelligible(&report, "listener on the surviving worker");
    drop(other);
    browser.quit();
}

#[test]
fn the_page_works_over_https_with_a_self_signed_certificate() {
    let out = out_dir("browser_tls");
    let data = out.join("data");
    let server =
        TestServer::start_with(&["--tls-self-signed", "--data-dir", data.to_str().unwrap()]);
    assert!(server.web.starts_with("https://"), "{}", server.web);
    assert!(data.join("self-signed-cert.pem").exists());
    let mut browser = Browser::chromium_with(&speech("F2_harvard_phrases.wav"), &["--insecure"]);
    browser.open("a", &server.page_url("S", "Ann"));
    browser.open("b", &server.page_url("S", "Bea"));
    browser.wait_ready("a", "S");
    browser.wait_ready("b", "S");
    assert_eq!(
        browser.eval("a", "window.isSecureContext && location.protocol"),
        "https:"
    );
    // Talk with the space bar this time (the page has focus, no input does).
    browser.key("a", "Space", true);
    browser.wait_ptt("a", "talking", Duration::from_secs(5));
    let shown = browser.wait_talker_shown("b");
    assert_eq!(shown, "Ann");
    browser.wait_heard("b", "S", Duration::from_secs(5));
    browser.key("a", "Space", false);
    browser.wait_ptt("a", "idle", Duration::from_secs(5));
    browser.quit();
}

/// The dispatcher console in the browser: a 1280×800 window monitoring 24
/// channels, three with talkers, and an emergency raised by a bot. The page
/// shows a tile per channel, the talkers, the emergency banner; its
/// Acknowledge reaches the bot; a finished transmission is in the call
/// history and its replay is audible (the replay's analyser); with 50
/// channels the tiles still fit a column width. Screenshots:
/// console-emergency.png, console-acked.png, console-replay.png,
/// console-50.png.
#[test]
fn the_console_monitors_24_channels_and_acknowledges_an_emergency() {
    let server = TestServer::start();
    let out = out_dir("browser_console");
    let wav = speech("F1_harvard_phrases.wav");
    let mut browser = Browser::chromium(&speech("F2_harvard_phrases.wav"));
    browser.open("p", &server.page_url("ch01", "Dispatch"));
    browser.viewport("p", 1280, 800);
    browser.wait_ready("p", "ch01");
    for i in 2..=24 {
        browser.eval("p", &format!("squawkApp.engine.join('ch{i:02}'), true"));
    }
    let tiles = "document.querySelectorAll('#tiles .tile').length";
    browser.wait("p", &format!("{tiles} === 24"), Duration::from_secs(30));
    assert_eq!(
        browser.eval("p", "document.body.classList.contains('console')"),
        true
    );
    let talkers: Vec<Proc> = ["ch03", "ch07", "ch12"]
        .iter()
        .map(|c| {
            server.talker(
                &format!("T{c}"),
                c,
                &wav,
                &["--repeat", "3", "--gap-ms", "100"],
            )
        })
        .collect();
    let mut eve = server.talker("Eve", "ch05", &wav, &["--emergency", "--repeat", "2"]);
    eve.expect_event(Duration::from_secs(10), "emergency");
    browser.wait(
        "p",
        "document.querySelector('#banner .ack') !== null",
        Duration::from_secs(10),
    );
    browser.wait(
        "p",
        "document.querySelectorAll('#tiles .tile.live').length >= 3",
        Duration::from_secs(10),
    );
    let banner = browser.eval("p", "document.getElementById('banner').textContent");
    assert!(
        banner.as_str().unwrap().contains("EMERGENCY: Eve on #ch05"),
        "{banner}"
    );
    assert_eq!(
        browser.eval("p", "document.querySelector('#tiles .tile[data-channel=ch05]').classList.contains('emergency')"),
        true
    );
    assert!(
        browser.eval("p", "SquawkCues.history().includes('emergency')") == true,
        "the alarm sounded"
    );
    browser.screenshot("p", &out.join("console-emergency.png"));
    browser.eval("p", "document.querySelector('#banner .ack').click(), true");
    let ack = eve.expect_event(Duration::from_secs(10), "emergency_ack");
    assert_eq!(ack["by"]["name"], "Dispatch", "{ack}");
    browser.wait(
        "p",
        "document.querySelector('#banner .ack') === null",
        Duration::from_secs(5),
    );
    browser.screenshot("p", &out.join("console-acked.png"));
    // Instant recall: a finished transmission is listed and replays, audibly.
    browser.wait(
        "p",
        "squawkApp.ui.history.some((h) => h.id != null)",
        Duration::from_secs(20),
    );
    browser.eval(
        "p",
        "document.getElementById('history-panel').open = true, document.querySelector('#history button').click(), true",
    );
    browser.wait(
        "p",
        "squawkApp.engine.debug.replayLevel() > 0.01",
        Duration::from_secs(10),
    );
    browser.wait(
        "p",
        "squawkApp.ui.replaying !== null",
        Duration::from_secs(5),
    );
    browser.screenshot("p", &out.join("console-replay.png"));
    for i in 25..=50 {
        browser.eval("p", &format!("squawkApp.engine.join('ch{i:02}'), true"));
    }
    browser.wait("p", &format!("{tiles} === 50"), Duration::from_secs(30));
    let narrowest = browser.eval(
        "p",
        "Math.min(...[...document.querySelectorAll('#tiles .tile')].map((t) => t.getBoundingClientRect().width))",
    );
    assert!(
        narrowest.as_f64().unwrap() >= 160.0,
        "tiles stay readable: {narrowest}"
    );
    browser.screenshot("p", &out.join("console-50.png"));
    browser.quit();
    for t in talkers {
        assert_eq!(t.wait(Duration::from_secs(40)).0, 0);
    }
    eve.expect_event(Duration::from_secs(30), "emergency_cancel");
    assert_eq!(eve.wait(Duration::from_secs(10)).0, 0);
}
