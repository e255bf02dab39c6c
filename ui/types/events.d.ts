// Generated from the Rust types by `SQUAWK_BLESS=1 cargo test --test ui_types`
// (ts-rs, src-tauri/events.rs): do not edit. tests/ui_types.rs fails when
// this file and the Rust types differ.

export type ChannelName = string;

export type Priority = number;

export type Member = { 
/**
 * The member's connection id.
 */
id: number, 
/**
 * The display name given in `hello`.
 */
name: string, };

export type IceServer = { 
/**
 * `stun:HOST[:PORT]`, `turn:HOST[:PORT][?transport=udp|tcp]` or
 * `turns:…` URLs (RFC 7064, RFC 7065) that share the credentials.
 */
urls: Array<string>, 
/**
 * TURN username: `EXPIRY:ID`, EXPIRY in Unix seconds, after which the
 * TURN server refuses it. None for STUN.
 */
username?: string | null, 
/**
 * TURN password: base64 of HMAC-SHA1(shared secret, username). None
 * for STUN.
 */
credential?: string | null, };

export type ChannelInfo = { 
/**
 * The channel's name.
 */
name: ChannelName, 
/**
 * How many connections are members now.
 */
members: number, 
/**
 * Whether the channel is configured on the server (it exists even when
 * empty) rather than created by a join.
 */
fixed: boolean, };

export type DenyReason = "busy" | "not_member" | "no_media" | "queue_timeout" | "not_authorized";

export type RevokeReason = "max_duration_exceeded" | "preempted";

export type ErrorCode = "malformed_message" | "unknown_message_type" | "unsupported_version" | "not_identified" | "already_identified" | "invalid_name" | "invalid_channel" | "channel_not_found" | "not_member" | "too_many_channels" | "frame_too_large" | "invalid_sdp" | "negotiation_failed" | "unauthorized" | "internal" | "server_full" | "too_many_connections" | "connect_rate_limited" | "rate_limited" | "channel_full" | "too_slow" | "idle_timeout" | "no_emergency" | "not_originator" | "not_authorized" | "token_expired" | "invalid_patch" | "already_patched" | "not_patched" | "floor_busy" | "media_failed" | "shutting_down";

export type ClientMessage = { "type": "hello", 
/**
 * Must equal [`crate::PROTOCOL_VERSION`].
 */
version: number, 
/**
 * Display name shown to other members.
 */
name: string, 
/**
 * The server password, for a server that has one (see
 * `docs/server.md`); omitted otherwise. A missing or wrong one gets
 * [`crate::ErrorCode::Unauthorized`] and the connection is closed.
 */
password?: string | null, 
/**
 * An access token from `POST /api/v1/login` (docs/api.md), on a
 * server with accounts. Without one the connection is a guest
 * (channels that allow guests only); `name` is then its display
 * name, otherwise the account's display name is used. An expired
 * token gets [`crate::ErrorCode::TokenExpired`], a bad one
 * [`crate::ErrorCode::Unauthorized`]; both close the connection.
 */
token?: string | null, } | { "type": "join", 
/**
 * Channel to join.
 */
channel: ChannelName, } | { "type": "leave", 
/**
 * Channel to leave.
 */
channel: ChannelName, } | { "type": "offer", 
/**
 * SDP text.
 */
sdp: string, } | { "type": "answer", 
/**
 * SDP text.
 */
sdp: string, } | { "type": "floor_request", 
/**
 * Channel to talk in.
 */
channel: ChannelName, 
/**
 * Floor priority; 0 when omitted.
 */
priority: Priority, 
/**
 * When the floor is taken, wait in the floor queue
 * ([`ServerMessage::FloorQueued`]) instead of a Floor Deny `busy`
 * (TS 24.380 §6.3.4.4, "Floor Request" with queueing). `false`
 * when omitted.
 */
queue?: boolean, } | { "type": "floor_release", 
/**
 * Channel whose floor is released.
 */
channel: ChannelName, } | { "type": "list_channels" } | { "type": "emergency", 
/**
 * The channel in distress.
 */
channel: ChannelName, } | { "type": "emergency_cancel", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * The emergency's originator; the sender's own when omitted.
 */
originator?: number | null, } | { "type": "emergency_ack", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * The emergency's originator.
 */
originator: number, } | { "type": "patch", 
/**
 * Two or more channels.
 */
channels: Array<ChannelName>, } | { "type": "unpatch", 
/**
 * Any channel of the patch.
 */
channel: ChannelName, } | { "type": "mute", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Pause (true) or resume (false).
 */
muted: boolean, };

