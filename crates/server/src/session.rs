//! One WebSocket signaling session: parse frames, enforce `hello` first,
//! pass messages to the hub, write the hub's replies. Bad input gets an
//! [`ErrorCode`] reply and never ends anyone else's session.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use squawk_protocol::{
    ClientMessage, ErrorCode, MAX_FRAME_BYTES, MAX_NAME_CHARS, PROTOCOL_VERSION, ServerMessage,
};
use tokio::sync::mpsc;
use tracing::debug;

use crate::{
    access::Access,
    hub::{HubMsg, SESSION_QUEUE},
};

/// The server pings every session this often (keepalive).
const PING_EVERY: Duration = Duration::from_secs(10);
/// A session that sends nothing (not even a pong) for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(35);

/// Validates a display name: 1 to 64 characters, no control characters,
/// not only whitespace.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        return Err("name is empty".into());
    }
    if n > MAX_NAME_CHARS {
        return Err(format!("name is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name contains control characters".into());
    }
    Ok(())
}

pub(crate) async fn run(
    socket: WebSocket,
    hub: mpsc::Sender<HubMsg>,
    ids: Arc<AtomicU64>,
    access: Access,
) {
    let client = ids.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(SESSION_QUEUE);

    // Writer: the hub's and workers' messages, plus keepalive pings.
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    let fatal = matches!(&msg, ServerMessage::Error { code, .. } if code.is_fatal());
                    if sink.send(Message::Text(msg.to_json().into())).await.is_err() {
                        break;
                    }
                    if fatal {
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                }
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });

    let reply = |msg: ServerMessage| {
        if tx.try_send(msg).is_err() {
            debug!(client, "reply dropped: session queue full");
        }
    };
    let mut identified = false;
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
            Err(_) => {
                debug!(client, "idle timeout");
                break;
            }
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Binary(b) => {
                let code = if b.len() > MAX_FRAME_BYTES {
                    ErrorCode::FrameTooLarge
                } else {
                    ErrorCode::MalformedMessage
                };
                reply(ServerMessage::error(
                    code,
                    "binary frames are not part of the protocol; send JSON text",
                ));
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if text.len() > MAX_FRAME_BYTES {
            reply(ServerMessage::error(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES}",
                    text.len()
                ),
            ));
            continue;
        }
        let msg = match ClientMessage::from_json(&text) {
            Ok(m) => m,
            Err(e) => {
                reply(ServerMessage::error(e.code(), e.to_string()));
                continue;
            }
        };
        if identified {
            if hub.send(HubMsg::Client { client, msg }).await.is_err() {
                break;
            }
            continue;
        }
        match msg {
            ClientMessage::Hello { version, .. } if version != PROTOCOL_VERSION => {
                reply(ServerMessage::error(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                    ),
                ));
                break;
            }
            ClientMessage::Hello { name, password, .. } => match check_name(&name) {
                Err(e) => reply(ServerMessage::error(ErrorCode::InvalidName, e)),
                Ok(()) => {
                    if access.needs_password() {
                        // Argon2 takes tens of ms of CPU: not on the async threads.
                        let access = access.clone();
                        let checked =
                            tokio::task::spawn_blocking(move || access.check(password.as_deref()))
                                .await;
                        let refusal = match checked {
                            Ok(Ok(())) => None,
                            Ok(Err(r)) => Some(r.to_string()),
                            Err(e) => Some(format!("password check failed: {e}")),
                        };
                        if let Some(why) = refusal {
                            debug!(client, %why, "hello refused");
                            reply(ServerMessage::error(ErrorCode::Unauthorized, why));
                            break;
                        }
                    }
                    if hub
                        .send(HubMsg::Hello {
                            client,
                            name,
                            out: tx.clone(),
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                    identified = true;
                }
            },
            other => reply(ServerMessage::error(
                ErrorCode::NotIdentified,
                format!("send hello before {}", other.variant()),
            )),
        }
    }
    if identified {
        let _ = hub.send(HubMsg::Gone { client }).await;
    }
    drop(tx);
    // The writer ends when every sender (ours, the hub's, the worker's) is gone
    // or the socket fails; do not wait on it here.
    drop(writer);
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        assert!(check_name("Ann").is_ok());
        assert!(check_name("Dispatch 7 — Nord").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
