//! Adaptive jitter buffer for one incoming Opus RTP stream (one per channel).
//!
//! Packets are [`JitterBuffer::push`]ed as they arrive from the network and
//! one frame is [`JitterBuffer::pop`]ped every `frame_ms` by the playout
//! clock (the audio device), which drifts relative to the sender's clock.
//! Each pop yields a [`Playout`] decision telling the decoder what to do for
//! that 20 ms slot. Sans-IO: no clock is read, time comes in as [`Instant`].
//!
//! # Model
//!
//! The buffer keeps a *playout cursor*: the RTP timestamp of the next slot,
//! and the next expected (extended, wraparound-safe) sequence number. Every
//! pop advances the cursor by one frame (`frame_ms` × clock rate), except
//! when the schedule deliberately *slips* (holds the cursor for one pop):
//!
//! * **Stream start.** The first packet after [`Playout::Idle`] starts a
//!   stream; playout begins once the target delay has elapsed since its
//!   arrival, from the lowest sequence number received by then. The first
//!   frame is never dropped (a push-to-talk user's first syllable).
//! * **Normal.** The next packet is present and its timestamp is due:
//!   [`Playout::Frame`].
//! * **Loss.** The next packet is missing at its slot while later packets are
//!   buffered: [`Playout::Fec`] with the following packet's payload when that
//!   one is buffered (Opus in-band FEC, RFC 6716 §2.1.7, RFC 7587 §3.3),
//!   otherwise [`Playout::Conceal`]. Counted in `lost`; the missing packet is
//!   [`PushOutcome::Late`] if it turns up afterwards.
//! * **DTX / pause.** The next packet is present (contiguous sequence number)
//!   but its timestamp lies in the future: the sender was silent
//!   (RFC 7587 §3.1.3; DTX versus loss is told by sequence-number gaps,
//!   RFC 3551 §4.1), [`Playout::Silence`] until it is due. Not a loss.
//! * **Underrun.** Nothing is buffered: [`Playout::Conceal`] (then
//!   [`Playout::Silence`] after [`MAX_CONCEAL_RUN`] consecutive conceals)
//!   and the cursor is held. When the next packet arrives, the held slots are
//!   reconciled: if its timestamp covers them they were a pause (DTX, end of
//!   a talk-spurt); otherwise the sender/network was late, the schedule has
//!   slipped by those slots and they are counted as `underruns` — never as
//!   `lost`, since the packet is played.
//! * **Resync.** A timestamp jump of more than [`RESYNC_GAP`] forward or
//!   backward (e.g. a new talker forwarded by the SFU after a long pause, or
//!   a sender restart), or a new talk-spurt (marker bit or timestamp gap)
//!   whose first packet arrives behind the schedule after an underrun,
//!   re-anchors the cursor on that packet and waits the target delay after
//!   its arrival (Silence) instead of playing seconds of silence or playing
//!   without a cushion.
//!
//! # Delay adaptation
//!
//! For every accepted packet, the *transit* `arrival − timestamp` (µs; the
//! sender and receiver clock origins cancel out) is recorded in a window of
//! the last [`TRANSIT_WINDOW`] packets. The relative delay of a packet is its
//! transit minus the window minimum. The raw target is
//! `cushion + p95(relative delay)`, clamped to `[min_delay_ms,
//! max_delay_ms]`; the target follows increases immediately and decreases
//! slowly (by 1/[`TARGET_DECAY_PACKETS`] of the difference per packet).
//!
//! The cushion is `clean_cushion_ms` on a clean link and `cushion_ms`
//! (one frame by default) within [`TROUBLE_MEMORY`] of a lost packet or
//! an underrun: a clean loopback or LAN plays a few ms after the packet's
//! earliest arrival, while a lossy link keeps the next packet in hand at
//! every slot, so that a lost packet is rebuilt from its successor's
//! in-band FEC (RFC 6716 §2.1.7) or RED copy (RFC 2198). The first loss
//! on a clean link raises the target at once; its own slot is concealed.
//! The RFC 3550 §6.4.1 interarrival jitter is also tracked for reporting.
//!
//! The *current delay* of a frame about to play is `now − (its timestamp +
//! minimum transit)`: how long after the earliest possible arrival it plays.
//! * Below `target − frame/2`: one [`Playout::Conceal`] is inserted (cursor
//!   held, `drift_inserted`), at most one per [`INSERT_INTERVAL`]. This grows
//!   the buffer after the target rose and compensates a sender clock slower
//!   than the playout clock.
//! * Above `target + DROP_EXCESS_FRAMES × frame` continuously for
//!   [`DROP_HOLD`] ([`FAST_DROP_HOLD`] when more than
//!   [`FAST_DROP_EXCESS_FRAMES`] frames too high): the due frame is dropped
//!   (`drift_dropped`) if the next one is buffered and contiguous. This
//!   shrinks the buffer after the target fell and compensates a sender clock
//!   faster than the playout clock.
//!
//! The transit window restarts at every talk-spurt start (marker bit) and
//! timestamp discontinuity; frames buffered before that point (the previous
//! talker's tail) play without delay control.
//!
//! # End of stream
//!
//! When the buffer is empty and no packet was accepted for `idle_after_ms`,
//! the stream ends: [`JitterEvent::StreamEnded`] with that stream's
//! statistics, and [`Playout::Idle`] from then on. Note that libopus in DTX
//! mode (RFC 7587 §3.1.3) still sends one packet per 400 ms of silence: with
//! senders using DTX, set `idle_after_ms` above 400 to keep a stream alive
//! across it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Minimum capacity of the buffer in packets (50 × 20 ms = 1 s). The actual
/// capacity is `max(50, 2 × max_delay_ms / frame_ms)`, at most
/// [`MAX_CAPACITY`]; a packet that far ahead of the cursor is
/// [`PushOutcome::TooFarAhead`].
pub const MIN_CAPACITY: i64 = 50;
/// Upper bound on the capacity in packets, whatever the configuration.
pub const MAX_CAPACITY: i64 = 500;
/// Number of recent packets whose transit times drive the target delay
/// (64 × 20 ms ≈ 1.3 s).
pub const TRANSIT_WINDOW: usize = 64;
/// Transit samples needed before the target delay adapts at all.
pub const MIN_TRANSIT_SAMPLES: usize = 8;
/// Percentile of the relative transit delay the target covers.
pub const TARGET_PERCENTILE: f64 = 0.95;
/// Target decrease rate: per accepted packet, a target above the raw target
/// moves 1/128 of the way down to it (time constant 128 packets ≈ 2.6 s at
/// 20 ms). Increases apply at once.
pub const TARGET_DECAY_PACKETS: f64 = 128.0;
/// Minimum spacing between two inserted (delay-growing) conceal frames.
pub const INSERT_INTERVAL: Duration = Duration::from_millis(60);
/// A frame is dropped only when the current delay exceeds the target by more
/// than this many frames.
pub const DROP_EXCESS_FRAMES: i64 = 2;
/// How long the delay must stay above the drop threshold before one frame is
/// dropped (slow decrease; ≈ 1 s as in the design).
pub const DROP_HOLD: Duration = Duration::from_secs(1);
/// Shorter hold used when the delay exceeds the target by more than
/// [`FAST_DROP_EXCESS_FRAMES`] frames (e.g. after a burst).
pub const FAST_DROP_HOLD: Duration = Duration::from_millis(250);
/// Excess (in frames) above which [`FAST_DROP_HOLD`] applies.
pub const FAST_DROP_EXCESS_FRAMES: i64 = 4;
/// At most this many consecutive [`Playout::Conceal`]; after that the slot is
/// [`Playout::Silence`] (decoder PLC has faded out by then anyway).
pub const MAX_CONCEAL_RUN: u32 = 5;
/// A timestamp jump larger than this (with contiguous sequence numbers)
/// re-anchors the schedule instead of playing that much silence.
pub const RESYNC_GAP: Duration = Duration::from_secs(1);
/// After a stream ended, packets not newer than its highest sequence number
/// (within [`STALE_SEQ_RANGE`]) arriving within this time are
/// [`PushOutcome::Late`] rather than the start of a new stream.
pub const STALE_AFTER_END: Duration = Duration::from_secs(1);
/// How far back (in packets) a post-end packet may be to count as stale.
pub const STALE_SEQ_RANGE: i16 = 1000;
/// How long the link counts as troubled after a lost packet or an
/// underrun: [`JitterConfig::cushion_ms`] applies instead of
/// [`JitterConfig::clean_cushion_ms`] until this passes without another.
/// Long enough that sparse random loss (one packet in a few hundred) keeps
/// the FEC margin, short enough that one scheduling hiccup costs a clean
/// link its low delay for a few transmissions only.
pub const TROUBLE_MEMORY: Duration = Duration::from_secs(20);
/// Maximum number of undrained events kept (oldest are discarded).
const MAX_EVENTS: usize = 64;
/// Number of played sequence numbers remembered to tell duplicates from
/// late packets.
const HISTORY_BITS: i64 = 64;

