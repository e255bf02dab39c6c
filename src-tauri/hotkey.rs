//! The global talk key's side of the shell: binding the key (an X11 grab
//! through `tauri-plugin-global-shortcut`, or the GlobalShortcuts portal on
//! Wayland, `portal.rs`), turning its events (and the pedal's) into Floor
//! Requests and releases through the connection actor, and telling the UI
//! its status. The decisions are `talk_key.rs`'s pure machines
//! (`TalkKey`, `TalkKeyBinding`); this module does their I/O.

use std::time::Duration;

use tauri::{Manager, State};

#[cfg(target_os = "linux")]
use crate::portal;
use crate::{
    AppState, MAX_RELEASE_TAIL_MS, PortalSession, emit_ui,
    events::{AppEvent, TalkKeyStatus, UiError},
    save_settings, talk_key,
};

/// A global talk key event (from the global-shortcut plugin's thread, the
/// portal's task or the pedal reader): `pressed` true for key down.
pub(crate) fn on_talk_key<R: tauri::Runtime>(app: &tauri::AppHandle<R>, pressed: bool) {
    let action = match app.state::<AppState>().talk_key.lock() {
        Ok(mut k) => k.input(pressed),
        Err(_) => None,
    };
    if let Some(action) = action {
        talk_key_action(app, action);
    }
}

/// Talks or stops for the talk key (Floor Request or release tail and
/// Floor Release), or says why it cannot.
pub(crate) fn talk_key_action<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    action: talk_key::KeyAction,
) {
    let state = app.state::<AppState>();
    let target = state.target.lock().ok().and_then(|t| t.clone());
    let (selected, options) = state
        .selection
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let target = match (selected.is_empty(), target) {
        (false, _) => Some(selected),
        (true, t) => t.map(|t| vec![t]),
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = app.state::<AppState>();
        let (shown, down) = (app.clone(), action == talk_key::KeyAction::Press);
        let done = match (action, target) {
            (talk_key::KeyAction::Press, Some(chans)) => {
                state
                    .connection
                    .call(move |e| {
                        emit_ui(&shown, AppEvent::TalkKey { down: true });
                        e.press_all(chans, options);
                    })
                    .await
            }
            (talk_key::KeyAction::Press, None) => Err(UiError::not_connected()),
            (talk_key::KeyAction::Release, _) => {
                state
                    .connection
                    .call(move |e| {
                        emit_ui(&shown, AppEvent::TalkKey { down: false });
                        e.release();
                    })
                    .await
            }
        };
        if down && done.is_err() {
            // Nothing to talk into: say so instead of a silent key.
            if let Ok(mut k) = state.talk_key.lock() {
                k.talk_ended();
            }
            emit_ui(
                &app,
                AppEvent::Warning {
                    message: "talk key: not connected to a channel".into(),
                },
            );
        }
    });
}

/// Checks a talk key name as global-hotkey parses it (`F9`, `F13`,
/// `Control+Shift+KeyT`, ...).
///
/// # Errors
/// A message naming the key and what is wrong with it.
pub fn check_talk_key(key: &str) -> Result<tauri_plugin_global_shortcut::Shortcut, String> {
    key.parse()
        .map_err(|e| format!("talk key {key:?} is not a key global-hotkey knows: {e}"))
}

/// Tells the UI the talk key's status and keeps it for `app_talk_key_status`.
pub(crate) fn set_key_status<R: tauri::Runtime>(app: &tauri::AppHandle<R>, status: TalkKeyStatus) {
    if !status.available && status.key.is_some() && !status.pending {
        tracing::warn!(
            "global talk key unavailable: {}",
            status.reason.as_deref().unwrap_or_default()
        );
    }
    emit_ui(app, AppEvent::TalkKeyStatus(status.clone()));
    if let Ok(mut s) = app.state::<AppState>().talk_key_status.lock() {
        *s = Some(status);
    }
}

