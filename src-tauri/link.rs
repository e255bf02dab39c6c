//! The connection's life, as a pure state machine: the user's connect and
//! disconnect, the engine's attempts and their outcomes, a lost engine and
//! its reconnects, in; what the connection actor must do, out. No sockets,
//! no clocks, no engine: the actor (`connection.rs`) does the I/O and feeds
//! the outcomes back, and the jitter of each reconnect delay is passed in.
//!
//! Each connect the user makes is a *session*, numbered from 1. Everything
//! the actor reports carries its session, and the machine ignores what an
//! older session reports (an engine started for a session that was
//! replaced meanwhile is [`Action::Discard`]ed), so no generation counter
//! or lock fences the races.
//!
//! The reconnect schedule is [`crate::reconnect::Backoff`]'s, the browser
//! engine's (0.5 s, then 1 s, each ±20 %); a reconnect rejoins the channels
//! joined when the connection was lost.

use std::{collections::BTreeSet, time::Duration};

use squawk_protocol::ChannelName;

use crate::{
    events::{ConnectionState, UiError, UiErrorCode},
    reconnect::Backoff,
};

/// A connect's number: 1 for the first, one more for each later one.
pub type Session = u64;

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Link {
    /// No connection and none tried.
    #[default]
    Offline,
    /// The user's connect is being tried (sign-in, signaling, media); its
    /// outcome goes to the user, and a failure is final.
    Connecting {
        /// The connect's session.
        session: Session,
    },
    /// Connected: the engine runs.
    Online {
        /// The connect's session.
        session: Session,
        /// The channels joined now (from the server's Joined and Left).
        joined: BTreeSet<ChannelName>,
    },
    /// The engine was lost: waiting for the next attempt, or making it.
    Reconnecting {
        /// The connect's session.
        session: Session,
        /// The channels to rejoin.
        joined: BTreeSet<ChannelName>,
        /// The delays so far.
        backoff: Backoff,
        /// An attempt is under way (not waiting).
        trying: bool,
    },
}

impl Link {
    /// The session the link is in, if any.
    pub fn session(&self) -> Option<Session> {
        match self {
            Self::Offline => None,
            Self::Connecting { session }
            | Self::Online { session, .. }
            | Self::Reconnecting { session, .. } => Some(*session),
        }
    }
}

/// How an attempt to start the engine ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The engine runs (signaling and media up, the channels asked for).
    Connected,
    /// It failed, and trying again may help (the server is down, the
    /// network is out): why, for people.
    Failed(UiError),
    /// The credentials were refused (a wrong password, a spent refresh
    /// token, a disabled account): only the user can fix it; why, for
    /// people.
    Refused(UiError),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The user connects, into `channels`: a new session replaces any
    /// connection or attempt of an older one.
    Connect {
        /// The channels to join.
        channels: Vec<ChannelName>,
    },
    /// The user disconnects (or signs out).
    Disconnect,
    /// An attempt of `session` ended.
    Attempted {
        /// Whose.
        session: Session,
        /// How.
        outcome: Outcome,
    },
    /// The server says `session`'s engine joined `channel`.
    Joined {
        /// Whose.
        session: Session,
        /// Which channel.
        channel: ChannelName,
    },
    /// The server says `session`'s engine left `channel`.
    Left {
        /// Whose.
        session: Session,
        /// Which channel.
        channel: ChannelName,
    },
    /// `session`'s engine ended by itself (its events stopped): the
    /// connection was lost.
    Lost {
        /// Whose.
        session: Session,
    },
    /// The wait before `session`'s next attempt is over.
    RetryDue {
        /// Whose.
        session: Session,
    },
}

/// What the actor must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Close the engine it holds, if any (replaced, lost or disconnected).
    Close,
    /// Start an engine for `session`, joining `channels`; `first` for the
    /// user's own connect (its outcome is the user's answer), else a
    /// reconnect (signs in again with the saved refresh token when signed
    /// in). Its outcome comes back as [`Input::Attempted`].
    Attempt {
        /// Whose.
        session: Session,
        /// The channels to join.
        channels: Vec<ChannelName>,
        /// The user's connect, not a reconnect.
        first: bool,
    },
    /// Keep the engine the attempt started: it is the connection now.
    Adopt,
    /// Close the engine the attempt started: its session was replaced or
    /// disconnected meanwhile.
    Discard,
    /// Answer the user's connect of `session`: `Ok`, or why not.
    Answer {
        /// Whose.
        session: Session,
        /// Connected, or why not, for people.
        result: Result<(), UiError>,
    },
    /// Wait `delay`, then report [`Input::RetryDue`] for `session`.
    Wait {
        /// Whose.
        session: Session,
        /// How long.
        delay: Duration,
    },
    /// Tell the UI the connection's state (`connection` event).
    Say {
        /// The state.
        state: ConnectionState,
        /// With `Reconnecting`: the wait before the next attempt, ms.
        retry_in_ms: Option<u64>,
    },
    /// Stop reconnecting: the credentials were refused; why, for people
    /// (the UI shows the sign-in screen again).
    GiveUp(UiError),
}

