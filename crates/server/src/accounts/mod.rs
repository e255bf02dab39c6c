//! Accounts, roles and per-channel rights.
//!
//! Two halves. The pure half ([`Directory`], [`Rights`], [`Identity`]) says
//! what a connection may do in a channel, from a snapshot of the database;
//! the hub holds one and is given a new one whenever an operator changes
//! something. The I/O half is [`store::Store`] (SQLite or PostgreSQL through
//! sqlx) and [`token`] (access and refresh tokens).
//!
//! Zero-config: a server whose database has no user is *open*: every
//! connection has every right, as before accounts existed.
//!
//! Evaluation, most specific first: a grant for the user in the channel; a
//! grant for the user's role in the channel; the role's defaults
//! ([`Role::defaults`]). Admins always have every right. A guest (a `hello`
//! with a name and no token, on a server with accounts) may listen and talk
//! at normal priority in channels that allow guests, and nowhere else.

#[cfg(test)]
pub(crate) mod pg_cluster;
pub mod store;
#[cfg(test)]
mod tests;
pub mod token;

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use squawk_floor::FloorConfig;
use squawk_protocol::{ChannelName, Priority};

/// A user's role (after Mumble's groups and Zello Work's roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Listens and talks at normal priority.
    User,
    /// Also monitors and patches channels and talks at high priority.
    Dispatcher,
    /// Every right everywhere, and the admin API.
    Admin,
}

impl Role {
    /// The role's name as stored and sent: `user`, `dispatcher`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Dispatcher => "dispatcher",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`]'s names.
    ///
    /// # Errors
    /// A message naming the three roles.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Role::User),
            "dispatcher" => Ok(Role::Dispatcher),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: use user, dispatcher or admin"
            )),
        }
    }

    /// Rights in a channel with no grant for this role or user.
    pub fn defaults(self) -> Rights {
        match self {
            Role::User => Rights {
                listen: true,
                talk: true,
                max_priority: Priority::NORMAL,
                dispatch: false,
            },
            Role::Dispatcher => Rights {
                listen: true,
                talk: true,
                max_priority: Priority::HIGH,
                dispatch: true,
            },
            Role::Admin => Rights::ALL,
        }
    }
}

/// What a connection may do in one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rights {
    /// Join the channel and hear it.
    pub listen: bool,
    /// Request the floor and be forwarded.
    pub talk: bool,
    /// Highest floor priority a Floor Request may carry (higher requests are
    /// lowered to it). An emergency's priority (TS 24.379) is not capped.
    pub max_priority: Priority,
    /// Monitor and patch the channel (dispatcher console).
    pub dispatch: bool,
}

impl Rights {
    /// Every right.
    pub const ALL: Rights = Rights {
        listen: true,
        talk: true,
        max_priority: Priority::EMERGENCY,
        dispatch: true,
    };
    /// No right.
    pub const NONE: Rights = Rights {
        listen: false,
        talk: false,
        max_priority: Priority::NORMAL,
        dispatch: false,
    };
    /// A guest's rights in a channel that allows guests.
    pub const GUEST: Rights = Rights {
        listen: true,
        talk: true,
        max_priority: Priority::NORMAL,
        dispatch: false,
    };
}

/// Who is behind a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A server without accounts: anyone may do anything.
    Open,
    /// A `hello` without a token on a server with accounts.
    Guest,
    /// A signed-in user.
    User {
        /// The user's id.
        id: i64,
    },
}

/// Whom a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Everyone with this role.
    Role(Role),
    /// One user, by id.
    User(i64),
}

impl Subject {
    /// Stored form: `role:NAME` or `user:ID`.
    pub fn to_key(self) -> String {
        match self {
            Subject::Role(r) => format!("role:{}", r.as_str()),
            Subject::User(id) => format!("user:{id}"),
        }
    }

    /// Parses [`Subject::to_key`]'s form.
    ///
    /// # Errors
    /// A message saying what a subject looks like.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("bad grant subject {s:?}: use role:NAME or user:ID");
        match s.split_once(':') {
            Some(("role", r)) => Role::parse(r).map(Subject::Role),
            Some(("user", id)) => id.parse().map(Subject::User).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// A user as the rights see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Login name.
    pub username: String,
    /// Shown to others.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// A disabled user cannot sign in and is disconnected.
    pub disabled: bool,
}

/// A channel record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEntry {
    /// Free text for the channel list.
    pub description: String,
    /// Whether guests (no account) may join.
    pub guests: bool,
    /// Whether a Floor Request of strictly higher priority pre-empts the
    /// talker here (TS 24.380 §6.3.4.4.4); `None`: the server's
    /// `preemption` setting.
    pub preemption: Option<bool>,
    /// Longest transmission here before Floor Revoke, seconds (TS 24.380
    /// timer T2); `None`: the server's `max_talk_secs`.
    pub max_talk_secs: Option<u32>,
}

impl ChannelEntry {
    /// Allowed `max_talk_secs`: 1 s to 1 hour.
    pub const MAX_TALK_SECS: std::ops::RangeInclusive<u32> = 1..=3600;
}

/// A snapshot of users, channels and grants: everything rights depend on.
/// Cheap to evaluate (hash lookups), rebuilt by [`store::Store::directory`]
/// after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// Users by id.
    pub users: HashMap<i64, UserEntry>,
    /// Channel records by name.
    pub channels: HashMap<ChannelName, ChannelEntry>,
    /// Grants by channel and subject.
    pub grants: HashMap<(ChannelName, Subject), Rights>,
}

impl Directory {
    /// Whether the server has accounts (at least one user). Without, it is
    /// open.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// What `who` may do in `channel`.
    pub fn rights(&self, who: &Identity, channel: &ChannelName) -> Rights {
        if !self.enabled() {
            return Rights::ALL;
        }
        match who {
            Identity::Open => Rights::ALL,
            Identity::Guest => match self.channels.get(channel) {
                Some(c) if c.guests => Rights::GUEST,
                _ => Rights::NONE,
            },
            Identity::User { id } => {
                let Some(user) = self.users.get(id) else {
                    return Rights::NONE;
                };
                if user.disabled {
                    return Rights::NONE;
                }
                if user.role == Role::Admin {
                    return Rights::ALL;
                }
                let grant = |s: Subject| self.grants.get(&(channel.clone(), s)).copied();
                grant(Subject::User(*id))
                    .or_else(|| grant(Subject::Role(user.role)))
                    .unwrap_or_else(|| user.role.defaults())
            }
        }
    }

    /// The floor policy of `channel`: the server's `base` with the channel
    /// record's settings over it.
    pub fn floor_config(&self, channel: &ChannelName, base: FloorConfig) -> FloorConfig {
        let Some(c) = self.channels.get(channel) else {
            return base;
        };
        FloorConfig {
            preemption: c.preemption.unwrap_or(base.preemption),
            max_talk: c
                .max_talk_secs
                .map_or(base.max_talk, |s| Duration::from_secs(u64::from(s))),
            ..base
        }
    }

    /// Whether `who` may stay connected at all (a disabled or deleted user
    /// may not).
    pub fn may_connect(&self, who: &Identity) -> bool {
        match who {
            Identity::User { id } => self.users.get(id).is_some_and(|u| !u.disabled),
            Identity::Open | Identity::Guest => true,
        }
    }
}
