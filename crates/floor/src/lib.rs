//! Floor control for one channel, as a pure state machine (no I/O, no clock:
//! time is passed in), after the floor control server of 3GPP TS 24.380 §6.3.
//!
//! Drive rule (as in str0m): feed one input with [`Floor::handle`], then
//! drain [`Floor::poll_action`] until it returns `None`; call
//! [`Floor::handle`] with [`FloorInput::Tick`] no later than
//! [`Floor::poll_timeout`].
//!
//! States: `Idle` (nobody talks) and `Taken` (one holder with a priority and
//! a deadline). Transitions:
//!
//! | state | input | actions | next |
//! |---|---|---|---|
//! | Idle | Request(a) | Granted(a), Taken(a) | Taken(a) |
//! | Taken(a) | Request(a) | Granted(a) (repeat) | Taken(a) |
//! | Taken(a) | Request(b), no pre-emption | Deny(b, Busy) | Taken(a) |
//! | Taken(a) | Request(b), pre-emptive and higher priority | Revoke(a, Preempted), Granted(b), Taken(b) | Taken(b) |
//! | Taken(a) | Release(a) or Left(a) | Idle | Idle |
//! | Taken(a) | Release(b) or Left(b) | — | Taken(a) |
//! | Taken(a) | Tick after the deadline | Revoke(a, MaxDurationExceeded), Idle | Idle |
//!
//! Membership is checked by the caller (the server's routing), so every
//! requester here is a member. A floor queue (TS 24.380 §6.3.4.4
//! "Queued") fits as a third state without changing the inputs or actions.

use std::{
    collections::VecDeque,
    fmt::Debug,
    time::{Duration, Instant},
};

pub use squawk_protocol::{DenyReason, Priority, RevokeReason};

/// Floor control policy of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorConfig {
    /// Longest a holder may talk before Floor Revoke (TS 24.380 timer T2
    /// "stop talking"). Default 60 s.
    pub max_talk: Duration,
    /// Whether a request with a strictly higher priority pre-empts the holder
    /// (TS 24.380 §6.3.4.4.4). Default off: first come, first served.
    pub preemption: bool,
}

impl Default for FloorConfig {
    fn default() -> Self {
        Self {
            max_talk: Duration::from_secs(60),
            preemption: false,
        }
    }
}

/// Inputs to [`Floor::handle`]. `P` identifies a participant (the server
/// uses its connection id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorInput<P> {
    /// Floor Request from a member.
    Request {
        /// Requester.
        who: P,
        /// Floor priority of the request.
        priority: Priority,
    },
    /// Floor Release from a member.
    Release {
        /// The member releasing.
        who: P,
    },
    /// The member left the channel or disconnected.
    Left {
        /// The member gone.
        who: P,
    },
    /// Time passed; fire due timers.
    Tick,
}

/// What the caller must do after an input, drained with [`Floor::poll_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorAction<P> {
    /// Send Floor Granted to `to`; it may talk for `max_duration`.
    Granted {
        /// The new holder.
        to: P,
        /// Talk time allowed.
        max_duration: Duration,
    },
    /// Send Floor Deny to `to`.
    Deny {
        /// The refused requester.
        to: P,
        /// Why.
        reason: DenyReason,
    },
    /// Send Floor Taken to every member except `holder`; start forwarding
    /// `holder`'s media.
    Taken {
        /// The new holder.
        holder: P,
        /// Its priority.
        priority: Priority,
    },
    /// Send Floor Revoke to `holder`; stop forwarding its media at once.
    Revoke {
        /// The holder losing the floor.
        holder: P,
        /// Why.
        reason: RevokeReason,
    },
    /// Send Floor Idle to every member; forward nobody's media.
    Idle,
}

/// The floor's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorState<P> {
    /// Nobody holds the floor.
    Idle,
    /// `holder` may talk until `deadline`.
    Taken {
        /// Current talker.
        holder: P,
        /// Priority it was granted at.
        priority: Priority,
        /// When it was granted.
        since: Instant,
        /// When it will be revoked.
        deadline: Instant,
    },
}

