//! Server configuration: an embedded default (zero configuration, loopback,
//! channels created on join) overridden by an optional TOML file and flags.
//! The reference is `docs/server.md`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use squawk_protocol::ChannelName;

/// Everything `squawk-server` can be told.
///
/// TOML keys are the field names. Unknown keys are an error, so a typo does
/// not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP and WebSocket signaling address. Default `127.0.0.1:7300`.
    pub http: SocketAddr,
    /// UDP media address of the first SFU worker; worker `i` binds port
    /// `port + i` (or an ephemeral port each when the port is 0).
    /// Default `127.0.0.1:7400`.
    pub media: SocketAddr,
    /// IP put in ICE host candidates when `media` binds an unspecified
    /// address (`0.0.0.0`), e.g. the host's LAN address.
    pub advertise_ip: Option<IpAddr>,
    /// SFU worker threads; 0 means one per CPU core. Default 0.
    pub workers: usize,
    /// RED (RFC 2198) redundant blocks in each packet the SFU sends a
    /// listener that negotiated RED: copies of this many packets before it,
    /// so a burst that long lost on the downlink is repaired. 0 sends plain
    /// Opus to everyone (RED from talkers is still unwrapped). 0-8,
    /// default 2.
    pub red_levels: usize,
    /// Longest transmission before Floor Revoke, in seconds. Default 60.
    pub max_talk_secs: u64,
    /// Whether a strictly higher floor priority pre-empts the current
    /// talker (Floor Revoke `preempted`). Default true.
    pub preemption: bool,
    /// How long after raising an emergency the originator's Floor Requests
    /// in that channel get emergency priority, in seconds. Default 300.
    pub emergency_priority_secs: u64,
    /// How long a queued Floor Request waits before Floor Deny
    /// `queue_timeout`, in seconds. Default 30.
    pub queue_timeout_secs: u64,
    /// Most Floor Requests queued per channel; more are denied `busy`. Default 16.
    pub max_floor_queue: usize,
    /// Channels that always exist.
    pub channels: Vec<ChannelName>,
    /// Whether joining an unknown channel creates it (rooms by link).
    /// Default true; set false with a `channels` list for a closed server.
    pub create_channels_on_join: bool,
    /// Most channels one connection may be in at once. Default 64.
    pub max_channels_per_client: usize,
    /// PEM certificate chain for HTTPS/WSS; requires `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS/WSS with a self-signed certificate generated on first
    /// start and kept in `data_dir` (quick LAN use; browsers warn once).
    /// Default false.
    pub tls_self_signed: bool,
    /// Obtain and renew the HTTPS certificate for these domains from an
    /// ACME CA (RFC 8555; TLS-ALPN-01 on the `http` port, which must be
    /// reachable as DOMAIN:443 from the CA). Excludes `tls_cert` and
    /// `tls_self_signed`. Default none.
    pub acme_domains: Vec<String>,
    /// Contact address given to the ACME CA (expiry warnings). Optional.
    pub acme_email: Option<String>,
    /// The ACME directory URL. Default Let's Encrypt production.
    pub acme_directory: Option<String>,
    /// A PEM file of the CA certificates to trust for the ACME directory's
    /// own HTTPS (a private or test CA); default the Web PKI roots.
    pub acme_ca: Option<PathBuf>,
    /// Where the server keeps state (the self-signed certificate). Default
    /// `$XDG_DATA_HOME/squawk-server`, else `~/.local/share/squawk-server`.
    pub data_dir: Option<PathBuf>,
    /// Server password as an Argon2 PHC hash (`squawk-server
    /// hash-password` makes one); clients must send the password in
    /// `hello`. Default none: an open server.
    pub password_hash: Option<String>,
    /// Accounts database: `postgres://USER:PASS@HOST/DB`, or `sqlite://PATH`.
    /// Default: the SQLite file `squawk.db` in `data_dir`. With no user in
    /// it the server is open (see `docs/server.md`, Accounts).
    pub database: Option<String>,
    /// Web origins (`scheme://host[:port]`) besides the server's own pages
    /// and the desktop app that may open a WebSocket or call the API; `"*"`
    /// allows any. Default none (see [`crate::origin`]).
    pub allowed_origins: Vec<String>,
    /// STUN and TURN server URLs handed to every client in its `welcome`
    /// (`stun:HOST[:PORT]`, `turn:HOST[:PORT][?transport=udp|tcp]`,
    /// `turns:…`). TURN URLs need `turn_secret`. Default none: clients
    /// use host candidates only (a LAN).
    pub ice_urls: Vec<String>,
    /// The TURN server's shared secret (coturn's `static-auth-secret`):
    /// each client gets credentials signed with it, valid for
    /// `turn_ttl_secs`. Also read from `SQUAWK_TURN_SECRET`.
    pub turn_secret: Option<String>,
    /// How long a client's TURN credentials stay valid, s. A connection
    /// that outlives them keeps its relay (coturn checks the time at
    /// allocation and refresh) until it reconnects. Default 86,400 (a
    /// shift; the REST API draft's suggestion).
    pub turn_ttl_secs: u64,
    /// Admission limits and timeouts (`[limits]` in TOML).
    pub limits: Limits,
}

