//! The client engine: one signaling WebSocket, one PeerConnection, the PTT
//! machine, the Opus encoder and the audio ends, driven by one task.
//!
//! The UI (or a bot) calls [`Engine::join`], [`Engine::press`], ... and
//! reads [`EngineEvent`]s. Only this task touches the WebSocket, the
//! PeerConnection and the PTT state; audio threads talk to it by channels.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use squawk_media::{JitterConfig, RedPayload, RedReceiver};
use squawk_protocol::{
    ChannelName, ClientId, ClientMessage, ErrorCode, Member, PROTOCOL_VERSION, Priority,
    ServerMessage,
};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, warn};
use webrtc::{
    media_stream::track_remote::{TrackRemote, TrackRemoteEvent},
    peer_connection::RTCPeerConnectionState,
};

use crate::{
    audio::{
        CapturedFrame, FRAME_MS, FRAME_SAMPLES, InputSpec, OutputSpec, SAMPLE_RATE,
        controls::{self, AudioControls, Level, LevelMeter},
        device::{self, DeviceHandle},
        mixer::{self, ChannelMix, Layout, Mixer, MixerEvent, MixerIn, RtpIn},
        process::CaptureProcessor,
        wav::{WavSource, WavWriter},
    },
    codec::{Encoder, OpusConfig},
    ptt::{Ptt, PttAction, PttConfig, PttInput},
    rtc::{Media, MediaEvent},
};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Signaling URL, e.g. `ws://127.0.0.1:7300/ws`.
    pub server: String,
    /// Display name (1 to 64 characters).
    pub name: String,
    /// Server password, for a server that has one.
    pub password: Option<String>,
    /// Access token for a server with accounts (`POST /api/v1/login`);
    /// `None` connects as a guest or to an open server.
    pub token: Option<String>,
    /// Channels joined at once, right after `welcome` and before the media
    /// offer, so the server places this connection's media on the SFU
    /// worker that already carries those channels (no cross-thread hop for
    /// their audio). [`Engine::join`] adds channels later.
    pub channels: Vec<ChannelName>,
    /// Microphone.
    pub input: InputSpec,
    /// Speaker.
    pub output: OutputSpec,
    /// Opus encoder settings.
    pub opus: OpusConfig,
    /// PTT settings (release tail).
    pub ptt: PttConfig,
    /// Jitter buffer settings.
    pub jitter: JitterConfig,
    /// Gain, volume, mic test and meter at start ([`Engine::set_audio`]
    /// changes them later).
    pub audio: AudioControls,
    /// Which certificates a `wss://` server may present.
    pub trust: crate::tls::Trust,
    /// Use only TURN relay candidates (WebRTC's `iceTransportPolicy:
    /// "relay"`), with the TURN servers of the server's `welcome`: for
    /// testing a relay, or to hide this host's addresses from the server.
    pub ice_relay_only: bool,
    /// RED (RFC 2198) redundant blocks per uplink packet: each packet also
    /// carries copies of this many packets before it, so a burst that long
    /// lost on the way to the server is repaired there. 0 offers no RED at
    /// all (nor receives it from the server). Default
    /// [`DEFAULT_RED_LEVELS`].
    pub red_levels: usize,
}

/// The default of [`EngineConfig::red_levels`]: 2, chosen by measurement
/// (speech through random and bursty loss, `docs/benchmarks.md`). At 24 kbps
/// Opus it raises the uplink from about 38 to about 90 kbps with headers.
pub const DEFAULT_RED_LEVELS: usize = 2;

impl EngineConfig {
    /// Defaults for `server` and `name`: no audio ends.
    pub fn new(server: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            name: name.into(),
            password: None,
            token: None,
            channels: Vec::new(),
            input: InputSpec::None,
            output: OutputSpec::None,
            opus: OpusConfig::default(),
            ptt: PttConfig::default(),
            // We send nothing during DTX silence, so pauses between phrases
            // must not end the stream: 1.5 s without packets does. A clean
            // link plays 5 ms over its measured jitter; after a loss or an
            // underrun, a frame over it (the FEC/RED margin).
            jitter: JitterConfig {
                idle_after_ms: 1500,
                min_delay_ms: 5,
                clean_cushion_ms: 5,
                ..JitterConfig::default()
            },
            audio: AudioControls::default(),
            trust: crate::tls::Trust::default(),
            ice_relay_only: false,
            red_levels: DEFAULT_RED_LEVELS,
        }
    }
}

/// Statistics of one received transmission (one talk-spurt of one talker).
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct TransmissionReport {
    /// Channel.
    pub channel: ChannelName,
    /// Talker's display name, if known from Floor Taken.
    pub talker: Option<String>,
    /// Wall-clock start, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Playout duration, ms.
    pub duration_ms: u64,
    /// RTP packets received.
    pub packets: u64,
    /// Packets never received in time.
    pub lost: u64,
    /// Lost frames recovered from in-band FEC.
    pub recovered_fec: u64,
    /// Frames produced by PLC.
    pub concealed: u64,
    /// RFC 3550 interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Jitter-buffer target delay at the end, ms.
    pub jitter_buffer_ms: u32,
    /// Its id for [`Engine::replay`] (instant recall), when it was kept.
    pub recall_id: Option<u64>,
}

/// What the engine reports: a signaling message as the protocol defines it
/// (once the engine has acted on it), or the engine's own news. Serialized,
/// it is the protocol's JSON for the first, a [`LocalEvent`]'s for the
/// second: one object tagged by `type`, the shape the UIs switch on
/// (`ui/types/`, generated from these types).
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
#[serde(untagged)]
pub enum EngineEvent {
    /// A server message, or one the engine stands in for: `welcome` (its
    /// `ice_servers` kept by the engine, so none are listed), `joined`,
    /// `left`, `member_joined`, `member_left`, `floor_granted`,
    /// `floor_deny` (also when our own request times out or is refused
    /// before sending), `floor_queued`, `floor_revoke` (also when our
    /// Max talk time runs out), `floor_taken`, `floor_idle` (also for each
    /// taken floor when the connection is lost), `channels`, `error`, the
    /// emergency, patch and mute notices. Never `offer` or `answer`: the
    /// engine answers those itself.
    Server(ServerMessage),
    /// Something only this engine knows.
    Local(LocalEvent),
}

