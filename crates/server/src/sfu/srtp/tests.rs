use super::*;
use rtc::srtp::{context::Context, protection_profile::ProtectionProfile};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Exporter output of the right length, every byte distinct so a swapped
/// half or an off-by-one slice shows.
fn material(profile: Profile) -> Vec<u8> {
    (0..2 * (profile.key_len() + profile.salt_len()))
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
        .collect()
}

/// The receiving side's context, built by an independent implementation
/// (webrtc-rs's rtc-srtp) from the halves the *other* role sends with.
fn receiver(profile: Profile, material: &[u8], sender_is_dtls_client: bool) -> Context {
    let (k, s) = (profile.key_len(), profile.salt_len());
    let (key_at, salt_at) = if sender_is_dtls_client {
        (0, 2 * k)
    } else {
        (k, 2 * k + s)
    };
    let theirs = match profile {
        Profile::Aes128CmSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        Profile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    };
    let provider = rtc::crypto::default_provider().unwrap();
    Context::new(
        &material[key_at..key_at + k],
        &material[salt_at..salt_at + s],
        theirs,
        None,
        None,
        provider.crypto(),
    )
    .unwrap()
}

fn packet(sender: &SrtpSender, header: RtpHeader, payload: &[u8], roc: u32) -> (Vec<u8>, usize) {
    // A non-zero start: packets are built one after another in one arena.
    let mut buf = vec![0xee; 5];
    let header_len = header.write(&mut buf);
    buf.extend_from_slice(payload);
    sender.protect_rtp(&mut buf, 5, header_len, roc);
    (buf.split_off(5), header_len)
}

/// A plain header (Opus PT, SSRC 7, no extension) with sequence number `seq`.
fn plain_header(seq: u16) -> RtpHeader {
    RtpHeader {
        pt: 111,
        marker: false,
        seq,
        timestamp: 0,
        ssrc: 7,
        audio_level: None,
    }
}

const PROFILES: [Profile; 3] = [
    Profile::Aes128CmSha1_80,
    Profile::AeadAes128Gcm,
    Profile::AeadAes256Gcm,
];

#[test]
fn every_profile_and_role_decrypts_with_an_independent_srtp_stack() {
    for profile in PROFILES {
        for dtls_client in [true, false] {
            let km = material(profile);
            let sender = SrtpSender::new(profile, &km, dtls_client).unwrap();
            assert_eq!(sender.profile(), profile);
            let mut rx = receiver(profile, &km, dtls_client);
            for (i, level) in [None, Some((3, 42, true))].into_iter().enumerate() {
                let payload: Vec<u8> = (0..70u8).map(|b| b ^ 0x5a).collect();
                let header = RtpHeader {
                    pt: 111,
                    marker: i == 0,
                    seq: 1000 + i as u16,
                    timestamp: 960 * i as u32,
                    ssrc: 0x1234_5678,
                    audio_level: level,
                };
                let (srtp, header_len) = packet(&sender, header, &payload, 0);
                assert_eq!(srtp.len(), header_len + payload.len() + profile.overhead());
                assert_ne!(
                    &srtp[header_len..header_len + payload.len()],
                    &payload[..],
                    "encrypted"
                );
                let plain = rx
                    .decrypt_rtp(&srtp)
                    .unwrap_or_else(|e| panic!("{profile:?} client={dtls_client}: {e}"));
                assert_eq!(
                    &plain[plain.len() - payload.len()..],
                    &payload[..],
                    "{profile:?}"
                );
                assert_eq!(
                    &plain[..header_len],
                    &srtp[..header_len],
                    "header in the clear"
                );
            }
        }
    }
}

#[test]
fn the_rollover_counter_is_part_of_the_keystream() {
    for profile in PROFILES {
        let km = material(profile);
        let sender = SrtpSender::new(profile, &km, false).unwrap();
        let mut rx = receiver(profile, &km, false);
        let header = plain_header;
        // 65535 with ROC 0, then the wrap to 0 with ROC 1, as the receiver
        // estimates it (RFC 3711 §3.3.1).
        let (a, _) = packet(&sender, header(65535), b"before the wrap", 0);
        rx.decrypt_rtp(&a).expect("ROC 0");
        let (b, _) = packet(&sender, header(0), b"after the wrap", 1);
        let plain = rx.decrypt_rtp(&b).expect("ROC 1");
        assert!(plain.ends_with(b"after the wrap"));
        // The same packet protected with the wrong ROC is refused.
        let (c, _) = packet(&sender, header(1), b"wrong roc", 0);
        assert!(rx.decrypt_rtp(&c).is_err(), "{profile:?}");
    }
}

#[test]
fn a_tampered_packet_fails_authentication() {
    for profile in PROFILES {
        let km = material(profile);
        let sender = SrtpSender::new(profile, &km, true).unwrap();
        let mut rx = receiver(profile, &km, true);
        let (mut srtp, header_len) = packet(&sender, plain_header(9), b"payload", 0);
        srtp[header_len + 1] ^= 1;
        assert!(rx.decrypt_rtp(&srtp).is_err(), "{profile:?}");
    }
}

#[test]
fn the_wrong_half_of_the_material_does_not_decrypt() {
    let profile = Profile::AeadAes128Gcm;
    let km = material(profile);
    let sender = SrtpSender::new(profile, &km, true).unwrap();
    let mut rx = receiver(profile, &km, false);
    let (srtp, _) = packet(&sender, plain_header(9), b"payload", 0);
    assert!(rx.decrypt_rtp(&srtp).is_err());
}

#[test]
fn material_of_the_wrong_length_is_an_error() {
    let err = SrtpSender::new(Profile::AeadAes256Gcm, &[0; 40], true).unwrap_err();
    assert_eq!(
        err,
        SrtpError::MaterialLength {
            profile: Profile::AeadAes256Gcm,
            got: 40,
            want: 88
        }
    );
    assert!(err.to_string().contains("needs 88"));
}

/// RFC 3711 Appendix B.3: session keys derived from a known master key.
#[test]
fn key_derivation_matches_rfc_3711_b3() {
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut out = [0u8; 16];
    derive(&key, &salt, LABEL_RTP_ENCRYPTION, &mut out).unwrap();
    assert_eq!(out.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut out = [0u8; 14];
    derive(&key, &salt, LABEL_RTP_SALT, &mut out).unwrap();
    assert_eq!(out.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut out = [0u8; 20];
    derive(&key, &salt, LABEL_RTP_AUTH, &mut out).unwrap();
    assert_eq!(
        out.to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

#[test]
fn the_header_is_rfc_3550_with_an_rfc_8285_audio_level() {
    let mut out = Vec::new();
    let plain = RtpHeader {
        pt: 111,
        marker: true,
        seq: 0x0102,
        timestamp: 0x0304_0506,
        ssrc: 0x0708_090a,
        audio_level: None,
    };
    assert_eq!(plain.write(&mut out), 12);
    assert_eq!(out, hex("80 ef 0102 03040506 0708090a"));
    out.clear();
    let with_level = RtpHeader {
        audio_level: Some((1, 200, true)),
        marker: false,
        ..plain
    };
    assert_eq!(with_level.write(&mut out), 20);
    // X set; 0xBEDE, one word; id 1, len 0; V=1, level clamped to 127.
    assert_eq!(out, hex("90 6f 0102 03040506 0708090a bede0001 10ff0000"));
}
