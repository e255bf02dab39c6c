//! The desktop app's window driven through WebDriver (tauri-driver in
//! front of WebKitWebDriver), as a person uses it: the real `squawk`
//! binary under Xvfb, its audio a private PulseAudio daemon, connected to a
//! local server.
//!
//! - A bot talks: the window names the talker and its channel, and the
//!   speech comes out of the speaker sink, intelligible.
//! - The audio panel: the level meter moves with the voice, and the mic
//!   test plays the microphone back on the speaker.
//! - The talk key is set by pressing it in the window, then works as a
//!   global key; the release tail is set and saved.
//! - Audio devices: started with a second microphone and speaker chosen,
//!   the mic test goes from that microphone to that speaker; the Audio
//!   panel lists them; unplugging the microphone falls back to the default
//!   with a notice, plugging it in again is noticed; choosing the default
//!   in the panel moves the capture and is saved.
//! - On Wayland (the kit's stand-in GlobalShortcuts portal), the Talk key
//!   panel shows the key the desktop bound, and switching latch on keeps
//!   the portal session instead of asking the desktop again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn on_wayland_the_talk_key_panel_shows_the_desktops_key_and_latch_keeps_the_session() {
    let out = out_dir("app_webdriver_portal");
    let x = Xvfb::start();
    let portal = portal::FakePortal::start(&x.bus);
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let ws = server.ws_url();
    let args = [
        "--server",
        &ws,
        "--name",
        "Desk",
        "--channel",
        "desk",
        "--talk-key",
        "F8",
    ];
    let wayland = [
        ("WAYLAND_DISPLAY", "wayland-squawk-test"),
        ("GDK_BACKEND", "x11"),
    ];
    let mut app = Browser::tauri_app_env(&x, &pulse, &out, &args, &wayland);
    app.wait_ready("app", "desk");
    let session = portal.wait_bound("talk", Duration::from_secs(10));
    portal.change_trigger(&session, "talk", "Shift+F8");
    app.wait(
        "app",
        "document.getElementById('hint').textContent.startsWith('Hold Shift+F8 anywhere')",
        Duration::from_secs(5),
    );
    let via = app.eval("app", "document.getElementById('key-status').textContent");
    assert!(
        via.as_str()
            .unwrap()
            .contains("GlobalShortcuts portal) as Shift+F8"),
        "{via}"
    );

    // Latch on: the same key, so the same session; the desktop is not asked again.
    app.eval(
        "app",
        "(() => { document.getElementById('keypanel').open = true; document.getElementById('key-latch').click(); return true; })()",
    );
    app.wait(
        "app",
        "document.getElementById('hint').textContent.startsWith('Press Shift+F8 anywhere to talk, again to stop')",
        Duration::from_secs(5),
    );
    let sessions = portal.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(!sessions[0].closed, "{sessions:?}");
    let status = app.eval("app", "window.squawkApp.engine.talkKeyStatus()");
    assert_eq!(status["mode"], "latch", "{status}");
    assert_eq!(status["trigger"], "Shift+F8", "{status}");

    // Latched: one press talks, the next stops.
    portal.press(&session, "talk");
    portal.release(&session, "talk");
    app.wait_ptt("app", "talking", Duration::from_secs(5));
    app.eval(
        "app",
        "(() => { document.getElementById('keypanel').scrollIntoView(); return true; })()",
    );
    app.screenshot("app", &out.join("app-talk-key-portal.png"));
    portal.press(&session, "talk");
    portal.release(&session, "talk");
    app.wait_ptt("app", "idle", Duration::from_secs(5));

    // Another key is another binding: the old session is closed.
    app.eval(
        "app",
        "window.squawkApp.engine.setTalkKey({key: 'F9', latch: true, tailMs: 250})",
    );
    let sessions = portal.wait_until(
        "a second session bound and the first closed",
        Duration::from_secs(10),
        |s| s.len() == 2 && s[0].closed && !s[1].shortcuts.is_empty(),
    );
    assert_eq!(
        sessions[1].shortcuts,
        vec![("talk".to_string(), Some("F9".to_string()))]
    );
    app.quit();
}

/// The app as "Desk" on channel `desk` of `server`, with `more` arguments;
/// returns once it has joined.
fn desk_app(
    x: &Xvfb,
    pulse: &Pulse,
    out: &std::path::Path,
    server: &TestServer,
    more: &[&str],
) -> Browser {
    let ws = server.ws_url();
    let mut args = vec!["--server", &ws, "--name", "Desk", "--channel", "desk"];
    args.extend_from_slice(more);
    let mut app = Browser::tauri_app(x, pulse, out, &args);
    app.wait_ready("app", "desk");
    app
}

