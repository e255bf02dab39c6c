//! The hub as a state machine: every client message kind, every worker
//! event, every refusal, on a clock passed in.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use squawk_protocol::{Priority, RevokeReason, ServerMessage as S};

use super::*;

const A: ClientId = 1;
const B: ClientId = 2;
const C: ClientId = 3;
const D: ClientId = 4;

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).unwrap()
}

struct T {
    hub: Hub,
    now: Instant,
}

impl T {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut HubConfig)) -> Self {
        let mut config = HubConfig {
            floor: FloorConfig {
                max_talk: Duration::from_secs(60),
                ..FloorConfig::default()
            },
            workers: 2,
            channels: vec![ch("lobby")],
            create_channels_on_join: true,
            max_channels_per_client: 4,
            max_members_per_channel: 100,
            emergency_priority: Duration::from_secs(300),
        };
        f(&mut config);
        Self {
            hub: Hub::new(config),
            now: Instant::now(),
        }
    }

    fn input(&mut self, input: HubInput) -> Vec<HubOutput> {
        self.hub.handle(self.now, input);
        std::iter::from_fn(|| self.hub.poll_output()).collect()
    }

    fn msg(&mut self, client: ClientId, msg: ClientMessage) -> Vec<HubOutput> {
        self.input(HubInput::Message { client, msg })
    }

    fn connect(&mut self, client: ClientId, name: &str) -> Vec<HubOutput> {
        self.input(HubInput::Connect {
            client,
            name: name.into(),
            identity: crate::accounts::Identity::Open,
            ice_servers: Vec::new(),
        })
    }

    /// Connects with media up.
    fn online(&mut self, client: ClientId, name: &str) {
        self.connect(client, name);
        self.msg(client, ClientMessage::Offer { sdp: "v=0".into() });
        self.input(HubInput::Worker(WorkerEvent::Link { client, up: true }));
    }

    /// Connects as the user `id` of the accounts directory, media up.
    fn signed_in(&mut self, client: ClientId, id: i64) {
        self.input(HubInput::Connect {
            client,
            name: format!("c{client}"),
            identity: crate::accounts::Identity::User { id },
            ice_servers: Vec::new(),
        });
        self.msg(client, ClientMessage::Offer { sdp: "v=0".into() });
        self.input(HubInput::Worker(WorkerEvent::Link { client, up: true }));
    }

    /// Connects each of `who` with media up and joins it to `channel`.
    fn members_of(&mut self, channel: &str, who: &[(ClientId, &str)]) {
        for &(client, name) in who {
            self.online(client, name);
            self.joined(client, channel);
        }
    }

    /// Joins and completes the join with the worker's track.
    fn joined(&mut self, client: ClientId, channel: &str) -> Vec<HubOutput> {
        let out = self.msg(
            client,
            ClientMessage::Join {
                channel: ch(channel),
            },
        );
        let (chan, token) = add_track(&out, client).expect("a track is asked for");
        let mut all = out;
        all.extend(self.input(HubInput::Worker(WorkerEvent::TrackReady {
            client,
            chan,
            mid: format!("m{chan:?}"),
            token,
        })));
        all
    }

    fn request(&mut self, client: ClientId, channel: &str) -> Vec<HubOutput> {
        self.msg(
            client,
            ClientMessage::FloorRequest {
                channel: ch(channel),
                priority: Priority(0),
                queue: false,
            },
        )
    }

    fn request_queued(&mut self, client: ClientId, channel: &str) -> Vec<HubOutput> {
        self.msg(
            client,
            ClientMessage::FloorRequest {
                channel: ch(channel),
                priority: Priority(0),
                queue: true,
            },
        )
    }
}

fn add_track(out: &[HubOutput], who: ClientId) -> Option<(ChanId, u64)> {
    out.iter().find_map(|o| match o {
        HubOutput::Worker {
            cmd:
                WorkerCmd::AddTrack {
                    client,
                    chan,
                    token,
                },
            ..
        } if *client == who => Some((*chan, *token)),
        _ => None,
    })
}

