//! `squawk-server user|channel|grant|revoke|rotate-token-key`: the
//! accounts database from the command line, on the same database the server
//! uses (it may be running: changes reach it within a second).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use squawk_protocol::{ChannelName, Priority};
use squawk_server::{
    ServerConfig,
    access::hash_password,
    accounts::{ChannelEntry, Rights, Role, store::Store, token::TokenKey},
};

use super::Command;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCmd {
    /// Adds a user. The password is read from the terminal (asked twice) or
    /// as one line from stdin.
    Add {
        /// Login name.
        name: String,
        /// `user`, `dispatcher` or `admin`.
        #[arg(long, default_value = "user")]
        role: String,
        /// Name shown to others [default: the login name].
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Lists users.
    List,
    /// Changes a user's role, password or state.
    Set {
        /// Login name.
        name: String,
        /// New role.
        #[arg(long)]
        role: Option<String>,
        /// Read a new password (as for `add`); revokes its refresh tokens.
        #[arg(long)]
        password: bool,
        /// Disable: cannot sign in, disconnected within a second.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable again.
        #[arg(long)]
        enable: bool,
    },
    /// Deletes a user and its grants.
    Delete {
        /// Login name.
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ChannelCmd {
    /// Creates or updates a channel record.
    Put {
        /// Channel name.
        name: String,
        /// Free text shown in the channel list.
        #[arg(long, default_value = "")]
        description: String,
        /// Guests (a name and no account) may join.
        #[arg(long)]
        guests: bool,
        /// Floor pre-emption here (`true` or `false`); without it, the
        /// server's `preemption` setting.
        #[arg(long)]
        preemption: Option<bool>,
        /// Longest transmission here before Floor Revoke, seconds (1 to
        /// 3600); without it, the server's `max_talk_secs`.
        #[arg(long)]
        max_talk_secs: Option<u32>,
    },
    /// Lists channel records and their grants.
    List,
    /// Deletes a channel record and its grants.
    Delete {
        /// Channel name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct GrantArgs {
    /// Channel name (its record is created if missing).
    channel: String,
    /// `role:user`, `role:dispatcher`, `role:admin` or `user:NAME`.
    subject: String,
    /// Rights, comma separated: `listen`, `talk`, `dispatch`; `none` for
    /// none (keeps the subject out of the channel).
    #[arg(long, value_delimiter = ',', required = true)]
    rights: Vec<String>,
    /// Highest floor priority: `normal`, `high`, `emergency` or 0-255.
    #[arg(long, default_value = "normal")]
    max_priority: String,
}

fn channel(name: &str) -> anyhow::Result<ChannelName> {
    ChannelName::new(name).map_err(|e| anyhow::anyhow!("{e}"))
}

fn priority(s: &str) -> anyhow::Result<Priority> {
    Ok(match s {
        "normal" => Priority::NORMAL,
        "high" => Priority::HIGH,
        "emergency" => Priority::EMERGENCY,
        n => Priority(
            n.parse()
                .with_context(|| format!("bad priority {n:?}: normal, high, emergency or 0-255"))?,
        ),
    })
}

fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            bail!("the passwords differ");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    let min = squawk_server::api::admin::MIN_PASSWORD_CHARS;
    if password.chars().count() < min {
        bail!("the password must have at least {min} characters");
    }
    Ok(password)
}

/// Runs one of the database commands.
pub(crate) fn run(cmd: Command, config: &ServerConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        if let Command::RotateTokenKey = cmd {
            TokenKey::rotate(&config.data_dir())?;
            println!("token key replaced: every access token issued so far is refused");
            return Ok(());
        }
        if config.database.is_none() {
            std::fs::create_dir_all(config.data_dir())
                .with_context(|| format!("creating {}", config.data_dir().display()))?;
        }
        let store = Store::open(&config.database_url()).await?;
        match cmd {
            Command::User(UserCmd::Add {
                name,
                role,
                display_name,
            }) => {
                let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
                let password = read_password()?;
                let phc = hash_password(&password).map_err(anyhow::Error::msg)?;
                let display = display_name.unwrap_or_else(|| name.clone());
                let user = store.add_user(&name, &display, &phc, role).await?;
                println!(
                    "added {} ({}), id {}",
                    user.username,
                    role.as_str(),
                    user.id
                );
            }
            Command::User(UserCmd::List) => {
                for u in store.users().await? {
                    let state = if u.disabled { " disabled" } else { "" };
                    println!(
                        "{}\t{}\t{}\tid {}{state}",
                        u.username,
                        u.display_name,
                        u.role.as_str(),
                        u.id
                    );
                }
            }
            Command::User(UserCmd::Set {
                name,
                role,
                password,
                disable,
                enable,
            }) => {
                if store.user(&name).await?.is_none() {
                    bail!("no user {name}");
                }
                if let Some(role) = role {
                    let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
                    store.set_role(&name, role).await?;
                }
                if password {
                    let phc = hash_password(&read_password()?).map_err(anyhow::Error::msg)?;
                    store.set_password_hash(&name, &phc).await?;
                }
                if disable || enable {
                    store.set_disabled(&name, disable).await?;
                }
                println!("updated {name}");
            }
            Command::User(UserCmd::Delete { name }) => {
                store.delete_user(&name).await?;
                println!("deleted {name}");
            }
            Command::Channel(ChannelCmd::Put {
                name,
                description,
                guests,
                preemption,
                max_talk_secs,
            }) => {
                let entry = ChannelEntry {
                    description,
                    guests,
                    preemption,
                    max_talk_secs,
                };
                store.put_channel(&channel(&name)?, &entry).await?;
                println!("channel {name} saved");
            }
            Command::Channel(ChannelCmd::List) => {
                let dir = store.directory().await?;
                let mut names: Vec<_> = dir.channels.keys().collect();
                names.sort();
                for name in names {
                    let c = &dir.channels[name];
                    let guests = if c.guests { "guests" } else { "no guests" };
                    let preemption = match c.preemption {
                        Some(true) => "pre-emption",
                        Some(false) => "no pre-emption",
                        None => "server pre-emption",
                    };
                    let max_talk = c.max_talk_secs.map_or_else(
                        || "server max talk".to_string(),
                        |s| format!("max talk {s} s"),
                    );
                    println!(
                        "{name}\t{guests}\t{preemption}\t{max_talk}\t{}",
                        c.description
                    );
                    for ((ch, subject), r) in &dir.grants {
                        if ch == name {
                            println!("  {}\t{r:?}", subject.to_key());
                        }
                    }
                }
            }
            Command::Channel(ChannelCmd::Delete { name }) => {
                store.delete_channel(&channel(&name)?).await?;
                println!("channel {name} deleted");
            }
            Command::Grant(GrantArgs {
                channel: name,
                subject: who,
                rights,
                max_priority,
            }) => {
                let ch = channel(&name)?;
                let mut r = Rights::NONE;
                for right in &rights {
                    match right.as_str() {
                        "listen" => r.listen = true,
                        "talk" => r.talk = true,
                        "dispatch" => r.dispatch = true,
                        "none" => {}
                        other => bail!("unknown right {other:?}: listen, talk, dispatch or none"),
                    }
                }
                r.max_priority = priority(&max_priority)?;
                let subject = store.subject(&who).await?;
                if !store.directory().await?.channels.contains_key(&ch) {
                    store.put_channel(&ch, &ChannelEntry::default()).await?;
                }
                store.put_grant(&ch, subject, r).await?;
                println!("{who} in {name}: {r:?}");
            }
            Command::Revoke {
                channel: name,
                subject: who,
            } => {
                let subject = store.subject(&who).await?;
                if !store.delete_grant(&channel(&name)?, subject).await? {
                    bail!("{who} has no grant in {name}");
                }
                println!("{who} in {name}: back to the role's defaults");
            }
            Command::HashPassword | Command::RotateTokenKey => unreachable!("handled before"),
        }
        Ok(())
    })
}