/// Registers the global talk key (replacing any earlier one), tells the UI
/// whether it works, and returns that status (`talk_key_status` event).
/// On Wayland the key is asked of the GlobalShortcuts portal: the status is
/// `pending` until the desktop answers, then a new event follows.
pub(crate) fn setup_talk_key<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    key: Option<&str>,
    latch: bool,
) -> TalkKeyStatus {
    use talk_key::{Backend, Binding, Todo, Want};
    use tauri_plugin_global_shortcut::{GlobalShortcut, ShortcutState};
    let mode = if latch {
        talk_key::KeyMode::Latch
    } else {
        talk_key::KeyMode::Hold
    };
    let state = app.state::<AppState>();
    if let Ok(mut k) = state.talk_key.lock() {
        *k = talk_key::TalkKey::new(mode);
    }
    let display = std::env::var("DISPLAY").ok();
    let wayland = std::env::var("WAYLAND_DISPLAY").ok();
    let backend = talk_key::backend(display.as_deref(), wayland.as_deref());
    // What to bind, or why no key can be.
    let want: Result<Want, String> = match key {
        None => Ok(Want::Nothing),
        Some(k) => check_talk_key(k).and_then(|shortcut| match backend.clone()? {
            Backend::X11 => Ok(Want::Grab(shortcut)),
            Backend::Portal => talk_key::xdg_trigger(&shortcut).map(Want::Portal),
        }),
    };
    let Ok(mut binding) = state.binding.lock() else {
        return TalkKeyStatus::new(key, mode, None, Err("talk key state lost".into()));
    };
    let (old, todo) = binding.rebind(want.clone().unwrap_or(Want::Nothing));
    // The plugin is missing only on the mock runtime (command tests).
    let plugin = app.try_state::<GlobalShortcut<R>>();
    match old {
        // `unregister` (unlike the plugin's `unregister_all`) holds no lock
        // while it waits for the main thread, so a talk key pressed
        // meanwhile cannot deadlock it.
        Binding::Grab(old) => {
            if let Some(p) = &plugin
                && let Err(e) = p.unregister(old)
            {
                tracing::warn!("cannot unregister the old talk key: {e}");
            }
        }
        // Dropped: the earlier key's portal session closes.
        Binding::Portal { session, .. } => drop(session),
        Binding::Nothing => {}
    }
    let status = match (key, want, todo) {
        (None, _, _) => TalkKeyStatus::new(None, mode, None, Err("no talk key set".into())),
        (Some(k), Err(reason), _) => TalkKeyStatus::new(Some(k), mode, backend.ok(), Err(reason)),
        (Some(k), Ok(_), Todo::Keep) => match binding.now() {
            Binding::Portal {
                session: Some(_), ..
            } => portal_key_status(k, mode, &portal_trigger(&mut binding)),
            Binding::Portal { session: None, .. } => asking(k, mode),
            _ => TalkKeyStatus::new(Some(k), mode, Some(Backend::X11), Ok(())),
        },
        (Some(k), Ok(_), Todo::Grab(shortcut)) => {
            let works = match &plugin {
                Some(p) => p
                    .on_shortcut(shortcut, |app, _shortcut, event| {
                        on_talk_key(app, event.state() == ShortcutState::Pressed);
                    })
                    .map(|()| binding.grabbed(shortcut))
                    .map_err(|e| format!("cannot register {k}: {e}")),
                None => Err("no global shortcut plugin".into()),
            };
            TalkKeyStatus::new(Some(k), mode, Some(Backend::X11), works)
        }
        (
            Some(k),
            Ok(_),
            Todo::AskPortal {
                trigger,
                generation,
            },
        ) => {
            drop(binding);
            bind_portal_key(app, generation, k, trigger);
            asking(k, mode)
        }
        (Some(k), Ok(_), Todo::Nothing) => {
            TalkKeyStatus::new(Some(k), mode, backend.ok(), Err("no talk key set".into()))
        }
    };
    set_key_status(app, status.clone());
    status
}

/// The status of a portal key while the desktop has not answered yet.
pub(crate) fn asking(key: &str, mode: talk_key::KeyMode) -> TalkKeyStatus {
    let mut ev = TalkKeyStatus::new(
        Some(key),
        mode,
        Some(talk_key::Backend::Portal),
        Err("asking the desktop for the key (GlobalShortcuts portal)".into()),
    );
    ev.pending = true;
    ev
}

/// The desktop's description of the portal session's trigger (empty
/// without a session).
pub(crate) fn portal_trigger(binding: &mut talk_key::TalkKeyBinding<PortalSession>) -> String {
    #[cfg(target_os = "linux")]
    return binding
        .session_mut()
        .map(|s| s.trigger.clone())
        .unwrap_or_default();
    #[cfg(not(target_os = "linux"))]
    {
        let _ = binding;
        String::new()
    }
}

/// The status of a talk key the portal bound, with the desktop's
/// description of its trigger (empty: the desktop assigned no key yet).
pub(crate) fn portal_key_status(
    key: &str,
    mode: talk_key::KeyMode,
    trigger: &str,
) -> TalkKeyStatus {
    let works = if trigger.is_empty() {
        Err(
            "the desktop has not assigned a key to Squawk's talk shortcut yet: \
             set one in its keyboard shortcut settings"
                .to_string(),
        )
    } else {
        Ok(())
    };
    let mut ev = TalkKeyStatus::new(Some(key), mode, Some(talk_key::Backend::Portal), works);
    ev.trigger = Some(trigger.to_owned());
    ev
}

