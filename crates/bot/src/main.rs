//! `squawk-bot`: a headless Squawk client for tests, bots and benchmarks.
//!
//! Every subcommand prints one JSON object per line on stdout for each
//! notable event (`{"event":"ready"}`, `{"event":"floor_granted",...}`), so
//! scripts and tests can follow it.

mod bench;
mod load;
mod processing;
mod soak;
mod storm;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use squawk_engine::{
    Engine, EngineConfig, EngineEvent, FloorOptions, LocalEvent,
    audio::{InputSpec, OutputSpec, mixer::ChannelMix, wav::read_mono_48k},
};
use squawk_protocol::{ChannelName, Priority, ServerMessage};
use tokio::io::AsyncWriteExt;

/// Headless Squawk client.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server: its signaling URL (`ws://HOST:PORT/ws`,
    /// `wss://HOST/ws`), the browser link (`http(s)://HOST:PORT/c/CHANNEL`)
    /// or `HOST[:PORT]`; read as its signaling URL.
    #[arg(long, global = true, default_value = "ws://127.0.0.1:7300/ws", value_parser = signaling_url)]
    server: String,
    /// Trust the CA certificates in this PEM file for `wss://`, beside the
    /// system's.
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Accept the `wss://` server whose certificate has this SHA-256
    /// fingerprint (64 hex digits, colons allowed), whoever issued it: a
    /// self-signed server. An unknown certificate is refused otherwise,
    /// with its fingerprint in the error.
    #[arg(long, global = true, value_name = "SHA256", value_parser = squawk_engine::tls::parse_fingerprint)]
    pin: Option<[u8; 32]>,
    /// Display name.
    #[arg(long, global = true, default_value = "bot")]
    name: String,
    /// Server password, for a server that has one; with `--user`, the
    /// account's password (also from `SQUAWK_PASSWORD`, which keeps it out
    /// of the process list).
    #[arg(long, global = true, env = "SQUAWK_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Sign in to a server with accounts as this user (`POST
    /// /api/v1/login` with `--password`/`SQUAWK_PASSWORD`); the server then
    /// shows the account's display name instead of `--name`.
    #[arg(long, global = true, value_name = "USERNAME", requires = "password")]
    user: Option<String>,
    /// Reach the server through a TURN relay only (`iceTransportPolicy:
    /// "relay"`), with the TURN servers its `welcome` names. Prints an
    /// `ice` line with the selected pair's candidate types once media is up.
    #[arg(long, global = true)]
    ice_relay_only: bool,
    /// A fixed Opus expected packet loss, % (0-100): how much in-band FEC
    /// it spends (RFC 6716 §2.1.7). Without it the engine starts at 10 %
    /// and follows the loss the server reports (RTCP receiver reports).
    #[arg(long, global = true, value_name = "PCT", value_parser = clap::value_parser!(i32).range(0..=100))]
    expected_loss: Option<i32>,
    /// Send without Opus in-band FEC (no LBRR, RFC 6716 §2.1.7): a lost
    /// packet is then only concealed (PLC). For comparisons; the engine's
    /// default is FEC on.
    #[arg(long, global = true)]
    no_fec: bool,
    /// RED (RFC 2198) redundant blocks per uplink packet, 0-8; 0 offers no
    /// RED, so the server sends this client plain Opus too [default: the
    /// engine's, 2].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=8))]
    red: Option<u8>,
    /// Noise suppression (RNNoise) on the captured audio, as the desktop
    /// app has by default; the bot's default is off, so that what it sends
    /// is the file or microphone as it is.
    #[arg(long, global = true)]
    noise_suppression: bool,
    /// Automatic gain control on the captured audio, as the desktop app has
    /// by default; off in the bot unless given.
    #[arg(long, global = true)]
    auto_gain: bool,
    /// The jitter buffer's cushion over the measured jitter, ms, clean link
    /// or not (its floor too) [default: the engine's, 5 on a clean link and
    /// 20 (one frame) after a loss or an underrun]; 20 is the engine before
    /// 2026-12-08, for comparisons.
    #[arg(long, global = true, value_name = "MS", value_parser = clap::value_parser!(u32).range(0..=200))]
    jitter_cushion_ms: Option<u32>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Press, talk a WAV file into a channel, release; N times. Several
    /// `--channel`s make an all-call: one press requests the floor in each
    /// and the audio goes to every channel granted.
    Talk {
        /// Channel to talk in (repeatable: all-call).
        #[arg(long = "channel", required = true)]
        channels: Vec<ChannelName>,
        /// Speech to say (any WAV; converted to 48 kHz mono).
        #[arg(long, required_unless_present = "mic", conflicts_with = "mic")]
        wav: Option<PathBuf>,
        /// Talk from the microphone instead of a file, for `--mic-seconds`
        /// per press.
        #[arg(long)]
        mic: bool,
        /// With --mic: the input device, by PulseAudio name or description
        /// (`squawk-bot devices` lists them); the default if not given, and
        /// while it is missing (printing `device` events).
        #[arg(long, requires = "mic", value_name = "NAME")]
        input_device: Option<String>,
        /// With --mic: seconds per press.
        #[arg(long, default_value_t = 5.0)]
        mic_seconds: f64,
        /// Press at this wall-clock time (ms since the Unix epoch), to make
        /// several bots press together.
        #[arg(long)]
        at_unix_ms: Option<u64>,
        /// How many times.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Pause between repetitions, ms.
        #[arg(long, default_value_t = 1000)]
        gap_ms: u64,
        /// Wait this long after joining before the first press, ms.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// When the floor is taken, wait in the floor queue (printing
        /// `floor_queued` with the position) instead of being denied; the
        /// clip starts once granted.
        #[arg(long)]
        queue: bool,
        /// Floor priority of the requests: normal, high (dispatch) or
        /// emergency (TS 24.380 floor priority 0, 128, 255).
        #[arg(long, value_enum, default_value_t = PriorityArg::Normal)]
        priority: PriorityArg,
        /// Raise an emergency in the channel before the first press (the
        /// talk then has emergency priority) and cancel it after the last;
        /// prints `emergency`, `emergency_ack` and `emergency_cancel`.
        #[arg(long)]
        emergency: bool,
    },
    /// Join channels and record everything heard for S seconds.
    Listen {
        /// Channels to monitor (repeatable).
        #[arg(long = "channel", required = true)]
        channels: Vec<ChannelName>,
        /// Output WAV (48 kHz mono 16-bit).
        #[arg(long, required_unless_present = "speaker", conflicts_with = "speaker")]
        record: Option<PathBuf>,
        /// Play to the speaker instead of recording a file.
        #[arg(long)]
        speaker: bool,
        /// With --speaker: the output device, by PulseAudio name or
        /// description; the default if not given, and while it is missing.
        #[arg(long, requires = "speaker", value_name = "NAME")]
        output_device: Option<String>,
        /// Seconds to record.
        #[arg(long)]
        seconds: f64,
        /// One JSON line per received transmission.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Channels to mute at the server (repeatable; each must also be a
        /// `--channel`): joined, but their downlink paused at the SFU.
        #[arg(long = "mute")]
        mute: Vec<ChannelName>,
        /// Unmute the `--mute` channels this long after joining, ms, and
        /// print `unmuted` per channel with `first_rtp_ms`: from the unmute
        /// request to the first packet of the channel received.
        #[arg(long, requires = "mute")]
        unmute_after_ms: Option<u64>,
        /// Mute the `--mute` channels this long after joining, ms, instead
        /// of at once (so their downlink has carried audio before).
        #[arg(long, requires = "mute")]
        mute_after_ms: Option<u64>,
        /// Acknowledge every emergency raised by someone else (a dispatcher).
        #[arg(long)]
        ack_emergencies: bool,
        /// Instant recall: replay the first transmission received, once it
        /// has ended, into the recording (prints `replay_started` with its
        /// place in the recording, `ms_into_recording`, and `replay_ended`).
        #[arg(long)]
        replay_first: bool,
        /// Where a channel sounds: `C=left`, `C=centre` or `C=right`
        /// (repeatable). With any pan the recording is a stereo WAV.
        #[arg(long = "pan", value_parser = parse_pan)]
        pan: Vec<(ChannelName, Pan)>,
    },
    /// Join channels, patch them (one floor, each talker heard in all),
    /// hold the patch for S seconds, then split it; prints `patched` and
    /// `unpatched`.
    Patch {
        /// Channels to patch (two or more).
        #[arg(long = "channel", required = true, num_args = 1)]
        channels: Vec<ChannelName>,
        /// Seconds to keep the patch.
        #[arg(long)]
        seconds: f64,
    },
    /// Join a channel and send audio WITHOUT the floor (a misbehaving
    /// client, for testing media enforcement).
    Rogue {
        /// Channel to join.
        #[arg(long)]
        channel: ChannelName,
        /// Audio to send.
        #[arg(long)]
        wav: PathBuf,
    },
    /// List the audio devices (PulseAudio sources and sinks): one JSON
    /// object, `{"inputs": [{name, description}], "outputs": [...]}`.
    Devices,
    /// Benchmarks; writes figures to stdout and optionally a Markdown file.
    Bench(bench::BenchArgs),
    /// The desktop capture's noise suppression and gain control, timed per
    /// 20 ms frame on a speech file; one JSON line per setting.
    BenchProcessing(processing::ProcessingArgs),
    /// Forwarding load: R rooms × M members of light str0m clients against
    /// a server it starts; prints server CPU per forwarded packet, RSS,
    /// delivery and added delay (one JSON line with --json).
    Load(load::LoadArgs),
    /// Soak: C channels talking continuously for a long run while visitors
    /// join and leave; prints the server's RSS growth, visitors served,
    /// delivery and its log's error-level lines (one JSON line with --json).
    Soak(soak::SoakArgs),
    /// Connect storm: N signaling clients connect and join at once against
    /// a server it starts; prints the time to admit them all, join latency,
    /// server CPU and peak RSS (one JSON line with --json).
    Storm(storm::StormArgs),
}

