use serde::{Deserialize, Serialize, de::DeserializeOwned};
use ts_rs::TS;

use crate::{ChannelName, ErrorCode, ParseError};

/// Server-assigned identifier of one signaling connection (one user session),
/// unique for the lifetime of the server process.
pub type ClientId = u64;

/// Floor priority, 0 (lowest, the default) to 255 (highest), as in the
/// floor priority of 3GPP TS 24.380 §4.1.1.
///
/// It orders the floor queue, and with pre-emption on (a server setting) a
/// strictly higher priority revokes the talker. The named levels are
/// [`Priority::NORMAL`] < [`Priority::HIGH`] < [`Priority::EMERGENCY`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS,
)]
#[serde(transparent)]
pub struct Priority(pub u8);

impl Priority {
    /// A user's talk: 0.
    pub const NORMAL: Priority = Priority(0);
    /// A dispatcher's talk: 128.
    pub const HIGH: Priority = Priority(128);
    /// An emergency: 255.
    pub const EMERGENCY: Priority = Priority(255);
}

/// A member of a channel, as shown in presence lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Member {
    /// The member's connection id.
    pub id: ClientId,
    /// The display name given in `hello`.
    pub name: String,
}

/// One STUN or TURN server for a client's ICE agent (a [`ServerMessage::Welcome`]
/// field), shaped as WebRTC's `RTCIceServer` so that a browser can use it
/// as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct IceServer {
    /// `stun:HOST[:PORT]`, `turn:HOST[:PORT][?transport=udp|tcp]` or
    /// `turns:…` URLs (RFC 7064, RFC 7065) that share the credentials.
    pub urls: Vec<String>,
    /// TURN username: `EXPIRY:ID`, EXPIRY in Unix seconds, after which the
    /// TURN server refuses it. None for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password: base64 of HMAC-SHA1(shared secret, username). None
    /// for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One channel in a [`ServerMessage::Channels`] list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChannelInfo {
    /// The channel's name.
    pub name: ChannelName,
    /// How many connections are members now.
    pub members: usize,
    /// Whether the channel is configured on the server (it exists even when
    /// empty) rather than created by a join.
    pub fixed: bool,
}

/// Why a Floor Request was refused (Floor Deny, TS 24.380 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DenyReason {
    /// Another member holds the floor.
    Busy,
    /// The requester is not a member of the channel.
    NotMember,
    /// The requester's media path (WebRTC) is not established yet.
    NoMedia,
    /// The request waited in the floor queue longer than the channel allows.
    QueueTimeout,
    /// The requester's account may not talk in this channel (its grants).
    NotAuthorized,
}

/// Why the floor was taken back from its holder (Floor Revoke, TS 24.380 §8.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevokeReason {
    /// The holder talked longer than the channel's maximum talk time.
    MaxDurationExceeded,
    /// A request with higher priority pre-empted the holder.
    Preempted,
}

