//! The accounts database: an SQLite file in the data directory by default,
//! PostgreSQL when the config gives a `postgres://` URL. One set of
//! migrations (`crates/server/migrations`, portable SQL) runs on both
//! through sqlx's `Any` driver; every query uses `$n` placeholders, which
//! both accept.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, Row, any::AnyPoolOptions};
use squawk_protocol::{ChannelName, Priority};

use super::{ChannelEntry, Directory, Rights, Role, Subject, UserEntry};

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, migrated or queried.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database has a schema version this server does not know: a
    /// newer server wrote it (a downgrade).
    #[error(
        "the database was brought to schema version {0} by a newer squawk-server; \
         this one knows versions up to {1}: run the newer server (or restore a backup)"
    )]
    Newer(i64, i64),
    /// A username that exists already.
    #[error("user {0} exists already")]
    UserExists(String),
    /// No such user.
    #[error("no user {0}")]
    NoUser(String),
    /// No such channel record.
    #[error("no channel {0}")]
    NoChannel(String),
    /// A stored value that does not parse (a role, a subject, a name).
    #[error("bad stored value: {0}")]
    Corrupt(String),
    /// Invalid input (an empty name, a bad password).
    #[error("{0}")]
    Invalid(String),
}

/// A user record without its password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Id (random, positive, 53 bits so JavaScript reads it exactly).
    pub id: i64,
    /// Login name: 1 to 64 characters, no control characters or spaces.
    pub username: String,
    /// Shown to others.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Disabled users cannot sign in.
    pub disabled: bool,
}

/// The database. Cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