fn say(v: serde_json::Value) {
    println!("{v}");
}

/// Waits for an event matching `f`, failing on Closed or after `timeout`.
pub(crate) async fn wait_for<T>(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    timeout: Duration,
    f: impl FnMut(&EngineEvent) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, wait_events(events, f))
        .await
        .context("timed out waiting for the server")?
}

/// Waits for an event matching `f`, failing on Closed or when the engine
/// stops; says each server error on the way.
async fn wait_events<T>(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    mut f: impl FnMut(&EngineEvent) -> Option<T>,
) -> anyhow::Result<T> {
    while let Some(ev) = events.recv().await {
        if let EngineEvent::Local(LocalEvent::Closed { reason }) = &ev {
            bail!("engine closed: {reason}");
        }
        if let EngineEvent::Server(ServerMessage::Error { code, message }) = &ev {
            say(json!({"event": "server_error", "code": code, "message": message}));
        }
        say_device(&ev);
        if let Some(v) = f(&ev) {
            return Ok(v);
        }
    }
    bail!("engine stopped")
}

/// Says a device notice ([`LocalEvent::Device`]) as a `device` line.
fn say_device(ev: &EngineEvent) {
    if let EngineEvent::Local(LocalEvent::Device { .. }) = ev
        && let Some(line) = notice_json(ev)
    {
        say(line);
    }
}