/// Jitter-buffer configuration. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Duration of one packet / one pop in ms (20 for our Opus packets).
    /// Every packet is assumed to carry exactly one frame of this length.
    pub frame_ms: u32,
    /// RTP clock rate in Hz (48_000 for Opus, RFC 7587 §4.1), so one 20 ms
    /// frame spans 960 timestamp units.
    pub clock_rate: u32,
    /// Lower bound of the adaptive target delay, ms.
    pub min_delay_ms: u32,
    /// Upper bound of the adaptive target delay, ms.
    pub max_delay_ms: u32,
    /// Target delay before any jitter has been measured, ms.
    pub initial_delay_ms: u32,
    /// A stream ends when the buffer is empty and no packet was accepted for
    /// this long, ms.
    pub idle_after_ms: u32,
    /// Cushion added to the measured jitter (the p95 relative transit
    /// delay) to make the raw target delay once the link has shown
    /// trouble (a lost packet or an underrun in the last
    /// [`TROUBLE_MEMORY`]), ms. One frame (20, the default) is what in-band
    /// FEC and RED need: a lost packet is rebuilt from the *next* one,
    /// which must have arrived by the lost one's slot.
    pub cushion_ms: u32,
    /// Cushion on a clean link (no loss and no underrun in the last
    /// [`TROUBLE_MEMORY`]), ms. Equal to `cushion_ms` by default; a few ms
    /// (the engine's 5) lowers a clean link's target below one frame, the
    /// first loss or underrun raising it to `cushion_ms` at once.
    pub clean_cushion_ms: u32,
}

