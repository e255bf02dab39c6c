//! One connection's media state on a worker: its str0m [`Rtc`], the SDP
//! negotiation state and one downlink track per channel.

use std::{net::SocketAddr, time::Instant};

use squawk_media::{RedReceiver, RedSender, SeqCompactor, TrackRewriter};
use squawk_protocol::{ClientId, ErrorCode};
use str0m::{
    Candidate, Rtc,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    config::DtlsVersion,
    format::Codec,
    media::{Direction, MediaKind, Mid, Pt},
};
use tracing::{debug, warn};

use super::{
    ChanId, EventTx, WorkerEvent,
    keys::{Exported, KeySlot},
    srtp::SrtpSender,
};

/// Opus RTP clock rate, Hz (RFC 7587 §4.1).
const OPUS_CLOCK: u32 = 48_000;
/// One 20 ms Opus frame in RTP clock units: the frame RED's distance rule
/// counts in (`squawk_media::red`).
pub(crate) const FRAME_TICKS: u32 = OPUS_CLOCK / 50;

/// SDP offer/answer state of the one PeerConnection (RFC 8829 §3).
///
/// The client makes the first offer (its uplink track); afterwards only the
/// server offers, when it needs a new downlink track, so there is no glare.
pub(crate) enum Negotiation {
    /// Waiting for the client's first offer.
    AwaitingOffer,
    /// Nothing in flight.
    Stable,
    /// We sent an offer and wait for the answer.
    AwaitingAnswer(SdpPendingOffer),
}

/// A send-only audio track carrying one channel to this listener.
pub(crate) struct Downlink {
    pub mid: Mid,
    pub rewriter: TrackRewriter,
    /// Set once the SDP that created the track is negotiated.
    pub negotiated: bool,
    /// Opus payload type negotiated for the track, looked up on first use.
    pub pt: Option<Pt>,
    /// RED (RFC 2198) payload type negotiated for the track with `pt` as
    /// its primary, looked up with `pt`; `None`: plain Opus.
    pub red_pt: Option<Pt>,
    /// RFC 6464 audio level extension id negotiated for the track, looked
    /// up with `pt`.
    pub level_id: Option<u8>,
    /// SSRC str0m assigned to the track, looked up on the first packet the
    /// SFU protects itself.
    pub ssrc: Option<u32>,
}

/// A peer's downlink tracks by channel: a few entries, kept in one small
/// array that forwarding reads with one cache miss, not a hash table's two.
#[derive(Default)]
pub(crate) struct Downlinks(Vec<(ChanId, Downlink)>);

impl Downlinks {
    pub(crate) fn get(&self, chan: &ChanId) -> Option<&Downlink> {
        self.0.iter().find(|(c, _)| c == chan).map(|(_, d)| d)
    }

    pub(crate) fn get_mut(&mut self, chan: &ChanId) -> Option<&mut Downlink> {
        self.0.iter_mut().find(|(c, _)| c == chan).map(|(_, d)| d)
    }

    pub(crate) fn insert(&mut self, chan: ChanId, downlink: Downlink) {
        match self.get_mut(&chan) {
            Some(d) => *d = downlink,
            None => self.0.push((chan, downlink)),
        }
    }

    pub(crate) fn remove(&mut self, chan: &ChanId) -> Option<Downlink> {
        let at = self.0.iter().position(|(c, _)| c == chan)?;
        Some(self.0.swap_remove(at).1)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Downlink> {
        self.0.iter_mut().map(|(_, d)| d)
    }
}

/// Media liveness of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// ICE/DTLS not (yet, or no longer) up.
    Down,
    /// Connected: SRTP keys exist, media flows.
    Up,
    /// The Rtc failed; only a new offer can revive it.
    Failed,
}