/// Waits `pause`, saying the device notices that arrive meanwhile.
async fn pause_saying_devices(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    pause: Duration,
) -> anyhow::Result<()> {
    let drained = tokio::time::timeout(pause, async {
        while let Some(ev) = events.recv().await {
            say_device(&ev);
        }
    })
    .await;
    match drained {
        Err(_elapsed) => Ok(()),
        Ok(()) => bail!("engine stopped"),
    }
}

/// A connected engine, its events and each joined channel's downlink mid.
type Connected = (
    Engine,
    tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    Vec<(ChannelName, String)>,
);

/// `--server` as the signaling URL (errors are one line, for clap).
fn signaling_url(s: &str) -> Result<String, String> {
    squawk_engine::tls::server_address(s).map(|a| a.signaling)
}

impl Args {
    /// What `--ca` and `--pin` say to trust.
    fn trust(&self) -> squawk_engine::tls::Trust {
        squawk_engine::tls::Trust {
            ca_file: self.ca.clone(),
            pin: self.pin,
        }
    }
}

/// Connection attempts [`connect`] makes, each given [`CONNECT_DEADLINE`].
const CONNECT_ATTEMPTS: u32 = 3;
/// How long one attempt may take to bring media up and join.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// An engine up: its events, the ICE path, each channel's members and mid,
/// and the events that came between `joined` and media up.
type Up = (
    Engine,
    tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    Option<squawk_engine::IcePath>,
    BTreeMap<ChannelName, (Vec<String>, String)>,
    Vec<EngineEvent>,
);

/// One connection attempt: starts an engine and waits up to
/// [`CONNECT_DEADLINE`] for its media and every channel's `joined`; closes
/// it on failure. A timeout is a `tokio::time::error::Elapsed` error.
async fn connect_once(config: EngineConfig, channels: &[ChannelName]) -> anyhow::Result<Up> {
    let (engine, mut events) = Engine::start(config).await?;
    let mut ice = None;
    let mut joined: BTreeMap<ChannelName, (Vec<String>, String)> = BTreeMap::new();
    // What comes between a `joined` and the media (an active emergency, a
    // late entry's floor_taken) is kept for the caller.
    let mut held = Vec::new();
    let up = tokio::time::timeout(
        CONNECT_DEADLINE,
        wait_events(&mut events, |e| {
            match e {
                EngineEvent::Local(LocalEvent::Ice(path)) => ice = Some(path.clone()),
                EngineEvent::Server(ServerMessage::Joined {
                    channel,
                    members,
                    mid,
                }) if channels.contains(channel) => {
                    let names = members.iter().map(|m| m.name.clone()).collect();
                    joined.insert(channel.clone(), (names, mid.clone()));
                }
                other if !joined.is_empty() => held.push(other.clone()),
                _ => {}
            }
            (ice.is_some() && joined.len() == channels.len()).then_some(())
        }),
    )
    .await;
    match up {
        Ok(Ok(())) => Ok((engine, events, ice, joined, held)),
        Ok(Err(e)) => {
            engine.close().await;
            Err(e)
        }
        Err(elapsed) => {
            engine.close().await;
            Err(elapsed.into())
        }
    }
}