impl Default for JitterConfig {
    /// 20 ms frames at 48 kHz, delay 20..=300 ms starting at 40 ms, stream
    /// end after 300 ms without packets, a cushion of one frame (20 ms),
    /// clean link or not.
    fn default() -> Self {
        Self {
            frame_ms: 20,
            clock_rate: 48_000,
            min_delay_ms: 20,
            max_delay_ms: 300,
            initial_delay_ms: 40,
            idle_after_ms: 300,
            cushion_ms: 20,
            clean_cushion_ms: 20,
        }
    }
}

impl JitterConfig {
    /// Returns a copy with unusable values repaired instead of rejected:
    /// `frame_ms` clamped to 1..=10_000, `clock_rate` to 1..=10_000_000 Hz,
    /// `max_delay_ms ≥ min_delay_ms`, `initial_delay_ms` clamped into
    /// `[min_delay_ms, max_delay_ms]`.
    #[must_use]
    pub fn sanitized(self) -> Self {
        let min_delay_ms = self.min_delay_ms;
        let max_delay_ms = self.max_delay_ms.max(min_delay_ms);
        Self {
            frame_ms: self.frame_ms.clamp(1, 10_000),
            clock_rate: self.clock_rate.clamp(1, 10_000_000),
            min_delay_ms,
            max_delay_ms,
            initial_delay_ms: self.initial_delay_ms.clamp(min_delay_ms, max_delay_ms),
            idle_after_ms: self.idle_after_ms,
            cushion_ms: self.cushion_ms.min(10_000),
            clean_cushion_ms: self.clean_cushion_ms.min(10_000),
        }
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Buffered for playout.
    Accepted,
    /// Same sequence number as a packet already buffered or recently played;
    /// ignored (counted in `duplicates`).
    Duplicate,
    /// Its playout slot has already passed (played as loss/FEC, or it belongs
    /// to a stream that ended); ignored (counted in `late`).
    Late,
    /// Too far ahead of the playout cursor for the bounded buffer; dropped
    /// (counted in `too_far_ahead`).
    TooFarAhead,
}

/// What to play for one `frame_ms` slot, returned by [`JitterBuffer::pop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// No stream is active (or it is still pre-buffering its first frame):
    /// play nothing, decode nothing.
    Idle,
    /// Decode this Opus payload normally.
    Frame(Vec<u8>),
    /// This slot's packet is missing but the next one is buffered: decode the
    /// in-band FEC of this payload (the *next* packet), i.e. Opus decode with
    /// `decode_fec = true` (RFC 6716 §2.1.7, RFC 7587 §3.3). The next packet
    /// is still returned as a [`Playout::Frame`] at its own slot.
    Fec(Vec<u8>),
    /// Missing audio with no FEC available (loss, underrun or an inserted
    /// frame): run the decoder's packet-loss concealment.
    Conceal,
    /// The sender was silent (DTX gap, RFC 7587 §3.1.3, or a pause between
    /// talk-spurts), the stream is re-buffering after a resync, or more than
    /// [`MAX_CONCEAL_RUN`] slots in a row had no audio: play comfort silence
    /// (decoder PLC or zeros).
    Silence,
}

/// Stream lifecycle notifications, drained with [`JitterBuffer::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum JitterEvent {
    /// A stream starts playing: emitted by the pop that ends its
    /// pre-buffering, which returns the stream's first [`Playout::Frame`]
    /// (unless the target delay grew meanwhile and a conceal frame is
    /// inserted first).
    StreamStarted,
    /// The stream ended after `idle_after_ms` without packets.
    StreamEnded {
        /// Counters of this stream only (from its first packet to its end);
        /// delay and jitter values as of the end.
        stats: JitterStats,
    },
}

/// Counters and current delay values. Counters are cumulative since
/// [`JitterBuffer::new`] from [`JitterBuffer::stats`], per stream in
/// [`JitterEvent::StreamEnded`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets accepted ([`PushOutcome::Accepted`]).
    pub packets: u64,
    /// [`Playout::Frame`] outputs.
    pub played: u64,
    /// Slots whose packet was missing while later packets were buffered
    /// (played as [`Playout::Fec`], [`Playout::Conceal`] or, beyond
    /// [`MAX_CONCEAL_RUN`], [`Playout::Silence`]).
    pub lost: u64,
    /// [`PushOutcome::Late`] packets.
    pub late: u64,
    /// [`PushOutcome::Duplicate`] packets.
    pub duplicates: u64,
    /// [`PushOutcome::TooFarAhead`] packets.
    pub too_far_ahead: u64,
    /// [`Playout::Fec`] outputs (lost slots recovered from in-band FEC).
    pub fec_recovered: u64,
    /// [`Playout::Conceal`] outputs, whatever the reason.
    pub concealed: u64,
    /// [`Playout::Silence`] outputs.
    pub silence: u64,
    /// Slots by which the schedule slipped because the buffer ran empty and
    /// the next packet turned out to be late (not a pause).
    pub underruns: u64,
    /// Frames dropped to shrink the delay (sender clock faster, or target
    /// decreased).
    pub drift_dropped: u64,
    /// Conceal frames inserted to grow the delay (sender clock slower, or
    /// target increased).
    pub drift_inserted: u64,
    /// RFC 3550 §6.4.1 interarrival jitter estimate, ms.
    pub jitter_ms: f64,
    /// Current adaptive target delay, ms.
    pub target_delay_ms: u32,
    /// Delay of the last played frame after its earliest possible arrival
    /// (see the module docs), ms.
    pub current_delay_ms: u32,
}

