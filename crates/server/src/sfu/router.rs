//! The routing table of one SFU worker, pure: who holds the floor in which
//! channel, which of this worker's connections listen to it, and which
//! other workers have listeners there. The hub feeds it [`RouteUpdate`]s
//! (every worker gets every update); the worker loop asks it where a
//! talker's packet goes and only moves packets.

use std::collections::HashMap;

use squawk_protocol::ClientId;

use super::{ChanId, RouteUpdate};

#[derive(Debug, Default)]
struct Route {
    talker: Option<ClientId>,
    /// This worker's listeners, paused ones left out.
    local: Vec<ClientId>,
    /// Listeners per worker (index), all workers, paused ones left out.
    per_worker: Vec<u32>,
    /// Listeners (of any worker) whose downlink is paused (muted).
    paused: Vec<ClientId>,
}

/// Routing table of worker `me`. See the module docs.
#[derive(Debug)]
pub(crate) struct Router {
    me: usize,
    workers: usize,
    routes: HashMap<ChanId, Route>,
    /// Channels where each talker holds the floor.
    talking: HashMap<ClientId, Vec<ChanId>>,
}

impl Router {
    /// The table of worker `me` out of `workers`.
    pub(crate) fn new(me: usize, workers: usize) -> Self {
        Self {
            me,
            workers,
            routes: HashMap::new(),
            talking: HashMap::new(),
        }
    }

    /// Applies one update from the hub.
    pub(crate) fn apply(&mut self, update: RouteUpdate) {
        match update {
            RouteUpdate::Listen {
                chan,
                client,
                worker,
            } => {
                let workers = self.workers;
                let r = self.routes.entry(chan).or_insert_with(|| Route {
                    per_worker: vec![0; workers],
                    ..Route::default()
                });
                if let Some(n) = r.per_worker.get_mut(worker) {
                    *n += 1;
                }
                if worker == self.me && !r.local.contains(&client) {
                    r.local.push(client);
                }
            }
            RouteUpdate::Unlisten {
                chan,
                client,
                worker,
            } => {
                let Some(r) = self.routes.get_mut(&chan) else {
                    return;
                };
                let was_paused = r.paused.contains(&client);
                if was_paused {
                    r.paused.retain(|c| *c != client);
                } else if let Some(n) = r.per_worker.get_mut(worker) {
                    *n = n.saturating_sub(1);
                }
                if worker == self.me {
                    r.local.retain(|c| *c != client);
                }
                if r.talker == Some(client) {
                    Self::stop_talking(&mut self.talking, client, chan);
                    r.talker = None;
                }
            }
            RouteUpdate::Talker { chan, talker } => {
                let workers = self.workers;
                let r = self.routes.entry(chan).or_insert_with(|| Route {
                    per_worker: vec![0; workers],
                    ..Route::default()
                });
                if let Some(old) = std::mem::replace(&mut r.talker, talker) {
                    Self::stop_talking(&mut self.talking, old, chan);
                }
                if let Some(t) = talker {
                    let chans = self.talking.entry(t).or_default();
                    if !chans.contains(&chan) {
                        chans.push(chan);
                    }
                }
            }
            RouteUpdate::Pause {
                chan,
                client,
                worker,
                paused,
            } => {
                let Some(r) = self.routes.get_mut(&chan) else {
                    return;
                };
                if paused == r.paused.contains(&client) {
                    return; // no change
                }
                if paused {
                    r.paused.push(client);
                    if let Some(n) = r.per_worker.get_mut(worker) {
                        *n = n.saturating_sub(1);
                    }
                    if worker == self.me {
                        r.local.retain(|c| *c != client);
                    }
                } else {
                    r.paused.retain(|c| *c != client);
                    if let Some(n) = r.per_worker.get_mut(worker) {
                        *n += 1;
                    }
                    if worker == self.me && !r.local.contains(&client) {
                        r.local.push(client);
                    }
                }
            }
            // The worker's own business (its held packets), not a route.
            RouteUpdate::Held { .. } => {}
            RouteUpdate::Reset => {
                self.routes.clear();
                self.talking.clear();
            }
            RouteUpdate::DropChannel { chan } => {
                if let Some(t) = self.routes.remove(&chan).and_then(|r| r.talker) {
                    Self::stop_talking(&mut self.talking, t, chan);
                }
            }
        }
    }

    fn stop_talking(talking: &mut HashMap<ClientId, Vec<ChanId>>, who: ClientId, chan: ChanId) {
        if let Some(chans) = talking.get_mut(&who) {
            chans.retain(|c| *c != chan);
            if chans.is_empty() {
                talking.remove(&who);
            }
        }
    }

    /// Channels where `talker` holds the floor: where its media goes. Empty
    /// means its packets are dropped (media enforcement).
    pub(crate) fn talking_in(&self, talker: ClientId) -> &[ChanId] {
        self.talking.get(&talker).map_or(&[], Vec::as_slice)
    }

    /// Whether `talker` holds the floor of `chan` (a packet forwarded by
    /// another worker may arrive after the floor moved on).
    pub(crate) fn is_talker(&self, chan: ChanId, talker: ClientId) -> bool {
        self.routes.get(&chan).and_then(|r| r.talker) == Some(talker)
    }

    /// This worker's listeners of `chan` (the talker among them, if it is).
    pub(crate) fn local_listeners(&self, chan: ChanId) -> &[ClientId] {
        self.routes.get(&chan).map_or(&[], |r| r.local.as_slice())
    }