/// Starts an engine that joins `channels`, and waits for its media and
/// every channel's `joined`, starting afresh after a deadline passes
/// ([`CONNECT_ATTEMPTS`] attempts; each new one says `connect_retry`).
async fn connect(
    args: &Args,
    input: InputSpec,
    output: OutputSpec,
    channels: &[ChannelName],
) -> anyhow::Result<Connected> {
    let mut config = EngineConfig::new(&args.server, &args.name);
    config.trust = args.trust();
    config.ice_relay_only = args.ice_relay_only;
    if let Some(pct) = args.expected_loss {
        config.opus.expected_loss_pct = pct;
        config.opus.adapt_fec = false;
    }
    config.opus.fec = !args.no_fec;
    config.audio.noise_suppression = args.noise_suppression;
    config.audio.auto_gain = args.auto_gain;
    if let Some(ms) = args.jitter_cushion_ms {
        config.jitter.cushion_ms = ms;
        config.jitter.clean_cushion_ms = ms;
        config.jitter.min_delay_ms = ms;
    }
    if let Some(n) = args.red {
        config.red_levels = usize::from(n);
    }
    match &args.user {
        Some(user) => {
            let password = args.password.as_deref().unwrap_or_default();
            let tokens = squawk_engine::account::login(&args.server, &config.trust, user, password)
                .await
                .with_context(|| format!("signing in as {user}"))?;
            say(json!({"event": "signed_in", "user": tokens.user}));
            config.token = Some(tokens.access_token);
        }
        None => config.password = args.password.clone(),
    }
    config.input = input;
    config.output = output;
    // Joined before the media offer (the engine's order), so the server
    // homes this connection's media with its channels'.
    config.channels = channels.to_vec();
    let mut attempt = 1;
    let (engine, mut events, ice, mut joined, held) = loop {
        match connect_once(config.clone(), channels).await {
            Ok(up) => break up,
            // Set-up over a lossy link can outlast one deadline (flights
            // lost again and again): a fresh connection rather than giving
            // up, as a user would press "connect" again.
            Err(e) if attempt < CONNECT_ATTEMPTS && e.is::<tokio::time::error::Elapsed>() => {
                say(json!({"event": "connect_retry", "attempt": attempt + 1}));
                attempt += 1;
            }
            Err(e) if e.is::<tokio::time::error::Elapsed>() => {
                return Err(e.context("timed out waiting for the server"));
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(path) = ice {
        say(json!({
            "event": "ice",
            "local_candidate_type": path.local_candidate_type,
            "remote_candidate_type": path.remote_candidate_type,
        }));
    }
    let events = if held.is_empty() {
        events
    } else {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for e in held {
            let _ = tx.send(e);
        }
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send(e).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let mut mids = Vec::new();
    for ch in channels {
        let (names, mid) = joined.remove(ch).expect("every channel was joined");
        say(json!({"event": "joined", "channel": ch, "members": names}));
        mids.push((ch.clone(), mid));
    }
    // Where the recording's first sample sits in wall-clock time, so that a
    // test can find an instant of its own in the recording.
    let recording_unix_ms = engine.recording_started().map(|r| {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        unix.saturating_sub(r.elapsed()).as_secs_f64() * 1e3
    });
    say(json!({"event": "ready", "client_id": engine.client_id(),
        "recording_unix_ms": recording_unix_ms}));
    Ok((engine, events, mids))
}

/// Whether `msg` is one of the notices the bot prints as they come.
fn is_notice(msg: &ServerMessage) -> bool {
    matches!(
        msg,
        ServerMessage::Emergency { .. }
            | ServerMessage::EmergencyAck { .. }
            | ServerMessage::EmergencyCancel { .. }
            | ServerMessage::Patched { .. }
            | ServerMessage::Unpatched { .. }
            | ServerMessage::Muted { .. }
    )
}

/// The JSON line for a server notice (`emergency`, `emergency_ack`,
/// `emergency_cancel`, `muted`): the protocol's JSON with its `type` as
/// the line's `event`.
fn notice_json(ev: &EngineEvent) -> Option<serde_json::Value> {
    let mut v = match ev {
        EngineEvent::Server(msg) if is_notice(msg) => serde_json::to_value(msg).ok()?,
        EngineEvent::Local(device @ LocalEvent::Device { .. }) => {
            serde_json::to_value(device).ok()?
        }
        _ => return None,
    };
    let obj = v.as_object_mut()?;
    let kind = obj.remove("type")?;
    obj.insert("event".into(), kind);
    Some(v)
}

struct TalkOpts<'a> {
    channels: &'a [ChannelName],
    wav: Option<&'a PathBuf>,
    input_device: Option<&'a String>,
    mic_seconds: f64,
    at_unix_ms: Option<u64>,
    repeat: u32,
    gap_ms: u64,
    delay_ms: u64,
    queue: bool,
    priority: Priority,
    emergency: bool,
}

/// `--priority` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PriorityArg {
    Normal,
    High,
    Emergency,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Self {
        match p {
            PriorityArg::Normal => Priority::NORMAL,
            PriorityArg::High => Priority::HIGH,
            PriorityArg::Emergency => Priority::EMERGENCY,
        }
    }
}

/// How one press went, per channel.
#[derive(Default)]
struct PressOutcome {
    granted: Vec<ChannelName>,
    denied: Vec<ChannelName>,
}

/// Waits for the answer of every channel of a press (Floor Granted or
/// Floor Deny; Floor Queue Position Info is printed and waited past),
/// printing `floor_granted`/`floor_deny` per channel. Talking starts at the
/// first grant, so this returns as soon as one channel is granted, leaving
/// the others to [`talk_until`]; or when every channel was denied.
async fn await_answers(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    channels: &[ChannelName],
    n: u32,
    pressed: std::time::Instant,
    queue: bool,
) -> anyhow::Result<PressOutcome> {
    let mut out = PressOutcome::default();
    // A queued request may wait for the server's queue timeout (30 s).
    let within = Duration::from_secs(if queue { 60 } else { 10 });
    while out.granted.is_empty() && out.denied.len() < channels.len() {
        let answer = wait_for(events, within, |e| match e {
            EngineEvent::Server(ServerMessage::FloorGranted { channel, .. })
                if channels.contains(channel) =>
            {
                Some((channel.clone(), true))
            }
            EngineEvent::Server(ServerMessage::FloorDeny { channel, .. })
                if channels.contains(channel) =>
            {
                Some((channel.clone(), false))
            }
            EngineEvent::Server(ServerMessage::FloorQueued { channel, position })
                if channels.contains(channel) =>
            {
                say(json!({"event": "floor_queued", "channel": channel, "position": position}));
                None
            }
            _ => None,
        })
        .await?;
        out.record(answer, n, pressed);
    }
    Ok(out)
}

impl PressOutcome {
    fn record(
        &mut self,
        (channel, granted): (ChannelName, bool),
        n: u32,
        pressed: std::time::Instant,
    ) {
        let access_ms = pressed.elapsed().as_secs_f64() * 1000.0;
        let event = if granted {
            "floor_granted"
        } else {
            "floor_deny"
        };
        say(json!({"event": event, "channel": channel, "n": n, "access_ms": access_ms}));
        if granted {
            self.granted.push(channel);
        } else {
            self.denied.push(channel);
        }
    }
}

/// Talks until `talking` completes, or until every granted channel is
/// lost; meanwhile records later answers of an all-call, prints Floor
/// Revoke (with who pre-empted) and server notices. Returns the channels
/// still granted.
async fn talk_until(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    channels: &[ChannelName],
    outcome: &mut PressOutcome,
    talking: impl std::future::Future<Output = ()>,
    n: u32,
    pressed: std::time::Instant,
) -> anyhow::Result<()> {
    tokio::pin!(talking);
    while !outcome.granted.is_empty() {
        tokio::select! {
            () = &mut talking => break,
            ev = events.recv() => match ev {
                Some(EngineEvent::Server(ServerMessage::FloorRevoke { channel, reason, by })) => {
                    say(json!({"event": "floor_revoke", "channel": channel, "n": n,
                        "reason": reason, "by": by}));
                    outcome.granted.retain(|c| *c != channel);
                }
                Some(EngineEvent::Server(ServerMessage::FloorGranted { channel, .. })) if channels.contains(&channel) => {
                    outcome.record((channel, true), n, pressed);
                }
                Some(EngineEvent::Server(ServerMessage::FloorDeny { channel, .. })) if channels.contains(&channel) => {
                    outcome.record((channel, false), n, pressed);
                }
                Some(EngineEvent::Local(LocalEvent::Closed { reason })) => bail!("engine closed: {reason}"),
                Some(e) => {
                    if let Some(line) = notice_json(&e) {
                        say(line);
                    }
                }
                None => bail!("engine stopped"),
            },
        }
    }
    Ok(())
}

async fn talk(args: &Args, o: TalkOpts<'_>) -> anyhow::Result<()> {
    let channels = o.channels;
    // The channel of the emergency: the first.
    let channel = &channels[0];
    let pcm: Option<Arc<[f32]>> = match o.wav {
        Some(w) => Some(read_mono_48k(w)?.into()),
        None => None,
    };
    let input = if pcm.is_some() {
        InputSpec::Wav
    } else {
        InputSpec::Device(o.input_device.cloned())
    };
    let (engine, mut events, _) = connect(args, input, OutputSpec::None, channels).await?;
    tokio::time::sleep(Duration::from_millis(o.delay_ms)).await;
    if o.emergency {
        engine.emergency(channel.clone());
        let ch = channel.clone();
        let me = engine.client_id();
        let raised = wait_for(&mut events, Duration::from_secs(10), |e| match e {
            EngineEvent::Server(ServerMessage::Emergency {
                channel,
                originator,
                ..
            }) if *channel == ch && originator.id == me => notice_json(e),
            _ => None,
        })
        .await?;
        say(raised);
    }
    if let Some(at) = o.at_unix_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
    }
    let mut granted_all = true;
    for i in 0..o.repeat {
        let pressed = std::time::Instant::now();
        let play = |pcm: &Option<Arc<[f32]>>| match pcm {
            Some(p) => engine.play(p.clone()).context("no wav input").map(Some),
            None => Ok(None),
        };
        let mut done = None;
        let options = FloorOptions {
            priority: o.priority,
            queue: o.queue,
        };
        engine.press_all(channels.to_vec(), options);
        if !o.queue {
            // Nothing said while queued is kept: a queued clip starts once granted.
            done = play(&pcm)?;
        }
        let mut outcome = await_answers(&mut events, channels, i, pressed, o.queue).await?;
        if o.queue && !outcome.granted.is_empty() {
            done = play(&pcm)?;
        }
        // Talk until the clip is done (or the mic time is up).
        let talking = async {
            match done {
                Some(done) => {
                    let _ = done.await;
                }
                None => tokio::time::sleep(Duration::from_secs_f64(o.mic_seconds)).await,
            }
        };
        if outcome.granted.is_empty() {
            talking.await;
        } else {
            talk_until(&mut events, channels, &mut outcome, talking, i, pressed).await?;
        }
        engine.release();
        let mut ending = outcome.granted.clone();
        while !ending.is_empty() {
            let ended = wait_for(&mut events, Duration::from_secs(10), |e| match e {
                EngineEvent::Local(LocalEvent::TalkEnded { channel })
                    if ending.contains(channel) =>
                {
                    Some(channel.clone())
                }
                _ => None,
            })
            .await?;
            ending.retain(|c| *c != ended);
            let counters = engine.counters();
            say(json!({"event": "talk_ended", "channel": ended, "n": i,
                "rtp_sent": counters.rtp_sent.load(std::sync::atomic::Ordering::Relaxed),
                "expected_loss_pct": counters.expected_loss_pct.load(std::sync::atomic::Ordering::Relaxed),
                "receiver_reports": counters.receiver_reports.load(std::sync::atomic::Ordering::Relaxed)}));
        }
        if !outcome.denied.is_empty() {
            granted_all = false;
        }
        if i + 1 < o.repeat {
            pause_saying_devices(&mut events, Duration::from_millis(o.gap_ms)).await?;
        }
    }
    if o.emergency {
        engine.cancel_emergency(channel.clone(), None);
        let ch = channel.clone();
        let me = engine.client_id();
        let over = wait_for(&mut events, Duration::from_secs(10), |e| match e {
            EngineEvent::Server(ServerMessage::EmergencyCancel {
                channel,
                originator,
                ..
            }) if *channel == ch && *originator == me => notice_json(e),
            EngineEvent::Server(m) if is_notice(m) => {
                say(notice_json(e).unwrap_or_default());
                None
            }
            _ => None,
        })
        .await?;
        say(over);
    }
    engine.close().await;
    if !granted_all {
        std::process::exit(3);
    }
    Ok(())
}

/// `--pan` sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pan {
    Left,
    Centre,
    Right,
}

