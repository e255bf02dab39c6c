//! The admin half of `/api/v1` (`docs/api.md`): users, roles, channel
//! records and grants, as the `squawk-server user|channel|grant|revoke`
//! commands manage them, for a caller whose access token belongs to an
//! enabled `admin`. Every change reaches live connections at once (the
//! hub is given the new directory; see [`Accounts::changed`]).
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `GET /api/v1/admin/users` | | `[User]` |
//! | `POST /api/v1/admin/users` | `{username, password, role?, display_name?}` | 201 `User` |
//! | `PATCH /api/v1/admin/users/{username}` | `{role?, password?, disabled?}` | `User` |
//! | `DELETE /api/v1/admin/users/{username}` | | 204 |
//! | `GET /api/v1/admin/channels` | | `[{name, description, guests, preemption, max_talk_secs, grants}]` |
//! | `PUT /api/v1/admin/channels/{name}` | `{description?, guests?, preemption?, max_talk_secs?}` | the channel |
//! | `DELETE /api/v1/admin/channels/{name}` | | 204 |
//! | `PUT /api/v1/admin/channels/{name}/grants/{subject}` | `{listen, talk, dispatch, max_priority}` | the grant |
//! | `DELETE /api/v1/admin/channels/{name}/grants/{subject}` | | 204 |
//!
//! `{subject}` is `role:user`, `role:dispatcher`, `role:admin` or
//! `user:USERNAME`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, put},
};
use serde::{Deserialize, Serialize};
use squawk_protocol::{ChannelName, Priority};

use super::{ApiError, Shared, bearer};
use crate::accounts::{
    ChannelEntry, Identity, Rights, Role, Subject,
    store::{StoreError, User},
};

/// The shortest password the API and the command line accept, characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "invalid", message.into())
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, code, message.into())
}

/// Store errors a caller can act on get their own status and code.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::UserExists(_) => ApiError(StatusCode::CONFLICT, "user_exists", e.to_string()),
        StoreError::NoUser(_) => not_found("no_user", e.to_string()),
        StoreError::NoChannel(_) => not_found("no_channel", e.to_string()),
        StoreError::Invalid(m) => bad_request(m),
        other => ApiError::from(other),
    }
}

/// Checks that the caller is an enabled admin, by the current directory
/// (a role changed or an account disabled since the token was issued
/// counts at once).
///
/// Errors: 401 `unauthorized` without a valid token, 403 `forbidden` for
/// anyone but an admin.
fn admin(acc: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let (who, _) = acc
        .identify(bearer(headers))
        .map_err(|(_, m)| ApiError(StatusCode::UNAUTHORIZED, "unauthorized", m))?;
    let dir = acc.dir.borrow().clone();
    match who {
        Identity::User { id } if dir.users.get(&id).is_some_and(|u| u.role == Role::Admin) => {
            Ok(())
        }
        Identity::User { .. } => Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an admin may do this".into(),
        )),
        Identity::Guest | Identity::Open => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in as an admin (Authorization: Bearer ACCESS_TOKEN)".into(),
        )),
    }
}

fn role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).map_err(bad_request)
}

fn channel(s: &str) -> Result<ChannelName, ApiError> {
    ChannelName::new(s).map_err(|e| bad_request(format!("bad channel name {s:?}: {e}")))
}