/// Returns once the microphone is quiet again (the meter below 0.01) and
/// the mic test's loopback has played out: it lags the microphone by at
/// most the mixer's queue (100 ms) plus the device buffer (40 ms), so a
/// recording stopped now holds 500 ms more.
fn until_the_mic_test_is_heard_out(app: &mut Browser) {
    app.wait(
        "app",
        "document.getElementById('level').value < 0.01",
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(500));
}

/// Opens the panel (`<details>`) `id` and scrolls to it.
fn open_panel(app: &mut Browser, id: &str) {
    app.eval(
        "app",
        &format!("(() => {{ const d = document.getElementById('{id}'); d.open = true; d.scrollIntoView(); return true; }})()"),
    );
}

#[test]
fn the_app_uses_the_chosen_devices_and_says_when_the_microphone_is_unplugged() {
    let out = out_dir("app_webdriver_devices");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let headset = pulse.load_null_sink("headset");
    pulse.load_null_sink("headphones");
    let server = TestServer::start();
    let source = speech("M1_harvard_phrases.wav");
    let mut app = desk_app(
        &x,
        &pulse,
        &out,
        &server,
        &[
            "--input-device",
            "headset.monitor",
            "--output-device",
            "headphones",
        ],
    );
    let capture = "application.name = \"Squawk\"";
    assert_eq!(
        pulse.source_with(capture).as_deref(),
        Some("headset.monitor")
    );

    // The mic test: the headset's microphone on the headphones, nothing on
    // the default speaker.
    open_panel(&mut app, "audio");
    let listed = app.wait(
        "app",
        "[...document.querySelectorAll('#input-device option')].some(o => o.value === 'headset.monitor') && document.getElementById('input-device').value",
        Duration::from_secs(5),
    );
    assert_eq!(listed, "headset.monitor");
    assert_eq!(
        app.eval("app", "document.getElementById('output-device').value"),
        "headphones"
    );
    app.eval("app", "document.getElementById('mic-test').click()");
    let on_headphones = out.join("headphones-mic-test.wav");
    let on_default = out.join("spk-mic-test.wav");
    let rec = pulse.record_sink("headphones", &on_headphones);
    let rec_default = pulse.record_speaker(&on_default);
    pulse.play_into("headset", &source);
    until_the_mic_test_is_heard_out(&mut app);
    rec.stop();
    rec_default.stop();
    app.eval("app", "document.getElementById('mic-test').click()");
    let report = compare(&source, &on_headphones);
    eprintln!("mic test, headset → headphones: {report}");
    assert_speech(&report, "the mic test on the chosen devices");
    let quiet = silence(&on_default);
    assert!(
        quiet["peak"].as_f64().unwrap() < 0.01,
        "the default speaker stayed silent: {quiet}"
    );

    // Unplugged: the panel says so and the capture moves to the default.
    pulse.unload(headset);
    let notice = app.wait(
        "app",
        "document.getElementById('device-status').textContent.includes('system default') && document.getElementById('device-status').textContent",
        Duration::from_secs(5),
    );
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("Microphone “headset.monitor”"),
        "{notice}"
    );
    x.screenshot(&out.join("app-device-unplugged.png"));
    let unplugged = app.wait(
        "app",
        "document.querySelector('#input-device option[value=\"headset.monitor\"]')?.textContent.includes('not connected')",
        Duration::from_secs(5),
    );
    assert_eq!(unplugged, true);
    // Plugged back in: noticed, and captured from again.
    pulse.load_null_sink("headset");
    app.wait(
        "app",
        "document.getElementById('device-status').textContent.includes('connected again')",
        Duration::from_secs(5),
    );
    wait_until(Duration::from_secs(5), || {
        pulse.source_with(capture).as_deref() == Some("headset.monitor")
    });

    // Chosen in the panel: the system default microphone (the capture
    // moves) and the speaker `spk` by name (saved).
    let choose = |app: &mut Browser, id: &str, value: &str| {
        app.eval(
            "app",
            &format!("(() => {{ const s = document.getElementById('{id}'); s.value = '{value}'; s.dispatchEvent(new Event('change')); return s.value; }})()"),
        )
    };
    assert_eq!(choose(&mut app, "input-device", ""), "");
    wait_until(Duration::from_secs(5), || {
        pulse.source_with(capture).as_deref() == Some("mic.monitor")
    });
    assert_eq!(choose(&mut app, "output-device", "spk"), "spk");
    let settings = out
        .join("config")
        .join("org.squawk.desktop")
        .join("settings.json");
    let saved = || -> serde_json::Value {
        std::fs::read_to_string(&settings)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(5), || saved()["output_device"] == "spk");
    assert_eq!(saved()["input_device"], serde_json::Value::Null);
    app.quit();
}

