//! The SFU: worker threads that forward Opus RTP, never transcoding.
//!
//! Each worker is one OS thread with its own single-threaded tokio runtime,
//! one UDP socket and one str0m loop over all of its peers (one
//! [`str0m::Rtc`] per connection, multiplexed on the socket). The hub homes
//! a connection at its first offer, with the members of the channels it
//! joined; a channel's members may still live on different workers, so a
//! talker's packet is forwarded to local listeners
//! directly and handed to each other worker that has listeners in that
//! channel as one [`WorkerCmd::Forward`] (one `Arc`, no copy).
//!
//! Each listener has one send-only audio track (one SDP `mid`) per channel it
//! is in; a [`squawk_media::TrackRewriter`] per track rewrites sequence
//! numbers and timestamps so the track stays continuous when the talker
//! changes: no renegotiation per talker. Audio from a connection is forwarded
//! only into channels where the hub made it talker
//! ([`RouteUpdate::Talker`]); anything else is dropped and counted.
//!
//! The SFU knows nothing of the hub: it takes [`WorkerCmd`]s and reports
//! [`WorkerEvent`]s on an unbounded queue (link state is never dropped).
//! Who talks where and who listens is each worker's [`router::Router`];
//! the worker loop (`worker.rs`) only moves packets through str0m and the
//! socket. `docs/architecture.md` describes the loop.

mod batch;
mod hold;
mod keys;
pub(crate) mod peer;
pub(crate) mod router;
mod srtp;
mod worker;

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Instant,
};

use squawk_protocol::{ClientId, ErrorCode};
use tokio::sync::mpsc;

/// Server-internal channel id (the hub maps names to ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ChanId(pub u32);

/// One RTP packet from a talker, shared between workers.
#[derive(Debug)]
pub(crate) struct FwdPacket {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    pub arrival: Instant,
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    /// The same packet as RFC 2198 RED, with the packets of this talker
    /// forwarded just before it as redundant blocks (the server's `red_levels`),
    /// for listeners that negotiated RED; its block payload types are Opus
    /// and are set to each listener's own when it is written.
    pub red: Option<Arc<[u8]>>,
}

/// A change to the routing table, sent by the hub to every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteUpdate {
    /// `client`, living on `worker`, listens to `chan`.
    Listen {
        chan: ChanId,
        client: ClientId,
        worker: usize,
    },
    /// `client`, living on `worker`, no longer listens to `chan`.
    Unlisten {
        chan: ChanId,
        client: ClientId,
        worker: usize,
    },
    /// `client`, living on `worker`, pauses (muted) or resumes its downlink
    /// of `chan`; it stays a member and may still talk there.
    Pause {
        chan: ChanId,
        client: ClientId,
        worker: usize,
        paused: bool,
    },
    /// The floor holder of `chan` changed (`None`: Floor Idle or Revoke).
    Talker {
        chan: ChanId,
        talker: Option<ClientId>,
    },
    /// What `client` sent while it held no floor ([`hold`]): forward it
    /// (`forward`: the floor was just granted in answer to its Floor
    /// Request, and is routed) or drop it (Floor Deny, queued, or a grant
    /// out of the queue). Only `client`'s own worker holds any.
    Held { client: ClientId, forward: bool },
    /// `chan` no longer exists.
    DropChannel { chan: ChanId },
    /// Forget every route: the table is about to be sent again whole (to
    /// a worker restarted after a failure; never broadcast).
    Reset,
}