/// The machine: the link and the next session's number.
#[derive(Debug, Clone, Default)]
pub struct LinkMachine {
    link: Link,
    last_session: Session,
}

impl LinkMachine {
    /// Offline, before the first connect.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the connection stands.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Handles `input`; `jitter` (`0.0..=1.0`) spreads a reconnect delay
    /// it schedules ([`Backoff::next`]). Returns the actions, in order.
    pub fn handle(&mut self, input: Input, jitter: f64) -> Vec<Action> {
        let current = self.link.session();
        match input {
            Input::Connect { channels } => {
                self.last_session += 1;
                let session = self.last_session;
                let mut out = vec![Action::Close];
                if let Link::Connecting { session: old } = self.link {
                    out.push(Action::Answer {
                        session: old,
                        result: Err(cancelled("replaced by a newer connect")),
                    });
                }
                self.link = Link::Connecting { session };
                out.push(Action::Attempt {
                    session,
                    channels,
                    first: true,
                });
                out
            }
            Input::Disconnect => {
                let mut out = vec![Action::Close];
                if let Link::Connecting { session } = self.link {
                    out.push(Action::Answer {
                        session,
                        result: Err(cancelled("disconnected")),
                    });
                }
                if self.link != Link::Offline {
                    out.push(say(ConnectionState::Offline, None));
                }
                self.link = Link::Offline;
                out
            }
            Input::Attempted { session, outcome } if Some(session) != current => match outcome {
                Outcome::Connected => vec![Action::Discard],
                Outcome::Failed(_) | Outcome::Refused(_) => vec![],
            },
            Input::Attempted { session, outcome } => self.attempted(session, outcome, jitter),
            Input::Joined { session, channel } if Some(session) == current => {
                if let Link::Online { joined, .. } = &mut self.link {
                    joined.insert(channel);
                }
                vec![]
            }
            Input::Left { session, channel } if Some(session) == current => {
                if let Link::Online { joined, .. } = &mut self.link {
                    joined.remove(&channel);
                }
                vec![]
            }
            Input::Lost { session } if Some(session) == current => {
                let Link::Online { joined, .. } = std::mem::take(&mut self.link) else {
                    return vec![];
                };
                let mut out = vec![Action::Close];
                out.extend(self.retry_later(session, joined, Backoff::new(), jitter));
                out
            }
            Input::RetryDue { session } if Some(session) == current => match &mut self.link {
                Link::Reconnecting { joined, trying, .. } if !*trying => {
                    *trying = true;
                    vec![
                        say(ConnectionState::Connecting, None),
                        Action::Attempt {
                            session,
                            channels: joined.iter().cloned().collect(),
                            first: false,
                        },
                    ]
                }
                _ => vec![],
            },
            Input::Joined { .. }
            | Input::Left { .. }
            | Input::Lost { .. }
            | Input::RetryDue { .. } => {
                vec![]
            }
        }
    }

    /// Waits for the next attempt of `session` on `backoff`'s schedule.
    fn retry_later(
        &mut self,
        session: Session,
        joined: BTreeSet<ChannelName>,
        mut backoff: Backoff,
        jitter: f64,
    ) -> [Action; 2] {
        let delay = backoff.next(jitter);
        self.link = Link::Reconnecting {
            session,
            joined,
            backoff,
            trying: false,
        };
        wait(session, delay)
    }

    /// The outcome of the current session's attempt.
    fn attempted(&mut self, session: Session, outcome: Outcome, jitter: f64) -> Vec<Action> {
        match (std::mem::take(&mut self.link), outcome) {
            (Link::Connecting { .. }, Outcome::Connected) => {
                self.link = Link::Online {
                    session,
                    joined: BTreeSet::new(),
                };
                vec![
                    Action::Adopt,
                    Action::Answer {
                        session,
                        result: Ok(()),
                    },
                ]
            }
            // The user's own connect fails plainly: no retries behind
            // their back, the error is the answer.
            (Link::Connecting { .. }, Outcome::Failed(why) | Outcome::Refused(why)) => vec![
                Action::Answer {
                    session,
                    result: Err(why),
                },
                say(ConnectionState::Offline, None),
            ],
            // The channels are joined again from the engine's Joined events.
            (Link::Reconnecting { .. }, Outcome::Connected) => {
                self.link = Link::Online {
                    session,
                    joined: BTreeSet::new(),
                };
                vec![Action::Adopt]
            }
            (
                Link::Reconnecting {
                    joined, backoff, ..
                },
                Outcome::Failed(_),
            ) => self.retry_later(session, joined, backoff, jitter).into(),
            (Link::Reconnecting { .. }, Outcome::Refused(why)) => {
                vec![Action::GiveUp(why), say(ConnectionState::Offline, None)]
            }
            // Online already: an attempt cannot end twice; keep the link.
            (link, outcome) => {
                self.link = link;
                match outcome {
                    Outcome::Connected => vec![Action::Discard],
                    _ => vec![],
                }
            }
        }
    }
}

