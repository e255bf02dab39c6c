//! The client's one PeerConnection (webrtc-rs 0.21): one send-only uplink
//! audio track whose RTP we write ourselves, and the downlink tracks the
//! server adds (one per channel) by renegotiation.

use std::{collections::VecDeque, sync::Arc};

use bytes::Bytes;
use rtc::{
    ice::mdns::MulticastDnsMode,
    interceptor::{Attribute, Packet as InterceptorPacket, Slot, TaggedPacket},
    peer_connection::configuration::media_engine::MIME_TYPE_OPUS,
    rtcp::{
        receiver_report::ReceiverReport, reception_report::ReceptionReport,
        sender_report::SenderReport,
    },
    rtp_transceiver::rtp_sender::{
        RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
        RtpCodecKind,
    },
};
use tokio::sync::{mpsc, watch};
use webrtc::{
    media_stream::{
        MediaStreamTrack,
        track_local::{TrackLocal, TrackLocalEvent, static_rtp::TrackLocalStaticRTP},
        track_remote::TrackRemote,
    },
    peer_connection::{
        MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
        RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy,
        RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
        configure_rtcp_reports,
    },
    rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit},
};

/// Opus payload type we offer (RFC 7587 uses a dynamic PT; 111 by custom).
pub const OPUS_PT: u8 = 111;
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1;usedtx=1";
/// RED (RFC 2198) payload type we offer beside Opus, as libwebrtc and str0m
/// number it; its fmtp names Opus as the primary of every block.
pub const RED_PT: u8 = 63;
const RED_FMTP: &str = "111/111";
/// One 20 ms Opus frame in RTP clock units (48 kHz): the frame RED's
/// distance rule counts in.
const FRAME_TICKS: u32 = 960;

/// How long to wait for ICE gathering, ms.
const GATHER_TIMEOUT_MS: u64 = 5_000;

/// Media events for the engine loop.
pub(crate) enum MediaEvent {
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
    /// A reception report block about our uplink from the server (in an
    /// RTCP SR or RR, RFC 3550 §6.4.1): its fraction lost, 0.0-1.0.
    UplinkLoss(f64),
}

/// An interceptor that lets inbound RTCP carrying reception report blocks
/// (SR and RR, RFC 3550 §6.4) through to the application, where
/// [`Media`] reads the server's reports about our uplink. webrtc-rs's own
/// statistics read only stand-alone RRs, and str0m puts its report blocks
/// into the SR it sends on our downlink whenever it has one.
#[derive(Default)]
struct ReportTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// The reception report blocks of one RTCP packet: an SR's or an RR's,
/// none for any other kind.
fn report_blocks(packet: &dyn rtc::rtcp::Packet) -> &[ReceptionReport] {
    let any = packet.as_any();
    if let Some(sr) = any.downcast_ref::<SenderReport>() {
        &sr.reports
    } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        &rr.reports
    } else {
        &[]
    }
}

fn has_report_blocks(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    packets
        .iter()
        .any(|p| !report_blocks(p.as_ref()).is_empty())
}

/// The fraction lost (0.0-1.0) of the report blocks about `ssrc` in
/// `packets`, in order.
fn report_blocks_about(ssrc: u32, packets: &[Box<dyn rtc::rtcp::Packet>]) -> Vec<f64> {
    packets
        .iter()
        .flat_map(|p| report_blocks(p.as_ref()))
        .filter(|b| b.ssrc == ssrc)
        .map(|b| f64::from(b.fraction_lost) / 256.0)
        .collect()
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for ReportTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptorPacket::Rtcp(packets) = &msg.message.packet
            && has_report_blocks(packets)
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for ReportTap {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

/// Where [`ReportTap`] sits: beside the receiver-report interceptor
/// (`Slot::ReceiverReport`, 10 000), which it neither feeds nor needs.
const REPORT_TAP_SLOT: usize = 10_500;

struct Handler {
    events: mpsc::UnboundedSender<MediaEvent>,
    gathered: watch::Sender<u64>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        let _ = self.events.send(MediaEvent::State(s));
    }
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            self.gathered.send_modify(|n| *n += 1);
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(MediaEvent::Track(track));
    }
}

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// webrtc-rs failed.
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// ICE gathering did not complete.
    #[error("ICE gathering did not complete within {GATHER_TIMEOUT_MS} ms")]
    GatherTimeout,
    /// No local description after negotiation.
    #[error("no local description")]
    NoLocalDescription,
    /// Relay-only ICE was asked for but the server's `welcome` named no
    /// TURN server.
    #[error("relay-only ICE needs a TURN server, and this server hands out none (its --turn-url)")]
    NoTurnServer,
}

/// The ICE candidate pair the media path uses (W3C webrtc-stats
/// `RTCIceCandidatePairStats`, the transport's selected pair).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct IcePath {
    /// Our candidate's type: `host`, `srflx`, `prflx` or `relay` (RFC 8445
    /// §5.1.1), `unknown` if the stats did not say.
    pub local_candidate_type: String,
    /// The server's candidate's type, as above.
    pub remote_candidate_type: String,
}

