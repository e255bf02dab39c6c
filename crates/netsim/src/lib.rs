//! Squawk's network-impairment rig.
//!
//! This machine's kernel has no `netem`, and real users are on Wi-Fi at the
//! edge of coverage and on mobile data. The rig makes such links on
//! loopback, in two layers:
//!
//! - [`Link`]: one direction of a link as a sans-IO state machine (time
//!   passed in, seeded randomness): delay, jitter, reordering, random loss,
//!   Gilbert-Elliott bursty loss, a rate cap with a drop-tail queue and
//!   outages, as a [`Profile`] (`"burst=20%/3,delay=40ms,jitter=20ms"`).
//! - [`Relay`]: a UDP relay between clients and a server, one uplink and one
//!   downlink [`Link`] per client. The server advertises the relay's address
//!   as its media address, so each hop (talker → server, server → listener)
//!   is impaired on its own.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use squawk_netsim::{Link, Profile};
//!
//! let mut link = Link::new("delay=40ms".parse::<Profile>()?, 1);
//! let t0 = Instant::now();
//! link.offer(t0, 160, "an Opus frame");
//! assert_eq!(link.poll_output(t0), None);
//! assert_eq!(link.poll_timeout(), Some(t0 + Duration::from_millis(40)));
//! assert_eq!(link.poll_output(t0 + Duration::from_millis(40)), Some("an Opus frame"));
//! # Ok::<(), squawk_netsim::ProfileError>(())
//! ```

mod link;
mod profile;
mod relay;

pub use link::{Link, LinkStats};
pub use profile::{GilbertElliott, Loss, Profile, ProfileError};
pub use relay::{Relay, RelayConfig, RelayStats};
