//! The HTTP JSON API under `/api/v1` (`docs/api.md`): sign-in with
//! username and password, refresh, sign-out, and the channels the caller
//! may use; for admins, users, channels and grants ([`admin`]). Errors are
//! `{"error": CODE, "message": TEXT}` with a stable `CODE`.

pub mod admin;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::accounts::{
    Directory, Identity, Rights, Role,
    store::{Store, StoreError, User, now_ms},
    token::{TokenKey, new_refresh, refresh_hash},
};

/// Access token life.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Refresh token life.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Failed sign-ins allowed per account within [`LOGIN_WINDOW`]; more get
/// `rate_limited` until the window passes.
pub const LOGIN_FAILURES: u32 = 5;
/// Failed sign-ins allowed per IP address within [`LOGIN_WINDOW`] (more
/// than per account: several users may share an address behind a NAT).
pub const LOGIN_FAILURES_PER_IP: u32 = 20;
/// See [`LOGIN_FAILURES`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// Accounts as the running server sees them: the database, the token key
/// and the latest [`Directory`] (reloaded every second, see
/// [`Accounts::reload`]).
pub struct Accounts {
    /// The database.
    pub store: Store,
    /// The access-token key.
    pub key: TokenKey,
    /// The latest directory.
    pub dir: watch::Sender<Arc<Directory>>,
    /// Woken after a change made through the API, so that the server
    /// reloads the directory at once instead of at its next 1 s tick.
    pub changed: Notify,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accounts")
    }
}

/// Unix seconds now.
fn now_s() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

impl Accounts {
    /// Opens the accounts of a server.
    pub async fn open(store: Store, key: TokenKey) -> Result<Self, StoreError> {
        let dir = store.directory().await?;
        Ok(Self {
            store,
            key,
            dir: watch::Sender::new(Arc::new(dir)),
            changed: Notify::new(),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the directory again; when it changed, publishes it and
    /// returns it.
    pub async fn reload(&self) -> Result<Option<Arc<Directory>>, StoreError> {
        let dir = self.store.directory().await?;
        if **self.dir.borrow() == dir {
            return Ok(None);
        }
        let dir = Arc::new(dir);
        self.dir.send_replace(dir.clone());
        Ok(Some(dir))
    }

    /// Who a `hello` with `token` is: [`Identity::Open`] on a server with
    /// no accounts, a guest without a token, else the token's user (with
    /// its display name).
    ///
    /// # Errors
    /// `(code, message)` for an expired or invalid token or a disabled user.
    pub fn identify(
        &self,
        token: Option<&str>,
    ) -> Result<(Identity, Option<String>), (squawk_protocol::ErrorCode, String)> {
        use squawk_protocol::ErrorCode;
        let dir = self.dir.borrow().clone();
        if !dir.enabled() {
            return Ok((Identity::Open, None));
        }
        let Some(token) = token else {
            return Ok((Identity::Guest, None));
        };
        let claims = self.key.verify(token, now_s()).map_err(|e| match e {
            crate::accounts::token::TokenError::Expired => (ErrorCode::TokenExpired, e.to_string()),
            crate::accounts::token::TokenError::Invalid => (ErrorCode::Unauthorized, e.to_string()),
        })?;
        let who = Identity::User { id: claims.uid };
        if !dir.may_connect(&who) {
            return Err((
                ErrorCode::Unauthorized,
                "this account is disabled or no longer exists".into(),
            ));
        }
        let name = dir.users.get(&claims.uid).map(|u| u.display_name.clone());
        Ok((who, name))
    }

    /// Counts a failed sign-in for `key` (an account or an address).
    fn fail(&self, key: &str, now: Instant) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Forget windows that passed, so the map stays as small as the
        // last minute's failures.
        f.retain(|_, (_, since)| now.duration_since(*since) <= LOGIN_WINDOW);
        let e = f.entry(key.to_string()).or_insert((0, now));
        e.0 += 1;
    }

    fn limited(&self, key: &str, max: u32, now: Instant) -> bool {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(key)
            .is_some_and(|(n, since)| *n >= max && now.duration_since(*since) <= LOGIN_WINDOW)
    }

    async fn tokens_for(&self, user: &User) -> Result<TokenPair, ApiError> {
        let access = self
            .key
            .issue(user.id, &user.username, user.role, now_s(), ACCESS_TTL);
        let (refresh, hash) = new_refresh();
        let expires = now_ms() + REFRESH_TTL.as_millis() as i64;
        self.store.add_refresh(&hash, user.id, expires).await?;
        Ok(TokenPair {
            access_token: access,
            expires_in: ACCESS_TTL.as_secs(),
            refresh_token: refresh,
            user: UserView::from(user),
        })
    }
}

/// A user as the API shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
        }
    }
}

