//! Accounts from the desktop app's side: the refresh token of a signed-in
//! account is kept in the OS keyring (never the password, never the
//! settings file) under its own entry, so that the next start signs in
//! silently; signing out revokes it at the server and forgets it. The HTTP
//! calls are `squawk_engine::account`'s.

pub use squawk_engine::account::Tokens;

/// The keyring "name" of `user`'s refresh token: the entry is
/// `account:USER@SERVER` ([`crate::secrets`] keys entries by name and
/// server), apart from the server passwords kept under display names.
pub fn keyring_name(user: &str) -> String {
    format!("account:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;

    #[test]
    fn a_refresh_token_is_kept_apart_from_a_server_password_of_the_same_name() {
        let s = Secrets::with_store(keyring_core::mock::Store::new().unwrap());
        s.set("ws://a/ws", "bo", "server password").unwrap();
        s.set("ws://a/ws", &keyring_name("bo"), "refresh").unwrap();
        assert_eq!(s.get("ws://a/ws", "bo"), Ok(Some("server password".into())));
        assert_eq!(
            s.get("ws://a/ws", &keyring_name("bo")),
            Ok(Some("refresh".into()))
        );
    }
}
