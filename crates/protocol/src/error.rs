use serde::{Deserialize, Serialize};

/// Stable error codes sent in [`crate::ServerMessage::Error`]. Clients may
/// match on them; the accompanying message is for humans and may change.
///
/// Serialised in `snake_case` (`"unsupported_version"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, or a field is missing or has the wrong type.
    MalformedMessage,
    /// The JSON object has a `type` this server does not know.
    UnknownMessageType,
    /// `hello.version` is not [`crate::PROTOCOL_VERSION`]. The connection is closed.
    UnsupportedVersion,
    /// A message other than `hello` arrived before `hello`.
    NotIdentified,
    /// A second `hello` on the same connection.
    AlreadyIdentified,
    /// The display name is empty, too long or has control characters.
    InvalidName,
    /// The channel name is not valid (see [`crate::ChannelName`]).
    InvalidChannel,
    /// The channel does not exist and this server does not create channels on demand.
    ChannelNotFound,
    /// The connection is not a member of the channel it named.
    NotMember,
    /// The connection is in as many channels as the server allows.
    TooManyChannels,
    /// The frame is larger than [`crate::MAX_FRAME_BYTES`] (a binary frame
    /// within the limit gets [`ErrorCode::MalformedMessage`]).
    FrameTooLarge,
    /// The SDP could not be parsed or was refused by the media server.
    InvalidSdp,
    /// An answer arrived when no offer was outstanding, or similar misuse.
    NegotiationFailed,
    /// `hello` lacked the server password, or gave a wrong one. The
    /// connection is closed.
    Unauthorized,
    /// Something went wrong on the server; the message says what.
    Internal,
    /// The server has as many connections as it allows (`max_connections`).
    /// The connection is closed.
    ServerFull,
    /// This IP address has as many connections as the server allows
    /// (`max_connections_per_ip`). The connection is closed.
    TooManyConnections,
    /// This IP address opened connections faster than the server allows
    /// (`new_connections_per_ip_per_sec`). The connection is closed; retry
    /// after a second.
    ConnectRateLimited,
    /// The connection sent messages faster than the server allows
    /// (`messages_per_sec`); the message was ignored. Not fatal.
    RateLimited,
    /// The channel has as many members as the server allows
    /// (`max_members_per_channel`).
    ChannelFull,
    /// The connection did not read its messages fast enough: more than the
    /// server's outbound bound was waiting. The connection is closed.
    TooSlow,
    /// The connection sent nothing, not even a WebSocket pong, for the idle
    /// timeout. The connection is closed.
    IdleTimeout,
    /// No such emergency is active in the channel (`emergency_ack`,
    /// `emergency_cancel`). Not fatal.
    NoEmergency,
    /// Only the originator may cancel an emergency while it is still a
    /// member of the channel. Not fatal.
    NotOriginator,
    /// The account (or a guest) has no right to do this in this channel
    /// (join without `listen`, patch without `dispatch`). Not fatal.
    NotAuthorized,
    /// The access token in `hello` has expired: refresh it
    /// (`POST /api/v1/refresh`) and connect again. The connection is closed.
    TokenExpired,
    /// `patch` of fewer than two distinct channels. Not fatal.
    InvalidPatch,
    /// `patch` of a channel that is already in a patch. Not fatal.
    AlreadyPatched,
    /// `unpatch` of a channel that is in no patch. Not fatal.
    NotPatched,
    /// `patch` of more than one channel whose floor is taken, or `unpatch`
    /// while someone talks in the patch: retry when the floor is idle. Not
    /// fatal.
    FloorBusy,
    /// The server's media worker that carried this connection's audio
    /// failed; its floors were freed. The connection is closed: connect
    /// again (the other connections on the server are not affected).
    MediaFailed,
    /// The server is shutting down (a restart or maintenance); every
    /// transmission on it has ended. The connection is closed: connect
    /// again, with backoff, until the server is back.
    ShuttingDown,
}

impl ErrorCode {
    /// Whether the server closes the connection after sending this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::UnsupportedVersion
                | Self::Unauthorized
                | Self::TokenExpired
                | Self::ServerFull
                | Self::TooManyConnections
                | Self::ConnectRateLimited
                | Self::TooSlow
                | Self::IdleTimeout
                | Self::MediaFailed
                | Self::ShuttingDown
        )
    }
}

/// Why a text frame could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, not an object, or a field is missing or mistyped.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The `type` tag names no known message.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A `channel` field does not hold a valid channel name.
    #[error("invalid channel: {0}")]
    InvalidChannel(String),
}

impl ParseError {
    /// The [`ErrorCode`] a server reports for this parse error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::MalformedMessage,
            Self::UnknownType(_) => ErrorCode::UnknownMessageType,
            Self::InvalidChannel(_) => ErrorCode::InvalidChannel,
        }
    }
}
