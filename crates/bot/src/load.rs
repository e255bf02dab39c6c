//! `squawk-bot load`: a load generator lighter than the server it loads.
//!
//! R rooms × M members; in each room one talker sends a 20 ms Opus-sized
//! packet every 20 ms (50 packets/s, talkers spread over the frame) and
//! the M−1 others listen. Every client is a str0m `Rtc` (full ICE,
//! controlling) with its own UDP socket and WebSocket, all in this process.
//! Listeners feed str0m only STUN, DTLS and RTCP; RTP datagrams are counted
//! by their first two bytes (RFC 7983 demultiplexing, RFC 5761 §4) and never
//! decrypted or decoded, so a listener costs a socket read per packet.
//!
//! Figures (one JSON line with `--json`), over a window after a warm-up:
//! server CPU per forwarded packet (user + system time of the server
//! process from `/proc`, over the packets it wrote, `rtp_out` of `/stats`),
//! server RSS, delivery (packets counted by listeners over packets sent ×
//! (M−1)), the server's added delay (arrival to send, its histogram's p50
//! and p99 bucket bounds) and this process's own CPU.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use squawk_protocol::{ChannelName, ClientMessage, PROTOCOL_VERSION, ServerMessage};
use str0m::{
    Candidate, Event, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    format::Codec,
    media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt},
    net::{Protocol, Receive},
};
use tokio::net::UdpSocket;
use tokio_tungstenite::{connect_async, tungstenite::Message};

use crate::bench::{ServerProc, cpu_seconds_of};

/// `squawk-bot load` options.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Rooms (channels), one talker each.
    #[arg(long, default_value_t = 12)]
    pub rooms: usize,
    /// Members per room, the talker included.
    #[arg(long, default_value_t = 15)]
    pub members: usize,
    /// Measured window, s.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Warm-up after everyone talks or listens, before the window, s.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server binary [default: squawk-server next to this program].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// SFU worker threads of the server [default: the server's, one per core].
    #[arg(long)]
    pub workers: Option<usize>,
    /// After the window, this many late entries, one after another: a client
    /// with media up joins a room whose talker holds the floor; reports
    /// join → `joined` → first RTP p50/p95.
    #[arg(long, default_value_t = 0)]
    pub late_joins: usize,
}

/// Opus payload size, bytes: about 28 kbps at 50 packets/s, as the peers'
/// load harness sends.
const PAYLOAD_BYTES: usize = 70;
/// Opus frame, samples at 48 kHz (20 ms).
const FRAME: u64 = 960;

#[derive(Default)]
pub(crate) struct Counters {
    /// Clients ready: media up, joined, and (talkers) granted.
    pub(crate) ready: AtomicU64,
    /// RTP packets sent by talkers.
    pub(crate) sent: AtomicU64,
    /// RTP packets counted by listeners.
    pub(crate) received: AtomicU64,
    /// Clients that failed (with the first error printed).
    pub(crate) failed: AtomicU64,
    /// Set to make the clients stop.
    pub(crate) stop: AtomicBool,
}

