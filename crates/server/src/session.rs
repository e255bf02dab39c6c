//! One WebSocket connection: one task that parses frames, enforces `hello`
//! first and the message rate, passes messages to the hub, and writes the
//! connection's [`Outlet`] to the socket in batches. Bad input gets an
//! [`ErrorCode`] reply and never ends anyone else's connection.
//!
//! Everything written to the socket goes through the outlet: the hub's
//! messages and this task's own replies to input it cannot parse. A client
//! that does not read is closed with `too_slow` once its outbox passes its
//! bound or one write stalls for `write_timeout_secs`; one that sends
//! nothing for `idle_timeout_secs` is closed with `idle_timeout`.

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use squawk_protocol::{
    ClientMessage, ErrorCode, MAX_FRAME_BYTES, MAX_NAME_CHARS, PROTOCOL_VERSION, ServerMessage,
};
use tokio::sync::{Notify, mpsc};
use tracing::debug;

use crate::{
    access::Access,
    accounts::Identity,
    admission::{self, Admission},
    config::Limits,
    driver::ToHub,
    logs::limited,
    outbox::{Outbox, Pushed},
};

/// How long a closing connection gets to take its last error frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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

/// The way out to one connection: its [`Outbox`] and the wake-up of the task
/// that writes it.
pub(crate) struct Outlet {
    outbox: Mutex<Outbox>,
    wake: Notify,
}

impl Outlet {
    fn new(limit_bytes: usize) -> Self {
        Self {
            outbox: Mutex::new(Outbox::new(limit_bytes)),
            wake: Notify::new(),
        }
    }

    /// Queues `msg` and wakes the connection's task.
    pub(crate) fn push(&self, msg: ServerMessage) -> Pushed {
        // A poisoned lock means a panic mid-push; the outbox is still whole.
        let pushed = self
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
        if pushed != Pushed::Discarded {
            self.wake.notify_one();
        }
        pushed
    }

    fn take(&self) -> Result<Vec<ServerMessage>, ()> {
        let mut o = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if o.overflowed() {
            Err(())
        } else {
            Ok(o.take())
        }
    }
}

/// What every connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub hub: mpsc::Sender<ToHub>,
    pub ids: Arc<AtomicU64>,
    pub access: Access,
    /// Accounts, when the database could be opened (always, in practice).
    pub accounts: Option<Arc<crate::api::Accounts>>,
    pub limits: Limits,
    pub admission: Arc<Mutex<Admission>>,
    /// ICE servers (and TURN credentials) for each `welcome`.
    pub turn: Arc<crate::turn::TurnIssuer>,
    /// Turns true when the server shuts down: every connection is told
    /// `shutting_down` and closed.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Held by every connection (never sent on): the server's shutdown
    /// waits until all are dropped, so that each close reaches its client.
    pub live: mpsc::Sender<()>,
}

impl Shared {
    /// Admits a new connection from `ip`, or says why not (code, message).
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<AdmissionGuard, (ErrorCode, String)> {
        let mut a = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        match a.admit(ip, Instant::now()) {
            Ok(()) => Ok(AdmissionGuard {
                admission: self.admission.clone(),
                ip,
            }),
            Err(r) => Err((r.code, r.message(&self.limits))),
        }
    }
}

/// Releases an admitted connection's place when dropped.
pub(crate) struct AdmissionGuard {
    admission: Arc<Mutex<Admission>>,
    ip: IpAddr,
}

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        self.admission
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(self.ip);
    }
}

/// Refuses a connection that was not admitted: the error, then close.
pub(crate) async fn refuse(socket: WebSocket, code: ErrorCode, message: String) {
    let (mut sink, _) = socket.split();
    limited!(info, ?code, %message, "connection refused");
    close_with(&mut sink, Some(ServerMessage::error(code, message))).await;
}

async fn close_with(sink: &mut SplitSink<WebSocket, Message>, last: Option<ServerMessage>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if let Some(msg) = last {
            let _ = sink.send(Message::Text(msg.to_json().into())).await;
        }
        let _ = sink.send(Message::Close(None)).await;
    })
    .await;
}

/// Writes `msgs` in one flush. `Ok(true)` when one was a fatal error
/// (the connection must close after it).
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    msgs: Vec<ServerMessage>,
) -> Result<bool, axum::Error> {
    let mut fatal = false;
    for msg in msgs {
        fatal |= matches!(&msg, ServerMessage::Error { code, .. } if code.is_fatal());
        sink.feed(Message::Text(msg.to_json().into())).await?;
        if fatal {
            break;
        }
    }
    sink.flush().await?;
    Ok(fatal)
}

