//! Which servers a client trusts over TLS (`wss://` signaling and the
//! `https://` accounts API), and what a user may type as the server.
//!
//! Trust, in order: a pinned certificate (the SHA-256 of the server's
//! end-entity certificate, DER: accepted whatever its issuer and names,
//! as for a self-signed server trusted on first use); else the system's
//! root CAs plus an optional CA file, with the usual WebPKI checks (chain,
//! validity, the host name). An untrusted certificate is refused with its
//! fingerprint in the error, so that a user can check and pin it; a pinned
//! one that changed is refused with both fingerprints.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use reqwest::Url;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use sha2::{Digest, Sha256};
use squawk_protocol::ChannelName;

/// How a client decides to trust a server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Extra CA certificates (a PEM file), trusted beside the system's.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server's end-entity certificate (DER), 32 bytes.
    pub pin: Option<[u8; 32]>,
}

/// Why a TLS client could not be set up or a server was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The CA file is unreadable or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither system roots nor a CA file gave any trust anchor.
    #[error("no trusted root certificates: give a CA file (--ca) or a pin (--pin)")]
    NoRoots,
    /// The server's certificate is not trusted (self-signed, unknown
    /// issuer, wrong name, expired).
    #[error(
        "the server's certificate is not trusted ({reason}); its SHA-256 fingerprint is \
         {fingerprint}: if that is your server's, pin it (--pin {fingerprint}) or trust its CA (--ca FILE)"
    )]
    Untrusted {
        /// Fingerprint, colon-separated hex ([`fingerprint_hex`]).
        fingerprint: String,
        /// rustls's reason.
        reason: String,
    },
    /// The server's certificate is not the pinned one.
    #[error(
        "the server's certificate changed: its SHA-256 is {got}, the pinned one {pinned}; refused \
         (a new certificate on the server, or someone in between)"
    )]
    PinMismatch {
        /// The server's fingerprint.
        got: String,
        /// The pinned fingerprint.
        pinned: String,
    },
}

/// `AB:CD:…`: 32 bytes as upper-case hex pairs joined by colons (the form
/// browsers and `openssl x509 -fingerprint -sha256` show).
pub fn fingerprint_hex(hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(95);
    for (i, b) in hash.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Parses a fingerprint: 64 hex digits, with or without colons, any case.
///
/// # Errors
/// A message saying what a fingerprint looks like.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || format!("bad SHA-256 fingerprint {s:?}: 64 hex digits, colons allowed");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The rustls client configuration for `trust`, and a slot where the
/// verifier leaves the fingerprint of the last certificate it saw (to
/// explain a refusal).
///
/// # Errors
/// [`TlsError::CaFile`], [`TlsError::NoRoots`].
pub fn client_config(trust: &Trust) -> Result<(rustls::ClientConfig, SeenCert), TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &trust.ca_file {
        let n = add_ca_file(&mut roots, path)?;
        tracing::debug!("{n} CA certificates from {}", path.display());
    }
    let webpki = if roots.is_empty() {
        if trust.pin.is_none() {
            return Err(TlsError::NoRoots);
        }
        None
    } else {
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|_| TlsError::NoRoots)?,
        )
    };
    let seen = SeenCert::default();
    let verifier = Verifier {
        webpki,
        pin: trust.pin,
        algorithms: provider.signature_verification_algorithms,
        seen: seen.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| TlsError::NoRoots)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, seen))
}

fn add_ca_file(roots: &mut rustls::RootCertStore, path: &Path) -> Result<usize, TlsError> {
    let bad = |reason: String| TlsError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let mut n = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(n)
}

/// The fingerprint of the last end-entity certificate a verifier saw.
#[derive(Debug, Clone, Default)]
pub struct SeenCert(Arc<Mutex<Option<[u8; 32]>>>);

impl SeenCert {
    /// The fingerprint, if a handshake got as far as the certificate.
    pub fn get(&self) -> Option<[u8; 32]> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, hash: [u8; 32]) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(hash);
    }

    /// Turns a failed handshake's text into a [`TlsError`] when it was the
    /// certificate that failed (`None` otherwise).
    pub fn explain(&self, trust: &Trust, error: &str) -> Option<TlsError> {
        let got = self.get()?;
        if let Some(pin) = trust.pin
            && pin != got
        {
            return Some(TlsError::PinMismatch {
                got: fingerprint_hex(&got),
                pinned: fingerprint_hex(&pin),
            });
        }
        error.contains("certificate").then(|| TlsError::Untrusted {
            fingerprint: fingerprint_hex(&got),
            reason: error
                .rsplit_once(": ")
                .map_or(error, |(_, r)| r)
                .to_string(),
        })
    }
}