/// Commands to a worker.
#[derive(Debug)]
pub(crate) enum WorkerCmd {
    /// A new connection lives on this worker.
    AddPeer { client: ClientId },
    /// The connection is gone; free everything.
    RemovePeer { client: ClientId },
    /// The client's SDP offer.
    Offer { client: ClientId, sdp: String },
    /// The client's SDP answer to our offer.
    Answer { client: ClientId, sdp: String },
    /// Give `client` a downlink track for `chan` (a spare one, or a new
    /// m-line and a server offer); answered with
    /// [`WorkerEvent::TrackReady`] carrying `token`.
    AddTrack {
        client: ClientId,
        chan: ChanId,
        token: u64,
    },
    /// `client` left `chan`: its track becomes spare.
    RemoveTrack { client: ClientId, chan: ChanId },
    /// A routing change (every worker gets every one).
    Route(RouteUpdate),
    /// A packet from `talker` in `chan`, received by another worker.
    Forward {
        chan: ChanId,
        talker: ClientId,
        pkt: Arc<FwdPacket>,
    },
    /// Stop the worker (server shutdown).
    Shutdown,
    /// Make the worker's loop panic, as a bug would: tests of the failure
    /// boundary only (unit tests, and `kill -USR1` on a debug build, see
    /// `driver::CrashSignal`). Release builds do not have it.
    #[cfg(any(test, debug_assertions))]
    Crash,
}

/// What a worker reports to the hub, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerEvent {
    /// The connection's media path (ICE + DTLS) came up or went down.
    Link { client: ClientId, up: bool },
    /// The server's SDP answer to the client's offer.
    Answer { client: ClientId, sdp: String },
    /// A server SDP offer (a downlink m-line was added).
    Offer { client: ClientId, sdp: String },
    /// The downlink track asked for by [`WorkerCmd::AddTrack`] exists, with
    /// this SDP `mid`.
    TrackReady {
        client: ClientId,
        chan: ChanId,
        mid: String,
        token: u64,
    },
    /// SDP misuse or an unparseable SDP.
    Error {
        client: ClientId,
        code: ErrorCode,
        message: String,
    },
    /// The worker's loop panicked (a bug, caught at the thread's boundary):
    /// every peer it held, with its media, is lost. It has restarted empty on
    /// the same socket and needs the routing table again. Other workers and
    /// their connections are not affected.
    Failed { worker: usize },
}

/// Sender of worker events (unbounded: these are never dropped).
pub(crate) type EventTx = mpsc::UnboundedSender<WorkerEvent>;

/// Counters of one worker, readable from any thread.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// RTP packets received from clients.
    pub rtp_in: AtomicU64,
    /// RTP packets written to listeners (one per listener per packet).
    pub rtp_out: AtomicU64,
    /// Of `rtp_out`, packets the SFU protected with its own SRTP sender
    /// (the rest went through str0m: before a listener's keys and media
    /// address were known).
    pub rtp_out_direct: AtomicU64,
    /// Datagrams the socket refused (full send buffer): dropped.
    pub send_dropped: AtomicU64,
    /// RTP packets dropped because the sender held no floor (held, and
    /// not forwarded: too old, denied, queued).
    pub dropped_no_floor: AtomicU64,
    /// RTP packets that arrived before their sender's Floor Granted, held
    /// and forwarded on the grant.
    pub held_forwarded: AtomicU64,
    /// UDP datagrams that were not STUN/DTLS/RTP/RTCP or matched no peer.
    pub stray_datagrams: AtomicU64,
    /// Uplink packets lost on the way to the SFU and recovered from the
    /// redundant blocks of a later RED packet (RFC 2198).
    pub red_recovered: AtomicU64,
    /// Padding-only uplink packets dropped (the talker's later packets
    /// renumbered around them).
    pub padding_dropped: AtomicU64,
    /// RED packets from clients that did not parse, or whose primary was
    /// not Opus: dropped.
    pub red_malformed: AtomicU64,
    /// Peers on this worker.
    pub peers: AtomicU64,
    /// Times this worker's loop panicked and was restarted.
    pub failures: AtomicU64,
    /// Forwarding delay histogram: bucket `k` counts packets whose time from
    /// arrival at the worker to being handed to the socket was below
    /// `2^k` µs (and at least `2^(k-1)` µs); the last bucket takes the rest.
    pub delay_hist: [AtomicU64; DELAY_BUCKETS],
}

/// Buckets of [`WorkerStats::delay_hist`]: up to 2^23 µs ≈ 8.4 s.
pub const DELAY_BUCKETS: usize = 24;