#[test]
fn the_window_shows_and_plays_a_talker_and_sets_up_talk_key_and_audio() {
    let out = out_dir("app_webdriver");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let source = speech("M1_harvard_phrases.wav");
    let mut app = desk_app(&x, &pulse, &out, &server, &["--print-events"]);

    // A bot talks: the window shows who, on which channel, and plays it.
    let heard = out.join("speaker-bot.wav");
    let rec = pulse.record_speaker(&heard);
    let bot = server.talker("Dispatch", "desk", &source, &[]);
    let shown = app.wait_talker_shown("app");
    assert_eq!(shown, "Dispatch");
    let rx = app.eval("app", "document.getElementById('rx').textContent");
    assert!(rx.as_str().unwrap().contains("#desk"), "{rx}");
    x.screenshot_ptt(
        &out.join("app-receiving.png"),
        PTT_RECEIVING_PURPLE,
        "talk button while a bot talks",
    );
    assert_eq!(bot.wait(Duration::from_secs(30)).0, 0);
    app.wait_ptt("app", "idle", Duration::from_secs(10));
    rec.stop();
    let report = compare(&source, &heard);
    eprintln!("bot → app speaker: {report}");
    assert_speech(&report, "the app's speaker");

    // Instant recall: the call history lists the transmission; its ▶
    // replays it through the same speaker.
    app.eval(
        "app",
        "(() => { const h = document.getElementById('history-panel'); h.open = true; h.scrollIntoView(); return true; })()",
    );
    let listed = app.wait(
        "app",
        "document.querySelector('#history li button') && document.querySelector('#history li').textContent",
        Duration::from_secs(10),
    );
    assert!(
        listed.as_str().unwrap().contains("Dispatch"),
        "the history names the talker: {listed}"
    );
    let replayed = out.join("speaker-replay.wav");
    let rec = pulse.record_speaker(&replayed);
    app.eval(
        "app",
        "document.querySelector('#history li button').click()",
    );
    app.wait(
        "app",
        "document.querySelector('#history li.playing button')?.textContent === '■'",
        Duration::from_secs(5),
    );
    x.screenshot(&out.join("app-replaying.png"));
    app.wait(
        "app",
        "!document.querySelector('#history li.playing')",
        Duration::from_secs(20),
    );
    rec.stop();
    let report = compare(&source, &replayed);
    eprintln!("replay → app speaker: {report}");
    assert_speech(&report, "the replay on the app's speaker");
    app.eval(
        "app",
        "(() => { document.getElementById('history-panel').open = false; window.scrollTo(0, 0); return true; })()",
    );

    // Audio panel: the meter follows the microphone, the mic test plays it.
    open_panel(&mut app, "audio");
    app.eval("app", "document.getElementById('mic-test').click()");
    let looped = out.join("speaker-mic-test.wav");
    let rec = pulse.record_speaker(&looped);
    let player = {
        let (dir, source) = (out.clone(), source.clone());
        let pulse_vars = pulse.vars();
        std::thread::spawn(move || {
            let mut play = std::process::Command::new("paplay");
            play.envs(pulse_vars).current_dir(dir);
            play.arg("--device=mic")
                .arg(&source)
                .status()
                .expect("paplay")
        })
    };
    let level = app.wait(
        "app",
        "document.getElementById('level').value > 0.05 && document.getElementById('level').value",
        Duration::from_secs(5),
    );
    assert!(level.as_f64().unwrap() <= 1.0, "{level}");
    x.screenshot(&out.join("app-mic-test.png"));
    assert!(player.join().unwrap().success());
    until_the_mic_test_is_heard_out(&mut app);
    rec.stop();
    app.eval("app", "document.getElementById('mic-test').click()");
    let report = compare(&source, &looped);
    eprintln!("mic test loopback: {report}");
    assert_speech(&report, "the mic test");
    // Noise suppression and automatic gain are on by default (the loopback
    // above went through both); switching one off is remembered.
    let switches = app.eval(
        "app",
        "[document.getElementById('noise-suppression').checked, document.getElementById('auto-gain').checked]",
    );
    assert_eq!(switches, serde_json::json!([true, true]));
    app.eval(
        "app",
        "document.getElementById('noise-suppression').click()",
    );

    // The talk key, set by pressing it in the window.
    app.eval(
        "app",
        "(() => { document.getElementById('keypanel').open = true; document.getElementById('key-set').click(); return true; })()",
    );
    app.wait(
        "app",
        "document.getElementById('key-set').classList.contains('capturing')",
        Duration::from_secs(2),
    );
    app.key("app", "F8", true);
    app.key("app", "F8", false);
    app.wait(
        "app",
        "document.getElementById('key-name').textContent === 'F8'",
        Duration::from_secs(5),
    );
    // The panel lists HID devices for a pedal (none on a machine without USB).
    let pedal = app.wait(
        "app",
        "document.getElementById('pedal-status').textContent",
        Duration::from_secs(5),
    );
    assert!(
        pedal.as_str().unwrap().contains("No USB HID devices"),
        "{pedal}"
    );
    app.eval(
        "app",
        "(() => { document.getElementById('audio').open = false; document.getElementById('keypanel').scrollIntoView(); return true; })()",
    );
    app.screenshot("app", &out.join("app-talk-key-panel.png"));
    let status = app.eval("app", "window.squawkApp.engine.talkKeyStatus()");
    assert_eq!(status["key"], "F8", "{status}");
    assert_eq!(status["available"], true, "{status}");
    app.eval(
        "app",
        "(() => { const t = document.getElementById('key-tail'); t.value = '400'; t.dispatchEvent(new Event('change')); return true; })()",
    );
    // Pressing the key while the tail is being saved is fine (the key is
    // not registered again), but the check below reads the saved file.
    let settings = out
        .join("config")
        .join("org.squawk.desktop")
        .join("settings.json");
    let saved_tail = || -> serde_json::Value {
        std::fs::read_to_string(&settings)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map_or(serde_json::Value::Null, |v| v["release_tail_ms"].clone())
    };
    app.eval("app", "(() => { window.scrollTo(0, 0); return true; })()");
    // The new key works globally: X11 key events, not the page's.
    x.xdotool(&["keydown", "F8"]);
    app.wait_ptt("app", "talking", Duration::from_secs(5));
    x.screenshot_ptt(
        &out.join("app-talking-f8.png"),
        PTT_TALKING_GREEN,
        "talk button after pressing the new key",
    );
    x.xdotool(&["keyup", "F8"]);
    app.wait_ptt("app", "idle", Duration::from_secs(5));

    assert_eq!(saved_tail(), 400);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(saved["talk_key"], "F8", "{saved}");
    assert_eq!(saved["noise_suppression"], false, "{saved}");
    assert_eq!(saved["auto_gain"], true, "{saved}");
}

