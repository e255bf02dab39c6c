//! The receive side after the network: one jitter buffer and Opus decoder
//! per downlink track (one per channel), mixed into one 48 kHz stream, mono
//! or stereo ([`Layout`]); each channel with its own gain and, in stereo,
//! its own pan ([`ChannelMix`]), as a dispatch console's per-channel
//! volume and left/centre/right speaker.
//!
//! The mixer is pulled one 20 ms frame at a time by its sink's clock (the
//! audio device, or the real-time WAV writer), so the jitter buffers absorb
//! the drift between the talker's clock and ours. Packets and track mapping
//! arrive over a channel from the network tasks; the mixer owns all state.

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
use squawk_media::{JitterBuffer, JitterConfig, JitterEvent, Playout};
use squawk_protocol::ChannelName;
use tokio::sync::mpsc;

use super::{FRAME_MS, FRAME_SAMPLES, wav::WavWriter};
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

/// Inputs to the mixer.
#[derive(Debug)]
pub enum MixerIn {
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
}

/// See the module docs.
pub struct Mixer {
    layout: Layout,
    mixes: HashMap<ChannelName, ChannelMix>,
    slots: HashMap<String, Slot>,
    rx: std_mpsc::Receiver<MixerIn>,
    events: mpsc::UnboundedSender<MixerEvent>,
    config: JitterConfig,
    frame: Vec<f32>,
    volume: f32,
    local: std::collections::VecDeque<Box<[f32]>>,
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
            frame: vec![0.0; FRAME_SAMPLES],
            volume: 1.0,
            local: std::collections::VecDeque::new(),
        }
    }

    /// The output layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Produces the next 20 ms of output at `now`: [`FRAME_SAMPLES`] ×
    /// [`Layout::channels`] samples (stereo interleaved left, right).
    ///
    /// # Panics
    /// If `out` is shorter than that.
    pub fn mix(&mut self, now: Instant, out: &mut [f32]) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                MixerIn::ChannelMix { channel, mix } => {
                    self.mixes.insert(channel, mix.clamped());
                }
                MixerIn::Map { mid, channel } => {
                    // A track reassigned to another channel starts afresh.
                    let fresh = |config| Slot {
                        channel: None,
                        started: None,
                        last_audio: None,
                        jitter: JitterBuffer::new(config),
                        decoder: Decoder::new().expect("libopus allocates a decoder"),
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
        let out = &mut out[..FRAME_SAMPLES * self.layout.channels()];
        out.fill(0.0);
        for slot in self.slots.values_mut() {
            let Some(channel) = slot.channel.as_ref() else {
                continue;
            };
            let input = match slot.jitter.pop(now) {
                Playout::Idle | Playout::Silence => None,
                Playout::Frame(p) => Some((p, false)),
                Playout::Fec(p) => Some((p, true)),
                Playout::Conceal => Some((Vec::new(), false)),
            };
            if matches!(input, Some((ref p, _)) if !p.is_empty()) {
                slot.last_audio = Some(now + Duration::from_millis(u64::from(FRAME_MS)));
            }
            if let Some((payload, fec)) = input {
                let what = match (payload.is_empty(), fec) {
                    (true, _) => DecodeInput::Conceal,
                    (false, true) => DecodeInput::Fec(&payload),
                    (false, false) => DecodeInput::Packet(&payload),
                };
                slot.decoder.decode(what, &mut self.frame);
                let mix = self.mixes.get(channel).copied().unwrap_or_default();
                add(self.layout, out, &self.frame, mix);
            }
            while let Some(event) = slot.jitter.poll_event() {
                let ev = match event {
                    JitterEvent::StreamStarted => {
                        slot.started = Some(now);
                        slot.last_audio = None;
                        MixerEvent::StreamStarted {
                            channel: channel.clone(),
                            at: now,
                        }
                    }
                    JitterEvent::StreamEnded { stats } => {
                        let started = slot.started.take().unwrap_or(now);
                        let duration = slot
                            .last_audio
                            .take()
                            .map_or(Duration::ZERO, |e| e.saturating_duration_since(started));
                        MixerEvent::StreamEnded {
                            channel: channel.clone(),
                            stats,
                            duration,
                            started,
                            at: now,
                        }
                    }
                };
                let _ = self.events.send(ev);
            }
        }
        if let Some(pcm) = self.local.pop_front() {
            add(self.layout, out, &pcm, ChannelMix::default());
        }
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
/// layout) in real time on its own thread: frame `n`
/// is mixed and written at `start + n × 20 ms` (absolute schedule, silence
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
            let period = Duration::from_millis(u64::from(FRAME_MS));
            let frames = seconds.map(|s| (s * 1000.0 / f64::from(FRAME_MS)).ceil() as u64);
            let mut buf = vec![0.0f32; FRAME_SAMPLES * mixer.layout().channels()];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && frames.is_none_or(|f| n < f) {
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
}