pub(crate) struct Peer {
    pub client: ClientId,
    pub rtc: Rtc,
    events: EventTx,
    pub negotiation: Negotiation,
    pub downlinks: Downlinks,
    /// Negotiated tracks of channels left, reused before adding new m-lines.
    pub spare: Vec<Downlink>,
    /// Tracks asked for and not yet created: channel and the hub's token.
    pub pending: Vec<(ChanId, u64)>,
    pub link: Link,
    /// The deadline this peer is filed under in the worker's timer set.
    pub timeout: Instant,
    /// Remote addresses seen for this peer (for the worker's address map).
    pub addrs: Vec<SocketAddr>,
    /// Where the DTLS handshake leaves this peer's SRTP keys.
    pub keys: KeySlot,
    /// The SFU's own SRTP sender for forwarded audio, once keys exist.
    pub srtp: Option<SrtpSender>,
    /// Where str0m sends this peer's RTP and RTCP (the nominated ICE pair's
    /// remote address), learnt from str0m's own transmits.
    pub media_dest: Option<SocketAddr>,
    candidate: SocketAddr,
    /// The uplink's payload types: which is Opus and which RED, learnt at
    /// the first packet of each.
    pub uplink_pts: UplinkPts,
    /// Renumbers the uplink around the padding-only packets dropped.
    pub uplink_seq: SeqCompactor,
    /// Repairs losses on the uplink from the RED the client sends.
    pub red_rx: RedReceiver,
    /// The packets of this client forwarded last, repeated in the RED the
    /// SFU sends listeners.
    pub red_tx: RedSender,
    /// The m-lines (by mid) on which the client's SDP accepted RED, with
    /// its RED payload type: str0m keeps only the primary payload types of
    /// an m-line (`remote_pts`), so the SFU reads this from the SDP itself.
    pub red_mids: RedMids,
}

/// A peer's m-lines with RED, by mid, and their RED payload types.
#[derive(Debug, Default)]
pub(crate) struct RedMids(Vec<(String, Pt)>);

impl RedMids {
    /// The RED payload type the client accepted on `mid`, if any.
    pub(crate) fn get(&self, mid: Mid) -> Option<Pt> {
        let mid = mid.to_string();
        self.0.iter().find(|(m, _)| *m == mid).map(|(_, pt)| *pt)
    }
}

/// The m-sections of `sdp` that list `red/48000/2`: (their `a=mid`, the RED
/// payload type). Sections without a mid are skipped.
pub(crate) fn red_mids(sdp: &str) -> Vec<(String, Pt)> {
    let mut found = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut mid = None;
        let mut red = None;
        for line in section.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.to_owned());
            } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
                let mut parts = map.splitn(2, ' ');
                let pt = parts.next().and_then(|p| p.parse::<u8>().ok());
                let codec = parts.next().unwrap_or_default();
                if codec.eq_ignore_ascii_case("red/48000/2") {
                    red = pt;
                }
            }
        }
        if let (Some(mid), Some(pt)) = (mid, red) {
            found.push((mid, Pt::from(pt)));
        }
    }
    found
}

/// What an uplink payload type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UplinkPt {
    /// Plain Opus.
    Opus,
    /// RED with this Opus payload type as its primary.
    Red { primary: Pt },
    /// Neither (forwarded as it is, as before RED).
    Other,
}

/// A peer's uplink payload types, looked up in its `Rtc`'s codec
/// configuration once per payload type.
#[derive(Debug, Default)]
pub(crate) struct UplinkPts(Vec<(Pt, UplinkPt)>);

impl UplinkPts {
    /// What `pt` carries on `rtc`'s uplink.
    pub(crate) fn kind(&mut self, rtc: &Rtc, pt: Pt) -> UplinkPt {
        if let Some((_, k)) = self.0.iter().find(|(p, _)| *p == pt) {
            return *k;
        }
        let config = rtc.codec_config();
        let kind = if let Some(p) = config.iter().find(|p| p.red() == Some(pt)) {
            UplinkPt::Red { primary: p.pt() }
        } else if config
            .iter()
            .any(|p| p.pt() == pt && p.spec().codec == Codec::Opus)
        {
            UplinkPt::Opus
        } else {
            UplinkPt::Other
        };
        if self.0.len() < 8 {
            self.0.push((pt, kind));
        }
        kind
    }
}

/// A fresh `Rtc` for one connection and the slot its SRTP keys appear in.
pub(crate) fn new_rtc(candidate: SocketAddr, now: Instant) -> (Rtc, KeySlot) {
    let config = Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(true)
        .clear_codecs()
        // Opus with RED (RFC 2198) beside it: str0m negotiates `red/48000/2`
        // with the Opus payload type as its primary (in RTP mode it neither
        // wraps nor unwraps; the worker does).
        .enable_opus(true, true)
        // Reception reports once a second rather than str0m's 5 s for
        // audio: the talker's engine sets its Opus FEC from them (about one
        // 100-byte compound packet a second per client, beside 50 of audio).
        .set_rtcp_report_interval_audio(std::time::Duration::from_secs(1))
        // Auto: DTLS 1.2 for webrtc-rs, 1.3 for browsers that offer it.
        .set_dtls_version(DtlsVersion::Auto);
    let (mut rtc, keys) = super::keys::build_rtc(config, now);
    match Candidate::host(candidate, "udp") {
        Ok(c) => {
            rtc.add_local_candidate(c);
        }
        Err(e) => warn!("cannot use {candidate} as ICE host candidate: {e}"),
    }
    (rtc, keys)
}

