//! TLS for clients (issue 12): `squawk-bot` over `wss://` to a server with
//! a self-signed certificate. Refused while unknown, with the fingerprint
//! in a one-line error; accepted when pinned (`--pin`) or when its CA is
//! given (`--ca`), and speech crosses; a different certificate on the same
//! address is refused against the pin; the browser's link works as
//! `--server`; a bad address is one line without a backtrace.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{process::Command, time::Duration};

use common::*;

/// A bot process with its own `--server` and trust options.
fn bot(name: &str, server: &str, trust: &[&str], args: &[&str]) -> Proc {
    let mut cmd = Command::new(bin("squawk-bot"));
    cmd.args(["--server", server, "--name", name])
        .args(trust)
        .args(args);
    Proc::spawn(name, &mut cmd)
}

/// The `AB:CD:…` fingerprint named in a refusal.
fn fingerprint_in(err: &str) -> String {
    let at = err.find("fingerprint is ").expect("a fingerprint") + "fingerprint is ".len();
    err[at..at + 95].to_string()
}

#[test]
fn a_self_signed_server_is_refused_until_pinned_or_its_ca_is_given_and_a_new_one_is_refused() {
    let out = out_dir("tls_e2e");
    let data = out.join("data");
    let data_arg = data.to_str().unwrap();
    let server = TestServer::start_with(&["--tls-self-signed", "--data-dir", data_arg]);
    let wss = format!("wss://{}/ws", server.http);
    let ca = data.join("self-signed-cert.pem");

    // Unknown: refused, in one line, with the fingerprint to check and pin.
    let (code, err) = try_listen(&wss, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not trusted"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let pin = fingerprint_in(&err);

    // Pinned (the listener) and by its CA (the talker, through the
    // browser's https link): speech crosses.
    let rec = out.join("listener.wav");
    let mut l = bot(
        "L",
        &wss,
        &["--pin", &pin],
        &[
            "listen",
            "--channel",
            "T",
            "--record",
            rec.to_str().unwrap(),
            "--seconds",
            "12",
        ],
    );
    l.expect_event(Duration::from_secs(20), "ready");
    let link = format!("https://{}/c/T", server.http);
    let source = speech("M2_harvard_phrases.wav");
    let mut t = bot(
        "Tk",
        &link,
        &["--ca", ca.to_str().unwrap()],
        &["talk", "--channel", "T", "--wav", source.to_str().unwrap()],
    );
    t.expect_event(Duration::from_secs(20), "floor_granted");
    assert_eq!(t.wait(Duration::from_secs(30)).0, 0);
    assert_eq!(l.wait(Duration::from_secs(30)).0, 0);
    assert_speech(&compare(&source, &rec), "speech over wss://");

    // Another certificate at the same address (a new server in its place):
    // the pin refuses it and says both fingerprints.
    let http = server.http.clone();
    drop(server);
    let other = out.join("other-data");
    let _replaced = TestServer::start_at(
        &http,
        &["--tls-self-signed", "--data-dir", other.to_str().unwrap()],
    );
    let (code, err) = try_listen(&wss, &["--pin", &pin]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("certificate changed") && err.contains(&pin),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    // And the old CA file does not vouch for it either.
    let (code, err) = try_listen(&wss, &["--ca", ca.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not trusted"), "{err}");
}

#[test]
fn the_browser_link_works_as_the_server_and_a_bad_address_is_one_line() {
    let server = TestServer::start();
    let mut l = bot(
        "L",
        &format!("http://{}/c/X", server.http),
        &[],
        &[
            "listen",
            "--channel",
            "X",
            "--record",
            "/dev/null",
            "--seconds",
            "1",
        ],
    );
    l.expect_event(Duration::from_secs(20), "ready");
    assert_eq!(l.wait(Duration::from_secs(20)).0, 0);
    for bad in ["ftp://h/", "http://", "http://h/c/bad name"] {
        let (code, err) = try_listen(bad, &[]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("bad server address"), "{bad}: {err}");
        assert!(
            !err.contains("backtrace") && !err.contains("panicked"),
            "{err}"
        );
    }
}
