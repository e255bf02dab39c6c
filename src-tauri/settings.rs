//! The app's settings, kept as JSON in the user's config directory
//! (`$XDG_CONFIG_HOME/org.squawk.desktop/settings.json` on Linux).
//! Secrets never go here: passwords and tokens belong in the OS keyring.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most servers remembered in [`Settings::servers`].
pub const MAX_SERVERS: usize = 10;

/// File name inside the config directory.
pub const FILE: &str = "settings.json";

/// What the app remembers between runs. Unknown keys are ignored and
/// missing keys take their defaults, so older and newer files both load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Servers connected to, most recent first (at most [`MAX_SERVERS`]).
    pub servers: Vec<String>,
    /// Display name last used.
    pub name: Option<String>,
    /// Account (username) last signed in with, on a server with accounts;
    /// its refresh token is in the OS keyring, never here.
    pub user: Option<String>,
    /// Channels joined at the last connect.
    pub channels: Vec<String>,
    /// Global talk key (global-hotkey name, e.g. `F9`).
    pub talk_key: Option<String>,
    /// Latch (toggle) mode for the talk key.
    pub latch: bool,
    /// Release tail, ms (default 250 when absent).
    pub release_tail_ms: Option<u32>,
    /// Microphone gain, linear (default 1.0 when absent).
    pub input_gain: Option<f32>,
    /// Output volume, linear (default 1.0 when absent).
    pub output_volume: Option<f32>,
    /// Microphone, by PulseAudio name or description (the system's default
    /// when absent).
    pub input_device: Option<String>,
    /// Speaker, likewise.
    pub output_device: Option<String>,
    /// Noise suppression on the capture (default on when absent).
    pub noise_suppression: Option<bool>,
    /// Automatic gain control on the capture (default on when absent).
    pub auto_gain: Option<bool>,
    /// A HID pedal used as a talk key, and what its reports mean.
    pub pedal: Option<PedalSetting>,
    /// Certificates the user trusted on first use, by server (`HOST:PORT`):
    /// their SHA-256 fingerprints (`AB:CD:…`). Only a server whose
    /// certificate the system does not trust is pinned.
    pub pinned_certificates: std::collections::BTreeMap<String, String>,
}

/// A learned HID pedal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PedalSetting {
    /// The device as listed when it was learned.
    pub device: crate::pedal::HidDevice,
    /// Which bits mean "down".
    pub map: crate::pedal::PedalMap,
}

impl Settings {
    /// Puts `url` first in the remembered servers, without duplicates.
    pub fn remember_server(&mut self, url: &str) {
        self.servers.retain(|s| s != url);
        self.servers.insert(0, url.to_string());
        self.servers.truncate(MAX_SERVERS);
    }

    /// Reads `dir/settings.json`. A missing file is the default; an
    /// unreadable or invalid one is the default plus the reason, so that
    /// the app starts anyway and says why its settings were not used.
    pub fn load(dir: &Path) -> (Self, Option<String>) {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(s) => (s, None),
                Err(e) => (Self::default(), Some(format!("{}: {e}", path.display()))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Self::default(), None),
            Err(e) => (Self::default(), Some(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes `dir/settings.json` (creating `dir`), through a temporary file
    /// and a rename so that a crash never leaves half a file.
    ///
    /// # Errors
    /// The I/O error, e.g. a read-only config directory.
    pub fn save(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("squawk-settings-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn servers_are_most_recent_first_without_duplicates() {
        let mut s = Settings::default();
        for url in ["ws://a/ws", "ws://b/ws", "ws://a/ws"] {
            s.remember_server(url);
        }
        assert_eq!(s.servers, ["ws://a/ws", "ws://b/ws"]);
        for i in 0..20 {
            s.remember_server(&format!("ws://h{i}/ws"));
        }
        assert_eq!(s.servers.len(), MAX_SERVERS);
        assert_eq!(s.servers[0], "ws://h19/ws");
    }

    #[test]
    fn settings_survive_a_restart_and_bad_files_do_not_stop_the_app() {
        let d = dir("roundtrip");
        assert_eq!(
            Settings::load(&d),
            (Settings::default(), None),
            "no file yet"
        );
        let mut s = Settings {
            name: Some("Desk".into()),
            channels: vec!["ops".into(), "fire".into()],
            talk_key: Some("F9".into()),
            latch: true,
            release_tail_ms: Some(400),
            input_gain: Some(1.5),
            input_device: Some("alsa_input.usb-headset".into()),
            noise_suppression: Some(false),
            ..Settings::default()
        };
        s.remember_server("ws://h:7300/ws");
        let path = s.save(&d).unwrap();
        assert_eq!(Settings::load(&d), (s, None));
        std::fs::write(&path, "{not json").unwrap();
        let (loaded, why) = Settings::load(&d);
        assert_eq!(loaded, Settings::default());
        assert!(why.unwrap().contains("settings.json"));
        // Keys from a newer version are ignored, missing ones defaulted.
        std::fs::write(&path, r#"{"name":"X","future_key":1}"#).unwrap();
        assert_eq!(Settings::load(&d).0.name.as_deref(), Some("X"));
        std::fs::remove_dir_all(d).unwrap();
    }
}
