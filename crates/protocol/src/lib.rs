//! Squawk signaling protocol: the JSON messages exchanged over the WebSocket
//! between a client and `squawk-server`.
//!
//! Every WebSocket text frame carries exactly one JSON object with a `"type"`
//! tag ([`ClientMessage`] upstream, [`ServerMessage`] downstream). The full
//! description, with a sample session, is `docs/protocol.md`.
//!
//! Floor control message names follow 3GPP TS 24.380 (MCPTT floor control):
//! Floor Request, Floor Granted, Floor Deny, Floor Taken, Floor Idle,
//! Floor Release and Floor Revoke.
//!
//! ```
//! use squawk_protocol::{ClientMessage, PROTOCOL_VERSION};
//! let hello = ClientMessage::Hello { version: PROTOCOL_VERSION, name: "Alice".into(), password: None, token: None };
//! let text = hello.to_json();
//! assert_eq!(ClientMessage::from_json(&text).unwrap(), hello);
//! ```

mod channel;
mod error;
/// Fuzzing harness (`fuzz/`); hidden: not an API.
#[cfg(any(test, feature = "fuzz"))]
#[doc(hidden)]
pub mod fuzz;
mod messages;

pub use channel::{ChannelName, ChannelNameError};
pub use error::{ErrorCode, ParseError};
pub use messages::{
    ChannelInfo, ClientId, ClientMessage, DenyReason, IceServer, Member, Priority, RevokeReason,
    ServerMessage,
};

/// Version of this protocol. A `hello` with any other version is refused with
/// [`ErrorCode::UnsupportedVersion`] and the connection is closed.
///
/// Version 2: presence as deltas (`member_joined`, `member_left` instead of
/// `presence`), `floor_taken.held_ms`, admission error codes.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest signaling frame a peer may send, in bytes (64 KiB). SDP for a
/// connection in dozens of channels stays well below this; anything larger is
/// refused with [`ErrorCode::FrameTooLarge`].
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Longest display name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 64;