impl WorkerStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn record_delay(&self, micros: u64) {
        let k = (64 - micros.leading_zeros() as usize).min(DELAY_BUCKETS - 1);
        self.delay_hist[k].fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of all workers' counters (`GET /stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SfuStats {
    /// RTP packets received from clients.
    pub rtp_in: u64,
    /// RTP packets written to listeners.
    pub rtp_out: u64,
    /// Of `rtp_out`, packets protected by the SFU's own SRTP sender.
    #[serde(default)]
    pub rtp_out_direct: u64,
    /// Datagrams the socket refused (full send buffer): dropped.
    #[serde(default)]
    pub send_dropped: u64,
    /// RTP packets dropped because the sender held no floor.
    pub dropped_no_floor: u64,
    /// RTP packets sent before Floor Granted, held and forwarded on it.
    #[serde(default)]
    pub held_forwarded: u64,
    /// Unparseable or unmatched UDP datagrams.
    pub stray_datagrams: u64,
    /// Uplink packets recovered from RED.
    #[serde(default)]
    pub red_recovered: u64,
    /// Malformed RED packets dropped.
    #[serde(default)]
    pub red_malformed: u64,
    /// Padding-only uplink packets dropped.
    #[serde(default)]
    pub padding_dropped: u64,
    /// Connected peers.
    pub peers: u64,
    /// Worker loop failures (panics caught and restarted).
    #[serde(default)]
    pub failures: u64,
    /// Forwarding delay histogram (see [`WorkerStats::delay_hist`]).
    pub delay_hist: [u64; DELAY_BUCKETS],
}

impl SfuStats {
    /// Upper bound, µs, of the bucket holding quantile `q` (0..1) of the
    /// delays counted in `self` minus `before`; `None` with no packets.
    pub fn delay_quantile_us(&self, before: &SfuStats, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .delay_hist
            .iter()
            .zip(&before.delay_hist)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (k, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(1u64 << k);
            }
        }
        None
    }
}

/// Runs worker `idx` on this thread until [`WorkerCmd::Shutdown`]. A panic
/// in its loop is caught here, at the thread's boundary: the hub is told
/// ([`WorkerEvent::Failed`]) and the worker starts again, empty, on the same
/// socket and command queue, so one bug costs only this worker's
/// connections (they are closed with `media_failed` and reconnect), never
/// the process or another worker's audio.
#[allow(clippy::too_many_arguments)] // the worker's whole context, each used once
fn supervise(
    idx: usize,
    socket: &std::net::UdpSocket,
    candidate: SocketAddr,
    red_levels: usize,
    mut rx: mpsc::UnboundedReceiver<WorkerCmd>,
    others: &[mpsc::UnboundedSender<WorkerCmd>],
    events: &EventTx,
    stats: &Arc<WorkerStats>,
) {
    loop {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let socket = tokio::net::UdpSocket::from_std(socket.try_clone()?)?;
                let worker = worker::Worker::new(
                    idx,
                    socket,
                    candidate,
                    red_levels,
                    others.to_vec(),
                    events.clone(),
                    stats.clone(),
                );
                worker.run(&mut rx).await;
                Ok::<(), std::io::Error>(())
            })
        }));
        match run {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::error!("sfu-{idx}: cannot start: {e}");
                return;
            }
            Err(_) => {
                tracing::error!(
                    worker = idx,
                    "sfu worker failed (panic above): its connections are closed with \
                     media_failed; restarting it"
                );
                stats.peers.store(0, std::sync::atomic::Ordering::Relaxed);
                stats
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if events.send(WorkerEvent::Failed { worker: idx }).is_err() {
                    return; // the hub is gone: shutting down
                }
            }
        }
    }
}

