//! The worker loop: one UDP socket, many [`Peer`]s, commands from the hub,
//! routing decisions from the [`Router`].
//!
//! Drive rule (str0m's): after every change to a peer's `Rtc`, drain
//! `poll_output` until `Timeout`, transmitting and handling events; the
//! earliest timeout over all peers is kept in an ordered set and the loop
//! sleeps until it, a datagram or a command arrives.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::Arc,
    time::Instant,
};

use squawk_media::RedPayload;
use squawk_protocol::ClientId;
use str0m::{
    Event, IceConnectionState, Input, Output,
    net::{Protocol, Receive},
    rtp::{ExtensionValues, RtpWrite, SeqNo},
};
use tokio::{net::UdpSocket, sync::mpsc};
use tracing::{debug, info};

use super::{
    ChanId, EventTx, FwdPacket, RouteUpdate, WorkerCmd, WorkerEvent, WorkerStats,
    batch::SendBatch,
    hold::Held,
    peer::{Link, Peer, UplinkPt},
    router::Router,
    srtp::RtpHeader,
};

/// Sends the batch; counts refused datagrams and each forwarded packet's
/// delay from arrival to the kernel.
fn flush(batch: &mut SendBatch, socket: &UdpSocket, stats: &WorkerStats) {
    if batch.len() == 0 {
        return;
    }
    // Taken once, after the kernel has the whole batch.
    let mut sent_at = None;
    let done = batch.flush(socket, |arrival| {
        let now = *sent_at.get_or_insert_with(Instant::now);
        stats.record_delay(now.saturating_duration_since(arrival).as_micros() as u64);
    });
    WorkerStats::add(&stats.send_dropped, done.dropped as u64);
}

/// Largest UDP datagram we read, bytes.
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read per wake-up before timers and commands get a turn.
const RECV_BATCH: usize = 64;
/// Timer wake-ups are coalesced to at most one per this period. Each peer's
/// str0m wants its own precise deadline (ICE, RTCP reports, TWCC feedback
/// every 50 ms, DTLS retransmits); waking for each one cost more CPU in
/// context switches than forwarding did. None of them needs better than
/// 20 ms, and media is not delayed by this: forwarded packets are pushed out
/// right after each write (str0m runs in RTP mode, so no reorder timer holds
/// received packets). From 4 ms to 20 ms saved about 1 µs of CPU per
/// forwarded packet at 12 rooms × 15 (`squawk-bot load`, same session).
const TIMER_GRID: std::time::Duration = std::time::Duration::from_millis(20);

/// What draining a peer produced that needs the rest of the worker.
struct Io<'a> {
    socket: &'a UdpSocket,
    batch: &'a mut SendBatch,
    stats: &'a WorkerStats,
    events: &'a EventTx,
    /// Uplink packets to route after the drain.
    uplink: &'a mut Vec<(ClientId, FwdPacket)>,
}

pub(crate) struct Worker {
    idx: usize,
    socket: UdpSocket,
    candidate: SocketAddr,
    /// Boxed: a `Peer` is kilobytes, and forwarding probes this table once
    /// per listener per packet; small entries keep the probe in cache.
    peers: HashMap<ClientId, Box<Peer>>,
    by_addr: HashMap<SocketAddr, ClientId>,
    timers: BTreeSet<(Instant, ClientId)>,
    router: Router,
    workers: Vec<mpsc::UnboundedSender<WorkerCmd>>,
    events: EventTx,
    stats: Arc<WorkerStats>,
    uplink: Vec<(ClientId, FwdPacket)>,
    /// Reused per packet: the channels a talker's packet goes to.
    chans: Vec<ChanId>,
    /// Packets of local peers that arrived before their Floor Granted.
    held: Held,
    /// When due timers were last run (see [`TIMER_GRID`]).
    timers_ran: Instant,
    /// Datagrams of this wake-up, sent before the worker sleeps again.
    batch: SendBatch,
    /// RED redundant blocks towards listeners that negotiated RED (the
    /// server's `red_levels`; 0: plain Opus to all).
    red_levels: usize,
    /// Reused per forwarded packet: its RED payload before it is shared.
    red_buf: Vec<u8>,
}

impl Worker {
    pub(crate) fn new(
        idx: usize,
        socket: UdpSocket,
        candidate: SocketAddr,
        red_levels: usize,
        workers: Vec<mpsc::UnboundedSender<WorkerCmd>>,
        events: EventTx,
        stats: Arc<WorkerStats>,
    ) -> Self {
        Self {
            idx,
            socket,
            candidate,
            red_levels,
            red_buf: Vec::new(),
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BTreeSet::new(),
            router: Router::new(idx, workers.len()),
            workers,
            events,
            stats,
            uplink: Vec::new(),
            chans: Vec::new(),
            held: Held::default(),
            timers_ran: Instant::now(),
            batch: SendBatch::new(),
        }
    }

