//! Pure media logic for Squawk, in the sans-IO style of str0m: no I/O, no
//! threads, no clock reads. Time is always passed in as [`std::time::Instant`]
//! arguments, so every behaviour is deterministic and testable with simulated
//! time.
//!
//! * [`rewrite`] — [`TrackRewriter`], used by the SFU server: rewrites the RTP
//!   sequence numbers and timestamps of successive talkers (SSRCs) into one
//!   continuous outgoing stream per channel per listener, so a change of
//!   talker needs no renegotiation and looks like a new talk-spurt
//!   (RFC 3550 §5.1, RFC 3551 §4.1).
//! * [`jitter`] — [`JitterBuffer`], used by the client engine (one per
//!   channel): reorders incoming Opus RTP, adapts its delay to the measured
//!   jitter (RFC 3550 §6.4.1), compensates drift between the sender's clock
//!   and the audio device clock, and tells the decoder per 20 ms slot whether
//!   to decode, use in-band FEC, conceal or play silence (RFC 7587 §3.1.3,
//!   §3.3).
//! * [`red`] — RFC 2198 redundant audio (RED): [`RedSender`] wraps each
//!   outgoing Opus packet with copies of the ones before it,
//!   [`RedReceiver`] recovers a burst of lost packets from the next one
//!   that arrives. Used by the engine's uplink and by the SFU at both ends.
//! * [`seq`] — [`SeqCompactor`], used by the SFU: renumbers a talker's
//!   packets around the padding-only ones it drops, so listeners see no gap.
//! * [`fec`] — [`FecTuner`], used by the client engine: sets the Opus
//!   encoder's expected packet loss (and so its in-band FEC) from the loss
//!   the server reports in RTCP receiver reports (RFC 3550 §6.4.1).

pub mod fec;
/// Fuzzing harnesses (`fuzz/`); hidden: not an API.
#[cfg(any(test, feature = "fuzz"))]
#[doc(hidden)]
pub mod fuzz;
pub mod jitter;
pub mod red;
pub mod rewrite;
pub mod seq;

pub use fec::{FecTuner, FecTunerConfig};
pub use jitter::{JitterBuffer, JitterConfig, JitterEvent, JitterStats, Playout, PushOutcome};
pub use red::{RedPayload, RedReceiver, RedSender};
pub use rewrite::{Rewritten, TrackRewriter};
pub use seq::SeqCompactor;
