//! The SFU's own SRTP sender for forwarded audio: one per listener, keyed
//! from the listener's DTLS-SRTP association, so that forwarding a packet
//! costs one header write, one AEAD seal and one datagram, not a pass
//! through str0m's whole `Rtc` per listener.
//!
//! Pure: bytes in, bytes out, no clock, no socket. Key derivation is the
//! AES-CM PRF of RFC 3711 §4.3 (RFC 6188 §7 for AES-256, RFC 7714 §11 for
//! AES-GCM); protection is RFC 3711 §3.3/§4.1.1/§4.2.1
//! (`SRTP_AES128_CM_HMAC_SHA1_80`) or RFC 7714 §8 (`AEAD_AES_128_GCM`,
//! `AEAD_AES_256_GCM`). The keying material layout is RFC 5764 §4.2.
//! Only RTP is protected here: str0m keeps SRTCP (its own index and keys).

use aws_lc_rs::{
    aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey},
    hmac,
};

/// SRTP protection profile negotiated in DTLS `use_srtp` (RFC 5764 §4.1.2,
/// RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80`: 16-byte key, 14-byte salt, 10-byte tag.
    Aes128CmSha1_80,
    /// `SRTP_AEAD_AES_128_GCM`: 16-byte key, 12-byte salt, 16-byte tag.
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM`: 32-byte key, 12-byte salt, 16-byte tag.
    AeadAes256Gcm,
}

impl Profile {
    /// Master key length, bytes.
    pub(crate) const fn key_len(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 | Self::AeadAes128Gcm => 16,
            Self::AeadAes256Gcm => 32,
        }
    }

    /// Master (and session) salt length, bytes.
    pub(crate) const fn salt_len(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 => 14,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
        }
    }

    /// Bytes the protection adds after the payload (auth tag), bytes.
    #[cfg(test)]
    pub(crate) const fn overhead(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 => 10,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }
}

/// Why keys could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SrtpError {
    /// The exported keying material is not `2 × (key + salt)` bytes long.
    #[error("keying material is {got} bytes, {profile:?} needs {want}")]
    MaterialLength {
        profile: Profile,
        got: usize,
        want: usize,
    },
    /// The crypto library refused a key (never expected for valid lengths).
    #[error("the crypto library refused the derived key")]
    Crypto,
}

impl From<aws_lc_rs::error::Unspecified> for SrtpError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Self::Crypto
    }
}

/// SRTP KDF labels (RFC 3711 §4.3.1).
const LABEL_RTP_ENCRYPTION: u8 = 0x00;
const LABEL_RTP_AUTH: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
/// HMAC-SHA1 session auth key length, bytes (RFC 3711 §4.3.2).
const AUTH_KEY_LEN: usize = 20;

/// The AES-CM PRF of RFC 3711 §4.3.1 with a key derivation rate of 0:
/// `out.len()` bytes of AES-CM keystream under `master_key`, with
/// IV = (master salt, zero-padded to 14 bytes, XOR label at byte 7) · 2^16.
fn derive(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    let algorithm = if master_key.len() == 32 {
        &AES_256
    } else {
        &AES_128
    };
    let key = EncryptingKey::ctr(UnboundCipherKey::new(algorithm, master_key)?)?;
    out.fill(0);
    key.less_safe_encrypt(out, EncryptionContext::Iv128(iv.into()))?;
    Ok(())
}

/// `AES128_CM_HMAC_SHA1_80` state: its HMAC key is large, and GCM is what
/// str0m and browsers prefer, so it is boxed.
struct CmCipher {
    key: EncryptingKey,
    salt: [u8; 14],
    auth: hmac::Key,
}

enum Cipher {
    Cm(Box<CmCipher>),
    Gcm { key: LessSafeKey, salt: [u8; 12] },
}

/// Protects outgoing RTP for one DTLS-SRTP association (one listener).
pub(crate) struct SrtpSender {
    profile: Profile,
    cipher: Cipher,
}

impl std::fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSender")
            .field("profile", &self.profile)
            .finish()
    }
}

impl SrtpSender {
    /// Keys for the direction we send in. `material` is the DTLS exporter
    /// output laid out as client key, server key, client salt, server salt
    /// (RFC 5764 §4.2); `dtls_client` says which halves are ours.
    ///
    /// Errors: [`SrtpError::MaterialLength`] when `material` does not fit
    /// `profile`.
    pub(crate) fn new(
        profile: Profile,
        material: &[u8],
        dtls_client: bool,
    ) -> Result<Self, SrtpError> {
        let (k, s) = (profile.key_len(), profile.salt_len());
        if material.len() != 2 * (k + s) {
            return Err(SrtpError::MaterialLength {
                profile,
                got: material.len(),
                want: 2 * (k + s),
            });
        }
        let (key_at, salt_at) = if dtls_client {
            (0, 2 * k)
        } else {
            (k, 2 * k + s)
        };
        let master_key = &material[key_at..key_at + k];
        let master_salt = &material[salt_at..salt_at + s];

        let mut session_key = [0u8; 32];
        let session_key = &mut session_key[..k];
        derive(master_key, master_salt, LABEL_RTP_ENCRYPTION, session_key)?;
        let cipher = match profile {
            Profile::Aes128CmSha1_80 => {
                let mut salt = [0u8; 14];
                derive(master_key, master_salt, LABEL_RTP_SALT, &mut salt)?;
                let mut auth = [0u8; AUTH_KEY_LEN];
                derive(master_key, master_salt, LABEL_RTP_AUTH, &mut auth)?;
                Cipher::Cm(Box::new(CmCipher {
                    key: EncryptingKey::ctr(UnboundCipherKey::new(&AES_128, session_key)?)?,
                    salt,
                    auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &auth),
                }))
            }
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => {
                let mut salt = [0u8; 12];
                derive(master_key, master_salt, LABEL_RTP_SALT, &mut salt)?;
                let algorithm = if profile == Profile::AeadAes128Gcm {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                Cipher::Gcm {
                    key: LessSafeKey::new(UnboundKey::new(algorithm, session_key)?),
                    salt,
                }
            }
        };
        Ok(Self { profile, cipher })
    }

    /// The negotiated profile.
    pub(crate) fn profile(&self) -> Profile {
        self.profile
    }

    /// Turns the RTP packet `packet[start..]` (header of `header_len` bytes,
    /// then payload) into SRTP in place: encrypts the payload and appends the
    /// tag ([`Profile::overhead`] bytes). `roc` is the rollover counter of
    /// the packet's sequence number (RFC 3711 §3.3.1); SSRC and sequence
    /// number are read from the header.
    ///
    /// Panics if `packet[start..]` is shorter than `header_len` or
    /// `header_len < 12`: the caller builds the header.
    pub(crate) fn protect_rtp(
        &self,
        packet: &mut Vec<u8>,
        start: usize,
        header_len: usize,
        roc: u32,
    ) {
        let rtp = &packet[start..];
        let seq = u16::from_be_bytes([rtp[2], rtp[3]]);
        let ssrc = [rtp[8], rtp[9], rtp[10], rtp[11]];
        let payload_at = start + header_len;
        match &self.cipher {
            Cipher::Gcm { key, salt } => {
                // RFC 7714 §8.1: 00 00 | SSRC | ROC | SEQ, XOR the session salt.
                let mut iv = [0u8; 12];
                iv[2..6].copy_from_slice(&ssrc);
                iv[6..10].copy_from_slice(&roc.to_be_bytes());
                iv[10..12].copy_from_slice(&seq.to_be_bytes());
                for (b, s) in iv.iter_mut().zip(salt) {
                    *b ^= s;
                }
                let (header, payload) = packet[start..].split_at_mut(header_len);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&*header),
                        payload,
                    )
                    .expect("AES-GCM seals any payload under 2^36 bytes");
                packet.extend_from_slice(tag.as_ref());
            }
            Cipher::Cm(cm) => {
                let CmCipher { key, salt, auth } = &**cm;
                // RFC 3711 §4.1.1: IV = salt·2^16 XOR SSRC·2^64 XOR index·2^16.
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(salt);
                for (b, s) in iv[4..8].iter_mut().zip(ssrc) {
                    *b ^= s;
                }
                let index = (u64::from(roc) << 16) | u64::from(seq);
                for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
                    *b ^= s;
                }
                key.less_safe_encrypt(
                    &mut packet[payload_at..],
                    EncryptionContext::Iv128(iv.into()),
                )
                .expect("AES-CTR encrypts any length");
                // RFC 3711 §4.2: HMAC-SHA1(header || payload || ROC), 80 bits.
                let mut mac = hmac::Context::with_key(auth);
                mac.update(&packet[start..]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.sign();
                packet.extend_from_slice(&tag.as_ref()[..10]);
            }
        }
    }
}

/// RTP header of a forwarded packet (RFC 3550 §5.1), with the client-to-mixer
/// audio level (RFC 6464) as an RFC 8285 one-byte extension when `audio_level`
/// gives its negotiated id and a level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpHeader {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Extension id (1-14) and level in −dBov (0-127) with the voice
    /// activity flag.
    pub audio_level: Option<(u8, u8, bool)>,
}

impl RtpHeader {
    /// Appends the header to `out`; returns its length, bytes (12 or 20).
    pub(crate) fn write(&self, out: &mut Vec<u8>) -> usize {
        let x = if self.audio_level.is_some() { 0x10 } else { 0 };
        out.push(0x80 | x);
        out.push((u8::from(self.marker) << 7) | (self.pt & 0x7f));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        match self.audio_level {
            None => 12,
            Some((id, level, vad)) => {
                // 0xBEDE, one 32-bit word: id/len(0), V|level, padding.
                out.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01]);
                out.extend_from_slice(&[
                    (id & 0x0f) << 4,
                    (u8::from(vad) << 7) | level.min(127),
                    0,
                    0,
                ]);
                20
            }
        }
    }
}

#[cfg(test)]
mod tests;
