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
//! **All-call**: one press may name several channels ([`PttInput::PressAll`]).
//! Each channel is a *leg* with its own Floor Request; the uplink is one
//! stream, which the server forwards into every channel whose floor we hold.
//! The first Floor Granted starts the transmission (the buffer goes out);
//! later grants join it; a Floor Deny or queueing of one leg is reported for
//! that channel and the others go on; losing the last granted leg (revoke,
//! idle) ends the transmission and cancels the legs still waiting. Release
//! ends every leg: Floor Release for each, Talk Ended for each granted.
//! A press of one channel behaves exactly as before.
//!
//! Drive rule: [`Ptt::handle`] one input, then drain [`Ptt::poll_action`];
//! feed [`PttInput::Tick`] by [`Ptt::poll_timeout`].
//!
//! The browser engine's machine (`ui/ptt.js`) behaves the same: both are
//! checked against one table of cases (`tests/ptt/cases.txt`, run by
//! `tests/ptt_table.rs`), the browser's under Node.

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
    /// The talk key went down for several channels at once (all-call);
    /// duplicates are ignored, an empty list does nothing.
    PressAll(Vec<ChannelName>),
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
    /// The connection to the server is gone (closed, lost, or the server
    /// restarting): every leg ends without a Floor Release (there is no
    /// one to send it to; the server frees a lost client's floors itself),
    /// Talk Ended for each granted one, and what was buffered is dropped.
    /// The key must be pressed again after a reconnect: the floor may
    /// have gone to someone else meanwhile.
    Disconnected,
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
    /// The transmission started, or reached one more channel (Floor Granted).
    TalkStarted(ChannelName),
    /// The transmission ended in this channel (released, revoked or floor gone).
    TalkEnded(ChannelName),
    /// The request for this channel was refused.
    Busy(ChannelName, DenyReason),
    /// The request for this channel waits in the floor queue at this position.
    Queued(ChannelName, usize),
    /// The floor of this channel was revoked while talking.
    Revoked(ChannelName, RevokeReason),
}

/// Where one channel's Floor Request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// Requested, no answer yet.
    Pending,
    /// In the floor queue.
    Queued,
    /// Granted: our audio goes there.
    Granted,
    /// Denied, cancelled or lost: out of this press.
    Done,
}

/// The channels of one press and their legs.
#[derive(Debug)]
struct Legs(Vec<(ChannelName, Leg)>);

impl Legs {
    fn get(&self, c: &ChannelName) -> Option<Leg> {
        self.0.iter().find(|(ch, _)| ch == c).map(|(_, l)| *l)
    }

    fn set(&mut self, c: &ChannelName, leg: Leg) {
        if let Some((_, l)) = self.0.iter_mut().find(|(ch, _)| ch == c) {
            *l = leg;
        }
    }

    fn any(&self, leg: Leg) -> bool {
        self.0.iter().any(|(_, l)| *l == leg)
    }

    /// Waiting for an answer or in the queue.
    fn is_open(&self, c: &ChannelName) -> bool {
        matches!(self.get(c), Some(Leg::Pending | Leg::Queued))
    }

    fn in_play(&self) -> Vec<ChannelName> {
        self.0
            .iter()
            .filter(|(_, l)| *l != Leg::Done)
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn same_channels(&self, chans: &[ChannelName]) -> bool {
        self.0.len() == chans.len() && chans.iter().all(|c| self.get(c).is_some())
    }
}

/// The PTT state. Frames exist only in `Requesting` (buffered).
#[derive(Debug)]
enum State<F> {
    Idle,
    /// No leg granted yet, at least one waiting for its answer.
    Requesting {
        legs: Legs,
        released_at: Option<Instant>,
        buffer: VecDeque<(Instant, F)>,
    },
    /// Key held, no leg granted or pending, at least one in the floor
    /// queue; frames are dropped.
    Queued {
        legs: Legs,
    },
    /// At least one leg granted, sending.
    Talking {
        legs: Legs,
    },
    /// Key released, sending the release tail.
    Tail {
        legs: Legs,
        until: Instant,
    },
}

impl<F> State<F> {
    /// This state with leg `c` set to `leg` (nothing changes when idle).
    fn with_leg(mut self, c: &ChannelName, leg: Leg) -> Self {
        match &mut self {
            State::Idle => {}
            State::Requesting { legs, .. }
            | State::Queued { legs }
            | State::Talking { legs }
            | State::Tail { legs, .. } => legs.set(c, leg),
        }
        self
    }

