//! Accounts end to end (issue 13), as an operator and clients would meet
//! them: users and grants made with the `squawk-server` command line on the
//! server's database, sign-in over `/api/v1`, the access token in `hello`,
//! join and Floor Request allowed only by the grants, a grant withdrawn
//! from the command line while the user is connected, refresh tokens used
//! once, sign-in attempts rate-limited. SQLite (the default database).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::{
    io::{Read, Write},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

/// Runs `squawk-server --data-dir DIR ARGS`, with `stdin` as its input;
/// panics unless it succeeds.
fn admin(dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(bin("squawk-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("squawk-server");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.1 request over std TCP (no client crate); returns the status
/// code and the JSON body (Null if none).
fn request(http: &str, head: &str, body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(http).unwrap();
    write!(
        s,
        "{head}\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let json = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

fn post(http: &str, path: &str, body: &Value) -> (u16, Value) {
    request(http, &format!("POST {path} HTTP/1.1"), &body.to_string())
}

fn get_bearer(http: &str, path: &str, token: &str) -> (u16, Value) {
    let head = format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}");
    request(http, &head, "")
}

fn login(http: &str, username: &str, password: &str) -> (u16, Value) {
    let body = json!({"username": username, "password": password});
    post(http, "/api/v1/login", &body)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and says `hello` with `token`; returns the socket and the
/// first reply.
async fn hello(url: &str, name: &str, token: Option<&str>) -> (Ws, Value) {
    let (mut ws, _) = connect_async(url).await.expect("connect");
    let mut hello = json!({"type": "hello", "version": 2, "name": name});
    if let Some(t) = token {
        hello["token"] = json!(t);
    }
    send(&mut ws, hello).await;
    let first = next(&mut ws, |_| true).await;
    (ws, first)
}

async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
}

/// The next server message that `f` accepts (others are skipped), within
/// 10 s; panics on a closed socket or a timeout.
async fn next(ws: &mut Ws, f: impl Fn(&Value) -> bool) -> Value {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(end, ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if f(&v) {
                return v;
            }
        }
    }
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == kind
}

#[tokio::test]
async fn users_sign_in_and_the_grants_decide_who_listens_and_talks() {
    let dir = std::env::temp_dir().join(format!("squawk-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The operator: an admin, a user, users listen-only in ops, guests in lobby.
    admin(
        &dir,
        &["user", "add", "ann", "--role", "admin"],
        "correct horse\n",
    );
    admin(
        &dir,
        &["user", "add", "bo", "--display-name", "Bo B"],
        "battery staple\n",
    );
    admin(
        &dir,
        &["grant", "ops", "role:user", "--rights", "listen"],
        "",
    );
    admin(&dir, &["channel", "put", "lobby", "--guests"], "");
    let listed = admin(&dir, &["user", "list"], "");
    assert!(
        listed.contains("ann") && listed.contains("bo\tBo B\tuser"),
        "{listed}"
    );

    let dir_arg = dir.to_str().unwrap();
    let server = TestServer::start_with(&["--data-dir", dir_arg]);
    let http = server.http.clone();
    let url = server.ws_url();

    // Sign-in: wrong password refused, right one gives a token pair.
    let (status, body) = login(&http, "bo", "wrong");
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, bo) = login(&http, "bo", "battery staple");
    assert_eq!(status, 200, "{bo}");
    assert_eq!(bo["user"]["role"], "user");
    assert!(bo["expires_in"].as_u64().unwrap() <= 900);
    let token = bo["access_token"].as_str().unwrap().to_string();

    // The channels bo may use, with its rights.
    let (status, chans) = get_bearer(&http, "/api/v1/channels", &token);
    assert_eq!(status, 200);
    let ops = chans
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ops")
        .expect("ops is listed");
    assert_eq!(
        (
            ops["rights"]["listen"].as_bool(),
            ops["rights"]["talk"].as_bool()
        ),
        (Some(true), Some(false))
    );

    // A bad token is refused and the connection closed.
    let (_ws, first) = hello(&url, "Mallory", Some("not-a-token")).await;
    assert_eq!(first["code"], "unauthorized", "{first}");

    // A guest (no token) may join lobby only.
    let (mut guest, first) = hello(&url, "Gus", None).await;
    assert_eq!(first["type"], "welcome");
    send(&mut guest, json!({"type": "join", "channel": "ops"})).await;
    let e = next(&mut guest, is("error")).await;
    assert_eq!(e["code"], "not_authorized", "{e}");
    send(&mut guest, json!({"type": "join", "channel": "lobby"})).await;
    send(&mut guest, json!({"type": "list_channels"})).await;
    // The join was accepted: no error before the channel list.
    let v = next(&mut guest, |v| {
        v["type"] == "error" || v["type"] == "channels"
    })
    .await;
    assert_eq!(v["type"], "channels", "{v}");

    // Bo, signed in: listens in ops, but may not talk there.
    let (mut bo_ws, first) = hello(&url, "ignored", Some(&token)).await;
    assert_eq!(first["type"], "welcome");
    send(&mut bo_ws, json!({"type": "join", "channel": "ops"})).await;
    send(
        &mut bo_ws,
        json!({"type": "floor_request", "channel": "ops", "priority": 0}),
    )
    .await;
    let deny = next(&mut bo_ws, is("floor_deny")).await;
    assert_eq!(deny["reason"], "not_authorized", "{deny}");

    // The operator takes ops away from bo: bo is told and removed within
    // a couple of seconds (the server reloads the database every second).
    let t0 = Instant::now();
    admin(&dir, &["grant", "ops", "user:bo", "--rights", "none"], "");
    let e = next(&mut bo_ws, is("error")).await;
    assert_eq!(e["code"], "not_authorized", "{e}");
    assert!(e["message"].as_str().unwrap().contains("removed from ops"));
    let left = next(&mut bo_ws, is("left")).await;
    assert_eq!(left["channel"], "ops");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // Refresh tokens: each is used once; sign-out revokes.
    let refresh = bo["refresh_token"].as_str().unwrap();
    let (status, again) = post(&http, "/api/v1/refresh", &json!({"refresh_token": refresh}));
    assert_eq!(status, 200, "{again}");
    let (status, _) = post(&http, "/api/v1/refresh", &json!({"refresh_token": refresh}));
    assert_eq!(status, 401, "a refresh token is used once");
    let newer = again["refresh_token"].as_str().unwrap();
    let (status, _) = post(&http, "/api/v1/logout", &json!({"refresh_token": newer}));
    assert_eq!(status, 204);
    let (status, _) = post(&http, "/api/v1/refresh", &json!({"refresh_token": newer}));
    assert_eq!(status, 401, "signed out");

    // Guessing passwords: after 5 failures, even the right one waits.
    for _ in 0..5 {
        let (s, _) = login(&http, "ann", "guess");
        assert_eq!(s, 401);
    }
    let (status, body) = login(&http, "ann", "correct horse");
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
