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

use std::{
    cell::RefCell,
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
        let inner = self.inner.new_dtls(cert, now, dtls_version, mtu)?;
        let slot = KeySlot::default();
        MADE.with(|m| *m.borrow_mut() = Some(slot.clone()));
        Ok(Box::new(CapturingDtls { inner, slot }))
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
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
