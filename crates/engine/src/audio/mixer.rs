//! The receive side after the network: one jitter buffer and Opus decoder
//! per downlink track (one per channel), mixed into one 48 kHz stream, mono
//! or stereo ([`Layout`]); each channel with its own gain and, in stereo,
//! its own pan ([`ChannelMix`]), as a dispatch console's per-channel
//! volume and left/centre/right speaker.
//!
//! **Instant recall**: every received transmission is kept as what its
//! jitter buffer played (the Opus payloads, FEC and concealment steps, not
//! decoded audio: about 3.5 KB/s), the last [`RECALL_TRANSMISSIONS`] per
//! channel and at most [`RECALL_MAX`] of audio per channel. A replay
//! ([`MixerIn::Replay`]) decodes it again with its own decoder and plays it
//! on its own bus, centred and mixed over the live audio, which goes on
//! unchanged (nothing live is ducked or missed). One replay at a time; a new
//! one replaces it.
//!
//! The mixer is pulled by its sink's clock (the audio device, or the
//! real-time WAV writer), so the jitter buffers absorb the drift between
//! the talker's clock and ours. Packets and track mapping arrive over a
//! channel from the network tasks; the mixer owns all state.
//!
//! **Playout in blocks finer than a frame.** Each source (a track, the
//! replay, the mic test) keeps the rest of its current 20 ms decoded frame
//! and hands it out sample by sample, so a sink may pull any length; the
//! sinks pull one [`BLOCK_MS`] block at a time, when it is to be heard.
//! A jitter buffer is asked for its next frame only when the previous one
//! has been played out, and an idle track asks again at every block: a
//! transmission starts within 5 ms of its target delay instead of at the
//! next 20 ms device wake (up to 15 ms later, different for every
//! transmission), and every decision is taken at the time of the block
//! that plays it, so the jitter buffer's margin for FEC and late packets is
//! the one it computed. (Mixing 20 ms at once and starting a stream
//! inside it would decide up to 15 ms before the audio is heard: the 5 ms
//! experiment of 2026-12-07 that lost STOI under loss.)

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc as std_mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::Bytes;
use squawk_media::{JitterBuffer, JitterConfig, JitterEvent, JitterStats, Playout};
use squawk_protocol::ChannelName;
use tokio::sync::mpsc;

use super::{FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, wav::WavWriter};

/// Length of the block the sinks pull, ms: the grid on which a
/// transmission can start (see the module docs).
pub const BLOCK_MS: u32 = 5;
/// Samples per block, mono: 240 (a quarter of [`FRAME_SAMPLES`]).
pub const BLOCK_SAMPLES: usize = (SAMPLE_RATE / 1000 * BLOCK_MS) as usize;

/// The rest of a source's current 20 ms frame, handed out block by block.
struct Decoded {
    /// [`FRAME_SAMPLES`] samples, mono.
    pcm: Box<[f32]>,
    /// Next sample to hand out; [`FRAME_SAMPLES`] when all are out.
    pos: usize,
    /// Whether the frame carries sound (false for silence: nothing is added).
    audible: bool,
}

impl Decoded {
    fn new() -> Self {
        Self {
            pcm: vec![0.0; FRAME_SAMPLES].into_boxed_slice(),
            pos: FRAME_SAMPLES,
            audible: false,
        }
    }

    /// Whether every sample of the frame has been handed out.
    fn is_spent(&self) -> bool {
        self.pos >= FRAME_SAMPLES
    }

    /// A new frame, in [`Decoded::pcm`], starts (`audible` or silent).
    fn restart(&mut self, audible: bool) {
        self.pos = 0;
        self.audible = audible;
    }

    /// Adds up to `n` of the frame's next samples into `out` (interleaved
    /// in `layout`) with `mix`; how many samples were used.
    fn add_into(&mut self, layout: Layout, out: &mut [f32], n: usize, mix: ChannelMix) -> usize {
        let take = n.min(FRAME_SAMPLES - self.pos.min(FRAME_SAMPLES));
        if self.audible {
            let pcm = &self.pcm[self.pos..self.pos + take];
            add(layout, &mut out[..take * layout.channels()], pcm, mix);
        }
        self.pos += take;
        take
    }
}

/// The time of sample `i` of a pull made at `now`.
fn sample_time(now: Instant, i: usize) -> Instant {
    now + Duration::from_micros(i as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
}
use crate::codec::{DecodeInput, Decoder};

/// One received RTP packet.
#[derive(Debug)]
pub struct RtpIn {
    /// SDP mid of the downlink track it came on.
    pub mid: String,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp, 48 kHz units.
    pub timestamp: u32,
    /// RTP marker bit.
    pub marker: bool,
    /// Opus payload.
    pub payload: Bytes,
    /// Arrival time.
    pub arrival: Instant,
}

/// Output layout of a [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// One channel: [`ChannelMix::pan`] is ignored.
    #[default]
    Mono,
    /// Two channels, interleaved left, right.
    Stereo,
}

impl Layout {
    /// Samples per frame instant: 1 or 2.
    pub fn channels(self) -> usize {
        match self {
            Self::Mono => 1,
            Self::Stereo => 2,
        }
    }
}