/// Handles to the running workers.
#[derive(Debug)]
pub(crate) struct Workers {
    txs: Vec<mpsc::UnboundedSender<WorkerCmd>>,
    stats: Vec<Arc<WorkerStats>>,
    addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Binds one UDP socket per worker (ports `base.port() + i`, or
    /// ephemeral when 0) and starts the worker threads.
    pub(crate) fn start(
        count: usize,
        base: SocketAddr,
        advertise: Option<std::net::IpAddr>,
        red_levels: usize,
        events: EventTx,
    ) -> std::io::Result<Self> {
        let mut sockets = Vec::with_capacity(count);
        for i in 0..count {
            let port = if base.port() == 0 {
                0
            } else {
                u16::try_from(i)
                    .ok()
                    .and_then(|i| base.port().checked_add(i))
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!("media port {} + worker {i} exceeds 65535", base.port()),
                        )
                    })?
            };
            let socket = UdpSocket::bind(SocketAddr::new(base.ip(), port))?;
            socket.set_nonblocking(true)?;
            sockets.push(socket);
        }
        let mut txs = Vec::with_capacity(count);
        let mut rxs = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = mpsc::unbounded_channel();
            txs.push(tx);
            rxs.push(rx);
        }
        let mut addrs = Vec::with_capacity(count);
        let mut stats = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for (idx, (socket, rx)) in sockets.into_iter().zip(rxs).enumerate() {
            let bound = socket.local_addr()?;
            let candidate = SocketAddr::new(advertise.unwrap_or(bound.ip()), bound.port());
            addrs.push(candidate);
            let st = Arc::new(WorkerStats::default());
            stats.push(st.clone());
            let others = txs.clone();
            let events = events.clone();
            let handle = std::thread::Builder::new()
                .name(format!("sfu-{idx}"))
                .spawn(move || {
                    supervise(
                        idx, &socket, candidate, red_levels, rx, &others, &events, &st,
                    )
                })?;
            threads.push(handle);
        }
        Ok(Self {
            txs,
            stats,
            addrs,
            threads,
        })
    }

    /// Number of workers.
    pub(crate) fn len(&self) -> usize {
        self.txs.len()
    }

    /// The advertised media address of each worker.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Sends `cmd` to worker `idx`.
    pub(crate) fn send(&self, idx: usize, cmd: WorkerCmd) {
        if let Some(tx) = self.txs.get(idx) {
            // A worker only stops at shutdown; a failed send then is harmless.
            let _ = tx.send(cmd);
        }
    }

    /// Sends `update` to every worker.
    pub(crate) fn route(&self, update: RouteUpdate) {
        for tx in &self.txs {
            let _ = tx.send(WorkerCmd::Route(update));
        }
    }

    /// A handle that can read the counters.
    pub(crate) fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.stats.clone())
    }

    /// Stops the workers and joins their threads. Workers hold each other's
    /// senders (to forward), so they stop on [`WorkerCmd::Shutdown`], not on
    /// a closed queue.
    pub(crate) fn shutdown(&mut self) {
        for tx in &self.txs {
            let _ = tx.send(WorkerCmd::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads all workers' counters.
#[derive(Debug, Clone)]
pub struct StatsHandle(Vec<Arc<WorkerStats>>);

impl StatsHandle {
    /// Sums the counters of all workers.
    pub fn snapshot(&self) -> SfuStats {
        let mut s = SfuStats::default();
        for w in self.per_worker() {
            s.rtp_in += w.rtp_in;
            s.rtp_out += w.rtp_out;
            s.rtp_out_direct += w.rtp_out_direct;
            s.send_dropped += w.send_dropped;
            s.dropped_no_floor += w.dropped_no_floor;
            s.held_forwarded += w.held_forwarded;
            s.stray_datagrams += w.stray_datagrams;
            s.red_recovered += w.red_recovered;
            s.red_malformed += w.red_malformed;
            s.padding_dropped += w.padding_dropped;
            s.peers += w.peers;
            s.failures += w.failures;
            for (acc, b) in s.delay_hist.iter_mut().zip(&w.delay_hist) {
                *acc += b;
            }
        }
        s
    }

    /// Each worker's counters, by worker index.
    pub fn per_worker(&self) -> Vec<SfuStats> {
        self.0
            .iter()
            .map(|w| {
                let mut s = SfuStats {
                    rtp_in: w.rtp_in.load(Ordering::Relaxed),
                    rtp_out: w.rtp_out.load(Ordering::Relaxed),
                    rtp_out_direct: w.rtp_out_direct.load(Ordering::Relaxed),
                    send_dropped: w.send_dropped.load(Ordering::Relaxed),
                    dropped_no_floor: w.dropped_no_floor.load(Ordering::Relaxed),
                    held_forwarded: w.held_forwarded.load(Ordering::Relaxed),
                    stray_datagrams: w.stray_datagrams.load(Ordering::Relaxed),
                    red_recovered: w.red_recovered.load(Ordering::Relaxed),
                    red_malformed: w.red_malformed.load(Ordering::Relaxed),
                    padding_dropped: w.padding_dropped.load(Ordering::Relaxed),
                    peers: w.peers.load(Ordering::Relaxed),
                    failures: w.failures.load(Ordering::Relaxed),
                    ..SfuStats::default()
                };
                for (acc, b) in s.delay_hist.iter_mut().zip(&w.delay_hist) {
                    *acc = b.load(Ordering::Relaxed);
                }
                s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to 10 s for `cond` (state another thread changes).
    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !cond() {
            assert!(
                std::time::Instant::now() < end,
                "timed out waiting for {what}"
            );
            std::thread::yield_now();
        }
    }

    fn peers(w: &Workers) -> Vec<u64> {
        w.stats_handle()
            .per_worker()
            .iter()
            .map(|s| s.peers)
            .collect()
    }

    /// A worker that panics is reported and restarted empty on its socket;
    /// the other worker keeps its peers; shutdown still stops both.
    #[test]
    fn a_failed_worker_is_reported_restarted_and_alone_in_losing_its_peers() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut w = Workers::start(2, "127.0.0.1:0".parse().unwrap(), None, 2, tx).unwrap();
        let addrs = w.addrs().to_vec();
        w.send(0, WorkerCmd::AddPeer { client: 1 });
        w.send(1, WorkerCmd::AddPeer { client: 2 });
        wait_until("both peers", || peers(&w) == [1, 1]);

        w.send(0, WorkerCmd::Crash);
        let mut failed = None;
        wait_until("the failure report", || {
            while let Ok(ev) = rx.try_recv() {
                if let WorkerEvent::Failed { worker } = ev {
                    failed = Some(worker);
                }
            }
            failed.is_some()
        });
        assert_eq!(failed, Some(0));
        assert_eq!(peers(&w), [0, 1], "worker 1 keeps its peer");
        let failures: Vec<u64> = w
            .stats_handle()
            .per_worker()
            .iter()
            .map(|s| s.failures)
            .collect();
        assert_eq!(failures, [1, 0]);

        // Restarted: it serves new peers on the same socket.
        w.send(0, WorkerCmd::AddPeer { client: 3 });
        wait_until("a peer on the restarted worker", || peers(&w) == [1, 1]);
        assert_eq!(w.addrs(), addrs);
        w.shutdown();
    }

    #[test]
    fn delay_histogram_quantiles() {
        let w = WorkerStats::default();
        for _ in 0..98 {
            w.record_delay(30); // bucket [16, 32)
        }
        w.record_delay(700); // [512, 1024)
        w.record_delay(5_000); // [4096, 8192)
        let s = StatsHandle(vec![Arc::new(w)]).snapshot();
        let zero = SfuStats::default();
        assert_eq!(s.delay_quantile_us(&zero, 0.5), Some(32));
        assert_eq!(s.delay_quantile_us(&zero, 0.99), Some(1024));
        assert_eq!(s.delay_quantile_us(&zero, 1.0), Some(8192));
        assert_eq!(
            s.delay_quantile_us(&s, 0.5),
            None,
            "no packets in the window"
        );
    }
}
