//! Accounts end to end (issue 13), as an operator and clients would meet
//! them: users and grants made with the `squawk-server` command line on the
//! server's database, sign-in over `/api/v1`, the access token in `hello`,
//! join and Floor Request allowed only by the grants, a grant withdrawn
//! from the command line while the user is connected, refresh tokens used
//! once, sign-in attempts rate-limited; the admin API, with its changes
//! reaching live connections within a second (a withdrawn grant, a disabled
//! user), on SQLite and on a PostgreSQL cluster the test starts; signed-in
//! clients (`squawk-bot --user`, the browser) heard or not by their rights.

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
    admin_on(dir, None, args, stdin)
}

/// A test account: username, password, more `user add` options.
type Account = (&'static str, &'static str, &'static [&'static str]);
const ANN: Account = ("ann", "correct horse", &["--role", "admin"]);
const BO: Account = ("bo", "battery staple", &["--display-name", "Bo B"]);
const CY: Account = ("cy", "long enough", &[]);

/// A fresh data directory for the test `tag`, with `accounts` added through
/// the command line (on `db`, a `postgres://` URL, when given).
fn accounts_dir(tag: &str, db: Option<&str>, accounts: &[Account]) -> std::path::PathBuf {
    let on = if db.is_some() { "pg" } else { "sqlite" };
    let dir = std::env::temp_dir().join(format!("squawk-{tag}-{on}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (user, password, more) in accounts {
        let mut args = vec!["user", "add", user];
        args.extend_from_slice(more);
        admin_on(&dir, db, &args, &format!("{password}\n"));
    }
    dir
}

/// A server on the data directory `dir` and the database `db` (SQLite in
/// `dir` when `None`).
fn accounts_server(dir: &Path, db: Option<&str>) -> TestServer {
    let mut args = vec!["--data-dir", dir.to_str().unwrap()];
    if let Some(db) = db {
        args.extend(["--database", db]);
    }
    TestServer::start_with(&args)
}

/// As [`admin`], on the database `db` (a `postgres://` URL) when given.
fn admin_on(dir: &Path, db: Option<&str>, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new(bin("squawk-server"));
    if let Some(db) = db {
        cmd.env("SQUAWK_DATABASE", db);
    }
    let mut child = cmd
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
async fn users_sign_in_and_the_grants_decide_who_listens_and_talks_on_sqlite() {
    sign_in_flow(None).await;
}

/// The same on PostgreSQL (a cluster the test starts; skipped only when
/// PostgreSQL is not installed and `SQUAWK_REQUIRE_POSTGRES` is unset).
#[tokio::test]
async fn users_sign_in_and_the_grants_decide_who_listens_and_talks_on_postgresql() {
    let Some(pg) = pg_cluster::Cluster::start() else {
        return;
    };
    sign_in_flow(Some(&pg.url)).await;
}

/// Users and grants made with the command line on `db` (SQLite in the
/// data directory when `None`); sign-in, refresh, sign-out, the grants at
/// join and Floor Request, a grant withdrawn live, login rate limiting.
async fn sign_in_flow(db: Option<&str>) {
    // The operator: an admin, a user, users listen-only in ops, guests in lobby.
    let dir = accounts_dir("accounts", db, &[ANN, BO]);
    admin_on(
        &dir,
        db,
        &["grant", "ops", "role:user", "--rights", "listen"],
        "",
    );
    admin_on(&dir, db, &["channel", "put", "lobby", "--guests"], "");
    let listed = admin_on(&dir, db, &["user", "list"], "");
    assert!(
        listed.contains("ann") && listed.contains("bo\tBo B\tuser"),
        "{listed}"
    );

    let server = accounts_server(&dir, db);
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
    admin_on(
        &dir,
        db,
        &["grant", "ops", "user:bo", "--rights", "none"],
        "",
    );
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

/// `METHOD path` with a bearer token and a JSON body.
fn call(http: &str, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let head = format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer {token}");
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    request(http, &head, &body)
}

/// Waits for the socket to close (a Close frame or the end of the stream)
/// within 10 s, skipping other frames; returns the text messages seen.
async fn closed(ws: &mut Ws) -> Vec<Value> {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(end, ws.next())
            .await
            .expect("closed within 10 s")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return seen,
            Some(Ok(Message::Text(t))) => seen.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn an_admin_manages_users_channels_and_grants_over_http_on_sqlite() {
    admin_flow(None).await;
}

/// The same on PostgreSQL (a cluster the test starts; skipped only when
/// PostgreSQL is not installed and `SQUAWK_REQUIRE_POSTGRES` is unset).
#[tokio::test]
async fn an_admin_manages_users_channels_and_grants_over_http_on_postgresql() {
    let Some(pg) = pg_cluster::Cluster::start() else {
        return;
    };
    admin_flow(Some(&pg.url)).await;
}

/// Users, channels and grants through the admin API, on `db` (SQLite in
/// the data directory when `None`); each change reaches live connections.
async fn admin_flow(db: Option<&str>) {
    let dir = accounts_dir("admin-api", db, &[ANN, BO]);
    let server = accounts_server(&dir, db);
    let http = server.http.clone();
    let url = server.ws_url();
    let token = |body: &Value| body["access_token"].as_str().unwrap().to_string();
    let ann = token(&login(&http, "ann", "correct horse").1);
    let bo = token(&login(&http, "bo", "battery staple").1);

    // Only an admin: no token is 401, a user's token 403.
    let (status, body) = request(&http, "GET /api/v1/admin/users HTTP/1.1", "");
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = get_bearer(&http, "/api/v1/admin/users", &bo);
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));

    // Users: a short password and an unknown role are refused before
    // anything is written; a name is taken once.
    let users = "/api/v1/admin/users";
    let (status, body) = call(
        &http,
        "POST",
        users,
        &ann,
        &json!({"username": "cy", "password": "short"}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let (status, body) = call(
        &http,
        "POST",
        users,
        &ann,
        &json!({"username": "cy", "password": "long enough", "role": "chief"}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    let cy_body = json!({"username": "cy", "password": "long enough", "display_name": "Cy C"});
    let (status, cy_user) = call(&http, "POST", users, &ann, &cy_body);
    assert_eq!(status, 201, "{cy_user}");
    assert_eq!(
        (cy_user["role"].as_str(), cy_user["display_name"].as_str()),
        (Some("user"), Some("Cy C"))
    );
    let (status, body) = call(&http, "POST", users, &ann, &cy_body);
    assert_eq!((status, body["error"].as_str()), (409, Some("user_exists")));
    let (status, list) = get_bearer(&http, users, &ann);
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ann", "bo", "cy"]);

    // Channels and grants: users listen in ops, cy may also talk there.
    // Ops has its own floor policy: first come, first served, 20 s talks.
    let (status, body) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops",
        &ann,
        &json!({"description": "Operations", "max_talk_secs": 0}),
    );
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid")));
    let (status, _) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops",
        &ann,
        &json!({"description": "Operations", "preemption": false, "max_talk_secs": 20}),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops/grants/role:user",
        &ann,
        &json!({"listen": true}),
    );
    assert_eq!(status, 200);
    let (status, r) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops/grants/user:cy",
        &ann,
        &json!({"listen": true, "talk": true, "max_priority": 1}),
    );
    assert_eq!(
        (status, r["talk"].as_bool(), r["max_priority"].as_u64()),
        (200, Some(true), Some(1)),
        "{r}"
    );
    let (status, body) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops/grants/user:nobody",
        &ann,
        &json!({}),
    );
    assert_eq!((status, body["error"].as_str()), (404, Some("no_user")));
    let (status, chans) = get_bearer(&http, "/api/v1/admin/channels", &ann);
    assert_eq!(status, 200);
    let ops = &chans.as_array().unwrap()[0];
    assert_eq!(
        (
            ops["name"].as_str(),
            ops["description"].as_str(),
            ops["preemption"].as_bool(),
            ops["max_talk_secs"].as_u64()
        ),
        (Some("ops"), Some("Operations"), Some(false), Some(20)),
        "{ops}"
    );
    let subjects: Vec<&str> = ops["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["role:user", "user:cy"]);

    // Bo and Cy on the air in ops; Cy holds the floor.
    let cy = token(&login(&http, "cy", "long enough").1);
    let (mut bo_ws, first) = hello(&url, "bo", Some(&bo)).await;
    assert_eq!(first["type"], "welcome");
    let (mut cy_ws, first) = hello(&url, "cy", Some(&cy)).await;
    assert_eq!(first["type"], "welcome");
    for ws in [&mut bo_ws, &mut cy_ws] {
        send(ws, json!({"type": "join", "channel": "ops"})).await;
        send(ws, json!({"type": "list_channels"})).await;
        let v = next(ws, |v| v["type"] == "error" || v["type"] == "channels").await;
        assert_eq!(v["type"], "channels", "the join was accepted: {v}");
    }
    send(
        &mut cy_ws,
        json!({"type": "floor_request", "channel": "ops", "priority": 1}),
    )
    .await;
    let v = next(&mut cy_ws, |v| {
        v["type"] == "floor_deny" || v["type"] == "floor_granted"
    })
    .await;
    // Without media the request is denied for no_media, which shows that
    // the rights passed (not_authorized is checked first).
    assert_ne!(v["reason"], "not_authorized", "{v}");

    // Withdrawn over HTTP: bo stops hearing ops within a second.
    let t0 = Instant::now();
    let (status, _) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops/grants/user:bo",
        &ann,
        &json!({"listen": false}),
    );
    assert_eq!(status, 200);
    let e = next(&mut bo_ws, is("error")).await;
    assert_eq!(e["code"], "not_authorized", "{e}");
    let left = next(&mut bo_ws, is("left")).await;
    assert_eq!(left["channel"], "ops");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());

    // Disabled over HTTP: cy is told and disconnected within a second,
    // and may no longer sign in.
    let t0 = Instant::now();
    let (status, body) = call(
        &http,
        "PATCH",
        "/api/v1/admin/users/cy",
        &ann,
        &json!({"disabled": true}),
    );
    assert_eq!(
        (status, body["disabled"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let seen = closed(&mut cy_ws).await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let last = seen.last().expect("told why");
    assert_eq!(
        (last["type"].as_str(), last["code"].as_str()),
        (Some("error"), Some("unauthorized")),
        "{seen:?}"
    );
    assert_eq!(login(&http, "cy", "long enough").0, 401);
    let (status, _) = call(
        &http,
        "PATCH",
        "/api/v1/admin/users/cy",
        &ann,
        &json!({"disabled": false, "password": "a new password"}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        login(&http, "cy", "long enough").0,
        401,
        "the old password is gone"
    );
    assert_eq!(login(&http, "cy", "a new password").0, 200);

    // Removals: each once, then 404 with its code.
    for (path, code) in [
        ("/api/v1/admin/channels/ops/grants/user:cy", "no_grant"),
        ("/api/v1/admin/users/cy", "no_user"),
        ("/api/v1/admin/channels/ops", "no_channel"),
    ] {
        assert_eq!(
            call(&http, "DELETE", path, &ann, &Value::Null).0,
            204,
            "{path}"
        );
        let (status, body) = call(&http, "DELETE", path, &ann, &Value::Null);
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some(code)),
            "{path}"
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `squawk-bot --user` listener in `channel` for `seconds`, recording
/// to `record` (plus `extra` options), once it is ready.
fn signed_in_listener(
    server: &TestServer,
    (user, password): (&str, &str),
    channel: &str,
    record: &Path,
    seconds: u32,
    extra: &[&str],
) -> Proc {
    let seconds = seconds.to_string();
    let mut args = vec![
        "listen",
        "--channel",
        channel,
        "--record",
        record.to_str().unwrap(),
        "--seconds",
        &seconds,
    ];
    args.extend_from_slice(extra);
    let mut p = signed_in_bot(server, user, password, &args);
    p.expect_event(Duration::from_secs(20), "ready");
    p
}

/// `squawk-bot --user NAME` with the password in `SQUAWK_PASSWORD`.
fn signed_in_bot(server: &TestServer, user: &str, password: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(bin("squawk-bot"));
    cmd.args(["--server", &server.ws_url(), "--user", user])
        .env("SQUAWK_PASSWORD", password)
        .args(args);
    Proc::spawn(user, &mut cmd)
}

#[test]
fn a_talker_whose_talk_right_is_withdrawn_mid_transmission_is_not_heard_a_second_later() {
    let dir = accounts_dir("revoke", None, &[ANN, BO, CY]);
    let server = accounts_server(&dir, None);
    let http = server.http.clone();
    let out = out_dir("accounts_revoke");
    let stats = out.join("cy.jsonl");
    let _ = std::fs::remove_file(&stats);

    // A wrong password: the bot stops before connecting.
    let listen = [
        "listen",
        "--channel",
        "ops",
        "--record",
        "/dev/null",
        "--seconds",
        "1",
    ];
    let bad = signed_in_bot(&server, "bo", "wrong password", &listen);
    let (code, lines) = bad.wait(Duration::from_secs(20));
    assert_ne!(code, 0, "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("\"ready\"")), "{lines:?}");

    // Cy listens in ops; Bo (signed in, shown by its display name) talks
    // a 6 s clip there.
    let cy = signed_in_listener(
        &server,
        ("cy", "long enough"),
        "ops",
        Path::new("/dev/null"),
        8,
        &["--stats", stats.to_str().unwrap()],
    );
    let mut bo = signed_in_bot(
        &server,
        "bo",
        "battery staple",
        &[
            "talk",
            "--channel",
            "ops",
            "--wav",
            speech("F1_harvard_phrases.wav").to_str().unwrap(),
        ],
    );
    let signed = bo.expect_event(Duration::from_secs(20), "signed_in");
    assert_eq!(signed["user"]["display_name"], "Bo B");
    bo.expect_event(Duration::from_secs(20), "floor_granted");
    let granted_ms = unix_ms();
    // Two seconds into the clip, the admin withdraws Bo's talk right.
    std::thread::sleep(Duration::from_secs(2));
    let ann = login(&http, "ann", "correct horse").1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let withdrawn_ms = unix_ms();
    let (status, _) = call(
        &http,
        "PUT",
        "/api/v1/admin/channels/ops/grants/user:bo",
        &ann,
        &json!({"listen": true}),
    );
    assert_eq!(status, 200);
    let (code, _) = cy.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let _ = bo.wait(Duration::from_secs(30));

    // What Cy heard of Bo: 20 ms per packet, from the grant to at most a
    // second after the withdrawal (the whole clip would be about 6 s).
    let reports: Vec<Value> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 1, "one transmission: {reports:?}");
    let heard_ms = reports[0]["packets"].as_u64().unwrap() * 20;
    assert_eq!(reports[0]["talker"], "Bo B");
    let allowed_ms = withdrawn_ms - granted_ms + 1000;
    assert!(
        heard_ms <= allowed_ms,
        "heard {heard_ms} ms of Bo, at most {allowed_ms} ms allowed"
    );
    assert!(heard_ms >= 1000, "Bo was heard before: {heard_ms} ms");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_browser_signs_in_talks_as_its_account_and_signs_out() {
    let dir = accounts_dir("browser-account", None, &[BO, CY]);
    let server = accounts_server(&dir, None);
    let out = out_dir("browser_account");
    let source = speech("F2_harvard_phrases.wav");
    let rec = out.join("cy.wav");
    // Cy (squawk-bot --user) listens in ops, which admits no guest.
    let mut cy = signed_in_listener(&server, ("cy", "long enough"), "ops", &rec, 20, &[]);

    let mut browser = Browser::chromium(&source);
    browser.open("p", &format!("{}c/ops", server.web));
    browser.wait(
        "p",
        "!document.getElementById('connect').hidden",
        Duration::from_secs(10),
    );
    let fill = |password: &str| {
        format!(
            "(() => {{ const v = (id, x) => document.getElementById(id).value = x; \
             v('user', 'bo'); v('password', {password:?}); \
             document.getElementById('connect').requestSubmit(); return true; }})()"
        )
    };
    // A wrong password: the form says so and stays.
    browser.eval("p", &fill("wrong password"));
    let error = browser.wait(
        "p",
        "document.getElementById('error').textContent",
        Duration::from_secs(10),
    );
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("wrong username or password"),
        "{error}"
    );
    browser.screenshot("p", &out.join("browser-sign-in.png"));
    browser.eval("p", &fill("battery staple"));
    browser.wait_ready("p", "ops");
    let shown = browser.eval("p", "document.getElementById('where').textContent");
    assert_eq!(shown, "Bo B", "the account's display name");
    browser.eval("p", "document.getElementById('audio').open = true");
    browser.screenshot("p", &out.join("browser-signed-in.png"));

    browser.press("p");
    browser.wait_ptt("p", "talking", Duration::from_secs(5));
    let taken = cy.expect_event(Duration::from_secs(5), "floor_taken");
    assert_eq!(taken["talker"], "Bo B", "{taken}");
    std::thread::sleep(Duration::from_secs(4));
    browser.release("p");
    browser.wait_ptt("p", "idle", Duration::from_secs(5));
    let received = cy.expect_event(Duration::from_secs(10), "received");
    assert_eq!(received["report"]["talker"], "Bo B");

    // Sign out: back to the form, and the revoked sign-in is gone.
    browser.eval("p", "document.getElementById('signout').click()");
    browser.wait(
        "p",
        "!document.getElementById('connect').hidden",
        Duration::from_secs(10),
    );
    let conn = browser.eval("p", "document.getElementById('conn').dataset.state");
    assert_eq!(conn, "offline");
    browser.quit();
    let (code, _) = cy.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let report = compare_looped(&source, &rec);
    eprintln!("browser (signed in) -> cy: {report}");
    assert_intelligible(&report, "cy hearing the signed-in browser");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listen_only_user_whose_client_sends_media_anyway_is_heard_by_no_one() {
    let dir = accounts_dir("listen-only", None, &[BO, CY]);
    admin(
        &dir,
        &["grant", "ops", "role:user", "--rights", "listen"],
        "",
    );
    let server = accounts_server(&dir, None);
    let out = out_dir("accounts_listen_only");
    let rec = out.join("cy.wav");
    let cy = signed_in_listener(&server, ("cy", "long enough"), "ops", &rec, 10, &[]);
    // Bo's client is modified: it sends audio without asking for the floor.
    let wav = speech("M2_harvard_phrases.wav");
    let mut rogue = signed_in_bot(
        &server,
        "bo",
        "battery staple",
        &["rogue", "--channel", "ops", "--wav", wav.to_str().unwrap()],
    );
    rogue.expect_event(Duration::from_secs(20), "ready");
    let done = rogue.expect_event(Duration::from_secs(20), "rogue_done");
    assert!(done["rtp_sent"].as_u64().unwrap() > 100, "{done}");
    let stats = server.get_json("/stats");
    assert!(stats["dropped_no_floor"].as_u64().unwrap() > 100, "{stats}");
    assert_eq!(stats["rtp_out"].as_u64().unwrap(), 0, "{stats}");
    let (code, _) = cy.wait(Duration::from_secs(30));
    assert_eq!(code, 0);
    let report = silence(&rec);
    assert!(
        report["peak"].as_f64().unwrap() < 0.001,
        "cy heard bo: {report}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
