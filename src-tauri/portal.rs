//! The talk key on Wayland: the xdg-desktop-portal GlobalShortcuts portal
//! (`org.freedesktop.portal.GlobalShortcuts`, version 1), through ashpd.
//!
//! A Wayland client cannot grab a key; only the compositor can hand out a
//! global shortcut, and it does so through this portal. The app opens a
//! portal session and binds one shortcut, [`SHORTCUT_ID`], with the user's
//! talk key as the preferred trigger. The desktop may ask the user to
//! confirm it or to pick another trigger, and answers with the trigger it
//! bound. `Activated` is key down and `Deactivated` key up, so hold to talk
//! and latch work as with an X11 grab (`talk_key.rs` decides which).
//!
//! Source: the portal's D-Bus interface documentation,
//! <https://flatpak.github.io/xdg-desktop-portal/docs/doc-org.freedesktop.portal.GlobalShortcuts.html>.

use ashpd::zbus;

/// The talk shortcut's id in the portal session.
pub const SHORTCUT_ID: &str = "talk";

/// The app id the portal sees (Tauri's `identifier`).
const APP_ID: &str = "org.squawk.desktop";

/// The portal's bus name.
const PORTAL: &str = "org.freedesktop.portal.Desktop";

/// What the portal says about the talk shortcut, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalEvent {
    /// The shortcut went down (`Activated`).
    Down,
    /// The shortcut went up (`Deactivated`).
    Up,
    /// The user changed the trigger in the desktop's settings
    /// (`ShortcutsChanged`): the desktop's description of the new one,
    /// empty when none is assigned.
    Changed(String),
    /// The session ended (`Closed`, or the portal or the bus went away):
    /// the key no longer works. Why, for the UI.
    Closed(String),
}

