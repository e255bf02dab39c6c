//! The browser client in Firefox (Debian firefox-esr, headless, driven
//! through geckodriver's W3C WebDriver). Firefox has no fake-microphone file
//! option, so it runs against a private PulseAudio daemon: its microphone is
//! the null sink `mic` fed with real speech by `paplay`, and its speaker is
//! the null sink `spk`. It talks to a bot and hears a bot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{path::Path, time::Duration};

use common::*;

/// Page `p` ("Fox") talks while `source` plays into the sink `mic`
/// (Firefox records its monitor); `bot`, recording into `rec`, must hear it
/// intelligibly.
fn talk_into(
    pulse: &Pulse,
    mic: &str,
    source: &Path,
    browser: &mut Browser,
    mut bot: Proc,
    rec: &Path,
) {
    // Firefox's capture runs from getUserMedia on, with AGC and noise
    // suppression: let them settle on one pass of speech first, as they
    // would on a real person's voice before the first press.
    pulse.play_into(mic, source);
    // Firefox talks: hold the button while the speech plays into its mic.
    browser.press("p");
    browser.wait_ptt("p", "talking", Duration::from_secs(5));
    assert_eq!(
        bot.expect_event(Duration::from_secs(5), "floor_taken")["talker"],
        "Fox"
    );
    // Firefox sends nothing while its input is digital silence (the null
    // sink before paplay starts): the transmission starts with the speech.
    pulse.play_into(mic, source);
    browser.release("p");
    browser.wait_ptt("p", "idle", Duration::from_secs(5));
    let received = bot.expect_event(Duration::from_secs(10), "received");
    assert_eq!(received["report"]["talker"], "Fox");
    let (code, _) = bot.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let report = compare(source, rec);
    eprintln!("Firefox ({mic}) -> bot: {report}");
    assert_intelligible(&report, "bot hearing the browser");
}

#[test]
fn firefox_joins_talks_and_hears() {
    let out = out_dir("firefox_e2e");
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let source = speech("F1_harvard_phrases.wav");
    let rec = out.join("bot.wav");
    let bot = server.listener("B", "fx", &rec, 30);
    let mut browser = Browser::firefox(&pulse);
    eprintln!("Firefox {}", browser.version);
    browser.open("p", &server.page_url("fx", "Fox"));
    browser.wait_ready("p", "fx");
    let dtls = browser.eval(
        "p",
        "squawkApp.engine.debug.rtpStats().then(s => s.transport)",
    );
    eprintln!("Firefox transport: {dtls}");

    talk_into(&pulse, "mic", &source, &mut browser, bot, &rec);

    // A bot talks: Firefox shows the talker and its analyser hears the audio.
    let mut talker = server.talker("Dispatch", "fx", &speech("M1_harvard_phrases.wav"), &[]);
    talker.expect_event(Duration::from_secs(10), "floor_granted");
    let shown = browser.wait_talker_shown("p");
    assert_eq!(shown, "Dispatch");
    browser.wait_heard("p", "fx", Duration::from_secs(10));
    // Firefox refreshes its RTP statistics about once a second.
    let stats = browser.wait(
        "p",
        "squawkApp.engine.debug.rtpStats().then(s => s.inbound.some(i => i.packetsReceived > 20) && s)",
        Duration::from_secs(10),
    );
    eprintln!("Firefox inbound: {stats}");
    let (code, _) = talker.wait(Duration::from_secs(20));
    assert_eq!(code, 0);
    browser.quit();
    drop(pulse.daemon);
}

/// Device choice in the page: Firefox lists the PulseAudio sources as its
/// microphones; the one chosen in the Audio panel (a second one, not the
/// default) is used at once, is the one heard, and is kept for the next
/// visit.
#[test]
fn firefox_talks_from_the_microphone_chosen_in_the_audio_panel_and_keeps_it() {
    let out = out_dir("firefox_devices");
    let pulse = Pulse::start(&out);
    assert!(pulse.pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=headset",
        "rate=48000",
        "channels=1",
        "sink_properties=device.description=Headset",
    ]));
    let server = TestServer::start();
    let source = speech("F1_harvard_phrases.wav");
    let rec = out.join("bot.wav");
    let bot = server.listener("B", "fxd", &rec, 30);
    let mut browser = Browser::firefox(&pulse);
    let url = server.page_url("fxd", "Fox");
    browser.open("p", &url);
    browser.wait_ready("p", "fxd");
    let devices = browser.eval("p", "squawkApp.engine.listDevices()");
    eprintln!("Firefox devices: {devices}");
    let headset = devices["inputs"]
        .as_array()
        .expect("a list of microphones")
        .iter()
        .find(|d| d["description"] == "Monitor of Headset")
        .expect("the headset's microphone is listed by its name")
        .clone();
    let id = headset["name"].clone();
    assert_ne!(
        browser.eval("p", "squawkApp.engine.debug.micDevice()"),
        id,
        "the default microphone is used first"
    );
    // Chosen in the panel, as a person would.
    browser.eval("p", "document.getElementById('audio').open = true");
    browser.wait(
        "p",
        &format!(
            "[...document.getElementById('input-device').options].some((o) => o.value === {id})"
        ),
        Duration::from_secs(5),
    );
    browser.eval(
        "p",
        &format!(
            "(() => {{ const s = document.getElementById('input-device'); s.value = {id}; \
             s.dispatchEvent(new Event('change')); return true; }})()"
        ),
    );
    browser.wait(
        "p",
        &format!("squawkApp.engine.debug.micDevice() === {id}"),
        Duration::from_secs(5),
    );
    browser.screenshot("p", &out.join("firefox-devices.png"));
    // The next visit starts on it, and the panel names it.
    browser.open("p", &url);
    browser.wait_ready("p", "fxd");
    browser.wait(
        "p",
        &format!("squawkApp.engine.debug.micDevice() === {id}"),
        Duration::from_secs(5),
    );
    browser.eval("p", "document.getElementById('audio').open = true");
    browser.wait(
        "p",
        &format!("document.getElementById('input-device').value === {id}"),
        Duration::from_secs(5),
    );
    // Speech goes into the headset only: the listener hears it.
    talk_into(&pulse, "headset", &source, &mut browser, bot, &rec);
    browser.quit();
    drop(pulse.daemon);
}
