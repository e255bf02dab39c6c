//! Fuzzing harnesses over the server's input handling, for the `cargo fuzz`
//! targets in `fuzz/` (feature `fuzz`) and for the tests that replay their
//! committed corpora and regressions (`fuzz/corpus/<target>`,
//! `fuzz/regressions/<target>`). Each takes arbitrary bytes, never panics
//! on any of them, and asserts the invariants that hold for every input.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    time::{Duration, Instant},
};

use squawk_floor::FloorConfig;
use squawk_protocol::{ChannelName, ClientId, ClientMessage, Priority, ServerMessage};
use tokio::sync::mpsc;

use crate::{
    accounts::Identity,
    hub::{Hub, HubConfig, HubInput, HubOutput},
    session::{Inbound, inbound},
    sfu::{ChanId, WorkerCmd, WorkerEvent, peer::Peer, router::Router},
};

/// Reads a fuzzer's bytes as a sequence of small decisions.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length-prefixed piece of text (one byte of length, ×4).
    fn text(&mut self) -> String {
        let n = usize::from(self.byte().unwrap_or(0)) * 4;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
}

const CLIENTS: u8 = 4;
const WORKERS: usize = 2;
const CHANNELS: [&str; 3] = ["ops", "fire", "ems"];

fn channel(b: u8) -> ChannelName {
    let name = CHANNELS[usize::from(b) % CHANNELS.len()];
    // The names above are valid channel names.
    ChannelName::new(name).unwrap_or_else(|_| unreachable!("{name} is a valid channel name"))
}

/// A protocol message built from a few bytes: lets the fuzzer reach deep
/// hub states without having to discover JSON.
fn message(b: &mut Bytes<'_>) -> ClientMessage {
    let kind = b.byte().unwrap_or(0);
    let arg = b.byte().unwrap_or(0);
    let ch = channel(arg);
    let other = ClientId::from(arg >> 4);
    match kind % 13 {
        0 => ClientMessage::Join { channel: ch },
        1 => ClientMessage::Leave { channel: ch },
        2 => ClientMessage::FloorRequest {
            channel: ch,
            priority: Priority(arg & 0xf0),
            queue: arg & 1 == 1,
        },
        3 => ClientMessage::FloorRelease { channel: ch },
        4 => ClientMessage::ListChannels,
        5 => ClientMessage::Emergency { channel: ch },
        6 => ClientMessage::EmergencyCancel {
            channel: ch,
            originator: (arg & 8 == 8).then_some(other),
        },
        7 => ClientMessage::EmergencyAck {
            channel: ch,
            originator: other,
        },
        8 => ClientMessage::Patch {
            channels: (0..2 + (arg >> 7))
                .map(|i| channel(arg.wrapping_add(i)))
                .collect(),
        },
        9 => ClientMessage::Unpatch { channel: ch },
        10 => ClientMessage::Mute {
            channel: ch,
            muted: arg & 1 == 1,
        },
        11 => ClientMessage::Offer { sdp: b.text() },
        _ => ClientMessage::Answer { sdp: b.text() },
    }
}

/// The hub as its sessions and workers drive it.
struct Rig {
    now: Instant,
    hub: Hub,
    routers: Vec<Router>,
    /// Connected clients.
    connected: BTreeSet<ClientId>,
    /// The downlink `mid` of each channel a client was told it joined (by
    /// `joined`) and has not left.
    joined: BTreeMap<(ClientId, ChannelName), String>,
    /// Track requests the workers have not answered: (client, chan, token).
    pending: Vec<(ClientId, ChanId, u64)>,
    /// Every message sent: (client, `type`).
    log: Vec<(ClientId, &'static str)>,
}

impl Rig {
    fn new() -> Self {
        Self {
            now: Instant::now(),
            hub: Hub::new(HubConfig {
                floor: FloorConfig::default(),
                workers: WORKERS,
                channels: vec![channel(0)],
                create_channels_on_join: true,
                max_channels_per_client: 2,
                max_members_per_channel: 3,
                emergency_priority: Duration::from_secs(300),
            }),
            routers: (0..WORKERS).map(|w| Router::new(w, WORKERS)).collect(),
            connected: BTreeSet::new(),
            joined: BTreeMap::new(),
            pending: Vec::new(),
            log: Vec::new(),
        }
    }

    fn handle(&mut self, input: HubInput) {
        if let HubInput::Connect { client, .. } = &input {
            self.connected.insert(*client);
        }
        if let HubInput::Disconnect { client } = &input {
            self.connected.remove(client);
            self.joined.retain(|(c, _), _| c != client);
            self.pending.retain(|(c, _, _)| c != client);
        }
        self.hub.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.hub.poll_output() {
            match out {
                HubOutput::Send { client, msg } => self.sent(client, msg),
                HubOutput::Worker { worker, cmd } => {
                    assert!(worker < WORKERS, "command for worker {worker}");
                    match cmd {
                        WorkerCmd::AddTrack {
                            client,
                            chan,
                            token,
                        } => {
                            assert!(self.connected.contains(&client), "track for a gone client");
                            self.pending.push((client, chan, token));
                        }
                        WorkerCmd::RemoveTrack { client, chan } => {
                            self.pending.retain(|p| (p.0, p.1) != (client, chan));
                        }
                        // The table sent again to a restarted worker.
                        WorkerCmd::Route(update) => self.routers[worker].apply(update),
                        _ => {}
                    }
                }
                HubOutput::Route(update) => {
                    for r in &mut self.routers {
                        r.apply(update);
                    }
                }
            }
        }
    }

