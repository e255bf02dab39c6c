//! A stand-in for a Wayland desktop's xdg-desktop-portal: it owns
//! `org.freedesktop.portal.Desktop` on a test session's own D-Bus bus and
//! serves the GlobalShortcuts interface (version 1) the way the portal
//! documents it: a session per `CreateSession`, requests answered with
//! `org.freedesktop.portal.Request.Response`, `Activated`/`Deactivated`
//! sent to the session's owner. No Wayland compositor here offers the
//! portal (Debian 12's xdg-desktop-portal 1.16 has no GlobalShortcuts), so
//! the app's portal client is tested against this, over a real bus.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use zbus::{
    message::Header,
    zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value},
};

const PATH: &str = "/org/freedesktop/portal/desktop";
const IFACE: &str = "org.freedesktop.portal.GlobalShortcuts";

/// One portal session and what the app bound in it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session's object path.
    pub path: String,
    /// The unique bus name of the app that opened it.
    pub owner: String,
    /// The shortcuts bound: (id, preferred trigger).
    pub shortcuts: Vec<(String, Option<String>)>,
    /// Closed by the app (`Session.Close`).
    pub closed: bool,
}

#[derive(Default)]
struct State {
    sessions: Vec<Session>,
}

type Shared = Arc<Mutex<State>>;

/// The fake portal; it leaves the bus when dropped.
pub struct FakePortal {
    state: Shared,
    conn: Option<zbus::Connection>,
    rt: tokio::runtime::Runtime,
}

/// `:1.42` → `1_42`, as portal handles spell a sender.
fn sender_part(sender: &str) -> String {
    sender.trim_start_matches(':').replace('.', "_")
}

fn token(options: &HashMap<String, OwnedValue>, key: &str) -> zbus::fdo::Result<String> {
    options
        .get(key)
        .and_then(|v| <&str>::try_from(&**v).ok())
        .map(str::to_string)
        .ok_or_else(|| zbus::fdo::Error::InvalidArgs(format!("no {key}")))
}

/// Answers a request (`Response` signal on its handle) once the method's
/// reply is out, as the real portal does.
fn respond(
    conn: &zbus::Connection,
    owner: &str,
    handle: OwnedObjectPath,
    results: HashMap<String, OwnedValue>,
) {
    let (conn, owner) = (conn.clone(), owner.to_string());
    tokio::spawn(async move {
        if let Err(e) = conn
            .emit_signal(
                Some(owner.as_str()),
                handle.as_str(),
                "org.freedesktop.portal.Request",
                "Response",
                &(0u32, results),
            )
            .await
        {
            eprintln!("fake portal: cannot answer a request: {e}");
        }
    });
}

fn request_handle(
    header: &Header<'_>,
    options: &HashMap<String, OwnedValue>,
) -> zbus::fdo::Result<(String, OwnedObjectPath)> {
    let owner = header
        .sender()
        .ok_or_else(|| zbus::fdo::Error::Failed("no sender".into()))?
        .to_string();
    let handle = format!(
        "{PATH}/request/{}/{}",
        sender_part(&owner),
        token(options, "handle_token")?
    );
    let handle = OwnedObjectPath::try_from(handle)
        .map_err(|e| zbus::fdo::Error::InvalidArgs(e.to_string()))?;
    Ok((owner, handle))
}

struct Shortcuts(Shared);

#[zbus::interface(name = "org.freedesktop.portal.GlobalShortcuts")]
impl Shortcuts {
    #[zbus(property, name = "version")]
    fn version(&self) -> u32 {
        1
    }

    async fn create_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        options: HashMap<String, OwnedValue>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let (owner, handle) = request_handle(&header, &options)?;
        let path = format!(
            "{PATH}/session/{}/{}",
            sender_part(&owner),
            token(&options, "session_handle_token")?
        );
        conn.object_server()
            .at(path.as_str(), SessionObject(self.0.clone(), path.clone()))
            .await?;
        self.0.lock().unwrap().sessions.push(Session {
            path: path.clone(),
            owner: owner.clone(),
            shortcuts: Vec::new(),
            closed: false,
        });
        let results = HashMap::from([(
            "session_handle".to_string(),
            OwnedValue::try_from(Value::from(path)).unwrap(),
        )]);
        respond(conn, &owner, handle.clone(), results);
        Ok(handle)
    }

    async fn bind_shortcuts(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        session_handle: ObjectPath<'_>,
        shortcuts: Vec<(String, HashMap<String, OwnedValue>)>,
        _parent_window: String,
        options: HashMap<String, OwnedValue>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let (owner, handle) = request_handle(&header, &options)?;
        let bound: Vec<(String, Option<String>)> = shortcuts
            .iter()
            .map(|(id, info)| (id.clone(), token(info, "preferred_trigger").ok()))
            .collect();
        {
            let mut st = self.0.lock().unwrap();
            let session = st
                .sessions
                .iter_mut()
                .find(|s| s.path == session_handle.as_str() && s.owner == owner)
                .ok_or_else(|| zbus::fdo::Error::InvalidArgs("no such session".into()))?;
            session.shortcuts = bound.clone();
        }
        // The desktop grants each preferred trigger as asked.
        let described: Vec<(String, HashMap<String, OwnedValue>)> = bound
            .into_iter()
            .map(|(id, trigger)| (id, info(&trigger.unwrap_or_default())))
            .collect();
        let results = HashMap::from([(
            "shortcuts".to_string(),
            OwnedValue::try_from(Value::from(described)).unwrap(),
        )]);
        respond(conn, &owner, handle.clone(), results);
        Ok(handle)
    }
}