/// The engine's own news, tagged by `type` like the protocol's messages
/// (and never with one of their tags).
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalEvent {
    /// The media path (ICE + DTLS) came up (`connected: true`) or went
    /// down (`false`).
    Media {
        /// Whether media flows.
        connected: bool,
    },
    /// The candidate pair the media path took, reported just after each
    /// `media` with `connected: true`.
    Ice(crate::rtc::IcePath),
    /// Our transmission on `channel` ended (Floor Release sent, revoked,
    /// or the connection lost).
    TalkEnded {
        /// The channel.
        channel: ChannelName,
    },
    /// A received transmission on `channel` started playing.
    ReceiveStarted {
        /// The channel.
        channel: ChannelName,
        /// When its first frame was played (not serialized).
        #[serde(skip)]
        at: Instant,
    },
    /// A received transmission finished playing: its statistics.
    Received {
        /// The transmission's figures.
        report: TransmissionReport,
    },
    /// A replay ([`Engine::replay`]) started playing.
    ReplayStarted {
        /// The transmission ([`TransmissionReport::recall_id`]).
        id: u64,
        /// Its channel.
        channel: ChannelName,
        /// When its first frame was played (not serialized).
        #[serde(skip)]
        at: Instant,
    },
    /// A replay finished, or was stopped or replaced.
    ReplayEnded {
        /// The transmission.
        id: u64,
    },
    /// The microphone's level after input gain, every
    /// [`controls::METER_PERIOD_MS`] while [`AudioControls::meter`] is on.
    Level(Level),
    /// What happened to the microphone's or the speaker's device: fell
    /// back to the default, restored, or none available
    /// ([`crate::audio::select`]).
    Device {
        /// Which end.
        end: DeviceEnd,
        /// What happened.
        #[serde(flatten)]
        change: crate::audio::select::DeviceChange,
    },
    /// The engine stopped (connection lost or closed). A lost connection
    /// first ends our transmission ([`LocalEvent::TalkEnded`] per granted
    /// channel) and clears every taken floor (`floor_idle`).
    Closed {
        /// Why, for people.
        reason: String,
    },
}

/// An audio device's end of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEnd {
    /// The microphone (a capture device).
    Input,
    /// The speaker (a playout device).
    Output,
}

/// The capture-clock index of a frame captured from `at`: 0 for the first
/// (`first` is set), then the 20 ms periods since it, rounded, and always
/// past the previous index (`last`), so that frames kept apart by a closed
/// capture gate are numbered by the time between them and none repeats.
fn capture_index(first: &mut Option<Instant>, last: &mut Option<u32>, at: Instant) -> u32 {
    let start = *first.get_or_insert(at);
    let periods = (at.saturating_duration_since(start).as_micros() + u128::from(FRAME_MS) * 500)
        / (u128::from(FRAME_MS) * 1000);
    let by_time = u32::try_from(periods % (1u128 << 32)).unwrap_or(0);
    let n = match *last {
        Some(prev) if by_time.wrapping_sub(prev) as i32 <= 0 => prev.wrapping_add(1),
        _ => by_time,
    };
    *last = Some(n);
    n
}

/// A [`device::Notify`] that reports on `events` as [`LocalEvent::Device`].
fn device_notices(end: DeviceEnd, events: &mpsc::UnboundedSender<EngineEvent>) -> device::Notify {
    let events = events.clone();
    Box::new(move |change| {
        let _ = events.send(LocalEvent::Device { end, change }.into());
    })
}

impl From<ServerMessage> for EngineEvent {
    fn from(m: ServerMessage) -> Self {
        Self::Server(m)
    }
}

