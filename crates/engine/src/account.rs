//! Signing in to a server with accounts: `POST /api/v1/login`, `refresh`
//! and `logout` (`docs/api.md`), over HTTP or HTTPS (rustls, the system's
//! roots). The access token goes in [`crate::EngineConfig::token`]; the
//! refresh token is what a client keeps to sign in again without the
//! password (the desktop app keeps it in the OS keyring), and each one is
//! used once: [`refresh`] returns a new pair.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::tls::Trust;

/// How long one API call may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The signed-in user, as `login` and `refresh` return it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct AccountUser {
    /// Account id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name shown to others (the server uses it in place of `hello.name`).
    pub display_name: String,
    /// `user`, `dispatcher` or `admin`.
    pub role: String,
}

/// A token pair.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Tokens {
    /// For `hello.token`; valid `expires_in` seconds (at most 900).
    pub access_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// For [`refresh`] and [`logout`], once; valid 30 days.
    pub refresh_token: String,
    /// Who signed in.
    pub user: AccountUser,
}

impl std::fmt::Debug for Tokens {
    // Secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why signing in failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The server URL is not `ws(s)://…` or `http(s)://…`.
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an API error (`401 unauthorized` for a
    /// wrong password or a used refresh token, `429 rate_limited`, …).
    #[error("{message} ({code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The stable `error` code of `docs/api.md`.
        code: String,
        /// The server's message, for people.
        message: String,
    },
    /// The server could not be reached or did not answer with the API.
    #[error("cannot reach the accounts API at {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// Why.
        reason: String,
    },
}

impl AccountError {
    /// Whether the credentials themselves were refused (a wrong password,
    /// a disabled account, a used or revoked refresh token): asking again
    /// will not help without new ones.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if code == "unauthorized")
    }
}

/// The API endpoint `path` (e.g. `login`) of the server behind `server`:
/// `ws://HOST:PORT/ws` → `http://HOST:PORT/api/v1/login`, `wss` →
/// `https`; an `http(s)://HOST:PORT/…` link works too.
///
/// # Errors
/// [`AccountError::BadUrl`].
pub fn endpoint(server: &str, path: &str) -> Result<Url, AccountError> {
    let bad = |reason: &str| AccountError::BadUrl {
        url: server.into(),
        reason: reason.into(),
    };
    let mut url = Url::parse(server).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return Err(bad("use ws://, wss://, http:// or https://")),
    };
    url.set_scheme(scheme)
        .map_err(|()| bad("cannot change the scheme"))?;
    url.set_path(&format!("/api/v1/{path}"));
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

async fn call<T: serde::de::DeserializeOwned>(
    server: &str,
    trust: &Trust,
    path: &str,
    body: serde_json::Value,
) -> Result<Option<T>, AccountError> {
    let url = endpoint(server, path)?;
    let unreachable = |reason: String| AccountError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let mut builder = reqwest::Client::builder().timeout(TIMEOUT);
    let mut seen = None;
    if url.scheme() == "https" {
        let (tls, s) = crate::tls::client_config(trust).map_err(|e| unreachable(e.to_string()))?;
        builder = builder.tls_backend_preconfigured(tls);
        seen = Some(s);
    }
    let client = builder.build().map_err(|e| unreachable(e.to_string()))?;
    let resp = client
        .post(url.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            // reqwest's Display hides the cause: the whole chain, then the
            // certificate explained when it was the certificate.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            match seen.as_ref().and_then(|s| s.explain(trust, &text)) {
                Some(tls) => unreachable(tls.to_string()),
                None => unreachable(text),
            }
        })?;
    let status = resp.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(None);
    }
    let text = resp.text().await.map_err(|e| unreachable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| unreachable(format!("unexpected answer: {e}")));
    }
    #[derive(Deserialize)]
    struct ApiError {
        error: String,
        message: String,
    }
    match serde_json::from_str::<ApiError>(&text) {
        Ok(e) => Err(AccountError::Refused {
            status: status.as_u16(),
            code: e.error,
            message: e.message,
        }),
        Err(_) => Err(unreachable(format!(
            "HTTP {status} (no accounts API here?)"
        ))),
    }
}

/// Signs in with a username and password.
///
/// # Errors
/// [`AccountError::Refused`] `unauthorized` for a wrong username or
/// password or a disabled account, `rate_limited` after too many failures;
/// [`AccountError::Unreachable`], [`AccountError::BadUrl`].
pub async fn login(
    server: &str,
    trust: &Trust,
    username: &str,
    password: &str,
) -> Result<Tokens, AccountError> {
    let body = serde_json::json!({"username": username, "password": password});
    call(server, trust, "login", body)
        .await?
        .ok_or_else(|| AccountError::Unreachable {
            url: server.into(),
            reason: "empty answer to login".into(),
        })
}

/// Trades a refresh token for a new pair (the old refresh token is spent).
///
/// # Errors
/// [`AccountError::Refused`] `unauthorized` for an unknown, used, revoked
/// or expired refresh token or a disabled account; as [`login`] otherwise.
pub async fn refresh(
    server: &str,
    trust: &Trust,
    refresh_token: &str,
) -> Result<Tokens, AccountError> {
    let body = serde_json::json!({"refresh_token": refresh_token});
    call(server, trust, "refresh", body)
        .await?
        .ok_or_else(|| AccountError::Unreachable {
            url: server.into(),
            reason: "empty answer to refresh".into(),
        })
}

/// Signs out: revokes `refresh_token` on the server.
///
/// # Errors
/// As [`login`].
pub async fn logout(server: &str, trust: &Trust, refresh_token: &str) -> Result<(), AccountError> {
    let body = serde_json::json!({"refresh_token": refresh_token});
    call::<serde_json::Value>(server, trust, "logout", body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_lives_beside_the_websocket() {
        let e = |s: &str| endpoint(s, "login").map(|u| u.to_string());
        assert_eq!(
            e("ws://127.0.0.1:7300/ws").unwrap(),
            "http://127.0.0.1:7300/api/v1/login"
        );
        assert_eq!(
            e("wss://ptt.example.org/ws").unwrap(),
            "https://ptt.example.org/api/v1/login"
        );
        assert_eq!(
            e("https://ptt.example.org:8443/c/ops?name=x#y").unwrap(),
            "https://ptt.example.org:8443/api/v1/login"
        );
        assert!(matches!(
            e("ftp://example.org"),
            Err(AccountError::BadUrl { .. })
        ));
        assert!(matches!(e("not a url"), Err(AccountError::BadUrl { .. })));
    }

    #[test]
    fn tokens_never_print_their_secrets() {
        let t = Tokens {
            access_token: "ACCESS-SECRET".into(),
            expires_in: 900,
            refresh_token: "REFRESH-SECRET".into(),
            user: AccountUser {
                id: 1,
                username: "bo".into(),
                display_name: "Bo".into(),
                role: "user".into(),
            },
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("bo"));
    }
}