impl Peer {
    pub(crate) fn new(
        client: ClientId,
        events: EventTx,
        candidate: SocketAddr,
        red_levels: usize,
        now: Instant,
    ) -> Self {
        let (rtc, keys) = new_rtc(candidate, now);
        Self {
            client,
            rtc,
            events,
            negotiation: Negotiation::AwaitingOffer,
            downlinks: Downlinks::default(),
            spare: Vec::new(),
            pending: Vec::new(),
            link: Link::Down,
            timeout: now,
            addrs: Vec::new(),
            keys,
            srtp: None,
            media_dest: None,
            candidate,
            uplink_pts: UplinkPts::default(),
            uplink_seq: SeqCompactor::new(),
            red_rx: RedReceiver::new(FRAME_TICKS),
            red_tx: RedSender::new(red_levels, FRAME_TICKS),
            red_mids: RedMids::default(),
        }
    }

    /// Takes keys the DTLS handshake exported since the last call and makes
    /// the SFU's SRTP sender from them. A profile the SFU does not implement
    /// (or bad material) leaves the peer on str0m's own path.
    pub(crate) fn take_keys(&mut self) {
        let exported = match self.keys.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        match exported.as_ref().and_then(Exported::sender) {
            Some(Ok(sender)) => {
                debug!(client = self.client, profile = ?sender.profile(), "own SRTP sender ready");
                self.srtp = Some(sender);
            }
            Some(Err(e)) => warn!(client = self.client, "SRTP keys unusable, str0m sends: {e}"),
            None => {}
        }
    }

    /// Reports to the hub. The hub outlives the workers, so a failed send
    /// only happens at shutdown.
    pub(crate) fn emit(&self, event: WorkerEvent) {
        let _ = self.events.send(event);
    }

    pub(crate) fn error(&self, code: ErrorCode, message: impl Into<String>) {
        self.emit(WorkerEvent::Error {
            client: self.client,
            code,
            message: message.into(),
        });
    }