/// Binds the talk key through the GlobalShortcuts portal, in the
/// background: the desktop may first ask the user. Its answer, and later
/// its trigger changes, become `talk_key_status` events; its key events
/// drive the talk key, while `generation` is still the current binding's.
#[cfg(target_os = "linux")]
pub(crate) fn bind_portal_key<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    generation: u64,
    key: &str,
    trigger: String,
) {
    // Latch may change while the session is kept: read the mode when used.
    let mode = |app: &tauri::AppHandle<R>| {
        app.state::<AppState>()
            .talk_key
            .lock()
            .map_or(talk_key::KeyMode::Hold, |k| k.mode())
    };
    let current = move |app: &tauri::AppHandle<R>| {
        app.state::<AppState>()
            .binding
            .lock()
            .is_ok_and(|b| b.is_current(generation))
    };
    let app = app.clone();
    let key = key.to_string();
    tauri::async_runtime::spawn(async move {
        let on_event = {
            let (app, key) = (app.clone(), key.clone());
            move |ev: portal::PortalEvent| {
                if !current(&app) {
                    return;
                }
                match ev {
                    portal::PortalEvent::Down => on_talk_key(&app, true),
                    portal::PortalEvent::Up => on_talk_key(&app, false),
                    portal::PortalEvent::Changed(trigger) => {
                        if let Ok(mut b) = app.state::<AppState>().binding.lock()
                            && let Some(k) = b.session_mut()
                        {
                            k.trigger = trigger.clone();
                        }
                        set_key_status(&app, portal_key_status(&key, mode(&app), &trigger));
                    }
                    portal::PortalEvent::Closed(why) => {
                        let lost = app
                            .state::<AppState>()
                            .talk_key
                            .lock()
                            .ok()
                            .and_then(|mut k| k.lost());
                        if let Some(action) = lost {
                            talk_key_action(&app, action);
                        }
                        let closed = app
                            .state::<AppState>()
                            .binding
                            .lock()
                            .ok()
                            .and_then(|mut b| b.closed(generation));
                        drop(closed);
                        let ev = TalkKeyStatus::new(
                            Some(&key),
                            mode(&app),
                            Some(talk_key::Backend::Portal),
                            Err(why),
                        );
                        set_key_status(&app, ev);
                    }
                }
            }
        };
        let result = portal::bind(&trigger, on_event).await;
        let state = app.state::<AppState>();
        let ev = match result {
            Ok(bound) => {
                let trigger = bound.trigger.clone();
                let Ok(mut b) = state.binding.lock() else {
                    return;
                };
                // A newer key replaced this one meanwhile: dropping ours
                // (given back) closes it.
                if b.answered(generation, bound).is_err() {
                    return;
                }
                drop(b);
                portal_key_status(&key, mode(&app), &trigger)
            }
            Err(_) if !current(&app) => return,
            Err(reason) => TalkKeyStatus::new(
                Some(&key),
                mode(&app),
                Some(talk_key::Backend::Portal),
                Err(reason),
            ),
        };
        set_key_status(&app, ev);
    });
}

/// No portal off Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn bind_portal_key<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    _generation: u64,
    key: &str,
    _trigger: String,
) {
    let mode = app
        .state::<AppState>()
        .talk_key
        .lock()
        .map_or(talk_key::KeyMode::Hold, |k| k.mode());
    set_key_status(
        app,
        TalkKeyStatus::new(
            Some(key),
            mode,
            Some(talk_key::Backend::Portal),
            Err("the GlobalShortcuts portal is Linux only".into()),
        ),
    );
}

/// Sets the talk key (`null` for none), latch mode and release tail (ms,
/// 0 to [`MAX_RELEASE_TAIL_MS`]), saves them, and returns the key's status
/// (as the `talk_key_status` event).
///
/// # Errors
/// An unknown key name or a tail out of range, before anything changes.
#[tauri::command]
pub(crate) async fn app_set_talk_key<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
    key: Option<String>,
    latch: bool,
    tail_ms: u32,
) -> Result<AppEvent, UiError> {
    let key = key.filter(|k| !k.trim().is_empty());
    if let Some(k) = &key {
        check_talk_key(k).map_err(UiError::invalid)?;
    }
    if tail_ms > MAX_RELEASE_TAIL_MS {
        return Err(UiError::invalid(format!(
            "release tail {tail_ms} ms: at most {MAX_RELEASE_TAIL_MS} ms"
        )));
    }
    if let Ok(mut t) = state.release_tail_ms.lock() {
        *t = Some(tail_ms);
    }
    state
        .connection
        .apply(move |e| e.set_release_tail(Duration::from_millis(u64::from(tail_ms))))
        .await;
    let status = setup_talk_key(&app, key.as_deref(), latch);
    save_settings(state.inner(), |s| {
        s.talk_key = key.clone();
        s.latch = latch;
        s.release_tail_ms = Some(tail_ms);
    });
    Ok(AppEvent::TalkKeyStatus(status))
}

/// The talk key's status (`talk_key_status` event), for a UI that loads
/// after it was sent.
#[tauri::command]
pub(crate) fn app_talk_key_status(state: State<'_, AppState>) -> Option<AppEvent> {
    state
        .talk_key_status
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .map(AppEvent::TalkKeyStatus)
}