/// A shortcut's description as the portal sends it.
fn info(trigger: &str) -> HashMap<String, OwnedValue> {
    HashMap::from([
        (
            "description".to_string(),
            OwnedValue::try_from(Value::from("Talk")).unwrap(),
        ),
        (
            "trigger_description".to_string(),
            OwnedValue::try_from(Value::from(trigger.to_string())).unwrap(),
        ),
    ])
}

struct SessionObject(Shared, String);

#[zbus::interface(name = "org.freedesktop.portal.Session")]
impl SessionObject {
    #[zbus(property, name = "version")]
    fn version(&self) -> u32 {
        1
    }

    fn close(&self) {
        if let Some(s) = self
            .0
            .lock()
            .unwrap()
            .sessions
            .iter_mut()
            .find(|s| s.path == self.1)
        {
            s.closed = true;
        }
    }
}

impl FakePortal {
    /// Starts the portal on the bus at `address` (a test session's
    /// `Xvfb::bus`); returns once it owns its name.
    pub fn start(address: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime for the fake portal");
        let state = Shared::default();
        let conn = rt
            .block_on(async {
                zbus::connection::Builder::address(address)?
                    .name("org.freedesktop.portal.Desktop")?
                    .serve_at(PATH, Shortcuts(state.clone()))?
                    .build()
                    .await
            })
            .expect("fake portal on the test bus");
        Self {
            state,
            conn: Some(conn),
            rt,
        }
    }

    /// The sessions opened so far.
    pub fn sessions(&self) -> Vec<Session> {
        self.state.lock().unwrap().sessions.clone()
    }

    /// Waits until `f` holds for the sessions opened so far; returns them.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&[Session]) -> bool,
    ) -> Vec<Session> {
        let end = Instant::now() + timeout;
        loop {
            let sessions = self.sessions();
            if f(&sessions) {
                return sessions;
            }
            assert!(
                Instant::now() < end,
                "fake portal: not {what} within {timeout:?}: {sessions:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until an open session has `id` bound; returns that session.
    pub fn wait_bound(&self, id: &str, timeout: Duration) -> Session {
        let open = |s: &Session| !s.closed && s.shortcuts.iter().any(|(i, _)| i == id);
        let sessions = self.wait_until(&format!("{id:?} bound"), timeout, |all| {
            all.iter().any(open)
        });
        sessions.into_iter().find(open).expect("found above")
    }

    fn emit<B>(&self, session: &Session, member: &str, body: &B)
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let conn = self.conn.as_ref().expect("portal running");
        self.rt
            .block_on(conn.emit_signal(Some(session.owner.as_str()), PATH, IFACE, member, body))
            .expect("portal signal sent");
    }

    fn key_signal(&self, session: &Session, member: &str, id: &str) {
        let path = ObjectPath::try_from(session.path.as_str()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let options: HashMap<String, OwnedValue> = HashMap::new();
        self.emit(session, member, &(path, id, now, options));
    }

    /// The user presses the shortcut `id` (`Activated`).
    pub fn press(&self, session: &Session, id: &str) {
        self.key_signal(session, "Activated", id);
    }

    /// The user lets go of the shortcut `id` (`Deactivated`).
    pub fn release(&self, session: &Session, id: &str) {
        self.key_signal(session, "Deactivated", id);
    }

    /// The user gives shortcut `id` another trigger in the desktop's
    /// settings (`ShortcutsChanged`).
    pub fn change_trigger(&self, session: &Session, id: &str, trigger: &str) {
        let path = ObjectPath::try_from(session.path.as_str()).unwrap();
        self.emit(
            session,
            "ShortcutsChanged",
            &(path, vec![(id.to_string(), info(trigger))]),
        );
    }

    /// The portal stops (its process ends): it leaves the bus.
    pub fn stop(mut self) {
        if let Some(conn) = self.conn.take() {
            self.rt.block_on(conn.close()).expect("portal left the bus");
        }
    }
}
