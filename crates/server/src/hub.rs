//! The control plane: sessions, channel membership and floor control.
//!
//! One hub task owns all of it, so there are no locks: WebSocket sessions
//! send it [`HubMsg`]s, it answers them with [`ServerMessage`]s on each
//! session's queue and drives the SFU workers with [`WorkerCmd`]s. Floor
//! control is the pure [`squawk_floor::Floor`] machine, one per channel; the
//! hub only carries out its actions. Media enforcement lives in the workers:
//! they forward a connection's audio only into channels where the hub told
//! them (`SetTalker`) that it holds the floor.

use std::{
    collections::{BTreeSet, HashMap},
    time::Instant,
};

use squawk_floor::{Floor, FloorAction, FloorConfig, FloorInput};
use squawk_protocol::{
    ChannelInfo, ChannelName, ClientId, ClientMessage, DenyReason, ErrorCode, Member, ServerMessage,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    config::ServerConfig,
    sfu::{ChanId, WorkerCmd, Workers},
};

/// Queue of messages to one WebSocket session. Bounded: a client that stops
/// reading loses messages (logged) rather than growing the server's memory.
pub(crate) type SessionTx = mpsc::Sender<ServerMessage>;

/// Capacity of a [`SessionTx`] queue, in messages.
pub(crate) const SESSION_QUEUE: usize = 256;

/// Inputs to the hub.
#[derive(Debug)]
pub(crate) enum HubMsg {
    /// A session said a valid hello.
    Hello {
        client: ClientId,
        name: String,
        out: SessionTx,
    },
    /// A message from an identified session (never `Hello`).
    Client {
        client: ClientId,
        msg: ClientMessage,
    },
    /// The session ended (closed, timed out or failed).
    Gone { client: ClientId },
    /// A worker saw the connection's media path come up or go down.
    Media { client: ClientId, connected: bool },
}

struct Session {
    name: String,
    out: SessionTx,
    worker: usize,
    channels: BTreeSet<ChanId>,
    media_up: bool,
}

struct Channel {
    name: ChannelName,
    fixed: bool,
    members: BTreeSet<ClientId>,
    floor: Floor<ClientId>,
}

/// The hub's state. See the module docs.
pub(crate) struct Hub {
    config: ServerConfig,
    floor_config: FloorConfig,
    sessions: HashMap<ClientId, Session>,
    channels: HashMap<ChanId, Channel>,
    by_name: HashMap<ChannelName, ChanId>,
    next_chan: u32,
    next_worker: usize,
    workers: Workers,
}

fn send(out: &SessionTx, msg: ServerMessage) {
    if let Err(e) = out.try_send(msg) {
        warn!("session queue full or closed, message dropped: {e}");
    }
}

impl Hub {
    pub(crate) fn new(config: ServerConfig, workers: Workers) -> Self {
        let floor_config = FloorConfig {
            max_talk: config.max_talk(),
            preemption: config.preemption,
        };
        let mut hub = Self {
            config,
            floor_config,
            sessions: HashMap::new(),
            channels: HashMap::new(),
            by_name: HashMap::new(),
            next_chan: 1,
            next_worker: 0,
            workers,
        };
        for name in hub.config.channels.clone() {
            hub.create_channel(name, true);
        }
        hub
    }

