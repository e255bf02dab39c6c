//! Push-to-talk as a pure state machine (no I/O, time passed in).
//!
//! Semantics (what a Zello or MCPTT user expects):
//! - press → Floor Request at once, and capture starts at once: frames
//!   captured before Floor Granted are buffered, so the first syllable is
//!   never clipped;
//! - Floor Granted → the buffer is sent (marker on the first packet), then
//!   live frames;
//! - release → frames keep flowing for the release tail (default 250 ms of
//!   capture time), then Floor Release;
//! - Floor Deny → the buffer is dropped, nothing was sent, busy is reported;
//! - Floor Queue Position Info (a request made with `queue`) → the buffer
//!   is dropped and the request waits in the floor queue while the key is
//!   held (frames are not kept: what was said while waiting is not sent
//!   later); releasing the key cancels it (Floor Release); Floor Granted
//!   then starts live audio;
//! - Floor Revoke, or Floor Idle from the server while talking → stop at once.
//!
//! Drive rule: [`Ptt::handle`] one input, then drain [`Ptt::poll_action`];
//! feed [`PttInput::Tick`] by [`Ptt::poll_timeout`].

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use squawk_protocol::{ChannelName, DenyReason, RevokeReason};

/// PTT tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PttConfig {
    /// Audio sent after the key is released, in capture time. Default 250 ms.
    pub release_tail: Duration,
    /// Most audio buffered while waiting for Floor Granted; older frames
    /// are dropped first. Default 3 s.
    pub max_pre_grant: Duration,
    /// Frame duration, default 20 ms.
    pub frame: Duration,
}

impl Default for PttConfig {
    fn default() -> Self {
        Self {
            release_tail: Duration::from_millis(250),
            max_pre_grant: Duration::from_secs(3),
            frame: Duration::from_millis(20),
        }
    }
}

/// Inputs. `F` is one encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PttInput<F> {
    /// The talk key went down for `channel`.
    Press(ChannelName),
    /// The talk key went up.
    Release,
    /// Floor Granted arrived.
    Granted(ChannelName),
    /// Floor Deny arrived.
    Denied(ChannelName, DenyReason),
    /// Floor Queue Position Info arrived: the request waits at this
    /// position (1 = next).
    Queued(ChannelName, usize),
    /// Floor Revoke arrived.
    Revoked(ChannelName, RevokeReason),
    /// Floor Idle arrived (the server freed the floor, e.g. media loss).
    FloorIdle(ChannelName),
    /// One captured frame; `at` is its capture time.
    Frame(Instant, F),
    /// Time passed.
    Tick,
}

/// Actions for the engine to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PttAction<F> {
    /// Send Floor Request for the channel.
    RequestFloor(ChannelName),
    /// Send Floor Release for the channel.
    ReleaseFloor(ChannelName),
    /// Transmit this frame; `first` marks the start of a transmission
    /// (RTP marker bit, RFC 3551 §4.1).
    Send {
        /// The frame.
        frame: F,
        /// First frame of this transmission.
        first: bool,
    },
    /// The transmission started (Floor Granted).
    TalkStarted(ChannelName),
    /// The transmission ended (released, revoked or floor gone).
    TalkEnded(ChannelName),
    /// The request was refused.
    Busy(ChannelName, DenyReason),
    /// The request waits in the floor queue at this position.
    Queued(ChannelName, usize),
    /// The floor was revoked while talking.
    Revoked(ChannelName, RevokeReason),
}

/// The PTT state. Frames exist only in `Requesting` (buffered).
#[derive(Debug)]
enum State<F> {
    Idle,
    Requesting {
        channel: ChannelName,
        released_at: Option<Instant>,
        buffer: VecDeque<(Instant, F)>,
    },
    /// In the floor queue, key held; frames are dropped.
    Queued {
        channel: ChannelName,
    },
    Talking {
        channel: ChannelName,
    },
    Tail {
        channel: ChannelName,
        until: Instant,
    },
}

/// Public view of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PttPhase {
    /// Not talking.
    Idle,
    /// Floor Request sent, waiting (audio is being buffered).
    Requesting(ChannelName),
    /// Waiting in the floor queue (audio is not kept).
    Queued(ChannelName),
    /// Floor Granted, sending.
    Talking(ChannelName),
    /// Key released, sending the release tail.
    Tail(ChannelName),
}

