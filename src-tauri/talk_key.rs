//! The global talk key: which key events become talk presses and releases
//! (hold or latch), and whether a global key can work on this desktop at
//! all. Pure logic; `lib.rs` feeds it events from
//! `tauri-plugin-global-shortcut` (global-hotkey: X11 key grabs).

/// How the talk key acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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

    /// The transmission ended without the key (Floor Deny, Floor Revoke,
    /// connection lost): a latched key's next press talks again.
    pub fn talk_ended(&mut self) {
        if self.mode == KeyMode::Latch {
            self.talking = false;
        }
    }
}

/// Whether a global key can work here, from the session's environment
/// (`DISPLAY`, `WAYLAND_DISPLAY`). global-hotkey reports success even with
/// no display at all, so this is decided up front.
///
/// # Errors
/// A sentence for the UI saying why no global key works.
pub fn availability(display: Option<&str>, wayland: Option<&str>) -> Result<(), String> {
    let set = |v: Option<&str>| v.is_some_and(|s| !s.trim().is_empty());
    match (set(display), set(wayland)) {
        (_, true) => Err(
            "Wayland session: global keys need the GlobalShortcuts portal, which \
                          Squawk does not use yet"
                .into(),
        ),
        (true, false) => Ok(()),
        (false, false) => Err("no X11 display (DISPLAY is not set)".into()),
    }
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
    fn availability_follows_the_session() {
        assert!(availability(Some(":0"), None).is_ok());
        let e = availability(None, None).unwrap_err();
        assert!(e.contains("DISPLAY"), "{e}");
        assert!(availability(Some(""), None).is_err());
        let e = availability(Some(":0"), Some("wayland-0")).unwrap_err();
        assert!(e.contains("portal"), "{e}");
    }
}