/// Admission limits and timeouts, the `[limits]` table of the config file.
/// Every limit has a stable error code a client can match on
/// (`docs/server.md` lists them); missing keys keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// WebSocket connections in total; one more gets `server_full`.
    /// Default 10,000.
    pub max_connections: usize,
    /// WebSocket connections from one IP address; one more gets
    /// `too_many_connections`. Default 500 (a NAT may hide a whole team).
    pub max_connections_per_ip: usize,
    /// New WebSocket connections per second from one IP address, sustained
    /// (a token bucket); beyond it `connect_rate_limited`. Default 50.
    pub new_connections_per_ip_per_sec: u32,
    /// Burst of new connections one IP address may open at once before the
    /// per-second rate applies (the bucket's size). Default 200.
    pub new_connections_per_ip_burst: u32,
    /// Members of one channel; one more join gets `channel_full`. Default 1,000.
    pub max_members_per_channel: usize,
    /// Signaling messages per second from one connection, sustained (a
    /// token bucket of twice this size); beyond it a message is ignored and
    /// answered with `rate_limited`. Default 50.
    pub messages_per_sec: u32,
    /// Interval of WebSocket pings from the server, s. Default 10.
    pub ping_interval_secs: u64,
    /// A connection that sends nothing (not even a pong) for this long is
    /// closed with `idle_timeout`, s. Default 35.
    pub idle_timeout_secs: u64,
    /// Messages waiting to be written to one connection, KiB (an estimate
    /// of their JSON size). Floor, join and error messages are never
    /// dropped and presence is merged, so a connection over this bound is
    /// one that does not read: it is closed with `too_slow`. Default 1024.
    pub outbound_queue_kib: usize,
    /// A single write to a connection that does not complete within this
    /// time closes it with `too_slow`, s. Default 10.
    pub write_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 500,
            new_connections_per_ip_per_sec: 50,
            new_connections_per_ip_burst: 200,
            max_members_per_channel: 1_000,
            messages_per_sec: 50,
            ping_interval_secs: 10,
            idle_timeout_secs: 35,
            outbound_queue_kib: 1024,
            write_timeout_secs: 10,
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            (
                "new_connections_per_ip_per_sec",
                u64::from(self.new_connections_per_ip_per_sec),
            ),
            (
                "new_connections_per_ip_burst",
                u64::from(self.new_connections_per_ip_burst),
            ),
            (
                "max_members_per_channel",
                self.max_members_per_channel as u64,
            ),
            ("messages_per_sec", u64::from(self.messages_per_sec)),
            ("ping_interval_secs", self.ping_interval_secs),
            ("outbound_queue_kib", self.outbound_queue_kib as u64),
            ("write_timeout_secs", self.write_timeout_secs),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!(
                "limits.{key} must be at least 1"
            )));
        }
        if self.idle_timeout_secs <= self.ping_interval_secs {
            return Err(ConfigError::Invalid(
                "limits.idle_timeout_secs must be longer than limits.ping_interval_secs".into(),
            ));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7300),
            media: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7400),
            advertise_ip: None,
            workers: 0,
            red_levels: 2,
            max_talk_secs: 60,
            preemption: true,
            emergency_priority_secs: 300,
            queue_timeout_secs: 30,
            max_floor_queue: 16,
            channels: Vec::new(),
            create_channels_on_join: true,
            max_channels_per_client: 64,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            acme_domains: Vec::new(),
            acme_email: None,
            acme_directory: None,
            acme_ca: None,
            data_dir: None,
            password_hash: None,
            database: None,
            allowed_origins: Vec::new(),
            ice_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_secs: 86_400,
            limits: Limits::default(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// File path.
        path: String,
        /// Cause.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl ServerConfig {
    /// Reads a TOML file; missing keys keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError`] if the file is unreadable, not TOML, has unknown keys
    /// or fails [`ServerConfig::validate`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and combinations.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_talk_secs == 0 {
            return Err(ConfigError::Invalid(
                "max_talk_secs must be at least 1".into(),
            ));
        }
        if self.max_channels_per_client == 0 {
            return Err(ConfigError::Invalid(
                "max_channels_per_client must be at least 1".into(),
            ));
        }
        if self.queue_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "queue_timeout_secs must be at least 1 (max_floor_queue = 0 turns queueing off)"
                    .into(),
            ));
        }
        if self.media.ip().is_unspecified() && self.advertise_ip.is_none() {
            return Err(ConfigError::Invalid(format!(
                "media binds {} (unspecified): set advertise_ip to the address clients reach",
                self.media
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.channels.iter().find(|c| !seen.insert(*c)) {
            return Err(ConfigError::Invalid(format!(
                "channel {dup} is listed twice"
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together: give both or neither".into(),
            ));
        }
        if self.tls_self_signed && self.tls_cert.is_some() {
            return Err(ConfigError::Invalid(
                "tls_self_signed and tls_cert exclude each other".into(),
            ));
        }
        if !self.acme_domains.is_empty() && (self.tls_cert.is_some() || self.tls_self_signed) {
            return Err(ConfigError::Invalid(
                "acme_domains excludes tls_cert and tls_self_signed: one source of certificates"
                    .into(),
            ));
        }
        if let Some(bad) = self.acme_domains.iter().find(|d| {
            d.is_empty()
                || d.parse::<IpAddr>().is_ok()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }) {
            return Err(ConfigError::Invalid(format!(
                "acme_domains: {bad:?} is not a DNS name (ACME certificates are for names, not addresses)"
            )));
        }
        if self.acme_domains.is_empty()
            && (self.acme_email.is_some()
                || self.acme_directory.is_some()
                || self.acme_ca.is_some())
        {
            return Err(ConfigError::Invalid(
                "acme_email, acme_directory and acme_ca need acme_domains".into(),
            ));
        }
        if let Some(phc) = &self.password_hash {
            crate::access::Access::with_hash(phc).map_err(ConfigError::Invalid)?;
        }
        for url in &self.ice_urls {
            crate::turn::check_url(url).map_err(ConfigError::Invalid)?;
        }
        let has_turn = self.ice_urls.iter().any(|u| !u.starts_with("stun:"));
        match (&self.turn_secret, has_turn) {
            (None, true) => {
                return Err(ConfigError::Invalid(
                    "TURN URLs need turn_secret (or SQUAWK_TURN_SECRET), the TURN server's static-auth-secret"
                        .into(),
                ));
            }
            (Some(s), _) if s.is_empty() => {
                return Err(ConfigError::Invalid("turn_secret is empty".into()));
            }
            (Some(_), false) => {
                return Err(ConfigError::Invalid(
                    "turn_secret is set but no turn: or turns: URL is in ice_urls".into(),
                ));
            }
            _ => {}
        }
        if self.turn_ttl_secs < 60 {
            return Err(ConfigError::Invalid(
                "turn_ttl_secs must be at least 60".into(),
            ));
        }
        self.limits.validate()?;
        if self.workers > 64 {
            return Err(ConfigError::Invalid("workers must be at most 64".into()));
        }
        if self.red_levels > squawk_media::red::MAX_LEVELS {
            return Err(ConfigError::Invalid(format!(
                "red_levels must be at most {}",
                squawk_media::red::MAX_LEVELS
            )));
        }
        Ok(())
    }

    /// Maximum talk time as a [`Duration`].
    pub fn max_talk(&self) -> Duration {
        Duration::from_secs(self.max_talk_secs)
    }

    /// The accounts database URL with its default resolved: `database`, else
    /// `sqlite://DATA_DIR/squawk.db?mode=rwc` (created on first use).
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir().join("squawk.db").display()
            ),
        }
    }

    /// The data directory with its default resolved (see [`Self::data_dir`]
    /// field docs); `./squawk-data` when neither XDG_DATA_HOME nor HOME is set.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
        match base {
            Some(b) => b.join("squawk-server"),
            None => PathBuf::from("squawk-data"),
        }
    }

    /// Worker count with 0 resolved to the number of CPU cores.
    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(64))
        } else {
            self.workers
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        let c: ServerConfig = toml::from_str("").unwrap();
        assert_eq!(c, ServerConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn closed_server_config_parses() {
        let c: ServerConfig = toml::from_str(
            "http = \"0.0.0.0:8080\"\nmedia = \"0.0.0.0:9000\"\nadvertise_ip = \"192.0.2.7\"\n\
             channels = [\"ops\", \"fire\"]\ncreate_channels_on_join = false\nmax_talk_secs = 30\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.channels.len(), 2);
        assert_eq!(c.max_talk(), Duration::from_secs(30));
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(toml::from_str::<ServerConfig>("max_talk = 5").is_err());
        assert!(toml::from_str::<ServerConfig>("channels = [\"has space\"]").is_err());
        let c: ServerConfig = toml::from_str("media = \"0.0.0.0:9000\"").unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
        let c: ServerConfig = toml::from_str("max_talk_secs = 0").unwrap();
        assert!(c.validate().is_err());
        let c: ServerConfig = toml::from_str("tls_cert = \"c.pem\"").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("tls_key"), "{e}");
        let c: ServerConfig =
            toml::from_str("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_self_signed = true")
                .unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn acme_is_checked() {
        let c: ServerConfig = toml::from_str(
            "acme_domains = [\"talk.example.org\"]\nacme_email = \"ops@example.org\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let c: ServerConfig =
            toml::from_str("acme_domains = [\"talk.example.org\"]\ntls_self_signed = true")
                .unwrap();
        assert!(c.validate().is_err(), "two sources of certificates");
        let c: ServerConfig = toml::from_str("acme_domains = [\"192.0.2.1\"]").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("192.0.2.1"), "{e}");
        let c: ServerConfig = toml::from_str("acme_email = \"ops@example.org\"").unwrap();
        assert!(c.validate().is_err(), "an email without a domain");
    }

    #[test]
    fn ice_servers_are_checked() {
        let c: ServerConfig = toml::from_str(
            "ice_urls = [\"stun:192.0.2.1\", \"turn:192.0.2.1:3478?transport=udp\"]\nturn_secret = \"s\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.turn_ttl_secs, 86_400);
        let c: ServerConfig = toml::from_str("ice_urls = [\"turn:192.0.2.1\"]").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("turn_secret"), "{e}");
        let c: ServerConfig =
            toml::from_str("ice_urls = [\"stun:192.0.2.1\"]\nturn_secret = \"s\"").unwrap();
        assert!(
            c.validate().is_err(),
            "a secret with no TURN URL is a mistake"
        );
        let c: ServerConfig = toml::from_str("ice_urls = [\"192.0.2.1:3478\"]").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("192.0.2.1:3478"), "{e}");
        let c: ServerConfig =
            toml::from_str("ice_urls = [\"turn:h\"]\nturn_secret = \"s\"\nturn_ttl_secs = 5")
                .unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn limits_parse_and_are_checked() {
        let c: ServerConfig =
            toml::from_str("[limits]\nmax_connections = 3000\nmessages_per_sec = 20\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.max_connections, 3000);
        assert_eq!(c.limits.messages_per_sec, 20);
        assert_eq!(c.limits.idle_timeout_secs, 35, "default kept");
        assert!(toml::from_str::<ServerConfig>("[limits]\nmax_conections = 1").is_err());
        let c: ServerConfig = toml::from_str("[limits]\nmax_members_per_channel = 0").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("limits.max_members_per_channel"), "{e}");
        let c: ServerConfig = toml::from_str("[limits]\nidle_timeout_secs = 5").unwrap();
        assert!(c.validate().is_err(), "idle timeout shorter than the ping");
    }
}
