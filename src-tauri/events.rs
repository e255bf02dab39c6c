//! What the shell tells the window: the engine's events
//! ([`squawk_engine::EngineEvent`], the protocol's messages among them)
//! and the shell's own ([`AppEvent`]), one JSON object tagged by `type`
//! either way. `ui/types/events.d.ts` is generated from these types
//! (`tests/ui_types.rs`), and the UI is type-checked against it.

use serde::Serialize;
use squawk_engine::EngineEvent;
use ts_rs::TS;

use crate::talk_key::{Backend, KeyMode};

/// One event for the window (`squawk://event`).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(untagged)]
pub enum UiEvent {
    /// From the engine.
    Engine(EngineEvent),
    /// From the shell.
    App(AppEvent),
}

impl From<EngineEvent> for UiEvent {
    fn from(e: EngineEvent) -> Self {
        Self::Engine(e)
    }
}

impl From<AppEvent> for UiEvent {
    fn from(e: AppEvent) -> Self {
        Self::App(e)
    }
}

/// Where the connection to the server stands, as the shell manages it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Opening the signaling connection.
    Connecting,
    /// Signaling is up (the browser engine says so; the desktop's
    /// `welcome` does).
    Connected,
    /// Lost: the next attempt is in `retry_in_ms`.
    Reconnecting,
    /// Not connected, and not trying.
    Offline,
}

/// The shell's own events (tags distinct from the protocol's and the
/// engine's).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AppEvent {
    /// The connection's state changed.
    Connection {
        /// The new state.
        state: ConnectionState,
        /// When reconnecting: the wait before the next attempt, ms.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        retry_in_ms: Option<u64>,
        /// Why, when the connection was lost or closed, for people.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        reason: Option<String>,
    },
    /// Something the user should know that stopped nothing.
    Warning {
        /// For people.
        message: String,
    },
    /// The server's certificate is not signed by a trusted authority: the
    /// window asks whether to trust it (trust on first use).
    CertificatePrompt {
        /// The server URL.
        server: String,
        /// SHA-256 of the certificate, colon-separated hex.
        fingerprint: String,
    },
    /// The server's certificate is not the one pinned for it.
    CertificateChanged {
        /// The server URL.
        server: String,
        /// The certificate offered now, SHA-256 colon-separated hex.
        fingerprint: String,
        /// The one pinned earlier.
        pinned: String,
    },
    /// The global talk key went down or up.
    TalkKey {
        /// Down (true) or up.
        down: bool,
    },
    /// The talk key's status changed.
    TalkKeyStatus(TalkKeyStatus),
}

/// The talk key: as set, its mode, its backend and whether it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct TalkKeyStatus {
    /// The key as set (`F9`, `Control+Shift+KeyT`), `None` for none.
    pub key: Option<String>,
    /// Hold or latch.
    pub mode: KeyMode,
    /// Where the key comes from (`x11` or `portal`), when known.
    pub backend: Option<Backend>,
    /// Whether pressing it talks.
    pub available: bool,
    /// Why it does not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reason: Option<String>,
    /// Waiting for the desktop's answer (GlobalShortcuts portal).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub pending: bool,
    /// The desktop's description of the key it assigned (portal only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub trigger: Option<String>,
}

impl TalkKeyStatus {
    /// The status of `key` in `mode` on `backend`: `works` is `Ok` or why
    /// not.
    pub fn new(
        key: Option<&str>,
        mode: KeyMode,
        backend: Option<Backend>,
        works: Result<(), String>,
    ) -> Self {
        Self {
            key: key.map(str::to_owned),
            mode,
            backend,
            available: works.is_ok(),
            reason: works.err(),
            pending: false,
            trigger: None,
        }
    }
}

/// Why a command failed: what the window gets when an `invoke` rejects,
/// `{code, message}` (`ui/engine-tauri.js` turns it into an `Error` with
/// `code`). Every command fails with this one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct UiError {
    /// What kind of failure, for the window to act on.
    pub code: UiErrorCode,
    /// What happened, for people.
    pub message: String,
}

/// The kinds of [`UiError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum UiErrorCode {
    /// An argument is not valid (a channel name, a key name, a server
    /// address, a fingerprint, a tail out of range): fix it.
    Invalid,
    /// No engine runs (offline, connecting or reconnecting).
    NotConnected,
    /// The credentials were refused (a server password, an account's
    /// password or saved sign-in): type the password.
    Refused,
    /// The server's certificate is not trusted, or not the one pinned (a
    /// `certificate_prompt` or `certificate_changed` event says which).
    Certificate,
    /// The server could not be reached, or refused for another reason.
    Unreachable,
    /// A newer connect or a disconnect ended this connect.
    Cancelled,
    /// The OS keyring failed.
    Keyring,
    /// A device (a pedal) cannot be used.
    Device,
    /// Something inside the app failed.
    Internal,
}

impl UiError {
    /// A failure of kind `code`.
    pub fn new(code: UiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An argument that is not valid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(UiErrorCode::Invalid, message)
    }

    /// No engine runs.
    pub fn not_connected() -> Self {
        Self::new(UiErrorCode::NotConnected, "not connected")
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UiError {}

/// The TypeScript declarations of every type the window receives, in
/// dependency order, for `ui/types/events.d.ts`: 64-bit integers as
/// `number` (JSON has no other; ids and times stay below 2^53).
pub fn typescript() -> String {
    use squawk_engine::{IcePath, LocalEvent, TransmissionReport, audio::controls::Level};
    use squawk_protocol::{
        ChannelInfo, ChannelName, ClientMessage, DenyReason, ErrorCode, IceServer, Member,
        Priority, RevokeReason, ServerMessage,
    };
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        ChannelName::decl(&cfg),
        Priority::decl(&cfg),
        Member::decl(&cfg),
        IceServer::decl(&cfg),
        ChannelInfo::decl(&cfg),
        DenyReason::decl(&cfg),
        RevokeReason::decl(&cfg),
        ErrorCode::decl(&cfg),
        ClientMessage::decl(&cfg),
        ServerMessage::decl(&cfg),
        IcePath::decl(&cfg),
        Level::decl(&cfg),
        TransmissionReport::decl(&cfg),
        squawk_engine::DeviceEnd::decl(&cfg),
        squawk_engine::audio::select::DeviceInfo::decl(&cfg),
        squawk_engine::audio::select::DeviceChange::decl(&cfg),
        LocalEvent::decl(&cfg),
        EngineEvent::decl(&cfg),
        KeyMode::decl(&cfg),
        Backend::decl(&cfg),
        TalkKeyStatus::decl(&cfg),
        ConnectionState::decl(&cfg),
        AppEvent::decl(&cfg),
        UiEvent::decl(&cfg),
        crate::devices::AudioDevices::decl(&cfg),
        UiErrorCode::decl(&cfg),
        UiError::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the Rust types by `SQUAWK_BLESS=1 cargo test --test ui_types`\n\
         // (ts-rs, src-tauri/events.rs): do not edit. tests/ui_types.rs fails when\n\
         // this file and the Rust types differ.\n",
    );
    for d in decls {
        out.push_str("\nexport ");
        out.push_str(&d);
        out.push('\n');
    }
    out
}
