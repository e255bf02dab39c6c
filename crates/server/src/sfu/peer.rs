//! One connection's media state on a worker: its str0m [`Rtc`], the SDP
//! negotiation state and one downlink track per channel.

use std::{net::SocketAddr, time::Instant};

use squawk_media::TrackRewriter;
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
}

/// A fresh `Rtc` for one connection and the slot its SRTP keys appear in.
pub(crate) fn new_rtc(candidate: SocketAddr, now: Instant) -> (Rtc, KeySlot) {
    let config = Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, false)
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

    /// The Opus payload type negotiated on `mid` (RFC 7587 is dynamic PT).
    pub(crate) fn opus_pt(rtc: &Rtc, mid: Mid) -> Option<Pt> {
        let media = rtc.media(mid)?;
        rtc.codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus && media.remote_pts().contains(&p.pt()))
            .map(|p| p.pt())
    }
}