impl From<LocalEvent> for EngineEvent {
    fn from(e: LocalEvent) -> Self {
        Self::Local(e)
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The WebSocket could not be opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// URL.
        url: String,
        /// Cause.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server's certificate was refused, or TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server refused the hello.
    #[error("server refused: {code:?}: {message}")]
    Refused {
        /// Code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// The server closed or sent nonsense during the handshake.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// WebRTC setup failed.
    #[error(transparent)]
    Media(#[from] crate::rtc::MediaError),
    /// An audio device failed.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    /// A WAV file failed.
    #[error(transparent)]
    Wav(#[from] crate::audio::wav::WavError),
    /// libopus failed.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
}

/// Options of a Floor Request (TS 24.380 §8.2.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloorOptions {
    /// Floor priority ([`Priority::NORMAL`] by default).
    pub priority: Priority,
    /// Wait in the floor queue when the floor is taken.
    pub queue: bool,
}

enum Command {
    Join(ChannelName),
    Leave(ChannelName),
    ListChannels,
    /// Talk key down for one channel or several (all-call), with the
    /// Floor Requests' options.
    Press {
        channels: Vec<ChannelName>,
        options: FloorOptions,
    },
    Release,
    SendWithoutFloor(bool),
    Audio(AudioControls),
    ReleaseTail(std::time::Duration),
    /// A message with no local state (emergency, mute).
    Send(ClientMessage),
    /// A channel's gain and pan in the mixer.
    ChannelMix(ChannelName, ChannelMix),
    /// To the mixer as it is (replay, stop replay).
    Mixer(MixerIn),
    Close(oneshot::Sender<()>),
}

/// Counters readable from any thread.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// RTP packets received on all downlink tracks.
    pub rtp_received: AtomicU64,
    /// RTP packets sent on the uplink.
    pub rtp_sent: AtomicU64,
    /// RTP packets received per downlink track, by SDP mid (see
    /// [`ServerMessage::Joined`] for a channel's mid).
    pub received_by_mid: std::sync::Mutex<HashMap<String, u64>>,
    /// Downlink packets lost on the way from the server and recovered from
    /// the redundant blocks of a later RED packet (RFC 2198).
    pub red_recovered: AtomicU64,
    /// The Opus encoder's expected packet loss now, percent: the configured
    /// start, then what [`squawk_media::FecTuner`] made of the server's
    /// receiver reports.
    pub expected_loss_pct: AtomicU64,
    /// Reception report blocks about our uplink from the server so far
    /// (RTCP SR or RR, RFC 3550 §6.4).
    pub receiver_reports: AtomicU64,
}

/// A running engine. See the module docs.
pub struct Engine {
    cmds: mpsc::UnboundedSender<Command>,
    wav: Option<WavSource>,
    /// Switch the microphone's and the speaker's devices (PulseAudio only).
    choosers: [Option<device::DeviceChooser>; 2],
    counters: Arc<EngineCounters>,
    client_id: ClientId,
    recording_started: Option<Instant>,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Engine {
    /// Connects, says hello, starts the audio ends and negotiates media.
    /// Returns once the server said welcome; media comes up in the
    /// background ([`LocalEvent::Media`]).
    ///
    /// # Errors
    /// [`EngineError`] if the server cannot be reached or refuses, or an
    /// audio end cannot be opened.
    pub async fn start(
        config: EngineConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<EngineEvent>), EngineError> {
        let tls = if config.server.starts_with("wss:") {
            let (tls, seen) = crate::tls::client_config(&config.trust)?;
            Some((tls, seen))
        } else {
            None
        };
        let seen = tls.as_ref().map(|(_, s)| s.clone());
        let connector = tls.map(|(c, _)| tokio_tungstenite::Connector::Rustls(Arc::new(c)));
        // disable_nagle: a Floor Request must not wait for the ACK of the previous message.
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            config.server.as_str(),
            None,
            true,
            connector,
        )
        .await
        .map_err(|e| {
            match seen.and_then(|s| s.explain(&config.trust, &e.to_string())) {
                Some(tls) => EngineError::Tls(tls),
                None => EngineError::Connect {
                    url: config.server.clone(),
                    source: Box::new(e),
                },
            }
        })?;
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            name: config.name.clone(),
            password: config.password.clone(),
            token: config.token.clone(),
        };
        ws.send(Message::Text(hello.to_json().into()))
            .await
            .map_err(|e| EngineError::Handshake(e.to_string()))?;
        let (welcome, client_id, ice_servers) = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match ServerMessage::from_json(&t) {
                    Ok(ServerMessage::Welcome {
                        version,
                        client_id,
                        max_talk_ms,
                        ice_servers,
                    }) => {
                        // The engine keeps the ICE servers (TURN credentials
                        // among them); what it reports lists none.
                        let welcome = ServerMessage::Welcome {
                            version,
                            client_id,
                            max_talk_ms,
                            ice_servers: Vec::new(),
                        };
                        break (welcome, client_id, ice_servers);
                    }
                    Ok(ServerMessage::Error { code, message }) => {
                        return Err(EngineError::Refused { code, message });
                    }
                    Ok(other) => {
                        return Err(EngineError::Handshake(format!("unexpected {other:?}")));
                    }
                    Err(e) => return Err(EngineError::Handshake(e.to_string())),
                },
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(EngineError::Handshake(e.to_string())),
                None => {
                    return Err(EngineError::Handshake(
                        "server closed the connection".into(),
                    ));
                }
            }
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let _ = events_tx.send(EngineEvent::Server(welcome));

        // Audio ends.
        let (frames_tx, frames_rx) = mpsc::channel::<CapturedFrame>(64);
        let mut devices: Vec<DeviceHandle> = Vec::new();
        let mut choosers = [None, None];
        // Open while someone uses captured frames ([`Runner::update_gate`]).
        let capture_gate = Arc::new(AtomicBool::new(false));
        let wav = match &config.input {
            InputSpec::None => None,
            InputSpec::Wav => Some(WavSource::start(frames_tx.clone())),
            InputSpec::Device(name) => {
                let capture = device::start_capture(
                    name.clone(),
                    device::GatedFrames::new(frames_tx.clone(), capture_gate.clone()),
                    device_notices(DeviceEnd::Input, &events_tx),
                )?;
                choosers[0] = capture.chooser();
                devices.push(capture);
                None
            }
        };
        drop(frames_tx);
        let (mixer_events_tx, mixer_events_rx) = mpsc::unbounded_channel();
        let stop_sink = Arc::new(AtomicBool::new(false));
        let mut recording_started = None;
        let mut sink = None;
        let mixer_tx = match &config.output {
            OutputSpec::None => None,
            OutputSpec::Device(name) => {
                let (tx, rx) = std::sync::mpsc::channel();
                let playout = device::start_playout(
                    name.clone(),
                    Mixer::with_layout(rx, mixer_events_tx, config.jitter, Layout::Stereo),
                    device_notices(DeviceEnd::Output, &events_tx),
                )?;
                choosers[1] = playout.chooser();
                devices.push(playout);
                Some(tx)
            }
            OutputSpec::Wav {
                path,
                seconds,
                stereo,
            } => {
                let (tx, rx) = std::sync::mpsc::channel();
                let layout = if *stereo {
                    Layout::Stereo
                } else {
                    Layout::Mono
                };
                let writer = WavWriter::create_channels(path, layout.channels() as u16)?;
                let start = Instant::now();
                recording_started = Some(start);
                let mixer = Mixer::with_layout(rx, mixer_events_tx, config.jitter, layout);
                sink = Some(
                    mixer::spawn_wav_sink(mixer, writer, start, *seconds, stop_sink.clone())
                        .map_err(|e| {
                            EngineError::Handshake(format!("cannot start wav sink: {e}"))
                        })?,
                );
                Some(tx)
            }
        };

        for channel in &config.channels {
            let join = ClientMessage::Join {
                channel: channel.clone(),
            };
            ws.send(Message::Text(join.to_json().into()))
                .await
                .map_err(|e| EngineError::Handshake(e.to_string()))?;
        }
        let bind_ip = server_ip(&config.server).await;
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let ice = crate::rtc::IceOptions {
            servers: ice_servers,
            relay_only: config.ice_relay_only,
        };
        let mut media = Media::new(bind_ip, &ice, config.red_levels, media_tx).await?;
        let offer = media.offer().await?;
        ws.send(Message::Text(
            ClientMessage::Offer { sdp: offer }.to_json().into(),
        ))
        .await
        .map_err(|e| EngineError::Handshake(e.to_string()))?;

        let counters = Arc::new(EngineCounters::default());
        let fec = squawk_media::FecTuner::new(squawk_media::FecTunerConfig {
            initial_pct: u8::try_from(config.opus.expected_loss_pct.clamp(0, 100)).unwrap_or(10),
            ..Default::default()
        });
        counters
            .expected_loss_pct
            .store(u64::from(fec.expected_loss_pct()), Ordering::Relaxed);
        let mut encoder = Encoder::new(config.opus)?;
        if config.opus.adapt_fec {
            encoder.set_expected_loss_pct(i32::from(fec.expected_loss_pct()))?;
        }
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let mut runner = Runner {
            ws,
            media,
            encoder,
            fec: config.opus.adapt_fec.then_some(fec),
            sent_at_report: 0,
            ptt: Ptt::new(config.ptt),
            controls: config.audio.clamped(),
            meter: LevelMeter::default(),
            processor: (config.input != InputSpec::None).then(Box::default),
            events: events_tx,
            mixer: mixer_tx,
            mids: HashMap::new(),
            talkers: HashMap::new(),
            taken: HashSet::new(),
            counters: counters.clone(),
            seq: rand::random(),
            ts_base: rand::random(),
            capture_gate,
            first_frame_at: None,
            last_frame_n: None,
            pending_marker: false,
            floor_options: FloorOptions::default(),
            revoked_by: None,
            grant_max_ms: 0,
            rogue: false,
            _devices: devices,
            stop_sink,
            sink,
        };
        runner.set_controls(runner.controls);
        tokio::spawn(runner.run(cmd_rx, frames_rx, media_rx, mixer_events_rx));
        Ok((
            Self {
                cmds,
                wav,
                choosers,
                counters,
                client_id,
                recording_started,
            },
            events_rx,
        ))
    }