/// Pin first, else WebPKI; signatures checked with the provider's
/// algorithms either way.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
    seen: SeenCert,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        self.seen.set(got);
        match (self.pin, &self.webpki) {
            (Some(pin), _) if pin == got => Ok(ServerCertVerified::assertion()),
            (Some(_), _) => Err(rustls::Error::General(
                "certificate does not match the pinned fingerprint".into(),
            )),
            (None, Some(webpki)) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            (None, None) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a user typed as the server, read as Squawk's signaling URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// `ws://HOST:PORT/PATH` or `wss://…`.
    pub signaling: String,
    /// The channel named by a browser link (`…/c/CHANNEL`), if any.
    pub channel: Option<ChannelName>,
}

/// Reads what a user may type or paste as the server:
///
/// * `ws://HOST[:PORT]/ws` or `wss://…` (a path-less one gets `/ws`);
/// * the browser's link `http(s)://HOST[:PORT]/[c/CHANNEL]` (its
///   signaling is `ws(s)://HOST[:PORT]/ws`; the channel is returned);
/// * `HOST[:PORT]` alone: `ws://HOST:PORT/ws`, port 7300 by default.
///
/// # Errors
/// A one-line message naming the accepted forms.
pub fn server_address(input: &str) -> Result<ServerAddress, String> {
    let input = input.trim();
    let bad = |why: &str| {
        format!(
            "bad server address {input:?} ({why}): use ws://HOST:PORT/ws, wss://HOST/ws or \
             the browser link http(s)://HOST:PORT/c/CHANNEL"
        )
    };
    let with_scheme = if input.contains("://") {
        input.to_string()
    } else {
        let default_port = if input.contains(':') { "" } else { ":7300" };
        format!("ws://{input}{default_port}/ws")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    let mut channel = None;
    match url.scheme() {
        "ws" | "wss" => {
            if url.path().is_empty() || url.path() == "/" {
                url.set_path("/ws");
            }
        }
        "http" | "https" => {
            if let Some(name) = url.path().strip_prefix("/c/") {
                let name = name.trim_end_matches('/');
                channel = Some(ChannelName::new(name).map_err(|e| bad(&e.to_string()))?);
            }
            let ws = if url.scheme() == "https" { "wss" } else { "ws" };
            url.set_scheme(ws).map_err(|()| bad("scheme"))?;
            url.set_path("/ws");
        }
        other => return Err(bad(&format!("unknown scheme {other}"))),
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(ServerAddress {
        signaling: url.to_string(),
        channel,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_form_a_user_may_paste_becomes_the_signaling_url() {
        let s =
            |i: &str| server_address(i).map(|a| (a.signaling, a.channel.map(|c| c.to_string())));
        assert_eq!(s("ws://h:7300/ws"), Ok(("ws://h:7300/ws".into(), None)));
        assert_eq!(
            s("wss://h.example"),
            Ok(("wss://h.example/ws".into(), None))
        );
        assert_eq!(
            s("http://10.0.0.5:7300/c/ops"),
            Ok(("ws://10.0.0.5:7300/ws".into(), Some("ops".into())))
        );
        assert_eq!(
            s(" https://radio.example/c/ops/?x=1#y "),
            Ok(("wss://radio.example/ws".into(), Some("ops".into())))
        );
        assert_eq!(
            s("https://radio.example/"),
            Ok(("wss://radio.example/ws".into(), None))
        );
        assert_eq!(s("localhost"), Ok(("ws://localhost:7300/ws".into(), None)));
        assert_eq!(
            s("127.0.0.1:9000"),
            Ok(("ws://127.0.0.1:9000/ws".into(), None))
        );
        for bad in ["ftp://h/", "http://", "http://h/c/bad name", "::"] {
            let e = server_address(bad).unwrap_err();
            assert!(
                e.contains("bad server address") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn fingerprints_print_and_parse_both_ways() {
        let h = fingerprint(b"not really a certificate");
        let text = fingerprint_hex(&h);
        assert_eq!(text.len(), 95);
        assert_eq!(parse_fingerprint(&text), Ok(h));
        assert_eq!(
            parse_fingerprint(&text.replace(':', "").to_lowercase()),
            Ok(h)
        );
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let path = std::env::temp_dir().join(format!("squawk-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "nothing here\n").unwrap();
        let trust = Trust {
            ca_file: Some(path.clone()),
            pin: None,
        };
        let e = client_config(&trust).unwrap_err();
        assert!(matches!(e, TlsError::CaFile { .. }), "{e}");
        let _ = std::fs::remove_file(path);
    }
}