export type ServerMessage = { "type": "welcome", 
/**
 * The server's protocol version.
 */
version: number, 
/**
 * This connection's id.
 */
client_id: number, 
/**
 * Maximum talk time per transmission, in ms.
 */
max_talk_ms: number, 
/**
 * STUN and TURN servers for this connection's ICE agent, in the
 * shape of WebRTC's `RTCIceServer` (W3C webrtc-pc §4.2.4). TURN
 * entries carry short-lived credentials (the TURN REST API
 * convention, draft-uberti-behave-turn-rest-00 §2.2). Absent or
 * empty when the server has none: host candidates only.
 */
ice_servers?: Array<IceServer>, } | { "type": "joined", 
/**
 * The channel joined.
 */
channel: ChannelName, 
/**
 * The SDP `mid` of the downlink audio track that carries this
 * channel's audio to this client. It stays the same for as long as
 * the client stays in the channel, whoever talks.
 */
mid: string, 
/**
 * Current members, the joiner included.
 */
members: Array<Member>, } | { "type": "left", 
/**
 * The channel left.
 */
channel: ChannelName, } | { "type": "member_joined", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * The new members, in the order they joined.
 */
members: Array<Member>, } | { "type": "member_left", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Connection ids of the members gone.
 */
ids: Array<number>, } | { "type": "offer", 
/**
 * SDP text.
 */
sdp: string, } | { "type": "answer", 
/**
 * SDP text.
 */
sdp: string, } | { "type": "floor_granted", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * The floor is revoked after this many ms of talking.
 */
max_duration_ms: number, } | { "type": "floor_deny", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Why.
 */
reason: DenyReason, } | { "type": "floor_queued", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Place in the queue, 1 = next to be granted.
 */
position: number, } | { "type": "floor_taken", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * The talker's connection id.
 */
talker: number, 
/**
 * The talker's display name.
 */
talker_name: string, 
/**
 * The priority the floor was granted at.
 */
priority: Priority, 
/**
 * How long the talker has held the floor, ms: 0 when just granted,
 * more for a member who joined while the floor was taken.
 */
held_ms: number, } | { "type": "floor_idle", 
/**
 * The channel.
 */
channel: ChannelName, } | { "type": "floor_revoke", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Why.
 */
reason: RevokeReason, 
/**
 * Who pre-empted the holder, when `reason` is `preempted`.
 */
by?: Member | null, } | { "type": "emergency", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Who raised it.
 */
originator: Member, 
/**
 * How long ago it was raised, ms.
 */
age_ms: number, 
/**
 * Who acknowledged it, if anyone has.
 */
acked_by?: Member | null, } | { "type": "emergency_ack", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Who raised the emergency.
 */
originator: number, 
/**
 * Who acknowledged it.
 */
by: Member, } | { "type": "emergency_cancel", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * Who raised the emergency.
 */
originator: number, 
/**
 * Who cancelled it (the originator, or a member after the
 * originator left).
 */
by: Member, } | { "type": "patched", 
/**
 * The channels of the patch.
 */
channels: Array<ChannelName>, 
/**
 * Who patched them.
 */
by: Member, } | { "type": "unpatched", 
/**
 * The channels that were patched.
 */
channels: Array<ChannelName>, 
/**
 * Who split them.
 */
by: Member, } | { "type": "muted", 
/**
 * The channel.
 */
channel: ChannelName, 
/**
 * The state now.
 */
muted: boolean, } | { "type": "channels", 
/**
 * The channels.
 */
channels: Array<ChannelInfo>, } | { "type": "error", 
/**
 * Stable code.
 */
code: ErrorCode, 
/**
 * Human-readable detail.
 */
message: string, };

export type IcePath = { 
/**
 * Our candidate's type: `host`, `srflx`, `prflx` or `relay` (RFC 8445
 * §5.1.1), `unknown` if the stats did not say.
 */
local_candidate_type: string, 
/**
 * The server's candidate's type, as above.
 */
remote_candidate_type: string, };

export type Level = { 
/**
 * Highest absolute sample, 0.0 (silence) to 1.0 (full scale).
 */
peak: number, 
/**
 * RMS level, dBFS (full-scale sine ≈ -3 dBFS); -100 for digital silence.
 */
rms_dbfs: number, };

export type TransmissionReport = { 
/**
 * Channel.
 */
channel: ChannelName, 
/**
 * Talker's display name, if known from Floor Taken.
 */
talker: string | null, 
/**
 * Wall-clock start, ms since the Unix epoch.
 */
start_unix_ms: number, 
/**
 * Playout duration, ms.
 */
duration_ms: number, 
/**
 * RTP packets received.
 */
packets: number, 
/**
 * Packets never received in time.
 */
lost: number, 
/**
 * Lost frames recovered from in-band FEC.
 */
recovered_fec: number, 
/**
 * Frames produced by PLC.
 */
concealed: number, 
/**
 * RFC 3550 interarrival jitter, ms.
 */
jitter_ms: number, 
/**
 * Jitter-buffer target delay at the end, ms.
 */
jitter_buffer_ms: number, 
/**
 * Its id for [`Engine::replay`] (instant recall), when it was kept.
 */
recall_id: number | null, };