/// Messages from a client to the server.
///
/// The first message on a connection must be [`ClientMessage::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Identify: protocol version and display name (1 to 64 characters).
    Hello {
        /// Must equal [`crate::PROTOCOL_VERSION`].
        version: u32,
        /// Display name shown to other members.
        name: String,
        /// The server password, for a server that has one (see
        /// `docs/server.md`); omitted otherwise. A missing or wrong one gets
        /// [`crate::ErrorCode::Unauthorized`] and the connection is closed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// An access token from `POST /api/v1/login` (docs/api.md), on a
        /// server with accounts. Without one the connection is a guest
        /// (channels that allow guests only); `name` is then its display
        /// name, otherwise the account's display name is used. An expired
        /// token gets [`crate::ErrorCode::TokenExpired`], a bad one
        /// [`crate::ErrorCode::Unauthorized`]; both close the connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Join a channel. A connection may be in many channels at once; the
    /// server answers with [`ServerMessage::Joined`] (and, when the
    /// connection needs another downlink track, a renegotiation
    /// [`ServerMessage::Offer`]).
    Join {
        /// Channel to join.
        channel: ChannelName,
    },
    /// Leave a channel; releases the floor there if held.
    Leave {
        /// Channel to leave.
        channel: ChannelName,
    },
    /// The client's SDP offer (RFC 8829). The first offer carries the
    /// client's one uplink audio track (Opus, sendonly or sendrecv).
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// The client's SDP answer to a server [`ServerMessage::Offer`].
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// Floor Request (TS 24.380 §8.2.2) in one channel.
    FloorRequest {
        /// Channel to talk in.
        channel: ChannelName,
        /// Floor priority; 0 when omitted.
        #[serde(default)]
        priority: Priority,
        /// When the floor is taken, wait in the floor queue
        /// ([`ServerMessage::FloorQueued`]) instead of a Floor Deny `busy`
        /// (TS 24.380 §6.3.4.4, "Floor Request" with queueing). `false`
        /// when omitted.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        queue: bool,
    },
    /// Floor Release (TS 24.380 §8.2.6): the holder has finished talking,
    /// or a queued requester cancels its request.
    FloorRelease {
        /// Channel whose floor is released.
        channel: ChannelName,
    },
    /// Ask for the server's channel list; answered by [`ServerMessage::Channels`].
    ListChannels,
    /// Raise an emergency in a channel (after TS 24.379 §6.2.8 "MCPTT
    /// emergency alert"): every member gets [`ServerMessage::Emergency`],
    /// and the sender's Floor Requests there get
    /// [`Priority::EMERGENCY`] for the server's emergency time. Raising it
    /// again while it is active only repeats the state to the sender.
    Emergency {
        /// The channel in distress.
        channel: ChannelName,
    },
    /// Cancel one's own emergency in a channel ([`ServerMessage::EmergencyCancel`]
    /// to every member). Any member may cancel an emergency whose originator
    /// has left the channel.
    EmergencyCancel {
        /// The channel.
        channel: ChannelName,
        /// The emergency's originator; the sender's own when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        originator: Option<ClientId>,
    },
    /// Acknowledge an emergency (a dispatcher has seen it): every member gets
    /// [`ServerMessage::EmergencyAck`]; the alert stops sounding.
    EmergencyAck {
        /// The channel.
        channel: ChannelName,
        /// The emergency's originator.
        originator: ClientId,
    },
    /// Patch channels together (a dispatcher's patch): they share one floor,
    /// and whoever holds it is heard in all of them. Every member of each
    /// gets [`ServerMessage::Patched`]. The sender must be a member of every
    /// channel; none may be in a patch already; at most one may have its
    /// floor taken (its talker goes on, now heard in all of them).
    Patch {
        /// Two or more channels.
        channels: Vec<ChannelName>,
    },
    /// Split the patch that `channel` is in: each channel gets its own floor
    /// again ([`ServerMessage::Unpatched`]). Refused (`floor_busy`) while
    /// someone talks in the patch.
    Unpatch {
        /// Any channel of the patch.
        channel: ChannelName,
    },
    /// Pause (`muted: true`) or resume this connection's downlink of a
    /// channel at the SFU: while muted no packet of the channel is sent to
    /// it. Answered by [`ServerMessage::Muted`]; membership, presence and
    /// floor messages are unchanged, and the member may still talk there.
    Mute {
        /// The channel.
        channel: ChannelName,
        /// Pause (true) or resume (false).
        muted: bool,
    },
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Reply to a valid `hello`.
    Welcome {
        /// The server's protocol version.
        version: u32,
        /// This connection's id.
        client_id: ClientId,
        /// Maximum talk time per transmission, in ms.
        max_talk_ms: u64,
        /// STUN and TURN servers for this connection's ICE agent, in the
        /// shape of WebRTC's `RTCIceServer` (W3C webrtc-pc §4.2.4). TURN
        /// entries carry short-lived credentials (the TURN REST API
        /// convention, draft-uberti-behave-turn-rest-00 §2.2). Absent or
        /// empty when the server has none: host candidates only.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// The connection is now a member of `channel`: the full member list,
    /// sent once; later changes come as [`ServerMessage::MemberJoined`] and
    /// [`ServerMessage::MemberLeft`]. A `join` of a channel already joined
    /// is answered with `joined` again (a resync). When the floor is taken,
    /// [`ServerMessage::FloorTaken`] follows at once: late entry, as in
    /// MCPTT (TS 24.380), where a participant joining an ongoing call learns
    /// who holds the floor.
    Joined {
        /// The channel joined.
        channel: ChannelName,
        /// The SDP `mid` of the downlink audio track that carries this
        /// channel's audio to this client. It stays the same for as long as
        /// the client stays in the channel, whoever talks.
        mid: String,
        /// Current members, the joiner included.
        members: Vec<Member>,
    },
    /// The connection has left `channel`.
    Left {
        /// The channel left.
        channel: ChannelName,
    },
    /// Members joined a channel this connection is in (a presence delta,
    /// sent only after this connection's own [`ServerMessage::Joined`] for
    /// the channel). Deltas that queue up while the connection is slow to
    /// read are merged into one message, so `members` may hold several.
    MemberJoined {
        /// The channel.
        channel: ChannelName,
        /// The new members, in the order they joined.
        members: Vec<Member>,
    },
    /// Members left a channel this connection is in (presence delta, merged
    /// like [`ServerMessage::MemberJoined`]).
    MemberLeft {
        /// The channel.
        channel: ChannelName,
        /// Connection ids of the members gone.
        ids: Vec<ClientId>,
    },
    /// A server SDP offer (renegotiation: a downlink track was added).
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// The server's SDP answer to a client [`ClientMessage::Offer`].
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// Floor Granted (TS 24.380 §8.2.4): the requester may talk.
    FloorGranted {
        /// The channel.
        channel: ChannelName,
        /// The floor is revoked after this many ms of talking.
        max_duration_ms: u64,
    },
    /// Floor Deny (TS 24.380 §8.2.3): the request was refused.
    FloorDeny {
        /// The channel.
        channel: ChannelName,
        /// Why.
        reason: DenyReason,
    },
    /// Floor Queue Position Info (TS 24.380 message of that name): the request waits in
    /// the channel's floor queue; sent on queueing and whenever the place
    /// changes. Floor Granted, or Floor Deny `queue_timeout`, ends the wait;
    /// Floor Release cancels it.
    FloorQueued {
        /// The channel.
        channel: ChannelName,
        /// Place in the queue, 1 = next to be granted.
        position: usize,
    },
    /// Floor Taken (TS 24.380 §8.2.5): someone else now talks in the channel.
    FloorTaken {
        /// The channel.
        channel: ChannelName,
        /// The talker's connection id.
        talker: ClientId,
        /// The talker's display name.
        talker_name: String,
        /// The priority the floor was granted at.
        priority: Priority,
        /// How long the talker has held the floor, ms: 0 when just granted,
        /// more for a member who joined while the floor was taken.
        #[serde(default)]
        held_ms: u64,
    },
    /// Floor Idle (TS 24.380 §8.2.7): nobody talks in the channel.
    FloorIdle {
        /// The channel.
        channel: ChannelName,
    },
    /// Floor Revoke (TS 24.380 §8.2.9): the holder must stop talking.
    FloorRevoke {
        /// The channel.
        channel: ChannelName,
        /// Why.
        reason: RevokeReason,
        /// Who pre-empted the holder, when `reason` is `preempted`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Member>,
    },
    /// An emergency is active in a channel: sent to every member when it is
    /// raised, and to a member that joins while it lasts (right after
    /// `joined`, with `acked_by` when a dispatcher already acknowledged it).
    Emergency {
        /// The channel.
        channel: ChannelName,
        /// Who raised it.
        originator: Member,
        /// How long ago it was raised, ms.
        age_ms: u64,
        /// Who acknowledged it, if anyone has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acked_by: Option<Member>,
    },
    /// A dispatcher acknowledged `originator`'s emergency in `channel`.
    EmergencyAck {
        /// The channel.
        channel: ChannelName,
        /// Who raised the emergency.
        originator: ClientId,
        /// Who acknowledged it.
        by: Member,
    },
    /// `originator`'s emergency in `channel` is over.
    EmergencyCancel {
        /// The channel.
        channel: ChannelName,
        /// Who raised the emergency.
        originator: ClientId,
        /// Who cancelled it (the originator, or a member after the
        /// originator left).
        by: Member,
    },
    /// `channels` are patched: one floor, each talker heard in all of them.
    /// Sent to every member of each when the patch is made, and after
    /// `joined` to a member that joins a patched channel.
    Patched {
        /// The channels of the patch.
        channels: Vec<ChannelName>,
        /// Who patched them.
        by: Member,
    },
    /// The patch of `channels` is split: each has its own floor again.
    Unpatched {
        /// The channels that were patched.
        channels: Vec<ChannelName>,
        /// Who split them.
        by: Member,
    },
    /// This connection's downlink of `channel` is now paused (`muted`) or
    /// flowing: the answer to [`ClientMessage::Mute`].
    Muted {
        /// The channel.
        channel: ChannelName,
        /// The state now.
        muted: bool,
    },
    /// The channels that exist now, sorted by name: the answer to
    /// [`ClientMessage::ListChannels`].
    Channels {
        /// The channels.
        channels: Vec<ChannelInfo>,
    },
    /// A request failed. See [`ErrorCode`].
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

const CLIENT_TYPES: &[&str] = &[
    "hello",
    "join",
    "leave",
    "offer",
    "answer",
    "floor_request",
    "floor_release",
    "list_channels",
    "emergency",
    "emergency_cancel",
    "emergency_ack",
    "patch",
    "unpatch",
    "mute",
];
const SERVER_TYPES: &[&str] = &[
    "welcome",
    "joined",
    "left",
    "member_joined",
    "member_left",
    "offer",
    "answer",
    "floor_granted",
    "floor_deny",
    "floor_queued",
    "floor_taken",
    "floor_idle",
    "floor_revoke",
    "emergency",
    "emergency_ack",
    "emergency_cancel",
    "patched",
    "unpatched",
    "muted",
    "channels",
    "error",
];

fn parse<T: DeserializeOwned>(text: &str, known: &[&str]) -> Result<T, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(ParseError::Malformed("missing string field `type`".into()));
    };
    if !known.contains(&kind) {
        return Err(ParseError::UnknownType(kind.chars().take(64).collect()));
    }
    if let Some(ch) = value.get("channel").and_then(|c| c.as_str())
        && let Err(e) = ChannelName::new(ch)
    {
        return Err(ParseError::InvalidChannel(e.to_string()));
    }
    serde_json::from_value(value).map_err(|e| ParseError::Malformed(e.to_string()))
}