/// How the PeerConnection finds its path to the server.
#[derive(Debug, Clone, Default)]
pub(crate) struct IceOptions {
    /// STUN/TURN servers from the server's `welcome`.
    pub servers: Vec<squawk_protocol::IceServer>,
    /// Gather relay candidates only (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
}

fn red_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/red".to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: RED_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Whether the answer `sdp` accepted RED (RFC 2198) on our uplink, the
/// first audio m-line: an `a=rtpmap:63 red/48000/2` line in that section.
pub(crate) fn answer_accepts_red(sdp: &str) -> bool {
    let want = format!("a=rtpmap:{RED_PT} red/48000/2");
    sdp.split("m=")
        .skip(1)
        .find(|m| m.starts_with("audio"))
        .is_some_and(|m| m.lines().any(|l| l.trim().eq_ignore_ascii_case(&want)))
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The PeerConnection and its uplink track.
pub(crate) struct Media {
    pub pc: Arc<dyn PeerConnection>,
    uplink: Arc<TrackLocalStaticRTP>,
    /// SSRC of the uplink track.
    pub ssrc: u32,
    gathered: watch::Receiver<u64>,
    /// Redundant blocks per uplink packet asked for (0: no RED offered).
    red_levels: usize,
    /// Wraps uplink packets in RED once the server accepted it.
    red: Option<squawk_media::RedSender>,
    /// Reused per uplink packet.
    red_buf: Vec<u8>,
}

impl Media {
    /// Builds the PeerConnection with one send-only Opus track, bound to
    /// `bind_ip` (host candidates are the bound addresses). With
    /// `red_levels` > 0 it offers RED (RFC 2198) beside Opus, to receive it
    /// and to send each packet with the `red_levels` before it (at most
    /// [`squawk_media::red::MAX_LEVELS`]) once the server accepts it.
    pub(crate) async fn new(
        bind_ip: std::net::IpAddr,
        ice: &IceOptions,
        red_levels: usize,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        let servers: Vec<RTCIceServer> = ice
            .servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect();
        let has_turn = servers
            .iter()
            .any(|s| s.urls.iter().any(|u| u.starts_with("turn")));
        if ice.relay_only && !has_turn {
            return Err(MediaError::NoTurnServer);
        }
        let mut configuration = RTCConfigurationBuilder::new().with_ice_servers(servers);
        if ice.relay_only {
            configuration = configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }
        let mut me = MediaEngine::default();
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )?;
        if red_levels > 0 {
            me.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: red_codec(),
                    payload_type: RED_PT,
                },
                RtpCodecKind::Audio,
            )?;
        }
        // RTCP sender and receiver reports (RFC 3550 §6.4) and nothing else
        // of webrtc-rs's defaults: NACK and simulcast headers are for video,
        // and transport-wide congestion control feedback (TWCC) would go
        // every 100 ms while receiving to a server that estimates no
        // bandwidth (the SFU forwards Opus at the sender's rate): about 20
        // of a listener's 150 runtime wake-ups a second (docs/benchmarks.md).
        let registry = configure_rtcp_reports(Registry::new())
            .with(Slot::from(REPORT_TAP_SLOT), ReportTap::default());
        let mut se =
            SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled);
        if ice.relay_only {
            // The ICE agent waits 2 s (its default) before it accepts a relay
            // pair, in case a better one turns up; relay-only, none can.
            se = se.with_relay_acceptance_min_wait(Some(std::time::Duration::ZERO));
        }
        let se = se.build();
        let (gathered_tx, gathered) = watch::channel(0u64);
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration.build())
            .with_media_engine(me)
            .with_setting_engine(se)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                events: events.clone(),
                gathered: gathered_tx,
            }))
            .with_udp_addrs(vec![std::net::SocketAddr::new(bind_ip, 0)])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc: u32 = rand::random();
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus_codec(),
            ..Default::default()
        };
        let track = MediaStreamTrack::new(
            format!("squawk-{ssrc}"),
            "uplink".into(),
            "uplink".into(),
            RtpCodecKind::Audio,
            vec![encoding],
        );
        let uplink = Arc::new(TrackLocalStaticRTP::new(track));
        // The sender binds the track here, so its RTCP can be read from now
        // on; the reader ends with the PeerConnection.
        let reader = uplink.clone();
        let loss_events = events.clone();
        pc.add_transceiver_from_track(
            uplink.clone() as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await?;
        tokio::spawn(async move {
            while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = reader.poll().await {
                for lost in report_blocks_about(ssrc, &packets) {
                    if loss_events.send(MediaEvent::UplinkLoss(lost)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Self {
            pc,
            uplink,
            ssrc,
            gathered,
            red_levels,
            red: None,
            red_buf: Vec::new(),
        })
    }

    async fn local_sdp_after_gathering(&mut self, round: u64) -> Result<String, MediaError> {
        let wait = self.gathered.wait_for(|n| *n > round);
        match tokio::time::timeout(std::time::Duration::from_millis(GATHER_TIMEOUT_MS), wait).await
        {
            Ok(Ok(_)) => {}
            _ => return Err(MediaError::GatherTimeout),
        }
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or(MediaError::NoLocalDescription)
    }

    /// Creates our offer (non-trickle: all candidates included).
    pub(crate) async fn offer(&mut self) -> Result<String, MediaError> {
        let round = *self.gathered.borrow();
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.local_sdp_after_gathering(round).await
    }

    /// Applies the server's answer; the uplink sends RED from now on if it
    /// was offered and accepted.
    pub(crate) async fn answer_received(&mut self, sdp: String) -> Result<(), MediaError> {
        if self.red_levels > 0 && answer_accepts_red(&sdp) {
            self.red = Some(squawk_media::RedSender::new(self.red_levels, FRAME_TICKS));
        }
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        Ok(())
    }

    /// Applies a server offer (renegotiation) and returns our answer.
    pub(crate) async fn offer_received(&mut self, sdp: String) -> Result<String, MediaError> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await?;
        let round = *self.gathered.borrow();
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.local_sdp_after_gathering(round).await
    }

    /// Writes one Opus RTP packet on the uplink: as RED with the packets
    /// before it when the server accepted RED, else plain.
    pub(crate) async fn send(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Result<(), MediaError> {
        let (payload_type, payload) = match &mut self.red {
            Some(red) => {
                self.red_buf.clear();
                red.wrap(OPUS_PT, seq, timestamp, &payload, &mut self.red_buf);
                (RED_PT, Bytes::copy_from_slice(&self.red_buf))
            }
            None => (OPUS_PT, payload),
        };
        let header = rtc::rtp::Header {
            version: 2,
            payload_type,
            sequence_number: seq,
            timestamp,
            ssrc: self.ssrc,
            marker,
            ..Default::default()
        };
        self.uplink
            .write_rtp(rtc::rtp::Packet { header, payload })
            .await?;
        Ok(())
    }

    /// Closes the PeerConnection.
    pub(crate) async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// The selected candidate pair of `pc`'s transport (it is bundled: one for
/// every track), read through the uplink sender's DTLS and ICE transports.
pub(crate) async fn ice_path(pc: &dyn PeerConnection) -> IcePath {
    let mut path = IcePath {
        local_candidate_type: "unknown".into(),
        remote_candidate_type: "unknown".into(),
    };
    let Some(sender) = pc.get_senders().await.into_iter().next() else {
        return path;
    };
    let Ok(Some(dtls)) = sender.transport().await else {
        return path;
    };
    if let Ok(Some(pair)) = dtls.ice_transport().get_selected_candidate_pair().await {
        path.local_candidate_type = pair.local().typ.to_string();
        path.remote_candidate_type = pair.remote().typ.to_string();
    }
    path
}

#[cfg(test)]
mod tests {
    use super::{answer_accepts_red, has_report_blocks, report_blocks_about};
    use rtc::rtcp::{
        Packet, goodbye::Goodbye, receiver_report::ReceiverReport,
        reception_report::ReceptionReport, sender_report::SenderReport,
    };

    fn block(ssrc: u32, fraction_lost: u8) -> ReceptionReport {
        ReceptionReport {
            ssrc,
            fraction_lost,
            ..Default::default()
        }
    }

    #[test]
    fn report_blocks_about_the_uplink_are_found_in_sender_and_receiver_reports() {
        let ours = 0x5157_4B00;
        // str0m puts its blocks into the SR of its own stream when it sends
        // one, else into an RR; other sources' blocks are not ours.
        let sr = SenderReport {
            ssrc: 7,
            reports: vec![block(9, 200), block(ours, 51)],
            ..Default::default()
        };
        let rr = ReceiverReport {
            ssrc: 7,
            reports: vec![block(ours, 0)],
            ..Default::default()
        };
        let compound: Vec<Box<dyn Packet>> = vec![Box::new(sr), Box::new(rr)];
        assert!(has_report_blocks(&compound));
        assert_eq!(
            report_blocks_about(ours, &compound),
            vec![51.0 / 256.0, 0.0]
        );
        assert!(report_blocks_about(1, &compound).is_empty());
        // An SR without blocks and other RTCP are left to the interceptors.
        let bare: Vec<Box<dyn Packet>> = vec![
            Box::new(SenderReport {
                ssrc: 7,
                ..Default::default()
            }),
            Box::new(Goodbye::default()),
        ];
        assert!(!has_report_blocks(&bare));
        assert!(report_blocks_about(ours, &bare).is_empty());
    }

    #[test]
    fn red_is_seen_only_in_the_first_audio_section_of_the_answer() {
        let head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        let opus = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        let red = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\n\
                   a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n";
        assert!(answer_accepts_red(&format!("{head}{red}")));
        assert!(!answer_accepts_red(&format!("{head}{opus}")));
        assert!(!answer_accepts_red(&format!("{head}{opus}{red}")));
        assert!(!answer_accepts_red(head));
    }
}
