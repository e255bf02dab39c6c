//! System tests on a simulated clock: the hub, one router per worker, each
//! client's outbox and many clients in one process, with no sockets and no
//! sleeping. Signaling is delayed (ordered per client, as TCP); media goes
//! through the routers over the test kit's network model (squawk-netsim's
//! sans-IO `Link`, one per listener: loss, 5 to 45 ms of delay, reordering)
//! on the same simulated clock. Covered:
//! a join storm with churn, late entry, a floor race, and a client that
//! stops reading.

#![allow(clippy::unwrap_used)]

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap},
    time::{Duration, Instant},
};

use squawk_floor::FloorConfig;
use squawk_protocol::{ChannelName, ClientId, ClientMessage, DenyReason, Priority, ServerMessage};

use squawk_netsim::{Link, Loss, Profile};

use crate::{
    hub::{Hub, HubConfig, HubInput, HubOutput},
    outbox::{Outbox, Pushed},
    sfu::{ChanId, RouteUpdate, WorkerCmd, WorkerEvent, router::Router},
};

const WORKERS: usize = 2;

/// A deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Something due at a simulated instant.
#[derive(Debug)]
enum Due {
    /// A client's message reaches the hub.
    ToHub(HubInput),
    /// A worker reports to the hub.
    FromWorker(WorkerEvent),
}

/// What one client has seen, per channel name.
#[derive(Default)]
struct Client {
    reading: bool,
    closed: bool,
    home: usize,
    /// Members as the client believes them (from `joined` and deltas).
    members: HashMap<ChannelName, BTreeSet<ClientId>>,
    /// Message types per channel, in order.
    log: HashMap<ChannelName, Vec<&'static str>>,
    /// Messages of a channel that came before its `joined`.
    early: Vec<String>,
    talker: HashMap<ChannelName, ClientId>,
    joined_at: HashMap<ChannelName, Instant>,
    first_packet_at: HashMap<ChannelName, Instant>,
    packets_from: HashMap<ClientId, u64>,
    granted: Vec<ChannelName>,
    denied: Vec<(ChannelName, DenyReason)>,
}

struct Sim {
    now: Instant,
    hub: Hub,
    routers: Vec<Router>,
    outboxes: HashMap<ClientId, Outbox>,
    clients: BTreeMap<ClientId, Client>,
    /// Links that are up (the worker reported it).
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    items: HashMap<u64, Due>,
    seq: u64,
    /// Last delivery time per client, so its messages stay in order.
    last_to_hub: HashMap<ClientId, Instant>,
    rng: Rng,
    /// Each listener's downlink: (channel, talker) of each RTP packet.
    downlinks: HashMap<ClientId, Link<(ChanId, ClientId)>>,
    /// How every downlink impairs.
    network: Profile,
    seed: u64,
    outbox_limit: usize,
    chan_names: HashMap<ChanId, ChannelName>,
    /// Clients read their outboxes every 10 ms.
    next_read: Instant,
}

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).unwrap()
}

impl Sim {
    fn new(seed: u64, loss: f64, outbox_limit: usize) -> Self {
        let now = Instant::now();
        Self {
            now,
            next_read: now,
            hub: Hub::new(HubConfig {
                floor: FloorConfig {
                    max_talk: Duration::from_secs(60),
                    ..FloorConfig::default()
                },
                workers: WORKERS,
                channels: vec![],
                create_channels_on_join: true,
                max_channels_per_client: 8,
                max_members_per_channel: 5000,
                emergency_priority: std::time::Duration::from_secs(300),
            }),
            routers: (0..WORKERS).map(|w| Router::new(w, WORKERS)).collect(),
            outboxes: HashMap::new(),
            clients: BTreeMap::new(),
            due: BinaryHeap::new(),
            items: HashMap::new(),
            seq: 0,
            last_to_hub: HashMap::new(),
            rng: Rng(seed),
            downlinks: HashMap::new(),
            network: Profile {
                delay: Duration::from_millis(25),
                jitter: Duration::from_millis(20),
                reorder: true,
                loss: if loss > 0.0 {
                    Loss::Random { p: loss }
                } else {
                    Loss::None
                },
                ..Profile::default()
            },
            seed,
            outbox_limit,
            chan_names: HashMap::new(),
        }
    }

