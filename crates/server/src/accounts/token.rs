//! Access tokens (JWT, RFC 7519, HS256, at most 15 minutes) and refresh
//! tokens (32 random bytes, base64url; only their SHA-256 is stored, and
//! each is used once).
//!
//! The signing key is 32 random bytes in `token.key` in the data directory,
//! made on first start with mode 0600. [`TokenKey::rotate`] replaces it:
//! every access token signed with the old key is refused from then on.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Role;

/// Longest life of an access token.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// The file of the signing key in the data directory.
pub const KEY_FILE: &str = "token.key";

/// What an access token says (its JWT claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub uid: i64,
    /// The user's login name.
    pub sub: String,
    /// The role when the token was issued (rights are evaluated from the
    /// database, not from this).
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the access token has expired: sign in again or refresh it")]
    Expired,
    /// Not a token of this server (bad signature, another key, garbage).
    #[error("the access token is not valid on this server")]
    Invalid,
}

/// Why the key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[error("token key {path}: {source}")]
pub struct KeyError {
    path: PathBuf,
    source: std::io::Error,
}

/// The signing key.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

fn write_key(path: &Path) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Write;
    let key: [u8; 32] = rand::random();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(key.to_vec())
}

impl TokenKey {
    /// A key from raw bytes (tests).
    pub fn from_bytes(key: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    /// Loads `token.key` from `data_dir`, making it on first use.
    ///
    /// # Errors
    /// [`KeyError`] when it cannot be read or written.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let err = |source| KeyError {
            path: path.clone(),
            source,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) if b.len() >= 32 => b,
            Ok(_) | Err(_) if !path.exists() => write_key(&path).map_err(err)?,
            Ok(_) => {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "shorter than 32 bytes",
                )));
            }
            Err(e) => return Err(err(e)),
        };
        Ok(Self::from_bytes(&bytes))
    }

    /// Replaces `token.key` in `data_dir` with a new random key.
    ///
    /// # Errors
    /// [`KeyError`] when it cannot be written.
    pub fn rotate(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let bytes = write_key(&path).map_err(|source| KeyError { path, source })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Signs an access token for `uid`/`username`/`role`, valid `ttl`
    /// (capped at [`MAX_ACCESS_TTL`]) from `now_s` (Unix seconds).
    pub fn issue(&self, uid: i64, username: &str, role: Role, now_s: u64, ttl: Duration) -> String {
        let claims = Claims {
            uid,
            sub: username.into(),
            role,
            iat: now_s,
            exp: now_s + ttl.min(MAX_ACCESS_TTL).as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signs any claims")
    }

    /// Checks an access token at `now_s` (Unix seconds).
    ///
    /// # Errors
    /// [`TokenError::Expired`] past its expiry, [`TokenError::Invalid`] for
    /// anything not signed by this key.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the time passed in.
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map_err(|_| TokenError::Invalid)?;
        if data.claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

/// A new refresh token: what the client keeps, and the hash the server
/// keeps.
pub fn new_refresh() -> (String, String) {
    let raw: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = refresh_hash(&token);
    (token, hash)
}

/// The stored form of a refresh token: SHA-256, hex.
pub fn refresh_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