/// RTP, not RTCP: first byte 128..=191 (RFC 7983), second byte not an RTCP
/// packet type 192..=223 (RFC 5761 §4).
fn is_rtp(b: &[u8]) -> bool {
    b.len() >= 12 && (128..=191).contains(&b[0]) && !(192..=223).contains(&b[1])
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type WsRx = futures_util::stream::SplitStream<Ws>;

/// One str0m client of the load: its signaling writer, UDP socket and `Rtc`.
struct Client {
    ws_tx: futures_util::stream::SplitSink<Ws, Message>,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pt: Option<Pt>,
    /// Our offer, until the server answers it.
    pending: Option<SdpPendingOffer>,
    timeout: Instant,
    connected: bool,
}

impl Client {
    /// Connects signaling and a UDP socket, offers one send-only audio
    /// track and sends `hello` (as `name`), a `join` for each of `channels`
    /// and the offer (the desktop engine's order, which lets the server
    /// home the media with the channel's). Returns the client and the
    /// signaling reader.
    async fn connect(
        url: &str,
        name: String,
        channels: &[ChannelName],
    ) -> anyhow::Result<(Self, WsRx)> {
        let (ws, _) = connect_async(url).await.context("connect")?;
        let (ws_tx, ws_rx) = ws.split();
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().context("offer")?;
        let mut c = Client {
            ws_tx,
            rtc,
            socket,
            local,
            mid,
            pt: None,
            pending: Some(pending),
            timeout: now,
            connected: false,
        };
        c.drain()?;
        c.send(ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            name,
            password: None,
            token: None,
        })
        .await?;
        for channel in channels {
            c.send(ClientMessage::Join {
                channel: channel.clone(),
            })
            .await?;
        }
        c.send(ClientMessage::Offer {
            sdp: offer.to_sdp_string(),
        })
        .await?;
        Ok((c, ws_rx))
    }

    async fn send(&mut self, m: ClientMessage) -> anyhow::Result<()> {
        self.ws_tx.send(Message::Text(m.to_json().into())).await?;
        Ok(())
    }

    /// Takes one frame from the signaling reader: the SDP exchange is
    /// handled here; any other server message is returned.
    async fn signaling(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> anyhow::Result<Option<ServerMessage>> {
        let Some(Ok(frame)) = frame else {
            anyhow::bail!("signaling closed")
        };
        let Message::Text(text) = frame else {
            return Ok(None);
        };
        match ServerMessage::from_json(&text)? {
            ServerMessage::Answer { sdp } => {
                if let Some(p) = self.pending.take() {
                    let answer = SdpAnswer::from_sdp_string(&sdp)?;
                    self.rtc.sdp_api().accept_answer(p, answer)?;
                    self.drain()?;
                }
                Ok(None)
            }
            ServerMessage::Offer { sdp } => {
                let offer = SdpOffer::from_sdp_string(&sdp)?;
                let answer = self.rtc.sdp_api().accept_offer(offer)?;
                self.drain()?;
                self.send(ClientMessage::Answer {
                    sdp: answer.to_sdp_string(),
                })
                .await?;
                Ok(None)
            }
            ServerMessage::Error { code, message } => {
                anyhow::bail!("server error {code:?}: {message}")
            }
            other => Ok(Some(other)),
        }
    }

    /// One datagram from `src`. Once connected, RTP is only recognised
    /// (returns `true`), never decrypted: a listener's whole cost. The rest
    /// (STUN, DTLS, RTCP) goes to str0m.
    fn datagram(&mut self, src: SocketAddr, data: &[u8]) -> anyhow::Result<bool> {
        if self.connected && is_rtp(data) {
            return Ok(true);
        }
        if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, data) {
            self.input(Input::Receive(Instant::now(), r))?;
        }
        Ok(false)
    }

    /// Drains str0m until its next timeout (the drive rule).
    fn drain(&mut self) -> anyhow::Result<()> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(_) => {}
            }
        }
    }

    fn input(&mut self, input: Input) -> anyhow::Result<()> {
        self.rtc.handle_input(input)?;
        self.drain()
    }
}