    fn at(&mut self, when: Instant, item: Due) {
        self.seq += 1;
        self.due.push(Reverse((when, self.seq)));
        self.items.insert(self.seq, item);
    }

    /// A client's message, 1 to 20 ms later, after its earlier ones.
    fn send(&mut self, client: ClientId, input: HubInput) {
        let delay = Duration::from_millis(1 + self.rng.below(20));
        let last = self.last_to_hub.get(&client).copied().unwrap_or(self.now);
        let when = (self.now + delay).max(last);
        self.last_to_hub.insert(client, when);
        self.at(when, Due::ToHub(input));
    }

    /// Connects `id` and offers its media at once (joins come later).
    fn connect(&mut self, id: ClientId) {
        self.connect_joining(id, &[]);
    }

    /// Connects `id` as the desktop engine does: hello, its channels, then
    /// its media offer.
    fn connect_joining(&mut self, id: ClientId, channels: &[&str]) {
        self.clients.insert(
            id,
            Client {
                reading: true,
                ..Client::default()
            },
        );
        self.outboxes.insert(id, Outbox::new(self.outbox_limit));
        let name = format!("c{id}");
        self.send(
            id,
            HubInput::Connect {
                client: id,
                name,
                identity: crate::accounts::Identity::Open,
                ice_servers: Vec::new(),
            },
        );
        for c in channels {
            self.msg(id, ClientMessage::Join { channel: ch(c) });
        }
        self.offer(id);
    }

    fn offer(&mut self, id: ClientId) {
        self.msg(id, ClientMessage::Offer { sdp: "v=0".into() });
    }

    fn msg(&mut self, id: ClientId, msg: ClientMessage) {
        self.send(id, HubInput::Message { client: id, msg });
    }

    fn hub_input(&mut self, input: HubInput) {
        self.hub.handle(self.now, input);
        while let Some(out) = self.hub.poll_output() {
            match out {
                HubOutput::Send { client, msg } => {
                    let Some(o) = self.outboxes.get_mut(&client) else {
                        continue;
                    };
                    if o.push(msg) == Pushed::Overflowed {
                        // The session closes: the hub hears of it at once.
                        self.clients.get_mut(&client).unwrap().closed = true;
                        self.outboxes.remove(&client);
                        let now = self.now;
                        self.at(now, Due::ToHub(HubInput::Disconnect { client }));
                    }
                }
                HubOutput::Route(u) => {
                    if let RouteUpdate::Listen { client, worker, .. } = u {
                        self.clients.get_mut(&client).unwrap().home = worker;
                    }
                    for r in &mut self.routers {
                        r.apply(u);
                    }
                }
                HubOutput::Worker { cmd, .. } => self.worker(cmd),
            }
        }
    }

    /// A worker's answer to a command, a few ms later.
    fn worker(&mut self, cmd: WorkerCmd) {
        let later = self.now + Duration::from_millis(1 + self.rng.below(5));
        match cmd {
            WorkerCmd::AddPeer { client } => {
                self.at(
                    later + Duration::from_millis(10),
                    Due::FromWorker(WorkerEvent::Link { client, up: true }),
                );
            }
            WorkerCmd::AddTrack {
                client,
                chan,
                token,
            } => self.at(
                later,
                Due::FromWorker(WorkerEvent::TrackReady {
                    client,
                    chan,
                    mid: format!("{}", chan.0),
                    token,
                }),
            ),
            _ => {}
        }
    }