    /// Every message goes to a connected client and reads back as sent:
    /// what the server writes, its clients can parse.
    fn sent(&mut self, client: ClientId, msg: ServerMessage) {
        assert!(
            self.connected.contains(&client),
            "message to client {client}, which is not connected: {msg:?}"
        );
        self.log.push((client, msg.variant()));
        let json = msg.to_json();
        match ServerMessage::from_json(&json) {
            Ok(back) => assert_eq!(back, msg, "{json}"),
            Err(e) => panic!("the server sent what a client cannot parse ({e}): {json}"),
        }
        match msg {
            // A repeated `joined` (a join of a channel already joined) names
            // the same downlink track: the track changes only after `left`.
            ServerMessage::Joined { channel, mid, .. } => {
                if let Some(before) = self.joined.insert((client, channel.clone()), mid.clone()) {
                    assert_eq!(before, mid, "{channel}'s track changed without a `left`");
                }
            }
            ServerMessage::Left { channel, .. } => {
                self.joined.remove(&(client, channel));
            }
            // The server closes the connection after a fatal error.
            ServerMessage::Error { code, .. } if code.is_fatal() => {
                self.connected.remove(&client);
                self.joined.retain(|(c, _), _| *c != client);
                self.pending.retain(|(c, _, _)| *c != client);
            }
            _ => {}
        }
    }

    /// Lets `by` pass, firing each timer at its own time (the drive rule:
    /// a timeout handled at its deadline moves the next one later).
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(due) = self.hub.poll_timeout().filter(|&d| d <= end) {
            self.now = due.max(self.now);
            self.hub.handle(self.now, HubInput::Timeout);
            self.drain();
            let next = self.hub.poll_timeout();
            assert!(
                next.is_none_or(|n| n > self.now),
                "the timeout at {due:?} was handled but is still due"
            );
        }
        self.now = end;
    }
}

/// The server's per-connection message handling, several connections at
/// once: text frames through the session's own parsing ([`inbound`]),
/// messages built from bytes, disconnects, time passing and the workers'
/// reports (tracks ready, links, SDP errors), all into the hub, whose
/// routing updates go to one router per worker.
///
/// Invariants: nothing panics; the hub writes only to connected clients
/// (not to one that is gone, whatever a worker reports late for it), and
/// only messages that parse back to themselves; a client's track in a
/// channel changes only after `left`; a timeout handled at its deadline is
/// no longer due.
pub fn session(data: &[u8]) {
    let mut b = Bytes(data);
    let mut rig = Rig::new();
    let mut identified = [false; CLIENTS as usize];
    while let Some(op) = b.byte() {
        step(&mut rig, &mut identified, op, &mut b);
    }
}

/// One operation of [`session`]: `op`'s high bits pick the client, its low
/// four bits what happens; further bytes come from `b`.
fn step(rig: &mut Rig, identified: &mut [bool; CLIENTS as usize], op: u8, b: &mut Bytes<'_>) {
    let who = (op >> 4) & 0x03;
    let client = ClientId::from(who);
    let slot = usize::from(who);
    match op & 0x0f {
        // A text frame as the connection's task reads it.
        0..=3 => {
            let text = b.text();
            match inbound(&text, identified[slot]) {
                Inbound::Message(msg) => rig.handle(HubInput::Message { client, msg }),
                Inbound::Hello { name, .. } => {
                    identified[slot] = true;
                    rig.handle(HubInput::Connect {
                        client,
                        name,
                        identity: Identity::Open,
                        ice_servers: Vec::new(),
                    });
                }
                Inbound::Reply(msg) => {
                    assert!(matches!(msg, ServerMessage::Error { .. }), "{msg:?}");
                }
            }
        }
        // A valid hello.
        4 => {
            if !identified[slot] {
                identified[slot] = true;
                rig.handle(HubInput::Connect {
                    client,
                    name: format!("c{who}"),
                    identity: Identity::Open,
                    ice_servers: Vec::new(),
                });
            }
        }
        5..=8 => {
            let msg = message(b);
            if identified[slot] {
                rig.handle(HubInput::Message { client, msg });
            }
        }
        9 => {
            if std::mem::take(&mut identified[slot]) {
                rig.handle(HubInput::Disconnect { client });
            }
        }
        10 => {
            let ms = u64::from(b.byte().unwrap_or(0));
            rig.advance(Duration::from_millis(ms * ms * 4));
        }
        // A worker answers a track request (oldest or any).
        11 | 12 => {
            let pick = usize::from(b.byte().unwrap_or(0));
            if !rig.pending.is_empty() {
                let i = pick % rig.pending.len();
                let (client, chan, token) = rig.pending.remove(i);
                rig.handle(HubInput::Worker(WorkerEvent::TrackReady {
                    client,
                    chan,
                    mid: chan.0.to_string(),
                    token,
                }));
            }
        }
        // Worker reports, also late ones for a connection that is gone.
        13 => {
            let up = b.byte().unwrap_or(0) & 1 == 1;
            rig.handle(HubInput::Worker(WorkerEvent::Link { client, up }));
        }
        14 => {
            let pick = b.byte().unwrap_or(1);
            if pick & 0x0f == 0 {
                // A worker fails (1 in 16): its connections are closed.
                let worker = usize::from(pick >> 4) % WORKERS;
                rig.routers[worker] = Router::new(worker, WORKERS);
                rig.handle(HubInput::Worker(WorkerEvent::Failed { worker }));
            } else {
                rig.handle(HubInput::Worker(WorkerEvent::Error {
                    client,
                    code: squawk_protocol::ErrorCode::InvalidSdp,
                    message: "cannot parse offer".into(),
                }));
            }
        }
        _ => {
            let (offer, sdp) = (b.byte().unwrap_or(0) & 1 == 1, b.text());
            let ev = if offer {
                WorkerEvent::Offer { client, sdp }
            } else {
                WorkerEvent::Answer { client, sdp }
            };
            rig.handle(HubInput::Worker(ev));
        }
    }
}

