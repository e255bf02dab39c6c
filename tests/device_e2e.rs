//! The real device path: a private PulseAudio daemon with null sinks (no
//! sound card exists here). Talker A captures through cpal from the source
//! `mic.monitor`, fed with speech by `paplay`; listener B plays through cpal
//! into the sink `spk`, whose monitor `parecord` records. The recording is
//! checked like the file-based end-to-end test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{process::Command, time::Duration};

use common::*;

#[test]
fn speech_through_real_pulseaudio_devices() {
    let out = out_dir("device_e2e");
    let pulse = Pulse::start(&out);
    let server = TestServer::start();
    let source = speech("F1_harvard_phrases.wav");
    let recording = out.join("spk.wav");

    let with_pulse = |name: &str, args: &[&str]| {
        let mut cmd = Command::new(bin("squawk-bot"));
        cmd.args(["--server", &server.ws_url(), "--name", name])
            .args(args);
        pulse.env(&mut cmd);
        Proc::spawn(name, &mut cmd)
    };
    let mut b = with_pulse(
        "B",
        &["listen", "--channel", "X", "--speaker", "--seconds", "14"],
    );
    b.expect_event(Duration::from_secs(20), "ready");

    let recorder = pulse.record_speaker(&recording);

    let mut a = with_pulse(
        "A",
        &["talk", "--channel", "X", "--mic", "--mic-seconds", "7.5"],
    );
    a.expect_event(Duration::from_secs(20), "ready");
    a.expect_event(Duration::from_secs(10), "floor_granted");
    let mut play = Command::new("paplay");
    pulse.env(&mut play);
    let played = play
        .arg("--device=mic")
        .arg(&source)
        .status()
        .expect("paplay");
    assert!(played.success());
    a.expect_event(Duration::from_secs(20), "talk_ended");
    assert_eq!(a.wait(Duration::from_secs(10)).0, 0);
    b.expect_event(Duration::from_secs(20), "received");
    assert_eq!(b.wait(Duration::from_secs(30)).0, 0);
    recorder.stop();

    let report = compare(&source, &recording);
    eprintln!("device path: {report}");
    assert_speech(&report, "B through PulseAudio");
    drop(pulse.daemon);
}
