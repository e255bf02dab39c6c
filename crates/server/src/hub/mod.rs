//! The control plane as a sans-IO state machine: sessions, channels,
//! membership, presence and one [`Floor`] per channel.
//!
//! Drive rule (str0m's): feed one [`HubInput`] with [`Hub::handle`], then
//! drain [`Hub::poll_output`] until it returns `None`; feed
//! [`HubInput::Timeout`] no later than [`Hub::poll_timeout`]. Time is always
//! passed in; the hub has no sockets, tasks, locks or clock, and is the only
//! source of messages to clients ([`HubOutput::Send`]), so their order is
//! the order of its decisions.
//!
//! A join is two steps. On `join` the connection becomes a member at once
//! (the others get `member_joined`, its Floor Requests are accepted, the
//! workers route the channel's audio to it) and its worker is asked for a
//! downlink track. When the worker reports the track ready, the joiner gets
//! `joined` (the full member list and the track's `mid`) and, when somebody
//! talks, `floor_taken` right after it (late entry). Presence deltas and
//! floor messages of the channel reach a member only after its `joined`.
//!
//! Emergencies (after TS 24.379 §6.2.8) are channel state: raised by a
//! member, acknowledged by another, cancelled by the originator (or by
//! anyone once the originator has left). Every member is told of each
//! change, and a member that joins later gets the active ones right after
//! `joined`. For [`HubConfig::emergency_priority`] after raising it, the
//! originator's Floor Requests in that channel carry
//! [`Priority::EMERGENCY`], whatever they asked for.
//!
//! A patch joins channels under one floor, the *lead*'s: a request in any
//! of them goes to it, and its actions go to the members of all of them
//! (each message with the member's own channel name), while the routers
//! get the talker for every channel of the patch.

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use squawk_floor::{Floor, FloorAction, FloorConfig, FloorInput, FloorState};
use squawk_protocol::{
    ChannelInfo, ChannelName, ClientId, ClientMessage, DenyReason, ErrorCode, IceServer, Member,
    PROTOCOL_VERSION, Priority, ServerMessage,
};

use crate::{
    accounts::{Directory, Identity, Rights},
    logs::limited,
    sfu::{ChanId, RouteUpdate, WorkerCmd, WorkerEvent},
};

/// What the hub is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HubInput {
    /// A connection said a valid `hello` (version and name checked, password
    /// or token accepted); `identity` is who it is for the rights.
    Connect {
        client: ClientId,
        name: String,
        identity: Identity,
        /// STUN/TURN servers for its `welcome` (TURN credentials made at
        /// the edge, where the wall clock is).
        ice_servers: Vec<IceServer>,
    },
    /// The accounts directory changed: rights are evaluated again for every
    /// connection (a member who lost `listen` is removed from the channel
    /// and told why, one who lost `talk` loses the floor).
    Directory(Arc<Directory>),
    /// A message from a connected client, never `hello`.
    Message {
        client: ClientId,
        msg: ClientMessage,
    },
    /// The connection ended (closed, timed out, failed or too slow).
    Disconnect { client: ClientId },
    /// An SFU worker's report.
    Worker(WorkerEvent),
    /// Time passed: fire due timers (floor talk time).
    Timeout,
}

/// What the hub wants done, in order.
#[derive(Debug)]
pub(crate) enum HubOutput {
    /// Queue `msg` for `client`.
    Send {
        client: ClientId,
        msg: ServerMessage,
    },
    /// Command worker `worker`.
    Worker { worker: usize, cmd: WorkerCmd },
    /// Update every worker's routing table.
    Route(RouteUpdate),
}

/// The hub's policy.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    /// Floor control policy of every channel.
    pub floor: FloorConfig,
    /// Number of SFU workers (connections are homed on them, see [`Hub::home`]).
    pub workers: usize,
    /// Channels that always exist.
    pub channels: Vec<ChannelName>,
    /// Whether a join of an unknown channel creates it.
    pub create_channels_on_join: bool,
    /// Most channels per connection (`too_many_channels`).
    pub max_channels_per_client: usize,
    /// Most members per channel (`channel_full`).
    pub max_members_per_channel: usize,
    /// How long after raising an emergency the originator's Floor Requests
    /// in that channel get [`Priority::EMERGENCY`].
    pub emergency_priority: Duration,
}

/// A connection's standing in one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Membership {
    /// Member; waiting for the worker's downlink track (`token` matches the
    /// [`WorkerEvent::TrackReady`] that completes the join).
    Joining { token: u64 },
    /// Member and told so (`joined` sent with this `mid`).
    Joined { mid: String },
}

struct Session {
    name: String,
    identity: Identity,
    /// The SFU worker holding this connection's media, chosen at its first
    /// offer (see [`Hub::home`]); `None` before.
    worker: Option<usize>,
    channels: BTreeMap<ChanId, Membership>,
    /// Channels whose downlink this connection paused (`mute`).
    muted: BTreeSet<ChanId>,
    media_up: bool,
    /// The connection is gone and its channels are being left: it is sent
    /// nothing more (the floors it held move on among the others).
    gone: bool,
}

/// An active emergency in a channel.
#[derive(Debug, Clone)]
struct Emergency {
    originator: Member,
    since: Instant,
    acked_by: Option<Member>,
}

impl Emergency {
    fn message(&self, now: Instant, channel: ChannelName) -> ServerMessage {
        ServerMessage::Emergency {
            channel,
            originator: self.originator.clone(),
            age_ms: now.saturating_duration_since(self.since).as_millis() as u64,
            acked_by: self.acked_by.clone(),
        }
    }
}

struct Channel {
    name: ChannelName,
    fixed: bool,
    members: BTreeSet<ClientId>,
    floor: Floor<ClientId>,
    /// The floor's deadline as filed in [`Hub::deadlines`].
    deadline: Option<Instant>,
    /// Active emergencies, oldest first; one per originator.
    emergencies: Vec<Emergency>,
    /// The channel whose floor this one uses: itself, or its patch's lead.
    lead: ChanId,
    /// On a patch's lead: the patch.
    patch: Option<Patch>,
}