    /// Other workers with listeners in `chan`.
    pub(crate) fn remote_workers(&self, chan: ChanId) -> impl Iterator<Item = usize> + '_ {
        let me = self.me;
        self.routes
            .get(&chan)
            .into_iter()
            .flat_map(|r| r.per_worker.iter().enumerate())
            .filter(move |(w, n)| **n > 0 && *w != me)
            .map(|(w, _)| w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ClientId = 1;
    const B: ClientId = 2;
    const C: ClientId = 3;
    const OPS: ChanId = ChanId(1);
    const FIRE: ChanId = ChanId(2);

    fn listen(chan: ChanId, client: ClientId, worker: usize) -> RouteUpdate {
        RouteUpdate::Listen {
            chan,
            client,
            worker,
        }
    }

    fn router() -> Router {
        // Worker 0 of 3. A and B live here, C on worker 2.
        let mut r = Router::new(0, 3);
        r.apply(listen(OPS, A, 0));
        r.apply(listen(OPS, B, 0));
        r.apply(listen(OPS, C, 2));
        r.apply(listen(FIRE, B, 0));
        r
    }

    /// `Reset` then the table again (a restarted worker) gives the same
    /// routes, counted once, as before the reset.
    #[test]
    fn reset_forgets_everything_and_a_replay_counts_once() {
        let mut r = router();
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(A),
        });
        r.apply(RouteUpdate::Reset);
        assert!(r.talking_in(A).is_empty());
        assert!(r.local_listeners(OPS).is_empty());
        assert_eq!(r.remote_workers(OPS).count(), 0);
        for u in [listen(OPS, A, 0), listen(OPS, B, 0), listen(OPS, C, 2)] {
            r.apply(u);
        }
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(A),
        });
        assert_eq!(r.talking_in(A), &[OPS]);
        assert_eq!(r.local_listeners(OPS), &[A, B]);
        // C's one Unlisten removes worker 2 again: it was counted once.
        r.apply(RouteUpdate::Unlisten {
            chan: OPS,
            client: C,
            worker: 2,
        });
        assert_eq!(r.remote_workers(OPS).count(), 0);
    }

    #[test]
    fn no_floor_no_route() {
        let r = router();
        assert!(r.talking_in(A).is_empty());
        assert!(!r.is_talker(OPS, A));
    }

    #[test]
    fn the_talker_reaches_local_listeners_and_only_workers_with_listeners() {
        let mut r = router();
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(A),
        });
        assert_eq!(r.talking_in(A), &[OPS]);
        assert_eq!(r.local_listeners(OPS), &[A, B]);
        assert_eq!(r.remote_workers(OPS).collect::<Vec<_>>(), vec![2]);
        assert_eq!(r.remote_workers(FIRE).count(), 0);
        r.apply(RouteUpdate::Unlisten {
            chan: OPS,
            client: C,
            worker: 2,
        });
        assert_eq!(r.remote_workers(OPS).count(), 0);
    }

    #[test]
    fn floor_moves_and_idles() {
        let mut r = router();
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(A),
        });
        r.apply(RouteUpdate::Talker {
            chan: FIRE,
            talker: Some(A),
        });
        assert_eq!(r.talking_in(A), &[OPS, FIRE]);
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(B),
        });
        assert_eq!(r.talking_in(A), &[FIRE]);
        assert!(r.is_talker(OPS, B));
        r.apply(RouteUpdate::Talker {
            chan: FIRE,
            talker: None,
        });
        assert!(r.talking_in(A).is_empty());
    }

    #[test]
    fn a_talker_who_stops_listening_or_a_dropped_channel_loses_the_route() {
        let mut r = router();
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(A),
        });
        r.apply(RouteUpdate::Unlisten {
            chan: OPS,
            client: A,
            worker: 0,
        });
        assert!(r.talking_in(A).is_empty());
        assert_eq!(r.local_listeners(OPS), &[B]);
        r.apply(RouteUpdate::Talker {
            chan: FIRE,
            talker: Some(B),
        });
        r.apply(RouteUpdate::DropChannel { chan: FIRE });
        assert!(r.talking_in(B).is_empty());
        assert!(r.local_listeners(FIRE).is_empty());
    }

    fn pause(chan: ChanId, client: ClientId, worker: usize, paused: bool) -> RouteUpdate {
        RouteUpdate::Pause {
            chan,
            client,
            worker,
            paused,
        }
    }

    #[test]
    fn a_paused_listener_gets_nothing_and_keeps_its_talk_route() {
        let mut r = router();
        r.apply(RouteUpdate::Talker {
            chan: OPS,
            talker: Some(B),
        });
        r.apply(pause(OPS, B, 0, true));
        r.apply(pause(OPS, C, 2, true));
        // Muting is about hearing: B still talks into OPS.
        assert_eq!(r.talking_in(B), &[OPS]);
        assert_eq!(r.local_listeners(OPS), &[A]);
        assert_eq!(r.remote_workers(OPS).count(), 0, "C, paused, needs no copy");
        // Pausing twice changes nothing; resuming restores both.
        r.apply(pause(OPS, C, 2, true));
        r.apply(pause(OPS, C, 2, false));
        r.apply(pause(OPS, B, 0, false));
        assert_eq!(r.local_listeners(OPS), &[A, B]);
        assert_eq!(r.remote_workers(OPS).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn leaving_while_paused_keeps_the_counts_right() {
        let mut r = router();
        r.apply(pause(OPS, C, 2, true));
        r.apply(RouteUpdate::Unlisten {
            chan: OPS,
            client: C,
            worker: 2,
        });
        // C joins again, unpaused: worker 2 counts it once.
        r.apply(listen(OPS, C, 2));
        assert_eq!(r.remote_workers(OPS).collect::<Vec<_>>(), vec![2]);
        r.apply(RouteUpdate::Unlisten {
            chan: OPS,
            client: C,
            worker: 2,
        });
        assert_eq!(r.remote_workers(OPS).count(), 0);
    }
}