impl JitterStats {
    /// Counters of `self` minus those of `start` (saturating); gauges
    /// (`jitter_ms`, `target_delay_ms`, `current_delay_ms`) from `self`.
    pub fn since(&self, start: &Self) -> Self {
        Self {
            packets: self.packets.saturating_sub(start.packets),
            played: self.played.saturating_sub(start.played),
            lost: self.lost.saturating_sub(start.lost),
            late: self.late.saturating_sub(start.late),
            duplicates: self.duplicates.saturating_sub(start.duplicates),
            too_far_ahead: self.too_far_ahead.saturating_sub(start.too_far_ahead),
            fec_recovered: self.fec_recovered.saturating_sub(start.fec_recovered),
            concealed: self.concealed.saturating_sub(start.concealed),
            silence: self.silence.saturating_sub(start.silence),
            underruns: self.underruns.saturating_sub(start.underruns),
            drift_dropped: self.drift_dropped.saturating_sub(start.drift_dropped),
            drift_inserted: self.drift_inserted.saturating_sub(start.drift_inserted),
            ..*self
        }
    }
}

/// Adaptive jitter buffer for one channel. See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    ctx: Ctx,
    state: StreamState,
}

/// State shared by all streams of one buffer.
#[derive(Debug)]
struct Ctx {
    cfg: JitterConfig,
    /// One frame in timestamp units (≥ 1).
    frame_ts: i64,
    /// Buffer capacity in packets.
    capacity: i64,
    /// Adaptive target delay, ms, within `[min_delay_ms, max_delay_ms]`.
    target_ms: f64,
    /// RFC 3550 interarrival jitter, µs.
    jitter_us: f64,
    /// Last computed current delay, ms.
    current_delay_ms: u32,
    /// p95 relative transit delay of the window at the last packet, ms.
    jitter_p95_ms: f64,
    /// When a packet was last lost or the buffer last underran.
    trouble_at: Option<Instant>,
    /// Cumulative counters (gauge fields unused here).
    totals: JitterStats,
    events: VecDeque<JitterEvent>,
}

/// Whether a stream is active.
#[derive(Debug)]
enum StreamState {
    /// No stream. `previous` remembers the last ended stream for stale
    /// packet detection.
    Idle { previous: Option<EndedStream> },
    /// A stream is buffering or playing.
    Active(Box<Stream>),
}

/// What is remembered about an ended stream.
#[derive(Debug, Clone, Copy)]
struct EndedStream {
    highest_seq: u16,
    ended_at: Instant,
}

/// Playout phase of an active stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the target delay before the stream's first frame
    /// (pops return [`Playout::Idle`]).
    Prebuffer { until: Instant },
    /// Re-anchored on a packet after a resync, waiting until `until`
    /// (pops return [`Playout::Silence`]).
    Rebuffer { until: Instant },
    /// Playing; `slipped` = consecutive pops with an empty buffer for which
    /// the cursor was held.
    Running { slipped: u32 },
}

/// One buffered packet.
#[derive(Debug)]
struct Packet {
    /// Extended RTP timestamp.
    ts: i64,
    arrival: Instant,
    /// RTP marker bit (first packet of a talk-spurt, RFC 3551 §4.1).
    marker: bool,
    payload: Vec<u8>,
}

/// An active stream.
#[derive(Debug)]
struct Stream {
    /// Origin of the local time axis (first packet's arrival).
    epoch: Instant,
    /// Cumulative counters when the stream started.
    stats_at_start: JitterStats,
    /// Buffered packets by extended sequence number, all `>= next_seq`.
    buffer: BTreeMap<i64, Packet>,
    /// Extended sequence number of the next slot.
    next_seq: i64,
    /// Extended RTP timestamp of the next slot.
    cursor: i64,
    /// Highest extended sequence number accepted, and its timestamp
    /// (reference for extending incoming values).
    highest_seq: i64,
    highest_ts: i64,
    last_arrival: Instant,
    /// Bit `i` set: sequence `next_seq - 1 - i` was received (played or
    /// dropped); tells duplicates from late packets.
    history: u64,
    /// Recent transit times (arrival − timestamp), µs.
    transit: VecDeque<i64>,
    /// Minimum of `transit`, µs.
    min_transit: i64,
    /// First sequence number whose transit is in `transit` (the window was
    /// reset there). Older packets are played without delay control, as
    /// their delay cannot be compared with the new window's minimum.
    window_start_seq: i64,
    /// Transit of the previously accepted packet (RFC 3550 jitter), unless
    /// the window was just reset.
    last_transit: Option<i64>,
    phase: Phase,
    /// Consecutive [`Playout::Conceal`] outputs.
    conceal_run: u32,
    /// Since when the delay has been above the drop threshold.
    excess_since: Option<Instant>,
    /// When a conceal frame was last inserted.
    last_insert: Option<Instant>,
}