    /// `talker` sends one packet: the routers decide where it goes.
    fn packet(&mut self, talker: ClientId) {
        let Some(home) = self.clients.get(&talker).map(|c| c.home) else {
            return;
        };
        let chans = self.routers[home].talking_in(talker).to_vec();
        for chan in chans {
            let mut to = Vec::new();
            for w in std::iter::once(home).chain(self.routers[home].remote_workers(chan)) {
                if self.routers[w].is_talker(chan, talker) {
                    to.extend(self.routers[w].local_listeners(chan).iter().copied());
                }
            }
            for listener in to.into_iter().filter(|l| *l != talker) {
                let (profile, seed) = (&self.network, self.seed ^ listener.rotate_left(32));
                self.downlinks
                    .entry(listener)
                    .or_insert_with(|| Link::new(profile.clone(), seed))
                    .offer(self.now, 100, (chan, talker));
            }
        }
    }

    /// Runs everything due up to `until`, clients reading every 10 ms.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_item = self.due.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.hub.poll_timeout();
            let next_packet = self.downlinks.values().filter_map(Link::poll_timeout).min();
            let next = [next_item, next_timer, next_packet, Some(self.next_read)]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            if next > until {
                self.now = until;
                self.read_all();
                return;
            }
            self.now = self.now.max(next);
            if next_timer.is_some_and(|t| t <= self.now) {
                self.hub_input(HubInput::Timeout);
            }
            while let Some(Reverse((t, seq))) = self.due.peek().copied() {
                if t > self.now {
                    break;
                }
                self.due.pop();
                match self.items.remove(&seq).unwrap() {
                    Due::ToHub(input) => self.hub_input(input),
                    Due::FromWorker(ev) => self.hub_input(HubInput::Worker(ev)),
                }
            }
            let mut arrived = Vec::new();
            for (listener, link) in &mut self.downlinks {
                while let Some((chan, talker)) = link.poll_output(self.now) {
                    arrived.push((*listener, chan, talker));
                }
            }
            for (listener, chan, talker) in arrived {
                self.deliver_packet(listener, chan, talker);
            }
            if self.now >= self.next_read {
                self.read_all();
                self.next_read = self.now + Duration::from_millis(10);
            }
        }
    }

    fn deliver_packet(&mut self, listener: ClientId, chan: ChanId, talker: ClientId) {
        let now = self.now;
        let Some(name) = self.chan_names.get(&chan).cloned() else {
            return;
        };
        let Some(c) = self.clients.get_mut(&listener) else {
            return;
        };
        if c.closed || !c.joined_at.contains_key(&name) {
            return; // the client has no track mapped for it yet
        }
        *c.packets_from.entry(talker).or_default() += 1;
        c.first_packet_at.entry(name).or_insert(now);
    }

    fn read_all(&mut self) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            let reading = self.clients[&id].reading;
            let Some(o) = self.outboxes.get_mut(&id).filter(|_| reading) else {
                continue;
            };
            for msg in o.take() {
                self.apply(id, msg);
            }
        }
    }

    fn apply(&mut self, id: ClientId, msg: ServerMessage) {
        let now = self.now;
        let c = self.clients.get_mut(&id).unwrap();
        let kind = msg.variant();
        let channel = match &msg {
            ServerMessage::Joined { channel, .. }
            | ServerMessage::Left { channel }
            | ServerMessage::MemberJoined { channel, .. }
            | ServerMessage::MemberLeft { channel, .. }
            | ServerMessage::FloorGranted { channel, .. }
            | ServerMessage::FloorDeny { channel, .. }
            | ServerMessage::FloorTaken { channel, .. }
            | ServerMessage::FloorIdle { channel }
            | ServerMessage::FloorRevoke { channel, .. } => Some(channel.clone()),
            _ => None,
        };
        if let Some(channel) = &channel {
            let joined = c.joined_at.contains_key(channel);
            let allowed_before = matches!(
                msg,
                ServerMessage::Joined { .. } | ServerMessage::FloorDeny { .. }
            );
            if !joined && !allowed_before {
                c.early.push(format!("{kind} in {channel} before joined"));
            }
            c.log.entry(channel.clone()).or_default().push(kind);
        }
        match msg {
            ServerMessage::Joined {
                channel, members, ..
            } => {
                c.members
                    .insert(channel.clone(), members.iter().map(|m| m.id).collect());
                c.joined_at.insert(channel, now);
            }
            ServerMessage::Left { channel } => {
                c.members.remove(&channel);
                c.joined_at.remove(&channel);
            }
            ServerMessage::MemberJoined { channel, members } => {
                let set = c.members.entry(channel).or_default();
                for m in members {
                    assert!(set.insert(m.id), "{id}: member {} joined twice", m.id);
                }
            }
            ServerMessage::MemberLeft { channel, ids } => {
                let set = c.members.entry(channel).or_default();
                for gone in ids {
                    assert!(set.remove(&gone), "{id}: unknown member {gone} left");
                }
            }
            ServerMessage::FloorTaken {
                channel, talker, ..
            } => {
                c.talker.insert(channel, talker);
            }
            ServerMessage::FloorIdle { channel } => {
                c.talker.remove(&channel);
            }
            ServerMessage::FloorGranted { channel, .. } => c.granted.push(channel),
            ServerMessage::FloorDeny { channel, reason } => c.denied.push((channel, reason)),
            _ => {}
        }
    }

    /// The channel id the hub gave `name`, learned from a `Listen`.
    fn learn_channel(&mut self, name: &str, chan: ChanId) {
        self.chan_names.insert(chan, ch(name));
    }

    fn members_truth(&self, channel: &ChannelName) -> BTreeSet<ClientId> {
        self.clients
            .iter()
            .filter(|(_, c)| !c.closed && c.joined_at.contains_key(channel))
            .map(|(id, _)| *id)
            .collect()
    }

    fn ms(&self, d: u64) -> Instant {
        self.now + Duration::from_millis(d)
    }
}

