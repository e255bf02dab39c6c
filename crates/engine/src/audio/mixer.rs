//! The receive side after the network: one jitter buffer and Opus decoder
//! per downlink track (one per channel), mixed into one 48 kHz mono stream.
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

/// Inputs to the mixer.
#[derive(Debug)]
pub enum MixerIn {
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
    slots: HashMap<String, Slot>,
    rx: std_mpsc::Receiver<MixerIn>,
    events: mpsc::UnboundedSender<MixerEvent>,
    config: JitterConfig,
    frame: Vec<f32>,
    volume: f32,
    local: std::collections::VecDeque<Box<[f32]>>,
}

impl Mixer {
    /// A mixer reading `rx` and reporting on `events`.
    pub fn new(
        rx: std_mpsc::Receiver<MixerIn>,
        events: mpsc::UnboundedSender<MixerEvent>,
        config: JitterConfig,
    ) -> Self {
        Self {
            slots: HashMap::new(),
            rx,
            events,
            config,
            frame: vec![0.0; FRAME_SAMPLES],
            volume: 1.0,
            local: std::collections::VecDeque::new(),
        }
    }

    /// Produces the next 20 ms of output ([`FRAME_SAMPLES`] samples) at `now`.
    pub fn mix(&mut self, now: Instant, out: &mut [f32]) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
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
        let out = &mut out[..FRAME_SAMPLES];
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
                for (o, s) in out.iter_mut().zip(&self.frame) {
                    *o += s;
                }
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
            for (o, s) in out.iter_mut().zip(pcm.iter()) {
                *o += s;
            }
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

/// Runs `mixer` into a WAV file in real time on its own thread: frame `n`
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
            let mut buf = vec![0.0f32; FRAME_SAMPLES];
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
}
