//! The Squawk client engine: signaling (tokio-tungstenite), WebRTC
//! (webrtc-rs), Opus, the audio path and push-to-talk.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use squawk_engine::{Engine, EngineConfig, EngineEvent};
//! use squawk_protocol::ServerMessage;
//! let (engine, mut events) = Engine::start(EngineConfig::new("ws://127.0.0.1:7300/ws", "Ann")).await?;
//! engine.join("ops".parse()?);
//! while let Some(ev) = events.recv().await {
//!     if let EngineEvent::Server(ServerMessage::Joined { channel, .. }) = ev {
//!         println!("in {channel}");
//!         break;
//!     }
//! }
//! engine.close().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`ptt`] (pure PTT machine), [`codec`] (Opus), [`audio`] (devices,
//! WAV ends, resampling, mixer), `rtc` (the PeerConnection), [`engine`] (the
//! task that ties them together), [`account`] (signing in over the HTTP API). The jitter buffer is in `squawk-media`.

pub mod account;
pub mod audio;
pub mod codec;
pub mod engine;
pub mod ptt;
mod rtc;
pub mod tls;

pub use engine::{
    DEFAULT_RED_LEVELS, DeviceEnd, Engine, EngineConfig, EngineCounters, EngineError, EngineEvent,
    FloorOptions, LocalEvent, TransmissionReport,
};
pub use rtc::IcePath;
pub use squawk_media::JitterConfig;
