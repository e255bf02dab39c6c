//! Captures each peer's DTLS-SRTP keying material for the SFU's own SRTP
//! sender ([`super::srtp::SrtpSender`]).
//!
//! str0m keeps its SRTP contexts private, so the SFU gives each `Rtc` a
//! crypto provider whose DTLS factory wraps the default one: every DTLS
//! instance it makes passes its output through unchanged and copies the
//! exported keying material (RFC 5764 §4.2) and the DTLS role into a
//! [`KeySlot`] the peer holds. The instance is made while the `Rtc` is
//! built, on the building thread, which is how [`build_rtc`] pairs the slot
//! with the `Rtc`.
//!
//! The factory makes dimpl's DTLS instances itself (what str0m's aws-lc-rs
//! provider does) from one dimpl `Config` per process: building a `Config`
//! self-tests the crypto provider (a key exchange per group and signature
//! checks, about 0.6 ms of CPU), which str0m's provider does again for
//! every connection.

use std::{
    cell::RefCell,
    sync::PoisonError,
    sync::{Arc, LazyLock, Mutex},
    time::Instant,
};

use str0m::crypto::{
    CryptoError, CryptoProvider,
    dtls::{
        DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion,
        ProtocolVersion, SrtpProfile,
    },
};

use super::srtp::{Profile, SrtpError, SrtpSender};

/// What one DTLS association exported for SRTP.
#[derive(Clone)]
pub(crate) struct Exported {
    pub material: Vec<u8>,
    pub profile: Option<Profile>,
    /// We were the DTLS client (`a=setup:active`).
    pub dtls_client: bool,
}

impl Exported {
    /// The sender for our direction. `None` when the profile is one the SFU
    /// does not implement (the peer then stays on str0m's path).
    pub(crate) fn sender(&self) -> Option<Result<SrtpSender, SrtpError>> {
        let profile = self.profile?;
        Some(SrtpSender::new(profile, &self.material, self.dtls_client))
    }
}

/// Filled once the DTLS handshake exports keys; replaced on a new handshake.
pub(crate) type KeySlot = Arc<Mutex<Option<Exported>>>;

thread_local! {
    /// The slot of the DTLS instance made last on this thread.
    static MADE: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

#[derive(Debug)]
struct Capturing {
    inner: &'static dyn DtlsProvider,
}

/// The DTLS certificate of every peer of this process, made once (a P-256
/// key pair and a self-signed certificate): peers authenticate it by the
/// fingerprint in our SDP answer (RFC 8122 §5), so one per connection buys
/// nothing and cost each connection a key generation. Janus does the same.
/// A new one at each start of the server.
static CERT: LazyLock<Option<DtlsCert>> = LazyLock::new(|| {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
});

impl DtlsProvider for Capturing {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        CERT.clone()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner: Box<dyn DtlsInstance> = if self.inner.is_test() {
            // str0m's tests seed the DTLS randomness: its own factory.
            self.inner.new_dtls(cert, now, dtls_version, mtu)?
        } else {
            Box::new(Dimpl(new_dimpl(cert, now, dtls_version, mtu)?))
        };
        let slot = KeySlot::default();
        MADE.with(|m| *m.borrow_mut() = Some(slot.clone()));
        Ok(Box::new(CapturingDtls { inner, slot }))
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
    }
}

/// The dimpl configuration of the last MTU asked for (str0m asks with the
/// `RtcConfig`'s, the same for every peer), validated once.
static CONFIG: Mutex<Option<(Option<usize>, Arc<dimpl::Config>)>> = Mutex::new(None);

/// A DTLS instance as str0m's aws-lc-rs provider makes it (no server cookie:
/// ICE has checked the return route), from the shared configuration.
///
/// Errors: the configuration cannot be built (the crypto provider failed its
/// self-test) or the DTLS version is one dimpl does not know.
fn new_dimpl(
    cert: &DtlsCert,
    now: Instant,
    version: DtlsVersion,
    mtu: Option<usize>,
) -> Result<dimpl::Dtls, CryptoError> {
    let config = {
        let mut cached = CONFIG.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((m, config)) if *m == mtu => config.clone(),
            _ => {
                let mut builder = dimpl::Config::builder().use_server_cookie(false);
                if let Some(mtu) = mtu {
                    builder = builder.mtu(mtu);
                }
                let config = Arc::new(builder.build().map_err(|e| {
                    CryptoError::Other(format!("dimpl config creation failed: {e}"))
                })?);
                *cached = Some((mtu, config.clone()));
                config
            }
        }
    };
    let cert = dimpl::DtlsCertificate {
        certificate: cert.certificate.clone(),
        private_key: cert.private_key.clone(),
    };
    match version {
        DtlsVersion::Dtls12 => Ok(dimpl::Dtls::new_12(config, cert, now)),
        DtlsVersion::Dtls13 => Ok(dimpl::Dtls::new_13(config, cert, now)),
        DtlsVersion::Auto => Ok(dimpl::Dtls::new_auto(config, cert, now)),
        other => Err(CryptoError::Other(format!(
            "unsupported DTLS version: {other}"
        ))),
    }
}

