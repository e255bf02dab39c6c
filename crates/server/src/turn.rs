//! Short-lived TURN credentials after the TURN REST API convention
//! (draft-uberti-behave-turn-rest-00 §2.2), as coturn implements it with
//! `--use-auth-secret --static-auth-secret=SECRET`: the username is
//! `EXPIRY:ID` (EXPIRY in Unix seconds) and the password is the base64 of
//! HMAC-SHA1(SECRET, username). The TURN server recomputes the password from
//! the username and refuses it once EXPIRY has passed, so the two servers
//! share nothing but the secret.
//!
//! Pure: time is passed in ([`TurnIssuer::ice_servers`]); the session edge
//! calls it with the wall clock when a `hello` is accepted.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::hmac;
use base64::Engine as _;
use squawk_protocol::{ClientId, IceServer};

/// Issues each connection its ICE servers: the configured STUN URLs as
/// they are, and the TURN URLs with fresh credentials.
#[derive(Debug)]
pub struct TurnIssuer {
    stun: Vec<String>,
    turn: Vec<String>,
    key: Option<hmac::Key>,
    ttl_secs: u64,
    issued: AtomicU64,
}

impl TurnIssuer {
    /// An issuer for `urls` (`stun:`, `turn:` or `turns:` URLs, already
    /// validated by the config), signing with `secret` for `ttl_secs` s.
    /// With no TURN URL or no secret, only the STUN URLs are handed out.
    pub fn new(urls: &[String], secret: Option<&str>, ttl_secs: u64) -> Self {
        let (stun, turn): (Vec<String>, Vec<String>) =
            urls.iter().cloned().partition(|u| u.starts_with("stun:"));
        Self {
            stun,
            turn,
            key: secret.map(|s| hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes())),
            ttl_secs,
            issued: AtomicU64::new(0),
        }
    }

    /// The ICE servers for connection `client` at `now_unix` (s since the
    /// Unix epoch): one entry for the STUN URLs, one for the TURN URLs with
    /// username `EXPIRY:squawkID` (no colon in the ID part, so coturn's
    /// `:` separator is unambiguous) valid until `now_unix + ttl`. Empty when
    /// nothing is configured.
    pub fn ice_servers(&self, client: ClientId, now_unix: u64) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun.is_empty() {
            out.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if let (false, Some(key)) = (self.turn.is_empty(), &self.key) {
            let username = format!("{}:squawk{client}", now_unix + self.ttl_secs);
            let credential = password(key, &username);
            self.issued.fetch_add(1, Ordering::Relaxed);
            out.push(IceServer {
                urls: self.turn.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        out
    }

    /// TURN credentials issued since start (a `/metrics` counter).
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

/// base64(HMAC-SHA1(key, username)), the REST API password.
fn password(key: &hmac::Key, username: &str) -> String {
    let tag = hmac::sign(key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// Checks one ICE server URL: `stun:`, `turn:` or `turns:` then a host, an
/// optional port and, for TURN, an optional `?transport=udp|tcp` (RFC 7064,
/// RFC 7065).
///
/// # Errors
/// A sentence naming the URL and what is wrong with it.
pub fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| format!("ICE server URL {url:?} has no scheme (stun:, turn: or turns:)"))?;
    if !matches!(scheme, "stun" | "turn" | "turns") {
        return Err(format!(
            "ICE server URL {url:?}: scheme {scheme:?} is not stun, turn or turns"
        ));
    }
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if hostport.is_empty() || hostport.starts_with('/') || hostport.contains(['@', ' ']) {
        return Err(format!(
            "ICE server URL {url:?}: expected {scheme}:HOST[:PORT] (no //, no user@)"
        ));
    }
    if let Some(q) = query
        && (scheme == "stun" || !matches!(q, "transport=udp" | "transport=tcp"))
    {
        return Err(format!(
            "ICE server URL {url:?}: the only query allowed is ?transport=udp or ?transport=tcp on turn: and turns:"
        ));
    }
    // A port, when given, must be a number (IPv6 literals are bracketed).
    let port = match hostport.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => hostport.split_once(':').map(|(_, p)| p),
    };
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("ICE server URL {url:?}: bad port {p:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_the_rest_api_convention() {
        // Computed independently with Python:
        // base64.b64encode(hmac.new(b"north", b"1767225600:squawk7", "sha1").digest())
        let issuer = TurnIssuer::new(&["turn:127.0.0.1:3478".into()], Some("north"), 3600);
        let servers = issuer.ice_servers(7, 1_767_222_000);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].username.as_deref(), Some("1767225600:squawk7"));
        assert_eq!(
            servers[0].credential.as_deref(),
            Some("YJkP90Oj5kyrBCFrEWRg1U4jyUI=")
        );
        assert_eq!(issuer.issued(), 1);
    }

    #[test]
    fn stun_urls_carry_no_credentials_and_nothing_configured_is_empty() {
        let issuer = TurnIssuer::new(
            &[
                "stun:stun.example.org".into(),
                "turn:t.example.org?transport=tcp".into(),
            ],
            Some("s"),
            60,
        );
        let servers = issuer.ice_servers(1, 100);
        assert_eq!(servers[0].urls, vec!["stun:stun.example.org".to_string()]);
        assert_eq!(servers[0].username, None);
        assert_eq!(
            servers[1].urls,
            vec!["turn:t.example.org?transport=tcp".to_string()]
        );
        assert_eq!(servers[1].username.as_deref(), Some("160:squawk1"));
        // Different users, different passwords.
        assert_ne!(
            servers[1].credential,
            issuer.ice_servers(2, 100)[1].credential
        );
        assert!(TurnIssuer::new(&[], None, 60).ice_servers(1, 0).is_empty());
        // TURN without a secret is refused by the config; here it hands out
        // nothing rather than unusable entries.
        let no_secret = TurnIssuer::new(&["turn:a".into()], None, 60);
        assert!(no_secret.ice_servers(1, 0).is_empty());
        assert_eq!(no_secret.issued(), 0);
    }

    #[test]
    fn urls_are_checked() {
        for ok in [
            "stun:stun.example.org",
            "stun:192.0.2.1:3478",
            "turn:127.0.0.1:3478?transport=udp",
            "turns:turn.example.org:5349?transport=tcp",
            "turn:[2001:db8::1]:3478",
        ] {
            check_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "127.0.0.1:3478",
            "http://turn.example.org",
            "turn://turn.example.org",
            "turn:",
            "turn:user@host",
            "turn:host:port",
            "turn:host:0",
            "turn:host?transport=sctp",
            "stun:host?transport=udp",
        ] {
            let e = check_url(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
