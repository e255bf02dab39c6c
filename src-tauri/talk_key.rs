//! The global talk key: which key events become talk presses and releases
//! (hold or latch), which backend can give a global key on this desktop,
//! and the key's name in the XDG shortcuts format. Pure logic; `lib.rs`
//! feeds it events from `tauri-plugin-global-shortcut` (global-hotkey: X11
//! key grabs) or from the GlobalShortcuts portal (`portal.rs`, Wayland).

/// How the talk key acts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    /// Key down talks, key up releases (a real walkie-talkie).
    #[default]
    Hold,
    /// Each key press toggles talking on and off; key up does nothing.
    Latch,
}

/// What the app should do for a key event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Talk: Floor Request on the target channel.
    Press,
    /// Stop: release tail, then Floor Release.
    Release,
}

/// The talk key's state machine.
///
/// Auto-repeat (key-down events while the key is already down, as X11
/// sends for a held key) never produces a second press.
#[derive(Debug, Clone, Default)]
pub struct TalkKey {
    mode: KeyMode,
    down: bool,
    talking: bool,
}

impl TalkKey {
    /// A talk key in `mode`, up, not talking.
    pub fn new(mode: KeyMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// The mode.
    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// A key event: `pressed` true for key down, false for key up.
    pub fn input(&mut self, pressed: bool) -> Option<KeyAction> {
        match (pressed, self.down) {
            (true, true) | (false, false) => None, // auto-repeat, or a stray up
            (true, false) => {
                self.down = true;
                self.talking = match self.mode {
                    KeyMode::Hold => true,
                    KeyMode::Latch => !self.talking,
                };
                Some(if self.talking {
                    KeyAction::Press
                } else {
                    KeyAction::Release
                })
            }
            (false, true) => {
                self.down = false;
                match self.mode {
                    KeyMode::Hold => {
                        self.talking = false;
                        Some(KeyAction::Release)
                    }
                    KeyMode::Latch => None,
                }
            }
        }
    }

    /// The key's source went away (the portal session closed, a pedal was
    /// unplugged): no key up will come. Stops a transmission the key
    /// started, in either mode.
    pub fn lost(&mut self) -> Option<KeyAction> {
        self.down = false;
        std::mem::take(&mut self.talking).then_some(KeyAction::Release)
    }

    /// The transmission ended without the key (Floor Deny, Floor Revoke,
    /// connection lost): a latched key's next press talks again.
    pub fn talk_ended(&mut self) {
        if self.mode == KeyMode::Latch {
            self.talking = false;
        }
    }
}

/// The global talk key a backend should bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// No key.
    Nothing,
    /// An X11 key grab of this key.
    Grab(tauri_plugin_global_shortcut::Shortcut),
    /// A GlobalShortcuts portal session asking for this trigger (XDG
    /// shortcuts format, [`xdg_trigger`]).
    Portal(String),
}

/// The global talk key bound now. `P` is the portal session (dropping it
/// closes it: `portal::PortalKey`), generic so that this stays pure.
#[derive(Debug, Default)]
pub enum Binding<P> {
    /// None.
    #[default]
    Nothing,
    /// An X11 key grab (global-hotkey).
    Grab(tauri_plugin_global_shortcut::Shortcut),
    /// A portal session asked for `preferred`; `session` once the desktop
    /// answered.
    Portal {
        /// The trigger asked for.
        preferred: String,
        /// This binding's number: events and answers of an older one are
        /// dropped.
        generation: u64,
        /// The session, once bound.
        session: Option<P>,
    },
}

/// What binding a new key takes.
#[derive(Debug, PartialEq, Eq)]
pub enum Todo {
    /// Nothing to bind (no key, or no backend).
    Nothing,
    /// The same key is bound already: only the mode or tail changed, and
    /// the desktop is not asked again.
    Keep,
    /// Grab this key; report [`TalkKeyBinding::grabbed`] on success.
    Grab(tauri_plugin_global_shortcut::Shortcut),
    /// Ask the portal for `trigger`; report the session with
    /// [`TalkKeyBinding::answered`] under `generation`.
    AskPortal {
        /// The trigger to ask for.
        trigger: String,
        /// The binding's number.
        generation: u64,
    },
}

