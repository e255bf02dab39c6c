//! `squawk-server`: WebSocket signaling, an Opus SFU on str0m and per-channel
//! floor control (3GPP TS 24.380 names), in one self-hostable process.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = squawk_server::Server::start(squawk_server::ServerConfig::default()).await?;
//! println!("signaling on ws://{}/ws", server.http_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`config`] (TOML + defaults); `hub` (sessions, membership,
//! presence, floor control: a sans-IO state machine) driven by `driver` (one
//! task); `session` (one WebSocket: parsing, admission, its outbound queue
//! `outbox`); `sfu` (worker threads, one UDP socket and one str0m loop
//! each, routing by a sans-IO `Router`); `admission` (limits); [`origin`]
//! (which web pages may connect); `logs` (rate-limited logging). See
//! `docs/architecture.md`.

pub mod access;
pub mod accounts;
mod acme;
mod admission;
pub mod api;
pub mod config;
mod driver;
/// Fuzzing harnesses (`fuzz/`); hidden: not an API.
#[cfg(any(test, feature = "fuzz"))]
#[doc(hidden)]
pub mod fuzz;
mod hub;
mod logs;
mod metrics;
pub mod origin;
mod outbox;
mod session;
mod sfu;
#[cfg(test)]
mod sim_tests;
pub mod tls;
pub mod turn;
mod web;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State, WebSocketUpgrade},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
pub use config::{ConfigError, Limits, ServerConfig};
pub use sfu::{SfuStats, StatsHandle};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::info;

/// Largest WebSocket message accepted at the transport level, bytes. Larger
/// than [`squawk_protocol::MAX_FRAME_BYTES`] on purpose, so that an oversized
/// frame (up to 16 MiB) gets a protocol error reply instead of a dropped
/// connection; beyond it the connection is closed.
const WS_TRANSPORT_LIMIT: usize = 16 * 1024 * 1024;

/// Read buffer per WebSocket, bytes.
const WS_READ_BUFFER: usize = 4 * 1024;
/// Write buffer per WebSocket before a write is forced, bytes.
const WS_WRITE_BUFFER: usize = 16 * 1024;

/// Queue from the connections to the hub's task, in messages. Bounded: a
/// connection waits (stops reading its socket) while the hub catches up.
const HUB_QUEUE: usize = 4096;

#[derive(Clone)]
struct AppState {
    session: session::Shared,
    stats: StatsHandle,
    /// The hub's latest gauges and floor counts (its task writes them).
    hub_metrics: Arc<Mutex<hub::HubMetrics>>,
    /// Hands out ICE servers; counts TURN credentials for `/metrics`.
    turn: Arc<turn::TurnIssuer>,
}

/// A running server. Dropping it without [`Server::shutdown`] leaves the
/// tasks running until the runtime ends.
pub struct Server {
    http_addr: SocketAddr,
    tls: bool,
    media_addrs: Vec<SocketAddr>,
    stats: StatsHandle,
    shutdown: tokio::sync::watch::Sender<bool>,
    http: JoinHandle<()>,
    hub: JoinHandle<()>,
    /// Closed once every connection's task has ended ([`session::Shared::live`]).
    live: tokio::sync::mpsc::Receiver<()>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The accounts database or the token key is unusable.
    #[error("accounts: {0}")]
    Accounts(String),
    /// A socket could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// "http" or "media".
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

impl Server {
    /// Binds the HTTP/WebSocket listener and the media sockets and starts
    /// serving. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`StartError`] if the config is invalid or a socket cannot be bound.
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        config.validate()?;
        let access = match &config.password_hash {
            Some(phc) => access::Access::with_hash(phc)
                .map_err(|e| StartError::Config(config::ConfigError::Invalid(e)))?,
            None => access::Access::open(),
        };
        let acme = acme::setup(&config)?;
        let tls = match &acme {
            Some(a) => Some(a.tls.clone()),
            None => tls::server_config(&config)?,
        };
        let config_tls = tls.is_some();
        let accounts = Arc::new(open_accounts(&config).await?);
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|source| StartError::Bind {
                what: "http",
                addr: config.http,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Bind {
            what: "http",
            addr: config.http,
            source,
        })?;
        let (hub_tx, hub_rx) = mpsc::channel(HUB_QUEUE);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let workers = sfu::Workers::start(
            config.worker_count(),
            config.media,
            config.advertise_ip,
            config.red_levels,
            events_tx,
        )
        .map_err(|source| StartError::Bind {
            what: "media",
            addr: config.media,
            source,
        })?;
        let media_addrs = workers.addrs().to_vec();
        let stats = workers.stats_handle();
        info!(%http_addr, ?media_addrs, "squawk-server listening");