impl JitterBuffer {
    /// Creates an idle buffer. The configuration is
    /// [`JitterConfig::sanitized`] first, so no value makes it panic.
    #[must_use]
    pub fn new(cfg: JitterConfig) -> Self {
        let cfg = cfg.sanitized();
        let frame_ts = (u64::from(cfg.clock_rate) * u64::from(cfg.frame_ms) / 1000).max(1);
        let capacity = (2 * i64::from(cfg.max_delay_ms) / i64::from(cfg.frame_ms))
            .clamp(MIN_CAPACITY, MAX_CAPACITY);
        Self {
            ctx: Ctx {
                cfg,
                frame_ts: i64::try_from(frame_ts).unwrap_or(i64::MAX),
                capacity,
                target_ms: f64::from(cfg.initial_delay_ms),
                jitter_us: 0.0,
                current_delay_ms: 0,
                jitter_p95_ms: 0.0,
                trouble_at: None,
                totals: JitterStats::default(),
                events: VecDeque::new(),
            },
            state: StreamState::Idle { previous: None },
        }
    }

    /// The (sanitized) configuration in use.
    #[must_use]
    pub fn config(&self) -> &JitterConfig {
        &self.ctx.cfg
    }

    /// Whether a stream is active (buffering or playing).
    #[must_use]
    pub fn is_active(&self) -> bool {
        matches!(self.state, StreamState::Active(_))
    }

    /// Number of packets currently buffered (at most the capacity, see
    /// [`MIN_CAPACITY`]).
    #[must_use]
    pub fn buffered_packets(&self) -> usize {
        match &self.state {
            StreamState::Idle { .. } => 0,
            StreamState::Active(s) => s.buffer.len(),
        }
    }

    /// Offers one received RTP packet: 16-bit sequence number `seq`, RTP
    /// `timestamp` (clock-rate units), marker bit and Opus `payload`, arriving
    /// at `now`. The payload is copied only if accepted.
    ///
    /// The marker bit flags the first packet of a talk-spurt (RFC 3551 §4.1;
    /// the SFU's [`crate::TrackRewriter`] sets it on every change of talker).
    /// Such a packet, like any timestamp discontinuity, resets the transit
    /// statistics (the new talker's network path may differ); and if it
    /// arrives after the buffer ran dry and behind the schedule, playout
    /// re-anchors on it with a fresh target-delay cushion instead of playing
    /// it immediately.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        self.end_if_idle(now);
        match &mut self.state {
            StreamState::Active(stream) => {
                stream.push(&mut self.ctx, now, seq, timestamp, marker, payload)
            }
            StreamState::Idle { previous } => {
                if let Some(prev) = previous
                    && now.saturating_duration_since(prev.ended_at) < STALE_AFTER_END
                {
                    let ahead = seq.wrapping_sub(prev.highest_seq) as i16;
                    if ahead <= 0 && ahead > -STALE_SEQ_RANGE {
                        self.ctx.totals.late += 1;
                        return PushOutcome::Late;
                    }
                }
                let stream = Stream::start(&mut self.ctx, now, seq, timestamp, payload);
                self.state = StreamState::Active(Box::new(stream));
                PushOutcome::Accepted
            }
        }
    }

    /// Decides what to play for the next `frame_ms` slot; call exactly once
    /// per `frame_ms` of the playout clock, with `now` from that clock.
    pub fn pop(&mut self, now: Instant) -> Playout {
        self.end_if_idle(now);
        match &mut self.state {
            StreamState::Idle { .. } => Playout::Idle,
            StreamState::Active(stream) => stream.pop(&mut self.ctx, now),
        }
    }

    /// Whether no stream is under way (none started, or the last one
    /// ended): [`JitterBuffer::pop`] returns [`Playout::Idle`] until a
    /// packet arrives, so a playout clock may stop calling it meanwhile.
    /// A stream still prebuffering is under way.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        matches!(self.state, StreamState::Idle { .. })
    }

    /// Cumulative statistics since [`JitterBuffer::new`] and the current
    /// jitter and delay values.
    #[must_use]
    pub fn stats(&self) -> JitterStats {
        self.ctx.stats()
    }

    /// Returns the oldest undrained event, if any. At most 64 events are
    /// kept; older ones are discarded when nobody drains them.
    pub fn poll_event(&mut self) -> Option<JitterEvent> {
        self.ctx.events.pop_front()
    }

    /// Ends the active stream if its buffer is drained and no packet was
    /// accepted for `idle_after_ms`.
    fn end_if_idle(&mut self, now: Instant) {
        let StreamState::Active(stream) = &self.state else {
            return;
        };
        let idle_after = Duration::from_millis(u64::from(self.ctx.cfg.idle_after_ms));
        if !stream.buffer.is_empty()
            || now.saturating_duration_since(stream.last_arrival) < idle_after
        {
            return;
        }
        let stats = self.ctx.stats().since(&stream.stats_at_start);
        let ended = EndedStream {
            highest_seq: (stream.highest_seq & 0xFFFF) as u16,
            ended_at: now,
        };
        self.ctx.emit(JitterEvent::StreamEnded { stats });
        self.state = StreamState::Idle {
            previous: Some(ended),
        };
    }
}