/// A connect that the user's next connect or disconnect ended.
fn cancelled(why: &str) -> UiError {
    UiError::new(UiErrorCode::Cancelled, why)
}

fn say(state: ConnectionState, retry_in_ms: Option<u64>) -> Action {
    Action::Say { state, retry_in_ms }
}

/// Wait `delay` before `session`'s next attempt, and tell the UI so.
fn wait(session: Session, delay: Duration) -> [Action; 2] {
    [
        say(
            ConnectionState::Reconnecting,
            Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        ),
        Action::Wait { session, delay },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        name.parse().unwrap()
    }

    fn attempt(session: Session, channels: &[&str], first: bool) -> Action {
        Action::Attempt {
            session,
            channels: channels.iter().map(|c| ch(c)).collect(),
            first,
        }
    }

    fn reconnecting_in(ms: u64) -> Action {
        say(ConnectionState::Reconnecting, Some(ms))
    }

    /// Connected in session 1, joined into `ops` and `fire`.
    fn online() -> LinkMachine {
        let mut m = LinkMachine::new();
        m.handle(
            Input::Connect {
                channels: vec![ch("ops"), ch("fire")],
            },
            0.5,
        );
        m.handle(
            Input::Attempted {
                session: 1,
                outcome: Outcome::Connected,
            },
            0.5,
        );
        for c in ["ops", "fire"] {
            m.handle(
                Input::Joined {
                    session: 1,
                    channel: ch(c),
                },
                0.5,
            );
        }
        m
    }

    #[test]
    fn a_connect_attempts_then_adopts_the_engine_and_answers() {
        let mut m = LinkMachine::new();
        let out = m.handle(
            Input::Connect {
                channels: vec![ch("ops")],
            },
            0.5,
        );
        assert_eq!(out, [Action::Close, attempt(1, &["ops"], true)]);
        assert_eq!(m.link(), &Link::Connecting { session: 1 });
        let out = m.handle(
            Input::Attempted {
                session: 1,
                outcome: Outcome::Connected,
            },
            0.5,
        );
        assert_eq!(
            out,
            [
                Action::Adopt,
                Action::Answer {
                    session: 1,
                    result: Ok(())
                }
            ]
        );
        m.handle(
            Input::Joined {
                session: 1,
                channel: ch("ops"),
            },
            0.5,
        );
        assert_eq!(
            m.link(),
            &Link::Online {
                session: 1,
                joined: [ch("ops")].into()
            }
        );
    }

    #[test]
    fn a_failed_connect_is_the_answer_and_is_not_retried() {
        for outcome in [
            Outcome::Failed(UiError::new(UiErrorCode::Unreachable, "connection refused")),
            Outcome::Refused(UiError::new(
                UiErrorCode::Refused,
                "server password: wrong password",
            )),
        ] {
            let mut m = LinkMachine::new();
            m.handle(Input::Connect { channels: vec![] }, 0.5);
            let why = match &outcome {
                Outcome::Failed(w) | Outcome::Refused(w) => w.clone(),
                Outcome::Connected => unreachable!(),
            };
            let out = m.handle(
                Input::Attempted {
                    session: 1,
                    outcome,
                },
                0.5,
            );
            assert_eq!(
                out,
                [
                    Action::Answer {
                        session: 1,
                        result: Err(why)
                    },
                    say(ConnectionState::Offline, None)
                ]
            );
            assert_eq!(m.link(), &Link::Offline);
            assert_eq!(m.handle(Input::RetryDue { session: 1 }, 0.5), []);
        }
    }

    #[test]
    fn a_lost_connection_is_retried_on_the_backoff_and_rejoins_its_channels() {
        let mut m = online();
        m.handle(
            Input::Left {
                session: 1,
                channel: ch("fire"),
            },
            0.5,
        );
        m.handle(
            Input::Joined {
                session: 1,
                channel: ch("med"),
            },
            0.5,
        );
        let out = m.handle(Input::Lost { session: 1 }, 0.5);
        assert_eq!(
            out,
            [
                Action::Close,
                reconnecting_in(500),
                Action::Wait {
                    session: 1,
                    delay: Duration::from_millis(500)
                }
            ]
        );
        // The wait is over: one attempt into the channels joined when lost.
        let out = m.handle(Input::RetryDue { session: 1 }, 0.5);
        assert_eq!(
            out,
            [
                say(ConnectionState::Connecting, None),
                attempt(1, &["med", "ops"], false)
            ]
        );
        assert_eq!(
            m.handle(Input::RetryDue { session: 1 }, 0.5),
            [],
            "one attempt at a time"
        );
        // It fails: the next wait is a second (±20 % with the jitter).
        let failed = Input::Attempted {
            session: 1,
            outcome: Outcome::Failed(UiError::new(UiErrorCode::Unreachable, "connection refused")),
        };
        let out = m.handle(failed.clone(), 1.0);
        assert_eq!(
            out,
            [
                reconnecting_in(1200),
                Action::Wait {
                    session: 1,
                    delay: Duration::from_millis(1200)
                }
            ]
        );
        m.handle(Input::RetryDue { session: 1 }, 0.5);
        assert_eq!(m.handle(failed, 0.0)[0], reconnecting_in(800));
        // The server is back.
        let out = m.handle(Input::RetryDue { session: 1 }, 0.5);
        assert_eq!(out[1], attempt(1, &["med", "ops"], false));
        let out = m.handle(
            Input::Attempted {
                session: 1,
                outcome: Outcome::Connected,
            },
            0.5,
        );
        assert_eq!(out, [Action::Adopt], "no one waits for an answer");
        assert!(matches!(m.link(), Link::Online { session: 1, .. }));
        // Lost again: the schedule starts over.
        assert_eq!(
            m.handle(Input::Lost { session: 1 }, 0.5)[1],
            reconnecting_in(500)
        );
    }

    #[test]
    fn refused_credentials_on_a_reconnect_stop_it() {
        let mut m = online();
        m.handle(Input::Lost { session: 1 }, 0.5);
        m.handle(Input::RetryDue { session: 1 }, 0.5);
        let why = UiError::new(
            UiErrorCode::Refused,
            "the saved sign-in of ann is no longer valid: type the password",
        );
        let out = m.handle(
            Input::Attempted {
                session: 1,
                outcome: Outcome::Refused(why.clone()),
            },
            0.5,
        );
        assert_eq!(
            out,
            [Action::GiveUp(why), say(ConnectionState::Offline, None)]
        );
        assert_eq!(m.link(), &Link::Offline);
        assert_eq!(m.handle(Input::RetryDue { session: 1 }, 0.5), []);
    }

    #[test]
    fn a_disconnect_or_sign_out_ends_the_reconnects_and_a_late_engine_is_closed() {
        let mut m = online();
        m.handle(Input::Lost { session: 1 }, 0.5);
        m.handle(Input::RetryDue { session: 1 }, 0.5);
        let out = m.handle(Input::Disconnect, 0.5);
        assert_eq!(out, [Action::Close, say(ConnectionState::Offline, None)]);
        // The attempt under way succeeds after all: its engine is closed.
        let out = m.handle(
            Input::Attempted {
                session: 1,
                outcome: Outcome::Connected,
            },
            0.5,
        );
        assert_eq!(out, [Action::Discard]);
        assert_eq!(m.link(), &Link::Offline);
        assert_eq!(m.handle(Input::RetryDue { session: 1 }, 0.5), []);
        // Disconnecting when offline closes nothing new and says nothing.
        assert_eq!(m.handle(Input::Disconnect, 0.5), [Action::Close]);
    }

    #[test]
    fn a_newer_connect_replaces_the_older_and_its_reports_are_ignored() {
        let mut m = LinkMachine::new();
        m.handle(Input::Connect { channels: vec![] }, 0.5);
        let out = m.handle(
            Input::Connect {
                channels: vec![ch("b")],
            },
            0.5,
        );
        assert_eq!(
            out,
            [
                Action::Close,
                Action::Answer {
                    session: 1,
                    result: Err(cancelled("replaced by a newer connect"))
                },
                attempt(2, &["b"], true)
            ]
        );
        // The first attempt's engine arrives late: closed, not adopted.
        let late = Input::Attempted {
            session: 1,
            outcome: Outcome::Connected,
        };
        assert_eq!(m.handle(late, 0.5), [Action::Discard]);
        m.handle(
            Input::Attempted {
                session: 2,
                outcome: Outcome::Connected,
            },
            0.5,
        );
        for stale in [
            Input::Joined {
                session: 1,
                channel: ch("x"),
            },
            Input::Lost { session: 1 },
            Input::RetryDue { session: 1 },
        ] {
            assert_eq!(m.handle(stale, 0.5), []);
        }
        assert_eq!(
            m.link(),
            &Link::Online {
                session: 2,
                joined: BTreeSet::new()
            }
        );
        // A connect while online closes the running engine first.
        assert_eq!(
            m.handle(Input::Connect { channels: vec![] }, 0.5),
            [Action::Close, attempt(3, &[], true)]
        );
    }
}