        let (shutdown, mut shutdown_rx) = tokio::sync::watch::channel(false);
        let (live_tx, live) = tokio::sync::mpsc::channel(1);
        let hub = hub::Hub::new(hub::HubConfig {
            floor: squawk_floor::FloorConfig {
                max_talk: config.max_talk(),
                preemption: config.preemption,
                queue_timeout: std::time::Duration::from_secs(config.queue_timeout_secs),
                max_queue: config.max_floor_queue,
            },
            workers: workers.len(),
            channels: config.channels.clone(),
            create_channels_on_join: config.create_channels_on_join,
            max_channels_per_client: config.max_channels_per_client,
            max_members_per_channel: config.limits.max_members_per_channel,
            emergency_priority: std::time::Duration::from_secs(config.emergency_priority_secs),
        });
        let mut hub_shutdown = shutdown_rx.clone();
        let hub_metrics = Arc::new(Mutex::new(hub::HubMetrics::default()));
        let published = hub_metrics.clone();
        let hub = tokio::spawn(async move {
            let mut workers = driver::run(
                hub,
                workers,
                hub_rx,
                events_rx,
                &mut hub_shutdown,
                published,
            )
            .await;
            tokio::task::spawn_blocking(move || workers.shutdown())
                .await
                .ok();
        });

        // Changes made by the command line or another server reach the hub
        // within a second; changes made through the admin API at once.
        {
            let (accounts, hub_tx) = (accounts.clone(), hub_tx.clone());
            let mut stop = shutdown_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = accounts.changed.notified() => {}
                        _ = stop.wait_for(|v| *v) => break,
                    }
                    match accounts.reload().await {
                        Ok(Some(dir)) => {
                            if hub_tx.send(driver::ToHub::Directory(dir)).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => logs::limited!(warn, "accounts reload: {e}"),
                    }
                }
            });
        }
        let turn = Arc::new(turn::TurnIssuer::new(
            &config.ice_urls,
            config.turn_secret.as_deref(),
            config.turn_ttl_secs,
        ));
        if let Some(acme) = acme {
            let mut stop = shutdown_rx.clone();
            tokio::spawn(acme::drive(acme, async move {
                let _ = stop.wait_for(|v| *v).await;
            }));
        }
        let initial = accounts.dir.borrow().clone();
        let _ = hub_tx.send(driver::ToHub::Directory(initial)).await;
        let state = AppState {
            session: session::Shared {
                hub: hub_tx,
                ids: Arc::new(AtomicU64::new(1)),
                access,
                accounts: Some(accounts.clone()),
                limits: config.limits,
                admission: Arc::new(Mutex::new(admission::Admission::new(config.limits))),
                turn: turn.clone(),
                stopping: shutdown_rx.clone(),
                live: live_tx,
            },
            turn,
            stats: stats.clone(),
            hub_metrics,
        };
        let app = Router::new()
            .route("/health", get(health))
            .route("/stats", get(stats_route))
            .route("/metrics", get(metrics_route))
            .route("/ws", get(ws_route))
            .merge(web::routes())
            .with_state(state)
            .merge(api::routes(accounts))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(origin::Origins::new(&config.allowed_origins)),
                check_origin,
            ))
            .into_make_service_with_connect_info::<SocketAddr>();
        let stopped = async move {
            let _ = shutdown_rx.wait_for(|v| *v).await;
        };
        let http = match tls {
            Some(tls) => {
                let listener =
                    tls::TlsListener::new(listener, tls).map_err(|source| StartError::Bind {
                        what: "https",
                        addr: http_addr,
                        source,
                    })?;
                // A no-op tap: axum gives `ConnectInfo<SocketAddr>` (admission
                // per address) for tapped listeners and plain TCP only.
                let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
                tokio::spawn(async move {
                    let serve = axum::serve(listener, app).with_graceful_shutdown(stopped);
                    if let Err(e) = serve.await {
                        tracing::error!("https server: {e}");
                    }
                })
            }
            None => {
                // Signaling is latency-critical (Floor Request → Floor
                // Granted): no Nagle delay behind an unacknowledged message.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!("TCP_NODELAY: {e}");
                    }
                });
                tokio::spawn(async move {
                    let serve = axum::serve(listener, app).with_graceful_shutdown(stopped);
                    if let Err(e) = serve.await {
                        tracing::error!("http server: {e}");
                    }
                })
            }
        };
        Ok(Self {
            http_addr,
            tls: config_tls,
            media_addrs,
            stats,
            shutdown,
            http,
            hub,
            live,
        })
    }

    /// The bound HTTP address (`ws://ADDR/ws` is the signaling endpoint).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The URL of the web client's start page, e.g. `http://127.0.0.1:7300/`.
    pub fn web_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.http_addr)
    }

    /// The media address (ICE host candidate) of each SFU worker.
    pub fn media_addrs(&self) -> &[SocketAddr] {
        &self.media_addrs
    }

    /// Forwarding counters.
    pub fn stats(&self) -> SfuStats {
        self.stats.snapshot()
    }

    /// Stops accepting, tells every connection `shutting_down` and closes
    /// it (waiting up to 2 s for those closes to be written), and stops the
    /// workers.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        let _ = self.hub.await;
        // `None` once every connection's task has ended.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.live.recv()).await;
    }
}