/// The talk key's binding and its rebinding, as a pure state machine: the
/// shell carries out the [`Todo`] and undoes the [`Binding`] given back
/// (ungrabs the key, or drops the portal session).
#[derive(Debug)]
pub struct TalkKeyBinding<P> {
    now: Binding<P>,
    generation: u64,
}

impl<P> Default for TalkKeyBinding<P> {
    fn default() -> Self {
        Self {
            now: Binding::Nothing,
            generation: 0,
        }
    }
}

impl<P> TalkKeyBinding<P> {
    /// What is bound now.
    pub fn now(&self) -> &Binding<P> {
        &self.now
    }

    /// Binds `want` instead of what is bound now. Returns the binding to
    /// undo ([`Binding::Nothing`] when it is kept) and what to do.
    pub fn rebind(&mut self, want: Want) -> (Binding<P>, Todo) {
        let same = match (&self.now, &want) {
            (Binding::Grab(a), Want::Grab(b)) => a == b,
            (Binding::Portal { preferred, .. }, Want::Portal(t)) => preferred == t,
            _ => false,
        };
        if same {
            return (Binding::Nothing, Todo::Keep);
        }
        let old = std::mem::take(&mut self.now);
        let todo = match want {
            Want::Nothing => Todo::Nothing,
            Want::Grab(key) => Todo::Grab(key),
            Want::Portal(trigger) => {
                self.generation += 1;
                self.now = Binding::Portal {
                    preferred: trigger.clone(),
                    generation: self.generation,
                    session: None,
                };
                Todo::AskPortal {
                    trigger,
                    generation: self.generation,
                }
            }
        };
        (old, todo)
    }

    /// The grab of [`Todo::Grab`] worked.
    pub fn grabbed(&mut self, key: tauri_plugin_global_shortcut::Shortcut) {
        self.now = Binding::Grab(key);
    }

    /// Whether `generation` is the portal binding now (its events count).
    pub fn is_current(&self, generation: u64) -> bool {
        matches!(self.now, Binding::Portal { generation: g, .. } if g == generation)
    }

    /// The desktop answered the portal request of `generation`: the
    /// session is kept, or given back when a newer key replaced it (drop it
    /// to close it).
    ///
    /// # Errors
    /// The session, when `generation` is not the current binding.
    pub fn answered(&mut self, generation: u64, bound: P) -> Result<(), P> {
        match &mut self.now {
            Binding::Portal {
                generation: g,
                session,
                ..
            } if *g == generation => {
                *session = Some(bound);
                Ok(())
            }
            _ => Err(bound),
        }
    }

    /// The portal session of `generation` ended (the desktop closed it):
    /// nothing is bound, and it is given back.
    pub fn closed(&mut self, generation: u64) -> Option<P> {
        if !self.is_current(generation) {
            return None;
        }
        match std::mem::take(&mut self.now) {
            Binding::Portal { session, .. } => session,
            _ => None,
        }
    }

    /// The portal session now, if bound (to update its trigger).
    pub fn session_mut(&mut self) -> Option<&mut P> {
        match &mut self.now {
            Binding::Portal { session, .. } => session.as_mut(),
            _ => None,
        }
    }
}

/// Where the global talk key comes from on this desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// An X11 key grab (global-hotkey).
    X11,
    /// The xdg-desktop-portal GlobalShortcuts portal (Wayland): the
    /// compositor owns the keyboard, so only it can hand out a global key.
    Portal,
}

/// Which backend can give a global key here, from the session's environment
/// (`DISPLAY`, `WAYLAND_DISPLAY`). A Wayland session uses the portal even
/// when `DISPLAY` is set too: XWayland key grabs only see keys while an X11
/// window has the focus. global-hotkey reports success even with no display
/// at all, so this is decided up front.
///
/// # Errors
/// A sentence for the UI saying why no global key works.
pub fn backend(display: Option<&str>, wayland: Option<&str>) -> Result<Backend, String> {
    let set = |v: Option<&str>| v.is_some_and(|s| !s.trim().is_empty());
    match (set(display), set(wayland)) {
        (_, true) => Ok(Backend::Portal),
        (true, false) => Ok(Backend::X11),
        (false, false) => Err("no display (neither DISPLAY nor WAYLAND_DISPLAY is set)".into()),
    }
}

