//! Who may connect: anyone, or whoever knows the server password (as a
//! Mumble server password). The config holds only an Argon2id hash in PHC
//! form (`$argon2id$v=19$m=...`), made with `squawk-server hash-password`.

use std::sync::Arc;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

/// The server's access rule.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// PHC string of the password hash; `None`: open server.
    hash: Option<Arc<str>>,
}

/// Why a `hello` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server has a password and `hello` carried none.
    #[error("this server needs a password")]
    Missing,
    /// The password does not match.
    #[error("wrong password")]
    Wrong,
}

impl Access {
    /// Anyone may connect.
    pub fn open() -> Self {
        Self::default()
    }

    /// Only with the password whose Argon2 hash is `phc`.
    ///
    /// # Errors
    /// The PHC string cannot be parsed (say which part is wrong).
    pub fn with_hash(phc: &str) -> Result<Self, String> {
        PasswordHash::new(phc).map_err(|e| format!("password_hash is not a PHC string: {e}"))?;
        Ok(Self {
            hash: Some(phc.into()),
        })
    }

    /// Whether a password is needed.
    pub fn needs_password(&self) -> bool {
        self.hash.is_some()
    }

    /// Checks a `hello`'s password. Argon2 is slow on purpose (tens of ms):
    /// call it off the async threads.
    ///
    /// # Errors
    /// [`Refusal`] when a password is needed and missing or wrong.
    pub fn check(&self, password: Option<&str>) -> Result<(), Refusal> {
        let Some(phc) = &self.hash else {
            return Ok(());
        };
        let password = password.ok_or(Refusal::Missing)?;
        verify_password(phc, password)
            .then_some(())
            .ok_or(Refusal::Wrong)
    }
}

/// Whether `password` matches the Argon2 PHC string `phc` (false for a
/// malformed `phc`). Slow on purpose (tens of ms): call it off the async
/// threads.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Hashes `password` with Argon2id (default parameters, random salt) into
/// the PHC string the config's `password_hash` takes.
///
/// # Errors
/// Argon2's error, e.g. for a password over its length limit.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_password_gets_in() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let access = Access::with_hash(&phc).unwrap();
        assert!(access.needs_password());
        assert_eq!(access.check(Some("correct horse")), Ok(()));
        assert_eq!(access.check(Some("correct hors")), Err(Refusal::Wrong));
        assert_eq!(access.check(None), Err(Refusal::Missing));
        // Two hashes of one password differ (random salt) and both verify.
        let again = hash_password("correct horse").unwrap();
        assert_ne!(phc, again);
        assert_eq!(
            Access::with_hash(&again)
                .unwrap()
                .check(Some("correct horse")),
            Ok(())
        );
    }

    #[test]
    fn an_open_server_takes_anyone_and_bad_hashes_are_refused() {
        assert_eq!(Access::open().check(None), Ok(()));
        assert_eq!(Access::open().check(Some("anything")), Ok(()));
        let e = Access::with_hash("hunter2").unwrap_err();
        assert!(e.contains("PHC"), "{e}");
    }
}
