//! Server passwords in the OS keyring (keyring-core; on Linux the Secret
//! Service over D-Bus: GNOME Keyring, KWallet), never in the settings file.
//! One entry per server and display name: service [`SERVICE`], user
//! `NAME@SERVER-URL`.

use std::sync::Arc;

use keyring_core::{CredentialStore, Error};

/// The keyring service name of every Squawk entry.
pub const SERVICE: &str = "org.squawk.desktop";

/// The keyring, or why there is none (no Secret Service on this desktop):
/// then passwords are asked for each time, and the UI says why.
pub struct Secrets {
    store: Result<Arc<CredentialStore>, String>,
}

impl Secrets {
    /// The desktop's keyring (Secret Service on Linux).
    pub fn system() -> Self {
        #[cfg(target_os = "linux")]
        let store = zbus_secret_service_keyring_store::Store::new()
            .map(|s| s as Arc<CredentialStore>)
            .map_err(|e| format!("no keyring (Secret Service): {e}"));
        #[cfg(not(target_os = "linux"))]
        let store = Err("no keyring store for this platform yet".to_string());
        Self { store }
    }

    /// Secrets kept in `store` (tests pass keyring-core's mock store).
    pub fn with_store(store: Arc<CredentialStore>) -> Self {
        Self { store: Ok(store) }
    }

    /// No keyring at all, with the reason.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self {
            store: Err(why.into()),
        }
    }

    fn entry(&self, server: &str, name: &str) -> Result<keyring_core::Entry, String> {
        let store = self.store.as_ref().map_err(Clone::clone)?;
        store
            .build(SERVICE, &format!("{name}@{server}"), None)
            .map_err(|e| format!("keyring: {e}"))
    }

    /// The password kept for `name` on `server`, if any.
    ///
    /// # Errors
    /// No keyring, or the keyring failed (locked, D-Bus error).
    pub fn get(&self, server: &str, name: &str) -> Result<Option<String>, String> {
        match self.entry(server, name)?.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(format!("keyring: {e}")),
        }
    }

    /// Keeps `password` for `name` on `server`, replacing an older one.
    ///
    /// # Errors
    /// No keyring, or the keyring refused.
    pub fn set(&self, server: &str, name: &str, password: &str) -> Result<(), String> {
        self.entry(server, name)?
            .set_password(password)
            .map_err(|e| format!("keyring: {e}"))
    }

    /// Forgets the password for `name` on `server` (nothing kept is fine).
    ///
    /// # Errors
    /// No keyring, or the keyring refused.
    pub fn forget(&self, server: &str, name: &str) -> Result<(), String> {
        match self.entry(server, name)?.delete_credential() {
            Ok(()) | Err(Error::NoEntry) => Ok(()),
            Err(e) => Err(format!("keyring: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> Secrets {
        Secrets::with_store(keyring_core::mock::Store::new().unwrap())
    }

    #[test]
    fn passwords_are_kept_per_server_and_name() {
        let s = mock();
        assert_eq!(s.get("ws://a/ws", "Ann"), Ok(None));
        s.set("ws://a/ws", "Ann", "one").unwrap();
        s.set("ws://b/ws", "Ann", "two").unwrap();
        assert_eq!(s.get("ws://a/ws", "Ann"), Ok(Some("one".into())));
        assert_eq!(s.get("ws://b/ws", "Ann"), Ok(Some("two".into())));
        assert_eq!(s.get("ws://a/ws", "Bo"), Ok(None));
        s.set("ws://a/ws", "Ann", "three").unwrap();
        assert_eq!(s.get("ws://a/ws", "Ann"), Ok(Some("three".into())));
        s.forget("ws://a/ws", "Ann").unwrap();
        assert_eq!(s.get("ws://a/ws", "Ann"), Ok(None));
        s.forget("ws://a/ws", "Ann")
            .expect("forgetting nothing is fine");
    }

    #[test]
    fn without_a_keyring_every_call_says_why() {
        let s = Secrets::unavailable("no keyring (Secret Service): not running");
        let e = s.get("ws://a/ws", "Ann").unwrap_err();
        assert!(e.contains("Secret Service"), "{e}");
        assert!(s.set("ws://a/ws", "Ann", "x").is_err());
    }
}