/// One client of room `room` (talker or listener) until `counters.stop`.
pub(crate) async fn run_client(
    url: String,
    room: usize,
    member: usize,
    talker: bool,
    phase: Duration,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let name = format!("{}{room}-{member}", if talker { "T" } else { "L" });
    let channel = format!("load{room}");
    let (mut c, mut ws_rx) = Client::connect(&url, name, &[channel.parse()?]).await?;
    let mut joined = false;
    let mut requested = false;
    let mut talking = false;
    let mut counted_ready = false;
    let mut ts: u64 = rand_u32() as u64;
    let payload: Arc<[u8]> = vec![0x78u8; PAYLOAD_BYTES].into();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + phase,
        Duration::from_millis(20),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    while !counters.stop.load(Ordering::Relaxed) {
        let ready = c.connected && joined && (!talker || talking);
        if ready && !counted_ready {
            counted_ready = true;
            counters.ready.fetch_add(1, Ordering::Relaxed);
        }
        if talker && c.connected && joined && !requested {
            requested = true;
            c.send(ClientMessage::FloorRequest {
                channel: channel.parse()?,
                priority: Default::default(),
                queue: false,
            })
            .await?;
        }
        let timeout = c.timeout;
        tokio::select! {
            frame = ws_rx.next() => match c.signaling(frame).await? {
                Some(ServerMessage::Joined { .. }) => joined = true,
                Some(ServerMessage::FloorGranted { .. }) => talking = true,
                // The talk time ran out (Floor Revoke, `max_talk_secs`):
                // press again, as a user holding the key would.
                Some(ServerMessage::FloorRevoke { .. }) => (talking, requested) = (false, false),
                Some(ServerMessage::FloorDeny { reason, .. }) => anyhow::bail!("floor denied: {reason:?}"),
                _ => {}
            },
            res = c.socket.recv_from(&mut buf) => {
                let (n, src) = res?;
                if c.datagram(src, &buf[..n])? {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = tokio::time::sleep_until(timeout.into()) => {
                c.input(Input::Timeout(Instant::now()))?;
            }
            _ = tick.tick(), if talking => {
                let now = Instant::now();
                if c.pt.is_none() {
                    c.pt = c.rtc.writer(c.mid).and_then(|w| {
                        w.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt())
                    });
                }
                let (Some(pt), Some(w)) = (c.pt, c.rtc.writer(c.mid)) else { continue };
                w.write(pt, now, MediaTime::new(ts, Frequency::FORTY_EIGHT_KHZ), payload.clone())?;
                ts += FRAME;
                counters.sent.fetch_add(1, Ordering::Relaxed);
                c.input(Input::Timeout(now))?;
            }
        }
    }
    c.rtc.disconnect();
    Ok(())
}

/// One late entry's timings.
pub(crate) struct LateEntry {
    /// `join` sent → `joined` received.
    pub(crate) joined: Duration,
    /// `joined` received → first RTP datagram of the talker.
    pub(crate) first_rtp: Duration,
    /// `floor_taken` came after `joined` (the MCPTT late-entry order).
    pub(crate) floor_taken_after_joined: bool,
}

/// A listener that brings its media up first, then joins `room` while its
/// talker holds the floor (late entry), and times it.
pub(crate) async fn late_join(url: &str, room: usize, k: usize) -> anyhow::Result<LateEntry> {
    let (mut c, mut ws_rx) = Client::connect(url, format!("Late{k}"), &[]).await?;
    let (mut join_sent, mut joined_at, mut taken_after) = (None::<Instant>, None::<Instant>, None);
    let mut buf = vec![0u8; 2048];
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if c.connected && join_sent.is_none() {
            let join = ClientMessage::Join {
                channel: format!("load{room}").parse()?,
            };
            c.send(join).await?;
            join_sent = Some(Instant::now());
        }
        let timeout = c.timeout;
        tokio::select! {
            () = tokio::time::sleep_until(give_up) => anyhow::bail!("late entry {k}: no audio within 10 s"),
            frame = ws_rx.next() => match c.signaling(frame).await? {
                Some(ServerMessage::Joined { .. }) => joined_at = Some(Instant::now()),
                Some(ServerMessage::FloorTaken { .. }) if taken_after.is_none() => {
                    taken_after = Some(joined_at.is_some());
                }
                _ => {}
            },
            res = c.socket.recv_from(&mut buf) => {
                let (n, src) = res?;
                if c.datagram(src, &buf[..n])? {
                    let (Some(sent), Some(joined)) = (join_sent, joined_at) else { continue };
                    let at = Instant::now();
                    c.rtc.disconnect();
                    return Ok(LateEntry {
                        joined: joined - sent,
                        first_rtp: at - joined,
                        floor_taken_after_joined: taken_after.unwrap_or(false),
                    });
                }
            }
            () = tokio::time::sleep_until(timeout.into()) => {
                c.input(Input::Timeout(Instant::now()))?;
            }
        }
    }
}

/// `q` quantile (0..=1) of sorted `v`, ms, one decimal.
pub(crate) fn quantile_ms(v: &[Duration], q: f64) -> Option<f64> {
    let at = ((v.len().checked_sub(1)?) as f64 * q).round() as usize;
    Some((v[at].as_secs_f64() * 1e4).round() / 10.0)
}

fn rand_u32() -> u32 {
    // Enough spread for an RTP timestamp origin; not for anything secret.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t.wrapping_mul(2_654_435_761)
}