/// How one channel sounds in the mix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelMix {
    /// Linear gain, 0.0 (silent) to [`MAX_CHANNEL_GAIN`]; 1.0 by default.
    pub gain: f32,
    /// Balance, -1.0 (left only) to 1.0 (right only); 0.0, the default, is
    /// both sides at full gain (so a centred channel sounds as in mono).
    /// Ignored by a mono output.
    pub pan: f32,
}

/// Highest per-channel gain (+6 dB), so a selected channel can stand out.
pub const MAX_CHANNEL_GAIN: f32 = 2.0;

impl Default for ChannelMix {
    fn default() -> Self {
        Self {
            gain: 1.0,
            pan: 0.0,
        }
    }
}

impl ChannelMix {
    /// Gain clamped to 0.0..=[`MAX_CHANNEL_GAIN`], pan to -1.0..=1.0; NaN
    /// becomes the default.
    pub fn clamped(self) -> Self {
        let fix = |v: f32, lo: f32, hi: f32, default: f32| {
            if v.is_nan() { default } else { v.clamp(lo, hi) }
        };
        Self {
            gain: fix(self.gain, 0.0, MAX_CHANNEL_GAIN, 1.0),
            pan: fix(self.pan, -1.0, 1.0, 0.0),
        }
    }

    /// Linear gains of the left and right sides.
    pub fn sides(self) -> (f32, f32) {
        let left = (1.0 - self.pan).min(1.0);
        let right = (1.0 + self.pan).min(1.0);
        (self.gain * left, self.gain * right)
    }
}

/// Transmissions kept per channel for instant recall.
pub const RECALL_TRANSMISSIONS: usize = 10;
/// Most audio kept per channel for instant recall (the oldest transmissions
/// go first): 5 minutes.
pub const RECALL_MAX: Duration = Duration::from_secs(300);

/// A received transmission kept for instant recall.
#[derive(Debug)]
struct Recording {
    id: u64,
    channel: ChannelName,
    /// One step per 20 ms frame, as played (never `Idle`).
    steps: Vec<Playout>,
}

/// A replay in progress.
struct Replay {
    rec: Arc<Recording>,
    pos: usize,
    decoder: Decoder,
    /// The step being played.
    frame: Decoded,
}

/// Inputs to the mixer.
#[derive(Debug)]
pub enum MixerIn {
    /// Replay recorded transmission `id` (see [`MixerEvent::StreamEnded`]),
    /// replacing any replay in progress; ignored if it is no longer kept.
    Replay {
        /// The transmission.
        id: u64,
    },
    /// Stop the replay in progress.
    StopReplay,
    /// `name` now talks in `channel` (Floor Taken). When another talker's
    /// stream is playing there (a hand-over with no silence between the
    /// talks), it is ended here: one transmission per talker, each with its
    /// own report and recall entry.
    Talker {
        /// The channel.
        channel: ChannelName,
        /// The new talker's display name.
        name: String,
    },
    /// Gain and pan of a channel's audio from now on (values clamped).
    ChannelMix {
        /// The channel.
        channel: ChannelName,
        /// Its settings.
        mix: ChannelMix,
    },
    /// A packet.
    Packet(RtpIn),
    /// Track `mid` now carries `channel` (or nothing: the channel was left).
    Map {
        /// Track.
        mid: String,
        /// Channel, or `None` to stop playing the track.
        channel: Option<ChannelName>,
    },
    /// Gain of the whole output, linear 0.0 to 1.0 (the user's volume).
    Volume(f32),
    /// One captured frame ([`FRAME_SAMPLES`] samples) to play locally: the
    /// mic test. At most [`MAX_LOCAL_FRAMES`] wait; older ones are dropped
    /// so the loopback never drifts behind the voice.
    Local(Box<[f32]>),
}

/// Most mic-test frames queued in the mixer (100 ms).
pub const MAX_LOCAL_FRAMES: usize = 5;

/// What the mixer reports.
#[derive(Debug, Clone)]
pub enum MixerEvent {
    /// A transmission started playing in `channel`.
    StreamStarted {
        /// Channel.
        channel: ChannelName,
        /// When its first frame was played out.
        at: Instant,
    },
    /// A transmission ended.
    StreamEnded {
        /// Channel.
        channel: ChannelName,
        /// Its statistics.
        stats: squawk_media::JitterStats,
        /// From its first played frame to the end of its last frame that
        /// carried audio (decoded or FEC-recovered), so the trailing wait for
        /// the stream to be declared over is not counted.
        duration: Duration,
        /// When its first frame was played.
        started: Instant,
        /// When it ended.
        at: Instant,
        /// Its id for [`MixerIn::Replay`], when it was kept (it carried audio).
        recall_id: Option<u64>,
        /// Who talked, from [`MixerIn::Talker`].
        talker: Option<String>,
    },
    /// A replay started playing.
    ReplayStarted {
        /// The transmission.
        id: u64,
        /// Its channel.
        channel: ChannelName,
        /// When its first frame was played.
        at: Instant,
    },
    /// A replay finished (or was stopped or replaced).
    ReplayEnded {
        /// The transmission.
        id: u64,
    },
}