/// A bound talk shortcut. Its portal session lives until the value is
/// dropped; then the session is closed and no event follows.
pub struct PortalKey {
    /// The trigger asked for (XDG shortcuts format), as given to [`bind`].
    pub preferred: String,
    /// The desktop's description of the trigger it bound (e.g. `F9`, or
    /// `Ctrl+Shift+T` in the desktop's words); empty when the desktop
    /// bound the shortcut without a key yet.
    pub trigger: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for PortalKey {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens a portal session on the session bus and binds the talk shortcut
/// with `preferred` (XDG shortcuts format, `talk_key::xdg_trigger`) as the
/// preferred trigger. Waits for the desktop's answer, which may take as
/// long as the user takes to confirm a dialog. Then `on_event` gets each
/// event of the shortcut, on a task of the current Tokio runtime, until the
/// returned key is dropped or the session ends ([`PortalEvent::Closed`],
/// the last event).
///
/// # Errors
/// A sentence for the UI: no session bus, no portal, a portal without
/// GlobalShortcuts, or a request the desktop (or the user) refused.
pub async fn bind(
    preferred: &str,
    on_event: impl Fn(PortalEvent) + Send + 'static,
) -> Result<PortalKey, String> {
    use ashpd::desktop::global_shortcuts::{GlobalShortcuts, NewShortcut};
    use futures_util::StreamExt;
    use zbus::{MatchRule, MessageStream, message::Type};

    let conn = zbus::Connection::session()
        .await
        .map_err(|e| format!("no D-Bus session bus: {e}"))?;
    // Outside Flatpak a portal 1.19+ learns the app id by registration;
    // older portals have no registry, which is fine.
    if let Ok(id) = ashpd::AppID::try_from(APP_ID)
        && let Err(e) = ashpd::register_host_app_with_connection(conn.clone(), id).await
    {
        tracing::debug!("portal registry: {e}");
    }
    let portal = GlobalShortcuts::with_connection(conn.clone())
        .await
        .map_err(explain)?;
    // One stream for all of the portal's signals keeps them in the order
    // sent: a quick press and release must not arrive swapped.
    let signals = |rule: zbus::Result<MatchRule<'static>>| {
        let conn = conn.clone();
        async move {
            let listen = async { MessageStream::for_match_rule(rule?, &conn, Some(64)).await };
            listen
                .await
                .map_err(|e: zbus::Error| format!("cannot listen to the portal: {e}"))
        }
    };
    let mut portal_signals = signals(
        MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(PORTAL)
            .map(|b| b.build()),
    )
    .await?;
    let mut owner_changes = signals(
        MatchRule::builder()
            .msg_type(Type::Signal)
            .sender("org.freedesktop.DBus")
            .and_then(|b| b.member("NameOwnerChanged"))
            .and_then(|b| b.arg(0, PORTAL))
            .map(|b| b.build()),
    )
    .await?;
    let session = portal
        .create_session(Default::default())
        .await
        .map_err(explain)?;
    let shortcut =
        NewShortcut::new(SHORTCUT_ID, "Talk (hold to talk)").preferred_trigger(preferred);
    let bound = portal
        .bind_shortcuts(&session, &[shortcut], None, Default::default())
        .await
        .and_then(|request| request.response())
        .map_err(explain)?;
    let trigger = bound
        .shortcuts()
        .iter()
        .find(|s| s.id() == SHORTCUT_ID)
        .map(|s| s.trigger_description().to_string())
        .ok_or("the desktop did not bind the talk shortcut")?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _portal = portal;
        let closed = loop {
            tokio::select! {
                _ = &mut stopped => {
                    if let Err(e) = session.close().await {
                        tracing::debug!("closing the portal session: {e}");
                    }
                    return;
                }
                m = portal_signals.next() => match m {
                    Some(Ok(m)) => match event_of(&m) {
                        Some(PortalEvent::Closed(why)) => break why,
                        Some(ev) => on_event(ev),
                        None => {}
                    },
                    Some(Err(e)) => tracing::debug!("portal signal: {e}"),
                    None => break "lost the D-Bus session bus".to_string(),
                },
                m = owner_changes.next() => if m.is_some_and(|m| m.is_ok_and(|m| portal_left(&m))) {
                    break "the desktop portal stopped".to_string();
                },
            }
        };
        on_event(PortalEvent::Closed(closed));
    });
    Ok(PortalKey {
        preferred: preferred.to_string(),
        trigger,
        stop: Some(stop),
    })
}

/// The talk shortcut's event in one of the portal's signals, if it has one.
fn event_of(m: &zbus::Message) -> Option<PortalEvent> {
    use ashpd::desktop::global_shortcuts::{Activated, Deactivated, ShortcutsChanged};
    let h = m.header();
    let ours = |id: &str| id == SHORTCUT_ID;
    match (h.interface()?.as_str(), h.member()?.as_str()) {
        ("org.freedesktop.portal.GlobalShortcuts", "Activated") => {
            let a: Activated = m.body().deserialize().ok()?;
            ours(a.shortcut_id()).then_some(PortalEvent::Down)
        }
        ("org.freedesktop.portal.GlobalShortcuts", "Deactivated") => {
            let d: Deactivated = m.body().deserialize().ok()?;
            ours(d.shortcut_id()).then_some(PortalEvent::Up)
        }
        ("org.freedesktop.portal.GlobalShortcuts", "ShortcutsChanged") => {
            let c: ShortcutsChanged = m.body().deserialize().ok()?;
            let s = c.shortcuts().iter().find(|s| ours(s.id()))?;
            Some(PortalEvent::Changed(s.trigger_description().to_string()))
        }
        ("org.freedesktop.portal.Session", "Closed") => Some(PortalEvent::Closed(
            "the desktop closed the talk shortcut's portal session".into(),
        )),
        _ => None,
    }
}

/// Whether a `NameOwnerChanged` signal says the portal process that held
/// our session left the bus (stopped, or replaced by a new one).
fn portal_left(m: &zbus::Message) -> bool {
    m.body()
        .deserialize::<(String, String, String)>()
        .is_ok_and(|(name, old, _new)| name == PORTAL && !old.is_empty())
}