/// `id` sends a join of `name`.
fn join(sim: &mut Sim, id: ClientId, name: &str) {
    sim.msg(id, ClientMessage::Join { channel: ch(name) });
}

/// Channel ids are given in order of creation, from 1.
fn map_channels(sim: &mut Sim, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        sim.learn_channel(n, ChanId(i as u32 + 1));
    }
}

#[test]
fn a_join_storm_with_churn_leaves_every_member_list_right() {
    let mut sim = Sim::new(7, 0.0, 1 << 20);
    map_channels(&mut sim, &["ops"]);
    for id in 1..=1000 {
        // Half offer media first (the browser), half join first (the engine).
        if id % 2 == 0 {
            sim.connect(id);
            join(&mut sim, id, "ops");
        } else {
            sim.connect_joining(id, &["ops"]);
        }
        let end = sim.ms(1);
        sim.run_until(end);
    }
    // Churn: every tenth leaves, every twentieth disconnects, while the
    // rest are still catching up.
    for id in (10..=1000).step_by(10) {
        if id % 20 == 0 {
            sim.send(id, HubInput::Disconnect { client: id });
            sim.clients.get_mut(&id).unwrap().closed = true;
        } else {
            sim.msg(id, ClientMessage::Leave { channel: ch("ops") });
        }
    }
    let end = sim.ms(2000);
    sim.run_until(end);
    let truth = sim.members_truth(&ch("ops"));
    assert_eq!(truth.len(), 900);
    for (id, c) in &sim.clients {
        if c.closed || !c.joined_at.contains_key(&ch("ops")) {
            continue;
        }
        assert_eq!(c.members[&ch("ops")], truth, "client {id}'s member list");
        assert!(c.early.is_empty(), "{id}: {:?}", c.early);
    }
    // Deltas, not lists: the first member heard of the others in far fewer
    // messages than one per join when it read every 10 ms.
    let first = &sim.clients[&1].log[&ch("ops")];
    let deltas = first.iter().filter(|k| k.starts_with("member_")).count();
    assert!(
        deltas < 1000,
        "{deltas} presence messages to the first member"
    );
}

