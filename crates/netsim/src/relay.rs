//! A UDP relay that impairs what it carries, driven by [`Link`]s.

use std::{
    collections::{HashMap, hash_map::Entry},
    io,
    net::{SocketAddr, UdpSocket as StdUdpSocket},
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};
use tracing::debug;

use crate::{Link, LinkStats, Profile};

/// Largest datagram carried, bytes (larger ones are truncated by the
/// socket read; nothing in WebRTC sends them).
const MAX_DATAGRAM: usize = 2048;

/// Where a [`Relay`] listens and forwards to, and how it impairs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The address clients send to (what the server advertises as its
    /// media address).
    pub listen: SocketAddr,
    /// The real server the datagrams go on to.
    pub upstream: SocketAddr,
    /// Impairment from clients to the server, per client.
    pub uplink: Profile,
    /// Impairment from the server to clients, per client.
    pub downlink: Profile,
    /// Seed of the first client's uplink; each later link takes the next
    /// number, so a run with the same clients in the same order replays.
    pub seed: u64,
}

/// A running relay: each client address seen at [`RelayConfig::listen`]
/// gets its own socket towards the upstream (so the server sees one
/// address per client, as through a NAT) and its own uplink and downlink
/// [`Link`]. Runs on its own thread until dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    control: mpsc::UnboundedSender<Control>,
    stats: Arc<Mutex<RelayStats>>,
    thread: Option<JoinHandle<()>>,
}

/// Counters of a [`Relay`], summed over its clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Clients (source addresses) seen.
    pub clients: usize,
    /// Clients → server.
    pub uplink: LinkStats,
    /// Server → clients.
    pub downlink: LinkStats,
}

#[derive(Debug)]
enum Control {
    Outage(Duration, oneshot::Sender<Instant>),
    Profiles(Profile, Profile),
    Stop,
}

impl Relay {
    /// Binds `config.listen` and starts relaying.
    ///
    /// # Errors
    /// The listening socket cannot be bound (address in use, not local), or
    /// the relay's thread cannot start.
    pub fn start(config: RelayConfig) -> io::Result<Self> {
        let socket = StdUdpSocket::bind(config.listen)?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let (control, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(RelayStats::default()));
        let shared = stats.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("netsim-relay".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match UdpSocket::from_std(socket) {
                        Ok(socket) => run(socket, config, rx, shared).await,
                        Err(e) => tracing::error!("relay socket: {e}"),
                    }
                });
            })?;
        Ok(Self {
            addr,
            control,
            stats,
            thread: Some(thread),
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every client's link both ways for `length` from now; returns
    /// when the link will be back (or now, if the relay has stopped).
    pub fn outage(&self, length: Duration) -> Instant {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Outage(length, tx)).is_err() {
            return Instant::now();
        }
        rx.blocking_recv().unwrap_or_else(|_| Instant::now())
    }

    /// Changes the impairment of every client's links, for what is sent from
    /// now on.
    pub fn set_profiles(&self, uplink: Profile, downlink: Profile) {
        // A stopped relay has nothing to change.
        let _ = self.control.send(Control::Profiles(uplink, downlink));
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One client's path through the relay.
struct Flow {
    upstream: Arc<UdpSocket>,
    up: Link<Vec<u8>>,
    down: Link<Vec<u8>>,
    reader: tokio::task::JoinHandle<()>,
}

async fn run(
    listen: UdpSocket,
    config: RelayConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<Mutex<RelayStats>>,
) {
    let (down_tx, mut down_rx) = mpsc::unbounded_channel::<(SocketAddr, Vec<u8>)>();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let (mut uplink, mut downlink) = (config.uplink.clone(), config.downlink.clone());
    let mut outage: Option<Instant> = None;
    let mut next_seed = config.seed;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = flows
            .values()
            .flat_map(|f| [f.up.poll_timeout(), f.down.poll_timeout()])
            .flatten()
            .min();
        tokio::select! {
            got = listen.recv_from(&mut buf) => {
                let (n, client) = match got {
                    Ok(x) => x,
                    Err(e) => {
                        debug!("relay listen socket: {e}");
                        continue;
                    }
                };
                let now = Instant::now();
                let flow = match flows.entry(client) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        match open_flow(client, &config, &uplink, &downlink, next_seed, outage, &down_tx).await {
                            Ok(flow) => {
                                next_seed = next_seed.wrapping_add(2);
                                e.insert(flow)
                            }
                            Err(err) => {
                                debug!("relay: no upstream socket for {client}: {err}");
                                continue;
                            }
                        }
                    }
                };
                flow.up.offer(now, n, buf[..n].to_vec());
            }
            Some((client, data)) = down_rx.recv() => {
                if let Some(flow) = flows.get_mut(&client) {
                    flow.down.offer(Instant::now(), data.len(), data);
                }
            }
            cmd = control.recv() => match cmd {
                Some(Control::Outage(length, reply)) => {
                    let now = Instant::now();
                    for f in flows.values_mut() {
                        f.up.outage(now, length);
                        f.down.outage(now, length);
                    }
                    outage = Some(now + length);
                    let _ = reply.send(now + length);
                }
                Some(Control::Profiles(up, down)) => {
                    for f in flows.values_mut() {
                        f.up.set_profile(up.clone());
                        f.down.set_profile(down.clone());
                    }
                    (uplink, downlink) = (up, down);
                }
                Some(Control::Stop) | None => break,
            },
            () = sleep_until(deadline) => {}
        }
        let now = Instant::now();
        for (client, f) in &mut flows {
            while let Some(d) = f.up.poll_output(now) {
                // (`send`, not `try_send`: a new socket is not known to be
                // writable until the reactor has polled it once.)
                if let Err(e) = f.upstream.send(&d).await {
                    debug!("relay → upstream for {client}: {e}");
                }
            }
            while let Some(d) = f.down.poll_output(now) {
                if let Err(e) = listen.send_to(&d, *client).await {
                    debug!("relay → {client}: {e}");
                }
            }
        }
        let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
        *s = RelayStats {
            clients: flows.len(),
            uplink: sum(flows.values().map(|f| f.up.stats())),
            downlink: sum(flows.values().map(|f| f.down.stats())),
        };
    }
    for f in flows.values() {
        f.reader.abort();
    }
}