/// Floor control of one channel. See the crate docs for the transitions.
#[derive(Debug)]
pub struct Floor<P> {
    config: FloorConfig,
    state: FloorState<P>,
    actions: VecDeque<FloorAction<P>>,
}

impl<P: Copy + Eq + Debug> Floor<P> {
    /// A new idle floor.
    pub fn new(config: FloorConfig) -> Self {
        Self {
            config,
            state: FloorState::Idle,
            actions: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> FloorState<P> {
        self.state
    }

    /// The current holder, if any.
    pub fn holder(&self) -> Option<P> {
        match self.state {
            FloorState::Idle => None,
            FloorState::Taken { holder, .. } => Some(holder),
        }
    }

    /// The policy in force.
    pub fn config(&self) -> FloorConfig {
        self.config
    }

    /// When [`FloorInput::Tick`] must next be fed, if a timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            FloorState::Idle => None,
            FloorState::Taken { deadline, .. } => Some(deadline),
        }
    }

    /// Next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<FloorAction<P>> {
        self.actions.pop_front()
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: FloorInput<P>) {
        match (self.state, input) {
            (FloorState::Idle, FloorInput::Request { who, priority }) => {
                self.grant(now, who, priority)
            }
            (
                FloorState::Taken {
                    holder,
                    priority: held,
                    ..
                },
                FloorInput::Request { who, priority },
            ) => {
                if who == holder {
                    // A repeated request (lost Granted, or a retry): confirm it,
                    // keeping the original deadline so it cannot extend its turn.
                    let remaining = self
                        .poll_timeout()
                        .map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
                    self.actions.push_back(FloorAction::Granted {
                        to: who,
                        max_duration: remaining,
                    });
                } else if self.config.preemption && priority > held {
                    self.actions.push_back(FloorAction::Revoke {
                        holder,
                        reason: RevokeReason::Preempted,
                    });
                    self.grant(now, who, priority);
                } else {
                    self.actions.push_back(FloorAction::Deny {
                        to: who,
                        reason: DenyReason::Busy,
                    });
                }
            }
            (
                FloorState::Taken { holder, .. },
                FloorInput::Release { who } | FloorInput::Left { who },
            ) if who == holder => {
                self.go_idle();
            }
            (
                FloorState::Taken {
                    holder, deadline, ..
                },
                FloorInput::Tick,
            ) if now >= deadline => {
                self.actions.push_back(FloorAction::Revoke {
                    holder,
                    reason: RevokeReason::MaxDurationExceeded,
                });
                self.go_idle();
            }
            // Release or Left by a non-holder, Tick with nothing due, anything while idle: no-op.
            _ => {}
        }
    }

    fn grant(&mut self, now: Instant, who: P, priority: Priority) {
        let max_duration = self.config.max_talk;
        self.state = FloorState::Taken {
            holder: who,
            priority,
            since: now,
            deadline: now + max_duration,
        };
        self.actions.push_back(FloorAction::Granted {
            to: who,
            max_duration,
        });
        self.actions.push_back(FloorAction::Taken {
            holder: who,
            priority,
        });
    }

    fn go_idle(&mut self) {
        self.state = FloorState::Idle;
        self.actions.push_back(FloorAction::Idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 1;
    const B: u32 = 2;
    const C: u32 = 3;

    fn drain(f: &mut Floor<u32>) -> Vec<FloorAction<u32>> {
        std::iter::from_fn(|| f.poll_action()).collect()
    }

    fn req(who: u32) -> FloorInput<u32> {
        FloorInput::Request {
            who,
            priority: Priority(0),
        }
    }

    fn setup() -> (Floor<u32>, Instant) {
        (
            Floor::new(FloorConfig {
                max_talk: Duration::from_secs(60),
                preemption: false,
            }),
            Instant::now(),
        )
    }

    #[test]
    fn idle_request_grants_and_announces() {
        let (mut f, t) = setup();
        assert_eq!(f.poll_timeout(), None);
        f.handle(t, req(A));
        assert_eq!(
            drain(&mut f),
            vec![
                FloorAction::Granted {
                    to: A,
                    max_duration: Duration::from_secs(60)
                },
                FloorAction::Taken {
                    holder: A,
                    priority: Priority(0)
                },
            ]
        );
        assert_eq!(f.holder(), Some(A));
        assert_eq!(f.poll_timeout(), Some(t + Duration::from_secs(60)));
    }

    #[test]
    fn request_while_taken_is_denied_busy() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(
            t,
            FloorInput::Request {
                who: B,
                priority: Priority(200),
            },
        );
        assert_eq!(
            drain(&mut f),
            vec![FloorAction::Deny {
                to: B,
                reason: DenyReason::Busy
            }]
        );
        assert_eq!(f.holder(), Some(A));
    }

    #[test]
    fn repeated_request_by_holder_confirms_without_extending() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t + Duration::from_secs(10), req(A));
        assert_eq!(
            drain(&mut f),
            vec![FloorAction::Granted {
                to: A,
                max_duration: Duration::from_secs(50)
            }]
        );
        assert_eq!(f.poll_timeout(), Some(t + Duration::from_secs(60)));
    }

    #[test]
    fn release_by_holder_goes_idle() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t, FloorInput::Release { who: A });
        assert_eq!(drain(&mut f), vec![FloorAction::Idle]);
        assert_eq!(f.state(), FloorState::Idle);
        // Now B can talk.
        f.handle(t, req(B));
        assert_eq!(f.holder(), Some(B));
    }

    #[test]
    fn holder_leaving_goes_idle() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t, FloorInput::Left { who: A });
        assert_eq!(drain(&mut f), vec![FloorAction::Idle]);
        assert_eq!(f.holder(), None);
    }

    #[test]
    fn release_or_leave_by_others_is_ignored() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t, FloorInput::Release { who: B });
        f.handle(t, FloorInput::Left { who: C });
        assert!(drain(&mut f).is_empty());
        assert_eq!(f.holder(), Some(A));
        // And while idle, release and tick do nothing.
        let (mut g, t) = setup();
        g.handle(t, FloorInput::Release { who: A });
        g.handle(t, FloorInput::Tick);
        assert!(drain(&mut g).is_empty());
    }

    #[test]
    fn max_talk_time_revokes_then_idles() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t + Duration::from_millis(59_999), FloorInput::Tick);
        assert!(drain(&mut f).is_empty(), "not yet due");
        f.handle(t + Duration::from_secs(60), FloorInput::Tick);
        assert_eq!(
            drain(&mut f),
            vec![
                FloorAction::Revoke {
                    holder: A,
                    reason: RevokeReason::MaxDurationExceeded
                },
                FloorAction::Idle
            ]
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn preemption_by_higher_priority_when_enabled() {
        let t = Instant::now();
        let mut f = Floor::new(FloorConfig {
            max_talk: Duration::from_secs(30),
            preemption: true,
        });
        f.handle(
            t,
            FloorInput::Request {
                who: A,
                priority: Priority(1),
            },
        );
        drain(&mut f);
        // Equal priority does not pre-empt.
        f.handle(
            t,
            FloorInput::Request {
                who: B,
                priority: Priority(1),
            },
        );
        assert_eq!(
            drain(&mut f),
            vec![FloorAction::Deny {
                to: B,
                reason: DenyReason::Busy
            }]
        );
        let t2 = t + Duration::from_secs(5);
        f.handle(
            t2,
            FloorInput::Request {
                who: C,
                priority: Priority(9),
            },
        );
        assert_eq!(
            drain(&mut f),
            vec![
                FloorAction::Revoke {
                    holder: A,
                    reason: RevokeReason::Preempted
                },
                FloorAction::Granted {
                    to: C,
                    max_duration: Duration::from_secs(30)
                },
                FloorAction::Taken {
                    holder: C,
                    priority: Priority(9)
                },
            ]
        );
        assert_eq!(f.poll_timeout(), Some(t2 + Duration::from_secs(30)));
    }
}
