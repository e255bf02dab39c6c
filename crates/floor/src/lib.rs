//! Floor control for one channel, as a pure state machine (no I/O, no clock:
//! time is passed in), after the floor control server of 3GPP TS 24.380 §6.3.
//!
//! Drive rule (as in str0m): feed one input with [`Floor::handle`], then
//! drain [`Floor::poll_action`] until it returns `None`; call
//! [`Floor::handle`] with [`FloorInput::Tick`] no later than
//! [`Floor::poll_timeout`].
//!
//! States: `Idle` (nobody talks) and `Taken` (one holder with a priority and
//! a deadline), with a **floor queue** (TS 24.380 §6.3.4.4, "queued") of
//! requests waiting while the floor is taken: ordered by priority, then
//! arrival; each with an expiry. The queue is empty whenever the floor is
//! idle. Transitions (`q` is the queue):
//!
//! | state | input | actions | next |
//! |---|---|---|---|
//! | Idle | Request(a) | Granted(a), Taken(a) | Taken(a) |
//! | Taken(a) | Request(a) | Granted(a) (repeat) | Taken(a) |
//! | Taken(a) | Request(b), pre-emptive and higher priority | Revoke(a, Preempted by b), Granted(b), Taken(b); b leaves q | Taken(b) |
//! | Taken(a) | Request(b, queue), q not full | Queued(b, position); Queued(x, position) for each x behind b | Taken(a) |
//! | Taken(a) | Request(b) otherwise (no queueing asked, q full) | Deny(b, Busy) | Taken(a) |
//! | Taken(a) | Release(a), Left(a), or Tick after the deadline (Revoke(a, MaxDurationExceeded) first) | q empty: Idle; else Granted(h), Taken(h) for the head h, Queued(x, position) for the rest | Idle or Taken(h) |
//! | Taken(a) | Release(b) or Left(b), b queued (cancel) | Queued(x, position) for each x behind b | Taken(a) |
//! | Taken(a) | Tick after b's queue expiry | Deny(b, QueueTimeout); Queued(x, position) behind b | Taken(a) |
//! | any | Release(b) or Left(b), b neither holder nor queued | — | unchanged |
//!
//! Membership is checked by the caller (the server's routing), so every
//! requester here is a member.

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
    /// (TS 24.380 §6.3.4.4.4). Default on; off means first come, first
    /// served whatever the priority.
    pub preemption: bool,
    /// How long a queued request waits before Floor Deny `queue_timeout`
    /// (TS 24.380 keeps the queue's timing to the implementation). Default 30 s.
    pub queue_timeout: Duration,
    /// Most requests queued at once; a request beyond it is denied `busy`.
    /// Default 16.
    pub max_queue: usize,
}

impl Default for FloorConfig {
    fn default() -> Self {
        Self {
            max_talk: Duration::from_secs(60),
            preemption: true,
            queue_timeout: Duration::from_secs(30),
            max_queue: 16,
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
        /// Wait in the floor queue when the floor is taken, instead of a
        /// Floor Deny.
        queue: bool,
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
        /// Who pre-empted it (`reason` is `Preempted`).
        by: Option<P>,
    },
    /// Send Floor Idle to every member; forward nobody's media.
    Idle,
    /// Tell `to` its place in the floor queue (TS 24.380 "Floor Queue
    /// Position Info"): on queueing, and whenever it moves.
    Queued {
        /// The queued requester.
        to: P,
        /// Its position, 1 = next to be granted.
        position: usize,
    },
}

/// A Floor Request waiting in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedRequest<P> {
    /// The requester.
    pub who: P,
    /// Its priority: the queue is ordered by priority, then arrival.
    pub priority: Priority,
    /// When it gives up (Floor Deny `queue_timeout`).
    pub expires: Instant,
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
    /// Waiting requests, next first; empty whenever `state` is idle.
    queue: Vec<QueuedRequest<P>>,
    actions: VecDeque<FloorAction<P>>,
}