/// The app's settings file under the test's config directory, as text.
fn saved_settings(out: &std::path::Path) -> String {
    std::fs::read_to_string(
        out.join("config")
            .join("org.squawk.desktop")
            .join("settings.json"),
    )
    .unwrap()
}

/// Waits for the connect screen and types `fields` (input id, value) into it.
fn fill_connect_screen(app: &mut Browser, fields: &[(&str, &str)]) {
    app.wait(
        "app",
        "!document.getElementById('connect').hidden",
        Duration::from_secs(20),
    );
    let set: String = fields
        .iter()
        .map(|(id, v)| format!("document.getElementById({id:?}).value = {v:?};"))
        .collect();
    app.eval("app", &format!("(() => {{ {set} return true; }})()"));
}

#[test]
fn the_server_password_is_kept_in_the_desktop_keyring_not_in_settings() {
    let out = out_dir("app_keyring");
    let x = Xvfb::start();
    let _keyring = x.start_keyring(&out);
    let pulse = Pulse::start(&out);
    let config = out.join("server.toml");
    let phc = hash_password("correct horse");
    std::fs::write(&config, format!("password_hash = {phc:?}\n")).unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    let ws = server.ws_url();

    assert!(x.keyring_items().is_empty(), "a fresh keyring");
    // First start: the user types server, name and password on the connect screen.
    let mut app = Browser::tauri_app(&x, &pulse, &out, &[]);
    fill_connect_screen(
        &mut app,
        &[
            ("server", &ws),
            ("name", "Desk"),
            ("channel", "desk"),
            ("password", "correct horse"),
        ],
    );
    app.eval("app", "document.getElementById('connect').requestSubmit()");
    app.wait_ready("app", "desk");
    let error = app.eval("app", "document.getElementById('error').textContent");
    assert_eq!(error, "", "no keyring warning");
    assert_eq!(
        x.keyring_items().len(),
        1,
        "one secret in the Secret Service"
    );
    drop(app);

    // The password is nowhere in the app's files.
    let settings = saved_settings(&out);
    assert!(
        settings.contains(&ws),
        "the server is remembered: {settings}"
    );
    assert!(!settings.contains("correct horse"), "{settings}");

    // Second start, connecting at once with nothing typed: the keyring's password gets in.
    let mut app = Browser::tauri_app(
        &x,
        &pulse,
        &out,
        &["--server", &ws, "--name", "Desk", "--channel", "desk"],
    );
    app.wait_ready("app", "desk");
}

