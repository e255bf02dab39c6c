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
//! Layout: [`config`] (TOML + defaults), `hub` (sessions, membership, floor
//! control; one task, no locks), `session` (one WebSocket), `sfu` (worker
//! threads, one UDP socket and one str0m loop each). See `docs/architecture.md`.

pub mod access;
pub mod config;
mod hub;
mod session;
mod sfu;
pub mod tls;
mod web;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicU64},
};

use axum::{
    Json, Router,
    extract::{State, WebSocketUpgrade},
    response::IntoResponse,
    routing::get,
};
pub use config::{ConfigError, ServerConfig};
pub use sfu::{SfuStats, StatsHandle};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::info;

/// Largest WebSocket message accepted at the transport level, bytes. Larger
/// than [`squawk_protocol::MAX_FRAME_BYTES`] on purpose, so that an oversized
/// frame (up to 16 MiB) gets a protocol error reply instead of a dropped
/// connection; beyond it the connection is closed.
const WS_TRANSPORT_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct AppState {
    hub: mpsc::Sender<HubMsg>,
    ids: Arc<AtomicU64>,
    stats: StatsHandle,
    access: access::Access,
}

use hub::HubMsg;

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
        let tls = tls::server_config(&config)?;
        let config_tls = tls.is_some();
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
        let (hub_tx, hub_rx) = mpsc::channel(4096);
        let workers = sfu::Workers::start(
            config.worker_count(),
            config.media,
            config.advertise_ip,
            hub_tx.clone(),
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
        let hub = hub::Hub::new(config, workers);
        let mut hub_shutdown = shutdown_rx.clone();
        let hub = tokio::spawn(async move {
            let mut workers = hub.run(hub_rx, &mut hub_shutdown).await;
            tokio::task::spawn_blocking(move || workers.shutdown())
                .await
                .ok();
        });

        let state = AppState {
            hub: hub_tx,
            ids: Arc::new(AtomicU64::new(1)),
            stats: stats.clone(),
            access,
        };
        let app = Router::new()
            .route("/health", get(health))
            .route("/stats", get(stats_route))
            .route("/ws", get(ws_route))
            .merge(web::routes())
            .with_state(state);
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

    /// Stops accepting, closes sessions and stops the workers.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        let _ = self.hub.await;
    }
}

async fn health() -> impl IntoResponse {
    Json(
        serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"),
        "protocol": squawk_protocol::PROTOCOL_VERSION }),
    )
}

async fn stats_route(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.stats.snapshot())
}

async fn ws_route(ws: WebSocketUpgrade, State(state): State<AppState>) -> impl IntoResponse {
    ws.max_message_size(WS_TRANSPORT_LIMIT)
        .max_frame_size(WS_TRANSPORT_LIMIT)
        .on_upgrade(move |socket| session::run(socket, state.hub, state.ids, state.access))
}