/// The schema's migrations, in order, embedded in the binary. Built by hand
/// rather than with `sqlx::migrate!`, which would pull sqlx's proc-macro
/// crates (and a second build of sqlx for the host) into every build.
fn migrator() -> sqlx::migrate::Migrator {
    use std::borrow::Cow;

    use sqlx::migrate::{Migration, MigrationType, Migrator};
    const MIGRATIONS: &[(i64, &str, &str)] = &[
        (
            1,
            "accounts",
            include_str!("../../migrations/0001_accounts.sql"),
        ),
        (
            2,
            "channel floor policy",
            include_str!("../../migrations/0002_channel_floor_policy.sql"),
        ),
    ];
    Migrator {
        migrations: Cow::Owned(
            MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

/// Now, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Checks a login name.
///
/// # Errors
/// A message saying what a username may be.
pub fn check_username(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "bad username {name:?}: 1 to 64 characters, no spaces or control characters"
        )))
    }
}

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the database
    /// at `url`: `sqlite://PATH?mode=rwc`, `sqlite::memory:` or
    /// `postgres://USER:PASS@HOST/DB`.
    ///
    /// # Errors
    /// [`StoreError::Db`] if it cannot be reached, [`StoreError::Migrate`]
    /// if its schema cannot be brought up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        // In-memory SQLite is one database per connection: keep one.
        let max = if url.contains(":memory:") { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(url)
            .await?;
        if url.starts_with("sqlite") {
            // Grants and tokens reference users and channels.
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&pool)
                .await?;
        }
        let migrator = migrator();
        migrator.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => {
                StoreError::Newer(v, migrator.iter().map(|m| m.version).max().unwrap_or(0))
            }
            other => StoreError::Migrate(other),
        })?;
        Ok(Self { pool })
    }

    /// Runs one SQL statement (tests set up states no API makes).
    #[cfg(test)]
    pub(crate) async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Whether any user exists (the server has accounts, else it is open).
    pub async fn has_users(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Adds a user with the Argon2id hash `password_hash` (see
    /// [`crate::access::hash_password`]).
    ///
    /// # Errors
    /// [`StoreError::UserExists`], [`StoreError::Invalid`] for a bad name.
    pub async fn add_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        check_username(username)?;
        if self.user(username).await?.is_some() {
            return Err(StoreError::UserExists(username.into()));
        }
        let id = (rand::random::<u64>() >> 11) as i64;
        sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, disabled, created_ms) \
             VALUES ($1, $2, $3, $4, $5, 0, $6)",
        )
        .bind(id)
        .bind(username)
        .bind(display_name)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(User {
            id,
            username: username.into(),
            display_name: display_name.into(),
            role,
            disabled: false,
        })
    }

    fn user_from(row: &sqlx::any::AnyRow) -> Result<User, StoreError> {
        let role: String = row.try_get("role")?;
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            role: Role::parse(&role).map_err(StoreError::Corrupt)?,
            disabled: row.try_get::<i64, _>("disabled")? != 0,
        })
    }

    /// The user named `username`, if any.
    pub async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.user_with_hash(username).await?.map(|(u, _)| u))
    }

    /// The user named `username` and its password hash, if any.
    pub async fn user_with_hash(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, display_name, password_hash, role, disabled \
             FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((Self::user_from(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// The user with id `id`, if any.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, display_name, role, disabled FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::user_from).transpose()
    }

    /// Every user, by username.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, username, display_name, role, disabled FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::user_from).collect()
    }

    async fn update_user(&self, sql: &str, username: &str, value: Value) -> Result<(), StoreError> {
        let q = sqlx::query(sql);
        let q = match value {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
        };
        let done = q.bind(username).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoUser(username.into()));
        }
        Ok(())
    }

    /// Changes a user's role.
    ///
    /// # Errors
    /// [`StoreError::NoUser`].
    pub async fn set_role(&self, username: &str, role: Role) -> Result<(), StoreError> {
        let sql = "UPDATE users SET role = $1 WHERE username = $2";
        self.update_user(sql, username, Value::Text(role.as_str().into()))
            .await
    }

    /// Disables or enables a user. Disabling also revokes its refresh
    /// tokens.
    ///
    /// # Errors
    /// [`StoreError::NoUser`].
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<(), StoreError> {
        let sql = "UPDATE users SET disabled = $1 WHERE username = $2";
        self.update_user(sql, username, Value::Int(flag(disabled)))
            .await?;
        if disabled && let Some(u) = self.user(username).await? {
            self.revoke_refresh_of(u.id).await?;
        }
        Ok(())
    }

    /// Replaces a user's password hash and revokes its refresh tokens.
    ///
    /// # Errors
    /// [`StoreError::NoUser`].
    pub async fn set_password_hash(&self, username: &str, phc: &str) -> Result<(), StoreError> {
        let sql = "UPDATE users SET password_hash = $1 WHERE username = $2";
        self.update_user(sql, username, Value::Text(phc.into()))
            .await?;
        if let Some(u) = self.user(username).await? {
            self.revoke_refresh_of(u.id).await?;
        }
        Ok(())
    }

    /// Deletes a user (its grants stay as dead rows until the channel goes;
    /// its refresh tokens go with it).
    ///
    /// # Errors
    /// [`StoreError::NoUser`].
    pub async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        let Some(u) = self.user(username).await? else {
            return Err(StoreError::NoUser(username.into()));
        };
        self.revoke_refresh_of(u.id).await?;
        sqlx::query("DELETE FROM grants WHERE subject = $1")
            .bind(Subject::User(u.id).to_key())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(u.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates or updates a channel record.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a `max_talk_secs` outside
    /// [`ChannelEntry::MAX_TALK_SECS`].
    pub async fn put_channel(
        &self,
        name: &ChannelName,
        entry: &ChannelEntry,
    ) -> Result<(), StoreError> {
        if let Some(secs) = entry.max_talk_secs
            && !ChannelEntry::MAX_TALK_SECS.contains(&secs)
        {
            return Err(StoreError::Invalid(format!(
                "max_talk_secs {secs} for {name}: use {} to {} seconds",
                ChannelEntry::MAX_TALK_SECS.start(),
                ChannelEntry::MAX_TALK_SECS.end()
            )));
        }
        sqlx::query(
            "INSERT INTO channels (name, description, guests, preemption, max_talk_secs, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
             guests = excluded.guests, preemption = excluded.preemption, \
             max_talk_secs = excluded.max_talk_secs",
        )
        .bind(name.as_str())
        .bind(entry.description.as_str())
        .bind(flag(entry.guests))
        .bind(entry.preemption.map(flag))
        .bind(entry.max_talk_secs.map(i64::from))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a channel record and its grants.
    ///
    /// # Errors
    /// [`StoreError::NoChannel`].
    pub async fn delete_channel(&self, name: &ChannelName) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM grants WHERE channel = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        let done = sqlx::query("DELETE FROM channels WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoChannel(name.to_string()));
        }
        Ok(())
    }

    /// The grant subject an operator wrote: `role:NAME`, `user:ID` or
    /// `user:USERNAME` (looked up).
    ///
    /// # Errors
    /// [`StoreError::NoUser`] for an unknown username,
    /// [`StoreError::Invalid`] for anything else that is not a subject.
    pub async fn subject(&self, s: &str) -> Result<Subject, StoreError> {
        if let Some(name) = s.strip_prefix("user:")
            && name.parse::<i64>().is_err()
        {
            let user = self
                .user(name)
                .await?
                .ok_or_else(|| StoreError::NoUser(name.into()))?;
            return Ok(Subject::User(user.id));
        }
        Subject::parse(s).map_err(StoreError::Invalid)
    }

    /// Sets the rights of `subject` in `channel` (which must have a record).
    ///
    /// # Errors
    /// [`StoreError::NoChannel`].
    pub async fn put_grant(
        &self,
        channel: &ChannelName,
        subject: Subject,
        rights: Rights,
    ) -> Result<(), StoreError> {
        let exists = sqlx::query("SELECT name FROM channels WHERE name = $1")
            .bind(channel.as_str())
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NoChannel(channel.to_string()));
        }
        sqlx::query(
            "INSERT INTO grants (channel, subject, listen, talk, max_priority, dispatch) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (channel, subject) DO UPDATE SET listen = excluded.listen, \
             talk = excluded.talk, max_priority = excluded.max_priority, dispatch = excluded.dispatch",
        )
        .bind(channel.as_str())
        .bind(subject.to_key())
        .bind(flag(rights.listen))
        .bind(flag(rights.talk))
        .bind(i64::from(rights.max_priority.0))
        .bind(flag(rights.dispatch))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the grant of `subject` in `channel` (its defaults apply
    /// again). Returns whether there was one.
    pub async fn delete_grant(
        &self,
        channel: &ChannelName,
        subject: Subject,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM grants WHERE channel = $1 AND subject = $2")
            .bind(channel.as_str())
            .bind(subject.to_key())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Everything rights depend on, read in one go.
    pub async fn directory(&self) -> Result<Directory, StoreError> {
        let mut dir = Directory::default();
        for u in self.users().await? {
            dir.users.insert(
                u.id,
                UserEntry {
                    username: u.username,
                    display_name: u.display_name,
                    role: u.role,
                    disabled: u.disabled,
                },
            );
        }
        let rows = sqlx::query(
            "SELECT name, description, guests, preemption, max_talk_secs FROM channels",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let name: String = r.try_get("name")?;
            let name = ChannelName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            dir.channels.insert(
                name,
                ChannelEntry {
                    description: r.try_get("description")?,
                    guests: r.try_get::<i64, _>("guests")? != 0,
                    preemption: r.try_get::<Option<i64>, _>("preemption")?.map(|v| v != 0),
                    max_talk_secs: r
                        .try_get::<Option<i64>, _>("max_talk_secs")?
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                },
            );
        }
        let rows = sqlx::query(
            "SELECT channel, subject, listen, talk, max_priority, dispatch FROM grants",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let channel: String = r.try_get("channel")?;
            let channel =
                ChannelName::new(&channel).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let subject: String = r.try_get("subject")?;
            let subject = Subject::parse(&subject).map_err(StoreError::Corrupt)?;
            let priority: i64 = r.try_get("max_priority")?;
            dir.grants.insert(
                (channel, subject),
                Rights {
                    listen: r.try_get::<i64, _>("listen")? != 0,
                    talk: r.try_get::<i64, _>("talk")? != 0,
                    max_priority: Priority(priority.clamp(0, 255) as u8),
                    dispatch: r.try_get::<i64, _>("dispatch")? != 0,
                },
            );
        }
        Ok(dir)
    }

    /// Keeps a refresh token's hash for `user_id` until `expires_ms`.
    pub async fn add_refresh(
        &self,
        hash: &str,
        user_id: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, user_id, expires_ms, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash)
        .bind(user_id)
        .bind(expires_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the refresh token with `hash` and returns its user when it
    /// existed and had not expired (each refresh token is used once).
    pub async fn take_refresh(&self, hash: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let row =
            sqlx::query("DELETE FROM refresh_tokens WHERE hash = $1 RETURNING user_id, expires_ms")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let expires: i64 = row.try_get("expires_ms")?;
        Ok((expires > now_ms).then_some(row.try_get("user_id")?))
    }

    /// Revokes every refresh token of `user_id`.
    pub async fn revoke_refresh_of(&self, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

enum Value {
    Int(i64),
    Text(String),
}