struct Slot {
    channel: Option<ChannelName>,
    /// When the current stream's first frame was played.
    started: Option<Instant>,
    /// End of the current stream's last frame that carried audio.
    last_audio: Option<Instant>,
    jitter: JitterBuffer,
    decoder: Decoder,
    /// The frame being played.
    frame: Decoded,
    /// What the current stream played so far (for instant recall).
    recording: Vec<Playout>,
    /// The jitter buffer's counters when the previous segment (a stream, or
    /// the part of one before a talker change) ended: the current one counts
    /// from there.
    seg_base: JitterStats,
    /// Who talks in the channel (the last [`MixerIn::Talker`]).
    talker: Option<String>,
}

/// See the module docs.
pub struct Mixer {
    layout: Layout,
    mixes: HashMap<ChannelName, ChannelMix>,
    slots: HashMap<String, Slot>,
    rx: std_mpsc::Receiver<MixerIn>,
    events: mpsc::UnboundedSender<MixerEvent>,
    config: JitterConfig,
    volume: f32,
    local: std::collections::VecDeque<Box<[f32]>>,
    /// Samples of the front [`Mixer::local`] frame already played.
    local_pos: usize,
    /// Recorded transmissions per channel, oldest first.
    recall: HashMap<ChannelName, std::collections::VecDeque<Arc<Recording>>>,
    next_recall: u64,
    replay: Option<Replay>,
    /// An input taken by [`Mixer::wait_for_input`], handled first by the
    /// next [`Mixer::mix`].
    pending: Option<MixerIn>,
}

impl Mixer {
    /// A mono mixer reading `rx` and reporting on `events`.
    pub fn new(
        rx: std_mpsc::Receiver<MixerIn>,
        events: mpsc::UnboundedSender<MixerEvent>,
        config: JitterConfig,
    ) -> Self {
        Self::with_layout(rx, events, config, Layout::Mono)
    }

    /// A mixer with the given output layout.
    pub fn with_layout(
        rx: std_mpsc::Receiver<MixerIn>,
        events: mpsc::UnboundedSender<MixerEvent>,
        config: JitterConfig,
        layout: Layout,
    ) -> Self {
        Self {
            layout,
            mixes: HashMap::new(),
            slots: HashMap::new(),
            rx,
            events,
            config,
            volume: 1.0,
            local: std::collections::VecDeque::new(),
            local_pos: 0,
            recall: HashMap::new(),
            next_recall: 1,
            replay: None,
            pending: None,
        }
    }

    /// The output layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Produces the next `out.len() / channels` samples of output, to be
    /// heard from `now` (stereo interleaved left, right). Every decision
    /// for them is taken at `now`: sinks pull one [`BLOCK_SAMPLES`] block
    /// at a time, at the time it is to be heard (see the module docs); a
    /// longer pull is allowed (tests, the cpal fallback) and simply starts
    /// transmissions on a coarser grid. A trailing part of a sample
    /// instant (an odd length in stereo) is left as it was.
    pub fn mix(&mut self, now: Instant, out: &mut [f32]) {
        if let Some(msg) = self.pending.take() {
            self.handle(now, msg);
        }
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(now, msg);
        }
        self.mix_inputs(now, out);
    }

    /// Whether nothing would be heard until the next input arrives: no
    /// stream under way in any jitter buffer, no local audio (mic test),
    /// no replay. A playout clock may then stop mixing (the device plays
    /// silence) and [`Mixer::wait_for_input`].
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
            && self.local.is_empty()
            && self.replay.is_none()
            && self.slots.values().all(|s| s.jitter.is_idle())
    }

    /// Blocks until an input arrives (kept for the next [`Mixer::mix`]) or
    /// `timeout` passes; true if one arrived.
    pub fn wait_for_input(&mut self, timeout: Duration) -> bool {
        if self.pending.is_some() {
            return true;
        }
        self.pending = self.rx.recv_timeout(timeout).ok();
        self.pending.is_some()
    }

    fn handle(&mut self, now: Instant, msg: MixerIn) {
        match msg {
            MixerIn::ChannelMix { channel, mix } => {
                self.mixes.insert(channel, mix.clamped());
            }
            MixerIn::Replay { id } => self.start_replay(now, id),
            MixerIn::Talker { channel, name } => self.talker(now, &channel, name),
            MixerIn::StopReplay => self.stop_replay(),
            MixerIn::Map { mid, channel } => {
                // A track reassigned to another channel starts afresh.
                let fresh = |config| Slot {
                    channel: None,
                    started: None,
                    last_audio: None,
                    jitter: JitterBuffer::new(config),
                    decoder: Decoder::new().expect("libopus allocates a decoder"),
                    frame: Decoded::new(),
                    recording: Vec::new(),
                    seg_base: JitterStats::default(),
                    talker: None,
                };
                let slot = self.slots.entry(mid).or_insert_with(|| fresh(self.config));
                if slot.channel != channel {
                    *slot = fresh(self.config);
                    slot.channel = channel;
                }
            }
            MixerIn::Volume(v) => self.volume = v.clamp(0.0, 1.0),
            MixerIn::Local(pcm) => {
                if self.local.len() >= MAX_LOCAL_FRAMES {
                    self.local.pop_front();
                    self.local_pos = 0;
                }
                self.local.push_back(pcm);
            }
            MixerIn::Packet(p) => {
                if let Some(slot) = self.slots.get_mut(&p.mid)
                    && slot.channel.is_some()
                {
                    slot.jitter
                        .push(p.arrival, p.seq, p.timestamp, p.marker, &p.payload);
                }
            }
        }
    }

    fn mix_inputs(&mut self, now: Instant, out: &mut [f32]) {
        let width = self.layout.channels();
        let samples = out.len() / width;
        let out = &mut out[..samples * width];
        out.fill(0.0);
        for slot in self.slots.values_mut() {
            let Some(channel) = slot.channel.as_ref() else {
                continue;
            };
            let mix = self.mixes.get(channel).copied().unwrap_or_default();
            let mut at = 0;
            while at < samples {
                let heard = sample_time(now, at);
                if slot.frame.is_spent() {
                    let played = slot.jitter.pop(now);
                    let idle = played == Playout::Idle;
                    if !idle {
                        if matches!(&played, Playout::Frame(p) | Playout::Fec(p) if !p.is_empty()) {
                            slot.last_audio =
                                Some(heard + Duration::from_millis(u64::from(FRAME_MS)));
                        }
                        let audible = decode_step(&mut slot.decoder, &played, &mut slot.frame.pcm);
                        slot.frame.restart(audible);
                        slot.recording.push(played);
                    }
                    while let Some(event) = slot.jitter.poll_event() {
                        let Some(channel) = slot.channel.clone() else {
                            break;
                        };
                        let ev = match event {
                            JitterEvent::StreamStarted => {
                                slot.started = Some(heard);
                                slot.last_audio = None;
                                MixerEvent::StreamStarted { channel, at: heard }
                            }
                            JitterEvent::StreamEnded { .. } => finish_segment(
                                slot,
                                channel,
                                &mut self.recall,
                                &mut self.next_recall,
                                heard,
                            ),
                        };
                        let _ = self.events.send(ev);
                    }
                    if idle {
                        // Nothing under way (or still prebuffering): ask
                        // again at the next block.
                        at += (BLOCK_SAMPLES - at % BLOCK_SAMPLES).min(samples - at);
                        continue;
                    }
                }
                at += slot
                    .frame
                    .add_into(self.layout, &mut out[at * width..], samples - at, mix);
            }
        }
        self.play_local(out, samples);
        self.play_replay(out, samples);
        if self.volume != 1.0 {
            for s in out.iter_mut() {
                *s *= self.volume;
            }
        }
        // Several channels at once: keep the sum in range without hard clipping.
        for s in out.iter_mut() {
            if s.abs() > 0.9 {
                *s = s.signum() * (0.9 + 0.1 * ((s.abs() - 0.9) / 0.1).tanh());
            }
        }
    }
}