/// Starts `rooms` × `members` clients against `url` (member 0 of each room
/// talks, the talkers spread over the 20 ms frame), a few at a time as
/// clients would come in, and waits until all are ready (media up, joined,
/// talkers granted). Returns their tasks and the set-up time, s.
///
/// # Errors
/// A client failed, or not all were ready within 120 s.
pub(crate) async fn start_rooms(
    url: &str,
    rooms: usize,
    members: usize,
    counters: &Arc<Counters>,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, f64)> {
    let clients = rooms * members;
    let mut tasks = Vec::new();
    for room in 0..rooms {
        for member in 0..members {
            let talker = member == 0;
            // Talkers spread over the 20 ms frame, as the peers' harness.
            let phase =
                Duration::from_micros((room as u64 * 20_000 / rooms.max(1) as u64) % 20_000);
            let counters = counters.clone();
            let url = url.to_string();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = run_client(url, room, member, talker, phase, counters.clone()).await
                    && !counters.stop.load(Ordering::Relaxed)
                    && counters.failed.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("load client {room}-{member}: {e:#}");
                }
            }));
            // Connects a few at a time, as clients would come in.
            if tasks.len() % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let setup = Instant::now();
    while counters.ready.load(Ordering::Relaxed) < clients as u64 {
        anyhow::ensure!(
            counters.failed.load(Ordering::Relaxed) == 0,
            "a load client failed"
        );
        anyhow::ensure!(
            setup.elapsed() < Duration::from_secs(120),
            "only {} of {clients} clients ready after 120 s",
            counters.ready.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((tasks, setup.elapsed().as_secs_f64()))
}

/// Runs the load and prints its figures.
pub async fn run(args: &LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.members >= 2, "--members must be at least 2");
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("squawk-server"),
    };
    let clients = args.rooms * args.members;
    let server = ServerProc::start_for_clients(&bin, clients, args.workers)?;
    let url = server.url();
    let counters = Arc::new(Counters::default());
    let (tasks, setup_s) = start_rooms(&url, args.rooms, args.members, &counters).await?;
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let me = std::process::id();
    let snap = |c: &Counters| {
        (
            c.sent.load(Ordering::Relaxed),
            c.received.load(Ordering::Relaxed),
        )
    };
    let (cpu0, me0, s0, (tx0, rx0), t0) = (
        server.cpu_seconds()?,
        cpu_seconds_of(me)?,
        server.stats().await?,
        snap(&counters),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (cpu1, me1, s1, (tx1, rx1), wall) = (
        server.cpu_seconds()?,
        cpu_seconds_of(me)?,
        server.stats().await?,
        snap(&counters),
        t0.elapsed().as_secs_f64(),
    );
    let rss = server.rss_mib()?;
    // Late entries while every talker still holds its floor.
    let (mut to_joined, mut to_rtp, mut in_order) = (Vec::new(), Vec::new(), 0);
    for k in 0..args.late_joins {
        let e = late_join(&url, k % args.rooms, k).await?;
        to_joined.push(e.joined);
        to_rtp.push(e.first_rtp);
        in_order += usize::from(e.floor_taken_after_joined);
    }
    to_joined.sort();
    to_rtp.sort();
    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let forwarded = s1.rtp_out.saturating_sub(s0.rtp_out) as f64;
    let cpu = cpu1 - cpu0;
    let expected = (tx1 - tx0) as f64 * (args.members - 1) as f64;
    let ms = |us: Option<u64>| us.map(|u| u as f64 / 1000.0);
    let result = json!({
        "type": "result",
        "server": "squawk",
        "rooms": args.rooms,
        "members": args.members,
        "clients": clients,
        "server_workers": args.workers,
        "window_s": (wall * 10.0).round() / 10.0,
        "setup_s": (setup_s * 10.0).round() / 10.0,
        "forwarded_pps": (forwarded / wall).round(),
        "server_cpu_s": cpu,
        "server_cpu_pct_of_core": (cpu / wall * 1000.0).round() / 10.0,
        "server_cpu_us_per_forwarded_pkt": if forwarded > 0.0 { (cpu * 1e7 / forwarded).round() / 10.0 } else { f64::NAN },
        "server_rss_mb": (rss * 10.0).round() / 10.0,
        "delivery": if expected > 0.0 { ((rx1 - rx0) as f64 / expected * 1e4).round() / 1e4 } else { f64::NAN },
        "added_delay_p50_ms": ms(s1.delay_quantile_us(&s0, 0.5)),
        "added_delay_p99_ms": ms(s1.delay_quantile_us(&s0, 0.99)),
        "loadgen_cpu_pct": ((me1 - me0) / wall * 1000.0).round() / 10.0,
        "late_joins": args.late_joins,
        "late_join_to_joined_ms_p50": quantile_ms(&to_joined, 0.5),
        "late_join_to_joined_ms_p95": quantile_ms(&to_joined, 0.95),
        "late_joined_to_first_rtp_ms_p50": quantile_ms(&to_rtp, 0.5),
        "late_joined_to_first_rtp_ms_p95": quantile_ms(&to_rtp, 0.95),
        "late_floor_taken_after_joined": in_order,
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "rooms {} × {} members: server {} µs CPU per forwarded packet ({} % of a core), \
             RSS {} MB, delivery {}, added delay p99 < {} ms; load generator {} % of a core",
            args.rooms,
            args.members,
            result["server_cpu_us_per_forwarded_pkt"],
            result["server_cpu_pct_of_core"],
            result["server_rss_mb"],
            result["delivery"],
            result["added_delay_p99_ms"],
            result["loadgen_cpu_pct"],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_rtp, quantile_ms};
    use std::time::Duration;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&v, 0.5), Some(51.0));
        assert_eq!(quantile_ms(&v, 0.95), Some(95.0));
        assert_eq!(quantile_ms(&v, 1.0), Some(100.0));
        assert_eq!(quantile_ms(&[], 0.5), None);
    }

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 111; // Opus
        assert!(is_rtp(&rtp));
        rtp[1] = 0x80 | 111; // marker bit set
        assert!(is_rtp(&rtp));
        let mut rtcp = rtp;
        rtcp[1] = 200; // Sender Report
        assert!(!is_rtp(&rtcp));
        assert!(!is_rtp(&[0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "STUN");
        assert!(
            !is_rtp(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            "DTLS"
        );
        assert!(!is_rtp(&[0x80, 111]), "too short");
    }
}