/// The PTT machine.
#[derive(Debug)]
pub struct Ptt<F> {
    config: PttConfig,
    state: State<F>,
    actions: VecDeque<PttAction<F>>,
}

impl<F> Ptt<F> {
    /// An idle machine.
    pub fn new(config: PttConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            actions: VecDeque::new(),
        }
    }

    /// Changes the release tail for the next release (a tail already
    /// running keeps its end).
    pub fn set_release_tail(&mut self, tail: Duration) {
        self.config.release_tail = tail;
    }

    /// Current phase.
    pub fn phase(&self) -> PttPhase {
        match &self.state {
            State::Idle => PttPhase::Idle,
            State::Requesting { channel, .. } => PttPhase::Requesting(channel.clone()),
            State::Queued { channel } => PttPhase::Queued(channel.clone()),
            State::Talking { channel } => PttPhase::Talking(channel.clone()),
            State::Tail { channel, .. } => PttPhase::Tail(channel.clone()),
        }
    }

    /// Whether captured frames are wanted now (encode only then).
    pub fn wants_audio(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// When to feed [`PttInput::Tick`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Tail { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// Next action.
    pub fn poll_action(&mut self) -> Option<PttAction<F>> {
        self.actions.pop_front()
    }

    fn max_buffered(&self) -> usize {
        let f = self.config.frame.as_micros().max(1);
        (self.config.max_pre_grant.as_micros() / f).max(1) as usize
    }

    fn end(&mut self, channel: ChannelName, release: bool) {
        if release {
            self.actions
                .push_back(PttAction::ReleaseFloor(channel.clone()));
        }
        self.actions.push_back(PttAction::TalkEnded(channel));
        self.state = State::Idle;
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Instant, input: PttInput<F>) {
        let tail = self.config.release_tail;
        let max_buffered = self.max_buffered();
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = match (state, input) {
            (State::Idle, PttInput::Press(channel)) => {
                self.actions
                    .push_back(PttAction::RequestFloor(channel.clone()));
                State::Requesting {
                    channel,
                    released_at: None,
                    buffer: VecDeque::new(),
                }
            }
            (State::Idle, PttInput::Granted(channel)) => {
                // A grant we no longer want (e.g. a stale retry): give it back.
                self.actions.push_back(PttAction::ReleaseFloor(channel));
                State::Idle
            }
            (
                State::Requesting {
                    channel,
                    released_at,
                    mut buffer,
                },
                PttInput::Frame(at, f),
            ) => {
                if released_at.is_none_or(|r| at <= r + tail) {
                    if buffer.len() >= max_buffered {
                        buffer.pop_front();
                    }
                    buffer.push_back((at, f));
                }
                State::Requesting {
                    channel,
                    released_at,
                    buffer,
                }
            }
            (
                State::Requesting {
                    channel,
                    released_at: None,
                    buffer,
                },
                PttInput::Release,
            ) => State::Requesting {
                channel,
                released_at: Some(now),
                buffer,
            },
            (
                State::Requesting {
                    channel,
                    released_at,
                    buffer,
                },
                PttInput::Granted(c),
            ) if c == channel => {
                self.actions
                    .push_back(PttAction::TalkStarted(channel.clone()));
                for (i, (_, frame)) in buffer.into_iter().enumerate() {
                    self.actions.push_back(PttAction::Send {
                        frame,
                        first: i == 0,
                    });
                }
                match released_at {
                    Some(r) if now >= r + tail => {
                        self.end(channel, true);
                        State::Idle
                    }
                    Some(r) => State::Tail {
                        channel,
                        until: r + tail,
                    },
                    None => State::Talking { channel },
                }
            }
            (
                State::Requesting { channel, .. } | State::Queued { channel },
                PttInput::Denied(c, reason),
            ) if c == channel => {
                self.actions.push_back(PttAction::Busy(channel, reason));
                State::Idle
            }
            (
                State::Requesting {
                    channel,
                    released_at,
                    ..
                },
                PttInput::Queued(c, position),
            ) if c == channel => {
                self.actions
                    .push_back(PttAction::Queued(channel.clone(), position));
                if released_at.is_some() {
                    // Let go before the answer came: nobody wants the turn.
                    self.actions.push_back(PttAction::ReleaseFloor(channel));
                    State::Idle
                } else {
                    State::Queued { channel }
                }
            }
            (State::Queued { channel }, PttInput::Queued(c, position)) if c == channel => {
                self.actions
                    .push_back(PttAction::Queued(channel.clone(), position));
                State::Queued { channel }
            }
            (State::Queued { channel }, PttInput::Release) => {
                // Floor Release from a queued member cancels its request.
                self.actions.push_back(PttAction::ReleaseFloor(channel));
                State::Idle
            }
            (State::Queued { channel }, PttInput::Granted(c)) if c == channel => {
                self.actions
                    .push_back(PttAction::TalkStarted(channel.clone()));
                State::Talking { channel }
            }
            (State::Talking { channel }, PttInput::Frame(_, frame)) => {
                self.actions.push_back(PttAction::Send {
                    frame,
                    first: false,
                });
                State::Talking { channel }
            }
            (State::Tail { channel, until }, PttInput::Frame(at, frame)) => {
                if at <= until {
                    self.actions.push_back(PttAction::Send {
                        frame,
                        first: false,
                    });
                    State::Tail { channel, until }
                } else {
                    self.end(channel, true);
                    State::Idle
                }
            }
            (State::Talking { channel }, PttInput::Release) => State::Tail {
                channel,
                until: now + tail,
            },
            (State::Tail { channel, .. }, PttInput::Press(c)) if c == channel => {
                State::Talking { channel }
            }
            (State::Tail { channel, until }, PttInput::Tick) if now >= until => {
                self.end(channel, true);
                State::Idle
            }
            (
                State::Talking { channel } | State::Tail { channel, .. },
                PttInput::Revoked(c, reason),
            ) if c == channel => {
                self.actions
                    .push_back(PttAction::Revoked(channel.clone(), reason));
                self.end(channel, false);
                State::Idle
            }
            (State::Talking { channel } | State::Tail { channel, .. }, PttInput::FloorIdle(c))
                if c == channel =>
            {
                self.end(channel, false);
                State::Idle
            }
            (state, _) => state,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Frame = u32;

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).unwrap()
    }

    fn drain(p: &mut Ptt<Frame>) -> Vec<PttAction<Frame>> {
        std::iter::from_fn(|| p.poll_action()).collect()
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn sent(actions: &[PttAction<Frame>]) -> Vec<Frame> {
        actions
            .iter()
            .filter_map(|a| match a {
                PttAction::Send { frame, .. } => Some(*frame),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn audio_before_grant_is_sent_first_and_marked() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        assert!(!p.wants_audio());
        p.handle(t0, PttInput::Press(ch("a")));
        assert_eq!(drain(&mut p), vec![PttAction::RequestFloor(ch("a"))]);
        assert!(p.wants_audio(), "capture starts at press");
        for i in 0..3 {
            p.handle(ms(t0, i * 20), PttInput::Frame(ms(t0, i * 20), i as u32));
        }
        assert!(drain(&mut p).is_empty(), "nothing is sent before the grant");
        p.handle(ms(t0, 45), PttInput::Granted(ch("a")));
        let a = drain(&mut p);
        assert_eq!(a[0], PttAction::TalkStarted(ch("a")));
        assert_eq!(
            a[1],
            PttAction::Send {
                frame: 0,
                first: true
            }
        );
        assert_eq!(sent(&a), vec![0, 1, 2]);
        p.handle(ms(t0, 60), PttInput::Frame(ms(t0, 60), 3));
        assert_eq!(
            drain(&mut p),
            vec![PttAction::Send {
                frame: 3,
                first: false
            }]
        );
        assert_eq!(p.phase(), PttPhase::Talking(ch("a")));
    }

    #[test]
    fn release_sends_tail_then_floor_release() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        drain(&mut p);
        p.handle(ms(t0, 1000), PttInput::Release);
        assert_eq!(p.phase(), PttPhase::Tail(ch("a")));
        assert_eq!(p.poll_timeout(), Some(ms(t0, 1250)));
        p.handle(ms(t0, 1100), PttInput::Frame(ms(t0, 1100), 7));
        p.handle(ms(t0, 1240), PttInput::Frame(ms(t0, 1240), 8));
        assert_eq!(
            sent(&drain(&mut p)),
            vec![7, 8],
            "the release tail is transmitted"
        );
        p.handle(ms(t0, 1249), PttInput::Tick);
        assert!(drain(&mut p).is_empty());
        p.handle(ms(t0, 1250), PttInput::Tick);
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::ReleaseFloor(ch("a")),
                PttAction::TalkEnded(ch("a"))
            ]
        );
        assert!(!p.wants_audio());
    }

    #[test]
    fn a_new_release_tail_applies_to_the_next_release() {
        let t0 = Instant::now();
        let mut p = Ptt::<Frame>::new(PttConfig::default());
        p.set_release_tail(Duration::from_millis(600));
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        p.handle(ms(t0, 1000), PttInput::Release);
        assert_eq!(p.poll_timeout(), Some(ms(t0, 1600)));
        // Zero: Floor Release at the key-up's first tick.
        p.set_release_tail(Duration::ZERO);
        p.handle(ms(t0, 1600), PttInput::Tick);
        drain(&mut p);
        p.handle(ms(t0, 2000), PttInput::Press(ch("a")));
        p.handle(ms(t0, 2000), PttInput::Granted(ch("a")));
        p.handle(ms(t0, 2500), PttInput::Release);
        assert_eq!(p.poll_timeout(), Some(ms(t0, 2500)));
    }

    #[test]
    fn frame_after_tail_ends_the_transmission() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        drain(&mut p);
        p.handle(t0, PttInput::Release);
        p.handle(ms(t0, 260), PttInput::Frame(ms(t0, 260), 9));
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::ReleaseFloor(ch("a")),
                PttAction::TalkEnded(ch("a"))
            ]
        );
    }

    #[test]
    fn press_during_tail_continues_talking() {
        let t0 = Instant::now();
        let mut p: Ptt<Frame> = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        p.handle(ms(t0, 100), PttInput::Release);
        p.handle(ms(t0, 150), PttInput::Press(ch("a")));
        assert_eq!(p.phase(), PttPhase::Talking(ch("a")));
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn deny_drops_buffer_and_reports_busy() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Frame(t0, 1));
        drain(&mut p);
        p.handle(ms(t0, 5), PttInput::Denied(ch("a"), DenyReason::Busy));
        assert_eq!(
            drain(&mut p),
            vec![PttAction::Busy(ch("a"), DenyReason::Busy)]
        );
        assert_eq!(p.phase(), PttPhase::Idle);
        // A late grant after the deny is handed back.
        p.handle(ms(t0, 6), PttInput::Granted(ch("a")));
        assert_eq!(drain(&mut p), vec![PttAction::ReleaseFloor(ch("a"))]);
    }

    #[test]
    fn quick_tap_released_before_grant_still_sends_and_releases() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(ms(t0, 0), PttInput::Frame(ms(t0, 0), 1));
        p.handle(ms(t0, 20), PttInput::Release);
        p.handle(ms(t0, 40), PttInput::Frame(ms(t0, 40), 2));
        p.handle(ms(t0, 300), PttInput::Frame(ms(t0, 300), 3)); // past the tail: not buffered
        p.handle(ms(t0, 400), PttInput::Granted(ch("a")));
        let a = drain(&mut p);
        assert_eq!(sent(&a), vec![1, 2]);
        assert_eq!(a.last(), Some(&PttAction::TalkEnded(ch("a"))));
        assert!(a.contains(&PttAction::ReleaseFloor(ch("a"))));
    }

    #[test]
    fn revoke_and_floor_idle_stop_at_once() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        drain(&mut p);
        p.handle(
            t0,
            PttInput::Revoked(ch("a"), RevokeReason::MaxDurationExceeded),
        );
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::Revoked(ch("a"), RevokeReason::MaxDurationExceeded),
                PttAction::TalkEnded(ch("a"))
            ]
        );
        p.handle(t0, PttInput::Frame(t0, 5));
        assert!(drain(&mut p).is_empty(), "nothing is sent after a revoke");
        p.handle(t0, PttInput::Press(ch("b")));
        p.handle(t0, PttInput::Granted(ch("b")));
        drain(&mut p);
        p.handle(t0, PttInput::FloorIdle(ch("other")));
        assert_eq!(
            p.phase(),
            PttPhase::Talking(ch("b")),
            "another channel's idle is ignored"
        );
        p.handle(t0, PttInput::FloorIdle(ch("b")));
        assert_eq!(drain(&mut p), vec![PttAction::TalkEnded(ch("b"))]);
    }

    #[test]
    fn pre_grant_buffer_is_bounded() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig {
            max_pre_grant: Duration::from_millis(100),
            ..Default::default()
        });
        p.handle(t0, PttInput::Press(ch("a")));
        for i in 0..20u32 {
            p.handle(t0, PttInput::Frame(ms(t0, u64::from(i) * 20), i));
        }
        p.handle(t0, PttInput::Granted(ch("a")));
        assert_eq!(
            sent(&drain(&mut p)),
            vec![15, 16, 17, 18, 19],
            "oldest frames dropped first"
        );
    }

    /// Pressed on `a`, two frames buffered, then queued at `position`.
    fn queued_on_a(position: usize) -> (Ptt<Frame>, Instant) {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Frame(t0, 1));
        p.handle(ms(t0, 20), PttInput::Frame(ms(t0, 20), 2));
        drain(&mut p);
        p.handle(ms(t0, 30), PttInput::Queued(ch("a"), position));
        assert_eq!(drain(&mut p), vec![PttAction::Queued(ch("a"), position)]);
        assert_eq!(p.phase(), PttPhase::Queued(ch("a")));
        (p, t0)
    }

    #[test]
    fn a_queued_press_drops_what_was_said_and_talks_live_when_granted() {
        let (mut p, t0) = queued_on_a(2);
        // Frames while waiting are not kept.
        p.handle(ms(t0, 40), PttInput::Frame(ms(t0, 40), 3));
        p.handle(ms(t0, 50), PttInput::Queued(ch("a"), 1));
        assert_eq!(drain(&mut p), vec![PttAction::Queued(ch("a"), 1)]);
        p.handle(ms(t0, 60), PttInput::Queued(ch("b"), 1));
        assert!(
            drain(&mut p).is_empty(),
            "another channel's queue is ignored"
        );
        p.handle(ms(t0, 3000), PttInput::Granted(ch("a")));
        assert_eq!(drain(&mut p), vec![PttAction::TalkStarted(ch("a"))]);
        assert_eq!(p.phase(), PttPhase::Talking(ch("a")));
        p.handle(ms(t0, 3020), PttInput::Frame(ms(t0, 3020), 4));
        assert_eq!(sent(&drain(&mut p)), vec![4], "live audio only");
    }

    #[test]
    fn releasing_while_queued_cancels_the_request() {
        let (mut p, t0) = queued_on_a(1);
        p.handle(ms(t0, 100), PttInput::Release);
        assert_eq!(drain(&mut p), vec![PttAction::ReleaseFloor(ch("a"))]);
        assert_eq!(p.phase(), PttPhase::Idle);
        // A grant that crosses the cancel is given back.
        p.handle(ms(t0, 110), PttInput::Granted(ch("a")));
        assert_eq!(drain(&mut p), vec![PttAction::ReleaseFloor(ch("a"))]);
    }

    #[test]
    fn released_before_the_queue_answer_came_cancels_at_once() {
        let t0 = Instant::now();
        let mut p: Ptt<Frame> = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(ms(t0, 10), PttInput::Release);
        drain(&mut p);
        p.handle(ms(t0, 40), PttInput::Queued(ch("a"), 1));
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::Queued(ch("a"), 1),
                PttAction::ReleaseFloor(ch("a"))
            ]
        );
        assert_eq!(p.phase(), PttPhase::Idle);
    }

    #[test]
    fn a_queue_timeout_reports_busy_with_its_reason() {
        let (mut p, t0) = queued_on_a(1);
        p.handle(
            ms(t0, 30_000),
            PttInput::Denied(ch("a"), DenyReason::QueueTimeout),
        );
        assert_eq!(
            drain(&mut p),
            vec![PttAction::Busy(ch("a"), DenyReason::QueueTimeout)]
        );
        assert_eq!(p.phase(), PttPhase::Idle);
    }
}