/// The talk key as the XDG shortcuts specification writes a trigger (the
/// portal's `preferred_trigger`): modifiers `CTRL`, `ALT`, `SHIFT`, `LOGO`
/// then an xkbcommon keysym name, joined by `+`; e.g. `F9`,
/// `CTRL+SHIFT+t`. Source: freedesktop.org Shortcuts Specification 0.1.
///
/// # Errors
/// A key this app cannot name as a keysym (the X11 backend's key set).
pub fn xdg_trigger(key: &tauri_plugin_global_shortcut::Shortcut) -> Result<String, String> {
    use tauri_plugin_global_shortcut::{Code, Modifiers};
    let mut parts: Vec<String> = [
        (Modifiers::CONTROL, "CTRL"),
        (Modifiers::ALT, "ALT"),
        (Modifiers::SHIFT, "SHIFT"),
        (Modifiers::SUPER | Modifiers::META, "LOGO"),
    ]
    .into_iter()
    .filter(|(m, _)| key.mods.intersects(*m))
    .map(|(_, name)| name.to_string())
    .collect();
    let code = key.key.to_string();
    let named = |s: &str| Some(s.to_string());
    let sym = if let Some(letter) = code.strip_prefix("Key").filter(|l| l.len() == 1) {
        Some(letter.to_ascii_lowercase())
    } else if let Some(digit) = code.strip_prefix("Digit") {
        Some(digit.to_string())
    } else if let Some(n) = code.strip_prefix("Numpad").filter(|n| n.len() == 1) {
        Some(format!("KP_{n}"))
    } else if code.len() <= 3 && code.starts_with('F') && code[1..].parse::<u8>().is_ok() {
        Some(code.clone())
    } else {
        match key.key {
            Code::Backslash => named("backslash"),
            Code::BracketLeft => named("bracketleft"),
            Code::BracketRight => named("bracketright"),
            Code::Backquote => named("grave"),
            Code::Comma => named("comma"),
            Code::Equal => named("equal"),
            Code::Minus => named("minus"),
            Code::Period => named("period"),
            Code::Quote => named("apostrophe"),
            Code::Semicolon => named("semicolon"),
            Code::Slash => named("slash"),
            Code::Backspace => named("BackSpace"),
            Code::CapsLock => named("Caps_Lock"),
            Code::Enter => named("Return"),
            Code::Space => named("space"),
            Code::Tab => named("Tab"),
            Code::Delete => named("Delete"),
            Code::End => named("End"),
            Code::Home => named("Home"),
            Code::Insert => named("Insert"),
            Code::PageDown => named("Page_Down"),
            Code::PageUp => named("Page_Up"),
            Code::ArrowDown => named("Down"),
            Code::ArrowLeft => named("Left"),
            Code::ArrowRight => named("Right"),
            Code::ArrowUp => named("Up"),
            Code::NumpadAdd => named("KP_Add"),
            Code::NumpadDecimal => named("KP_Decimal"),
            Code::NumpadDivide => named("KP_Divide"),
            Code::NumpadMultiply => named("KP_Multiply"),
            Code::NumpadSubtract => named("KP_Subtract"),
            Code::NumpadEnter => named("KP_Enter"),
            Code::NumpadEqual => named("KP_Equal"),
            Code::Escape => named("Escape"),
            Code::PrintScreen => named("Print"),
            Code::ScrollLock => named("Scroll_Lock"),
            Code::NumLock => named("Num_Lock"),
            Code::Pause => named("Pause"),
            Code::AudioVolumeDown => named("XF86AudioLowerVolume"),
            Code::AudioVolumeMute => named("XF86AudioMute"),
            Code::AudioVolumeUp => named("XF86AudioRaiseVolume"),
            Code::MediaPlayPause => named("XF86AudioPlay"),
            Code::MediaPlay => named("XF86AudioPlay"),
            Code::MediaPause => named("XF86AudioPause"),
            Code::MediaStop => named("XF86AudioStop"),
            Code::MediaTrackNext => named("XF86AudioNext"),
            Code::MediaTrackPrevious => named("XF86AudioPrev"),
            _ => None,
        }
    };
    let sym = sym.ok_or_else(|| format!("{code} has no name in the XDG shortcuts format"))?;
    parts.push(sym);
    Ok(parts.join("+"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_talks_while_down_and_ignores_auto_repeat() {
        let mut k = TalkKey::new(KeyMode::Hold);
        assert_eq!(k.input(true), Some(KeyAction::Press));
        assert_eq!(k.input(true), None, "auto-repeat");
        assert_eq!(k.input(true), None);
        assert_eq!(k.input(false), Some(KeyAction::Release));
        assert_eq!(k.input(false), None, "stray key up");
        assert_eq!(k.input(true), Some(KeyAction::Press));
    }

    #[test]
    fn latch_toggles_on_key_down() {
        let mut k = TalkKey::new(KeyMode::Latch);
        assert_eq!(k.input(true), Some(KeyAction::Press));
        assert_eq!(k.input(false), None);
        assert_eq!(k.input(true), Some(KeyAction::Release));
        assert_eq!(k.input(false), None);
        assert_eq!(k.input(true), Some(KeyAction::Press));
    }

    #[test]
    fn a_revoked_latch_talks_again_on_the_next_press() {
        let mut k = TalkKey::new(KeyMode::Latch);
        assert_eq!(k.input(true), Some(KeyAction::Press));
        assert_eq!(k.input(false), None);
        k.talk_ended(); // Floor Revoke
        assert_eq!(
            k.input(true),
            Some(KeyAction::Press),
            "not a second release"
        );
        // In hold mode the key itself decides.
        let mut h = TalkKey::new(KeyMode::Hold);
        assert_eq!(h.input(true), Some(KeyAction::Press));
        h.talk_ended();
        assert_eq!(h.input(false), Some(KeyAction::Release));
    }

    #[test]
    fn a_lost_key_stops_what_it_started_once() {
        let mut h = TalkKey::new(KeyMode::Hold);
        assert_eq!(h.lost(), None, "not talking");
        assert_eq!(h.input(true), Some(KeyAction::Press));
        assert_eq!(h.lost(), Some(KeyAction::Release));
        assert_eq!(h.lost(), None);
        assert_eq!(h.input(false), None, "its key up never counts");
        let mut l = TalkKey::new(KeyMode::Latch);
        assert_eq!(l.input(true), Some(KeyAction::Press));
        assert_eq!(l.input(false), None);
        assert_eq!(
            l.lost(),
            Some(KeyAction::Release),
            "a latched talk ends too"
        );
        assert_eq!(
            l.input(true),
            Some(KeyAction::Press),
            "a new source talks again"
        );
    }

    #[test]
    fn the_backend_follows_the_session() {
        assert_eq!(backend(Some(":0"), None), Ok(Backend::X11));
        let e = backend(None, None).unwrap_err();
        assert!(e.contains("DISPLAY"), "{e}");
        assert!(backend(Some(""), Some(" ")).is_err());
        // XWayland sets DISPLAY too; its grabs would miss keys, so: portal.
        assert_eq!(backend(Some(":0"), Some("wayland-0")), Ok(Backend::Portal));
        assert_eq!(backend(None, Some("wayland-1")), Ok(Backend::Portal));
    }

    fn trigger(key: &str) -> Result<String, String> {
        xdg_trigger(&key.parse().expect("a global-hotkey name"))
    }

    #[test]
    fn talk_keys_become_xdg_shortcut_triggers() {
        assert_eq!(trigger("F9").as_deref(), Ok("F9"));
        assert_eq!(trigger("F24").as_deref(), Ok("F24"));
        assert_eq!(trigger("Control+Shift+KeyT").as_deref(), Ok("CTRL+SHIFT+t"));
        // Modifiers come in one order whatever order they were typed in.
        assert_eq!(
            trigger("Shift+Alt+Control+Digit5").as_deref(),
            Ok("CTRL+ALT+SHIFT+5")
        );
        assert_eq!(trigger("Super+Space").as_deref(), Ok("LOGO+space"));
        assert_eq!(trigger("Numpad0").as_deref(), Ok("KP_0"));
        assert_eq!(trigger("Pause").as_deref(), Ok("Pause"));
        assert_eq!(trigger("Backquote").as_deref(), Ok("grave"));
        assert_eq!(trigger("PageDown").as_deref(), Ok("Page_Down"));
        assert_eq!(trigger("MediaPlayPause").as_deref(), Ok("XF86AudioPlay"));
        assert_eq!(trigger("NumpadEqual").as_deref(), Ok("KP_Equal"));
        // Every key global-hotkey parses has a name; a code it cannot parse:
        let odd = tauri_plugin_global_shortcut::Shortcut::new(
            None,
            tauri_plugin_global_shortcut::Code::IntlRo,
        );
        let e = xdg_trigger(&odd).unwrap_err();
        assert!(e.contains("IntlRo"), "{e}");
    }

    fn key(name: &str) -> tauri_plugin_global_shortcut::Shortcut {
        name.parse().unwrap()
    }

    #[test]
    fn rebinding_the_same_key_keeps_it_and_another_replaces_it() {
        let mut b = TalkKeyBinding::<&str>::default();
        let (old, todo) = b.rebind(Want::Grab(key("F9")));
        assert!(matches!(old, Binding::Nothing));
        assert_eq!(todo, Todo::Grab(key("F9")));
        b.grabbed(key("F9"));
        // Latch or tail changed, same key: nothing ungrabbed, nothing grabbed.
        let (old, todo) = b.rebind(Want::Grab(key("F9")));
        assert!(matches!(old, Binding::Nothing));
        assert_eq!(todo, Todo::Keep);
        // Another key: the old one is given back to ungrab.
        let (old, todo) = b.rebind(Want::Grab(key("F10")));
        assert!(matches!(old, Binding::Grab(k) if k == key("F9")));
        assert_eq!(todo, Todo::Grab(key("F10")));
        // Its grab failed: nothing is bound, and no key is ungrabbed later.
        let (old, todo) = b.rebind(Want::Nothing);
        assert!(matches!(old, Binding::Nothing));
        assert_eq!(todo, Todo::Nothing);
    }

    #[test]
    fn a_portal_answer_or_event_of_a_replaced_key_is_dropped() {
        let mut b = TalkKeyBinding::<&str>::default();
        let (_, todo) = b.rebind(Want::Portal("F9".into()));
        assert_eq!(
            todo,
            Todo::AskPortal {
                trigger: "F9".into(),
                generation: 1
            }
        );
        // The user picks another key before the desktop answered.
        let (old, todo) = b.rebind(Want::Portal("CTRL+SHIFT+t".into()));
        assert!(matches!(
            old,
            Binding::Portal {
                generation: 1,
                session: None,
                ..
            }
        ));
        assert_eq!(
            todo,
            Todo::AskPortal {
                trigger: "CTRL+SHIFT+t".into(),
                generation: 2
            }
        );
        assert_eq!(b.answered(1, "old session"), Err("old session"), "closed");
        assert!(!b.is_current(1));
        assert_eq!(b.answered(2, "session"), Ok(()));
        assert_eq!(b.session_mut(), Some(&mut "session"));
        // Same trigger again (latch changed): the session is kept.
        let (old, todo) = b.rebind(Want::Portal("CTRL+SHIFT+t".into()));
        assert!(matches!(old, Binding::Nothing));
        assert_eq!(todo, Todo::Keep);
        assert!(b.is_current(2));
        // An old session's close changes nothing; the current one's unbinds.
        assert_eq!(b.closed(1), None);
        assert_eq!(b.closed(2), Some("session"));
        assert!(matches!(b.now(), Binding::Nothing));
        // Asking for the same trigger after a close asks the desktop again.
        let (_, todo) = b.rebind(Want::Portal("CTRL+SHIFT+t".into()));
        assert!(matches!(todo, Todo::AskPortal { generation: 3, .. }));
    }

    #[test]
    fn moving_from_a_grab_to_the_portal_gives_the_grab_back() {
        let mut b = TalkKeyBinding::<&str>::default();
        b.rebind(Want::Grab(key("F9")));
        b.grabbed(key("F9"));
        let (old, todo) = b.rebind(Want::Portal("F9".into()));
        assert!(matches!(old, Binding::Grab(k) if k == key("F9")));
        assert!(matches!(todo, Todo::AskPortal { generation: 1, .. }));
        b.answered(1, "s").unwrap();
        let (old, todo) = b.rebind(Want::Nothing);
        assert!(matches!(
            old,
            Binding::Portal {
                session: Some("s"),
                ..
            }
        ));
        assert_eq!(todo, Todo::Nothing);
    }
}
