//! HTTPS and WSS for the signaling listener (rustls via tokio-rustls).
//!
//! Browsers give a page the microphone only in a secure context, so anywhere
//! but `localhost` the web client needs HTTPS. Two sources of a certificate:
//! PEM files (`--tls-cert`, `--tls-key`, e.g. from Let's Encrypt), or a
//! self-signed one generated with rcgen on first start and kept in the data
//! directory for quick LAN use (`--tls-self-signed`). Media (DTLS-SRTP) has
//! its own certificates and is not affected.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tracing::{debug, info};

use crate::config::ServerConfig;

/// A TLS handshake that has not finished after this long is dropped, so a
/// client that opens a TCP connection and stays silent holds nothing.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// File names of the persisted self-signed certificate in the data directory.
pub const SELF_SIGNED_CERT: &str = "self-signed-cert.pem";
/// See [`SELF_SIGNED_CERT`].
pub const SELF_SIGNED_KEY: &str = "self-signed-key.pem";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate/key pair (e.g. they do not match).
    #[error("certificate and key rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// rcgen could not generate a certificate.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Builds the rustls config the server's settings ask for, or `None` for
/// plain HTTP.
///
/// # Errors
/// [`TlsError`] if a file is missing, unreadable or not PEM, the key does
/// not match the certificate, or a self-signed certificate cannot be made.
pub fn server_config(config: &ServerConfig) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ if config.tls_self_signed => {
            let dir = config.data_dir();
            ensure_self_signed(&dir, &subject_names(config))?
        }
        _ => return Ok(None),
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    // What clients pin (`squawk-bot --pin`, the desktop's first-use prompt).
    let sha256: String = <sha2::Sha256 as sha2::Digest>::digest(&certs[0])
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    info!(cert = %cert_path.display(), %sha256, "TLS certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.into(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.into(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.into(),
        message: format!("no usable private key: {e}"),
    })
}

/// Names the self-signed certificate is valid for: `localhost`, loopback,
/// the bound HTTP address and the advertised media address when specific.
fn subject_names(config: &ServerConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let mut add_ip = |ip: IpAddr| {
        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
    };
    add_ip(config.http.ip());
    if let Some(ip) = config.advertise_ip {
        add_ip(ip);
    }
    names
}

/// Returns the paths of the persisted self-signed certificate and key in
/// `dir`, generating them (valid for `names`) when absent. The key file is
/// created with mode 0600.
///
/// # Errors
/// [`TlsError`] if the directory or files cannot be written.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join(SELF_SIGNED_CERT);
    let key_path = dir.join(SELF_SIGNED_KEY);
    if cert_path.exists() && key_path.exists() {
        info!(cert = %cert_path.display(), "using the persisted self-signed certificate");
        return Ok((cert_path, key_path));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cert = rcgen::generate_simple_self_signed(names.to_vec())?;
    write_private(&key_path, cert.signing_key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
    std::fs::write(&cert_path, cert.cert.pem()).map_err(io(&cert_path))?;
    info!(cert = %cert_path.display(), ?names, "generated a self-signed certificate");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(data)
}

/// An [`axum::serve::Listener`] that accepts TCP, sets `TCP_NODELAY` and
/// completes the TLS handshake in its own task, so one slow handshake never
/// delays another connection.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accept: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(tls);
        let (tx, rx) = mpsc::channel(64);
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // E.g. out of file descriptors: back off, keep serving.
                        crate::logs::limited!(warn, "accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Err(e) = tcp.set_nodelay(true) {
                    debug!("TCP_NODELAY: {e}");
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            rx,
            local,
            _accept: accept,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self._accept.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task never ends on its own; if it did, serve nothing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("squawk-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn self_signed_is_generated_once_then_reused() {
        let dir = temp_dir("persist");
        let names = vec!["localhost".to_string(), "192.0.2.9".into()];
        let (cert, key) = ensure_self_signed(&dir, &names).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let (cert2, _) = ensure_self_signed(&dir, &names).unwrap();
        assert_eq!(
            std::fs::read(cert2).unwrap(),
            first,
            "a restart keeps the certificate"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        let mut config = ServerConfig {
            tls_self_signed: true,
            data_dir: Some(dir.clone()),
            ..ServerConfig::default()
        };
        assert!(server_config(&config).unwrap().is_some());
        config.tls_self_signed = false;
        assert!(
            server_config(&config).unwrap().is_none(),
            "plain HTTP by default"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = temp_dir("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let config = ServerConfig {
            tls_cert: Some(junk.clone()),
            tls_key: Some(junk.clone()),
            ..ServerConfig::default()
        };
        let e = server_config(&config).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("CERTIFICATE"), "{e}");
        let config = ServerConfig {
            tls_cert: Some(dir.join("missing.pem")),
            tls_key: Some(junk),
            ..ServerConfig::default()
        };
        let e = server_config(&config).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        // A key that does not match the certificate.
        let (cert, _) = ensure_self_signed(&dir.join("a"), &["localhost".into()]).unwrap();
        let (_, key) = ensure_self_signed(&dir.join("b"), &["localhost".into()]).unwrap();
        let config = ServerConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..ServerConfig::default()
        };
        assert!(matches!(server_config(&config), Err(TlsError::Rustls(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