#[test]
fn late_entry_floor_taken_follows_joined_and_media_flows_at_once() {
    let mut sim = Sim::new(11, 0.05, 1 << 20);
    map_channels(&mut sim, &["radio"]);
    for id in 1..=3 {
        sim.connect(id);
    }
    join(&mut sim, 1, "radio");
    join(&mut sim, 2, "radio");
    let end = sim.ms(200);
    sim.run_until(end);
    sim.msg(
        1,
        ClientMessage::FloorRequest {
            channel: ch("radio"),
            priority: Priority(0),
            queue: false,
        },
    );
    // A talks: a packet every 20 ms for 2 s; C joins after 500 ms.
    for i in 0..100 {
        if i == 25 {
            join(&mut sim, 3, "radio");
        }
        sim.packet(1);
        let end = sim.ms(20);
        sim.run_until(end);
    }
    let c = &sim.clients[&3];
    assert_eq!(
        c.log[&ch("radio")][..2],
        ["joined", "floor_taken"],
        "{:?}",
        c.log
    );
    assert_eq!(c.talker.get(&ch("radio")), Some(&1));
    let joined = c.joined_at[&ch("radio")];
    let heard = c.first_packet_at[&ch("radio")];
    assert!(heard.duration_since(joined) <= Duration::from_millis(300));
    // Loss of 5 %: C got most of what was sent after it joined.
    assert!(c.packets_from[&1] > 60, "{:?}", c.packets_from);
    assert!(sim.clients[&2].packets_from[&1] > 85);
}

#[test]
fn a_floor_race_grants_one_and_only_its_media_flows() {
    let mut sim = Sim::new(3, 0.0, 1 << 20);
    map_channels(&mut sim, &["radio"]);
    for id in 1..=10 {
        sim.connect(id);
        join(&mut sim, id, "radio");
    }
    let end = sim.ms(200);
    sim.run_until(end);
    // Eight members press within the same millisecond.
    for id in 1..=8 {
        let req = HubInput::Message {
            client: id,
            msg: ClientMessage::FloorRequest {
                channel: ch("radio"),
                priority: Priority(0),
                queue: false,
            },
        };
        let at = sim.ms(5);
        sim.at(at, Due::ToHub(req));
    }
    let end = sim.ms(50);
    sim.run_until(end);
    let winners: Vec<ClientId> = (1..=8)
        .filter(|id| !sim.clients[id].granted.is_empty())
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = winners[0];
    for id in (1..=8).filter(|id| *id != winner) {
        assert_eq!(
            sim.clients[&id].denied,
            vec![(ch("radio"), DenyReason::Busy)]
        );
    }
    // Everyone sends; only the winner is heard.
    for _ in 0..50 {
        for id in 1..=8 {
            sim.packet(id);
        }
        let end = sim.ms(20);
        sim.run_until(end);
    }
    let end = sim.ms(100); // the last packets' jitter
    sim.run_until(end);
    for id in 9..=10 {
        let heard = &sim.clients[&id].packets_from;
        assert_eq!(heard.keys().copied().collect::<Vec<_>>(), vec![winner]);
        assert_eq!(heard[&winner], 50);
    }
    for id in 9..=10 {
        assert_eq!(sim.clients[&id].talker.get(&ch("radio")), Some(&winner));
    }
}