impl Ctx {
    fn stats(&self) -> JitterStats {
        JitterStats {
            jitter_ms: self.jitter_us / 1000.0,
            target_delay_ms: self.target_ms.round() as u32,
            current_delay_ms: self.current_delay_ms,
            ..self.totals
        }
    }

    fn emit(&mut self, event: JitterEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn half_frame_ts(&self) -> i64 {
        self.frame_ts / 2
    }

    fn resync_ts(&self) -> i64 {
        duration_to_ts(RESYNC_GAP, self.cfg.clock_rate)
    }

    fn frame_us(&self) -> i64 {
        i64::from(self.cfg.frame_ms) * 1000
    }

    fn target_us(&self) -> i64 {
        (self.target_ms * 1000.0) as i64
    }

    /// `t` plus the current target delay.
    fn after_target(&self, t: Instant) -> Instant {
        let target = Duration::from_micros(self.target_us().max(0) as u64);
        t.checked_add(target).unwrap_or(t)
    }

    /// Extended timestamp to µs.
    fn ts_to_us(&self, ts: i64) -> i64 {
        let us = i128::from(ts) * 1_000_000 / i128::from(self.cfg.clock_rate);
        i64::try_from(us).unwrap_or(if us < 0 { i64::MIN / 2 } else { i64::MAX / 2 })
    }

    fn silence(&mut self) -> Playout {
        self.totals.silence += 1;
        Playout::Silence
    }

    /// Feeds one transit sample (µs) into the RFC 3550 jitter estimate and the
    /// window; recomputes the window minimum and the target delay. Returns the
    /// new window minimum.
    fn observe_transit(
        &mut self,
        now: Instant,
        window: &mut VecDeque<i64>,
        last: &mut Option<i64>,
        transit: i64,
    ) -> i64 {
        if let Some(prev) = *last {
            // RFC 3550 §6.4.1: J += (|D| - J) / 16.
            let d = transit.saturating_sub(prev).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        *last = Some(transit);
        if window.len() >= TRANSIT_WINDOW {
            window.pop_front();
        }
        window.push_back(transit);
        let mut sorted: Vec<i64> = window.iter().copied().collect();
        sorted.sort_unstable();
        let min = sorted.first().copied().unwrap_or(transit);
        if sorted.len() >= MIN_TRANSIT_SAMPLES {
            let rank = (TARGET_PERCENTILE * sorted.len() as f64).ceil() as usize;
            let p = sorted.get(rank.saturating_sub(1)).copied().unwrap_or(min);
            self.jitter_p95_ms = p.saturating_sub(min) as f64 / 1000.0;
            let raw = self.raw_target(now);
            if raw > self.target_ms {
                self.target_ms = raw;
            } else {
                self.target_ms += (raw - self.target_ms) / TARGET_DECAY_PACKETS;
            }
        }
        min
    }

    /// The cushion in force at `now`: [`JitterConfig::cushion_ms`] within
    /// [`TROUBLE_MEMORY`] of the last trouble, else
    /// [`JitterConfig::clean_cushion_ms`].
    fn cushion_ms(&self, now: Instant) -> u32 {
        let troubled = self
            .trouble_at
            .is_some_and(|t| now.saturating_duration_since(t) < TROUBLE_MEMORY);
        if troubled {
            self.cfg.cushion_ms
        } else {
            self.cfg.clean_cushion_ms
        }
    }

    /// Cushion plus the window's p95 relative delay, within the bounds.
    fn raw_target(&self, now: Instant) -> f64 {
        (f64::from(self.cushion_ms(now)) + self.jitter_p95_ms).clamp(
            f64::from(self.cfg.min_delay_ms),
            f64::from(self.cfg.max_delay_ms),
        )
    }

    /// A packet was lost or the buffer underran at `now`: the link is
    /// troubled, and a target that a clean cushion kept low rises at once
    /// (the delay control then inserts a frame to reach it).
    fn trouble(&mut self, now: Instant) {
        self.trouble_at = Some(now);
        self.target_ms = self.target_ms.max(self.raw_target(now));
    }
}

impl Stream {
    /// Starts a stream with its first packet.
    fn start(ctx: &mut Ctx, now: Instant, seq: u16, timestamp: u32, payload: &[u8]) -> Self {
        let seq = i64::from(seq);
        let ts = i64::from(timestamp);
        let mut stream = Self {
            epoch: now,
            stats_at_start: ctx.totals,
            buffer: BTreeMap::new(),
            next_seq: seq,
            cursor: ts,
            highest_seq: seq,
            highest_ts: ts,
            last_arrival: now,
            history: 0,
            transit: VecDeque::with_capacity(TRANSIT_WINDOW),
            min_transit: 0,
            window_start_seq: seq,
            last_transit: None,
            phase: Phase::Prebuffer {
                until: ctx.after_target(now),
            },
            conceal_run: 0,
            excess_since: None,
            last_insert: None,
        };
        stream.accept(ctx, now, seq, ts, true, payload);
        stream
    }

    fn push(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        let ext = extend(i64::from(seq), self.highest_seq, 16);
        if self.buffer.contains_key(&ext) {
            ctx.totals.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        if ext < self.next_seq {
            let prebuffering = matches!(self.phase, Phase::Prebuffer { .. });
            if prebuffering && self.highest_seq - ext < ctx.capacity {
                // Reordered ahead of the stream's first packet: start earlier.
                self.next_seq = ext;
            } else {
                let back = self.next_seq - 1 - ext;
                if back < HISTORY_BITS && (self.history >> back) & 1 == 1 {
                    ctx.totals.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
                ctx.totals.late += 1;
                return PushOutcome::Late;
            }
        } else if ext - self.next_seq >= ctx.capacity {
            ctx.totals.too_far_ahead += 1;
            return PushOutcome::TooFarAhead;
        }
        let ts = extend(i64::from(timestamp), self.highest_ts, 32);
        if ext > self.highest_seq {
            let expected_ts = self.highest_ts + (ext - self.highest_seq) * ctx.frame_ts;
            // A talk-spurt start (possibly another talker with another
            // network path) or a timestamp discontinuity: the old transit
            // times no longer compare with the new ones.
            if marker || (ts - expected_ts).abs() > ctx.half_frame_ts() {
                self.transit.clear();
                self.last_transit = None;
                self.window_start_seq = ext;
            }
        }
        self.accept(ctx, now, ext, ts, marker, payload);
        PushOutcome::Accepted
    }

    /// Buffers a packet known to be acceptable.
    fn accept(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        seq: i64,
        ts: i64,
        marker: bool,
        payload: &[u8],
    ) {
        if seq > self.highest_seq {
            self.highest_seq = seq;
            self.highest_ts = ts;
        }
        let transit = micros_since(self.epoch, now).saturating_sub(ctx.ts_to_us(ts));
        self.min_transit =
            ctx.observe_transit(now, &mut self.transit, &mut self.last_transit, transit);
        self.buffer.insert(
            seq,
            Packet {
                ts,
                arrival: now,
                marker,
                payload: payload.to_vec(),
            },
        );
        self.last_arrival = now;
        ctx.totals.packets += 1;
    }

    fn pop(&mut self, ctx: &mut Ctx, now: Instant) -> Playout {
        match self.phase {
            Phase::Prebuffer { until } => {
                if now < until {
                    return Playout::Idle;
                }
                if let Some((&seq, first)) = self.buffer.first_key_value() {
                    self.next_seq = seq;
                    self.cursor = first.ts;
                }
                self.phase = Phase::Running { slipped: 0 };
                ctx.emit(JitterEvent::StreamStarted);
            }
            Phase::Rebuffer { until } => {
                if now < until {
                    return ctx.silence();
                }
                self.phase = Phase::Running { slipped: 0 };
            }
            Phase::Running { .. } => {}
        }
        let out = self.step(ctx, now);
        if !matches!(out, Playout::Frame(_)) {
            // Excess delay must be sustained over continuously played frames.
            self.excess_since = None;
        }
        out
    }

    /// One slot while running.
    fn step(&mut self, ctx: &mut Ctx, now: Instant) -> Playout {
        let frame = ctx.frame_ts;
        let half = ctx.half_frame_ts();
        let Some((head_seq, head_ts, head_arrival, head_marker)) = self
            .buffer
            .first_key_value()
            .map(|(&seq, p)| (seq, p.ts, p.arrival, p.marker))
        else {
            // Underrun: hold the cursor; reconciled when a packet arrives.
            if let Phase::Running { slipped } = &mut self.phase {
                *slipped = slipped.saturating_add(1);
            }
            return self.conceal(ctx);
        };
        let missing = (head_seq - self.next_seq).max(0);
        // Estimated timestamp of the next expected packet.
        let est = head_ts - missing * frame;

        if let Phase::Running { slipped } = self.phase
            && slipped > 0
        {
            self.phase = Phase::Running { slipped: 0 };
            let expected = self.cursor + i64::from(slipped) * frame;
            if est >= expected - half {
                // The sender paused at least that long: the held slots were
                // part of the pause.
                self.cursor = expected;
            } else if missing == 0 && (head_marker || est > self.cursor + half) {
                // A new talk-spurt (marker bit or timestamp gap) that arrived
                // behind the schedule: give it a fresh cushion.
                return self.rebuffer(ctx, now, head_ts, head_arrival);
            } else {
                let explained = ((est - self.cursor).max(0) + half) / frame;
                let underruns = u64::from(slipped).saturating_sub(explained as u64);
                if underruns > 0 {
                    ctx.totals.underruns += underruns;
                    ctx.trouble(now);
                }
                self.cursor = self.cursor.max(est);
            }
        }

        let lead = est - self.cursor;
        if lead.abs() > ctx.resync_ts() {
            if missing > 0 {
                ctx.totals.lost += missing as u64;
                ctx.trouble(now);
                self.history = shift_history(self.history, missing, false);
                self.next_seq = head_seq;
            }
            return self.rebuffer(ctx, now, head_ts, head_arrival);
        }
        if lead >= half {
            self.cursor += frame;
            return ctx.silence();
        }
        if missing == 0 {
            return self.play_due(ctx, now);
        }
        // The next packet is missing at its slot while later ones are here.
        ctx.totals.lost += 1;
        ctx.trouble(now);
        self.next_seq += 1;
        self.history = shift_history(self.history, 1, false);
        self.cursor += frame;
        if missing == 1
            && let Some(next) = self.buffer.get(&head_seq)
        {
            ctx.totals.fec_recovered += 1;
            self.conceal_run = 0;
            return Playout::Fec(next.payload.clone());
        }
        self.conceal(ctx)
    }

    /// Re-anchors the schedule on the head packet (timestamp `ts`, arrived at
    /// `arrival`) and plays it once the target delay after its arrival has
    /// passed.
    fn rebuffer(&mut self, ctx: &mut Ctx, now: Instant, ts: i64, arrival: Instant) -> Playout {
        self.cursor = ts;
        let until = ctx.after_target(arrival);
        if now >= until {
            self.phase = Phase::Running { slipped: 0 };
            self.play_due(ctx, now)
        } else {
            self.phase = Phase::Rebuffer { until };
            ctx.silence()
        }
    }

    /// The head packet is the next one and due: play it, unless the delay
    /// control inserts a conceal frame or drops it in favour of the next.
    fn play_due(&mut self, ctx: &mut Ctx, now: Instant) -> Playout {
        let Some((&head_seq, head)) = self.buffer.first_key_value() else {
            return self.conceal(ctx);
        };
        let head_ts = head.ts;
        let earliest = ctx.ts_to_us(head_ts).saturating_add(self.min_transit);
        let delay_us = micros_since(self.epoch, now).saturating_sub(earliest);
        let target_us = ctx.target_us();
        let frame_us = ctx.frame_us();

        // Packets older than the transit window (tail of the previous
        // talk-spurt) have no comparable delay: no delay control for them.
        let controlled = head_seq >= self.window_start_seq;
        if controlled {
            ctx.current_delay_ms = delay_ms(delay_us);
        }
        if controlled && delay_us < target_us - frame_us / 2 {
            self.excess_since = None;
            let may_insert = self
                .last_insert
                .is_none_or(|t| now.saturating_duration_since(t) >= INSERT_INTERVAL);
            if may_insert {
                self.last_insert = Some(now);
                ctx.totals.drift_inserted += 1;
                return self.conceal(ctx);
            }
        } else if controlled && delay_us > target_us + DROP_EXCESS_FRAMES * frame_us {
            let since = *self.excess_since.get_or_insert(now);
            let hold = if delay_us > target_us + FAST_DROP_EXCESS_FRAMES * frame_us {
                FAST_DROP_HOLD
            } else {
                DROP_HOLD
            };
            let next_contiguous = self.buffer.get(&(head_seq + 1)).is_some_and(|next| {
                (next.ts - head_ts - ctx.frame_ts).abs() < ctx.half_frame_ts().max(1)
            });
            if now.saturating_duration_since(since) >= hold && next_contiguous {
                self.buffer.pop_first();
                self.next_seq = head_seq + 1;
                self.history = shift_history(self.history, 1, true);
                self.cursor = head_ts + ctx.frame_ts;
                ctx.totals.drift_dropped += 1;
                self.excess_since = None;
            }
        } else {
            self.excess_since = None;
        }

        let Some((seq, packet)) = self.buffer.pop_first() else {
            return self.conceal(ctx);
        };
        self.next_seq = seq + 1;
        self.history = shift_history(self.history, 1, true);
        self.cursor = self.cursor.max(packet.ts) + ctx.frame_ts;
        self.conceal_run = 0;
        ctx.totals.played += 1;
        Playout::Frame(packet.payload)
    }

    /// A [`Playout::Conceal`], or [`Playout::Silence`] once
    /// [`MAX_CONCEAL_RUN`] conceals were played in a row.
    fn conceal(&mut self, ctx: &mut Ctx) -> Playout {
        if self.conceal_run < MAX_CONCEAL_RUN {
            self.conceal_run += 1;
            ctx.totals.concealed += 1;
            Playout::Conceal
        } else {
            ctx.silence()
        }
    }
}

/// Extends a `bits`-wide wrapping counter value to the i64 nearest
/// `reference` (RFC 3550 §A.1 style; works for 16-bit sequence numbers and
/// 32-bit timestamps).
fn extend(value: i64, reference: i64, bits: u32) -> i64 {
    let modulus = 1i64 << bits;
    let half = modulus / 2;
    let delta = (value - reference).rem_euclid(modulus);
    let delta = if delta >= half {
        delta - modulus
    } else {
        delta
    };
    reference.saturating_add(delta)
}

/// Shifts `n` slots into the received-history bitmask.
fn shift_history(history: u64, n: i64, received: bool) -> u64 {
    let shifted = if n >= HISTORY_BITS { 0 } else { history << n };
    shifted | u64::from(received)
}

/// A delay in µs as whole ms, 0 if negative.
fn delay_ms(delay_us: i64) -> u32 {
    u32::try_from(delay_us.max(0) / 1000).unwrap_or(u32::MAX)
}

/// Microseconds from `epoch` to `now` (0 if `now` is earlier).
fn micros_since(epoch: Instant, now: Instant) -> i64 {
    i64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(i64::MAX)
}

/// A duration in timestamp units at `clock_rate` Hz.
fn duration_to_ts(d: Duration, clock_rate: u32) -> i64 {
    let units = d.as_micros().saturating_mul(u128::from(clock_rate)) / 1_000_000;
    i64::try_from(units).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