/// Channels patched together: one floor (the lead's), every talker heard
/// in all of them.
#[derive(Debug, Clone)]
struct Patch {
    /// The lead first.
    channels: Vec<ChanId>,
    by: Member,
}

/// The control plane. See the module docs.
pub(crate) struct Hub {
    config: HubConfig,
    sessions: HashMap<ClientId, Session>,
    channels: HashMap<ChanId, Channel>,
    by_name: HashMap<ChannelName, ChanId>,
    next_chan: u32,
    next_token: u64,
    /// Connections per worker.
    load: Vec<usize>,
    /// Floor deadlines of all channels, earliest first.
    deadlines: BTreeSet<(Instant, ChanId)>,
    /// Users, channel records and grants (empty: an open server).
    dir: Arc<Directory>,
    out: VecDeque<HubOutput>,
    /// Floor outcomes so far, for `/metrics`.
    floor_counts: FloorCounts,
}

/// Floor outcomes counted since the start (TS 24.380 message kinds sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FloorCounts {
    /// Floor Granted sent.
    pub(crate) granted: u64,
    /// Floor Deny sent, by reason.
    pub(crate) denied: HashMap<squawk_protocol::DenyReason, u64>,
    /// Floor Revoke sent, by reason.
    pub(crate) revoked: HashMap<squawk_protocol::RevokeReason, u64>,
}

/// What the hub reports to `/metrics`: gauges now, counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HubMetrics {
    /// Connections that said a valid `hello`.
    pub(crate) connections: u64,
    /// Channels that exist (fixed or with members).
    pub(crate) channels: u64,
    /// Floor outcomes.
    pub(crate) floor: FloorCounts,
}

impl Hub {
    /// A hub with the configured fixed channels and nobody connected.
    pub(crate) fn new(config: HubConfig) -> Self {
        let mut hub = Self {
            load: vec![0; config.workers.max(1)],
            config,
            sessions: HashMap::new(),
            channels: HashMap::new(),
            by_name: HashMap::new(),
            next_chan: 1,
            next_token: 1,
            deadlines: BTreeSet::new(),
            dir: Arc::default(),
            out: VecDeque::new(),
            floor_counts: FloorCounts::default(),
        };
        for name in hub.config.channels.clone() {
            hub.create_channel(name, true);
        }
        hub
    }

    /// When [`HubInput::Timeout`] must be fed next, if a timer runs.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The next thing to do, in order.
    pub(crate) fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    /// Feeds one input at time `now`.
    pub(crate) fn handle(&mut self, now: Instant, input: HubInput) {
        match input {
            HubInput::Connect {
                client,
                name,
                identity,
                ice_servers,
            } => self.connect(client, name, identity, ice_servers),
            HubInput::Directory(dir) => self.directory(now, dir),
            HubInput::Message { client, msg } => self.message(now, client, msg),
            HubInput::Disconnect { client } => self.disconnect(now, client),
            HubInput::Worker(event) => self.worker_event(now, event),
            HubInput::Timeout => {
                while let Some(&(t, chan)) = self.deadlines.first() {
                    if t > now {
                        break;
                    }
                    self.deadlines.pop_first();
                    if let Some(c) = self.channels.get_mut(&chan) {
                        c.deadline = None;
                    }
                    self.floor_input(now, chan, FloorInput::Tick);
                }
            }
        }
    }

    /// Queues `msg` for `client`, if it is connected: never to a connection
    /// that is gone or going (a worker's late answer, the Floor Idle of a
    /// floor it held; the `session` fuzz target found both).
    fn send(&mut self, client: ClientId, msg: ServerMessage) {
        if self.sessions.get(&client).is_none_or(|s| s.gone) {
            return;
        }
        match &msg {
            ServerMessage::FloorGranted { .. } => self.floor_counts.granted += 1,
            ServerMessage::FloorDeny { reason, .. } => {
                *self.floor_counts.denied.entry(*reason).or_default() += 1;
            }
            ServerMessage::FloorRevoke { reason, .. } => {
                *self.floor_counts.revoked.entry(*reason).or_default() += 1;
            }
            _ => {}
        }
        self.out.push_back(HubOutput::Send { client, msg });
    }

    /// Gauges and counters for `/metrics`.
    pub(crate) fn metrics(&self) -> HubMetrics {
        HubMetrics {
            connections: self.sessions.len() as u64,
            channels: self.channels.len() as u64,
            floor: self.floor_counts.clone(),
        }
    }

    fn error(&mut self, client: ClientId, code: ErrorCode, message: String) {
        self.send(client, ServerMessage::error(code, message));
    }

    /// What `client` may do in `channel`.
    fn rights(&self, client: ClientId, channel: &ChannelName) -> Rights {
        self.sessions
            .get(&client)
            .map_or(Rights::NONE, |s| self.dir.rights(&s.identity, channel))
    }