/// `login` and `refresh` answers.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    /// For `hello.token` and `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// For `POST /api/v1/refresh`, once.
    pub refresh_token: String,
    /// Who signed in.
    pub user: UserView,
}

/// An API error: HTTP status, stable code, message.
#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str, String);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!("api: {e}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the accounts database failed".into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response()
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError(StatusCode::UNAUTHORIZED, "unauthorized", message.into())
}

type Shared = Arc<Accounts>;

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

async fn login(
    State(acc): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<Login>,
) -> Result<Json<TokenPair>, ApiError> {
    let now = Instant::now();
    let ip: IpAddr = peer.ip();
    let (by_user, by_ip) = (format!("user:{}", body.username), format!("ip:{ip}"));
    if acc.limited(&by_user, LOGIN_FAILURES, now) || acc.limited(&by_ip, LOGIN_FAILURES_PER_IP, now)
    {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many failed sign-ins: wait {} s",
                LOGIN_WINDOW.as_secs()
            ),
        ));
    }
    let found = acc.store.user_with_hash(&body.username).await?;
    let ok = match &found {
        Some((user, phc)) if !user.disabled => {
            let (phc, password) = (phc.clone(), body.password.clone());
            tokio::task::spawn_blocking(move || crate::access::verify_password(&phc, &password))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    let Some((user, _)) = found.filter(|_| ok) else {
        acc.fail(&by_user, now);
        acc.fail(&by_ip, now);
        return Err(unauthorized(
            "wrong username or password, or a disabled account",
        ));
    };
    Ok(Json(acc.tokens_for(&user).await?))
}

async fn refresh(
    State(acc): State<Shared>,
    Json(body): Json<Refresh>,
) -> Result<Json<TokenPair>, ApiError> {
    let hash = refresh_hash(&body.refresh_token);
    let Some(uid) = acc.store.take_refresh(&hash, now_ms()).await? else {
        return Err(unauthorized(
            "unknown, used, revoked or expired refresh token",
        ));
    };
    let user = acc
        .store
        .user_by_id(uid)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| unauthorized("this account is disabled or no longer exists"))?;
    Ok(Json(acc.tokens_for(&user).await?))
}

async fn logout(
    State(acc): State<Shared>,
    Json(body): Json<Refresh>,
) -> Result<StatusCode, ApiError> {
    acc.store
        .take_refresh(&refresh_hash(&body.refresh_token), 0)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct ChannelView {
    name: String,
    description: String,
    guests: bool,
    rights: Rights,
}

async fn channels(
    State(acc): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    let (who, _) = acc
        .identify(bearer(&headers))
        .map_err(|(_, m)| ApiError(StatusCode::UNAUTHORIZED, "unauthorized", m))?;
    let dir = acc.dir.borrow().clone();
    let mut out: Vec<ChannelView> = dir
        .channels
        .iter()
        .map(|(name, c)| ChannelView {
            name: name.to_string(),
            description: c.description.clone(),
            guests: c.guests,
            rights: dir.rights(&who, name),
        })
        .filter(|c| c.rights.listen)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

/// The `/api/v1` routes.
pub fn routes(accounts: Shared) -> Router {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/refresh", post(refresh))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/channels", get(channels))
        .merge(admin::routes())
        .with_state(accounts)
}