async fn hash(password: String) -> Result<String, ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(bad_request(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    // Argon2id takes tens of milliseconds: off the async workers.
    tokio::task::spawn_blocking(move || crate::access::hash_password(&password))
        .await
        .map_err(|_| bad_request("hashing failed"))?
        .map_err(bad_request)
}

/// `role:NAME` or `user:USERNAME` (or `user:ID`).
async fn subject(acc: &Shared, s: &str) -> Result<Subject, ApiError> {
    acc.store.subject(s).await.map_err(store_error)
}

async fn users(State(acc): State<Shared>, headers: HeaderMap) -> Result<Json<Vec<User>>, ApiError> {
    admin(&acc, &headers)?;
    Ok(Json(acc.store.users().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

async fn add_user(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    admin(&acc, &headers)?;
    let role = role(body.role.as_deref().unwrap_or("user"))?;
    let phc = hash(body.password).await?;
    let display = body.display_name.unwrap_or_else(|| body.username.clone());
    let user = acc
        .store
        .add_user(&body.username, &display, &phc, role)
        .await
        .map_err(store_error)?;
    acc.changed.notify_one();
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

async fn change_user(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Json(body): Json<UserChange>,
) -> Result<Json<User>, ApiError> {
    admin(&acc, &headers)?;
    if acc.store.user(&username).await?.is_none() {
        return Err(not_found("no_user", format!("no user {username}")));
    }
    // Everything is checked before anything is written.
    let role = body.role.as_deref().map(role).transpose()?;
    let phc = match body.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    if let Some(role) = role {
        acc.store
            .set_role(&username, role)
            .await
            .map_err(store_error)?;
    }
    if let Some(phc) = phc {
        acc.store
            .set_password_hash(&username, &phc)
            .await
            .map_err(store_error)?;
    }
    if let Some(disabled) = body.disabled {
        acc.store
            .set_disabled(&username, disabled)
            .await
            .map_err(store_error)?;
    }
    acc.changed.notify_one();
    let user = acc
        .store
        .user(&username)
        .await?
        .ok_or_else(|| not_found("no_user", format!("no user {username}")))?;
    Ok(Json(user))
}

async fn delete_user(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&acc, &headers)?;
    acc.store
        .delete_user(&username)
        .await
        .map_err(store_error)?;
    acc.changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// A grant as the admin API shows it.
#[derive(Debug, Serialize)]
struct GrantView {
    /// `role:NAME` or `user:USERNAME` (`user:ID` for a user that is gone).
    subject: String,
    #[serde(flatten)]
    rights: Rights,
}

/// A channel record with its grants.
#[derive(Debug, Serialize)]
struct ChannelRecord {
    name: String,
    #[serde(flatten)]
    entry: ChannelEntry,
    grants: Vec<GrantView>,
}

async fn channels(
    State(acc): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Vec<ChannelRecord>>, ApiError> {
    admin(&acc, &headers)?;
    let dir = acc.store.directory().await?;
    let subject_name = |s: Subject| match s {
        Subject::User(id) => dir
            .users
            .get(&id)
            .map_or_else(|| s.to_key(), |u| format!("user:{}", u.username)),
        Subject::Role(_) => s.to_key(),
    };
    let mut out: Vec<ChannelRecord> = dir
        .channels
        .iter()
        .map(|(name, c)| {
            let mut grants: Vec<GrantView> = dir
                .grants
                .iter()
                .filter(|((ch, _), _)| ch == name)
                .map(|((_, s), r)| GrantView {
                    subject: subject_name(*s),
                    rights: *r,
                })
                .collect();
            grants.sort_by(|a, b| a.subject.cmp(&b.subject));
            ChannelRecord {
                name: name.to_string(),
                entry: c.clone(),
                grants,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    #[serde(default)]
    description: String,
    #[serde(default)]
    guests: bool,
    #[serde(default)]
    preemption: Option<bool>,
    #[serde(default)]
    max_talk_secs: Option<u32>,
}

async fn put_channel(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<ChannelBody>,
) -> Result<Json<ChannelEntry>, ApiError> {
    admin(&acc, &headers)?;
    let entry = ChannelEntry {
        description: body.description,
        guests: body.guests,
        preemption: body.preemption,
        max_talk_secs: body.max_talk_secs,
    };
    acc.store
        .put_channel(&channel(&name)?, &entry)
        .await
        .map_err(store_error)?;
    acc.changed.notify_one();
    Ok(Json(entry))
}

async fn delete_channel(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&acc, &headers)?;
    acc.store
        .delete_channel(&channel(&name)?)
        .await
        .map_err(store_error)?;
    acc.changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    #[serde(default)]
    listen: bool,
    #[serde(default)]
    talk: bool,
    #[serde(default)]
    dispatch: bool,
    /// 0-255; [`Priority::NORMAL`] when absent.
    #[serde(default)]
    max_priority: Option<u8>,
}

async fn put_grant(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Path((name, who)): Path<(String, String)>,
    Json(body): Json<GrantBody>,
) -> Result<Json<Rights>, ApiError> {
    admin(&acc, &headers)?;
    let ch = channel(&name)?;
    let subject = subject(&acc, &who).await?;
    let rights = Rights {
        listen: body.listen,
        talk: body.talk,
        dispatch: body.dispatch,
        max_priority: body.max_priority.map_or(Priority::NORMAL, Priority),
    };
    // As `squawk-server grant`: the channel's record is created if missing.
    if !acc.store.directory().await?.channels.contains_key(&ch) {
        acc.store.put_channel(&ch, &ChannelEntry::default()).await?;
    }
    acc.store
        .put_grant(&ch, subject, rights)
        .await
        .map_err(store_error)?;
    acc.changed.notify_one();
    Ok(Json(rights))
}

async fn delete_grant(
    State(acc): State<Shared>,
    headers: HeaderMap,
    Path((name, who)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin(&acc, &headers)?;
    let ch = channel(&name)?;
    let subject = subject(&acc, &who).await?;
    if !acc.store.delete_grant(&ch, subject).await? {
        return Err(not_found(
            "no_grant",
            format!("{who} has no grant in {name}"),
        ));
    }
    acc.changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// The `/api/v1/admin` routes.
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/admin/users", get(users).post(add_user))
        .route(
            "/api/v1/admin/users/{username}",
            axum::routing::patch(change_user).delete(delete_user),
        )
        .route("/api/v1/admin/channels", get(channels))
        .route(
            "/api/v1/admin/channels/{name}",
            put(put_channel).delete(delete_channel),
        )
        .route(
            "/api/v1/admin/channels/{name}/grants/{subject}",
            put(put_grant).delete(delete_grant),
        )
}