impl Pan {
    fn value(self) -> f32 {
        match self {
            Self::Left => -1.0,
            Self::Centre => 0.0,
            Self::Right => 1.0,
        }
    }
}

/// Parses `CHANNEL=left|centre|right`.
fn parse_pan(s: &str) -> Result<(ChannelName, Pan), String> {
    let (c, side) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected CHANNEL=left|centre|right"))?;
    let channel = ChannelName::new(c).map_err(|e| format!("{c}: {e}"))?;
    let pan = match side {
        "left" => Pan::Left,
        "centre" | "center" => Pan::Centre,
        "right" => Pan::Right,
        other => return Err(format!("{other}: expected left, centre or right")),
    };
    Ok((channel, pan))
}

/// After an unmute: when it was asked, and per channel its downlink mid and
/// packet count then.
type Watch = (std::time::Instant, Vec<(ChannelName, String, u64)>);

struct ListenOpts<'a> {
    channels: &'a [ChannelName],
    record: Option<&'a PathBuf>,
    output_device: Option<&'a String>,
    seconds: f64,
    stats: Option<&'a PathBuf>,
    mute: &'a [ChannelName],
    ack_emergencies: bool,
    pan: &'a [(ChannelName, Pan)],
    replay_first: bool,
    unmute_after_ms: Option<u64>,
    mute_after_ms: Option<u64>,
}