impl Mixer {
    /// A new talker in `channel`: splits a stream playing another talker.
    fn talker(&mut self, now: Instant, channel: &ChannelName, name: String) {
        for slot in self.slots.values_mut() {
            if slot.channel.as_ref() != Some(channel) {
                continue;
            }
            let other = slot.talker.as_ref().is_some_and(|t| *t != name);
            if slot.started.is_some() && other {
                let ended = finish_segment(
                    slot,
                    channel.clone(),
                    &mut self.recall,
                    &mut self.next_recall,
                    now,
                );
                let _ = self.events.send(ended);
                slot.started = Some(now);
                let _ = self.events.send(MixerEvent::StreamStarted {
                    channel: channel.clone(),
                    at: now,
                });
            }
            slot.talker = Some(name.clone());
        }
    }

    /// Ids of the transmissions kept for `channel`, oldest first.
    pub fn recall_ids(&self, channel: &ChannelName) -> Vec<u64> {
        self.recall
            .get(channel)
            .map(|q| q.iter().map(|r| r.id).collect())
            .unwrap_or_default()
    }

    fn start_replay(&mut self, now: Instant, id: u64) {
        let Some(rec) = self
            .recall
            .values()
            .flat_map(|q| q.iter())
            .find(|r| r.id == id)
            .cloned()
        else {
            return;
        };
        self.stop_replay();
        let _ = self.events.send(MixerEvent::ReplayStarted {
            id,
            channel: rec.channel.clone(),
            at: now,
        });
        self.replay = Some(Replay {
            rec,
            pos: 0,
            decoder: Decoder::new().expect("libopus allocates a decoder"),
            frame: Decoded::new(),
        });
    }

    fn stop_replay(&mut self) {
        if let Some(r) = self.replay.take() {
            let _ = self.events.send(MixerEvent::ReplayEnded { id: r.rec.id });
        }
    }

    /// Mixes the replay's next `samples` into `out`, centred; ends it
    /// after its last step.
    fn play_replay(&mut self, out: &mut [f32], samples: usize) {
        let width = self.layout.channels();
        let mut at = 0;
        while at < samples {
            let Some(r) = self.replay.as_mut() else {
                return;
            };
            if r.frame.is_spent() {
                let Some(step) = r.rec.steps.get(r.pos) else {
                    self.stop_replay();
                    return;
                };
                r.pos += 1;
                let audible = decode_step(&mut r.decoder, step, &mut r.frame.pcm);
                r.frame.restart(audible);
            }
            let mix = ChannelMix::default();
            at += r
                .frame
                .add_into(self.layout, &mut out[at * width..], samples - at, mix);
        }
    }