    /// A new directory: every membership is checked against it.
    fn directory(&mut self, now: Instant, dir: Arc<Directory>) {
        self.dir = dir;
        // A channel's floor policy as its record now says (from the next
        // request or grant on).
        for c in self.channels.values_mut() {
            let policy = self.dir.floor_config(&c.name, self.config.floor);
            if c.floor.config() != policy {
                c.floor.set_config(policy);
            }
        }
        // A disabled or deleted account is disconnected: told why (a fatal
        // `unauthorized`, so clients do not reconnect), then gone at once,
        // its floors and memberships with it.
        let mut banned: Vec<ClientId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !self.dir.may_connect(&s.identity))
            .map(|(c, _)| *c)
            .collect();
        banned.sort_unstable();
        for client in banned {
            self.error(
                client,
                ErrorCode::Unauthorized,
                "your account was disabled or deleted: disconnected".into(),
            );
            self.disconnect(now, client);
        }
        let mut lost: Vec<(ClientId, ChanId, bool)> = Vec::new();
        for (client, s) in &self.sessions {
            for chan in s.channels.keys() {
                let Some(c) = self.channels.get(chan) else {
                    continue;
                };
                let r = self.dir.rights(&s.identity, &c.name);
                if !r.listen {
                    lost.push((*client, *chan, true));
                } else if !r.talk {
                    lost.push((*client, *chan, false));
                }
            }
        }
        for (client, chan, listen) in lost {
            let Some(name) = self.channels.get(&chan).map(|c| c.name.clone()) else {
                continue;
            };
            if listen {
                self.error(
                    client,
                    ErrorCode::NotAuthorized,
                    format!("removed from {name}: your account may no longer listen there"),
                );
                self.leave(now, client, chan, true);
            } else {
                // No talk right: its floor (held or queued) goes.
                let lead = self.lead_of(chan);
                self.floor_input(now, lead, FloorInput::Left { who: client });
            }
        }
    }

    fn connect(
        &mut self,
        client: ClientId,
        name: String,
        identity: Identity,
        ice_servers: Vec<IceServer>,
    ) {
        if self.sessions.contains_key(&client) {
            return;
        }
        limited!(info, client, %name, "hello");
        self.sessions.insert(
            client,
            Session {
                name,
                identity,
                worker: None,
                channels: BTreeMap::new(),
                muted: BTreeSet::new(),
                media_up: false,
                gone: false,
            },
        );
        self.send(
            client,
            ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                client_id: client,
                max_talk_ms: self.config.floor.max_talk.as_millis() as u64,
                ice_servers,
            },
        );
    }

    /// The worker of `client`'s media, chosen at its first offer.
    ///
    /// Channel-affine homing: a connection goes to the worker that already
    /// holds most of the media of the members of the channels it joined
    /// (ties to the less loaded), so that a channel's talker and listeners
    /// share one worker and its packets never cross threads; a connection
    /// with no such co-member (it offered before joining, or is a channel's
    /// first) goes to the least loaded worker. On homing the worker gets
    /// the peer, then the routes and tracks of the channels joined so far.
    fn home(&mut self, client: ClientId) -> usize {
        let Some(session) = self.sessions.get(&client) else {
            return 0;
        };
        if let Some(worker) = session.worker {
            return worker;
        }
        let mut with = vec![0usize; self.load.len()];
        for chan in session.channels.keys() {
            let Some(c) = self.channels.get(chan) else {
                continue;
            };
            for id in &c.members {
                if let Some(w) = self.sessions.get(id).and_then(|s| s.worker) {
                    with[w] += 1;
                }
            }
        }
        // Most co-members, then least loaded, then the lowest index.
        let worker = (0..self.load.len())
            .min_by_key(|w| (std::cmp::Reverse(with[*w]), self.load[*w]))
            .unwrap_or(0);
        self.load[worker] += 1;
        self.out.push_back(HubOutput::Worker {
            worker,
            cmd: WorkerCmd::AddPeer { client },
        });
        let Some(session) = self.sessions.get_mut(&client) else {
            return worker;
        };
        session.worker = Some(worker);
        for (chan, membership) in &session.channels {
            let chan = *chan;
            self.out.push_back(HubOutput::Route(RouteUpdate::Listen {
                chan,
                client,
                worker,
            }));
            if session.muted.contains(&chan) {
                self.out.push_back(HubOutput::Route(RouteUpdate::Pause {
                    chan,
                    client,
                    worker,
                    paused: true,
                }));
            }
            if let Membership::Joining { token } = membership {
                self.out.push_back(HubOutput::Worker {
                    worker,
                    cmd: WorkerCmd::AddTrack {
                        client,
                        chan,
                        token: *token,
                    },
                });
            }
        }
        limited!(debug, client, worker, "media homed");
        worker
    }

    fn disconnect(&mut self, now: Instant, client: ClientId) {
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        session.gone = true;
        let worker = session.worker;
        let chans: Vec<ChanId> = session.channels.keys().copied().collect();
        for chan in chans {
            self.leave(now, client, chan, false);
        }
        if let Some(worker) = worker {
            self.out.push_back(HubOutput::Worker {
                worker,
                cmd: WorkerCmd::RemovePeer { client },
            });
            if let Some(n) = self.load.get_mut(worker) {
                *n = n.saturating_sub(1);
            }
        }
        self.sessions.remove(&client);
        limited!(info, client, "gone");
    }

    /// Worker `worker` failed and restarted empty: the connections it held
    /// are told (`media_failed`, fatal: they connect again) and are gone at
    /// once, their floors and memberships with them; then the restarted
    /// worker gets the routing table of every other connection, whole.
    /// Connections on the other workers keep talking and listening.
    fn worker_failed(&mut self, now: Instant, worker: usize) {
        let mut lost: Vec<ClientId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.worker == Some(worker) && !s.gone)
            .map(|(c, _)| *c)
            .collect();
        lost.sort_unstable();
        limited!(
            error,
            worker,
            connections = lost.len(),
            "sfu worker failed: closing its connections (media_failed)"
        );
        // All are told first and then gone together, so that none is sent
        // the others' departures before its own error.
        for &client in &lost {
            self.error(
                client,
                ErrorCode::MediaFailed,
                "the server's media worker for this connection failed: connect again".into(),
            );
        }
        for client in &lost {
            if let Some(s) = self.sessions.get_mut(client) {
                s.gone = true;
            }
        }
        for client in lost {
            self.disconnect(now, client);
        }
        let mut routes = vec![RouteUpdate::Reset];
        let mut chans: Vec<ChanId> = self.channels.keys().copied().collect();
        chans.sort_unstable();
        for chan in chans {
            let Some(c) = self.channels.get(&chan) else {
                continue;
            };
            for &client in &c.members {
                let Some(s) = self.sessions.get(&client).filter(|s| !s.gone) else {
                    continue;
                };
                let Some(w) = s.worker else {
                    continue; // routed when it is homed
                };
                routes.push(RouteUpdate::Listen {
                    chan,
                    client,
                    worker: w,
                });
                if s.muted.contains(&chan) {
                    routes.push(RouteUpdate::Pause {
                        chan,
                        client,
                        worker: w,
                        paused: true,
                    });
                }
            }
            let talker = self
                .channels
                .get(&c.lead)
                .and_then(|l| match l.floor.state() {
                    FloorState::Taken { holder, .. } => Some(holder),
                    FloorState::Idle => None,
                });
            if talker.is_some() {
                routes.push(RouteUpdate::Talker { chan, talker });
            }
        }
        self.out
            .extend(routes.into_iter().map(|update| HubOutput::Worker {
                worker,
                cmd: WorkerCmd::Route(update),
            }));
    }

    fn worker_event(&mut self, now: Instant, event: WorkerEvent) {
        match event {
            WorkerEvent::Link { client, up } => {
                let Some(s) = self.sessions.get_mut(&client) else {
                    return;
                };
                s.media_up = up;
                if !up {
                    // Without media the holder cannot talk: free its floors.
                    let chans: Vec<ChanId> = s.channels.keys().copied().collect();
                    for chan in chans {
                        self.floor_input(now, chan, FloorInput::Left { who: client });
                    }
                }
            }
            WorkerEvent::Answer { client, sdp } => {
                self.send(client, ServerMessage::Answer { sdp });
            }
            WorkerEvent::Offer { client, sdp } => {
                self.send(client, ServerMessage::Offer { sdp });
            }
            WorkerEvent::Error {
                client,
                code,
                message,
            } => self.error(client, code, message),
            WorkerEvent::Failed { worker } => self.worker_failed(now, worker),
            WorkerEvent::TrackReady {
                client,
                chan,
                mid,
                token,
            } => {
                let Some(s) = self.sessions.get_mut(&client) else {
                    return;
                };
                let Some(membership) = s.channels.get_mut(&chan) else {
                    return; // left before the track was ready
                };
                if *membership != (Membership::Joining { token }) {
                    return; // a stale report of an earlier join
                }
                *membership = Membership::Joined { mid: mid.clone() };
                self.send_joined(now, client, chan, mid);
            }
        }
    }

    /// `joined` with the full member list, then `floor_taken` when the
    /// floor is taken (late entry).
    fn send_joined(&mut self, now: Instant, client: ClientId, chan: ChanId, mid: String) {
        let Some(c) = self.channels.get(&chan) else {
            return;
        };
        let members: Vec<Member> = c
            .members
            .iter()
            .filter_map(|id| {
                self.sessions.get(id).map(|s| Member {
                    id: *id,
                    name: s.name.clone(),
                })
            })
            .collect();
        let channel = c.name.clone();
        let emergencies: Vec<ServerMessage> = c
            .emergencies
            .iter()
            .map(|e| e.message(now, channel.clone()))
            .collect();
        let lead = c.lead;
        let patched = self.patched_message(lead);
        let Some(floor) = self.channels.get(&lead).map(|l| &l.floor) else {
            return;
        };
        let taken = match floor.state() {
            FloorState::Taken {
                holder,
                priority,
                since,
                ..
            } if holder != client => Some((holder, priority, since)),
            _ => None,
        };
        self.send(
            client,
            ServerMessage::Joined {
                channel: channel.clone(),
                mid,
                members,
            },
        );
        if let Some((holder, priority, since)) = taken {
            let talker_name = self
                .sessions
                .get(&holder)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            self.send(
                client,
                ServerMessage::FloorTaken {
                    channel,
                    talker: holder,
                    talker_name,
                    priority,
                    held_ms: now.saturating_duration_since(since).as_millis() as u64,
                },
            );
        }
        for e in emergencies {
            self.send(client, e);
        }
        if let Some(p) = patched {
            self.send(client, p);
        }
    }

    /// `patched` for the patch led by `lead`, if it is one.
    fn patched_message(&self, lead: ChanId) -> Option<ServerMessage> {
        let patch = self.channels.get(&lead)?.patch.as_ref()?;
        Some(ServerMessage::Patched {
            channels: self.names(&patch.channels),
            by: patch.by.clone(),
        })
    }

    fn names(&self, chans: &[ChanId]) -> Vec<ChannelName> {
        chans
            .iter()
            .filter_map(|c| self.channels.get(c).map(|c| c.name.clone()))
            .collect()
    }

    fn lead_of(&self, chan: ChanId) -> ChanId {
        self.channels.get(&chan).map_or(chan, |c| c.lead)
    }

    /// The channels sharing `lead`'s floor: its patch, or itself alone.
    fn group(&self, lead: ChanId) -> Vec<ChanId> {
        self.channels
            .get(&lead)
            .and_then(|c| c.patch.as_ref())
            .map_or_else(|| vec![lead], |p| p.channels.clone())
    }

    /// The name of the channel of `lead`'s group that `client` is in (where
    /// its floor messages belong), else the lead's.
    fn name_for(&self, lead: ChanId, client: ClientId) -> ChannelName {
        let group = self.group(lead);
        let home = self
            .sessions
            .get(&client)
            .and_then(|s| group.iter().find(|c| s.channels.contains_key(c)))
            .copied()
            .unwrap_or(lead);
        self.channels
            .get(&home)
            .or_else(|| self.channels.get(&lead))
            .map(|c| c.name.clone())
            .unwrap_or_else(|| ChannelName::new("unknown").expect("a valid name"))
    }

    /// Members of any of `chans` told of their channel (`joined` sent),
    /// each once.
    fn joined_members_of(&self, chans: &[ChanId]) -> Vec<ClientId> {
        let mut seen = BTreeSet::new();
        for chan in chans {
            seen.extend(self.joined_members(*chan));
        }
        seen.into_iter().collect()
    }

    fn patch(&mut self, now: Instant, client: ClientId, names: Vec<ChannelName>) {
        let mut chans: Vec<ChanId> = Vec::new();
        for name in &names {
            let Some(chan) = self.member_or_error(client, name) else {
                return;
            };
            if !self.rights(client, name).dispatch {
                self.error(
                    client,
                    ErrorCode::NotAuthorized,
                    format!("your account may not patch {name} (no dispatch right)"),
                );
                return;
            }
            if !chans.contains(&chan) {
                chans.push(chan);
            }
        }
        if chans.len() < 2 {
            self.error(
                client,
                ErrorCode::InvalidPatch,
                "a patch needs two or more distinct channels".into(),
            );
            return;
        }
        let chan_state = |c: &ChanId| self.channels.get(c);
        let in_patch =
            |id: &&ChanId| chan_state(id).is_some_and(|c| c.lead != **id || c.patch.is_some());
        if let Some(name) = chans
            .iter()
            .find(in_patch)
            .and_then(&chan_state)
            .map(|c| c.name.clone())
        {
            self.error(
                client,
                ErrorCode::AlreadyPatched,
                format!("{name} is already in a patch"),
            );
            return;
        }
        let busy: Vec<ChanId> = chans
            .iter()
            .copied()
            .filter(|c| chan_state(c).is_some_and(|c| c.floor.state() != FloorState::Idle))
            .collect();
        if busy.len() > 1 {
            self.error(
                client,
                ErrorCode::FloorBusy,
                "more than one of these channels has someone talking; patch when at most one does"
                    .into(),
            );
            return;
        }
        // A talk in progress goes on, now heard in every channel.
        let lead = busy.first().copied().unwrap_or(chans[0]);
        chans.retain(|c| *c != lead);
        chans.insert(0, lead);
        for c in &chans {
            if let Some(ch) = self.channels.get_mut(c) {
                ch.lead = lead;
            }
        }
        let by = self.member(client);
        if let Some(l) = self.channels.get_mut(&lead) {
            l.patch = Some(Patch {
                channels: chans.clone(),
                by,
            });
        }
        limited!(info, client, channels = ?self.names(&chans), "patch");
        if let Some(msg) = self.patched_message(lead) {
            for id in self.joined_members_of(&chans) {
                self.send(id, msg.clone());
            }
        }
        let taken = self
            .channels
            .get(&lead)
            .and_then(|l| match l.floor.state() {
                FloorState::Taken {
                    holder,
                    priority,
                    since,
                    ..
                } => Some((holder, priority, since)),
                FloorState::Idle => None,
            });
        if let Some((holder, priority, since)) = taken {
            let held_ms = now.saturating_duration_since(since).as_millis() as u64;
            for &chan in &chans[1..] {
                self.out.push_back(HubOutput::Route(RouteUpdate::Talker {
                    chan,
                    talker: Some(holder),
                }));
            }
            self.announce_taken(&chans[1..], holder, priority, held_ms);
        }
    }

    /// Floor Taken by `holder` to the members of each of `chans` but the
    /// holder, each with its channel's name.
    fn announce_taken(
        &mut self,
        chans: &[ChanId],
        holder: ClientId,
        priority: Priority,
        held_ms: u64,
    ) {
        let talker_name = self.member(holder).name;
        for &chan in chans {
            let Some(channel) = self.channels.get(&chan).map(|c| c.name.clone()) else {
                continue;
            };
            self.send_to_joined_members(chan, Some(holder), || ServerMessage::FloorTaken {
                channel: channel.clone(),
                talker: holder,
                talker_name: talker_name.clone(),
                priority,
                held_ms,
            });
        }
    }

    fn unpatch(&mut self, client: ClientId, channel: ChannelName) {
        let Some(chan) = self.member_or_error(client, &channel) else {
            return;
        };
        let lead = self.lead_of(chan);
        let Some(l) = self.channels.get(&lead) else {
            return;
        };
        let Some(patch) = l.patch.clone() else {
            self.error(
                client,
                ErrorCode::NotPatched,
                format!("{channel} is in no patch"),
            );
            return;
        };
        if l.floor.state() != FloorState::Idle {
            self.error(
                client,
                ErrorCode::FloorBusy,
                format!("someone talks in the patch of {channel}; unpatch when the floor is idle"),
            );
            return;
        }
        let msg = ServerMessage::Unpatched {
            channels: self.names(&patch.channels),
            by: self.member(client),
        };
        for id in self.joined_members_of(&patch.channels) {
            self.send(id, msg.clone());
        }
        for c in &patch.channels {
            if let Some(ch) = self.channels.get_mut(c) {
                ch.lead = *c;
                ch.patch = None;
            }
        }
        limited!(info, client, %channel, "unpatch");
        // Channels that emptied while patched go now.
        for c in patch.channels {
            let gone = self
                .channels
                .get(&c)
                .is_some_and(|ch| ch.members.is_empty() && !ch.fixed);
            if gone {
                self.drop_channel(c);
            }
        }
    }

    fn drop_channel(&mut self, chan: ChanId) {
        if let Some(c) = self.channels.remove(&chan) {
            if let Some(d) = c.deadline {
                self.deadlines.remove(&(d, chan));
            }
            self.by_name.remove(&c.name);
            self.out
                .push_back(HubOutput::Route(RouteUpdate::DropChannel { chan }));
        }
    }

    fn member(&self, client: ClientId) -> Member {
        Member {
            id: client,
            name: self
                .sessions
                .get(&client)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
        }
    }

    /// `priority`, raised to emergency while `client` has an emergency of
    /// less than [`HubConfig::emergency_priority`] in `chan`.
    fn floor_priority(
        &self,
        now: Instant,
        chan: ChanId,
        client: ClientId,
        asked: Priority,
    ) -> Priority {
        let raised = self.channels.get(&chan).is_some_and(|c| {
            c.emergencies.iter().any(|e| {
                e.originator.id == client
                    && now.saturating_duration_since(e.since) < self.config.emergency_priority
            })
        });
        if raised { Priority::EMERGENCY } else { asked }
    }

    fn raise_emergency(&mut self, now: Instant, client: ClientId, chan: ChanId) {
        let originator = self.member(client);
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        let channel = c.name.clone();
        if let Some(e) = c.emergencies.iter().find(|e| e.originator.id == client) {
            // Already raised: the state again, to the sender only.
            let msg = e.message(now, channel);
            self.send(client, msg);
            return;
        }
        let e = Emergency {
            originator,
            since: now,
            acked_by: None,
        };
        let msg = e.message(now, channel.clone());
        c.emergencies.push(e);
        limited!(warn, client, %channel, "emergency raised");
        self.send_to_joined_members(chan, None, || msg.clone());
    }

    /// The channel's name and the index of `originator`'s emergency in
    /// `chan`, or an error `no_emergency` to `client`.
    fn find_emergency(
        &mut self,
        client: ClientId,
        chan: ChanId,
        originator: ClientId,
    ) -> Option<(ChannelName, usize)> {
        let c = self.channels.get(&chan)?;
        let channel = c.name.clone();
        match c
            .emergencies
            .iter()
            .position(|e| e.originator.id == originator)
        {
            Some(at) => Some((channel, at)),
            None => {
                self.error(
                    client,
                    ErrorCode::NoEmergency,
                    format!("no emergency of {originator} in {channel}"),
                );
                None
            }
        }
    }

    /// Whether `client` may act as a dispatcher in `chan` (acknowledge an
    /// emergency, cancel one whose originator left); tells it why not.
    fn may_dispatch(&mut self, client: ClientId, chan: ChanId, what: &str) -> bool {
        let Some(name) = self.channels.get(&chan).map(|c| c.name.clone()) else {
            return false;
        };
        if self.rights(client, &name).dispatch {
            return true;
        }
        self.error(
            client,
            ErrorCode::NotAuthorized,
            format!("your account may not {what} in {name} (no dispatch right)"),
        );
        false
    }

    fn ack_emergency(&mut self, client: ClientId, chan: ChanId, originator: ClientId) {
        let by = self.member(client);
        if !self.may_dispatch(client, chan, "acknowledge emergencies") {
            return;
        }
        let Some((channel, at)) = self.find_emergency(client, chan, originator) else {
            return;
        };
        let Some(e) = self.channels.get_mut(&chan).map(|c| &mut c.emergencies[at]) else {
            return;
        };
        if e.acked_by.is_some() {
            return; // the first acknowledgement stands
        }
        e.acked_by = Some(by.clone());
        limited!(info, client, %channel, originator, "emergency acknowledged");
        self.send_to_joined_members(chan, None, || ServerMessage::EmergencyAck {
            channel: channel.clone(),
            originator,
            by: by.clone(),
        });
    }

    fn cancel_emergency(&mut self, client: ClientId, chan: ChanId, originator: ClientId) {
        let by = self.member(client);
        let Some((channel, at)) = self.find_emergency(client, chan, originator) else {
            return;
        };
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        if originator != client && c.members.contains(&originator) {
            self.error(
                client,
                ErrorCode::NotOriginator,
                format!("only its originator may cancel this emergency in {channel}"),
            );
            return;
        }
        if originator != client && !self.may_dispatch(client, chan, "cancel others' emergencies") {
            return;
        }
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        c.emergencies.remove(at);
        limited!(info, client, %channel, originator, "emergency cancelled");
        self.send_to_joined_members(chan, None, || ServerMessage::EmergencyCancel {
            channel: channel.clone(),
            originator,
            by: by.clone(),
        });
    }

    fn mute(&mut self, client: ClientId, chan: ChanId, muted: bool) {
        let Some(s) = self.sessions.get_mut(&client) else {
            return;
        };
        let changed = if muted {
            s.muted.insert(chan)
        } else {
            s.muted.remove(&chan)
        };
        // Before its first offer the pause is sent when the connection is homed.
        if changed && let Some(worker) = s.worker {
            self.out.push_back(HubOutput::Route(RouteUpdate::Pause {
                chan,
                client,
                worker,
                paused: muted,
            }));
        }
        if let Some(c) = self.channels.get(&chan) {
            let channel = c.name.clone();
            self.send(client, ServerMessage::Muted { channel, muted });
        }
    }

    /// The channel id of `channel` when `client` is a member, else an error
    /// `not_member` to it.
    fn member_or_error(&mut self, client: ClientId, channel: &ChannelName) -> Option<ChanId> {
        let chan = self.member_of(client, channel);
        if chan.is_none() {
            self.error(
                client,
                ErrorCode::NotMember,
                format!("not in channel {channel}"),
            );
        }
        chan
    }

    fn message(&mut self, now: Instant, client: ClientId, msg: ClientMessage) {
        let Some(session) = self.sessions.get(&client) else {
            return;
        };
        let worker = session.worker;
        let media_up = session.media_up;
        match msg {
            ClientMessage::Hello { .. } => self.error(
                client,
                ErrorCode::AlreadyIdentified,
                "hello was already received".into(),
            ),
            ClientMessage::Join { channel } => self.join(now, client, channel),
            ClientMessage::Leave { channel } => match self.member_of(client, &channel) {
                Some(chan) => self.leave(now, client, chan, true),
                None => self.error(
                    client,
                    ErrorCode::NotMember,
                    format!("not in channel {channel}"),
                ),
            },
            ClientMessage::Offer { sdp } => {
                let worker = self.home(client);
                self.out.push_back(HubOutput::Worker {
                    worker,
                    cmd: WorkerCmd::Offer { client, sdp },
                });
            }
            ClientMessage::Answer { sdp } => match worker {
                Some(worker) => self.out.push_back(HubOutput::Worker {
                    worker,
                    cmd: WorkerCmd::Answer { client, sdp },
                }),
                None => self.error(
                    client,
                    ErrorCode::NegotiationFailed,
                    "an answer before any offer: send your offer first".into(),
                ),
            },
            ClientMessage::FloorRequest {
                channel,
                priority,
                queue,
            } => {
                let Some(chan) = self.member_of(client, &channel) else {
                    self.send(
                        client,
                        ServerMessage::FloorDeny {
                            channel,
                            reason: DenyReason::NotMember,
                        },
                    );
                    return;
                };
                let rights = self.rights(client, &channel);
                if !rights.talk {
                    self.send(
                        client,
                        ServerMessage::FloorDeny {
                            channel,
                            reason: DenyReason::NotAuthorized,
                        },
                    );
                    return;
                }
                if !media_up {
                    self.send(
                        client,
                        ServerMessage::FloorDeny {
                            channel,
                            reason: DenyReason::NoMedia,
                        },
                    );
                    return;
                }
                // Capped by the grants; an emergency still lifts it (below).
                let priority =
                    self.floor_priority(now, chan, client, priority.min(rights.max_priority));
                self.floor_input(
                    now,
                    chan,
                    FloorInput::Request {
                        who: client,
                        priority,
                        queue,
                    },
                );
            }
            ClientMessage::FloorRelease { channel } => match self.member_of(client, &channel) {
                Some(chan) => self.floor_input(now, chan, FloorInput::Release { who: client }),
                None => self.error(
                    client,
                    ErrorCode::NotMember,
                    format!("not in channel {channel}"),
                ),
            },
            ClientMessage::ListChannels => {
                let mut channels: Vec<ChannelInfo> = self
                    .channels
                    .values()
                    .map(|c| ChannelInfo {
                        name: c.name.clone(),
                        members: c.members.len(),
                        fixed: c.fixed,
                    })
                    .collect();
                channels.sort_by(|a, b| a.name.cmp(&b.name));
                self.send(client, ServerMessage::Channels { channels });
            }
            ClientMessage::Emergency { channel } => {
                if let Some(chan) = self.member_or_error(client, &channel) {
                    self.raise_emergency(now, client, chan);
                }
            }
            ClientMessage::EmergencyAck {
                channel,
                originator,
            } => {
                if let Some(chan) = self.member_or_error(client, &channel) {
                    self.ack_emergency(client, chan, originator);
                }
            }
            ClientMessage::EmergencyCancel {
                channel,
                originator,
            } => {
                if let Some(chan) = self.member_or_error(client, &channel) {
                    self.cancel_emergency(client, chan, originator.unwrap_or(client));
                }
            }
            ClientMessage::Patch { channels } => self.patch(now, client, channels),
            ClientMessage::Unpatch { channel } => self.unpatch(client, channel),
            ClientMessage::Mute { channel, muted } => {
                if let Some(chan) = self.member_or_error(client, &channel) {
                    self.mute(client, chan, muted);
                }
            }
        }
    }

    fn member_of(&self, client: ClientId, channel: &ChannelName) -> Option<ChanId> {
        let chan = *self.by_name.get(channel)?;
        self.sessions
            .get(&client)?
            .channels
            .contains_key(&chan)
            .then_some(chan)
    }

    fn create_channel(&mut self, name: ChannelName, fixed: bool) -> ChanId {
        let id = ChanId(self.next_chan);
        self.next_chan += 1;
        self.by_name.insert(name.clone(), id);
        let floor = Floor::new(self.dir.floor_config(&name, self.config.floor));
        self.channels.insert(
            id,
            Channel {
                name,
                fixed,
                members: BTreeSet::new(),
                floor,
                deadline: None,
                emergencies: Vec::new(),
                lead: id,
                patch: None,
            },
        );
        id
    }

    /// Members of `chan` told of it (`joined` sent).
    fn joined_members(&self, chan: ChanId) -> Vec<ClientId> {
        let Some(c) = self.channels.get(&chan) else {
            return Vec::new();
        };
        c.members
            .iter()
            .copied()
            .filter(|id| {
                self.sessions
                    .get(id)
                    .filter(|s| !s.gone)
                    .and_then(|s| s.channels.get(&chan))
                    .is_some_and(|m| matches!(m, Membership::Joined { .. }))
            })
            .collect()
    }

    /// Sends `msg` to every member of `chan` told of it (`joined` sent),
    /// except `except`.
    fn send_to_joined_members(
        &mut self,
        chan: ChanId,
        except: Option<ClientId>,
        msg: impl Fn() -> ServerMessage,
    ) {
        for id in self.joined_members(chan) {
            if Some(id) != except {
                self.out.push_back(HubOutput::Send {
                    client: id,
                    msg: msg(),
                });
            }
        }
    }

    fn join(&mut self, now: Instant, client: ClientId, channel: ChannelName) {
        let Some(session) = self.sessions.get(&client) else {
            return;
        };
        let existing = self.by_name.get(&channel).copied();
        if let Some(chan) = existing {
            match session.channels.get(&chan) {
                Some(Membership::Joined { mid }) => {
                    // Already a member: `joined` again, so the client can resync.
                    let mid = mid.clone();
                    self.send_joined(now, client, chan, mid);
                    return;
                }
                // `joined` is on its way.
                Some(Membership::Joining { .. }) => return,
                None => {}
            }
        }
        if !self.dir.rights(&session.identity, &channel).listen {
            self.error(
                client,
                ErrorCode::NotAuthorized,
                format!("your account may not listen to {channel}"),
            );
            return;
        }
        if session.channels.len() >= self.config.max_channels_per_client {
            let max = self.config.max_channels_per_client;
            self.error(
                client,
                ErrorCode::TooManyChannels,
                format!("at most {max} channels per connection"),
            );
            return;
        }
        let worker = session.worker;
        let name = session.name.clone();
        let chan = match existing {
            Some(chan) => chan,
            None if self.config.create_channels_on_join => {
                self.create_channel(channel.clone(), false)
            }
            None => {
                self.error(
                    client,
                    ErrorCode::ChannelNotFound,
                    format!("no channel {channel} on this server"),
                );
                return;
            }
        };
        let max = self.config.max_members_per_channel;
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        if c.members.len() >= max {
            self.error(
                client,
                ErrorCode::ChannelFull,
                format!("channel {channel} is full ({max} members)"),
            );
            return;
        }
        c.members.insert(client);
        let token = self.next_token;
        self.next_token += 1;
        if let Some(s) = self.sessions.get_mut(&client) {
            s.channels.insert(chan, Membership::Joining { token });
        }
        // Before its first offer, the route and the track wait for its homing.
        if let Some(worker) = worker {
            self.out.push_back(HubOutput::Route(RouteUpdate::Listen {
                chan,
                client,
                worker,
            }));
            self.out.push_back(HubOutput::Worker {
                worker,
                cmd: WorkerCmd::AddTrack {
                    client,
                    chan,
                    token,
                },
            });
        }
        let member = Member { id: client, name };
        self.send_to_joined_members(chan, Some(client), || ServerMessage::MemberJoined {
            channel: channel.clone(),
            members: vec![member.clone()],
        });
        limited!(info, client, %channel, "join");
    }

    fn leave(&mut self, now: Instant, client: ClientId, chan: ChanId, tell_client: bool) {
        self.floor_input(now, chan, FloorInput::Left { who: client });
        let Some(worker) = self.sessions.get_mut(&client).map(|s| {
            s.channels.remove(&chan);
            s.muted.remove(&chan);
            s.worker
        }) else {
            return;
        };
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        c.members.remove(&client);
        let name = c.name.clone();
        // A patched channel stays until unpatched.
        let patched = c.lead != chan || c.patch.is_some();
        let empty = c.members.is_empty() && !c.fixed && !patched;
        if tell_client {
            self.send(
                client,
                ServerMessage::Left {
                    channel: name.clone(),
                },
            );
        }
        if let Some(worker) = worker {
            self.out.push_back(HubOutput::Worker {
                worker,
                cmd: WorkerCmd::RemoveTrack { client, chan },
            });
            self.out.push_back(HubOutput::Route(RouteUpdate::Unlisten {
                chan,
                client,
                worker,
            }));
        }
        if empty {
            self.drop_channel(chan);
        } else {
            self.send_to_joined_members(chan, None, || ServerMessage::MemberLeft {
                channel: name.clone(),
                ids: vec![client],
            });
        }
        limited!(info, client, channel = %name, "leave");
    }

    /// Feeds `input` to the floor `chan` uses (its own, or its patch's).
    fn floor_input(&mut self, now: Instant, chan: ChanId, input: FloorInput<ClientId>) {
        let chan = self.lead_of(chan);
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        let requester = match &input {
            FloorInput::Request { who, .. } => Some(*who),
            _ => None,
        };
        c.floor.handle(now, input);
        let mut actions = Vec::new();
        while let Some(a) = c.floor.poll_action() {
            actions.push(a);
        }
        let deadline = c.floor.poll_timeout();
        if deadline != c.deadline {
            if let Some(old) = c.deadline {
                self.deadlines.remove(&(old, chan));
            }
            if let Some(new) = deadline {
                self.deadlines.insert((new, chan));
            }
            c.deadline = deadline;
        }
        for action in actions {
            self.floor_action(now, chan, action, requester);
        }
    }

    /// Carries out an action of `lead`'s floor for every channel that
    /// shares it. `requester`: the action answers this member's Floor
    /// Request (its media sent before the answer is held by the SFU).
    fn floor_action(
        &mut self,
        now: Instant,
        lead: ChanId,
        action: FloorAction<ClientId>,
        requester: Option<ClientId>,
    ) {
        let Some(c) = self.channels.get(&lead) else {
            return;
        };
        let state = c.floor.state();
        let group = self.group(lead);
        let route = |talker| -> Vec<HubOutput> {
            group
                .iter()
                .map(|&chan| HubOutput::Route(RouteUpdate::Talker { chan, talker }))
                .collect()
        };
        match action {
            FloorAction::Granted { to, max_duration } => {
                // Route first: media that follows the grant finds it open;
                // then what the requester sent since its press, held until
                // now. A grant out of the queue comes long after the press:
                // what was held is not this transmission.
                self.out.extend(route(Some(to)));
                self.out.push_back(HubOutput::Route(RouteUpdate::Held {
                    client: to,
                    forward: requester == Some(to),
                }));
                let channel = self.name_for(lead, to);
                self.send(
                    to,
                    ServerMessage::FloorGranted {
                        channel,
                        max_duration_ms: max_duration.as_millis() as u64,
                    },
                );
            }
            FloorAction::Deny { to, reason } => {
                self.out.push_back(HubOutput::Route(RouteUpdate::Held {
                    client: to,
                    forward: false,
                }));
                let channel = self.name_for(lead, to);
                self.send(to, ServerMessage::FloorDeny { channel, reason });
            }
            FloorAction::Queued { to, position } => {
                self.out.push_back(HubOutput::Route(RouteUpdate::Held {
                    client: to,
                    forward: false,
                }));
                let channel = self.name_for(lead, to);
                self.send(to, ServerMessage::FloorQueued { channel, position });
            }
            FloorAction::Taken { holder, priority } => {
                let held_ms = match state {
                    FloorState::Taken { since, .. } => {
                        now.saturating_duration_since(since).as_millis() as u64
                    }
                    FloorState::Idle => 0,
                };
                self.announce_taken(&group, holder, priority, held_ms);
            }
            FloorAction::Revoke { holder, reason, by } => {
                self.out.extend(route(None));
                let by = by.map(|id| self.member(id));
                let channel = self.name_for(lead, holder);
                self.send(
                    holder,
                    ServerMessage::FloorRevoke {
                        channel,
                        reason,
                        by,
                    },
                );
            }
            FloorAction::Idle => {
                self.out.extend(route(None));
                for chan in group {
                    let Some(channel) = self.channels.get(&chan).map(|c| c.name.clone()) else {
                        continue;
                    };
                    self.send_to_joined_members(chan, None, || ServerMessage::FloorIdle {
                        channel: channel.clone(),
                    });
                }
            }
        }
    }
}
