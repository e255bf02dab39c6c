//! One table of push-to-talk cases (`tests/ptt/cases.txt`) for both
//! engines: the desktop's machine (`squawk_engine::ptt::Ptt`) here, and the
//! browser's (`ui/ptt.js`) under Node (`tests/ptt/run.js`), so that a key
//! behaves the same in the app and in the page.

use std::time::{Duration, Instant};

use squawk_engine::ptt::{Ptt, PttAction, PttConfig, PttInput};
use squawk_protocol::{ChannelName, DenyReason, RevokeReason};

const CASES: &str = include_str!("ptt/cases.txt");

struct Step {
    line: usize,
    at_ms: u64,
    input: Vec<String>,
    expected: Vec<String>,
}

/// The cases, as (name, steps).
fn cases() -> Vec<(String, Vec<Step>)> {
    let mut cases: Vec<(String, Vec<Step>)> = Vec::new();
    for (i, raw) in CASES.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("case ") {
            cases.push((name.to_string(), Vec::new()));
            continue;
        }
        let (lhs, rhs) = line
            .split_once("->")
            .unwrap_or_else(|| panic!("line {}: not a step: {line}", i + 1));
        let mut lhs = lhs.split_whitespace();
        let at_ms = lhs.next().and_then(|t| t.parse().ok()).expect("a time, ms");
        let steps = &mut cases.last_mut().expect("a step before any case").1;
        steps.push(Step {
            line: i + 1,
            at_ms,
            input: lhs.map(str::to_string).collect(),
            expected: rhs
                .split(';')
                .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|a| !a.is_empty())
                // The browser's microphone switch: the desktop buffers
                // frames instead.
                .filter(|a| !a.starts_with("uplink "))
                .collect(),
        });
    }
    cases
}

fn ch(s: &str) -> ChannelName {
    s.parse().expect("a channel name")
}

fn reason<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .unwrap_or_else(|e| panic!("reason {s:?}: {e}"))
}

fn input(words: &[String]) -> PttInput<()> {
    let arg = |i: usize| words.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "press" if words.len() == 2 => PttInput::Press(ch(arg(1))),
        "press" => PttInput::PressAll(words[1..].iter().map(|c| ch(c)).collect()),
        "release" => PttInput::Release,
        "granted" => PttInput::Granted(ch(arg(1))),
        "denied" => PttInput::Denied(ch(arg(1)), reason::<DenyReason>(arg(2))),
        "queued" => PttInput::Queued(ch(arg(1)), arg(2).parse().expect("a queue position")),
        "revoked" => PttInput::Revoked(ch(arg(1)), reason::<RevokeReason>(arg(2))),
        "floor_idle" => PttInput::FloorIdle(ch(arg(1))),
        "disconnected" => PttInput::Disconnected,
        "tick" => PttInput::Tick,
        other => panic!("unknown input {other:?}"),
    }
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn words(a: &PttAction<()>) -> Option<String> {
    Some(match a {
        PttAction::RequestFloor(c) => format!("request {c}"),
        PttAction::ReleaseFloor(c) => format!("release {c}"),
        PttAction::TalkStarted(c) => format!("started {c}"),
        PttAction::TalkEnded(c) => format!("ended {c}"),
        PttAction::Busy(c, r) => format!("busy {c} {}", word(r)),
        PttAction::Queued(c, p) => format!("queued {c} {p}"),
        PttAction::Revoked(c, r) => format!("revoked {c} {}", word(r)),
        // No frames are fed: nothing to send.
        PttAction::Send { .. } => return None,
    })
}

#[test]
fn the_desktop_ptt_machine_follows_the_table() {
    let cases = cases();
    assert!(cases.len() >= 20, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, steps) in &cases {
        let t0 = Instant::now();
        let mut ptt = Ptt::<()>::new(PttConfig::default());
        for s in steps {
            ptt.handle(t0 + Duration::from_millis(s.at_ms), input(&s.input));
            let got: Vec<String> = std::iter::from_fn(|| ptt.poll_action())
                .filter_map(|a| words(&a))
                .collect();
            if got != s.expected {
                failures.push(format!(
                    "{name}\n  line {}: {} {}\n  expected: {}\n  got:      {}",
                    s.line,
                    s.at_ms,
                    s.input.join(" "),
                    s.expected.join("; "),
                    got.join("; ")
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_browser_ptt_machine_follows_the_table() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("node")
        .arg(format!("{root}/tests/ptt/run.js"))
        .output()
        .expect("node runs (Node is part of the test setup)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("cases pass"), "{text}");
}