async fn open_flow(
    client: SocketAddr,
    config: &RelayConfig,
    uplink: &Profile,
    downlink: &Profile,
    seed: u64,
    outage: Option<Instant>,
    down_tx: &mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
) -> io::Result<Flow> {
    let local = SocketAddr::new(config.upstream.ip(), 0);
    let upstream = Arc::new(UdpSocket::bind(local).await?);
    upstream.connect(config.upstream).await?;
    let reader = {
        let (socket, tx) = (upstream.clone(), down_tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match socket.recv(&mut buf).await {
                    Ok(n) => {
                        if tx.send((client, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    // ECONNREFUSED while the server is down: keep reading.
                    Err(e) => debug!("relay upstream socket of {client}: {e}"),
                }
            }
        })
    };
    let mut up = Link::new(uplink.clone(), seed);
    let mut down = Link::new(downlink.clone(), seed.wrapping_add(1));
    let now = Instant::now();
    if let Some(until) = outage.filter(|&u| u > now) {
        up.outage(now, until - now);
        down.outage(now, until - now);
    }
    Ok(Flow {
        upstream,
        up,
        down,
        reader,
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn sum(stats: impl Iterator<Item = LinkStats>) -> LinkStats {
    stats.fold(LinkStats::default(), |a, b| LinkStats {
        offered: a.offered + b.offered,
        delivered: a.delivered + b.delivered,
        lost: a.lost + b.lost,
        outage: a.outage + b.outage,
        queue_full: a.queue_full + b.queue_full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (StdUdpSocket, SocketAddr) {
        let s = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let a = s.local_addr().expect("addr");
        (s, a)
    }

    #[test]
    fn relays_both_ways_with_one_upstream_address_per_client() {
        let (server, server_addr) = echo_server();
        let relay = Relay::start(RelayConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstream: server_addr,
            uplink: "delay=30ms".parse().expect("profile"),
            downlink: Profile::clean(),
            seed: 1,
        })
        .expect("relay");
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        for name in [b"alpha", b"bravo"] {
            let client = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let sent = Instant::now();
            client.send_to(name, relay.local_addr()).expect("send");
            let (n, from) = server.recv_from(&mut buf).expect("server receives");
            assert!(sent.elapsed() >= Duration::from_millis(30), "uplink delay");
            assert_eq!(&buf[..n], name);
            seen.push(from);
            server.send_to(b"reply", from).expect("reply");
            let (n, via) = client.recv_from(&mut buf).expect("client receives");
            assert_eq!((&buf[..n], via), (&b"reply"[..], relay.local_addr()));
        }
        assert_ne!(seen[0], seen[1], "one upstream address per client");
        // The relay updates its counters after its sends: wait for them.
        let deadline = Instant::now() + Duration::from_secs(5);
        let counted = |s: RelayStats| (s.clients, s.uplink.delivered, s.downlink.delivered);
        while counted(relay.stats()) != (2, 2, 2) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(counted(relay.stats()), (2, 2, 2));
    }

    #[test]
    fn outage_cuts_both_ways_until_it_ends() {
        let (server, server_addr) = echo_server();
        let relay = Relay::start(RelayConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstream: server_addr,
            uplink: Profile::clean(),
            downlink: Profile::clean(),
            seed: 1,
        })
        .expect("relay");
        let client = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut buf = [0u8; 64];
        client.send_to(b"before", relay.local_addr()).expect("send");
        server.recv_from(&mut buf).expect("before the outage");
        let back = relay.outage(Duration::from_millis(300));
        client.send_to(b"during", relay.local_addr()).expect("send");
        // Wait out the outage on the relay's own clock, then send again:
        // only the datagram after it arrives.
        std::thread::sleep(back.saturating_duration_since(Instant::now()));
        client.send_to(b"after", relay.local_addr()).expect("send");
        let (n, _) = server.recv_from(&mut buf).expect("after the outage");
        assert_eq!(&buf[..n], b"after");
        assert_eq!(relay.stats().uplink.outage, 1);
    }
}
