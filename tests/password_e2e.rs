//! A server with a password (`password_hash` in its config, made by
//! `squawk-server hash-password`): clients without it, or with a wrong one,
//! get a clear `unauthorized` error and are disconnected; with it, they
//! join and talk as usual.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

/// Sends `hello` (with `password` if given); returns the first reply and
/// whether the server then closed the connection.
async fn hello(url: &str, password: Option<&str>) -> (Value, bool) {
    let (mut ws, _) = connect_async(url).await.expect("connect");
    let mut hello = json!({"type": "hello", "version": 2, "name": "Probe"});
    if let Some(p) = password {
        hello["password"] = json!(p);
    }
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .expect("send");
    let mut first = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("server answers in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if first.is_none() {
                    first = Some(v.clone());
                }
                if v["type"] == "welcome" {
                    return (v, false);
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                return (first.expect("a reply before the close"), true);
            }
            Some(Ok(_)) => {}
        }
    }
}

#[test]
fn only_clients_with_the_server_password_get_in() {
    let out = out_dir("password_e2e");
    let phc = hash_password("correct horse");
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains("correct horse"));

    let config = out.join("server.toml");
    std::fs::write(&config, format!("password_hash = {phc:?}\n")).unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    let url = server.ws_url();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (reply, closed) = rt.block_on(hello(&url, None));
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    assert_eq!(reply["message"], "this server needs a password");
    assert!(closed, "the connection is closed after the refusal");
    let (reply, closed) = rt.block_on(hello(&url, Some("correct hors")));
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    assert_eq!(reply["message"], "wrong password");
    assert!(closed);
    let (reply, closed) = rt.block_on(hello(&url, Some("correct horse")));
    assert_eq!(reply["type"], "welcome", "{reply}");
    assert!(!closed);

    // The bot: refused with a clear message, or talking with the password.
    let mut cmd = Command::new(bin("squawk-bot"));
    cmd.args([
        "--server",
        &url,
        "--name",
        "Wrong",
        "listen",
        "--channel",
        "ops",
    ])
    .args(["--record", "/dev/null", "--seconds", "5"])
    .env("SQUAWK_PASSWORD", "nope")
    .stderr(Stdio::piped())
    .stdout(Stdio::null());
    let refused = cmd.output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("wrong password"), "{err}");

    let rec = out.join("heard.wav");
    let mut listener = {
        let mut cmd = Command::new(bin("squawk-bot"));
        cmd.args([
            "--server",
            &url,
            "--name",
            "L",
            "--password",
            "correct horse",
        ])
        .args([
            "listen",
            "--channel",
            "ops",
            "--record",
            rec.to_str().unwrap(),
            "--seconds",
            "20",
        ]);
        let mut p = Proc::spawn("L", &mut cmd);
        p.expect_event(Duration::from_secs(20), "ready");
        p
    };
    let mut talker = Command::new(bin("squawk-bot"));
    talker
        .args([
            "--server",
            &url,
            "--name",
            "T",
            "talk",
            "--channel",
            "ops",
            "--wav",
        ])
        .arg(speech("F1_harvard_phrases.wav"))
        .env("SQUAWK_PASSWORD", "correct horse");
    let mut talker = Proc::spawn("T", &mut talker);
    talker.expect_event(Duration::from_secs(20), "floor_granted");
    assert_eq!(talker.wait(Duration::from_secs(30)).0, 0);
    let report = listener.expect_event(Duration::from_secs(20), "received");
    assert!(
        report["report"]["packets"].as_u64().unwrap() > 100,
        "{report}"
    );
}