    /// Mixes the next `samples` of the mic test's queued frames into `out`,
    /// centred.
    fn play_local(&mut self, out: &mut [f32], samples: usize) {
        let width = self.layout.channels();
        let mut at = 0;
        while at < samples {
            let Some(pcm) = self.local.front() else {
                return;
            };
            let from = self.local_pos.min(pcm.len());
            let take = (samples - at).min(pcm.len() - from);
            let to = &mut out[at * width..(at + take) * width];
            add(
                self.layout,
                to,
                &pcm[from..from + take],
                ChannelMix::default(),
            );
            at += take;
            self.local_pos = from + take;
            if self.local_pos >= pcm.len() {
                self.local.pop_front();
                self.local_pos = 0;
            }
        }
    }
}

/// Decodes one played step into `frame` (a payload, its next packet's
/// in-band FEC, or PLC for a missing one); `false` for silence, when there
/// is nothing to add.
fn decode_step(decoder: &mut Decoder, step: &Playout, frame: &mut [f32]) -> bool {
    let what = match step {
        Playout::Frame(p) if !p.is_empty() => DecodeInput::Packet(p),
        Playout::Fec(p) if !p.is_empty() => DecodeInput::Fec(p),
        Playout::Frame(_) | Playout::Fec(_) | Playout::Conceal => DecodeInput::Conceal,
        Playout::Silence | Playout::Idle => return false,
    };
    decoder.decode(what, frame);
    true
}

/// Ends the slot's current segment (the stream ended, or its talker
/// changed): its report, with the counters since the segment began, and its
/// recall entry.
fn finish_segment(
    slot: &mut Slot,
    channel: ChannelName,
    recall: &mut HashMap<ChannelName, std::collections::VecDeque<Arc<Recording>>>,
    next: &mut u64,
    now: Instant,
) -> MixerEvent {
    let started = slot.started.take().unwrap_or(now);
    let duration = slot
        .last_audio
        .take()
        .map_or(Duration::ZERO, |e| e.saturating_duration_since(started));
    let steps = std::mem::take(&mut slot.recording);
    let recall_id = keep(recall, next, channel.clone(), steps);
    let now_stats = slot.jitter.stats();
    let stats = now_stats.since(&slot.seg_base);
    // The next segment counts from here (packets buffered before its
    // stream start included).
    slot.seg_base = now_stats;
    MixerEvent::StreamEnded {
        channel,
        stats,
        duration,
        started,
        at: now,
        recall_id,
        talker: slot.talker.clone(),
    }
}

/// Keeps a finished transmission for instant recall (trailing silence cut;
/// nothing kept without audio) within the per-channel limits; its id.
fn keep(
    recall: &mut HashMap<ChannelName, std::collections::VecDeque<Arc<Recording>>>,
    next: &mut u64,
    channel: ChannelName,
    mut steps: Vec<Playout>,
) -> Option<u64> {
    while matches!(steps.last(), Some(Playout::Silence | Playout::Conceal)) {
        steps.pop();
    }
    if steps.is_empty() {
        return None;
    }
    let id = *next;
    *next += 1;
    let max_steps = (RECALL_MAX.as_millis() / u128::from(FRAME_MS)) as usize;
    let q = recall.entry(channel.clone()).or_default();
    q.push_back(Arc::new(Recording { id, channel, steps }));
    let mut total: usize = q.iter().map(|r| r.steps.len()).sum();
    while q.len() > RECALL_TRANSMISSIONS || (total > max_steps && q.len() > 1) {
        if let Some(old) = q.pop_front() {
            total -= old.steps.len();
        }
    }
    Some(id)
}

/// Adds mono `pcm` into `out` with `mix`'s gain (and pan, in stereo).
fn add(layout: Layout, out: &mut [f32], pcm: &[f32], mix: ChannelMix) {
    match layout {
        Layout::Mono => {
            for (o, s) in out.iter_mut().zip(pcm) {
                *o += mix.gain * s;
            }
        }
        Layout::Stereo => {
            let (l, r) = mix.sides();
            for (o, s) in out.chunks_exact_mut(2).zip(pcm) {
                o[0] += l * s;
                o[1] += r * s;
            }
        }
    }
}