    /// Moves the microphone (`end` input) or the speaker (output) to the
    /// device `name` (`None`: the system's default) while the engine runs,
    /// as [`device::start_capture`] chooses one; notices follow as
    /// [`LocalEvent::Device`]. Returns false if that end cannot switch (not
    /// a device, or cpal without a PulseAudio server).
    pub fn set_device(&self, end: DeviceEnd, name: Option<String>) -> bool {
        let i = match end {
            DeviceEnd::Input => 0,
            DeviceEnd::Output => 1,
        };
        self.choosers[i].as_ref().map(|c| c.choose(name)).is_some()
    }

    /// Our connection id.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// When the WAV recording (if any) started: sample 0 of the file.
    pub fn recording_started(&self) -> Option<Instant> {
        self.recording_started
    }

    /// Counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Joins a channel ([`ServerMessage::Joined`] follows).
    pub fn join(&self, channel: ChannelName) {
        let _ = self.cmds.send(Command::Join(channel));
    }

    /// Leaves a channel.
    pub fn leave(&self, channel: ChannelName) {
        let _ = self.cmds.send(Command::Leave(channel));
    }

    /// Asks for the server's channel list ([`ServerMessage::Channels`] follows).
    pub fn list_channels(&self) {
        let _ = self.cmds.send(Command::ListChannels);
    }

    /// Talk key down for `channel`: Floor Request, capture starts now.
    pub fn press(&self, channel: ChannelName) {
        self.press_with(channel, FloorOptions::default());
    }

    /// Talk key down with a floor priority and, with `queue`, asking to
    /// wait in the floor queue when the floor is taken
    /// ([`ServerMessage::FloorQueued`]) instead of a Floor Deny `busy`. While
    /// queued nothing is sent or kept; [`Engine::release`] cancels.
    pub fn press_with(&self, channel: ChannelName, options: FloorOptions) {
        self.press_all(vec![channel], options);
    }

    /// Talk key down for several channels at once (all-call): a Floor
    /// Request in each; the transmission starts at the first Floor Granted
    /// and reaches every channel granted. Each channel's answer comes as
    /// its own event ([`ServerMessage::FloorGranted`], [`ServerMessage::FloorDeny`],
    /// [`ServerMessage::FloorQueued`]); [`Engine::release`] ends them all.
    pub fn press_all(&self, channels: Vec<ChannelName>, options: FloorOptions) {
        let _ = self.cmds.send(Command::Press { channels, options });
    }

    /// Raises an emergency in `channel` (every member is alerted; our Floor
    /// Requests there get emergency priority for the server's emergency
    /// time). `emergency` follows as an [`EngineEvent::Server`].
    pub fn emergency(&self, channel: ChannelName) {
        let _ = self
            .cmds
            .send(Command::Send(ClientMessage::Emergency { channel }));
    }

    /// Cancels our emergency in `channel`, or `originator`'s once it has
    /// left the channel.
    pub fn cancel_emergency(&self, channel: ChannelName, originator: Option<ClientId>) {
        let _ = self
            .cmds
            .send(Command::Send(ClientMessage::EmergencyCancel {
                channel,
                originator,
            }));
    }

    /// Acknowledges `originator`'s emergency in `channel`.
    pub fn ack_emergency(&self, channel: ChannelName, originator: ClientId) {
        let _ = self.cmds.send(Command::Send(ClientMessage::EmergencyAck {
            channel,
            originator,
        }));
    }

    /// Patches `channels` (we must be in each): one floor for all of them,
    /// each talker heard in every one. `patched` follows as an
    /// [`EngineEvent::Server`], or a [`ServerMessage::Error`].
    pub fn patch(&self, channels: Vec<ChannelName>) {
        let _ = self
            .cmds
            .send(Command::Send(ClientMessage::Patch { channels }));
    }