#[test]
fn a_client_that_stops_reading_is_closed_and_costs_the_others_nothing() {
    // A small bound so that the stalled client passes it quickly.
    let mut sim = Sim::new(5, 0.0, 16 * 1024);
    map_channels(&mut sim, &["radio"]);
    for id in 1..=5 {
        sim.connect(id);
        join(&mut sim, id, "radio");
    }
    let end = sim.ms(200);
    sim.run_until(end);
    sim.clients.get_mut(&5).unwrap().reading = false;
    // Lots happens: 400 transmissions by 1 and 2 in turn, each a Floor
    // Request, packets and a Floor Release.
    for i in 0..400 {
        let talker = 1 + (i % 2);
        sim.msg(
            talker,
            ClientMessage::FloorRequest {
                channel: ch("radio"),
                priority: Priority(0),
                queue: false,
            },
        );
        let end = sim.ms(40);
        sim.run_until(end);
        for _ in 0..3 {
            sim.packet(talker);
            let end = sim.ms(20);
            sim.run_until(end);
        }
        sim.msg(
            talker,
            ClientMessage::FloorRelease {
                channel: ch("radio"),
            },
        );
        let end = sim.ms(40);
        sim.run_until(end);
    }
    assert!(sim.clients[&5].closed, "the stalled client was closed");
    let truth = sim.members_truth(&ch("radio"));
    assert_eq!(truth, BTreeSet::from([1, 2, 3, 4]));
    for id in [3, 4] {
        let c = &sim.clients[&id];
        assert_eq!(c.members[&ch("radio")], truth, "{id} saw 5 leave");
        assert_eq!(c.granted.len(), 0);
        let floor_msgs = c.log[&ch("radio")]
            .iter()
            .filter(|k| **k == "floor_taken")
            .count();
        assert_eq!(floor_msgs, 400, "{id} heard every transmission start");
        assert_eq!(c.packets_from.values().sum::<u64>(), 1200);
    }
    assert_eq!(sim.clients[&1].granted.len(), 200);
    assert_eq!(sim.clients[&2].granted.len(), 200);
}

#[test]
fn members_that_join_before_their_offer_share_their_channels_worker() {
    let mut sim = Sim::new(5, 0.0, 1 << 20);
    map_channels(&mut sim, &["north", "south"]);
    // Ten connections to north, then ten to south, each joining before it
    // offers (the engine's order). Spreading by load alone would split
    // both channels over the two workers.
    for id in 1..=20 {
        let chan = if id <= 10 { "north" } else { "south" };
        sim.connect_joining(id, &[chan]);
        // Past the most a message takes, so channels are made in order.
        let end = sim.ms(25);
        sim.run_until(end);
    }
    let end = sim.ms(200);
    sim.run_until(end);
    let home = |sim: &Sim, id: ClientId| sim.clients[&id].home;
    for id in 1..=20 {
        let first = if id <= 10 { 1 } else { 11 };
        assert_eq!(
            home(&sim, id),
            home(&sim, first),
            "{id} is with its channel"
        );
    }
    assert_ne!(home(&sim, 1), home(&sim, 11), "the channels are spread");
    for (talker, chan) in [(1, ChanId(1)), (11, ChanId(2))] {
        sim.msg(
            talker,
            ClientMessage::FloorRequest {
                channel: sim.chan_names[&chan].clone(),
                priority: Priority(0),
                queue: false,
            },
        );
    }
    let end = sim.ms(100);
    sim.run_until(end);
    for (talker, chan) in [(1, ChanId(1)), (11, ChanId(2))] {
        let w = home(&sim, talker);
        let c = &sim.clients[&talker];
        assert!(
            sim.routers[w].is_talker(chan, talker),
            "{:?} {:?} {:?}",
            c.granted,
            c.denied,
            c.log
        );
        assert_eq!(
            sim.routers[w].remote_workers(chan).count(),
            0,
            "no packet of {chan:?} crosses workers"
        );
        assert_eq!(sim.routers[w].local_listeners(chan).len(), 10);
    }
    for _ in 0..10 {
        sim.packet(1);
        sim.packet(11);
        let end = sim.ms(20);
        sim.run_until(end);
    }
    let end = sim.ms(100);
    sim.run_until(end);
    for id in (2..=10).chain(12..=20) {
        let from = if id <= 10 { 1 } else { 11 };
        assert_eq!(sim.clients[&id].packets_from.get(&from), Some(&10), "{id}");
    }
}