export type DeviceEnd = "input" | "output";

export type DeviceInfo = { 
/**
 * The system's name for it (PulseAudio's source or sink name), which
 * opens it.
 */
name: string, 
/**
 * What people call it ("Built-in Audio Analog Stereo").
 */
description: string, };

export type DeviceChange = { "change": "fell_back", 
/**
 * The device asked for, as given.
 */
wanted: string, 
/**
 * Why, for people.
 */
reason: string, } | { "change": "restored", 
/**
 * The device, as given.
 */
device: string, } | { "change": "unavailable", 
/**
 * Why, for people.
 */
reason: string, };

export type LocalEvent = { "type": "media", 
/**
 * Whether media flows.
 */
connected: boolean, } | { "type": "ice" } & IcePath | { "type": "talk_ended", 
/**
 * The channel.
 */
channel: ChannelName, } | { "type": "receive_started", 
/**
 * The channel.
 */
channel: ChannelName, } | { "type": "received", 
/**
 * The transmission's figures.
 */
report: TransmissionReport, } | { "type": "replay_started", 
/**
 * The transmission ([`TransmissionReport::recall_id`]).
 */
id: number, 
/**
 * Its channel.
 */
channel: ChannelName, } | { "type": "replay_ended", 
/**
 * The transmission.
 */
id: number, } | { "type": "level" } & Level | { "type": "device", 
/**
 * Which end.
 */
end: DeviceEnd, } & ({ "change": "fell_back", 
/**
 * The device asked for, as given.
 */
wanted: string, 
/**
 * Why, for people.
 */
reason: string, } | { "change": "restored", 
/**
 * The device, as given.
 */
device: string, } | { "change": "unavailable", 
/**
 * Why, for people.
 */
reason: string, }) | { "type": "closed", 
/**
 * Why, for people.
 */
reason: string, };

export type EngineEvent = ServerMessage | LocalEvent;

export type KeyMode = "hold" | "latch";

export type Backend = "x11" | "portal";

export type TalkKeyStatus = { 
/**
 * The key as set (`F9`, `Control+Shift+KeyT`), `None` for none.
 */
key: string | null, 
/**
 * Hold or latch.
 */
mode: KeyMode, 
/**
 * Where the key comes from (`x11` or `portal`), when known.
 */
backend: Backend | null, 
/**
 * Whether pressing it talks.
 */
available: boolean, 
/**
 * Why it does not, when it does not.
 */
reason?: string, 
/**
 * Waiting for the desktop's answer (GlobalShortcuts portal).
 */
pending?: boolean, 
/**
 * The desktop's description of the key it assigned (portal only).
 */
trigger?: string, };

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

export type AppEvent = { "type": "connection", 
/**
 * The new state.
 */
state: ConnectionState, 
/**
 * When reconnecting: the wait before the next attempt, ms.
 */
retry_in_ms?: number, 
/**
 * Why, when the connection was lost or closed, for people.
 */
reason?: string, } | { "type": "warning", 
/**
 * For people.
 */
message: string, } | { "type": "certificate_prompt", 
/**
 * The server URL.
 */
server: string, 
/**
 * SHA-256 of the certificate, colon-separated hex.
 */
fingerprint: string, } | { "type": "certificate_changed", 
/**
 * The server URL.
 */
server: string, 
/**
 * The certificate offered now, SHA-256 colon-separated hex.
 */
fingerprint: string, 
/**
 * The one pinned earlier.
 */
pinned: string, } | { "type": "talk_key", 
/**
 * Down (true) or up.
 */
down: boolean, } | { "type": "talk_key_status" } & TalkKeyStatus;

export type UiEvent = EngineEvent | AppEvent;

export type AudioDevices = { 
/**
 * Microphones (PulseAudio sources, the monitors of outputs among
 * them).
 */
inputs: Array<DeviceInfo>, 
/**
 * Speakers (PulseAudio sinks).
 */
outputs: Array<DeviceInfo>, 
/**
 * The microphone chosen; `None`: the system's default.
 */
input: string | null, 
/**
 * The speaker chosen; `None`: the system's default.
 */
output: string | null, 
/**
 * Why there is nothing to choose from (no PulseAudio server: the
 * default devices are used), for people.
 */
problem: string | null, };

export type UiErrorCode = "invalid" | "not_connected" | "refused" | "certificate" | "unreachable" | "cancelled" | "keyring" | "device" | "internal";

export type UiError = { 
/**
 * What kind of failure, for the window to act on.
 */
code: UiErrorCode, 
/**
 * What happened, for people.
 */
message: string, };