    /// Runs until [`WorkerCmd::Shutdown`] or a closed queue. The queue is
    /// borrowed so that it outlives a panic here (see `sfu::supervise`).
    pub(crate) async fn run(mut self, rx: &mut mpsc::UnboundedReceiver<WorkerCmd>) {
        info!(worker = self.idx, addr = %self.candidate, "sfu worker up");
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let next = self
                .timers
                .first()
                .map(|(t, _)| (*t).max(self.timers_ran + TIMER_GRID));
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(WorkerCmd::Shutdown) | None => break,
                    Some(cmd) => {
                        self.command(cmd);
                        // Commands come in bursts (broadcasts): take what is queued.
                        while let Ok(cmd) = rx.try_recv() {
                            if matches!(cmd, WorkerCmd::Shutdown) {
                                return;
                            }
                            self.command(cmd);
                        }
                    }
                },
                res = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, src)) = res {
                        self.datagram(src, &buf[..n]);
                        for _ in 1..RECV_BATCH {
                            match self.socket.try_recv_from(&mut buf) {
                                Ok((n, src)) => self.datagram(src, &buf[..n]),
                                Err(_) => break,
                            }
                        }
                    }
                },
                () = sleep => self.timeouts(),
            }
            flush(&mut self.batch, &self.socket, &self.stats);
        }
        info!(worker = self.idx, "sfu worker stopped");
    }

    fn command(&mut self, cmd: WorkerCmd) {
        let now = Instant::now();
        match cmd {
            WorkerCmd::AddPeer { client } => {
                let peer = Box::new(Peer::new(
                    client,
                    self.events.clone(),
                    self.candidate,
                    self.red_levels,
                    now,
                ));
                self.peers.insert(client, peer);
                self.stats
                    .peers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.drain_peer(client);
            }
            WorkerCmd::RemovePeer { client } => {
                self.held.forget(client);
                if let Some(mut peer) = self.peers.remove(&client) {
                    peer.rtc.disconnect();
                    self.timers.remove(&(peer.timeout, client));
                    // Only the addresses still this peer's: another client
                    // may have taken one over since (a reused port).
                    for a in &peer.addrs {
                        if self.by_addr.get(a) == Some(&client) {
                            self.by_addr.remove(a);
                        }
                    }
                    self.stats
                        .peers
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            WorkerCmd::Offer { client, sdp } => {
                if let Some(p) = self.peers.get_mut(&client) {
                    p.on_offer(now, &sdp);
                    if p.link == Link::Failed && p.rtc.is_alive() {
                        p.link = Link::Down;
                    }
                    self.drain_peer(client);
                }
            }
            WorkerCmd::Answer { client, sdp } => {
                if let Some(p) = self.peers.get_mut(&client) {
                    p.on_answer(&sdp);
                    self.drain_peer(client);
                }
            }
            WorkerCmd::AddTrack {
                client,
                chan,
                token,
            } => {
                if let Some(p) = self.peers.get_mut(&client) {
                    p.add_track(chan, token);
                    self.drain_peer(client);
                }
            }
            WorkerCmd::RemoveTrack { client, chan } => {
                if let Some(p) = self.peers.get_mut(&client) {
                    p.remove_track(chan);
                }
            }
            WorkerCmd::Route(update) => {
                if let RouteUpdate::Pause {
                    chan,
                    client,
                    worker,
                    paused: false,
                } = update
                    && worker == self.idx
                    && let Some(dl) = self
                        .peers
                        .get_mut(&client)
                        .and_then(|p| p.downlinks.get_mut(&chan))
                {
                    // What the listener chose not to hear is not a loss.
                    dl.rewriter.resume();
                }
                if let RouteUpdate::Held { client, forward } = update {
                    self.release_held(client, forward);
                }
                self.router.apply(update);
            }
            WorkerCmd::Forward { chan, talker, pkt } => {
                // The floor may have moved on since the packet was sent.
                if self.router.is_talker(chan, talker) {
                    self.forward_local(chan, talker, &pkt);
                }
            }
            WorkerCmd::Shutdown => {}
            #[cfg(any(test, debug_assertions))]
            WorkerCmd::Crash => panic!("sfu-{}: crash asked for by a test", self.idx),
        }
    }

    fn datagram(&mut self, src: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        let Ok(recv) = Receive::new(Protocol::Udp, src, self.candidate, data) else {
            self.stats
                .stray_datagrams
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        };
        let input = Input::Receive(now, recv);
        let known = self
            .by_addr
            .get(&src)
            .copied()
            .filter(|c| self.peers.get(c).is_some_and(|p| p.rtc.accepts(&input)));
        // Only STUN (first byte 0 to 3, RFC 7983 §7) can show a peer at a
        // new address (ICE checks and consent come first): anything else
        // from an unknown address is stray without asking every peer, so a
        // flood of junk costs one lookup per datagram, not one per peer.
        let is_stun = data.first().is_some_and(|b| *b < 4);
        let client = match known {
            Some(c) => c,
            None if !is_stun => {
                self.stats
                    .stray_datagrams
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            None => match self.peers.values().find(|p| p.rtc.accepts(&input)) {
                Some(p) => {
                    let c = p.client;
                    self.by_addr.insert(src, c);
                    if let Some(p) = self.peers.get_mut(&c) {
                        p.addrs.push(src);
                    }
                    c
                }
                None => {
                    self.stats
                        .stray_datagrams
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            },
        };
        if let Some(p) = self.peers.get_mut(&client)
            && let Err(e) = p.rtc.handle_input(input)
        {
            debug!(client, "input refused: {e}");
        }
        self.drain_peer(client);
        self.route_uplink();
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        self.timers_ran = now;
        while let Some(&(t, client)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(p) = self.peers.get_mut(&client) {
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    debug!(client, "timeout input: {e}");
                }
                // Re-filed by drain_peer below.
                p.timeout = now;
            }
            self.drain_peer_unfiled(client);
        }
        self.route_uplink();
    }

    /// Forwards (`forward`) or drops what `client` sent before its floor
    /// was routed (see [`super::hold`]); forwarded ahead of anything newer.
    fn release_held(&mut self, client: ClientId, forward: bool) {
        if !forward {
            let dropped = self.held.forget(client);
            WorkerStats::add(&self.stats.dropped_no_floor, dropped);
            return;
        }
        let mut out = Vec::new();
        let dropped = self.held.release(client, Instant::now(), &mut out);
        WorkerStats::add(&self.stats.dropped_no_floor, dropped);
        if out.is_empty() {
            return;
        }
        WorkerStats::add(&self.stats.held_forwarded, out.len() as u64);
        out.append(&mut self.uplink);
        self.uplink = out;
        self.route_uplink();
    }

    /// Routes uplink packets collected while draining to their channels.
    fn route_uplink(&mut self) {
        if self.uplink.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.uplink);
        let mut chans = std::mem::take(&mut self.chans);
        for (talker, pkt) in batch {
            chans.clear();
            chans.extend_from_slice(self.router.talking_in(talker));
            if chans.is_empty() {
                // Media enforcement: no floor, no forwarding; held until
                // the answer to its Floor Request (sent at the same time).
                let dropped = self.held.hold(talker, pkt);
                WorkerStats::add(&self.stats.dropped_no_floor, dropped);
                continue;
            }
            let mut pkt = pkt;
            if let Some(peer) = self
                .peers
                .get_mut(&talker)
                .filter(|p| p.red_tx.levels() > 0)
            {
                // One RED payload per forwarded packet, for every listener
                // that negotiated RED; Opus's payload type 111 stands in
                // for each listener's own, set as it is written.
                self.red_buf.clear();
                peer.red_tx
                    .wrap(111, pkt.seq, pkt.timestamp, &pkt.payload, &mut self.red_buf);
                pkt.red = Some(Arc::from(&self.red_buf[..]));
            }
            let pkt = Arc::new(pkt);
            for &chan in &chans {
                for w in self.router.remote_workers(chan) {
                    let _ = self.workers[w].send(WorkerCmd::Forward {
                        chan,
                        talker,
                        pkt: pkt.clone(),
                    });
                }
                self.forward_local(chan, talker, &pkt);
            }
        }
        self.chans = chans;
    }

    /// Writes `pkt` to every local listener of `chan` except the talker.
    ///
    /// A listener whose SRTP keys and media address are known gets the
    /// packet from the SFU's own SRTP sender straight into the send batch;
    /// before that (its first packet), through its str0m `Rtc`, whose
    /// transmit tells the SFU the address.
    fn forward_local(&mut self, chan: ChanId, talker: ClientId, pkt: &FwdPacket) {
        let now = Instant::now();
        let (mut written, mut direct) = (0, 0);
        for &id in self.router.local_listeners(chan) {
            if id == talker {
                continue;
            }
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.link != Link::Up {
                continue;
            }
            let Some(dl) = peer.downlinks.get_mut(&chan) else {
                continue;
            };
            if !dl.negotiated {
                continue;
            }
            if dl.pt.is_none() {
                dl.pt = Peer::opus_pt(&peer.rtc, dl.mid);
                dl.red_pt = dl.pt.and(peer.red_mids.get(dl.mid));
                dl.level_id = Peer::audio_level_id(&peer.rtc, dl.mid);
            }
            let Some(pt) = dl.pt else { continue };
            let Some(rw) = dl
                .rewriter
                .rewrite(now, pkt.ssrc, pkt.seq, pkt.timestamp, pkt.marker)
            else {
                continue;
            };
            written += 1;
            if let (Some(srtp), Some(dest), Some(ssrc)) = (&peer.srtp, peer.media_dest, dl.ssrc) {
                // RED towards a listener that negotiated it, except on the
                // first packet of a source: its redundant blocks would be
                // the talker's packets from before this listener's track
                // took it up.
                let red = dl.red_pt.zip(pkt.red.as_deref()).filter(|_| !rw.marker);
                let header = RtpHeader {
                    pt: red.map_or(*pt, |(red_pt, _)| *red_pt),
                    marker: rw.marker,
                    seq: rw.seq as u16,
                    timestamp: rw.timestamp,
                    ssrc,
                    audio_level: dl.level_id.zip(pkt.audio_level).map(|(id, dbov)| {
                        let level = dbov.unsigned_abs().min(127);
                        (id, level, pkt.voice_activity.unwrap_or(false))
                    }),
                };
                let full = self.batch.push(dest, Some(pkt.arrival), |buf| {
                    let start = buf.len();
                    let header_len = header.write(buf);
                    match red {
                        Some((_, data)) => {
                            let at = buf.len();
                            buf.extend_from_slice(data);
                            squawk_media::red::set_block_pts(&mut buf[at..], *pt);
                        }
                        None => buf.extend_from_slice(&pkt.payload),
                    }
                    // RFC 3711 §3.3.1: the ROC is the extended sequence number's high bits.
                    srtp.protect_rtp(buf, start, header_len, (rw.seq >> 16) as u32);
                });
                if full {
                    flush(&mut self.batch, &self.socket, &self.stats);
                }
                direct += 1;
                continue;
            }
            let ext = ExtensionValues {
                audio_level: pkt.audio_level,
                voice_activity: pkt.voice_activity,
                ..Default::default()
            };
            let mid = dl.mid;
            let mut api = peer.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            dl.ssrc = Some(*tx.ssrc());
            tx.write_rtp(
                RtpWrite::new(
                    pt,
                    SeqNo::from(rw.seq),
                    rw.timestamp,
                    pkt.arrival,
                    pkt.payload.clone(),
                )
                .marker(rw.marker)
                .ext_vals(ext),
            );
            // str0m sends written packets on the next timeout input.
            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                debug!(client = id, "timeout input: {e}");
            }
            Self::drain(
                peer,
                &mut Io {
                    socket: &self.socket,
                    batch: &mut self.batch,
                    stats: &self.stats,
                    events: &self.events,
                    uplink: &mut self.uplink,
                },
                &mut self.timers,
            );
            self.stats.record_delay(
                Instant::now()
                    .saturating_duration_since(pkt.arrival)
                    .as_micros() as u64,
            );
        }
        WorkerStats::add(&self.stats.rtp_out, written);
        WorkerStats::add(&self.stats.rtp_out_direct, direct);
    }

    fn drain_peer(&mut self, client: ClientId) {
        if let Some(p) = self.peers.get(&client) {
            self.timers.remove(&(p.timeout, client));
        }
        self.drain_peer_unfiled(client);
    }

    fn drain_peer_unfiled(&mut self, client: ClientId) {
        let Some(peer) = self.peers.get_mut(&client) else {
            return;
        };
        let mut io = Io {
            socket: &self.socket,
            batch: &mut self.batch,
            stats: &self.stats,
            events: &self.events,
            uplink: &mut self.uplink,
        };
        Self::drain(peer, &mut io, &mut self.timers);
    }

    /// Drains `peer` until its next timeout and files that timeout.
    fn drain(peer: &mut Peer, io: &mut Io<'_>, timers: &mut BTreeSet<(Instant, ClientId)>) {
        timers.remove(&(peer.timeout, peer.client));
        loop {
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    peer.timeout = t;
                    timers.insert((t, peer.client));
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    // str0m sends RTP and RTCP (first byte 128-191, RFC 7983
                    // §7) only to the nominated pair: the media address.
                    if matches!(t.contents.first(), Some(128..=191)) {
                        peer.media_dest = Some(t.destination);
                    }
                    // Batched behind the SFU's own packets, in order.
                    if io
                        .batch
                        .push(t.destination, None, |b| b.extend_from_slice(&t.contents))
                    {
                        flush(io.batch, io.socket, io.stats);
                    }
                }
                Ok(Output::Event(e)) => Self::event(peer, io, e),
                Err(e) => {
                    crate::logs::limited!(warn, client = peer.client, "media failed: {e}");
                    Self::set_link(peer, io, Link::Failed);
                    return;
                }
            }
        }
    }

    /// An uplink RED packet (RFC 2198): the packets lost just before it
    /// that its redundant blocks carry, then its primary, each as a plain
    /// Opus packet for the router. A malformed one is dropped and counted.
    fn unwrap_red(peer: &mut Peer, io: &mut Io<'_>, pkt: FwdPacket, opus_pt: u8) {
        let data = pkt.payload.clone();
        let Ok(red) = RedPayload::parse(&data) else {
            WorkerStats::add(&io.stats.red_malformed, 1);
            return;
        };
        let client = peer.client;
        let uplink = &mut *io.uplink;
        let mut recovered = 0;
        let unwrapped = peer
            .red_rx
            .unwrap(opus_pt, pkt.seq, pkt.timestamp, &red, |u| {
                recovered += u64::from(u.recovered);
                uplink.push((
                    client,
                    FwdPacket {
                        ssrc: pkt.ssrc,
                        seq: u.seq,
                        timestamp: u.ts,
                        // RFC 2198: a redundant block carries no marker and
                        // no header extensions of its own.
                        marker: pkt.marker && !u.recovered,
                        payload: Arc::from(u.payload),
                        audio_level: pkt.audio_level.filter(|_| !u.recovered),
                        voice_activity: pkt.voice_activity.filter(|_| !u.recovered),
                        arrival: pkt.arrival,
                        red: None,
                    },
                ));
            });
        WorkerStats::add(&io.stats.red_recovered, recovered);
        if unwrapped.is_err() {
            WorkerStats::add(&io.stats.red_malformed, 1);
        }
    }

    fn set_link(peer: &mut Peer, io: &Io<'_>, link: Link) {
        if peer.link == link {
            return;
        }
        let was_up = peer.link == Link::Up;
        peer.link = link;
        if link == Link::Up {
            peer.take_keys();
        }
        if was_up != (link == Link::Up) {
            // Unbounded: a link change is never dropped.
            let _ = io.events.send(WorkerEvent::Link {
                client: peer.client,
                up: link == Link::Up,
            });
        }
    }

    fn event(peer: &mut Peer, io: &mut Io<'_>, event: Event) {
        match event {
            Event::Connected => Self::set_link(peer, io, Link::Up),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                Self::set_link(peer, io, Link::Down);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if peer.rtc.is_connected() => {
                Self::set_link(peer, io, Link::Up);
            }
            Event::RtpPacket(pkt) => {
                WorkerStats::add(&io.stats.rtp_in, 1);
                let ext = pkt.header.ext_vals;
                if pkt.payload.is_empty() {
                    // Padding only (RFC 3550 §5.1; Chromium sends some
                    // beside RED): no audio. Dropped, and the talker's
                    // later packets renumbered so listeners see no gap.
                    peer.uplink_seq.drop_packet(pkt.header.sequence_number);
                    WorkerStats::add(&io.stats.padding_dropped, 1);
                    return;
                }
                let fwd = FwdPacket {
                    ssrc: *pkt.header.ssrc,
                    seq: peer.uplink_seq.map(pkt.header.sequence_number),
                    timestamp: pkt.header.timestamp,
                    marker: pkt.header.marker,
                    payload: pkt.payload,
                    arrival: pkt.timestamp,
                    audio_level: ext.audio_level,
                    voice_activity: ext.voice_activity,
                    red: None,
                };
                match peer.uplink_pts.kind(&peer.rtc, pkt.header.payload_type) {
                    UplinkPt::Red { primary } => Self::unwrap_red(peer, io, fwd, *primary),
                    kind => {
                        if kind == UplinkPt::Opus {
                            peer.red_rx.observe(fwd.seq);
                        }
                        io.uplink.push((peer.client, fwd));
                    }
                }
            }
            Event::MediaAdded(m) => {
                debug!(client = peer.client, mid = %m.mid, dir = ?m.direction, "media added")
            }
            Event::Closed => Self::set_link(peer, io, Link::Down),
            _ => {}
        }
    }
}