    /// Splits the patch `channel` is in (refused with `floor_busy` while
    /// someone talks in it). `unpatched` follows as an [`EngineEvent::Server`].
    pub fn unpatch(&self, channel: ChannelName) {
        let _ = self
            .cmds
            .send(Command::Send(ClientMessage::Unpatch { channel }));
    }

    /// Pauses (`muted`) or resumes our downlink of `channel` at the server:
    /// while muted the SFU sends nothing of it. `muted` follows as an
    /// [`EngineEvent::Server`].
    pub fn mute(&self, channel: ChannelName, muted: bool) {
        let _ = self
            .cmds
            .send(Command::Send(ClientMessage::Mute { channel, muted }));
    }

    /// Sets how `channel` sounds from now on: its gain and, on a stereo
    /// output (the audio device, a stereo WAV), its pan (values clamped, see
    /// [`ChannelMix::clamped`]). Applies to the local mix only; the server
    /// is not told.
    pub fn set_channel_mix(&self, channel: ChannelName, mix: ChannelMix) {
        let _ = self.cmds.send(Command::ChannelMix(channel, mix));
    }

    /// Replays received transmission `id` ([`TransmissionReport::recall_id`];
    /// instant recall): decoded again and played centred over the live audio,
    /// which goes on. Replaces a replay in progress; an id no longer kept is
    /// ignored. [`LocalEvent::ReplayStarted`] and [`LocalEvent::ReplayEnded`]
    /// follow. The last 10 transmissions per channel (at most 5 minutes) are
    /// kept.
    pub fn replay(&self, id: u64) {
        let _ = self.cmds.send(Command::Mixer(MixerIn::Replay { id }));
    }

    /// Stops the replay in progress.
    pub fn stop_replay(&self) {
        let _ = self.cmds.send(Command::Mixer(MixerIn::StopReplay));
    }

    /// Talk key up: release tail, then Floor Release.
    pub fn release(&self) {
        let _ = self.cmds.send(Command::Release);
    }

    /// Changes gain, volume, mic test and meter at once (values clamped,
    /// see [`AudioControls::clamped`]).
    pub fn set_audio(&self, controls: AudioControls) {
        let _ = self.cmds.send(Command::Audio(controls));
    }

    /// Changes the release tail (audio sent after key-up before Floor
    /// Release) for the next release.
    pub fn set_release_tail(&self, tail: std::time::Duration) {
        let _ = self.cmds.send(Command::ReleaseTail(tail));
    }

    /// Test aid: transmit captured audio whether or not we hold a floor,
    /// like a broken or malicious client. The server must drop it.
    #[doc(hidden)]
    pub fn misbehave_send_without_floor(&self, on: bool) {
        let _ = self.cmds.send(Command::SendWithoutFloor(on));
    }

    /// With [`InputSpec::Wav`]: plays 48 kHz mono `pcm` into the microphone
    /// from the next frame on. The receiver fires when it has been captured.
    pub fn play(&self, pcm: Arc<[f32]>) -> Option<oneshot::Receiver<Instant>> {
        self.wav.as_ref().map(|w| w.play(pcm))
    }

    /// Leaves everything and closes the connection.
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The local IP to bind media to: loopback for a loopback server (tests,
/// the embedded default), else all interfaces.
async fn server_ip(url: &str) -> std::net::IpAddr {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(h, _)| h)
                .trim_matches(['[', ']'])
        })
        .unwrap_or("");
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}

/// An encoded frame on its way through the PTT machine.
#[derive(Debug)]
struct Encoded {
    timestamp: u32,
    payload: Bytes,
}

struct Runner {
    ws: Ws,
    media: Media,
    encoder: Encoder,
    /// Follows the uplink loss with the encoder's FEC (`None`: fixed).
    fec: Option<squawk_media::FecTuner>,
    /// `counters.rtp_sent` when the last report was fed.
    sent_at_report: u64,
    ptt: Ptt<Encoded>,
    events: mpsc::UnboundedSender<EngineEvent>,
    mixer: Option<std::sync::mpsc::Sender<MixerIn>>,
    /// Downlink mid → channel.
    mids: HashMap<String, ChannelName>,
    /// Current talker per channel, from Floor Taken.
    talkers: HashMap<ChannelName, String>,
    /// Channels whose floor someone else holds now (Floor Taken, until
    /// Floor Idle or we leave).
    taken: HashSet<ChannelName>,
    counters: Arc<EngineCounters>,
    seq: u16,
    ts_base: u32,
    /// Frames captured since start (the RTP timestamp clock).
    /// Open while captured frames are used (a transmission, the meter,
    /// the mic test, rogue sending): the capture thread sends none
    /// otherwise.
    capture_gate: Arc<AtomicBool>,
    /// When the first captured frame started: frame `n` of the capture
    /// clock started `n` × 20 ms later.
    first_frame_at: Option<Instant>,
    /// The capture-clock index of the last frame received.
    last_frame_n: Option<u32>,
    pending_marker: bool,
    /// What the last press asked for (sent with its Floor Request).
    floor_options: FloorOptions,
    /// Who pre-empted us, from the last Floor Revoke.
    revoked_by: Option<Member>,
    /// The talk time of the Floor Granted being handled, ms (reported with
    /// it once the PTT machine takes the grant).
    grant_max_ms: u64,
    rogue: bool,
    controls: AudioControls,
    meter: LevelMeter,
    /// Noise suppression and gain control of the captured audio; `None`
    /// without an input.
    processor: Option<Box<CaptureProcessor>>,
    _devices: Vec<DeviceHandle>,
    stop_sink: Arc<AtomicBool>,
    /// The WAV sink thread, joined on shutdown so the file is complete.
    sink: Option<std::thread::JoinHandle<()>>,
}

impl Runner {
    fn emit(&self, e: impl Into<EngineEvent>) {
        let _ = self.events.send(e.into());
    }