/// The messages sent to `who`, in order.
fn sent(out: &[HubOutput], who: ClientId) -> Vec<S> {
    out.iter()
        .filter_map(|o| match o {
            HubOutput::Send { client, msg } if *client == who => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn types(msgs: &[S]) -> Vec<&'static str> {
    msgs.iter().map(S::variant).collect()
}

fn routes(out: &[HubOutput]) -> Vec<RouteUpdate> {
    out.iter()
        .filter_map(|o| match o {
            HubOutput::Route(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn worker_cmds(out: &[HubOutput]) -> Vec<(usize, String)> {
    out.iter()
        .filter_map(|o| match o {
            HubOutput::Worker { worker, cmd } => Some((*worker, format!("{cmd:?}"))),
            _ => None,
        })
        .collect()
}

fn offer(t: &mut T, client: ClientId) -> Vec<HubOutput> {
    t.msg(client, ClientMessage::Offer { sdp: "v=0".into() })
}

#[test]
fn connect_welcomes_and_the_first_offer_homes_the_media_on_the_least_loaded_worker() {
    let mut t = T::new();
    let out = t.connect(A, "Ann");
    assert_eq!(
        sent(&out, A),
        vec![S::Welcome {
            version: PROTOCOL_VERSION,
            client_id: A,
            max_talk_ms: 60_000,
            ice_servers: Vec::new(),
        }]
    );
    assert!(worker_cmds(&out).is_empty(), "no worker before the offer");
    assert_eq!(
        worker_cmds(&offer(&mut t, A)),
        vec![
            (0, "AddPeer { client: 1 }".into()),
            (0, "Offer { client: 1, sdp: \"v=0\" }".into())
        ]
    );
    assert_eq!(
        worker_cmds(&offer(&mut t, A)),
        vec![(0, "Offer { client: 1, sdp: \"v=0\" }".into())],
        "a re-offer goes to the same worker"
    );
    t.connect(B, "Bo");
    assert_eq!(
        worker_cmds(&offer(&mut t, B))[0],
        (1, "AddPeer { client: 2 }".into())
    );
    t.input(HubInput::Disconnect { client: A });
    t.connect(C, "Cy");
    assert_eq!(
        worker_cmds(&offer(&mut t, C))[0].0,
        0,
        "the freed worker is the least loaded"
    );
    assert!(
        t.connect(C, "again").is_empty(),
        "a second connect is ignored"
    );
    t.connect(D, "Di");
    let out = t.msg(D, ClientMessage::Answer { sdp: "v=0".into() });
    assert!(worker_cmds(&out).is_empty());
    assert!(matches!(
        sent(&out, D)[..],
        [S::Error {
            code: ErrorCode::NegotiationFailed,
            ..
        }]
    ));
}

#[test]
fn a_connection_that_joins_before_its_offer_is_homed_with_its_channel() {
    let mut t = T::new();
    // Ann and Bo offer first: they go to workers 0 and 1.
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(B, "ops");
    // Cy joins ops and mutes it before offering: no worker is asked yet.
    t.connect(C, "Cy");
    let out = t.msg(C, ClientMessage::Join { channel: ch("ops") });
    assert!(worker_cmds(&out).is_empty());
    assert!(routes(&out).is_empty());
    let out = t.msg(
        C,
        ClientMessage::Mute {
            channel: ch("ops"),
            muted: true,
        },
    );
    assert!(routes(&out).is_empty());
    // Its offer homes it with Bo (worker 1) although worker 1 is as loaded
    // as worker 0, then hands over what waited, in order.
    let out = offer(&mut t, C);
    let cmds = worker_cmds(&out);
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(cmds[0], (1, "AddPeer { client: 3 }".into()));
    assert!(
        cmds[1].0 == 1 && cmds[1].1.starts_with("AddTrack { client: 3"),
        "{cmds:?}"
    );
    assert_eq!(cmds[2], (1, "Offer { client: 3, sdp: \"v=0\" }".into()));
    assert!(matches!(
        routes(&out)[..],
        [
            RouteUpdate::Listen {
                client: C,
                worker: 1,
                ..
            },
            RouteUpdate::Pause {
                client: C,
                worker: 1,
                paused: true,
                ..
            }
        ]
    ));
    let (chan, token) = add_track(&out, C).unwrap();
    let out = t.input(HubInput::Worker(WorkerEvent::TrackReady {
        client: C,
        chan,
        mid: "1".into(),
        token,
    }));
    assert_eq!(types(&sent(&out, C)), vec!["joined"]);
    // Leaving and disconnecting before any offer ask no worker for anything.
    t.connect(D, "Di");
    t.msg(D, ClientMessage::Join { channel: ch("ops") });
    let out = t.msg(D, ClientMessage::Leave { channel: ch("ops") });
    assert!(worker_cmds(&out).is_empty() && routes(&out).is_empty());
    t.msg(D, ClientMessage::Join { channel: ch("ops") });
    let out = t.input(HubInput::Disconnect { client: D });
    assert!(worker_cmds(&out).is_empty() && routes(&out).is_empty());
}

#[test]
fn join_is_complete_when_the_track_is_ready_and_presence_goes_as_deltas() {
    let mut t = T::new();
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(A, "ops");
    let out = t.msg(B, ClientMessage::Join { channel: ch("ops") });
    // Member at once: the others hear of it, the workers route to it.
    assert_eq!(
        sent(&out, A),
        vec![S::MemberJoined {
            channel: ch("ops"),
            members: vec![Member {
                id: B,
                name: "Bo".into()
            }]
        }]
    );
    assert!(sent(&out, B).is_empty(), "joined waits for the track");
    let (chan, token) = add_track(&out, B).unwrap();
    assert_eq!(
        routes(&out),
        vec![RouteUpdate::Listen {
            chan,
            client: B,
            worker: 1
        }]
    );
    // A third member joining now is not announced to B (not joined yet)...
    t.online(C, "Cy");
    let out = t.msg(C, ClientMessage::Join { channel: ch("ops") });
    assert_eq!(types(&sent(&out, A)), vec!["member_joined"]);
    assert!(sent(&out, B).is_empty());
    // ...but is in B's full list.
    let out = t.input(HubInput::Worker(WorkerEvent::TrackReady {
        client: B,
        chan,
        mid: "1".into(),
        token,
    }));
    let S::Joined {
        channel,
        mid,
        members,
    } = &sent(&out, B)[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!((channel.as_str(), mid.as_str()), ("ops", "1"));
    assert_eq!(
        members.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![A, B, C]
    );
}

#[test]
fn late_entry_gets_floor_taken_right_after_joined() {
    let mut t = T::new();
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(A, "ops");
    t.request(A, "ops");
    t.now += Duration::from_millis(2500);
    let out = t.joined(B, "ops");
    assert_eq!(
        sent(&out, B)[1..],
        [S::FloorTaken {
            channel: ch("ops"),
            talker: A,
            talker_name: "Ann".into(),
            priority: Priority(0),
            held_ms: 2500,
        }]
    );
    assert_eq!(types(&sent(&out, B)), vec!["joined", "floor_taken"]);
}

#[test]
fn floor_request_release_and_what_each_member_sees() {
    let mut t = T::new();
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.connect(C, "Cy");
    offer(&mut t, C); // offered, but its media is not up yet
    t.joined(A, "ops");
    t.joined(B, "ops");
    t.joined(C, "ops");
    let out = t.request(C, "ops");
    assert_eq!(
        sent(&out, C),
        vec![S::FloorDeny {
            channel: ch("ops"),
            reason: DenyReason::NoMedia
        }]
    );
    let out = t.request(A, "nope");
    assert_eq!(
        sent(&out, A),
        vec![S::FloorDeny {
            channel: ch("nope"),
            reason: DenyReason::NotMember
        }]
    );
    let out = t.request(A, "ops");
    // The route, then what A sent since its press (held by the SFU) is
    // forwarded: the grant answers its request.
    let chan = match routes(&out)[..] {
        [
            RouteUpdate::Talker { chan, talker },
            RouteUpdate::Held {
                client: A,
                forward: true,
            },
        ] => {
            assert_eq!(talker, Some(A));
            chan
        }
        ref r => panic!("{r:?}"),
    };
    assert_eq!(types(&sent(&out, A)), vec!["floor_granted"]);
    assert_eq!(types(&sent(&out, B)), vec!["floor_taken"]);
    assert_eq!(types(&sent(&out, C)), vec!["floor_taken"]);
    let out = t.request(B, "ops");
    assert_eq!(
        sent(&out, B),
        vec![S::FloorDeny {
            channel: ch("ops"),
            reason: DenyReason::Busy
        }]
    );
    assert_eq!(
        routes(&out),
        vec![RouteUpdate::Held {
            client: B,
            forward: false
        }],
        "denied: what B sent is dropped"
    );
    let out = t.msg(B, ClientMessage::FloorRelease { channel: ch("ops") });
    assert!(out.is_empty(), "a non-holder's release changes nothing");
    let out = t.msg(A, ClientMessage::FloorRelease { channel: ch("ops") });
    assert_eq!(
        routes(&out),
        vec![RouteUpdate::Talker { chan, talker: None }]
    );
    for who in [A, B, C] {
        assert_eq!(types(&sent(&out, who)), vec!["floor_idle"]);
    }
    let out = t.msg(A, ClientMessage::FloorRelease { channel: ch("x") });
    assert_eq!(types(&sent(&out, A)), vec!["error"]);
}

#[test]
fn a_queued_request_is_told_its_place_and_granted_when_the_holder_releases() {
    let mut t = T::new();
    t.members_of("ops", &[(A, "Ann"), (B, "Bo"), (C, "Cy")]);
    t.request(A, "ops");
    let out = t.request_queued(B, "ops");
    assert_eq!(
        sent(&out, B),
        vec![S::FloorQueued {
            channel: ch("ops"),
            position: 1
        }]
    );
    assert_eq!(
        routes(&out),
        vec![RouteUpdate::Held {
            client: B,
            forward: false
        }],
        "queueing moves no media, and drops what B sent"
    );
    t.request_queued(C, "ops");
    // A releases: B is granted at once (no Floor Idle between), C moves up.
    // What B said while queued is not forwarded: the grant is not the
    // answer to a press just made.
    let out = t.msg(A, ClientMessage::FloorRelease { channel: ch("ops") });
    assert!(
        matches!(
            routes(&out)[..],
            [
                RouteUpdate::Talker {
                    talker: Some(B),
                    ..
                },
                RouteUpdate::Held {
                    client: B,
                    forward: false
                },
                RouteUpdate::Held {
                    client: C,
                    forward: false
                },
            ]
        ),
        "{:?}",
        routes(&out)
    );
    assert_eq!(types(&sent(&out, B)), vec!["floor_granted"]);
    assert_eq!(types(&sent(&out, A)), vec!["floor_taken"]);
    assert_eq!(
        sent(&out, C),
        vec![
            S::FloorTaken {
                channel: ch("ops"),
                talker: B,
                talker_name: "Bo".into(),
                priority: Priority(0),
                held_ms: 0
            },
            S::FloorQueued {
                channel: ch("ops"),
                position: 1
            }
        ]
    );
    // C gives up waiting: a queued member's Floor Release cancels.
    let out = t.msg(C, ClientMessage::FloorRelease { channel: ch("ops") });
    assert!(out.is_empty(), "{out:?}");
    let out = t.msg(B, ClientMessage::FloorRelease { channel: ch("ops") });
    for who in [A, B, C] {
        assert_eq!(types(&sent(&out, who)), vec!["floor_idle"]);
    }
}

#[test]
fn a_queued_request_times_out_on_the_clock_passed_in() {
    let mut t = T::with(|c| c.floor.queue_timeout = Duration::from_secs(10));
    t.members_of("ops", &[(A, "Ann"), (B, "Bo")]);
    t.request(A, "ops");
    let queued_at = t.now;
    t.request_queued(B, "ops");
    assert_eq!(
        t.hub.poll_timeout(),
        Some(queued_at + Duration::from_secs(10)),
        "the queue expiry comes before A's 60 s"
    );
    t.now += Duration::from_secs(10);
    let out = t.input(HubInput::Timeout);
    assert_eq!(
        sent(&out, B),
        vec![S::FloorDeny {
            channel: ch("ops"),
            reason: DenyReason::QueueTimeout
        }]
    );
    assert!(sent(&out, A).is_empty(), "A still talks");
    assert_eq!(
        t.hub.poll_timeout(),
        Some(queued_at + Duration::from_secs(60))
    );
}

#[test]
fn talk_time_runs_out_on_the_clock_passed_in() {
    let mut t = T::with(|c| c.floor.max_talk = Duration::from_secs(5));
    t.members_of("ops", &[(A, "Ann"), (B, "Bo")]);
    let granted_at = t.now;
    t.request(A, "ops");
    assert_eq!(
        t.hub.poll_timeout(),
        Some(granted_at + Duration::from_secs(5))
    );
    t.now += Duration::from_secs(4);
    assert!(t.input(HubInput::Timeout).is_empty(), "not due yet");
    t.now += Duration::from_secs(1);
    let out = t.input(HubInput::Timeout);
    assert_eq!(
        sent(&out, A),
        vec![
            S::FloorRevoke {
                channel: ch("ops"),
                reason: RevokeReason::MaxDurationExceeded,
                by: None,
            },
            S::FloorIdle { channel: ch("ops") }
        ]
    );
    assert_eq!(types(&sent(&out, B)), vec!["floor_idle"]);
    assert_eq!(t.hub.poll_timeout(), None);
}

#[test]
fn a_holder_that_disconnects_frees_the_floor_for_the_others_only() {
    let mut t = T::new();
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(A, "ops");
    t.joined(B, "ops");
    t.request(A, "ops");
    let out = t.input(HubInput::Disconnect { client: A });
    // Found by the `session` fuzz target: Floor Idle went to A too.
    assert!(sent(&out, A).is_empty(), "A is gone: {:?}", sent(&out, A));
    assert_eq!(types(&sent(&out, B)), vec!["floor_idle", "member_left"]);
}

#[test]
fn leave_tells_the_leaver_the_workers_and_the_rest_and_frees_the_floor() {
    let mut t = T::new();
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(A, "ops");
    t.joined(B, "ops");
    t.request(A, "ops");
    let out = t.msg(A, ClientMessage::Leave { channel: ch("ops") });
    assert_eq!(
        types(&sent(&out, A)),
        vec!["floor_idle", "left"],
        "the holder hears its floor go idle, then left"
    );
    assert_eq!(
        sent(&out, B),
        vec![
            S::FloorIdle { channel: ch("ops") },
            S::MemberLeft {
                channel: ch("ops"),
                ids: vec![A]
            }
        ]
    );
    let cmds = worker_cmds(&out);
    assert!(
        cmds.iter()
            .any(|(w, c)| *w == 0 && c.starts_with("RemoveTrack")),
        "{cmds:?}"
    );
    assert!(matches!(
        routes(&out)[..],
        [
            RouteUpdate::Talker { talker: None, .. },
            RouteUpdate::Unlisten {
                client: A,
                worker: 0,
                ..
            }
        ]
    ));
    let out = t.msg(A, ClientMessage::Leave { channel: ch("ops") });
    assert_eq!(types(&sent(&out, A)), vec!["error"]);
    // The last member out of a channel created by a join drops it...
    let out = t.msg(B, ClientMessage::Leave { channel: ch("ops") });
    assert!(matches!(
        routes(&out).last(),
        Some(RouteUpdate::DropChannel { .. })
    ));
    // ...but a configured channel stays.
    t.joined(B, "lobby");
    let out = t.msg(
        B,
        ClientMessage::Leave {
            channel: ch("lobby"),
        },
    );
    assert!(
        !routes(&out)
            .iter()
            .any(|r| matches!(r, RouteUpdate::DropChannel { .. }))
    );
    let out = t.msg(A, ClientMessage::ListChannels);
    assert_eq!(
        sent(&out, A),
        vec![S::Channels {
            channels: vec![ChannelInfo {
                name: ch("lobby"),
                members: 0,
                fixed: true
            }]
        }]
    );
}

#[test]
fn a_disconnected_holder_or_one_without_media_frees_the_floor() {
    let mut t = T::new();
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(A, "ops");
    t.joined(B, "ops");
    t.request(A, "ops");
    let out = t.input(HubInput::Worker(WorkerEvent::Link {
        client: A,
        up: false,
    }));
    assert_eq!(types(&sent(&out, B)), vec!["floor_idle"]);
    let out = t.request(A, "ops");
    assert_eq!(
        types(&sent(&out, A)),
        vec!["floor_deny"],
        "no media, no floor"
    );
    t.request(B, "ops");
    let out = t.input(HubInput::Disconnect { client: B });
    assert_eq!(
        sent(&out, A),
        vec![
            S::FloorIdle { channel: ch("ops") },
            S::MemberLeft {
                channel: ch("ops"),
                ids: vec![B]
            }
        ]
    );
    assert!(worker_cmds(&out).contains(&(1, "RemovePeer { client: 2 }".into())));
    assert!(t.msg(B, ClientMessage::ListChannels).is_empty(), "gone");
}

#[test]
fn limits_refuse_with_their_codes_and_change_nothing() {
    let mut t = T::with(|c| {
        c.max_channels_per_client = 1;
        c.max_members_per_channel = 1;
        c.create_channels_on_join = false;
        c.channels = vec![ch("a"), ch("b")];
    });
    t.online(A, "Ann");
    t.online(B, "Bo");
    t.joined(A, "a");
    let code = |out: &[HubOutput], who| match &sent(out, who)[..] {
        [S::Error { code, .. }] => *code,
        other => panic!("{other:?}"),
    };
    let out = t.msg(A, ClientMessage::Join { channel: ch("b") });
    assert_eq!(code(&out, A), ErrorCode::TooManyChannels);
    let out = t.msg(B, ClientMessage::Join { channel: ch("a") });
    assert_eq!(code(&out, B), ErrorCode::ChannelFull);
    assert!(sent(&out, A).is_empty(), "nobody hears of a refused join");
    let out = t.msg(B, ClientMessage::Join { channel: ch("zz") });
    assert_eq!(code(&out, B), ErrorCode::ChannelNotFound);
    let out = t.msg(A, ClientMessage::ListChannels);
    let S::Channels { channels } = &sent(&out, A)[0] else {
        panic!()
    };
    assert_eq!(channels.len(), 2, "no channel created by a refused join");
}

#[test]
fn stale_track_reports_and_repeated_joins() {
    let mut t = T::new();
    t.online(A, "Ann");
    let out = t.msg(A, ClientMessage::Join { channel: ch("ops") });
    let (chan, token) = add_track(&out, A).unwrap();
    assert!(
        t.msg(A, ClientMessage::Join { channel: ch("ops") })
            .is_empty(),
        "joined is on its way"
    );
    t.msg(A, ClientMessage::Leave { channel: ch("ops") });
    let out = t.msg(A, ClientMessage::Join { channel: ch("ops") });
    let (chan2, token2) = add_track(&out, A).unwrap();
    let stale = t.input(HubInput::Worker(WorkerEvent::TrackReady {
        client: A,
        chan,
        mid: "0".into(),
        token,
    }));
    assert!(stale.is_empty(), "the first join's report is stale");
    let out = t.input(HubInput::Worker(WorkerEvent::TrackReady {
        client: A,
        chan: chan2,
        mid: "0".into(),
        token: token2,
    }));
    assert_eq!(types(&sent(&out, A)), vec!["joined"]);
    // Join again once joined: the full list again (a resync).
    let out = t.msg(A, ClientMessage::Join { channel: ch("ops") });
    assert_eq!(types(&sent(&out, A)), vec!["joined"]);
    assert!(add_track(&out, A).is_none());
}

#[test]
fn sdp_and_errors_pass_between_client_and_worker() {
    let mut t = T::new();
    t.connect(A, "Ann");
    let out = t.msg(A, ClientMessage::Offer { sdp: "o".into() });
    assert_eq!(
        worker_cmds(&out),
        vec![
            (0, "AddPeer { client: 1 }".into()),
            (0, r#"Offer { client: 1, sdp: "o" }"#.into())
        ]
    );
    let out = t.msg(A, ClientMessage::Answer { sdp: "a".into() });
    assert_eq!(
        worker_cmds(&out),
        vec![(0, r#"Answer { client: 1, sdp: "a" }"#.into())]
    );
    for (event, want) in [
        (
            WorkerEvent::Answer {
                client: A,
                sdp: "x".into(),
            },
            S::Answer { sdp: "x".into() },
        ),
        (
            WorkerEvent::Offer {
                client: A,
                sdp: "y".into(),
            },
            S::Offer { sdp: "y".into() },
        ),
        (
            WorkerEvent::Error {
                client: A,
                code: ErrorCode::InvalidSdp,
                message: "bad".into(),
            },
            S::error(ErrorCode::InvalidSdp, "bad"),
        ),
    ] {
        assert_eq!(sent(&t.input(HubInput::Worker(event)), A), vec![want]);
    }
    let out = t.msg(
        A,
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            name: "x".into(),
            password: None,
            token: None,
        },
    );
    assert!(matches!(
        &sent(&out, A)[..],
        [S::Error {
            code: ErrorCode::AlreadyIdentified,
            ..
        }]
    ));
    // Events for connections that are gone are ignored.
    t.input(HubInput::Disconnect { client: A });
    assert!(
        t.input(HubInput::Worker(WorkerEvent::Link {
            client: A,
            up: true
        }))
        .is_empty()
    );
}

fn member(id: ClientId, name: &str) -> Member {
    Member {
        id,
        name: name.into(),
    }
}

#[test]
fn a_higher_priority_request_preempts_and_the_holder_learns_by_whom() {
    let mut t = T::new();
    t.members_of("ops", &[(A, "Ann"), (B, "Bo")]);
    t.request(A, "ops");
    let out = t.msg(
        B,
        ClientMessage::FloorRequest {
            channel: ch("ops"),
            priority: Priority::HIGH,
            queue: false,
        },
    );
    assert_eq!(
        sent(&out, A)[0],
        S::FloorRevoke {
            channel: ch("ops"),
            reason: RevokeReason::Preempted,
            by: Some(member(B, "Bo")),
        }
    );
    assert_eq!(types(&sent(&out, B)), vec!["floor_granted"]);
    // The SFU stops A's media before it opens B's.
    let r = routes(&out);
    let cut = r
        .iter()
        .position(|u| matches!(u, RouteUpdate::Talker { talker: None, .. }));
    let open = r.iter().position(|u| {
        matches!(
            u,
            RouteUpdate::Talker {
                talker: Some(B),
                ..
            }
        )
    });
    assert!(cut.is_some() && cut < open, "{r:?}");
}

#[test]
fn an_emergency_reaches_every_member_is_acknowledged_and_cancelled() {
    let mut t = T::new();
    t.members_of("ops", &[(A, "Ann"), (B, "Bo"), (C, "Cy")]);
    let out = t.msg(B, ClientMessage::Emergency { channel: ch("ops") });
    let raised = S::Emergency {
        channel: ch("ops"),
        originator: member(B, "Bo"),
        age_ms: 0,
        acked_by: None,
    };
    for who in [A, B, C] {
        assert_eq!(sent(&out, who), vec![raised.clone()], "to {who}");
    }
    // Raising again repeats the state to the sender only.
    t.now += Duration::from_secs(2);
    let out = t.msg(B, ClientMessage::Emergency { channel: ch("ops") });
    assert_eq!(types(&sent(&out, B)), vec!["emergency"]);
    assert!(sent(&out, A).is_empty());
    // A dispatcher acknowledges; a second acknowledgement changes nothing.
    let out = t.msg(
        A,
        ClientMessage::EmergencyAck {
            channel: ch("ops"),
            originator: B,
        },
    );
    let ack = S::EmergencyAck {
        channel: ch("ops"),
        originator: B,
        by: member(A, "Ann"),
    };
    for who in [A, B, C] {
        assert_eq!(sent(&out, who), vec![ack.clone()], "to {who}");
    }
    let again = t.msg(
        C,
        ClientMessage::EmergencyAck {
            channel: ch("ops"),
            originator: B,
        },
    );
    assert!(again.is_empty());
    // Only the originator cancels while it is a member.
    let out = t.msg(
        A,
        ClientMessage::EmergencyCancel {
            channel: ch("ops"),
            originator: Some(B),
        },
    );
    assert!(
        matches!(
            &sent(&out, A)[..],
            [S::Error {
                code: ErrorCode::NotOriginator,
                ..
            }]
        ),
        "{out:?}"
    );
    let out = t.msg(
        B,
        ClientMessage::EmergencyCancel {
            channel: ch("ops"),
            originator: None,
        },
    );
    assert_eq!(
        sent(&out, C),
        vec![S::EmergencyCancel {
            channel: ch("ops"),
            originator: B,
            by: member(B, "Bo"),
        }]
    );
    let out = t.msg(
        A,
        ClientMessage::EmergencyAck {
            channel: ch("ops"),
            originator: B,
        },
    );
    assert!(
        matches!(
            &sent(&out, A)[..],
            [S::Error {
                code: ErrorCode::NoEmergency,
                ..
            }]
        ),
        "{out:?}"
    );
}

#[test]
fn a_late_joiner_gets_the_active_emergency_after_joined() {
    let mut t = T::new();
    t.members_of("ops", &[(A, "Ann"), (B, "Bo")]);
    t.msg(B, ClientMessage::Emergency { channel: ch("ops") });
    t.msg(
        A,
        ClientMessage::EmergencyAck {
            channel: ch("ops"),
            originator: B,
        },
    );
    t.now += Duration::from_millis(1500);
    t.online(C, "Cy");
    let out = t.joined(C, "ops");
    let to_c = sent(&out, C);
    assert_eq!(types(&to_c), vec!["joined", "emergency"]);
    assert_eq!(
        to_c[1],
        S::Emergency {
            channel: ch("ops"),
            originator: member(B, "Bo"),
            age_ms: 1500,
            acked_by: Some(member(A, "Ann")),
        }
    );
}

#[test]
fn the_originator_talks_at_emergency_priority_for_the_configured_time() {
    let mut t = T::with(|c| c.emergency_priority = Duration::from_secs(10));
    t.members_of("ops", &[(A, "Ann"), (B, "Bo"), (C, "Cy")]);
    // A dispatcher talks at high priority; B raises an emergency and
    // presses (asking for normal priority): it pre-empts.
    t.msg(
        A,
        ClientMessage::FloorRequest {
            channel: ch("ops"),
            priority: Priority::HIGH,
            queue: false,
        },
    );
    t.msg(B, ClientMessage::Emergency { channel: ch("ops") });
    let out = t.request(B, "ops");
    assert!(
        matches!(
            &sent(&out, C)[..],
            [S::FloorTaken {
                talker: B,
                priority: Priority::EMERGENCY,
                ..
            }]
        ),
        "{out:?}"
    );
    t.msg(B, ClientMessage::FloorRelease { channel: ch("ops") });
    // After the emergency time the alert stays, the priority does not.
    t.now += Duration::from_secs(10);
    t.request(A, "ops");
    let out = t.request(B, "ops");
    assert_eq!(
        sent(&out, B),
        vec![S::FloorDeny {
            channel: ch("ops"),
            reason: DenyReason::Busy
        }]
    );
}

#[test]
fn the_originator_gone_anyone_may_cancel() {
    let mut t = T::new();
    t.members_of("ops", &[(A, "Ann"), (B, "Bo")]);
    t.msg(B, ClientMessage::Emergency { channel: ch("ops") });
    t.input(HubInput::Disconnect { client: B });
    let out = t.msg(
        A,
        ClientMessage::EmergencyCancel {
            channel: ch("ops"),
            originator: Some(B),
        },
    );
    assert_eq!(types(&sent(&out, A)), vec!["emergency_cancel"]);
}

#[test]
fn emergency_and_mute_need_membership() {
    let mut t = T::new();
    t.online(A, "Ann");
    for msg in [
        ClientMessage::Emergency { channel: ch("ops") },
        ClientMessage::Mute {
            channel: ch("lobby"),
            muted: true,
        },
    ] {
        let out = t.msg(A, msg);
        assert!(
            matches!(
                &sent(&out, A)[..],
                [S::Error {
                    code: ErrorCode::NotMember,
                    ..
                }]
            ),
            "{out:?}"
        );
        assert!(routes(&out).is_empty());
    }
}

#[test]
fn mute_pauses_the_downlink_at_the_sfu_once() {
    let mut t = T::new();
    t.members_of("ops", &[(A, "Ann")]);
    let mute = |muted| ClientMessage::Mute {
        channel: ch("ops"),
        muted,
    };
    let out = t.msg(A, mute(true));
    assert_eq!(
        sent(&out, A),
        vec![S::Muted {
            channel: ch("ops"),
            muted: true
        }]
    );
    let paused: Vec<_> = routes(&out)
        .into_iter()
        .filter(|r| {
            matches!(
                r,
                RouteUpdate::Pause {
                    paused: true,
                    client: A,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(paused.len(), 1);
    // Muting again is answered but changes no route.
    let out = t.msg(A, mute(true));
    assert!(routes(&out).is_empty());
    assert_eq!(types(&sent(&out, A)), vec!["muted"]);
    let out = t.msg(A, mute(false));
    assert!(matches!(
        &routes(&out)[..],
        [RouteUpdate::Pause {
            paused: false,
            client: A,
            ..
        }]
    ));
}

fn patch(t: &mut T, who: ClientId, chans: &[&str]) -> Vec<HubOutput> {
    t.msg(
        who,
        ClientMessage::Patch {
            channels: chans.iter().map(|c| ch(c)).collect(),
        },
    )
}

fn talkers(out: &[HubOutput]) -> Vec<(ChanId, Option<ClientId>)> {
    routes(out)
        .into_iter()
        .filter_map(|r| match r {
            RouteUpdate::Talker { chan, talker } => Some((chan, talker)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_patch_shares_one_floor_and_the_talker_is_heard_in_every_channel() {
    let mut t = T::new();
    t.members_of("x", &[(A, "Ann")]);
    t.members_of("y", &[(B, "Bo")]);
    t.members_of("x", &[(C, "Di")]);
    t.joined(C, "y");
    let out = patch(&mut t, C, &["x", "y"]);
    let patched = S::Patched {
        channels: vec![ch("x"), ch("y")],
        by: member(C, "Di"),
    };
    for who in [A, B, C] {
        assert_eq!(
            sent(&out, who),
            vec![patched.clone()],
            "once each, to {who}"
        );
    }
    // A talks in x: B, in y, hears it; the routers send A's audio to both.
    let out = t.request(A, "x");
    assert_eq!(types(&sent(&out, A)), vec!["floor_granted"]);
    assert!(matches!(
        &sent(&out, B)[..],
        [S::FloorTaken { channel, talker: A, .. }] if *channel == ch("y")
    ));
    let to: Vec<_> = talkers(&out).into_iter().map(|(_, t)| t).collect();
    assert_eq!(to, vec![Some(A), Some(A)], "a route per channel");
    // One floor: B is busy in y.
    let out = t.request(B, "y");
    assert_eq!(
        sent(&out, B),
        vec![S::FloorDeny {
            channel: ch("y"),
            reason: DenyReason::Busy
        }]
    );
    let out = t.msg(A, ClientMessage::FloorRelease { channel: ch("x") });
    assert_eq!(sent(&out, B), vec![S::FloorIdle { channel: ch("y") }]);
    assert_eq!(
        types(&sent(&out, C)),
        vec!["floor_idle", "floor_idle"],
        "one per channel it is in"
    );
    // Split: each channel has its own floor again.
    let out = t.msg(B, ClientMessage::Unpatch { channel: ch("y") });
    assert_eq!(types(&sent(&out, A)), vec!["unpatched"]);
    t.request(A, "x");
    let out = t.request(B, "y");
    assert_eq!(types(&sent(&out, B)), vec!["floor_granted"]);
}

#[test]
fn patching_during_a_talk_carries_it_into_every_channel() {
    let mut t = T::new();
    t.members_of("x", &[(A, "Ann")]);
    t.members_of("y", &[(B, "Bo")]);
    t.members_of("y", &[(C, "Di")]);
    t.joined(C, "x");
    t.request(A, "x");
    t.now += Duration::from_secs(2);
    let out = patch(&mut t, C, &["y", "x"]);
    assert!(
        matches!(
            &sent(&out, B)[..],
            [
                S::Patched { .. },
                S::FloorTaken {
                    talker: A,
                    held_ms: 2000,
                    ..
                }
            ]
        ),
        "{out:?}"
    );
    assert_eq!(talkers(&out).len(), 1, "y gets A's route: {out:?}");
    // The lead is x (where the talk is): x's floor serves y's requests.
    let out = t.request(B, "y");
    assert_eq!(types(&sent(&out, B)), vec!["floor_deny"]);
    let out = t.msg(C, ClientMessage::Unpatch { channel: ch("x") });
    assert!(
        matches!(
            &sent(&out, C)[..],
            [S::Error {
                code: ErrorCode::FloorBusy,
                ..
            }]
        ),
        "no unpatch while someone talks: {out:?}"
    );
}

#[test]
fn patch_refusals_have_their_codes() {
    let mut t = T::new();
    t.members_of("x", &[(A, "Ann")]);
    t.members_of("y", &[(B, "Bo")]);
    t.joined(A, "y");
    t.joined(A, "lobby");
    t.members_of("z", &[(C, "Cy")]);
    t.joined(A, "z");
    let code = |out: &[HubOutput]| match &sent(out, A)[..] {
        [S::Error { code, .. }] => Some(*code),
        _ => None,
    };
    assert_eq!(
        code(&patch(&mut t, A, &["x", "x"])),
        Some(ErrorCode::InvalidPatch)
    );
    assert_eq!(
        code(&patch(&mut t, A, &["x", "q"])),
        Some(ErrorCode::NotMember)
    );
    let out = t.msg(A, ClientMessage::Unpatch { channel: ch("x") });
    assert_eq!(code(&out), Some(ErrorCode::NotPatched));
    t.request(B, "y");
    t.request(C, "z");
    assert_eq!(
        code(&patch(&mut t, A, &["y", "z"])),
        Some(ErrorCode::FloorBusy)
    );
    // y's talk goes on, now heard in x too.
    assert_eq!(
        types(&sent(&patch(&mut t, A, &["x", "y"]), A)),
        vec!["patched", "floor_taken"]
    );
    assert_eq!(
        code(&patch(&mut t, A, &["lobby", "y"])),
        Some(ErrorCode::AlreadyPatched)
    );
}

#[test]
fn a_patched_channel_outlives_its_members_and_a_joiner_learns_of_the_patch() {
    let mut t = T::new();
    t.members_of("x", &[(A, "Ann")]);
    t.members_of("y", &[(B, "Bo")]);
    t.joined(A, "y");
    patch(&mut t, A, &["x", "y"]);
    let out = t.input(HubInput::Disconnect { client: B });
    assert!(
        !routes(&out)
            .iter()
            .any(|r| matches!(r, RouteUpdate::DropChannel { .. })),
        "y stays while patched"
    );
    t.online(C, "Cy");
    let out = t.joined(C, "y");
    assert_eq!(types(&sent(&out, C)), vec!["joined", "patched"]);
    t.msg(C, ClientMessage::Leave { channel: ch("y") });
    let out = t.msg(A, ClientMessage::Leave { channel: ch("y") });
    assert!(
        routes(&out)
            .iter()
            .all(|r| !matches!(r, RouteUpdate::DropChannel { .. }))
    );
    t.joined(A, "y");
    t.msg(A, ClientMessage::Leave { channel: ch("y") });
    let out = t.msg(A, ClientMessage::Unpatch { channel: ch("x") });
    assert!(
        routes(&out)
            .iter()
            .any(|r| matches!(r, RouteUpdate::DropChannel { .. })),
        "the emptied channel goes with the patch: {out:?}"
    );
}

#[test]
fn grants_decide_join_talk_priority_and_patch_and_a_change_applies_to_live_members() {
    use crate::accounts::{ChannelEntry, Directory, Identity, Rights, Role, Subject, UserEntry};
    let mut t = T::new();
    let mut dir = Directory::default();
    for (id, role) in [(11, Role::User), (12, Role::Dispatcher)] {
        dir.users.insert(
            id,
            UserEntry {
                username: format!("u{id}"),
                display_name: format!("U{id}"),
                role,
                disabled: false,
            },
        );
    }
    dir.channels.insert(ch("ops"), ChannelEntry::default());
    let listen_only = Rights {
        talk: false,
        ..Role::User.defaults()
    };
    dir.grants
        .insert((ch("ops"), Subject::Role(Role::User)), listen_only);
    t.input(HubInput::Directory(std::sync::Arc::new(dir.clone())));
    t.signed_in(A, 11); // a user
    t.signed_in(B, 12); // a dispatcher
    t.input(HubInput::Connect {
        client: C,
        name: "guest".into(),
        identity: Identity::Guest,
        ice_servers: Vec::new(),
    });
    // A guest may not join a channel that does not allow guests.
    let out = t.msg(C, ClientMessage::Join { channel: ch("ops") });
    assert!(matches!(
        sent(&out, C)[..],
        [S::Error {
            code: ErrorCode::NotAuthorized,
            ..
        }]
    ));
    t.joined(A, "ops");
    t.joined(B, "ops");
    t.joined(A, "side");
    t.joined(B, "side");
    // The user listens in ops but may not talk there.
    assert_eq!(
        sent(&t.request(A, "ops"), A),
        vec![S::FloorDeny {
            channel: ch("ops"),
            reason: DenyReason::NotAuthorized
        }]
    );
    // A user's priority is capped at normal: asking for emergency priority
    // in side does not pre-empt the dispatcher's high-priority talk.
    let out = t.msg(
        B,
        ClientMessage::FloorRequest {
            channel: ch("side"),
            priority: Priority::HIGH,
            queue: false,
        },
    );
    assert!(types(&sent(&out, B)).contains(&"floor_granted"));
    let out = t.msg(
        A,
        ClientMessage::FloorRequest {
            channel: ch("side"),
            priority: Priority::EMERGENCY,
            queue: false,
        },
    );
    assert!(
        types(&sent(&out, A)).contains(&"floor_deny"),
        "{:?}",
        sent(&out, A)
    );
    // Only a dispatcher may patch.
    let out = t.msg(
        A,
        ClientMessage::Patch {
            channels: vec![ch("ops"), ch("side")],
        },
    );
    assert!(matches!(
        sent(&out, A)[..],
        [S::Error {
            code: ErrorCode::NotAuthorized,
            ..
        }]
    ));
    // Anyone may raise an emergency; only a dispatcher acknowledges it.
    let out = t.msg(A, ClientMessage::Emergency { channel: ch("ops") });
    assert_eq!(types(&sent(&out, B)), vec!["emergency"]);
    let ack = ClientMessage::EmergencyAck {
        channel: ch("ops"),
        originator: A,
    };
    let out = t.msg(A, ack.clone());
    assert!(matches!(
        sent(&out, A)[..],
        [S::Error {
            code: ErrorCode::NotAuthorized,
            ..
        }]
    ));
    let out = t.msg(B, ack);
    assert_eq!(types(&sent(&out, A)), vec!["emergency_ack"]);
    // The operator withdraws listen from users in side: A is told and
    // removed; B (a dispatcher) keeps talking.
    dir.channels.insert(ch("side"), ChannelEntry::default());
    dir.grants
        .insert((ch("side"), Subject::Role(Role::User)), Rights::NONE);
    let out = t.input(HubInput::Directory(std::sync::Arc::new(dir.clone())));
    let to_a = types(&sent(&out, A));
    assert_eq!(to_a, vec!["error", "left"], "{:?}", sent(&out, A));
    assert!(!types(&sent(&out, B)).contains(&"floor_revoke"));
    // And talk from dispatchers in side: B loses the floor.
    dir.grants.insert(
        (ch("side"), Subject::Role(Role::Dispatcher)),
        Rights {
            talk: false,
            ..Role::Dispatcher.defaults()
        },
    );
    let out = t.input(HubInput::Directory(std::sync::Arc::new(dir)));
    assert!(
        types(&sent(&out, B)).contains(&"floor_idle"),
        "{:?}",
        sent(&out, B)
    );
}

#[test]
fn a_disabled_account_is_told_and_disconnected_and_its_floor_goes_at_once() {
    use crate::accounts::{Directory, Role, UserEntry};
    let mut t = T::new();
    let mut dir = Directory::default();
    for id in [11, 12] {
        dir.users.insert(
            id,
            UserEntry {
                username: format!("u{id}"),
                display_name: format!("U{id}"),
                role: Role::User,
                disabled: false,
            },
        );
    }
    t.input(HubInput::Directory(std::sync::Arc::new(dir.clone())));
    for (client, id) in [(A, 11), (B, 12)] {
        t.signed_in(client, id);
        t.joined(client, "lobby");
    }
    assert!(types(&sent(&t.request(A, "lobby"), A)).contains(&"floor_granted"));

    // Unrelated changes keep everyone connected.
    let out = t.input(HubInput::Directory(std::sync::Arc::new(dir.clone())));
    assert!(sent(&out, A).is_empty(), "{:?}", sent(&out, A));

    dir.users.get_mut(&11).unwrap().disabled = true;
    let out = t.input(HubInput::Directory(std::sync::Arc::new(dir.clone())));
    let to_a = sent(&out, A);
    assert!(
        matches!(
            to_a.first(),
            Some(S::Error {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "A is told first: {to_a:?}"
    );
    assert!(ErrorCode::Unauthorized.is_fatal(), "the connection closes");
    let to_b = types(&sent(&out, B));
    assert!(to_b.contains(&"floor_idle"), "{to_b:?}");
    assert!(to_b.contains(&"member_left"), "{to_b:?}");
    assert!(
        out.iter().any(|o| matches!(
            o,
            HubOutput::Worker {
                cmd: WorkerCmd::RemovePeer { client: A },
                ..
            }
        )),
        "A's media goes with it: {out:?}"
    );
    // Whatever A still sends is ignored; B may take the floor.
    assert!(t.request(A, "lobby").is_empty());
    assert!(types(&sent(&t.request(B, "lobby"), B)).contains(&"floor_granted"));

    // A deleted account goes the same way.
    dir.users.remove(&12);
    let out = t.input(HubInput::Directory(std::sync::Arc::new(dir)));
    assert!(matches!(
        sent(&out, B).first(),
        Some(S::Error {
            code: ErrorCode::Unauthorized,
            ..
        })
    ));
}

#[test]
fn a_channel_record_sets_its_own_floor_policy_and_a_change_applies_live() {
    use crate::accounts::{ChannelEntry, Directory};
    // An open server (no users) with a record for "quiet": first come,
    // first served there, and 5 s talks; "ops" has no record and keeps the
    // server's policy (pre-emption on, 60 s).
    let mut t = T::new();
    let mut dir = Directory::default();
    dir.channels.insert(
        ch("quiet"),
        ChannelEntry {
            preemption: Some(false),
            max_talk_secs: Some(5),
            ..ChannelEntry::default()
        },
    );
    t.input(HubInput::Directory(std::sync::Arc::new(dir.clone())));
    t.members_of("quiet", &[(A, "Ann"), (B, "Bo")]);
    t.joined(A, "ops");
    t.joined(B, "ops");
    let high = |t: &mut T, channel: &str| {
        t.msg(
            B,
            ClientMessage::FloorRequest {
                channel: ch(channel),
                priority: Priority::HIGH,
                queue: false,
            },
        )
    };
    let granted = |out: &[HubOutput], who, channel: &str| {
        sent(out, who).into_iter().find_map(|m| match m {
            S::FloorGranted {
                channel: c,
                max_duration_ms,
            } if c == ch(channel) => Some(max_duration_ms),
            _ => None,
        })
    };

    assert_eq!(granted(&t.request(A, "quiet"), A, "quiet"), Some(5_000));
    assert_eq!(
        sent(&high(&mut t, "quiet"), B),
        vec![S::FloorDeny {
            channel: ch("quiet"),
            reason: DenyReason::Busy
        }],
        "no pre-emption in quiet"
    );
    assert_eq!(granted(&t.request(A, "ops"), A, "ops"), Some(60_000));
    let out = high(&mut t, "ops");
    assert!(
        types(&sent(&out, A)).contains(&"floor_revoke"),
        "ops pre-empts"
    );

    // The operator clears quiet's settings: the server's policy applies
    // from the next request on, A's talk keeps its 5 s deadline until then.
    dir.channels.insert(ch("quiet"), ChannelEntry::default());
    let out = t.input(HubInput::Directory(std::sync::Arc::new(dir)));
    assert!(sent(&out, A).is_empty(), "{:?}", sent(&out, A));
    let out = high(&mut t, "quiet");
    assert_eq!(
        sent(&out, A)[0],
        S::FloorRevoke {
            channel: ch("quiet"),
            reason: RevokeReason::Preempted,
            by: Some(member(B, "Bo")),
        }
    );
    assert_eq!(granted(&out, B, "quiet"), Some(60_000));
}

#[test]
fn a_failed_worker_closes_only_its_connections_frees_their_floors_and_gets_the_routes_again() {
    let mut t = T::new();
    // Homed at their offers: A on worker 0, B on 1, C on 0.
    t.members_of("ops", &[(A, "Ann"), (B, "Bob"), (C, "Cy")]);
    t.online(D, "Dee"); // worker 1, muted in "fire"
    t.joined(D, "fire");
    t.msg(
        D,
        ClientMessage::Mute {
            channel: ch("fire"),
            muted: true,
        },
    );
    assert_eq!(types(&sent(&t.request(A, "ops"), A)), ["floor_granted"]);

    let out = t.input(HubInput::Worker(WorkerEvent::Failed { worker: 0 }));
    for who in [A, C] {
        match sent(&out, who).as_slice() {
            [S::Error { code, .. }] => assert_eq!(*code, ErrorCode::MediaFailed, "{who}"),
            other => panic!("{who} should get media_failed alone: {other:?}"),
        }
    }
    let to_b = types(&sent(&out, B));
    assert!(to_b.contains(&"floor_idle"), "A's floor is free: {to_b:?}");
    assert!(!to_b.contains(&"error"), "{to_b:?}");
    assert!(sent(&out, D).is_empty(), "D is in another channel");
    // Every worker forgets A and C; worker 0 then gets the table whole:
    // B listening in ops on worker 1, D paused in fire, no talker.
    let ops = t.hub.by_name[&ch("ops")];
    let fire = t.hub.by_name[&ch("fire")];
    let r = routes(&out);
    for who in [A, C] {
        assert!(
            r.contains(&RouteUpdate::Unlisten {
                chan: ops,
                client: who,
                worker: 0
            }),
            "{r:?}"
        );
    }
    let to_worker0: Vec<RouteUpdate> = out
        .iter()
        .filter_map(|o| match o {
            HubOutput::Worker {
                worker: 0,
                cmd: WorkerCmd::Route(u),
            } => Some(*u),
            _ => None,
        })
        .collect();
    // Channels in creation order: ops before fire.
    let expected = vec![
        RouteUpdate::Reset,
        RouteUpdate::Listen {
            chan: ops,
            client: B,
            worker: 1,
        },
        RouteUpdate::Listen {
            chan: fire,
            client: D,
            worker: 1,
        },
        RouteUpdate::Pause {
            chan: fire,
            client: D,
            worker: 1,
            paused: true,
        },
    ];
    assert_eq!(to_worker0, expected);
    assert!(
        worker_cmds(&out).iter().all(|(w, _)| *w == 0),
        "worker 1 is only routed: {:?}",
        worker_cmds(&out)
    );

    // A and C are gone; B talks; a reconnecting A is homed again.
    assert!(t.request(A, "ops").is_empty());
    assert_eq!(types(&sent(&t.request(B, "ops"), B)), ["floor_granted"]);
    t.online(A, "Ann");
    let out = t.joined(A, "ops");
    assert!(types(&sent(&out, A)).contains(&"joined"));
}