impl ClientMessage {
    /// Parses one text frame.
    ///
    /// # Errors
    /// [`ParseError`] for invalid JSON, an unknown `type`, a bad channel name
    /// or a missing or mistyped field.
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        parse(text, CLIENT_TYPES)
    }

    /// Serialises to one text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain enums of strings and integers cannot fail.
        serde_json::to_string(self).expect("ClientMessage serialises")
    }

    /// The message's `type` tag, for logs and metrics.
    pub fn variant(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Offer { .. } => "offer",
            Self::Answer { .. } => "answer",
            Self::FloorRequest { .. } => "floor_request",
            Self::FloorRelease { .. } => "floor_release",
            Self::ListChannels => "list_channels",
            Self::Emergency { .. } => "emergency",
            Self::EmergencyCancel { .. } => "emergency_cancel",
            Self::EmergencyAck { .. } => "emergency_ack",
            Self::Patch { .. } => "patch",
            Self::Unpatch { .. } => "unpatch",
            Self::Mute { .. } => "mute",
        }
    }
}

impl ServerMessage {
    /// Parses one text frame.
    ///
    /// # Errors
    /// [`ParseError`] as for [`ClientMessage::from_json`].
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        parse(text, SERVER_TYPES)
    }

    /// Serialises to one text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain enums of strings and integers cannot fail.
        serde_json::to_string(self).expect("ServerMessage serialises")
    }

    /// The message's `type` tag, for logs and metrics.
    pub fn variant(&self) -> &'static str {
        match self {
            Self::Welcome { .. } => "welcome",
            Self::Joined { .. } => "joined",
            Self::Left { .. } => "left",
            Self::MemberJoined { .. } => "member_joined",
            Self::MemberLeft { .. } => "member_left",
            Self::Offer { .. } => "offer",
            Self::Answer { .. } => "answer",
            Self::FloorGranted { .. } => "floor_granted",
            Self::FloorDeny { .. } => "floor_deny",
            Self::FloorQueued { .. } => "floor_queued",
            Self::FloorTaken { .. } => "floor_taken",
            Self::FloorIdle { .. } => "floor_idle",
            Self::FloorRevoke { .. } => "floor_revoke",
            Self::Emergency { .. } => "emergency",
            Self::EmergencyAck { .. } => "emergency_ack",
            Self::EmergencyCancel { .. } => "emergency_cancel",
            Self::Patched { .. } => "patched",
            Self::Unpatched { .. } => "unpatched",
            Self::Muted { .. } => "muted",
            Self::Channels { .. } => "channels",
            Self::Error { .. } => "error",
        }
    }

    /// Shorthand for an [`ServerMessage::Error`].
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PROTOCOL_VERSION;

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).unwrap()
    }

    #[test]
    fn every_client_message_round_trips() {
        let all = vec![
            ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                name: "Ann".into(),
                password: None,
                token: None,
            },
            ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                name: "Ann".into(),
                password: Some("s3cret".into()),
                token: None,
            },
            ClientMessage::Join { channel: ch("ops") },
            ClientMessage::Leave { channel: ch("ops") },
            ClientMessage::Offer {
                sdp: "v=0\r\n".into(),
            },
            ClientMessage::Answer {
                sdp: "v=0\r\n".into(),
            },
            ClientMessage::FloorRequest {
                channel: ch("ops"),
                priority: Priority(7),
                queue: false,
            },
            ClientMessage::FloorRelease { channel: ch("ops") },
            ClientMessage::ListChannels,
            ClientMessage::Emergency { channel: ch("ops") },
            ClientMessage::EmergencyCancel {
                channel: ch("ops"),
                originator: Some(4),
            },
            ClientMessage::EmergencyAck {
                channel: ch("ops"),
                originator: 4,
            },
            ClientMessage::Patch {
                channels: vec![ch("ops"), ch("fire")],
            },
            ClientMessage::Unpatch { channel: ch("ops") },
            ClientMessage::Mute {
                channel: ch("ops"),
                muted: true,
            },
        ];
        // Every type once, `hello` twice (with and without a password).
        assert_eq!(all.len(), CLIENT_TYPES.len() + 1);
        for m in all {
            let text = m.to_json();
            assert!(
                text.contains(&format!("\"type\":\"{}\"", m.variant())),
                "{text}"
            );
            assert_eq!(ClientMessage::from_json(&text).unwrap(), m);
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let members = vec![Member {
            id: 1,
            name: "Ann".into(),
        }];
        let all = vec![
            ServerMessage::Welcome {
                version: 1,
                client_id: 3,
                max_talk_ms: 60_000,
                ice_servers: vec![
                    IceServer {
                        urls: vec!["stun:192.0.2.1".into()],
                        username: None,
                        credential: None,
                    },
                    IceServer {
                        urls: vec!["turn:192.0.2.1:3478?transport=udp".into()],
                        username: Some("1767225600:squawk3".into()),
                        credential: Some("c2VjcmV0".into()),
                    },
                ],
            },
            ServerMessage::Joined {
                channel: ch("a"),
                mid: "1".into(),
                members: members.clone(),
            },
            ServerMessage::Left { channel: ch("a") },
            ServerMessage::MemberJoined {
                channel: ch("a"),
                members,
            },
            ServerMessage::MemberLeft {
                channel: ch("a"),
                ids: vec![1, 2],
            },
            ServerMessage::Offer { sdp: "x".into() },
            ServerMessage::Answer { sdp: "y".into() },
            ServerMessage::FloorGranted {
                channel: ch("a"),
                max_duration_ms: 60_000,
            },
            ServerMessage::FloorDeny {
                channel: ch("a"),
                reason: DenyReason::QueueTimeout,
            },
            ServerMessage::FloorQueued {
                channel: ch("a"),
                position: 2,
            },
            ServerMessage::FloorTaken {
                channel: ch("a"),
                talker: 4,
                talker_name: "Bo".into(),
                priority: Priority::default(),
                held_ms: 1500,
            },
            ServerMessage::FloorIdle { channel: ch("a") },
            ServerMessage::FloorRevoke {
                channel: ch("a"),
                reason: RevokeReason::Preempted,
                by: Some(Member {
                    id: 5,
                    name: "Di".into(),
                }),
            },
            ServerMessage::Emergency {
                channel: ch("a"),
                originator: Member {
                    id: 4,
                    name: "Bo".into(),
                },
                age_ms: 0,
                acked_by: None,
            },
            ServerMessage::EmergencyAck {
                channel: ch("a"),
                originator: 4,
                by: Member {
                    id: 5,
                    name: "Di".into(),
                },
            },
            ServerMessage::EmergencyCancel {
                channel: ch("a"),
                originator: 4,
                by: Member {
                    id: 4,
                    name: "Bo".into(),
                },
            },
            ServerMessage::Patched {
                channels: vec![ch("a"), ch("b")],
                by: Member {
                    id: 5,
                    name: "Di".into(),
                },
            },
            ServerMessage::Unpatched {
                channels: vec![ch("a"), ch("b")],
                by: Member {
                    id: 5,
                    name: "Di".into(),
                },
            },
            ServerMessage::Muted {
                channel: ch("a"),
                muted: true,
            },
            ServerMessage::Channels {
                channels: vec![ChannelInfo {
                    name: ch("a"),
                    members: 2,
                    fixed: false,
                }],
            },
            ServerMessage::error(ErrorCode::InvalidSdp, "bad"),
        ];
        assert_eq!(all.len(), SERVER_TYPES.len());
        for m in all {
            let text = m.to_json();
            assert!(
                text.contains(&format!("\"type\":\"{}\"", m.variant())),
                "{text}"
            );
            assert_eq!(ServerMessage::from_json(&text).unwrap(), m);
        }
    }

    #[test]
    fn wire_format_is_stable() {
        let m = ClientMessage::from_json(r#"{"type":"floor_request","channel":"ops"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::FloorRequest {
                channel: ch("ops"),
                priority: Priority(0),
                queue: false,
            }
        );
        // `queue` is sent only when true, so older servers see the same JSON.
        let q = ClientMessage::FloorRequest {
            channel: ch("ops"),
            priority: Priority(0),
            queue: true,
        };
        assert_eq!(
            q.to_json(),
            r#"{"type":"floor_request","channel":"ops","priority":0,"queue":true}"#
        );
        let e = ServerMessage::error(ErrorCode::UnsupportedVersion, "v9");
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","code":"unsupported_version","message":"v9"}"#
        );
        let d = ServerMessage::FloorDeny {
            channel: ch("ops"),
            reason: DenyReason::NotMember,
        };
        assert_eq!(
            d.to_json(),
            r#"{"type":"floor_deny","channel":"ops","reason":"not_member"}"#
        );
    }

    #[test]
    fn bad_input_gets_the_right_error() {
        let cases = [
            ("{not json", ErrorCode::MalformedMessage),
            ("[1,2]", ErrorCode::MalformedMessage),
            (r#"{"channel":"x"}"#, ErrorCode::MalformedMessage),
            (r#"{"type":"teleport"}"#, ErrorCode::UnknownMessageType),
            (r#"{"type":"join"}"#, ErrorCode::MalformedMessage),
            (
                r#"{"type":"join","channel":"no spaces"}"#,
                ErrorCode::InvalidChannel,
            ),
            (
                r#"{"type":"hello","version":"1","name":"x"}"#,
                ErrorCode::MalformedMessage,
            ),
            (
                r#"{"type":"floor_request","channel":"x","priority":300}"#,
                ErrorCode::MalformedMessage,
            ),
        ];
        for (text, code) in cases {
            let err = ClientMessage::from_json(text).unwrap_err();
            assert_eq!(err.code(), code, "{text}: {err}");
        }
    }

    #[test]
    fn fatal_errors() {
        assert!(ErrorCode::UnsupportedVersion.is_fatal());
        assert!(ErrorCode::Unauthorized.is_fatal());
        assert!(!ErrorCode::MalformedMessage.is_fatal());
    }
}