/// Runs `mixer` into a WAV file (with as many channels as the mixer's
/// layout) in real time on its own thread: block `n` ([`BLOCK_MS`]) is
/// mixed and written at `start + n × 5 ms` (absolute schedule, silence
/// included), so sample `i` of the file is "heard" at `start + i / 48 kHz`;
/// until `stop` or `seconds` of audio are written.
pub fn spawn_wav_sink(
    mut mixer: Mixer,
    mut writer: WavWriter,
    start: Instant,
    seconds: Option<f64>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("wav-sink".into())
        .spawn(move || {
            let period = Duration::from_millis(u64::from(BLOCK_MS));
            let blocks = seconds.map(|s| (s * 1000.0 / f64::from(BLOCK_MS)).ceil() as u64);
            let mut buf = vec![0.0f32; BLOCK_SAMPLES * mixer.layout().channels()];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && blocks.is_none_or(|b| n < b) {
                let due = start + period * n as u32;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                mixer.mix(due.max(now), &mut buf);
                if let Err(e) = writer.write(&buf) {
                    tracing::error!("wav sink: {e}");
                    break;
                }
                n += 1;
            }
            if let Err(e) = writer.finish() {
                tracing::error!("wav sink: {e}");
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixer() -> (Mixer, std_mpsc::Sender<MixerIn>) {
        let (tx, rx) = std_mpsc::channel();
        let (events, _) = mpsc::unbounded_channel();
        (Mixer::new(rx, events, JitterConfig::default()), tx)
    }

    fn frame(value: f32) -> Box<[f32]> {
        vec![value; FRAME_SAMPLES].into_boxed_slice()
    }

    #[test]
    fn mic_test_frames_play_in_order_scaled_by_the_volume() {
        let (mut m, tx) = mixer();
        let mut out = vec![0.0; FRAME_SAMPLES];
        tx.send(MixerIn::Local(frame(0.2))).unwrap();
        tx.send(MixerIn::Local(frame(0.4))).unwrap();
        tx.send(MixerIn::Volume(0.5)).unwrap();
        let now = Instant::now();
        m.mix(now, &mut out);
        assert!(out.iter().all(|s| (*s - 0.1).abs() < 1e-6), "{}", out[0]);
        m.mix(now, &mut out);
        assert!(out.iter().all(|s| (*s - 0.2).abs() < 1e-6), "{}", out[0]);
        m.mix(now, &mut out);
        assert!(out.iter().all(|s| *s == 0.0), "queue drained: silence");
    }

    #[test]
    fn mic_test_queue_keeps_only_the_newest_frames() {
        let (mut m, tx) = mixer();
        let mut out = vec![0.0; FRAME_SAMPLES];
        for i in 0..MAX_LOCAL_FRAMES + 3 {
            tx.send(MixerIn::Local(frame(i as f32 / 100.0))).unwrap();
        }
        m.mix(Instant::now(), &mut out);
        // The three oldest were dropped: playback resumes at frame 3.
        assert!((out[0] - 0.03).abs() < 1e-6, "{}", out[0]);
    }

    #[test]
    fn channel_mix_pans_and_scales_and_clamps() {
        assert_eq!(ChannelMix::default().sides(), (1.0, 1.0), "centre = mono");
        let left = ChannelMix {
            gain: 0.5,
            pan: -1.0,
        };
        assert_eq!(left.sides(), (0.5, 0.0));
        let right = ChannelMix {
            gain: 1.0,
            pan: 1.0,
        };
        assert_eq!(right.sides(), (0.0, 1.0));
        let half = ChannelMix {
            gain: 1.0,
            pan: 0.5,
        };
        assert_eq!(half.sides(), (0.5, 1.0));
        let wild = ChannelMix {
            gain: 9.0,
            pan: f32::NAN,
        }
        .clamped();
        assert_eq!(
            wild,
            ChannelMix {
                gain: MAX_CHANNEL_GAIN,
                pan: 0.0
            }
        );
    }

    #[test]
    fn a_stereo_mixer_interleaves_and_a_mono_one_ignores_pan() {
        let pcm = [0.25f32; FRAME_SAMPLES];
        let mut out = vec![0.0; FRAME_SAMPLES * 2];
        let mix = ChannelMix {
            gain: 2.0,
            pan: -1.0,
        };
        add(Layout::Stereo, &mut out, &pcm, mix);
        assert!(out.chunks(2).all(|lr| lr == [0.5, 0.0]), "{:?}", &out[..4]);
        let mut mono = vec![0.0; FRAME_SAMPLES];
        add(Layout::Mono, &mut mono, &pcm, mix);
        assert!(mono.iter().all(|s| *s == 0.5));
    }

    #[test]
    fn the_mic_test_is_centred_in_stereo() {
        let (tx, rx) = std_mpsc::channel();
        let (events, _) = mpsc::unbounded_channel();
        let mut m = Mixer::with_layout(rx, events, JitterConfig::default(), Layout::Stereo);
        tx.send(MixerIn::Local(frame(0.3))).unwrap();
        let mut out = vec![0.0; FRAME_SAMPLES * 2];
        m.mix(Instant::now(), &mut out);
        assert!(out.iter().all(|s| (*s - 0.3).abs() < 1e-6));
    }

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).unwrap()
    }

    /// One 20 ms frame of a 440 Hz tone at half scale.
    fn tone() -> Vec<f32> {
        (0..FRAME_SAMPLES)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5)
            .collect()
    }

    fn steps(n: usize) -> Vec<Playout> {
        vec![Playout::Frame(vec![0xf8, 0xff, 0xfe]); n]
    }

    #[test]
    fn recall_keeps_ten_transmissions_and_five_minutes_per_channel() {
        let mut recall = HashMap::new();
        let mut next = 1;
        let mut trailing = steps(3);
        trailing.extend([Playout::Silence, Playout::Conceal, Playout::Silence]);
        let id = keep(&mut recall, &mut next, ch("a"), trailing).unwrap();
        assert_eq!(recall[&ch("a")][0].steps.len(), 3, "trailing silence cut");
        assert_eq!(
            keep(&mut recall, &mut next, ch("a"), vec![Playout::Silence]),
            None,
            "nothing without audio"
        );
        for _ in 0..RECALL_TRANSMISSIONS {
            keep(&mut recall, &mut next, ch("a"), steps(50));
        }
        let ids: Vec<u64> = recall[&ch("a")].iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), RECALL_TRANSMISSIONS);
        assert!(!ids.contains(&id), "the oldest went first");
        // Four 100 s transmissions: only the last three fit in 5 minutes.
        for _ in 0..4 {
            keep(&mut recall, &mut next, ch("b"), steps(5000));
        }
        assert_eq!(recall[&ch("b")].len(), 3);
        assert_eq!(recall[&ch("a")].len(), RECALL_TRANSMISSIONS, "per channel");
    }

    #[test]
    fn a_replay_plays_its_frames_then_ends() {
        let (tx, rx) = std_mpsc::channel();
        let (events, mut ev) = mpsc::unbounded_channel();
        let mut m = Mixer::new(rx, events, JitterConfig::default());
        // A real Opus frame of a 440 Hz tone, recorded as three steps and a gap.
        let mut enc = crate::codec::Encoder::new(crate::codec::OpusConfig::default()).unwrap();
        let tone = tone();
        let mut recorded = Vec::new();
        for _ in 0..3 {
            recorded.push(Playout::Frame(enc.encode(&tone).unwrap().to_vec()));
        }
        recorded.push(Playout::Silence);
        recorded.push(Playout::Frame(enc.encode(&tone).unwrap().to_vec()));
        let id = keep(&mut m.recall, &mut m.next_recall, ch("a"), recorded).unwrap();
        assert_eq!(m.recall_ids(&ch("a")), vec![id]);
        tx.send(MixerIn::Replay { id }).unwrap();
        let mut out = vec![0.0; FRAME_SAMPLES];
        let now = Instant::now();
        let mut energy = Vec::new();
        for _ in 0..6 {
            m.mix(now, &mut out);
            energy.push(out.iter().map(|s| s * s).sum::<f32>());
        }
        assert!(matches!(ev.try_recv(), Ok(MixerEvent::ReplayStarted { id: i, .. }) if i == id));
        assert!(matches!(ev.try_recv(), Ok(MixerEvent::ReplayEnded { id: i }) if i == id));
        assert!(
            energy[1] > 1.0 && energy[2] > 1.0,
            "the tone plays: {energy:?}"
        );
        assert_eq!(energy[3], 0.0, "the silence step stays silent");
        assert_eq!(energy[5], 0.0, "over after five steps");
        tx.send(MixerIn::Replay { id: 999 }).unwrap();
        m.mix(now, &mut out);
        assert!(ev.try_recv().is_err(), "an unknown id is ignored");
    }

    #[test]
    fn the_mixer_is_idle_until_input_arrives_and_again_once_the_stream_ends() {
        let (mut m, tx) = mixer();
        let mut out = vec![0.0; FRAME_SAMPLES];
        assert!(m.is_idle(), "nothing to play at the start");
        let t0 = Instant::now();
        assert!(!m.wait_for_input(Duration::from_millis(1)), "no input yet");
        tx.send(MixerIn::Map {
            mid: "0".into(),
            channel: Some(ch("a")),
        })
        .unwrap();
        // A taken input is kept for the next mix, and counts as work.
        assert!(m.wait_for_input(Duration::from_secs(5)));
        assert!(!m.is_idle());
        m.mix(t0, &mut out);
        assert!(m.is_idle(), "a mapped track with no stream is idle");
        let mut enc = crate::codec::Encoder::new(crate::codec::OpusConfig::default()).unwrap();
        let tone = tone();
        for i in 0..10u32 {
            let at = t0 + Duration::from_millis(20 * u64::from(i));
            tx.send(MixerIn::Packet(RtpIn {
                mid: "0".into(),
                seq: i as u16,
                timestamp: i * FRAME_SAMPLES as u32,
                marker: i == 0,
                payload: Bytes::copy_from_slice(enc.encode(&tone).unwrap()),
                arrival: at,
            }))
            .unwrap();
            m.mix(at, &mut out);
            assert!(!m.is_idle(), "a stream under way, prebuffering or playing");
        }
        // Mixed on until the stream ends (its packets stop); then idle.
        let mut frames = 10;
        while !m.is_idle() {
            m.mix(t0 + Duration::from_millis(20 * frames), &mut out);
            frames += 1;
            assert!(frames < 200, "the stream never ended");
        }
        assert!(frames > 10, "the buffered frames played first");
        // The mic test is work too.
        tx.send(MixerIn::Local(frame(0.1))).unwrap();
        assert!(m.wait_for_input(Duration::from_secs(5)));
        m.mix(t0, &mut out);
        assert!((out[0] - 0.1).abs() < 1e-6, "the kept input was handled");
    }

    /// Plays ten packets of a tone, packet `k` arriving at `t0 + first +
    /// k × 20 ms`, pulling `pull` samples at a time for 400 ms; the output
    /// and the times of the stream's start events.
    fn play_tone(cfg: JitterConfig, first: Duration, pull: usize) -> (Vec<f32>, Vec<Duration>) {
        let (tx, rx) = std_mpsc::channel();
        let (events, mut ev) = mpsc::unbounded_channel();
        let mut m = Mixer::new(rx, events, cfg);
        tx.send(MixerIn::Map {
            mid: "0".into(),
            channel: Some(ch("a")),
        })
        .unwrap();
        let mut enc = crate::codec::Encoder::new(crate::codec::OpusConfig::default()).unwrap();
        let tone = tone();
        let t0 = Instant::now();
        let arrival = |k: u32| t0 + first + Duration::from_millis(20 * u64::from(k));
        let mut next = 0u32;
        let mut heard = Vec::new();
        let mut out = vec![0.0; pull];
        let mut at = 0usize;
        while at < 48 * 400 {
            let now = sample_time(t0, at);
            while next < 10 && arrival(next) <= now {
                tx.send(MixerIn::Packet(RtpIn {
                    mid: "0".into(),
                    seq: next as u16,
                    timestamp: next * FRAME_SAMPLES as u32,
                    marker: next == 0,
                    payload: Bytes::copy_from_slice(enc.encode(&tone).unwrap()),
                    arrival: arrival(next),
                }))
                .unwrap();
                next += 1;
            }
            m.mix(now, &mut out);
            heard.extend_from_slice(&out);
            at += pull;
        }
        let mut starts = Vec::new();
        while let Ok(e) = ev.try_recv() {
            if let MixerEvent::StreamStarted { at, .. } = e {
                starts.push(at - t0);
            }
        }
        (heard, starts)
    }

    #[test]
    fn a_transmission_starts_on_the_5_ms_block_after_its_target_delay() {
        let cfg = JitterConfig {
            initial_delay_ms: 12,
            min_delay_ms: 5,
            clean_cushion_ms: 5,
            ..JitterConfig::default()
        };
        // The first packet arrives 3 ms in: due at 15 ms.
        let first = Duration::from_millis(3);
        let (blocks, starts) = play_tone(cfg, first, BLOCK_SAMPLES);
        assert_eq!(starts, vec![Duration::from_millis(15)], "on the 5 ms grid");
        // Pulled a frame at a time, the same stream waits for the next pull.
        let (_, frame_starts) = play_tone(cfg, first, FRAME_SAMPLES);
        assert_eq!(frame_starts, vec![Duration::from_millis(20)]);
        let energy: f32 = blocks.iter().map(|s| s * s).sum();
        assert!(energy > 10.0, "the tone played: {energy}");
    }

    #[test]
    fn pulls_of_any_length_play_the_same_samples() {
        // Due at 20 ms: a frame boundary, so both pulls start it there.
        let cfg = JitterConfig {
            initial_delay_ms: 20,
            ..JitterConfig::default()
        };
        let (blocks, _) = play_tone(cfg, Duration::ZERO, BLOCK_SAMPLES);
        let (frames, _) = play_tone(cfg, Duration::ZERO, FRAME_SAMPLES);
        let (halves, _) = play_tone(cfg, Duration::ZERO, FRAME_SAMPLES / 2);
        let energy: f32 = blocks.iter().map(|s| s * s).sum();
        assert!(energy > 10.0, "the tone played: {energy}");
        assert_eq!(blocks.len(), frames.len());
        assert!(blocks == frames, "5 ms blocks and 20 ms frames differ");
        assert!(halves == blocks, "10 ms pulls differ");
    }

    #[test]
    fn a_new_talker_cuts_the_stream_into_one_transmission_each() {
        let (tx, rx) = std_mpsc::channel();
        let (events, mut ev) = mpsc::unbounded_channel();
        let mut m = Mixer::new(rx, events, JitterConfig::default());
        let mut enc = crate::codec::Encoder::new(crate::codec::OpusConfig::default()).unwrap();
        let tone = tone();
        tx.send(MixerIn::Map {
            mid: "0".into(),
            channel: Some(ch("a")),
        })
        .unwrap();
        let talker = |name: &str| MixerIn::Talker {
            channel: ch("a"),
            name: name.into(),
        };
        tx.send(talker("Ann")).unwrap();
        let t0 = Instant::now();
        let mut out = vec![0.0; FRAME_SAMPLES];
        // 100 packets in one RTP stream (the SFU's rewritten downlink); Bo
        // takes the floor after 50, with no gap.
        for i in 0..100u32 {
            let at = t0 + Duration::from_millis(20 * u64::from(i));
            if i == 50 {
                tx.send(talker("Bo")).unwrap();
            }
            tx.send(MixerIn::Packet(RtpIn {
                mid: "0".into(),
                seq: i as u16,
                timestamp: i * FRAME_SAMPLES as u32,
                marker: i == 0 || i == 50,
                payload: Bytes::copy_from_slice(enc.encode(&tone).unwrap()),
                arrival: at,
            }))
            .unwrap();
            m.mix(at, &mut out);
        }
        for i in 100..300u64 {
            m.mix(t0 + Duration::from_millis(20 * i), &mut out);
        }
        let mut ended = Vec::new();
        while let Ok(e) = ev.try_recv() {
            if let MixerEvent::StreamEnded {
                talker,
                stats,
                recall_id,
                ..
            } = e
            {
                ended.push((talker, stats.packets, recall_id.is_some()));
            }
        }
        assert_eq!(ended.len(), 2, "{ended:?}");
        assert_eq!(ended[0].0.as_deref(), Some("Ann"));
        assert_eq!(ended[1].0.as_deref(), Some("Bo"));
        assert_eq!(
            ended[0].1 + ended[1].1,
            100,
            "every packet in one of them: {ended:?}"
        );
        assert!((45..=55).contains(&ended[0].1), "Ann's share: {ended:?}");
        assert!(ended[0].2 && ended[1].2, "both kept for recall");
        assert_eq!(m.recall_ids(&ch("a")).len(), 2);
    }
}
