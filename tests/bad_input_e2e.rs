//! Bad input gets a clear error to that client only, while another
//! client's speech keeps flowing to its listener.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::{connect_async, tungstenite::Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("server answers in time")
        {
            Some(Ok(Message::Text(t))) => {
                return Some(serde_json::from_str(&t).expect("server sends JSON"));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn expect_error(ws: &mut Ws, send: String, code: &str) {
    ws.send(Message::Text(send.into())).await.expect("send");
    let reply = next_json(ws).await.expect("a reply");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert!(!reply["message"].as_str().unwrap().is_empty());
}

#[test]
fn bad_clients_get_errors_and_others_keep_talking() {
    let server = TestServer::start();
    let out = out_dir("bad_input");
    let source = speech("F2_harvard_phrases.wav");
    let rec = out.join("b.wav");
    let b = server.listener("B", "X", &rec, 12);
    let mut a = server.bot(
        "A",
        &["talk", "--channel", "X", "--wav", source.to_str().unwrap()],
    );
    a.expect_event(Duration::from_secs(20), "ready");
    a.expect_event(Duration::from_secs(10), "floor_granted");

    // While A talks, throw everything at the server from other connections.
    let url = server.ws_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut ws, _) = connect_async(url.as_str()).await.expect("connect");
        expect_error(&mut ws, "{not json".into(), "malformed_message").await;
        expect_error(
            &mut ws,
            r#"{"type":"teleport"}"#.into(),
            "unknown_message_type",
        )
        .await;
        expect_error(
            &mut ws,
            r#"{"type":"join","channel":"X"}"#.into(),
            "not_identified",
        )
        .await;
        expect_error(
            &mut ws,
            r#"{"type":"hello","version":2,"name":""}"#.into(),
            "invalid_name",
        )
        .await;
        expect_error(
            &mut ws,
            r#"{"type":"hello","version":99,"name":"old"}"#.into(),
            "unsupported_version",
        )
        .await;
        assert!(
            next_json(&mut ws).await.is_none(),
            "wrong version closes the connection"
        );

        let (mut ws, _) = connect_async(url.as_str()).await.expect("connect");
        ws.send(Message::Text(
            r#"{"type":"hello","version":2,"name":"Mallory"}"#.into(),
        ))
        .await
        .unwrap();
        assert_eq!(next_json(&mut ws).await.unwrap()["type"], "welcome");
        let big = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(10 * 1024 * 1024)
        );
        expect_error(&mut ws, big, "frame_too_large").await;
        expect_error(
            &mut ws,
            r#"{"type":"offer","sdp":"garbage"}"#.into(),
            "invalid_sdp",
        )
        .await;
        expect_error(
            &mut ws,
            r#"{"type":"answer","sdp":"v=0"}"#.into(),
            "negotiation_failed",
        )
        .await;
        expect_error(
            &mut ws,
            r#"{"type":"leave","channel":"X"}"#.into(),
            "not_member",
        )
        .await;
        expect_error(
            &mut ws,
            r#"{"type":"join","channel":"../etc"}"#.into(),
            "invalid_channel",
        )
        .await;
        ws.send(Message::Text(
            r#"{"type":"floor_request","channel":"X"}"#.into(),
        ))
        .await
        .unwrap();
        let deny = next_json(&mut ws).await.unwrap();
        assert_eq!(
            (deny["type"].as_str(), deny["reason"].as_str()),
            (Some("floor_deny"), Some("not_member"))
        );
        // Binary frames are not protocol.
        ws.send(Message::Binary(vec![0u8; 16].into()))
            .await
            .unwrap();
        assert_eq!(
            next_json(&mut ws).await.unwrap()["code"],
            "malformed_message"
        );
        // Still alive and served after all that.
        expect_error(
            &mut ws,
            r#"{"type":"hello","version":2,"name":"again"}"#.into(),
            "already_identified",
        )
        .await;
    });

    a.expect_event(Duration::from_secs(20), "talk_ended");
    assert_eq!(a.wait(Duration::from_secs(10)).0, 0);
    assert_eq!(b.wait(Duration::from_secs(30)).0, 0);
    let report = compare(&source, &rec);
    eprintln!("B: {report}");
    assert_speech(&report, "B (while others misbehaved)");
    assert_eq!(server.get_json("/health")["status"], "ok");
}

/// A WebSocket handshake with `origin` (if any); `Ok` when upgraded, else
/// the HTTP status and body of the refusal.
async fn handshake(url: &str, origin: Option<&str>) -> Result<(), (u16, String)> {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest};
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match connect_async(req).await {
        Ok(_) => Ok(()),
        Err(Error::Http(resp)) => Err((
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("handshake failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn web_pages_of_another_origin_may_not_connect_or_call_the_api() {
    let server = TestServer::start_with(&["--allowed-origin", "https://console.example.org"]);
    let url = server.ws_url();
    // Not a browser, the server's own page, the desktop app, the listed origin.
    let own = format!("http://{}", server.http);
    for origin in [
        None,
        Some(own.as_str()),
        Some("tauri://localhost"),
        Some("https://console.example.org"),
    ] {
        assert_eq!(handshake(&url, origin).await, Ok(()), "{origin:?}");
    }
    // Any other page: 403 with a stable code, before the upgrade.
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let (status, body) = handshake(&url, Some(origin)).await.unwrap_err();
        assert_eq!(status, 403, "{origin}");
        assert!(body.contains("forbidden_origin"), "{origin}: {body}");
    }
    // The API too.
    let mut s = tokio::net::TcpStream::connect(&server.http).await.unwrap();
    let body = r#"{"username":"a","password":"b"}"#;
    let req = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("forbidden_origin"), "{resp}");
}