/// dimpl's `Dtls` as str0m's instance.
struct Dimpl(dimpl::Dtls);

impl std::fmt::Debug for Dimpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dimpl").finish_non_exhaustive()
    }
}

impl DtlsInstance for Dimpl {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

struct CapturingDtls {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl std::fmt::Debug for CapturingDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturingDtls").finish_non_exhaustive()
    }
}

impl DtlsInstance for CapturingDtls {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(km, profile) = &out {
            let profile = match profile {
                SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmSha1_80),
                SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
                SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
                _ => None,
            };
            let exported = Exported {
                material: km.to_vec(),
                profile,
                dtls_client: self.inner.is_active(),
            };
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Some(exported);
            }
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

/// str0m's default provider with the capturing DTLS factory.
static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| {
    let default = str0m::crypto::from_feature_flags();
    let dtls: &'static Capturing = Box::leak(Box::new(Capturing {
        inner: default.dtls_provider,
    }));
    Arc::new(CryptoProvider {
        dtls_provider: dtls,
        ..default
    })
});

/// Builds an `Rtc` from `builder` with the capturing provider and returns
/// it with the slot its DTLS keys will appear in. Should str0m ever make the
/// DTLS instance later than this, the slot stays empty and the peer keeps
/// str0m's own send path (slower, still correct).
pub(crate) fn build_rtc(builder: str0m::RtcConfig, now: Instant) -> (str0m::Rtc, KeySlot) {
    MADE.with(|m| m.borrow_mut().take());
    let rtc = builder.set_crypto_provider(PROVIDER.clone()).build(now);
    let slot = MADE.with(|m| m.borrow_mut().take()).unwrap_or_else(|| {
        crate::logs::limited!(
            warn,
            "no DTLS instance made with the Rtc: forwarding through str0m"
        );
        KeySlot::default()
    });
    (rtc, slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot is paired with the Rtc built, and two Rtcs get two slots.
    #[test]
    fn each_rtc_gets_its_own_slot_and_keys_appear_only_after_a_handshake() {
        let now = Instant::now();
        let (_a, slot_a) = build_rtc(str0m::Rtc::builder(), now);
        let (_b, slot_b) = build_rtc(str0m::Rtc::builder(), now);
        assert!(!Arc::ptr_eq(&slot_a, &slot_b));
        assert!(slot_a.lock().unwrap().is_none(), "no handshake, no keys");
        // Only the Rtc's DTLS instance and this function hold the slot.
        assert_eq!(Arc::strong_count(&slot_a), 2);
    }

    /// Two instances of the factory (one shared dimpl configuration) complete
    /// a DTLS 1.2 handshake with each other, and both slots get the same
    /// keying material and profile, each with its own role.
    #[test]
    fn two_instances_handshake_and_export_the_same_keys() {
        let now = Instant::now();
        let cert = CERT.clone().expect("a certificate");
        let provider = PROVIDER.dtls_provider;
        let mut sides = [true, false].map(|client| {
            MADE.with(|m| m.borrow_mut().take());
            let mut dtls = provider
                .new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1150))
                .expect("an instance");
            dtls.set_active(client);
            let slot = MADE.with(|m| m.borrow_mut().take()).expect("its slot");
            (dtls, slot)
        });
        let mut buf = vec![0u8; 2048];
        let mut connected = [false, false];
        for round in 0..20 {
            // As str0m drives it: timers first (dimpl picks its random then).
            let t = now + std::time::Duration::from_millis(10 * round);
            for (dtls, _) in &mut sides {
                dtls.handle_timeout(t).expect("a timeout");
            }
            for from in 0..2 {
                let mut packets = Vec::new();
                loop {
                    match sides[from].0.poll_output(&mut buf) {
                        DtlsOutput::Packet(p) => packets.push(p.to_vec()),
                        DtlsOutput::Connected => connected[from] = true,
                        DtlsOutput::Timeout(_) => break,
                        _ => {}
                    }
                }
                for p in packets {
                    sides[1 - from].0.handle_packet(&p).expect("a valid record");
                }
            }
            if connected == [true, true] {
                break;
            }
        }
        assert_eq!(connected, [true, true], "the handshake completed");
        let client = sides[0].1.lock().unwrap().clone().expect("client keys");
        let server = sides[1].1.lock().unwrap().clone().expect("server keys");
        assert!(client.dtls_client && !server.dtls_client);
        assert_eq!(client.material, server.material);
        assert!(!client.material.is_empty());
        assert_eq!(client.profile, server.profile);
        assert!(client.profile.is_some());
    }

    /// Every Rtc of the process presents the same certificate.
    #[test]
    fn rtcs_share_one_certificate() {
        let now = Instant::now();
        let (mut a, _) = build_rtc(str0m::Rtc::builder(), now);
        let (mut b, _) = build_rtc(str0m::Rtc::builder(), now);
        let fa = a.direct_api().local_dtls_fingerprint().clone();
        let fb = b.direct_api().local_dtls_fingerprint().clone();
        assert_eq!(fa.bytes, fb.bytes);
        assert!(!fa.bytes.is_empty());
    }
}