#[test]
fn the_desktop_signs_in_restarts_signed_in_from_the_keyring_and_signs_out() {
    let out = out_dir("app_account");
    let x = Xvfb::start();
    let _keyring = x.start_keyring(&out);
    let pulse = Pulse::start(&out);
    let data = out.join("server-data");
    let _ = std::fs::remove_dir_all(&data);
    let add = std::process::Command::new(bin("squawk-server"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "user",
            "add",
            "bo",
            "--display-name",
            "Bo B",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"battery staple\n")?;
            c.wait()
        })
        .unwrap();
    assert!(add.success());
    let server = TestServer::start_with(&["--data-dir", data.to_str().unwrap()]);
    let ws = server.ws_url();

    // First start: the user signs in on the connect screen.
    let mut app = Browser::tauri_app(&x, &pulse, &out, &[]);
    fill_connect_screen(
        &mut app,
        &[
            ("server", &ws),
            ("name", ""),
            ("user", "bo"),
            ("password", "battery staple"),
            ("channel", "desk"),
        ],
    );
    x.screenshot(&out.join("app-sign-in.png"));
    app.eval("app", "document.getElementById('connect').requestSubmit()");
    app.wait_ready("app", "desk");
    let shown = app.eval("app", "document.getElementById('where').textContent");
    assert_eq!(shown, "Bo B");
    let error = app.eval("app", "document.getElementById('error').textContent");
    assert_eq!(error, "", "no keyring warning");
    assert_eq!(
        x.keyring_items().len(),
        1,
        "the refresh token, in the Secret Service"
    );
    app.eval("app", "document.getElementById('audio').open = true");
    x.screenshot(&out.join("app-signed-in.png"));
    drop(app);
    let settings = saved_settings(&out);
    assert!(
        settings.contains("\"user\":\"bo\"") || settings.contains("\"user\": \"bo\""),
        "{settings}"
    );
    assert!(!settings.contains("battery staple"), "{settings}");

    // Second start, connecting at once with nothing typed: signed in again
    // from the keyring (the kept refresh token, traded for a new pair).
    let mut app = Browser::tauri_app(&x, &pulse, &out, &["--server", &ws, "--channel", "desk"]);
    app.wait_ready("app", "desk");
    let shown = app.eval("app", "document.getElementById('where').textContent");
    assert_eq!(shown, "Bo B");
    assert_eq!(
        x.keyring_items().len(),
        1,
        "the new refresh token replaced the spent one"
    );

    // Sign out: disconnected, the token revoked and forgotten.
    app.eval("app", "document.getElementById('signout').click()");
    app.wait(
        "app",
        "!document.getElementById('connect').hidden",
        Duration::from_secs(10),
    );
    assert!(x.keyring_items().is_empty(), "{:?}", x.keyring_items());
    drop(app);

    // Third start: signed out, so no account is used: the app connects as
    // a guest, whom this server keeps out of desk.
    let mut app = Browser::tauri_app(&x, &pulse, &out, &["--server", &ws, "--channel", "desk"]);
    let error = app.wait(
        "app",
        "document.getElementById('error').textContent",
        Duration::from_secs(20),
    );
    assert!(
        error.as_str().unwrap().contains("not_authorized"),
        "{error}"
    );
    let user = app.eval("app", "document.getElementById('user').value");
    assert_eq!(user, "", "the account is forgotten");
}

