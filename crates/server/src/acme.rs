//! Certificates from an ACME CA (RFC 8555), e.g. Let's Encrypt, through
//! `rustls-acme`: TLS-ALPN-01 validation (RFC 8737) on the server's own
//! HTTPS port, so no port 80 is needed. The certificate and the ACME account
//! are cached in `DATA_DIR/acme`; a restart deploys the cached certificate at
//! once and renewal happens in the background (about 30 days before expiry,
//! rustls-acme's rule).
//!
//! Until the first certificate is issued, TLS handshakes other than the CA's
//! validation fail (there is nothing to present).

use std::{path::Path, sync::Arc};

use futures_util::StreamExt;
use rustls::RootCertStore;
use rustls_acme::{AcmeConfig, AcmeState, EventOk, caches::DirCache};
use tracing::{info, warn};

use crate::{config::ServerConfig, tls::TlsError};

/// Let's Encrypt's production directory, the default of `acme_directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The ALPN protocol id of TLS-ALPN-01 validation (RFC 8737 §6.2).
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// An ACME state machine to drive with [`drive`], and the rustls config that
/// presents its certificate (and answers TLS-ALPN-01 challenges).
pub(crate) struct Acme {
    /// For the HTTPS listener.
    pub tls: Arc<rustls::ServerConfig>,
    state: AcmeState<std::io::Error, std::io::Error>,
}

/// Sets up ACME for `config.acme_domains`, or `None` when there are none.
///
/// # Errors
/// [`TlsError`] if `acme_ca` cannot be read.
pub(crate) fn setup(config: &ServerConfig) -> Result<Option<Acme>, TlsError> {
    if config.acme_domains.is_empty() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cache = config.data_dir().join("acme");
    let mut acme = match &config.acme_ca {
        // A private or test CA: trust its directory's certificate from a file.
        Some(ca) => {
            let client = client_config(ca, provider.clone())?;
            AcmeConfig::new_with_client_config(&config.acme_domains, client)
        }
        None => AcmeConfig::new_with_provider(&config.acme_domains, provider.clone()),
    }
    .directory(config.acme_directory.as_deref().unwrap_or(LETS_ENCRYPT))
    .cache(DirCache::new(cache.clone()));
    if let Some(email) = &config.acme_email {
        acme = acme.contact_push(format!("mailto:{email}"));
    }
    let state = acme.state();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(state.resolver());
    tls.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    info!(
        domains = ?config.acme_domains,
        directory = config.acme_directory.as_deref().unwrap_or(LETS_ENCRYPT),
        cache = %cache.display(),
        "ACME: certificate from the CA, validated by TLS-ALPN-01 on this port"
    );
    Ok(Some(Acme {
        tls: Arc::new(tls),
        state,
    }))
}

/// A rustls client config that trusts the certificates in `ca` (PEM).
fn client_config(
    ca: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in crate::tls::read_certs(ca)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: ca.into(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(client))
}

/// Drives ordering, validation and renewal until `stop` resolves; logs each
/// step (a new or cached certificate deployed, errors with the CA).
pub(crate) async fn drive(acme: Acme, stop: impl std::future::Future<Output = ()>) {
    let mut state = acme.state;
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            () = &mut stop => return,
            e = state.next() => e,
        };
        match event {
            Some(Ok(EventOk::DeployedNewCert)) => info!("ACME: new certificate deployed"),
            Some(Ok(EventOk::DeployedCachedCert)) => info!("ACME: cached certificate deployed"),
            Some(Ok(other)) => info!(event = ?other, "ACME"),
            // rustls-acme retries with its own back-off.
            Some(Err(e)) => warn!("ACME: {e}"),
            None => return,
        }
    }
}