/// A portal error in words for the UI.
fn explain(e: ashpd::Error) -> String {
    use ashpd::desktop::ResponseError;
    match e {
        ashpd::Error::PortalNotFound(_) => "the desktop's xdg-desktop-portal has no \
            GlobalShortcuts portal (KDE Plasma, GNOME 48 and later, and Hyprland have it)"
            .into(),
        ashpd::Error::Response(ResponseError::Cancelled) => {
            "the desktop refused the talk shortcut, or its dialog was cancelled".into()
        }
        e if e.to_string().contains("ServiceUnknown") => {
            "no xdg-desktop-portal runs on the session bus".into()
        }
        e => format!("GlobalShortcuts portal: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;
    use zbus::zvariant::{OwnedObjectPath, Value};

    const SESSION: &str = "/org/freedesktop/portal/desktop/session/1_7/squawk";
    const IFACE: &str = "org.freedesktop.portal.GlobalShortcuts";

    fn signal<B>(iface: &str, member: &str, body: &B) -> zbus::Message
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        zbus::Message::signal("/org/freedesktop/portal/desktop", iface, member)
            .unwrap()
            .build(body)
            .unwrap()
    }

    fn key_signal(member: &str, id: &str) -> zbus::Message {
        let session = OwnedObjectPath::try_from(SESSION).unwrap();
        let options: HashMap<&str, Value<'_>> = HashMap::new();
        signal(
            IFACE,
            member,
            &(session, id, 1_700_000_000_123_u64, options),
        )
    }

    #[test]
    fn activated_and_deactivated_are_the_talk_key_going_down_and_up() {
        assert_eq!(
            event_of(&key_signal("Activated", "talk")),
            Some(PortalEvent::Down)
        );
        assert_eq!(
            event_of(&key_signal("Deactivated", "talk")),
            Some(PortalEvent::Up)
        );
        // Another shortcut of the session is not the talk key.
        assert_eq!(event_of(&key_signal("Activated", "mute")), None);
    }

    #[test]
    fn a_changed_trigger_and_a_closed_session_are_reported() {
        let session = OwnedObjectPath::try_from(SESSION).unwrap();
        let info = |trigger: &str| {
            HashMap::from([
                ("description", Value::from("Talk")),
                ("trigger_description", Value::from(trigger.to_string())),
            ])
        };
        let shortcuts = vec![("mute", info("F1")), ("talk", info("Shift+F12"))];
        let m = signal(IFACE, "ShortcutsChanged", &(session, shortcuts));
        assert_eq!(event_of(&m), Some(PortalEvent::Changed("Shift+F12".into())));
        let details: HashMap<&str, Value<'_>> = HashMap::new();
        let m = signal("org.freedesktop.portal.Session", "Closed", &(details,));
        assert!(matches!(event_of(&m), Some(PortalEvent::Closed(_))));
        // A request's answer (handled by ashpd) is no key event.
        let results: HashMap<&str, Value<'_>> = HashMap::new();
        let m = signal(
            "org.freedesktop.portal.Request",
            "Response",
            &(0u32, results),
        );
        assert_eq!(event_of(&m), None);
    }

    #[test]
    fn the_portal_leaving_the_bus_is_seen() {
        let m = |name: &str, old: &str, new: &str| {
            signal(
                "org.freedesktop.DBus",
                "NameOwnerChanged",
                &(name, old, new),
            )
        };
        assert!(portal_left(&m(PORTAL, ":1.4", "")), "stopped");
        assert!(
            portal_left(&m(PORTAL, ":1.4", ":1.9")),
            "restarted: the new one does not know our session"
        );
        assert!(!portal_left(&m(PORTAL, "", ":1.9")), "a first start");
        assert!(!portal_left(&m("org.example.Other", ":1.4", "")));
    }
}