/// SHA-256 of the first certificate in the PEM file `path`, as `AB:CD:…`
/// (Python's ssl module, independent of the code under test).
fn pem_fingerprint(path: &std::path::Path) -> String {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import ssl, hashlib, sys; \
             d = hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(sys.argv[1]).read())).hexdigest().upper(); \
             print(':'.join(d[i:i + 2] for i in range(0, 64, 2)))",
        ])
        .arg(path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Trust on first use (issue 12): the app connecting to a `wss://` server
/// with a self-signed certificate shows the certificate's fingerprint and
/// asks; *Trust and connect* connects and remembers it; the next start
/// connects without asking; another certificate at the same address is
/// refused with the warning, and not offered for trust.
#[test]
fn the_desktop_pins_a_self_signed_server_on_first_use_and_refuses_another_certificate() {
    let out = out_dir("app_tofu");
    let x = Xvfb::start();
    let pulse = Pulse::start(&out);
    let data = out.join("server-data");
    let server =
        TestServer::start_with(&["--tls-self-signed", "--data-dir", data.to_str().unwrap()]);
    let fingerprint = pem_fingerprint(&data.join("self-signed-cert.pem"));
    let wss = format!("wss://{}/ws", server.http);
    let args = [
        "--server",
        wss.as_str(),
        "--name",
        "Desk",
        "--channel",
        "desk",
    ];
    let prompt_hidden = "document.getElementById('cert-prompt').hidden";

    let mut app = Browser::tauri_app(&x, &pulse, &out, &args);
    let shown = app.wait(
        "app",
        "!document.getElementById('cert-prompt').hidden && document.getElementById('cert-fp').textContent",
        Duration::from_secs(30),
    );
    assert_eq!(
        shown,
        fingerprint.as_str(),
        "the prompt shows the server's fingerprint"
    );
    x.screenshot(&out.join("app-certificate-prompt.png"));
    app.eval("app", "document.getElementById('cert-trust').click()");
    app.wait_ready("app", "desk");
    assert_eq!(app.eval("app", prompt_hidden), true);
    drop(app);
    assert!(
        saved_settings(&out).contains(&fingerprint),
        "pinned in the settings: {}",
        saved_settings(&out)
    );

    // The next start connects at once.
    let mut app = Browser::tauri_app(&x, &pulse, &out, &args);
    app.wait_ready("app", "desk");
    assert_eq!(app.eval("app", prompt_hidden), true);
    drop(app);

    // Another server, with another certificate, at the same address.
    let http = server.http.clone();
    drop(server);
    let other = out.join("other-data");
    let _other = TestServer::start_at(
        &http,
        &["--tls-self-signed", "--data-dir", other.to_str().unwrap()],
    );
    let mut app = Browser::tauri_app(&x, &pulse, &out, &args);
    let error = app.wait(
        "app",
        "document.getElementById('error').textContent.includes('certificate changed') && document.getElementById('error').textContent",
        Duration::from_secs(30),
    );
    assert!(error.as_str().unwrap().contains(&fingerprint), "{error}");
    assert_eq!(
        app.eval("app", prompt_hidden),
        true,
        "not offered for trust"
    );
    // The connect screen stays usable (another server can be typed).
    let form = app.eval(
        "app",
        "document.getElementById('connect').getBoundingClientRect().height > 0",
    );
    assert_eq!(form, true, "the connect form is shown");
    // The warning panel names both certificates.
    let other_fp = pem_fingerprint(&other.join("self-signed-cert.pem"));
    let changed = app.wait(
        "app",
        "!document.getElementById('cert-changed').hidden && [document.getElementById('cert-changed-pinned').textContent, document.getElementById('cert-changed-fp').textContent]",
        Duration::from_secs(10),
    );
    assert_eq!(changed, serde_json::json!([fingerprint, other_fp]));
    x.screenshot(&out.join("app-certificate-changed.png"));

    // Forgetting the old certificate: the next connect asks about the new
    // one (never trusted silently).
    app.eval("app", "document.getElementById('cert-forget').click()");
    let asked = app.wait(
        "app",
        "!document.getElementById('cert-prompt').hidden && document.getElementById('cert-fp').textContent",
        Duration::from_secs(30),
    );
    assert_eq!(asked, other_fp.as_str());
    app.eval("app", "document.getElementById('cert-cancel').click()");
    drop(app);
    assert!(
        !saved_settings(&out).contains(&fingerprint),
        "the old pin is gone: {}",
        saved_settings(&out)
    );

    // `--ca` with the server's certificate: trusted without a prompt.
    let ca = other.join("self-signed-cert.pem");
    let mut with_ca: Vec<&str> = args.to_vec();
    with_ca.extend(["--ca", ca.to_str().unwrap()]);
    let mut app = Browser::tauri_app(&x, &pulse, &out, &with_ca);
    app.wait_ready("app", "desk");
    assert_eq!(app.eval("app", prompt_hidden), true);
}
