//! The channel list (`list_channels` → `channels`) as a client sees it: every
//! channel that exists, sorted, with member counts and configured channels
//! marked `fixed`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};

#[test]
fn the_channel_list_shows_every_channel_with_its_members() {
    let out = out_dir("channels_e2e");
    let config = out.join("server.toml");
    std::fs::write(&config, "channels = [\"lobby\"]\n").unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]);
    let null = std::path::Path::new("/dev/null");
    let _a = server.listener("A", "ops", null, 30);
    let _b = server.listener("B", "ops", null, 30);
    let _c = server.listener("C", "alpha", null, 30);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let list = rt.block_on(async {
        let (mut ws, _) = connect_async(server.ws_url().as_str())
            .await
            .expect("connect");
        for m in [
            json!({"type": "hello", "version": 2, "name": "Lister"}),
            json!({"type": "list_channels"}),
        ] {
            ws.send(Message::Text(m.to_string().into()))
                .await
                .expect("send");
        }
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("server answers in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "channels" {
                    return v;
                }
            }
        }
    });
    assert_eq!(
        list["channels"],
        json!([
            {"name": "alpha", "members": 1, "fixed": false},
            {"name": "lobby", "members": 0, "fixed": true},
            {"name": "ops", "members": 2, "fixed": false},
        ]),
        "{list}"
    );
}
