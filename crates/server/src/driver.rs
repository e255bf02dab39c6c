//! The hub's task: the I/O around the pure [`Hub`]. It feeds the hub what
//! connections and SFU workers report, with the time, and carries out the
//! hub's outputs: messages into each connection's [`Outlet`], commands and
//! routing updates to the workers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use squawk_protocol::{ClientId, ClientMessage, IceServer};
use tokio::sync::{mpsc, watch};

use crate::{
    accounts::{Directory, Identity},
    hub::{Hub, HubInput, HubMetrics, HubOutput},
    logs::limited,
    outbox::Pushed,
    session::Outlet,
    sfu::{WorkerEvent, Workers},
};

/// What connections tell the hub's task.
pub(crate) enum ToHub {
    /// A valid `hello`; `outlet` is the way out to the connection.
    Connect {
        client: ClientId,
        name: String,
        identity: Identity,
        /// Its ICE servers for the `welcome`.
        ice_servers: Vec<IceServer>,
        outlet: Arc<Outlet>,
    },
    /// The accounts directory changed (users, channels, grants).
    Directory(Arc<Directory>),
    /// A message after `hello`.
    Message {
        client: ClientId,
        msg: ClientMessage,
    },
    /// The connection ended.
    Disconnect { client: ClientId },
}

/// Inputs taken per wake-up before outputs are carried out; bounds how long
/// a burst of one kind keeps the other waiting.
const BATCH: usize = 256;

struct Driver {
    hub: Hub,
    workers: Workers,
    outlets: HashMap<ClientId, Arc<Outlet>>,
}

impl Driver {
    fn connection_input(&mut self, now: Instant, msg: ToHub) {
        match msg {
            ToHub::Connect {
                client,
                name,
                identity,
                ice_servers,
                outlet,
            } => {
                self.outlets.insert(client, outlet);
                self.step(
                    now,
                    HubInput::Connect {
                        client,
                        name,
                        identity,
                        ice_servers,
                    },
                );
            }
            ToHub::Directory(dir) => self.step(now, HubInput::Directory(dir)),
            ToHub::Message { client, msg } => self.step(now, HubInput::Message { client, msg }),
            ToHub::Disconnect { client } => {
                self.step(now, HubInput::Disconnect { client });
                self.outlets.remove(&client);
            }
        }
    }

    /// One input, then every output it caused (the drive rule).
    fn step(&mut self, now: Instant, input: HubInput) {
        self.hub.handle(now, input);
        while let Some(out) = self.hub.poll_output() {
            match out {
                HubOutput::Send { client, msg } => {
                    let Some(outlet) = self.outlets.get(&client) else {
                        continue; // gone: its Disconnect is on the way
                    };
                    if outlet.push(msg) == Pushed::Overflowed {
                        limited!(
                            warn,
                            client,
                            "connection does not read its messages: closing it (too_slow)"
                        );
                    }
                }
                HubOutput::Worker { worker, cmd } => self.workers.send(worker, cmd),
                HubOutput::Route(update) => self.workers.route(update),
            }
        }
    }
}

/// Debug builds on Unix only: `kill -USR1 <server pid>` makes SFU worker 0
/// panic, so that a worker failure is tested end to end on the real binary
/// (`tests/browser_e2e.rs`). Release builds leave SIGUSR1 alone and this
/// never fires.
struct CrashSignal {
    #[cfg(all(unix, debug_assertions))]
    usr1: Option<tokio::signal::unix::Signal>,
}

impl CrashSignal {
    fn new() -> Self {
        Self {
            #[cfg(all(unix, debug_assertions))]
            usr1: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .ok(),
        }
    }

    /// Resolves at each SIGUSR1; never in a release build.
    async fn recv(&mut self) {
        #[cfg(all(unix, debug_assertions))]
        if let Some(usr1) = &mut self.usr1
            && usr1.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

impl Driver {
    /// What [`CrashSignal`] asks for: worker 0 panics.
    fn crash_worker(&self) {
        #[cfg(debug_assertions)]
        {
            tracing::warn!("SIGUSR1 (debug build): making sfu worker 0 panic");
            self.workers.send(0, crate::sfu::WorkerCmd::Crash);
        }
    }
}

/// Runs the hub until `shutdown` turns true or every connection sender is
/// gone; returns the workers, to be stopped.
pub(crate) async fn run(
    hub: Hub,
    workers: Workers,
    mut from_connections: mpsc::Receiver<ToHub>,
    mut from_workers: mpsc::UnboundedReceiver<WorkerEvent>,
    shutdown: &mut watch::Receiver<bool>,
    metrics: Arc<Mutex<HubMetrics>>,
) -> Workers {
    let mut d = Driver {
        hub,
        workers,
        outlets: HashMap::new(),
    };
    let mut crash = CrashSignal::new();
    loop {
        let deadline = d.hub.poll_timeout();
        let timer = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(event) = from_workers.recv() => {
                let now = Instant::now();
                d.step(now, HubInput::Worker(event));
                for _ in 1..BATCH {
                    let Ok(event) = from_workers.try_recv() else { break };
                    d.step(now, HubInput::Worker(event));
                }
            }
            msg = from_connections.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                d.connection_input(now, msg);
                for _ in 1..BATCH {
                    let Ok(msg) = from_connections.try_recv() else { break };
                    d.connection_input(now, msg);
                }
            }
            () = timer => d.step(Instant::now(), HubInput::Timeout),
            () = crash.recv() => d.crash_worker(),
        }
        // For `/metrics`: a copy per batch, not per message.
        if let Ok(mut m) = metrics.lock() {
            *m = d.hub.metrics();
        }
    }
    d.workers
}