/// Serves one admitted connection until it ends.
/// Debug builds only, for tests: `SQUAWK_DEBUG_SIGNAL_DELAY_MS=N` delays
/// each client message (after `hello`) by N ms before the hub sees it, in
/// order, as a slower signaling path would: a Floor Request's answer then
/// comes a round trip of N ms later than the media sent with it
/// (`tests/browser_e2e.rs`, first syllable). Release builds ignore it.
#[cfg(debug_assertions)]
static DEBUG_SIGNAL_DELAY: std::sync::LazyLock<Option<Duration>> = std::sync::LazyLock::new(|| {
    let ms: u64 = std::env::var("SQUAWK_DEBUG_SIGNAL_DELAY_MS")
        .ok()?
        .parse()
        .ok()?;
    tracing::warn!(ms, "debug build: every client message is delayed");
    Some(Duration::from_millis(ms))
});

pub(crate) async fn run(socket: WebSocket, shared: Shared, _admitted: AdmissionGuard) {
    let limits = shared.limits;
    let client = shared.ids.fetch_add(1, Ordering::Relaxed);
    let outlet = Arc::new(Outlet::new(limits.outbound_queue_kib.saturating_mul(1024)));
    let (mut sink, mut stream) = socket.split();
    let ping_every = Duration::from_secs(limits.ping_interval_secs);
    let idle_timeout = Duration::from_secs(limits.idle_timeout_secs);
    let write_timeout = Duration::from_secs(limits.write_timeout_secs);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let mut rate = admission::message_bucket(&limits, last_heard);
    let mut rate_told: Option<Instant> = None;
    let mut identified = false;
    let reply = |msg: ServerMessage| {
        outlet.push(msg);
    };
    // Dropped as this task ends: the server's shutdown waits for it.
    let _live = shared.live.clone();
    let mut stopping = shared.stopping.clone();
    let stopping = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);

    // Why the connection ends: `Some` when the client is told why.
    let end: Option<ServerMessage> = loop {
        let idle_at = last_heard + idle_timeout;
        tokio::select! {
            biased;
            () = outlet.wake.notified() => {
                let Ok(msgs) = outlet.take() else {
                    break Some(ServerMessage::error(
                        ErrorCode::TooSlow,
                        format!(
                            "more than {} KiB of messages waited for this connection to read them",
                            limits.outbound_queue_kib
                        ),
                    ));
                };
                if msgs.is_empty() {
                    continue;
                }
                match tokio::time::timeout(write_timeout, write_batch(&mut sink, msgs)).await {
                    Ok(Ok(false)) => {}
                    Ok(Ok(true)) | Ok(Err(_)) => break None,
                    Err(_) => break Some(ServerMessage::error(
                        ErrorCode::TooSlow,
                        format!("a write did not complete within {} s", limits.write_timeout_secs),
                    )),
                }
            }
            frame = stream.next() => {
                let frame = match frame {
                    None | Some(Err(_)) => break None,
                    Some(Ok(frame)) => frame,
                };
                let now = Instant::now();
                last_heard = now;
                let text = match frame {
                    Message::Text(t) => t,
                    Message::Binary(b) => {
                        if rate.take(now) {
                            let code = if b.len() > MAX_FRAME_BYTES {
                                ErrorCode::FrameTooLarge
                            } else {
                                ErrorCode::MalformedMessage
                            };
                            reply(ServerMessage::error(
                                code,
                                "binary frames are not part of the protocol; send JSON text",
                            ));
                        }
                        continue;
                    }
                    Message::Close(_) => break None,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if !rate.take(now) {
                    // Told at most once a second; the message is ignored.
                    if rate_told.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
                        rate_told = Some(now);
                        limited!(info, client, "message rate limit");
                        reply(ServerMessage::error(
                            ErrorCode::RateLimited,
                            format!(
                                "more than {} messages per second: message ignored",
                                limits.messages_per_sec
                            ),
                        ));
                    }
                    continue;
                }
                match inbound(&text, identified) {
                    Inbound::Reply(msg) => reply(msg),
                    Inbound::Message(msg) => {
                        #[cfg(debug_assertions)]
                        if let Some(delay) = *DEBUG_SIGNAL_DELAY {
                            tokio::time::sleep(delay).await;
                        }
                        if shared.hub.send(ToHub::Message { client, msg }).await.is_err() {
                            break None;
                        }
                    }
                    Inbound::Hello { name, password, token } => {
                        match authenticate(&shared, client, name, password, token).await {
                            Ok((name, identity)) => {
                                let now_unix = std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .map_or(0, |d| d.as_secs());
                                let ice_servers = shared.turn.ice_servers(client, now_unix);
                                let connect = ToHub::Connect { client, name, identity, ice_servers, outlet: outlet.clone() };
                                if shared.hub.send(connect).await.is_err() {
                                    break None;
                                }
                                identified = true;
                            }
                            // Fatal ones close the connection once written.
                            Err(msg) => reply(msg),
                        }
                    }
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(write_timeout, sink.send(Message::Ping(Vec::new().into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => break Some(ServerMessage::error(
                        ErrorCode::TooSlow,
                        format!("a write did not complete within {} s", limits.write_timeout_secs),
                    )),
                }
            }
            () = tokio::time::sleep_until(idle_at.into()) => {
                break Some(ServerMessage::error(
                    ErrorCode::IdleTimeout,
                    format!("nothing received for {} s", limits.idle_timeout_secs),
                ));
            }
            () = &mut stopping => {
                break Some(ServerMessage::error(
                    ErrorCode::ShuttingDown,
                    "the server is shutting down; connect again when it is back",
                ));
            }
        }
    };
    if let Some(ServerMessage::Error { code, message }) = &end {
        limited!(info, client, ?code, %message, "connection closed");
    }
    close_with(&mut sink, end).await;
    if identified {
        let _ = shared.hub.send(ToHub::Disconnect { client }).await;
    }
}

/// What to do with one text frame of a connection (that passed the rate
/// limit).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inbound {
    /// An identified connection's message, for the hub.
    Message(ClientMessage),
    /// A first message that is a `hello` of this protocol version with a
    /// valid name: check its password or token, then connect.
    Hello {
        name: String,
        password: Option<String>,
        token: Option<String>,
    },
    /// Reply with this error (a fatal one, such as `unsupported_version`,
    /// closes the connection once written).
    Reply(ServerMessage),
}

/// Reads one text frame: its size, JSON, `type`, fields and channel names,
/// and, before the connection is `identified`, that it is a valid `hello`
/// (this protocol version, a name [`check_name`] accepts). Pure: the
/// session's parsing, fuzzed as it runs (`fuzz` target `session`).
pub(crate) fn inbound(text: &str, identified: bool) -> Inbound {
    if text.len() > MAX_FRAME_BYTES {
        return Inbound::Reply(ServerMessage::error(
            ErrorCode::FrameTooLarge,
            format!(
                "frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES}",
                text.len()
            ),
        ));
    }
    let msg = match ClientMessage::from_json(text) {
        Ok(m) => m,
        Err(e) => return Inbound::Reply(ServerMessage::error(e.code(), e.to_string())),
    };
    if identified {
        return Inbound::Message(msg);
    }
    let (version, name, password, token) = match msg {
        ClientMessage::Hello {
            version,
            name,
            password,
            token,
        } => (version, name, password, token),
        other => {
            return Inbound::Reply(ServerMessage::error(
                ErrorCode::NotIdentified,
                format!("send hello before {}", other.variant()),
            ));
        }
    };
    if version != PROTOCOL_VERSION {
        return Inbound::Reply(ServerMessage::error(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            ),
        ));
    }
    if let Err(e) = check_name(&name) {
        return Inbound::Reply(ServerMessage::error(ErrorCode::InvalidName, e));
    }
    Inbound::Hello {
        name,
        password,
        token,
    }
}

/// Checks a `hello`'s password (when the server has one) and token (when
/// it has accounts): the display name and identity, or the error to send.
async fn authenticate(
    shared: &Shared,
    client: u64,
    name: String,
    password: Option<String>,
    token: Option<String>,
) -> Result<(String, Identity), ServerMessage> {
    let access = &shared.access;
    if access.needs_password() {
        // Argon2 takes tens of ms of CPU: not on the async threads.
        let access = access.clone();
        let checked = tokio::task::spawn_blocking(move || access.check(password.as_deref())).await;
        let refusal = match checked {
            Ok(Ok(())) => None,
            Ok(Err(r)) => Some(r.to_string()),
            Err(e) => Some(format!("password check failed: {e}")),
        };
        if let Some(why) = refusal {
            debug!(client, %why, "hello refused");
            return Err(ServerMessage::error(ErrorCode::Unauthorized, why));
        }
    }
    let Some(accounts) = &shared.accounts else {
        return Ok((name, Identity::Open));
    };
    match accounts.identify(token.as_deref()) {
        Ok((identity, display)) => Ok((display.unwrap_or(name), identity)),
        Err((code, why)) => {
            debug!(client, %why, "hello refused");
            Err(ServerMessage::error(code, why))
        }
    }
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