    fn legs(&self) -> Option<&Legs> {
        match self {
            State::Idle => None,
            State::Requesting { legs, .. }
            | State::Queued { legs }
            | State::Talking { legs }
            | State::Tail { legs, .. } => Some(legs),
        }
    }
}

/// Public view of the state, with the press's channels still in play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PttPhase {
    /// Not talking.
    Idle,
    /// Floor Requests sent, waiting (audio is being buffered).
    Requesting(Vec<ChannelName>),
    /// Waiting in the floor queue (audio is not kept).
    Queued(Vec<ChannelName>),
    /// Floor Granted somewhere, sending.
    Talking(Vec<ChannelName>),
    /// Key released, sending the release tail.
    Tail(Vec<ChannelName>),
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
        let chans = self.state.legs().map(Legs::in_play).unwrap_or_default();
        match &self.state {
            State::Idle => PttPhase::Idle,
            State::Requesting { .. } => PttPhase::Requesting(chans),
            State::Queued { .. } => PttPhase::Queued(chans),
            State::Talking { .. } => PttPhase::Talking(chans),
            State::Tail { .. } => PttPhase::Tail(chans),
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

    /// Ends the press: Floor Release for every leg still in play (a grant,
    /// or a request to cancel), Talk Ended for each granted one.
    fn end(&mut self, legs: Legs) -> State<F> {
        for (c, leg) in legs.0 {
            match leg {
                Leg::Granted => {
                    self.actions.push_back(PttAction::ReleaseFloor(c.clone()));
                    self.actions.push_back(PttAction::TalkEnded(c));
                }
                Leg::Pending | Leg::Queued => self.actions.push_back(PttAction::ReleaseFloor(c)),
                Leg::Done => {}
            }
        }
        State::Idle
    }

    /// Where a press with nothing granted stands after a leg changed.
    fn waiting(
        &mut self,
        legs: Legs,
        released_at: Option<Instant>,
        buffer: VecDeque<(Instant, F)>,
    ) -> State<F> {
        if legs.any(Leg::Pending) {
            State::Requesting {
                legs,
                released_at,
                buffer,
            }
        } else if legs.any(Leg::Queued) {
            State::Queued { legs }
        } else {
            State::Idle
        }
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Instant, input: PttInput<F>) {
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = match input {
            PttInput::Press(c) => self.press(state, vec![c]),
            PttInput::PressAll(chans) => self.press(state, chans),
            PttInput::Release => self.release(now, state),
            PttInput::Granted(c) => self.granted(now, state, c),
            PttInput::Denied(c, reason) => self.denied(state, c, reason),
            PttInput::Queued(c, position) => self.queued(state, c, position),
            PttInput::Revoked(c, reason) => self.lost(state, c, Some(reason)),
            PttInput::FloorIdle(c) => self.lost(state, c, None),
            PttInput::Disconnected => {
                if let Some(legs) = state.legs() {
                    for (c, leg) in &legs.0 {
                        if *leg == Leg::Granted {
                            self.actions.push_back(PttAction::TalkEnded(c.clone()));
                        }
                    }
                }
                State::Idle
            }
            PttInput::Frame(at, f) => self.frame(state, at, f),
            PttInput::Tick => match state {
                State::Tail { legs, until } if now >= until => self.end(legs),
                state => state,
            },
        };
    }

    fn press(&mut self, state: State<F>, mut chans: Vec<ChannelName>) -> State<F> {
        let mut seen = Vec::with_capacity(chans.len());
        chans.retain(|c| {
            let new = !seen.contains(c);
            seen.push(c.clone());
            new
        });
        match state {
            State::Idle if !chans.is_empty() => {
                for c in &chans {
                    self.actions.push_back(PttAction::RequestFloor(c.clone()));
                }
                State::Requesting {
                    legs: Legs(chans.into_iter().map(|c| (c, Leg::Pending)).collect()),
                    released_at: None,
                    buffer: VecDeque::new(),
                }
            }
            // Pressed again during the tail: the same transmission goes on.
            State::Tail { legs, .. } if legs.same_channels(&chans) => State::Talking { legs },
            state => state,
        }
    }

    fn release(&mut self, now: Instant, state: State<F>) -> State<F> {
        match state {
            State::Requesting {
                legs,
                released_at: None,
                buffer,
            } => State::Requesting {
                legs,
                released_at: Some(now),
                buffer,
            },
            // Floor Release from a queued member cancels its request.
            State::Queued { legs } => self.end(legs),
            State::Talking { legs } => State::Tail {
                legs,
                until: now + self.config.release_tail,
            },
            state => state,
        }
    }

    fn granted(&mut self, now: Instant, state: State<F>, c: ChannelName) -> State<F> {
        if state.legs().and_then(|l| l.get(&c)) == Some(Leg::Granted) {
            return state; // a repeated grant
        }
        let open = state.legs().is_some_and(|l| l.is_open(&c));
        if !open {
            // A grant we no longer want (a stale retry, a cancelled leg):
            // give it back.
            self.actions.push_back(PttAction::ReleaseFloor(c));
            return state;
        }
        self.actions.push_back(PttAction::TalkStarted(c.clone()));
        match state {
            State::Requesting {
                mut legs,
                released_at,
                buffer,
            } => {
                legs.set(&c, Leg::Granted);
                for (i, (_, frame)) in buffer.into_iter().enumerate() {
                    self.actions.push_back(PttAction::Send {
                        frame,
                        first: i == 0,
                    });
                }
                let tail = self.config.release_tail;
                match released_at {
                    Some(r) if now >= r + tail => self.end(legs),
                    Some(r) => State::Tail {
                        legs,
                        until: r + tail,
                    },
                    None => State::Talking { legs },
                }
            }
            State::Queued { mut legs } => {
                legs.set(&c, Leg::Granted);
                State::Talking { legs }
            }
            state => state.with_leg(&c, Leg::Granted),
        }
    }

    fn denied(&mut self, state: State<F>, c: ChannelName, reason: DenyReason) -> State<F> {
        let open = state.legs().is_some_and(|l| l.is_open(&c));
        if !open {
            return state;
        }
        self.actions.push_back(PttAction::Busy(c.clone(), reason));
        match state {
            State::Requesting {
                mut legs,
                released_at,
                buffer,
            } => {
                legs.set(&c, Leg::Done);
                self.waiting(legs, released_at, buffer)
            }
            State::Queued { mut legs } => {
                legs.set(&c, Leg::Done);
                self.waiting(legs, None, VecDeque::new())
            }
            state => state.with_leg(&c, Leg::Done),
        }
    }

    fn queued(&mut self, state: State<F>, c: ChannelName, position: usize) -> State<F> {
        let open = state.legs().is_some_and(|l| l.is_open(&c));
        if !open {
            return state;
        }
        self.actions
            .push_back(PttAction::Queued(c.clone(), position));
        match state {
            State::Requesting {
                mut legs,
                released_at,
                buffer,
            } => {
                if released_at.is_some() {
                    // Let go before the answer came: nobody wants the turn.
                    self.actions.push_back(PttAction::ReleaseFloor(c.clone()));
                    legs.set(&c, Leg::Done);
                } else {
                    legs.set(&c, Leg::Queued);
                }
                // Nothing said while queued is kept: once no leg is
                // pending, the buffer goes.
                self.waiting(legs, released_at, buffer)
            }
            State::Tail { .. } => {
                // The key is up: nobody will wait for this turn.
                self.actions.push_back(PttAction::ReleaseFloor(c.clone()));
                state.with_leg(&c, Leg::Done)
            }
            state => state.with_leg(&c, Leg::Queued),
        }
    }

    /// Floor Revoke (`reason`) or Floor Idle (`None`) for leg `c`.
    fn lost(&mut self, state: State<F>, c: ChannelName, reason: Option<RevokeReason>) -> State<F> {
        let (mut legs, until) = match state {
            State::Talking { legs } if legs.get(&c) == Some(Leg::Granted) => (legs, None),
            State::Tail { legs, until } if legs.get(&c) == Some(Leg::Granted) => {
                (legs, Some(until))
            }
            state => return state,
        };
        if let Some(r) = reason {
            self.actions.push_back(PttAction::Revoked(c.clone(), r));
        }
        self.actions.push_back(PttAction::TalkEnded(c.clone()));
        legs.set(&c, Leg::Done);
        if !legs.any(Leg::Granted) {
            // Nowhere left to talk: cancel the legs still waiting.
            return self.end(legs);
        }
        match until {
            Some(until) => State::Tail { legs, until },
            None => State::Talking { legs },
        }
    }

    fn frame(&mut self, state: State<F>, at: Instant, frame: F) -> State<F> {
        let tail = self.config.release_tail;
        match state {
            State::Requesting {
                legs,
                released_at,
                mut buffer,
            } => {
                if released_at.is_none_or(|r| at <= r + tail) {
                    if buffer.len() >= self.max_buffered() {
                        buffer.pop_front();
                    }
                    buffer.push_back((at, frame));
                }
                State::Requesting {
                    legs,
                    released_at,
                    buffer,
                }
            }
            State::Talking { legs } => {
                self.actions.push_back(PttAction::Send {
                    frame,
                    first: false,
                });
                State::Talking { legs }
            }
            State::Tail { legs, until } if at <= until => {
                self.actions.push_back(PttAction::Send {
                    frame,
                    first: false,
                });
                State::Tail { legs, until }
            }
            State::Tail { legs, .. } => self.end(legs),
            state => state,
        }
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
        assert_eq!(p.phase(), PttPhase::Talking(vec![ch("a")]));
    }

    #[test]
    fn release_sends_tail_then_floor_release() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        drain(&mut p);
        p.handle(ms(t0, 1000), PttInput::Release);
        assert_eq!(p.phase(), PttPhase::Tail(vec![ch("a")]));
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
        assert_eq!(p.phase(), PttPhase::Talking(vec![ch("a")]));
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
            PttPhase::Talking(vec![ch("b")]),
            "another channel's idle is ignored"
        );
        p.handle(t0, PttInput::FloorIdle(ch("b")));
        assert_eq!(drain(&mut p), vec![PttAction::TalkEnded(ch("b"))]);
    }

    #[test]
    fn a_lost_connection_ends_every_granted_leg_without_a_floor_release() {
        let t0 = Instant::now();
        // Talking in a and b (c still waiting for its answer).
        let mut p = Ptt::new(PttConfig::default());
        all(&mut p, t0, &["a", "b", "c"]);
        p.handle(t0, PttInput::Granted(ch("a")));
        p.handle(t0, PttInput::Granted(ch("b")));
        drain(&mut p);
        p.handle(t0, PttInput::Disconnected);
        assert_eq!(
            drain(&mut p),
            vec![PttAction::TalkEnded(ch("a")), PttAction::TalkEnded(ch("b"))]
        );
        assert_eq!(p.phase(), PttPhase::Idle);
        assert!(!p.wants_audio());
        p.handle(t0, PttInput::Frame(t0, 1));
        assert!(
            drain(&mut p).is_empty(),
            "nothing is sent once disconnected"
        );
        // A Floor Granted for the old press (it cannot come from a new
        // connection, but if it did) is given back, not talked into.
        p.handle(t0, PttInput::Granted(ch("a")));
        assert_eq!(drain(&mut p), vec![PttAction::ReleaseFloor(ch("a"))]);
        assert_eq!(p.phase(), PttPhase::Idle);

        // Requesting with audio buffered, and in the release tail: the
        // buffer is dropped, nothing ends that had not started.
        let mut p = Ptt::new(PttConfig::default());
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Frame(t0, 7));
        p.handle(t0, PttInput::Disconnected);
        assert_eq!(drain(&mut p), vec![PttAction::RequestFloor(ch("a"))]);
        assert_eq!(p.phase(), PttPhase::Idle);
        p.handle(t0, PttInput::Press(ch("a")));
        p.handle(t0, PttInput::Granted(ch("a")));
        p.handle(t0, PttInput::Release);
        drain(&mut p);
        p.handle(t0, PttInput::Disconnected);
        assert_eq!(drain(&mut p), vec![PttAction::TalkEnded(ch("a"))]);
        assert_eq!(p.poll_timeout(), None, "no tail left to time");
        // Idle: nothing to end.
        p.handle(t0, PttInput::Disconnected);
        assert!(drain(&mut p).is_empty());
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
        assert_eq!(p.phase(), PttPhase::Queued(vec![ch("a")]));
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
        assert_eq!(p.phase(), PttPhase::Talking(vec![ch("a")]));
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

    fn all(p: &mut Ptt<Frame>, t0: Instant, chans: &[&str]) {
        p.handle(
            t0,
            PttInput::PressAll(chans.iter().map(|c| ch(c)).collect()),
        );
    }

    #[test]
    fn all_call_requests_every_channel_and_talks_from_the_first_grant() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        all(&mut p, t0, &["a", "b", "c", "a"]);
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::RequestFloor(ch("a")),
                PttAction::RequestFloor(ch("b")),
                PttAction::RequestFloor(ch("c")),
            ],
            "one request per channel, duplicates dropped"
        );
        p.handle(t0, PttInput::Frame(t0, 1));
        p.handle(ms(t0, 30), PttInput::Granted(ch("b")));
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::TalkStarted(ch("b")),
                PttAction::Send {
                    frame: 1,
                    first: true
                }
            ]
        );
        // a is busy, c joins the running transmission.
        p.handle(ms(t0, 35), PttInput::Denied(ch("a"), DenyReason::Busy));
        p.handle(ms(t0, 40), PttInput::Granted(ch("c")));
        p.handle(ms(t0, 40), PttInput::Frame(ms(t0, 40), 2));
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::Busy(ch("a"), DenyReason::Busy),
                PttAction::TalkStarted(ch("c")),
                PttAction::Send {
                    frame: 2,
                    first: false
                }
            ]
        );
        assert_eq!(p.phase(), PttPhase::Talking(vec![ch("b"), ch("c")]));
        // Release ends both granted legs after the tail.
        p.handle(ms(t0, 50), PttInput::Release);
        p.handle(ms(t0, 300), PttInput::Tick);
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::ReleaseFloor(ch("b")),
                PttAction::TalkEnded(ch("b")),
                PttAction::ReleaseFloor(ch("c")),
                PttAction::TalkEnded(ch("c")),
            ]
        );
        assert_eq!(p.phase(), PttPhase::Idle);
    }

    #[test]
    fn all_call_denied_everywhere_is_idle_with_each_reason() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        all(&mut p, t0, &["a", "b"]);
        p.handle(t0, PttInput::Frame(t0, 1));
        p.handle(t0, PttInput::Denied(ch("a"), DenyReason::Busy));
        assert_eq!(p.phase(), PttPhase::Requesting(vec![ch("b")]));
        p.handle(t0, PttInput::Denied(ch("b"), DenyReason::NotMember));
        assert_eq!(p.phase(), PttPhase::Idle);
        let a = drain(&mut p);
        assert!(sent(&a).is_empty(), "nothing was sent");
        assert_eq!(
            a[2..],
            [
                PttAction::Busy(ch("a"), DenyReason::Busy),
                PttAction::Busy(ch("b"), DenyReason::NotMember)
            ]
        );
    }

    #[test]
    fn all_call_losing_the_last_granted_leg_cancels_the_waiting_ones() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        all(&mut p, t0, &["a", "b", "c"]);
        p.handle(t0, PttInput::Granted(ch("a")));
        p.handle(t0, PttInput::Granted(ch("b")));
        p.handle(t0, PttInput::Queued(ch("c"), 1));
        drain(&mut p);
        p.handle(t0, PttInput::Revoked(ch("a"), RevokeReason::Preempted));
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::Revoked(ch("a"), RevokeReason::Preempted),
                PttAction::TalkEnded(ch("a"))
            ],
            "b still carries the talk"
        );
        assert_eq!(p.phase(), PttPhase::Talking(vec![ch("b"), ch("c")]));
        p.handle(t0, PttInput::FloorIdle(ch("b")));
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::TalkEnded(ch("b")),
                PttAction::ReleaseFloor(ch("c"))
            ]
        );
        assert_eq!(p.phase(), PttPhase::Idle);
        // c's grant arriving now is given back.
        p.handle(t0, PttInput::Granted(ch("c")));
        assert_eq!(drain(&mut p), vec![PttAction::ReleaseFloor(ch("c"))]);
    }

    #[test]
    fn all_call_with_every_leg_queued_waits_then_talks_at_the_first_grant() {
        let t0 = Instant::now();
        let mut p = Ptt::new(PttConfig::default());
        all(&mut p, t0, &["a", "b"]);
        p.handle(t0, PttInput::Frame(t0, 1));
        p.handle(t0, PttInput::Queued(ch("a"), 2));
        assert!(matches!(p.phase(), PttPhase::Requesting(_)), "b pending");
        p.handle(t0, PttInput::Queued(ch("b"), 1));
        assert_eq!(p.phase(), PttPhase::Queued(vec![ch("a"), ch("b")]));
        p.handle(t0, PttInput::Granted(ch("b")));
        p.handle(t0, PttInput::Frame(t0, 2));
        let a = drain(&mut p);
        assert_eq!(sent(&a), vec![2], "what was said while queued is dropped");
        p.handle(t0, PttInput::Release);
        p.handle(ms(t0, 300), PttInput::Tick);
        assert_eq!(
            drain(&mut p),
            vec![
                PttAction::ReleaseFloor(ch("a")),
                PttAction::ReleaseFloor(ch("b")),
                PttAction::TalkEnded(ch("b")),
            ],
            "a's queued request is cancelled"
        );
    }
}