async fn health() -> impl IntoResponse {
    Json(
        serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"),
        "protocol": squawk_protocol::PROTOCOL_VERSION }),
    )
}

/// Refuses a WebSocket handshake or an API call from a web page the
/// [`origin::Origins`] allow-list does not allow: 403 `forbidden_origin`.
async fn check_origin(
    State(origins): State<Arc<origin::Origins>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == "/ws" || path.starts_with("/api/") {
        let headers = req.headers();
        // An Origin that is not text is no origin we allow.
        let origin = headers
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("null"));
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        if !origins.allows(origin, host) {
            let origin = origin.unwrap_or_default().to_string();
            logs::limited!(
                warn,
                %origin,
                "refused a request from a web page of another origin (see allowed_origins)"
            );
            return (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({
                    "error": "forbidden_origin",
                    "message": format!(
                        "pages from {origin} may not use this server (allowed_origins in its config)"
                    ),
                })),
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn stats_route(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.stats.snapshot())
}

/// Prometheus scrape target ([`metrics`]).
async fn metrics_route(State(state): State<AppState>) -> impl IntoResponse {
    let hub = state
        .hub_metrics
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let text = metrics::render(&hub, &state.stats.per_worker(), state.turn.issued());
    (
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        text,
    )
}

async fn ws_route(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> impl IntoResponse {
    // Admitted before the upgrade; refused ones are upgraded too, so that the
    // client reads a stable error code rather than an HTTP status.
    let admitted = state.session.admit(peer.ip());
    ws.max_message_size(WS_TRANSPORT_LIMIT)
        .max_frame_size(WS_TRANSPORT_LIMIT)
        // tungstenite's defaults (128 KiB each) cost 256 KiB per connection,
        // 640 MB for a storm of 2,500; signaling frames are small and a
        // larger one still grows the buffer. Writes are flushed per batch.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            match admitted {
                Ok(guard) => session::run(socket, state.session, guard).await,
                Err((code, message)) => session::refuse(socket, code, message).await,
            }
        })
}

/// Opens the accounts database (creating the data directory for the
/// default SQLite file) and the token key.
async fn open_accounts(config: &ServerConfig) -> Result<api::Accounts, StartError> {
    let err = |e: String| StartError::Accounts(e);
    let dir = config.data_dir();
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let store = accounts::store::Store::open(&config.database_url())
        .await
        .map_err(|e| err(e.to_string()))?;
    let key = accounts::token::TokenKey::load_or_create(&dir).map_err(|e| err(e.to_string()))?;
    api::Accounts::open(store, key)
        .await
        .map_err(|e| err(e.to_string()))
}