    /// Runs until `shutdown` turns true; returns the workers to be stopped.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<HubMsg>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Workers {
        loop {
            let deadline = self
                .channels
                .values()
                .filter_map(|c| c.floor.poll_timeout())
                .min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(Instant::now(), msg),
                    None => break,
                },
                () = sleep => self.tick(Instant::now()),
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        self.workers
    }

    fn tick(&mut self, now: Instant) {
        let due: Vec<ChanId> = self
            .channels
            .iter()
            .filter(|(_, c)| c.floor.poll_timeout().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.floor_input(now, id, FloorInput::Tick);
        }
    }

    pub(crate) fn handle(&mut self, now: Instant, msg: HubMsg) {
        match msg {
            HubMsg::Hello { client, name, out } => {
                let worker = self.next_worker % self.workers.len();
                self.next_worker = self.next_worker.wrapping_add(1);
                self.workers.send(
                    worker,
                    WorkerCmd::AddPeer {
                        client,
                        out: out.clone(),
                    },
                );
                send(
                    &out,
                    ServerMessage::Welcome {
                        version: squawk_protocol::PROTOCOL_VERSION,
                        client_id: client,
                        max_talk_ms: self.floor_config.max_talk.as_millis() as u64,
                    },
                );
                info!(client, %name, worker, "hello");
                self.sessions.insert(
                    client,
                    Session {
                        name,
                        out,
                        worker,
                        channels: BTreeSet::new(),
                        media_up: false,
                    },
                );
            }
            HubMsg::Client { client, msg } => self.client_message(now, client, msg),
            HubMsg::Gone { client } => {
                let Some(session) = self.sessions.get(&client) else {
                    return;
                };
                let worker = session.worker;
                for chan in session.channels.clone() {
                    self.leave(now, client, chan, false);
                }
                self.workers.send(worker, WorkerCmd::RemovePeer { client });
                self.sessions.remove(&client);
                info!(client, "gone");
            }
            HubMsg::Media { client, connected } => {
                let Some(session) = self.sessions.get_mut(&client) else {
                    return;
                };
                session.media_up = connected;
                debug!(client, connected, "media");
                if !connected {
                    // Without media the holder cannot talk: free its floors.
                    for chan in session.channels.clone() {
                        self.floor_input(now, chan, FloorInput::Left { who: client });
                    }
                }
            }
        }
    }

    fn error(&self, client: ClientId, code: ErrorCode, message: impl Into<String>) {
        if let Some(s) = self.sessions.get(&client) {
            send(&s.out, ServerMessage::error(code, message));
        }
    }

    fn client_message(&mut self, now: Instant, client: ClientId, msg: ClientMessage) {
        let Some(session) = self.sessions.get(&client) else {
            return;
        };
        let worker = session.worker;
        match msg {
            ClientMessage::Hello { .. } => {
                self.error(
                    client,
                    ErrorCode::AlreadyIdentified,
                    "hello was already received",
                );
            }
            ClientMessage::Join { channel } => self.join(client, channel),
            ClientMessage::Leave { channel } => match self.member_of(client, &channel) {
                Some(chan) => self.leave(now, client, chan, true),
                None => self.error(
                    client,
                    ErrorCode::NotMember,
                    format!("not in channel {channel}"),
                ),
            },
            ClientMessage::Offer { sdp } => {
                self.workers.send(worker, WorkerCmd::Offer { client, sdp })
            }
            ClientMessage::Answer { sdp } => {
                self.workers.send(worker, WorkerCmd::Answer { client, sdp })
            }
            ClientMessage::FloorRequest { channel, priority } => {
                let Some(chan) = self.member_of(client, &channel) else {
                    send(
                        &session.out,
                        ServerMessage::FloorDeny {
                            channel,
                            reason: DenyReason::NotMember,
                        },
                    );
                    return;
                };
                if !session.media_up {
                    send(
                        &session.out,
                        ServerMessage::FloorDeny {
                            channel,
                            reason: DenyReason::NoMedia,
                        },
                    );
                    return;
                }
                self.floor_input(
                    now,
                    chan,
                    FloorInput::Request {
                        who: client,
                        priority,
                    },
                );
            }
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
                send(&session.out, ServerMessage::Channels { channels });
            }
            ClientMessage::FloorRelease { channel } => match self.member_of(client, &channel) {
                Some(chan) => self.floor_input(now, chan, FloorInput::Release { who: client }),
                None => self.error(
                    client,
                    ErrorCode::NotMember,
                    format!("not in channel {channel}"),
                ),
            },
        }
    }

    fn member_of(&self, client: ClientId, channel: &ChannelName) -> Option<ChanId> {
        let chan = *self.by_name.get(channel)?;
        self.channels[&chan]
            .members
            .contains(&client)
            .then_some(chan)
    }

    fn create_channel(&mut self, name: ChannelName, fixed: bool) -> ChanId {
        let id = ChanId(self.next_chan);
        self.next_chan += 1;
        self.by_name.insert(name.clone(), id);
        self.channels.insert(
            id,
            Channel {
                name,
                fixed,
                members: BTreeSet::new(),
                floor: Floor::new(self.floor_config),
            },
        );
        id
    }

    fn members(&self, chan: ChanId) -> Vec<Member> {
        self.channels[&chan]
            .members
            .iter()
            .filter_map(|id| {
                self.sessions.get(id).map(|s| Member {
                    id: *id,
                    name: s.name.clone(),
                })
            })
            .collect()
    }

    fn presence(&self, chan: ChanId, except: Option<ClientId>) {
        let channel = self.channels[&chan].name.clone();
        let members = self.members(chan);
        for id in &self.channels[&chan].members {
            if Some(*id) == except {
                continue;
            }
            if let Some(s) = self.sessions.get(id) {
                send(
                    &s.out,
                    ServerMessage::Presence {
                        channel: channel.clone(),
                        members: members.clone(),
                    },
                );
            }
        }
    }

    fn join(&mut self, client: ClientId, channel: ChannelName) {
        let chan = match self.by_name.get(&channel) {
            Some(id) => *id,
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
        let session = &self.sessions[&client];
        if session.channels.contains(&chan) {
            // Already a member: repeat the presence so the client can resync.
            send(
                &session.out,
                ServerMessage::Presence {
                    channel,
                    members: self.members(chan),
                },
            );
            return;
        }
        if session.channels.len() >= self.config.max_channels_per_client {
            self.error(
                client,
                ErrorCode::TooManyChannels,
                format!(
                    "at most {} channels per connection",
                    self.config.max_channels_per_client
                ),
            );
            return;
        }
        let worker = session.worker;
        if let Some(s) = self.sessions.get_mut(&client) {
            s.channels.insert(chan);
        }
        if let Some(c) = self.channels.get_mut(&chan) {
            c.members.insert(client);
        }
        let members = self.members(chan);
        self.workers.broadcast(|w| WorkerCmd::Subscribe {
            client,
            chan,
            home: worker,
            joined: (w == worker).then(|| ServerMessage::Joined {
                channel: channel.clone(),
                mid: String::new(), // filled in by the worker with the downlink's mid
                members: members.clone(),
            }),
        });
        // Late joiners learn who is talking right now.
        if let Some(holder) = self.channels[&chan].floor.holder()
            && let (Some(h), Some(s)) = (self.sessions.get(&holder), self.sessions.get(&client))
        {
            let priority = match self.channels[&chan].floor.state() {
                squawk_floor::FloorState::Taken { priority, .. } => priority,
                squawk_floor::FloorState::Idle => Default::default(),
            };
            send(
                &s.out,
                ServerMessage::FloorTaken {
                    channel: channel.clone(),
                    talker: holder,
                    talker_name: h.name.clone(),
                    priority,
                },
            );
        }
        self.presence(chan, Some(client));
        info!(client, %channel, "join");
    }

    fn leave(&mut self, now: Instant, client: ClientId, chan: ChanId, tell_client: bool) {
        self.floor_input(now, chan, FloorInput::Left { who: client });
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        c.members.remove(&client);
        let name = c.name.clone();
        let empty = c.members.is_empty() && !c.fixed;
        let home = self.sessions.get(&client).map(|s| s.worker);
        if let Some(s) = self.sessions.get_mut(&client) {
            s.channels.remove(&chan);
            if tell_client {
                send(
                    &s.out,
                    ServerMessage::Left {
                        channel: name.clone(),
                    },
                );
            }
        }
        if let Some(home) = home {
            self.workers
                .broadcast(|_| WorkerCmd::Unsubscribe { client, chan, home });
        }
        if empty {
            self.channels.remove(&chan);
            self.by_name.remove(&name);
            self.workers.broadcast(|_| WorkerCmd::DropChannel { chan });
        } else {
            self.presence(chan, None);
        }
        info!(client, channel = %name, "leave");
    }

    fn floor_input(&mut self, now: Instant, chan: ChanId, input: FloorInput<ClientId>) {
        let Some(c) = self.channels.get_mut(&chan) else {
            return;
        };
        c.floor.handle(now, input);
        while let Some(action) = self
            .channels
            .get_mut(&chan)
            .and_then(|c| c.floor.poll_action())
        {
            self.floor_action(chan, action);
        }
    }

    fn floor_action(&mut self, chan: ChanId, action: FloorAction<ClientId>) {
        let c = &self.channels[&chan];
        let channel = c.name.clone();
        match action {
            FloorAction::Granted { to, max_duration } => {
                // Workers first: media that follows the grant must find the route open.
                self.workers.broadcast(|_| WorkerCmd::SetTalker {
                    chan,
                    talker: Some(to),
                });
                if let Some(s) = self.sessions.get(&to) {
                    send(
                        &s.out,
                        ServerMessage::FloorGranted {
                            channel,
                            max_duration_ms: max_duration.as_millis() as u64,
                        },
                    );
                }
            }
            FloorAction::Deny { to, reason } => {
                if let Some(s) = self.sessions.get(&to) {
                    send(&s.out, ServerMessage::FloorDeny { channel, reason });
                }
            }
            FloorAction::Taken { holder, priority } => {
                let talker_name = self
                    .sessions
                    .get(&holder)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for id in c.members.iter().filter(|id| **id != holder) {
                    if let Some(s) = self.sessions.get(id) {
                        send(
                            &s.out,
                            ServerMessage::FloorTaken {
                                channel: channel.clone(),
                                talker: holder,
                                talker_name: talker_name.clone(),
                                priority,
                            },
                        );
                    }
                }
            }
            FloorAction::Revoke { holder, reason } => {
                self.workers
                    .broadcast(|_| WorkerCmd::SetTalker { chan, talker: None });
                if let Some(s) = self.sessions.get(&holder) {
                    send(&s.out, ServerMessage::FloorRevoke { channel, reason });
                }
            }
            FloorAction::Idle => {
                self.workers
                    .broadcast(|_| WorkerCmd::SetTalker { chan, talker: None });
                for id in &c.members {
                    if let Some(s) = self.sessions.get(id) {
                        send(
                            &s.out,
                            ServerMessage::FloorIdle {
                                channel: channel.clone(),
                            },
                        );
                    }
                }
            }
        }
    }
}