    /// The client's offer: accept it and answer.
    pub(crate) fn on_offer(&mut self, now: Instant, sdp: &str) {
        if matches!(self.negotiation, Negotiation::AwaitingAnswer(_)) {
            self.error(
                ErrorCode::NegotiationFailed,
                "a server offer is outstanding; answer it first",
            );
            return;
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                self.error(ErrorCode::InvalidSdp, format!("cannot parse offer: {e}"));
                return;
            }
        };
        match self.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                self.note_red(sdp);
                self.emit(WorkerEvent::Answer {
                    client: self.client,
                    sdp: answer.to_sdp_string(),
                });
                self.negotiation = Negotiation::Stable;
                self.negotiate();
            }
            Err(e) => {
                self.error(ErrorCode::InvalidSdp, format!("offer refused: {e}"));
                if !self.rtc.is_alive() && matches!(self.negotiation, Negotiation::AwaitingOffer) {
                    // A refused first offer can kill the Rtc; start afresh so
                    // the client may retry with a good one.
                    (self.rtc, self.keys) = new_rtc(self.candidate, now);
                    self.srtp = None;
                    self.media_dest = None;
                }
            }
        }
    }

    /// The client's answer to our offer.
    pub(crate) fn on_answer(&mut self, sdp: &str) {
        let pending = match std::mem::replace(&mut self.negotiation, Negotiation::Stable) {
            Negotiation::AwaitingAnswer(p) => p,
            other => {
                self.negotiation = other;
                self.error(
                    ErrorCode::NegotiationFailed,
                    "no server offer is outstanding",
                );
                return;
            }
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                self.negotiation = Negotiation::AwaitingAnswer(pending);
                self.error(ErrorCode::InvalidSdp, format!("cannot parse answer: {e}"));
                return;
            }
        };
        match self.rtc.sdp_api().accept_answer(pending, answer) {
            Ok(()) => {
                self.note_red(sdp);
                // Tracks moved to spare by a leave while the offer was out
                // are negotiated by this answer too.
                for d in self.downlinks.iter_mut().chain(self.spare.iter_mut()) {
                    d.negotiated = true;
                }
                self.negotiate();
            }
            Err(e) => self.error(ErrorCode::InvalidSdp, format!("answer refused: {e}")),
        }
    }

    /// Gives the peer a downlink track for `chan`: reports
    /// [`WorkerEvent::TrackReady`] at once when it has one (or a spare), or
    /// after adding an m-line (followed by the server's offer).
    pub(crate) fn add_track(&mut self, chan: ChanId, token: u64) {
        if let Some(d) = self.downlinks.get(&chan) {
            self.track_ready(chan, d.mid, token);
            return;
        }
        self.pending.retain(|(c, _)| *c != chan);
        self.pending.push((chan, token));
        self.negotiate();
    }

    fn track_ready(&self, chan: ChanId, mid: Mid, token: u64) {
        self.emit(WorkerEvent::TrackReady {
            client: self.client,
            chan,
            mid: mid.to_string(),
            token,
        });
    }

    pub(crate) fn remove_track(&mut self, chan: ChanId) {
        self.pending.retain(|(c, _)| *c != chan);
        if let Some(d) = self.downlinks.remove(&chan) {
            self.spare.push(d);
        }
    }

    /// Gives pending joins a track; sends an offer if m-lines were added.
    fn negotiate(&mut self) {
        if !matches!(self.negotiation, Negotiation::Stable) || self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut api = self.rtc.sdp_api();
        for (chan, token) in pending {
            let downlink = match self.spare.pop() {
                Some(d) => d,
                None => {
                    let mid = api.add_media(
                        MediaKind::Audio,
                        Direction::SendOnly,
                        Some(format!("squawk-{}", self.client)),
                        Some(format!("ch{}", chan.0)),
                        None,
                    );
                    Downlink {
                        mid,
                        rewriter: TrackRewriter::new(OPUS_CLOCK, rand::random(), rand::random()),
                        negotiated: false,
                        pt: None,
                        red_pt: None,
                        level_id: None,
                        ssrc: None,
                    }
                }
            };
            // Disjoint from the SDP API's borrow of `rtc`: not `self.emit`.
            let _ = self.events.send(WorkerEvent::TrackReady {
                client: self.client,
                chan,
                mid: downlink.mid.to_string(),
                token,
            });
            self.downlinks.insert(chan, downlink);
        }
        if let Some((offer, pending)) = api.apply() {
            debug!(client = self.client, "renegotiating: server offer");
            self.emit(WorkerEvent::Offer {
                client: self.client,
                sdp: offer.to_sdp_string(),
            });
            self.negotiation = Negotiation::AwaitingAnswer(pending);
        }
    }

    /// The RFC 6464 audio level extension id negotiated on `mid`.
    pub(crate) fn audio_level_id(rtc: &Rtc, mid: Mid) -> Option<u8> {
        rtc.media(mid)?
            .remote_extmap()
            .id_of(str0m::rtp::Extension::AudioLevel)
    }

    /// Remembers which m-lines the client's accepted SDP lists RED on (a
    /// later SDP of the client decides again for the mids it names).
    fn note_red(&mut self, sdp: &str) {
        let found = red_mids(sdp);
        let named: Vec<String> = sdp
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a=mid:").map(str::to_owned))
            .collect();
        self.red_mids.0.retain(|(m, _)| !named.contains(m));
        self.red_mids.0.extend(found);
        // Tracks whose payload types were looked up look them up again.
        for d in self.downlinks.iter_mut().chain(self.spare.iter_mut()) {
            d.pt = None;
        }
    }

    /// The Opus payload type negotiated on `mid` (RFC 7587 is dynamic PT).
    pub(crate) fn opus_pt(rtc: &Rtc, mid: Mid) -> Option<Pt> {
        let media = rtc.media(mid)?;
        rtc.codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus && media.remote_pts().contains(&p.pt()))
            .map(|p| p.pt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_is_read_per_mid_from_the_clients_sdp() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
            a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 109 121\r\na=mid:2\r\na=rtpmap:109 opus/48000/2\r\n\
            a=rtpmap:121 RED/48000/2\r\n";
        assert_eq!(
            red_mids(sdp),
            vec![
                ("0".to_owned(), Pt::from(63)),
                ("2".to_owned(), Pt::from(121))
            ]
        );
        assert!(red_mids("m=audio 9 RTP/AVP 0\r\na=rtpmap:63 red/48000/2\r\n").is_empty());
    }
}