async fn listen(args: &Args, o: ListenOpts<'_>) -> anyhow::Result<()> {
    let ListenOpts {
        channels,
        record,
        output_device,
        seconds,
        stats,
        mute,
        ack_emergencies,
        pan,
        replay_first,
        unmute_after_ms,
        mute_after_ms,
    } = o;
    let mut replayed = false;
    if let Some(c) = mute.iter().find(|c| !channels.contains(c)) {
        bail!("--mute {c}: not one of the --channel values");
    }
    if let Some((c, _)) = pan.iter().find(|(c, _)| !channels.contains(c)) {
        bail!("--pan {c}: not one of the --channel values");
    }
    let out = match record {
        Some(path) => OutputSpec::Wav {
            path: path.clone(),
            seconds: Some(seconds),
            stereo: !pan.is_empty(),
        },
        None => OutputSpec::Device(output_device.cloned()),
    };
    let (engine, mut events, mids) = connect(args, InputSpec::None, out, channels).await?;
    // `connect` returns as the last `joined` arrives.
    let joined_at = std::time::Instant::now();
    for (c, side) in pan {
        let mix = ChannelMix {
            pan: side.value(),
            ..ChannelMix::default()
        };
        engine.set_channel_mix(c.clone(), mix);
    }
    for c in mute.iter().filter(|_| mute_after_ms.is_none()) {
        engine.mute(c.clone(), true);
        let want = c.clone();
        wait_for(&mut events, Duration::from_secs(10), |e| match e {
            EngineEvent::Server(ServerMessage::Muted { channel, muted })
                if *channel == want && *muted =>
            {
                Some(())
            }
            _ => None,
        })
        .await?;
        say(json!({"event": "muted", "channel": c}));
    }
    let me = engine.client_id();
    let mut stats_file = match stats {
        Some(p) => Some(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("create {}", p.display()))?,
        ),
        None => None,
    };
    let end =
        tokio::time::Instant::now() + Duration::from_secs_f64(seconds) + Duration::from_millis(300);
    let received = |mid: &str| -> u64 {
        engine
            .counters()
            .received_by_mid
            .lock()
            .map(|m| m.get(mid).copied().unwrap_or(0))
            .unwrap_or(0)
    };
    let after =
        |ms: Option<u64>| ms.map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let mut unmute_at = after(unmute_after_ms);
    let mut mute_at = after(mute_after_ms);
    // After the unmute: when it was asked, and per channel its mid and count then.
    let mut watching: Option<Watch> = None;
    loop {
        tokio::select! {
            () = async {
                match mute_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                mute_at = None;
                for c in mute {
                    engine.mute(c.clone(), true);
                }
            }
            () = async {
                match unmute_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                unmute_at = None;
                let watch = mute
                    .iter()
                    .filter_map(|c| {
                        let (_, mid) = mids.iter().find(|(ch, _)| ch == c)?;
                        Some((c.clone(), mid.clone(), received(mid)))
                    })
                    .collect();
                for c in mute {
                    engine.mute(c.clone(), false);
                }
                watching = Some((std::time::Instant::now(), watch));
            }
            () = async {
                match watching {
                    Some(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((asked, watch)) = watching.as_mut() {
                    watch.retain(|(c, mid, before)| {
                        if received(mid) > *before {
                            let ms = asked.elapsed().as_secs_f64() * 1e3;
                            say(json!({"event": "unmuted", "channel": c, "first_rtp_ms": (ms * 10.0).round() / 10.0}));
                            false
                        } else {
                            true
                        }
                    });
                    if watch.is_empty() {
                        watching = None;
                    }
                }
            }
            ev = events.recv() => match ev {
                Some(EngineEvent::Local(LocalEvent::Received { report })) => {
                    let line = serde_json::to_string(&report)?;
                    say(json!({"event": "received", "report": report}));
                    if replay_first && !replayed && let Some(id) = report.recall_id {
                        replayed = true;
                        engine.replay(id);
                    }
                    if let Some(f) = stats_file.as_mut() {
                        f.write_all(line.as_bytes()).await?;
                        f.write_all(b"\n").await?;
                    }
                }
                Some(EngineEvent::Server(ServerMessage::FloorTaken { channel, talker_name, .. })) => {
                    // Where in the recording the talker changed (for
                    // scoring each talker's segment on its own).
                    let into = engine.recording_started().map(|r| {
                        (std::time::Instant::now().saturating_duration_since(r).as_secs_f64() * 1e4).round() / 10.0
                    });
                    say(json!({"event": "floor_taken", "channel": channel, "talker": talker_name,
                        "ms_into_recording": into}));
                }
                Some(EngineEvent::Local(LocalEvent::ReceiveStarted { channel, at })) => {
                    let after = at.saturating_duration_since(joined_at).as_secs_f64() * 1e3;
                    say(json!({"event": "receive_started", "channel": channel,
                        "ms_after_joined": (after * 10.0).round() / 10.0}));
                }
                Some(EngineEvent::Server(ServerMessage::FloorIdle { channel })) => say(json!({"event": "floor_idle", "channel": channel})),
                Some(EngineEvent::Server(ServerMessage::MemberJoined { channel, members })) => {
                    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                    say(json!({"event": "member_joined", "channel": channel, "members": names}));
                }
                Some(EngineEvent::Server(ServerMessage::MemberLeft { channel, ids })) => {
                    say(json!({"event": "member_left", "channel": channel, "ids": ids}));
                }
                Some(EngineEvent::Server(ServerMessage::FloorRevoke { .. })) => {}
                Some(EngineEvent::Local(LocalEvent::ReplayStarted { id, channel, at })) => {
                    let into = engine
                        .recording_started()
                        .map(|r| at.saturating_duration_since(r).as_secs_f64() * 1e3);
                    say(json!({"event": "replay_started", "id": id, "channel": channel,
                        "ms_into_recording": into}));
                }
                Some(EngineEvent::Local(LocalEvent::ReplayEnded { id })) => say(json!({"event": "replay_ended", "id": id})),
                Some(ref e @ EngineEvent::Server(ServerMessage::Emergency { ref channel, ref originator, ref acked_by, .. })) => {
                    say(notice_json(e).unwrap_or_default());
                    if ack_emergencies && acked_by.is_none() && originator.id != me {
                        engine.ack_emergency(channel.clone(), originator.id);
                    }
                }
                Some(ref e @ EngineEvent::Server(ref m)) if is_notice(m) => say(notice_json(e).unwrap_or_default()),
                // (`muted` is printed above for an immediate mute.)
                Some(EngineEvent::Server(ServerMessage::Error { code, message })) => {
                    say(json!({"event": "server_error", "code": code, "message": message}));
                }
                Some(EngineEvent::Local(LocalEvent::Closed { reason })) => bail!("engine closed: {reason}"),
                Some(_) => {}
                None => break,
            },
            () = tokio::time::sleep_until(end) => break,
        }
    }
    if let Some(mut f) = stats_file {
        f.flush().await?;
    }
    let by_mid = engine
        .counters()
        .received_by_mid
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let by_channel: serde_json::Map<String, serde_json::Value> = mids
        .iter()
        .map(|(c, mid)| (c.to_string(), json!(by_mid.get(mid).copied().unwrap_or(0))))
        .collect();
    say(json!({"event": "done",
        "rtp_received": engine.counters().rtp_received.load(std::sync::atomic::Ordering::Relaxed),
        "red_recovered": engine.counters().red_recovered.load(std::sync::atomic::Ordering::Relaxed),
        "rtp_received_by_channel": by_channel}));
    engine.close().await;
    Ok(())
}

async fn patch(args: &Args, channels: &[ChannelName], seconds: f64) -> anyhow::Result<()> {
    let (engine, mut events, _) =
        connect(args, InputSpec::None, OutputSpec::None, channels).await?;
    engine.patch(channels.to_vec());
    let patched = wait_for(&mut events, Duration::from_secs(10), |e| match e {
        EngineEvent::Server(ServerMessage::Patched { .. }) => notice_json(e),
        EngineEvent::Server(ServerMessage::Error { code, message }) => {
            Some(json!({"event": "patch_refused", "code": code, "message": message}))
        }
        _ => None,
    })
    .await?;
    say(patched.clone());
    if patched["event"] != "patched" {
        std::process::exit(3);
    }
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    while let Ok(Some(ev)) = tokio::time::timeout_at(end, events.recv()).await {
        if let Some(line) = notice_json(&ev) {
            say(line);
        }
    }
    // Split it, waiting for the floor to be idle (`floor_busy` otherwise).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        engine.unpatch(channels[0].clone());
        let answer = wait_for(&mut events, Duration::from_secs(10), |e| match e {
            EngineEvent::Server(ServerMessage::Unpatched { .. }) => notice_json(e),
            EngineEvent::Server(ServerMessage::Error { code, .. }) => Some(json!({"busy": code})),
            _ => None,
        })
        .await?;
        if answer["event"] == "unpatched" {
            say(answer);
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("could not unpatch: {answer}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    engine.close().await;
    Ok(())
}

async fn rogue(args: &Args, channel: &ChannelName, wav: &std::path::Path) -> anyhow::Result<()> {
    let pcm: Arc<[f32]> = read_mono_48k(wav)?.into();
    let (engine, _events, _) = connect(
        args,
        InputSpec::Wav,
        OutputSpec::None,
        std::slice::from_ref(channel),
    )
    .await?;
    engine.misbehave_send_without_floor(true);
    let done = engine.play(pcm).context("no wav input")?;
    let _ = done.await;
    say(
        json!({"event": "rogue_done", "rtp_sent": engine.counters().rtp_sent.load(std::sync::atomic::Ordering::Relaxed)}),
    );
    engine.close().await;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        // One line, the causes after colons, no backtrace: what a user reads.
        eprintln!("squawk-bot: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match &args.command {
            Cmd::Talk {
                channels,
                wav,
                mic: _,
                input_device,
                mic_seconds,
                at_unix_ms,
                repeat,
                gap_ms,
                delay_ms,
                queue,
                priority,
                emergency,
            } => {
                let o = TalkOpts {
                    channels,
                    wav: wav.as_ref(),
                    input_device: input_device.as_ref(),
                    mic_seconds: *mic_seconds,
                    at_unix_ms: *at_unix_ms,
                    repeat: *repeat,
                    gap_ms: *gap_ms,
                    delay_ms: *delay_ms,
                    queue: *queue,
                    priority: (*priority).into(),
                    emergency: *emergency,
                };
                talk(&args, o).await
            }
            Cmd::Listen {
                channels,
                record,
                speaker: _,
                output_device,
                seconds,
                stats,
                mute,
                ack_emergencies,
                pan,
                replay_first,
                unmute_after_ms,
                mute_after_ms,
            } => {
                let o = ListenOpts {
                    pan,
                    replay_first: *replay_first,
                    unmute_after_ms: *unmute_after_ms,
                    mute_after_ms: *mute_after_ms,
                    channels,
                    record: record.as_ref(),
                    output_device: output_device.as_ref(),
                    seconds: *seconds,
                    stats: stats.as_ref(),
                    mute,
                    ack_emergencies: *ack_emergencies,
                };
                listen(&args, o).await
            }
            Cmd::Rogue { channel, wav } => rogue(&args, channel, wav).await,
            Cmd::Patch { channels, seconds } => patch(&args, channels, *seconds).await,
            Cmd::Devices => {
                let d = squawk_engine::audio::pulse::list().map_err(anyhow::Error::msg)?;
                say(json!({"inputs": d.inputs, "outputs": d.outputs}));
                Ok(())
            }
            Cmd::Bench(b) => bench::run(&args.server, b).await,
            Cmd::BenchProcessing(p) => processing::run(p),
            Cmd::Load(l) => load::run(l).await,
            Cmd::Soak(s) => soak::run(s).await,
            Cmd::Storm(s) => storm::run(s).await,
        }
    })
}
