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
}