    async fn send(&mut self, msg: ClientMessage) -> bool {
        self.ws
            .send(Message::Text(msg.to_json().into()))
            .await
            .is_ok()
    }

    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut frames: mpsc::Receiver<CapturedFrame>,
        mut media: mpsc::UnboundedReceiver<MediaEvent>,
        mut mixer_events: mpsc::UnboundedReceiver<MixerEvent>,
    ) {
        let reason = loop {
            let tick = self.ptt.poll_timeout();
            let sleep = async {
                match tick {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Command::Close(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => if !self.command(cmd).await { break "connection lost".to_string() },
                    None => { self.shutdown().await; return; }
                },
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => match ServerMessage::from_json(&t) {
                        Ok(m) => if !self.server(m).await { break "connection lost".to_string() },
                        Err(e) => warn!("bad server message: {e}"),
                    },
                    Some(Ok(Message::Close(c))) => break format!("server closed: {c:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("signaling: {e}"),
                    None => break "server closed the connection".to_string(),
                },
                Some(frame) = frames.recv() => self.frame(frame).await,
                Some(ev) = media.recv() => self.media_event(ev),
                Some(ev) = mixer_events.recv() => self.mixer_event(ev),
                () = sleep => self.ptt_input(Instant::now(), PttInput::Tick).await,
            }
        };
        // Gone from the server: our transmission ended (Talk Ended for each
        // granted channel) and, as far as we can know, nobody holds a floor
        // any more (Floor Idle for each taken one), so that no UI shows a
        // stale talker while reconnecting. The server frees a lost
        // client's floors itself.
        self.ptt_input(Instant::now(), PttInput::Disconnected).await;
        let mut taken: Vec<ChannelName> = self.taken.drain().collect();
        taken.sort();
        for channel in taken {
            self.emit(ServerMessage::FloorIdle { channel });
        }
        self.emit(LocalEvent::Closed { reason });
        self.shutdown().await;
    }

    /// Feeds one of the server's reception report blocks about the uplink
    /// to the FEC tuner, with the packets sent since the previous one, and
    /// applies its figure.
    fn uplink_loss(&mut self, fraction_lost: f64) {
        let reports = self
            .counters
            .receiver_reports
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let sent = self.counters.rtp_sent.load(Ordering::Relaxed);
        let since = u32::try_from(sent.saturating_sub(self.sent_at_report)).unwrap_or(u32::MAX);
        self.sent_at_report = sent;
        let Some(fec) = &mut self.fec else { return };
        if let Some(pct) = fec.report(fraction_lost, since) {
            match self.encoder.set_expected_loss_pct(i32::from(pct)) {
                Ok(()) => {
                    debug!(
                        "uplink loss {:.1} % (report {reports}): Opus expected loss {pct} %",
                        fraction_lost * 100.0
                    );
                    self.counters
                        .expected_loss_pct
                        .store(u64::from(pct), Ordering::Relaxed);
                }
                Err(e) => warn!("opus expected loss {pct} %: {e}"),
            }
        }
    }

    async fn shutdown(&mut self) {
        self.stop_sink.store(true, Ordering::Relaxed);
        let _ = self.ws.close(None).await;
        self.media.close().await;
        if let Some(sink) = self.sink.take() {
            let _ = tokio::task::spawn_blocking(move || sink.join()).await;
        }
    }

    async fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Join(channel) => self.send(ClientMessage::Join { channel }).await,
            Command::Leave(channel) => self.send(ClientMessage::Leave { channel }).await,
            Command::ListChannels => self.send(ClientMessage::ListChannels).await,
            Command::Press { channels, options } => {
                self.floor_options = options;
                self.ptt_input(Instant::now(), PttInput::PressAll(channels))
                    .await;
                true
            }
            Command::Release => {
                self.ptt_input(Instant::now(), PttInput::Release).await;
                true
            }
            Command::SendWithoutFloor(on) => {
                self.rogue = on;
                self.update_gate();
                true
            }
            Command::Audio(controls) => {
                self.set_controls(controls.clamped());
                true
            }
            Command::ReleaseTail(tail) => {
                self.ptt.set_release_tail(tail);
                true
            }
            Command::Send(msg) => self.send(msg).await,
            Command::Mixer(m) => {
                if let Some(mixer) = &self.mixer {
                    let _ = mixer.send(m);
                }
                true
            }
            Command::ChannelMix(channel, mix) => {
                if let Some(m) = &self.mixer {
                    let _ = m.send(MixerIn::ChannelMix { channel, mix });
                }
                true
            }
            Command::Close(_) => true,
        }
    }

    async fn server(&mut self, msg: ServerMessage) -> bool {
        let now = Instant::now();
        match msg {
            ServerMessage::Answer { sdp } => {
                if let Err(e) = self.media.answer_received(sdp).await {
                    warn!("server answer: {e}");
                }
            }
            ServerMessage::Offer { sdp } => match self.media.offer_received(sdp).await {
                Ok(answer) => return self.send(ClientMessage::Answer { sdp: answer }).await,
                Err(e) => warn!("server offer: {e}"),
            },
            ServerMessage::FloorGranted {
                channel,
                max_duration_ms,
            } => {
                // Reported when the machine takes it (TalkStarted): a grant
                // we did not ask for is given back, not shown.
                self.grant_max_ms = max_duration_ms;
                self.ptt_input(now, PttInput::Granted(channel)).await;
            }
            ServerMessage::FloorDeny { channel, reason } => {
                self.ptt_input(now, PttInput::Denied(channel, reason)).await
            }
            ServerMessage::FloorRevoke {
                channel,
                reason,
                by,
            } => {
                self.revoked_by = by;
                self.ptt_input(now, PttInput::Revoked(channel, reason))
                    .await;
            }
            ServerMessage::FloorIdle { channel } => {
                self.taken.remove(&channel);
                self.ptt_input(now, PttInput::FloorIdle(channel.clone()))
                    .await;
                self.emit(ServerMessage::FloorIdle { channel });
            }
            ServerMessage::FloorQueued { channel, position } => {
                self.ptt_input(now, PttInput::Queued(channel, position))
                    .await
            }
            ServerMessage::Welcome { .. } => {}
            // Passed on as it came, once the engine kept what it needs.
            other => {
                self.observe(&other);
                self.emit(other);
            }
        }
        true
    }

    /// What the engine keeps from a server message it passes on unchanged:
    /// a channel's downlink mid (`joined`, `left`), its talker (`floor_taken`)
    /// and the server's errors, logged. Notices, presence and the channel
    /// list need nothing.
    fn observe(&mut self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Joined { channel, mid, .. } => {
                self.mids.insert(mid.clone(), channel.clone());
                if let Some(m) = &self.mixer {
                    let _ = m.send(MixerIn::Map {
                        mid: mid.clone(),
                        channel: Some(channel.clone()),
                    });
                }
            }
            ServerMessage::Left { channel } => {
                let mids: Vec<String> = self
                    .mids
                    .iter()
                    .filter(|(_, c)| *c == channel)
                    .map(|(m, _)| m.clone())
                    .collect();
                for mid in mids {
                    self.mids.remove(&mid);
                    if let Some(m) = &self.mixer {
                        let _ = m.send(MixerIn::Map { mid, channel: None });
                    }
                }
                self.taken.remove(channel);
            }
            ServerMessage::FloorTaken {
                channel,
                talker_name,
                ..
            } => {
                self.talkers.insert(channel.clone(), talker_name.clone());
                self.taken.insert(channel.clone());
                if let Some(m) = &self.mixer {
                    let _ = m.send(MixerIn::Talker {
                        channel: channel.clone(),
                        name: talker_name.clone(),
                    });
                }
            }
            ServerMessage::Error { code, message } => warn!(?code, %message, "server error"),
            _ => {}
        }
    }

    fn set_controls(&mut self, controls: AudioControls) {
        if let Some(m) = &self.mixer {
            let _ = m.send(MixerIn::Volume(controls.output_volume));
        }
        if !controls.meter {
            self.meter = LevelMeter::default();
        }
        self.controls = controls;
        self.update_gate();
    }

    async fn frame(&mut self, mut frame: CapturedFrame) {
        // RTP time follows the capture clock (RFC 3550 §5.1), whether or
        // not frames are sent or even delivered (an idle engine gets none):
        // gaps between transmissions show as timestamp jumps, and
        // scheduling jitter of the capture thread cannot repeat a timestamp.
        let n = capture_index(&mut self.first_frame_at, &mut self.last_frame_n, frame.at);
        let timestamp = self
            .ts_base
            .wrapping_add(n.wrapping_mul(FRAME_SAMPLES as u32));
        controls::apply_gain(&mut frame.pcm, self.controls.input_gain);
        if let Some(p) = &mut self.processor {
            // Only frames someone uses are processed: an idle app spends
            // nothing on noise suppression.
            let used = self.controls.meter
                || self.controls.mic_test
                || self.ptt.wants_audio()
                || self.rogue;
            let (ns, agc) = (self.controls.noise_suppression, self.controls.auto_gain);
            if used && (ns || agc) {
                p.process(&mut frame.pcm, ns, agc);
            } else {
                p.observe(&frame.pcm);
            }
        }
        if self.controls.meter
            && let Some(level) = self.meter.push(&frame.pcm)
        {
            self.emit(LocalEvent::Level(level));
        }
        if self.controls.mic_test
            && let Some(m) = &self.mixer
        {
            let _ = m.send(MixerIn::Local(frame.pcm.clone()));
        }
        if !self.ptt.wants_audio() && !self.rogue {
            return;
        }
        let payload = match self.encoder.encode(&frame.pcm) {
            Ok(p) => Bytes::copy_from_slice(p),
            Err(e) => {
                warn!("opus encode: {e}");
                return;
            }
        };
        if self.rogue {
            if payload.len() <= 2 {
                return;
            }
            self.seq = self.seq.wrapping_add(1);
            if self
                .media
                .send(self.seq, timestamp, false, payload)
                .await
                .is_ok()
            {
                self.counters.rtp_sent.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        self.ptt_input(
            frame.at,
            PttInput::Frame(frame.at, Encoded { timestamp, payload }),
        )
        .await;
    }

    /// Opens the capture gate while frames are used, closes it otherwise.
    fn update_gate(&self) {
        let used =
            self.controls.meter || self.controls.mic_test || self.ptt.wants_audio() || self.rogue;
        self.capture_gate.store(used, Ordering::Relaxed);
    }

    async fn ptt_input(&mut self, now: Instant, input: PttInput<Encoded>) {
        self.ptt.handle(now, input);
        self.update_gate();
        while let Some(action) = self.ptt.poll_action() {
            match action {
                PttAction::RequestFloor(channel) => {
                    let _ = self
                        .send(ClientMessage::FloorRequest {
                            channel,
                            priority: self.floor_options.priority,
                            queue: self.floor_options.queue,
                        })
                        .await;
                }
                PttAction::ReleaseFloor(channel) => {
                    let _ = self.send(ClientMessage::FloorRelease { channel }).await;
                }
                PttAction::Send { frame, first } => {
                    self.pending_marker |= first;
                    if frame.payload.len() <= 2 {
                        // DTX: the encoder has nothing to say; send nothing (RFC 7587 §3.1.3).
                        continue;
                    }
                    let marker = std::mem::take(&mut self.pending_marker);
                    self.seq = self.seq.wrapping_add(1);
                    match self
                        .media
                        .send(self.seq, frame.timestamp, marker, frame.payload)
                        .await
                    {
                        Ok(()) => {
                            self.counters.rtp_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => debug!("uplink: {e}"),
                    }
                }
                PttAction::TalkStarted(channel) => self.emit(ServerMessage::FloorGranted {
                    channel,
                    max_duration_ms: self.grant_max_ms,
                }),
                PttAction::TalkEnded(channel) => self.emit(LocalEvent::TalkEnded { channel }),
                PttAction::Busy(channel, reason) => {
                    self.emit(ServerMessage::FloorDeny { channel, reason })
                }
                PttAction::Queued(channel, position) => {
                    self.emit(ServerMessage::FloorQueued { channel, position })
                }
                PttAction::Revoked(channel, reason) => {
                    let by = self.revoked_by.take();
                    self.emit(ServerMessage::FloorRevoke {
                        channel,
                        reason,
                        by,
                    })
                }
            }
        }
    }

    fn media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::State(RTCPeerConnectionState::Connected) => {
                self.emit(LocalEvent::Media { connected: true });
                let (pc, events) = (self.media.pc.clone(), self.events.clone());
                tokio::spawn(async move {
                    let path = crate::rtc::ice_path(pc.as_ref()).await;
                    let _ = events.send(LocalEvent::Ice(path).into());
                });
            }
            MediaEvent::State(
                RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed,
            ) => {
                self.emit(LocalEvent::Media { connected: false });
            }
            MediaEvent::State(_) => {}
            MediaEvent::Track(track) => {
                let pc = self.media.pc.clone();
                let mixer = self.mixer.clone();
                let counters = self.counters.clone();
                tokio::spawn(read_track(pc, track, mixer, counters));
            }
            MediaEvent::UplinkLoss(fraction_lost) => self.uplink_loss(fraction_lost),
        }
    }

    fn mixer_event(&mut self, ev: MixerEvent) {
        match ev {
            MixerEvent::StreamStarted { channel, at } => {
                self.emit(LocalEvent::ReceiveStarted { channel, at })
            }
            MixerEvent::ReplayStarted { id, channel, at } => {
                self.emit(LocalEvent::ReplayStarted { id, channel, at })
            }
            MixerEvent::ReplayEnded { id } => self.emit(LocalEvent::ReplayEnded { id }),
            MixerEvent::StreamEnded {
                channel,
                stats,
                duration,
                started,
                recall_id,
                talker,
                ..
            } => {
                let start = SystemTime::now() - started.elapsed();
                let report = TransmissionReport {
                    talker: talker.or_else(|| self.talkers.get(&channel).cloned()),
                    channel,
                    start_unix_ms: start
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    duration_ms: duration.as_millis() as u64,
                    packets: stats.packets,
                    lost: stats.lost,
                    recovered_fec: stats.fec_recovered,
                    concealed: stats.concealed,
                    jitter_ms: stats.jitter_ms,
                    jitter_buffer_ms: stats.target_delay_ms,
                    recall_id,
                };
                self.emit(LocalEvent::Received { report });
            }
        }
    }
}