impl<P: Copy + Eq + Debug> Floor<P> {
    /// A new idle floor.
    pub fn new(config: FloorConfig) -> Self {
        Self {
            config,
            state: FloorState::Idle,
            queue: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// The floor queue, next to be granted first.
    pub fn queue(&self) -> &[QueuedRequest<P>] {
        &self.queue
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

    /// Changes the policy (an operator edited the channel). It applies from
    /// the next input: a talk in progress keeps the deadline it was granted
    /// with, queued requests keep their expiry, and a queue longer than a
    /// new `max_queue` drains as usual (new requests beyond it are denied).
    pub fn set_config(&mut self, config: FloorConfig) {
        self.config = config;
    }

    /// When [`FloorInput::Tick`] must next be fed, if a timer runs: the
    /// holder's deadline or the earliest queue expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = match self.state {
            FloorState::Idle => None,
            FloorState::Taken { deadline, .. } => Some(deadline),
        };
        let expiry = self.queue.iter().map(|q| q.expires).min();
        match (deadline, expiry) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        }
    }

    /// Next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<FloorAction<P>> {
        self.actions.pop_front()
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: FloorInput<P>) {
        match (self.state, input) {
            (FloorState::Idle, FloorInput::Request { who, priority, .. }) => {
                self.grant(now, who, priority)
            }
            (
                FloorState::Taken {
                    holder,
                    priority: held,
                    deadline,
                    ..
                },
                FloorInput::Request {
                    who,
                    priority,
                    queue,
                },
            ) => {
                if who == holder {
                    // A repeated request (lost Granted, or a retry): confirm it,
                    // keeping the original deadline so it cannot extend its turn.
                    self.actions.push_back(FloorAction::Granted {
                        to: who,
                        max_duration: deadline.saturating_duration_since(now),
                    });
                } else if self.config.preemption && priority > held {
                    self.actions.push_back(FloorAction::Revoke {
                        holder,
                        reason: RevokeReason::Preempted,
                        by: Some(who),
                    });
                    self.dequeue(who);
                    self.grant(now, who, priority);
                } else if queue {
                    self.enqueue(now, who, priority);
                } else {
                    self.deny(who, DenyReason::Busy);
                }
            }
            (
                FloorState::Taken { holder, .. },
                FloorInput::Release { who } | FloorInput::Left { who },
            ) => {
                if who == holder {
                    self.next_or_idle(now);
                } else {
                    // A queued member cancels (Release) or is gone (Left).
                    self.dequeue(who);
                }
            }
            (
                FloorState::Taken {
                    holder, deadline, ..
                },
                FloorInput::Tick,
            ) => {
                if now >= deadline {
                    self.actions.push_back(FloorAction::Revoke {
                        holder,
                        reason: RevokeReason::MaxDurationExceeded,
                        by: None,
                    });
                    self.next_or_idle(now);
                }
                self.expire(now);
            }
            // Release, Left or Tick while idle (the queue is empty then): no-op.
            (FloorState::Idle, _) => {}
        }
    }

    fn deny(&mut self, to: P, reason: DenyReason) {
        self.actions.push_back(FloorAction::Deny { to, reason });
    }

    /// Puts `who` in the queue after everyone of its priority or higher and
    /// announces its position and those of the requests now behind it. A
    /// member already queued is told its position again.
    fn enqueue(&mut self, now: Instant, who: P, priority: Priority) {
        if let Some(at) = self.queue.iter().position(|q| q.who == who) {
            self.actions.push_back(FloorAction::Queued {
                to: who,
                position: at + 1,
            });
            return;
        }
        if self.queue.len() >= self.config.max_queue {
            self.deny(who, DenyReason::Busy);
            return;
        }
        let at = self
            .queue
            .iter()
            .position(|q| q.priority < priority)
            .unwrap_or(self.queue.len());
        self.queue.insert(
            at,
            QueuedRequest {
                who,
                priority,
                expires: now + self.config.queue_timeout,
            },
        );
        self.announce_from(at);
    }

    /// Removes `who` from the queue, if there, and announces the moves.
    fn dequeue(&mut self, who: P) {
        if let Some(at) = self.queue.iter().position(|q| q.who == who) {
            self.queue.remove(at);
            self.announce_from(at);
        }
    }

    /// Floor Queue Position Info for every request from index `at` on.
    fn announce_from(&mut self, at: usize) {
        for (i, q) in self.queue.iter().enumerate().skip(at) {
            self.actions.push_back(FloorAction::Queued {
                to: q.who,
                position: i + 1,
            });
        }
    }

    /// Denies queued requests whose time is up.
    fn expire(&mut self, now: Instant) {
        while let Some(at) = self.queue.iter().position(|q| now >= q.expires) {
            let gone = self.queue.remove(at);
            self.deny(gone.who, DenyReason::QueueTimeout);
            self.announce_from(at);
        }
    }

    /// The holder is gone: grant the head of the queue, or go idle.
    fn next_or_idle(&mut self, now: Instant) {
        if self.queue.is_empty() {
            self.go_idle();
            return;
        }
        let next = self.queue.remove(0);
        self.grant(now, next.who, next.priority);
        self.announce_from(0);
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
            queue: false,
        }
    }

    fn setup() -> (Floor<u32>, Instant) {
        (
            Floor::new(FloorConfig {
                max_talk: Duration::from_secs(60),
                preemption: false,
                ..FloorConfig::default()
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
                queue: false,
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
                    reason: RevokeReason::MaxDurationExceeded,
                    by: None,
                },
                FloorAction::Idle
            ]
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn preemption_by_higher_priority_is_the_default() {
        let t = Instant::now();
        let mut f = Floor::new(FloorConfig {
            max_talk: Duration::from_secs(30),
            ..FloorConfig::default()
        });
        f.handle(
            t,
            FloorInput::Request {
                who: A,
                priority: Priority(1),
                queue: false,
            },
        );
        drain(&mut f);
        // Equal priority does not pre-empt.
        f.handle(
            t,
            FloorInput::Request {
                who: B,
                priority: Priority(1),
                queue: false,
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
                queue: false,
            },
        );
        assert_eq!(
            drain(&mut f),
            vec![
                FloorAction::Revoke {
                    holder: A,
                    reason: RevokeReason::Preempted,
                    by: Some(C),
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

    /// A floor held by A since `t`, with queued requests expiring after
    /// `queue_timeout`.
    fn held_by_a(queue_timeout: Duration) -> (Floor<u32>, Instant) {
        let t = Instant::now();
        let mut f = Floor::new(FloorConfig {
            queue_timeout,
            ..FloorConfig::default()
        });
        f.handle(t, req(A));
        drain(&mut f);
        (f, t)
    }

    fn queue_req(who: u32, priority: u8) -> FloorInput<u32> {
        FloorInput::Request {
            who,
            priority: Priority(priority),
            queue: true,
        }
    }

    fn queued(to: u32, position: usize) -> FloorAction<u32> {
        FloorAction::Queued { to, position }
    }

    fn granted_and_taken(to: u32, priority: u8) -> [FloorAction<u32>; 2] {
        [
            FloorAction::Granted {
                to,
                max_duration: Duration::from_secs(60),
            },
            FloorAction::Taken {
                holder: to,
                priority: Priority(priority),
            },
        ]
    }

    #[test]
    fn queued_requests_are_granted_in_turn_when_the_holder_releases() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t, queue_req(B, 0));
        assert_eq!(drain(&mut f), vec![queued(B, 1)]);
        f.handle(t, queue_req(C, 0));
        assert_eq!(
            drain(&mut f),
            vec![queued(C, 2)],
            "same priority: arrival order"
        );
        // Asking again re-announces the place; nobody is queued twice.
        f.handle(t, queue_req(B, 0));
        assert_eq!(drain(&mut f), vec![queued(B, 1)]);
        assert_eq!(f.queue().len(), 2);

        let t1 = t + Duration::from_secs(3);
        f.handle(t1, FloorInput::Release { who: A });
        let mut want = granted_and_taken(B, 0).to_vec();
        want.push(queued(C, 1));
        assert_eq!(drain(&mut f), want, "no Floor Idle between holders");
        assert_eq!(f.holder(), Some(B));
        f.handle(t1, FloorInput::Left { who: B });
        assert_eq!(drain(&mut f), granted_and_taken(C, 0).to_vec());
        f.handle(t1, FloorInput::Release { who: C });
        assert_eq!(drain(&mut f), vec![FloorAction::Idle]);
        assert!(f.queue().is_empty());
    }

    #[test]
    fn higher_priority_queues_ahead_and_those_behind_are_told_they_moved() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        f.handle(t, queue_req(B, 0));
        drain(&mut f);
        f.handle(t, queue_req(C, 5));
        assert_eq!(drain(&mut f), vec![queued(C, 1), queued(B, 2)]);
        let order: Vec<u32> = f.queue().iter().map(|q| q.who).collect();
        assert_eq!(order, [C, B]);
    }

    #[test]
    fn a_queued_member_cancels_with_release_or_by_leaving() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        f.handle(t, queue_req(B, 0));
        f.handle(t, queue_req(C, 0));
        drain(&mut f);
        f.handle(t, FloorInput::Release { who: B });
        assert_eq!(drain(&mut f), vec![queued(C, 1)]);
        f.handle(t, FloorInput::Left { who: C });
        assert_eq!(drain(&mut f), vec![]);
        assert!(f.queue().is_empty());
        assert_eq!(f.holder(), Some(A), "the holder is untouched");
        f.handle(t, FloorInput::Release { who: A });
        assert_eq!(drain(&mut f), vec![FloorAction::Idle]);
    }

    #[test]
    fn a_queued_request_expires_with_queue_timeout() {
        let (mut f, t) = held_by_a(Duration::from_secs(10));
        f.handle(t, queue_req(B, 0));
        f.handle(t + Duration::from_secs(4), queue_req(C, 0));
        drain(&mut f);
        assert_eq!(
            f.poll_timeout(),
            Some(t + Duration::from_secs(10)),
            "B's expiry"
        );
        f.handle(t + Duration::from_secs(9), FloorInput::Tick);
        assert_eq!(drain(&mut f), vec![], "not yet");
        f.handle(t + Duration::from_secs(10), FloorInput::Tick);
        assert_eq!(
            drain(&mut f),
            vec![
                FloorAction::Deny {
                    to: B,
                    reason: DenyReason::QueueTimeout
                },
                queued(C, 1)
            ]
        );
        assert_eq!(
            f.poll_timeout(),
            Some(t + Duration::from_secs(14)),
            "C's expiry"
        );
    }

    #[test]
    fn a_full_queue_denies_busy() {
        let t = Instant::now();
        let mut f = Floor::new(FloorConfig {
            max_queue: 1,
            preemption: false,
            ..FloorConfig::default()
        });
        f.handle(t, req(A));
        f.handle(t, queue_req(B, 0));
        drain(&mut f);
        f.handle(t, queue_req(C, 9));
        assert_eq!(
            drain(&mut f),
            vec![FloorAction::Deny {
                to: C,
                reason: DenyReason::Busy
            }]
        );
    }

    #[test]
    fn the_max_talk_revoke_hands_the_floor_to_the_queue() {
        let (mut f, t) = held_by_a(Duration::from_secs(120));
        f.handle(t + Duration::from_secs(1), queue_req(B, 0));
        drain(&mut f);
        let end = t + Duration::from_secs(60);
        assert_eq!(
            f.poll_timeout(),
            Some(end),
            "A's deadline comes before B's expiry"
        );
        f.handle(end, FloorInput::Tick);
        let mut want = vec![FloorAction::Revoke {
            holder: A,
            reason: RevokeReason::MaxDurationExceeded,
            by: None,
        }];
        want.extend(granted_and_taken(B, 0));
        assert_eq!(drain(&mut f), want);
        assert!(f.queue().is_empty());
    }

    #[test]
    fn a_queued_member_that_preempts_leaves_the_queue() {
        let t = Instant::now();
        let mut f = Floor::new(FloorConfig {
            preemption: true,
            ..FloorConfig::default()
        });
        f.handle(t, req(A));
        f.handle(t, queue_req(B, 0));
        f.handle(t, queue_req(C, 0));
        drain(&mut f);
        f.handle(t, queue_req(C, 3));
        // B stays first: nobody moved ahead of it, so it is not told again.
        let mut want = vec![FloorAction::Revoke {
            holder: A,
            reason: RevokeReason::Preempted,
            by: Some(C),
        }];
        want.extend(granted_and_taken(C, 3));
        assert_eq!(drain(&mut f), want);
        let order: Vec<u32> = f.queue().iter().map(|q| q.who).collect();
        assert_eq!(order, [B], "the pre-empted holder is not queued");
    }

    #[test]
    fn without_asking_to_queue_a_request_is_still_denied_busy() {
        let (mut f, t) = setup();
        f.handle(t, req(A));
        drain(&mut f);
        f.handle(t, req(B));
        assert_eq!(
            drain(&mut f),
            vec![FloorAction::Deny {
                to: B,
                reason: DenyReason::Busy
            }]
        );
        assert!(f.queue().is_empty());
    }
}