/// The SFU's SDP handling for one connection ([`Peer`]: the client's
/// offers and answers, tracks added and removed as channels are joined
/// and left), with SDP text from the fuzzer.
///
/// Invariants: nothing panics; every event concerns this client; a track
/// asked for is reported ready with its token at most once.
pub fn sdp(data: &[u8]) {
    let mut b = Bytes(data);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let candidate = SocketAddr::from(([127, 0, 0, 1], 7400));
    let now = Instant::now();
    let mut peer = Peer::new(7, tx, candidate, 2, now);
    let mut tokens = BTreeSet::new();
    let mut next_token = 0u64;
    while let Some(op) = b.byte() {
        match op % 5 {
            0 | 1 => peer.on_offer(now, &b.text()),
            2 => peer.on_answer(&b.text()),
            3 => {
                next_token += 1;
                peer.add_track(ChanId(u32::from(op >> 3)), next_token);
            }
            _ => peer.remove_track(ChanId(u32::from(op >> 3))),
        }
        while let Ok(ev) = rx.try_recv() {
            match ev {
                WorkerEvent::TrackReady { client, token, .. } => {
                    assert_eq!(client, 7);
                    assert!(tokens.insert(token), "token {token} reported ready twice");
                }
                WorkerEvent::Answer { client, .. }
                | WorkerEvent::Offer { client, .. }
                | WorkerEvent::Error { client, .. }
                | WorkerEvent::Link { client, .. } => assert_eq!(client, 7),
                WorkerEvent::Failed { .. } => panic!("a peer reported a worker failure"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use squawk_protocol::fuzz::replay;

    use super::*;

    #[test]
    fn session_corpus_replays() {
        let n = replay("session", session);
        assert!(n >= 10, "the session corpus has {n} inputs");
    }

    #[test]
    fn sdp_corpus_replays() {
        let n = replay("sdp", sdp);
        assert!(n >= 10, "the sdp corpus has {n} inputs");
    }

    /// The rig with a scripted input: what the hub sent whom.
    fn script(data: &[u8]) -> Rig {
        let mut rig = Rig::new();
        let mut b = Bytes(data);
        let mut identified = [false; CLIENTS as usize];
        while let Some(op) = b.byte() {
            step(&mut rig, &mut identified, op, &mut b);
        }
        rig
    }

    #[test]
    fn a_scripted_session_reaches_the_floor_and_late_entry() {
        // For each of clients 0 and 1: hello, join ops, an (empty) offer,
        // its track ready, its link up. Then 0 requests the floor, and
        // client 2 enters late.
        let mut data = Vec::new();
        for who in [0u8, 1] {
            let w = who << 4;
            data.extend([w | 4, w | 5, 0, 0, w | 5, 11, 0, 0, 11, 0, w | 13, 1]);
        }
        data.extend([0x05, 2, 0, 0x0a, 5]);
        data.extend([0x24, 0x25, 0, 0, 0x25, 11, 0, 0, 11, 0, 0x2d, 1]);
        let rig = script(&data);
        let ops = channel(0);
        for who in 0..3 {
            assert!(
                rig.joined.contains_key(&(who, ops.clone())),
                "{who} joined ops"
            );
        }
        assert!(rig.log.contains(&(0, "floor_granted")), "{:?}", rig.log);
        // Late entry: 2 learns who talks.
        assert!(rig.log.contains(&(2, "floor_taken")), "{:?}", rig.log);
    }
}
