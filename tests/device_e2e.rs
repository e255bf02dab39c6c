//! The real device path: a private PulseAudio daemon with null sinks (no
//! sound card exists here). Talker A captures through cpal from the source
//! `mic.monitor`, fed with speech by `paplay`; listener B plays through cpal
//! into the sink `spk`, whose monitor `parecord` records. The recording is
//! checked like the file-based end-to-end test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::*;

struct Pulse {
    dir: PathBuf,
    daemon: Proc,
}

impl Pulse {
    fn start(dir: &Path) -> Self {
        let runtime = dir.join("xdg");
        std::fs::create_dir_all(&runtime).unwrap();
        let mut cmd = Command::new("pulseaudio");
        cmd.env("XDG_RUNTIME_DIR", &runtime).env("HOME", dir).args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--log-target=stderr",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=mic rate=48000 channels=1",
            "--load=module-null-sink sink_name=spk rate=48000 channels=1",
        ]);
        let daemon = Proc::spawn("pulseaudio", &mut cmd);
        let pulse = Self {
            dir: runtime,
            daemon,
        };
        // Ready when pactl can talk to it (bounded: 10 s).
        let end = Instant::now() + Duration::from_secs(10);
        while !pulse.pactl(&["info"]) {
            assert!(Instant::now() < end, "pulseaudio did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(pulse.pactl(&["set-default-source", "mic.monitor"]));
        assert!(pulse.pactl(&["set-default-sink", "spk"]));
        pulse
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("XDG_RUNTIME_DIR", &self.dir).env(
            "PULSE_SERVER",
            format!("unix:{}/pulse/native", self.dir.display()),
        );
    }

    fn pactl(&self, args: &[&str]) -> bool {
        let mut cmd = Command::new("pactl");
        self.env(&mut cmd);
        cmd.args(args).output().is_ok_and(|o| o.status.success())
    }
}

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

    let mut rec = Command::new("parecord");
    pulse.env(&mut rec);
    rec.args([
        "--device=spk.monitor",
        "--rate=48000",
        "--channels=1",
        "--format=s16le",
        "--file-format=wav",
    ])
    .arg(&recording);
    let recorder = Proc::spawn("parecord", &mut rec);

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
    // parecord writes the WAV header on SIGINT.
    let _ = Command::new("kill")
        .args(["-INT", &recorder.pid().to_string()])
        .status();
    let _ = recorder.wait(Duration::from_secs(10));

    let report = compare(&source, &recording);
    eprintln!("device path: {report}");
    assert_speech(&report, "B through PulseAudio");
    drop(pulse.daemon);
}