/// Reads one downlink track into the mixer (or only counts, without one).
async fn read_track(
    pc: Arc<dyn webrtc::peer_connection::PeerConnection>,
    track: Arc<dyn TrackRemote>,
    mixer: Option<std::sync::mpsc::Sender<MixerIn>>,
    counters: Arc<EngineCounters>,
) {
    let mut mid: Option<String> = None;
    // Repairs downlink losses from the RED the server sends (20 ms frames).
    let mut red = RedReceiver::new(960);
    while let Some(ev) = track.poll().await {
        match ev {
            TrackRemoteEvent::OnOpen(init) => {
                let id: usize = init.receiver_id.into();
                for t in pc.get_transceivers().await {
                    if t.id() == id {
                        mid = t.mid().await.ok().flatten();
                    }
                }
                debug!(?mid, "downlink track open");
            }
            TrackRemoteEvent::OnRtpPacket(p) => {
                counters.rtp_received.fetch_add(1, Ordering::Relaxed);
                if let Some(mid) = &mid
                    && let Ok(mut by_mid) = counters.received_by_mid.lock()
                {
                    *by_mid.entry(mid.clone()).or_default() += 1;
                }
                let (Some(m), Some(mid)) = (&mixer, &mid) else {
                    continue;
                };
                let arrival = Instant::now();
                let h = &p.header;
                let packet = |seq, timestamp, marker, payload| {
                    MixerIn::Packet(RtpIn {
                        mid: mid.clone(),
                        seq,
                        timestamp,
                        marker,
                        payload,
                        arrival,
                    })
                };
                if h.payload_type != crate::rtc::RED_PT {
                    red.observe(h.sequence_number);
                    let _ = m.send(packet(h.sequence_number, h.timestamp, h.marker, p.payload));
                    continue;
                }
                let Ok(payload) = RedPayload::parse(&p.payload) else {
                    debug!(?mid, "malformed RED packet dropped");
                    continue;
                };
                let unwrapped = red.unwrap(
                    crate::rtc::OPUS_PT,
                    h.sequence_number,
                    h.timestamp,
                    &payload,
                    |u| {
                        if u.recovered {
                            counters.red_recovered.fetch_add(1, Ordering::Relaxed);
                        }
                        let marker = h.marker && !u.recovered;
                        let data = p.payload.slice_ref(u.payload);
                        let _ = m.send(packet(u.seq, u.ts, marker, data));
                    },
                );
                if let Err(e) = unwrapped {
                    debug!(?mid, "RED packet dropped: {e}");
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Samples per second, re-exported for callers sizing buffers.
pub const ENGINE_SAMPLE_RATE: u32 = SAMPLE_RATE;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_capture_index_follows_the_capture_clock_and_never_repeats() {
        let t0 = Instant::now();
        let (mut first, mut last) = (None, None);
        let mut index =
            |ms: u64| capture_index(&mut first, &mut last, t0 + Duration::from_millis(ms));
        // Frames 20 ms apart, with scheduling jitter of a few ms.
        assert_eq!(index(0), 0);
        assert_eq!(index(21), 1);
        assert_eq!(index(38), 2);
        // A closed gate kept 10 s of frames away: the index jumps by them.
        assert_eq!(index(10_000), 500);
        // Two frames dated alike (jitter) still get distinct indexes.
        assert_eq!(index(10_001), 501);
        assert_eq!(index(10_040), 502);
    }
}
