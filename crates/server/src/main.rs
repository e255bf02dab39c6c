//! `squawk-server`: see `squawk-server --help` and `docs/server.md`.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use squawk_server::{Server, ServerConfig};

mod cli;

/// Squawk push-to-talk server: WebSocket signaling, Opus SFU, floor control.
///
/// With no options it serves on loopback with the embedded default config
/// (channels are created when first joined). Flags override the config file.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// HTTP + WebSocket signaling address [default: 127.0.0.1:7300].
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// UDP media address of the first SFU worker (worker i uses PORT+i; 0 = ephemeral)
    /// [default: 127.0.0.1:7400].
    #[arg(long, value_name = "ADDR:PORT")]
    media: Option<SocketAddr>,
    /// IP to announce in ICE candidates when --media binds 0.0.0.0.
    #[arg(long, value_name = "IP")]
    advertise_ip: Option<std::net::IpAddr>,
    /// TOML config file (see docs/server.md).
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Log lines on stderr: `text` for people, `json` (one object per
    /// line) for a log collector.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// SFU worker threads (0 = one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// RED (RFC 2198) redundant blocks per packet to listeners that
    /// negotiated RED, 0-8 (0: plain Opus) [default: 2].
    #[arg(long, value_name = "N")]
    red_levels: Option<usize>,
    /// Maximum talk time per transmission, seconds.
    #[arg(long, value_name = "SECONDS")]
    max_talk_secs: Option<u64>,
    /// PEM certificate chain: serve HTTPS and WSS (needs --tls-key).
    #[arg(long, value_name = "FILE.pem", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE.pem", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS and WSS with a self-signed certificate, generated on first
    /// start and kept in the data directory.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Obtain and renew the HTTPS certificate for DOMAIN from an ACME CA
    /// (Let's Encrypt by default), validated by TLS-ALPN-01 on --http's
    /// port (which the CA must reach as DOMAIN:443); repeatable.
    #[arg(long = "acme", value_name = "DOMAIN", conflicts_with_all = ["tls_cert", "tls_self_signed"])]
    acme_domains: Vec<String>,
    /// Contact address for the ACME CA (expiry warnings).
    #[arg(long, value_name = "ADDR", requires = "acme_domains")]
    acme_email: Option<String>,
    /// ACME directory URL [default: Let's Encrypt production].
    #[arg(long, value_name = "URL", requires = "acme_domains")]
    acme_directory: Option<String>,
    /// Trust these CA certificates (PEM) for the ACME directory's HTTPS:
    /// a private or test CA.
    #[arg(long, value_name = "FILE.pem", requires = "acme_domains")]
    acme_ca: Option<PathBuf>,
    /// Where to keep state such as the self-signed certificate
    /// [default: $XDG_DATA_HOME/squawk-server or ~/.local/share/squawk-server].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Accounts database, `postgres://USER:PASS@HOST/DB` or `sqlite://PATH`
    /// [default: squawk.db in the data directory].
    #[arg(long, value_name = "URL", env = "SQUAWK_DATABASE")]
    database: Option<String>,
    /// A web origin (`https://host[:port]`) whose pages may use this
    /// server, besides its own pages and the desktop app; repeatable, `*`
    /// for any. Added to the config's `allowed_origins`.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// A STUN or TURN server for clients' ICE (`stun:HOST[:PORT]`,
    /// `turn:HOST[:PORT]?transport=udp`, `turns:…`); repeatable. Added to
    /// the config's `ice_urls`. TURN needs --turn-secret.
    #[arg(long = "turn-url", value_name = "URL")]
    ice_urls: Vec<String>,
    /// The TURN server's shared secret (coturn's static-auth-secret):
    /// clients get credentials signed with it.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SQUAWK_TURN_SECRET",
        hide_env_values = true
    )]
    turn_secret: Option<String>,
    /// How long clients' TURN credentials stay valid, seconds [default: 86400].
    #[arg(long, value_name = "SECONDS")]
    turn_ttl_secs: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Reads a password (one line) from stdin and prints its Argon2id hash
    /// for the config's `password_hash`.
    HashPassword,
    /// Manages accounts in the database (the server may be running).
    #[command(subcommand)]
    User(cli::UserCmd),
    /// Manages channel records (description, guests) in the database.
    #[command(subcommand)]
    Channel(cli::ChannelCmd),
    /// Sets what a role or a user may do in a channel.
    Grant(cli::GrantArgs),
    /// Removes a grant: the role's defaults apply again.
    Revoke {
        /// Channel name.
        channel: String,
        /// `role:user`, `role:dispatcher`, `role:admin` or `user:NAME`.
        subject: String,
    },
    /// Replaces the key that signs access tokens: every token issued so far
    /// is refused (users sign in again, or refresh).
    RotateTokenKey,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`), `span`s.
    Json,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,str0m=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Some(Command::HashPassword) = args.command {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!password.is_empty(), "empty password");
        let phc = squawk_server::access::hash_password(password).map_err(anyhow::Error::msg)?;
        println!("{phc}");
        return Ok(());
    }
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    if let Some(v) = args.http {
        config.http = v;
    }
    if let Some(v) = args.media {
        config.media = v;
    }
    if let Some(v) = args.advertise_ip {
        config.advertise_ip = Some(v);
    }
    if let Some(v) = args.workers {
        config.workers = v;
    }
    if let Some(v) = args.red_levels {
        config.red_levels = v;
    }
    if let Some(v) = args.max_talk_secs {
        config.max_talk_secs = v;
    }
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert;
        config.tls_key = args.tls_key;
        config.tls_self_signed = false;
    }
    if args.tls_self_signed {
        config.tls_self_signed = true;
        config.tls_cert = None;
        config.tls_key = None;
    }
    if !args.acme_domains.is_empty() {
        config.acme_domains = args.acme_domains;
        config.tls_cert = None;
        config.tls_key = None;
        config.tls_self_signed = false;
    }
    if args.acme_email.is_some() {
        config.acme_email = args.acme_email;
    }
    if args.acme_directory.is_some() {
        config.acme_directory = args.acme_directory;
    }
    if args.acme_ca.is_some() {
        config.acme_ca = args.acme_ca;
    }
    if let Some(v) = args.data_dir {
        config.data_dir = Some(v);
    }
    if let Some(v) = args.database {
        config.database = Some(v);
    }
    config.allowed_origins.extend(args.allowed_origins);
    config.ice_urls.extend(args.ice_urls);
    if let Some(v) = args.turn_secret {
        config.turn_secret = Some(v);
    }
    if let Some(v) = args.turn_ttl_secs {
        config.turn_ttl_secs = v;
    }
    if let Some(cmd) = args.command {
        // One line, no backtrace: these are an operator's commands.
        if let Err(e) = cli::run(cmd, &config) {
            eprintln!("squawk-server: {e:#}");
            std::process::exit(1);
        }
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let server = Server::start(config).await?;
        // Tests and scripts read this line to learn the bound addresses.
        println!(
            "squawk-server ready http={} media={:?} web={}",
            server.http_addr(),
            server.media_addrs(),
            server.web_url()
        );
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
