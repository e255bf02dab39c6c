//! Which audio device a stream uses: the one the user chose, the system's
//! default while it is missing, and the chosen one again once it is back.
//!
//! A pure state machine (events in, [`Step`]s and [`DeviceChange`]
//! notices out, time passed in), driven by a device thread
//! ([`super::device`]):
//!
//! ```text
//! List ─listed─▶ Open(chosen | default) ─opened─▶ Run ─every 2 s─▶ List
//!                  │ failed                         │ lost
//!                  ▼                                ▼
//!          Open(default), or Wait 2 s      Open(default) / Open(chosen)
//! ```
//!
//! While a stream runs on the default because the chosen device is
//! missing, every listing looks for it; when it is back the stream is
//! reopened on it ([`DeviceChange::Restored`]). A chosen device that
//! disappears while in use (unplugged; PulseAudio then kills the stream or
//! moves it to another device) is left for the default
//! ([`DeviceChange::FellBack`]), with one notice per change, never one per
//! retry.

use std::time::{Duration, Instant};

/// How often a running stream looks at the device list: how long an
/// unplugged or replugged device can go unnoticed, ms.
pub const CHECK_MS: u64 = 2_000;

/// A device as the system lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct DeviceInfo {
    /// The system's name for it (PulseAudio's source or sink name), which
    /// opens it.
    pub name: String,
    /// What people call it ("Built-in Audio Analog Stereo").
    pub description: String,
}

impl DeviceInfo {
    /// Whether `wanted` names this device: its name or its description,
    /// exactly.
    pub fn is(&self, wanted: &str) -> bool {
        self.name == wanted || self.description == wanted
    }
}

/// What happened to a stream's device, for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum DeviceChange {
    /// The chosen device is missing or failed: the default is used.
    FellBack {
        /// The device asked for, as given.
        wanted: String,
        /// Why, for people.
        reason: String,
    },
    /// The chosen device is in use again after a fallback.
    Restored {
        /// The device, as given.
        device: String,
    },
    /// No device at all could be opened (not even the default); tried
    /// again every [`CHECK_MS`].
    Unavailable {
        /// Why, for people.
        reason: String,
    },
}

/// What the device thread does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// List the devices, then call [`Selector::listed`].
    List,
    /// Open this device (`None`: the system's default), then call
    /// [`Selector::opened`].
    Open(Option<String>),
    /// Keep the stream running; call [`Selector::lost`] if it fails.
    Run,
    /// Nothing is open; wait until this instant (at most).
    Wait(Instant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// About to list, at the start or after a wait.
    Listing,
    /// Opening `device` (a system name; `None`: the default).
    Opening(Option<String>),
    /// A stream runs on the chosen device (`true`) or the default.
    Running { chosen: bool },
    /// Nothing opened; look again at this instant.
    Waiting(Instant),
}

/// Picks the device for one stream (input or output). Start with
/// [`Selector::next`], which asks for a listing.
#[derive(Debug, Clone)]
pub struct Selector {
    wanted: Option<String>,
    state: State,
    /// When a running stream next looks at the device list.
    next_check: Instant,
    /// The chosen device was left for the default (a notice was given).
    fell_back: bool,
    /// [`DeviceChange::Unavailable`] was given since the last open.
    unavailable: bool,
}

impl Selector {
    /// For the device `wanted` (a name or a description, see
    /// [`DeviceInfo::is`]; `None`: the system's default) at `now`.
    pub fn new(wanted: Option<String>, now: Instant) -> Self {
        Self {
            wanted,
            state: State::Listing,
            next_check: now,
            fell_back: false,
            unavailable: false,
        }
    }

    /// The user chose another device (`None`: the default) at `now`: it is
    /// looked for and opened, replacing the stream that runs.
    pub fn choose(&mut self, wanted: Option<String>, now: Instant) {
        self.wanted = wanted;
        self.fell_back = false;
        self.state = State::Listing;
        self.next_check = now;
    }

    /// What to do at `now`.
    pub fn next(&mut self, now: Instant) -> Step {
        match &self.state {
            State::Listing => Step::List,
            State::Opening(device) => Step::Open(device.clone()),
            State::Running { .. } if now >= self.next_check => Step::List,
            State::Running { .. } => Step::Run,
            State::Waiting(until) if now >= *until => {
                self.state = State::Listing;
                Step::List
            }
            State::Waiting(until) => Step::Wait(*until),
        }
    }

    /// The device list arrived (`Err`: it could not be read).
    pub fn listed(
        &mut self,
        devices: Result<&[DeviceInfo], String>,
        now: Instant,
    ) -> Option<DeviceChange> {
        self.next_check = now + Duration::from_millis(CHECK_MS);
        let devices = match devices {
            Ok(d) => d,
            // A running stream keeps running: if the server is gone, the
            // stream itself fails next.
            Err(_) if matches!(self.state, State::Running { .. }) => return None,
            Err(reason) => return self.unavailable(reason, now),
        };
        let Some(wanted) = self.wanted.clone() else {
            if !matches!(self.state, State::Running { .. }) {
                self.state = State::Opening(None);
            }
            return None;
        };
        let found = devices
            .iter()
            .find(|d| d.is(&wanted))
            .map(|d| d.name.clone());
        match (&self.state, found) {
            (State::Running { chosen: true }, Some(_)) => None,
            (State::Running { chosen: false }, None) => None,
            (State::Running { chosen: false }, Some(name)) => {
                self.state = State::Opening(Some(name));
                None
            }
            (_, None) => {
                self.state = State::Opening(None);
                self.fall_back(wanted, "it is not connected".into())
            }
            (_, Some(name)) => {
                self.state = State::Opening(Some(name));
                None
            }
        }
    }

    /// The device asked for by [`Step::Open`] opened (`Ok`) or not.
    pub fn opened(&mut self, result: Result<(), String>, now: Instant) -> Option<DeviceChange> {
        let State::Opening(device) = &self.state else {
            return None;
        };
        let chosen = device.is_some();
        match result {
            Ok(()) => {
                self.state = State::Running { chosen };
                self.next_check = now + Duration::from_millis(CHECK_MS);
                self.unavailable = false;
                if chosen && std::mem::take(&mut self.fell_back) {
                    return self
                        .wanted
                        .clone()
                        .map(|device| DeviceChange::Restored { device });
                }
                None
            }
            Err(reason) if chosen => {
                self.state = State::Opening(None);
                let wanted = self.wanted.clone().unwrap_or_default();
                self.fall_back(wanted, reason)
            }
            Err(reason) => self.unavailable(reason, now),
        }
    }

    /// The running stream failed (the device went away, or the server).
    pub fn lost(&mut self, reason: String, now: Instant) -> Option<DeviceChange> {
        let State::Running { chosen } = self.state else {
            return None;
        };
        self.state = State::Opening(None);
        self.next_check = now + Duration::from_millis(CHECK_MS);
        match &self.wanted {
            Some(wanted) if chosen => {
                let wanted = wanted.clone();
                self.fall_back(wanted, reason)
            }
            _ => None,
        }
    }

    fn fall_back(&mut self, wanted: String, reason: String) -> Option<DeviceChange> {
        if std::mem::replace(&mut self.fell_back, true) {
            return None;
        }
        Some(DeviceChange::FellBack { wanted, reason })
    }

    fn unavailable(&mut self, reason: String, now: Instant) -> Option<DeviceChange> {
        self.state = State::Waiting(now + Duration::from_millis(CHECK_MS));
        if std::mem::replace(&mut self.unavailable, true) {
            return None;
        }
        Some(DeviceChange::Unavailable { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, description: &str) -> DeviceInfo {
        DeviceInfo {
            name: name.into(),
            description: description.into(),
        }
    }

    fn both() -> Vec<DeviceInfo> {
        vec![dev("builtin", "Built-in Audio"), dev("usb", "USB Headset")]
    }

    const CHECK: Duration = Duration::from_millis(CHECK_MS);

    fn fell_back(wanted: &str, reason: &str) -> Option<DeviceChange> {
        Some(DeviceChange::FellBack {
            wanted: wanted.into(),
            reason: reason.into(),
        })
    }

    /// A selector for `wanted` whose stream runs, on `devices` at `t0`.
    fn running(wanted: &str, devices: &[DeviceInfo], t0: Instant) -> Selector {
        let mut s = Selector::new(Some(wanted.into()), t0);
        assert_eq!(s.next(t0), Step::List);
        s.listed(Ok(devices), t0);
        assert!(matches!(s.next(t0), Step::Open(_)));
        s.opened(Ok(()), t0);
        assert_eq!(s.next(t0), Step::Run);
        s
    }

    #[test]
    fn the_default_is_listed_then_opened_and_run_with_no_notice() {
        let t0 = Instant::now();
        let mut s = Selector::new(None, t0);
        assert_eq!(s.next(t0), Step::List);
        assert_eq!(s.listed(Ok(&both()), t0), None);
        assert_eq!(s.next(t0), Step::Open(None));
        assert_eq!(s.opened(Ok(()), t0), None);
        assert_eq!(s.next(t0), Step::Run);
        assert_eq!(s.next(t0 + CHECK - Duration::from_millis(1)), Step::Run);
        assert_eq!(s.next(t0 + CHECK), Step::List);
        assert_eq!(s.listed(Ok(&[]), t0 + CHECK), None);
        assert_eq!(s.next(t0 + CHECK), Step::Run);
    }

    #[test]
    fn a_chosen_device_is_found_by_name_or_description_and_opened_by_name() {
        for wanted in ["usb", "USB Headset"] {
            let t0 = Instant::now();
            let mut s = Selector::new(Some(wanted.into()), t0);
            assert_eq!(s.next(t0), Step::List);
            assert_eq!(s.listed(Ok(&both()), t0), None);
            assert_eq!(s.next(t0), Step::Open(Some("usb".into())));
            assert_eq!(s.opened(Ok(()), t0), None);
            assert_eq!(s.next(t0), Step::Run);
        }
    }

    #[test]
    fn a_missing_device_falls_back_with_one_notice_and_is_restored_when_plugged_in() {
        let t0 = Instant::now();
        let only_builtin = vec![dev("builtin", "Built-in Audio")];
        let mut s = Selector::new(Some("USB Headset".into()), t0);
        s.next(t0);
        assert_eq!(
            s.listed(Ok(&only_builtin), t0),
            fell_back("USB Headset", "it is not connected")
        );
        assert_eq!(s.next(t0), Step::Open(None));
        assert_eq!(s.opened(Ok(()), t0), None);
        // Still missing two seconds later: no second notice.
        let t1 = t0 + CHECK;
        assert_eq!(s.next(t1), Step::List);
        assert_eq!(s.listed(Ok(&only_builtin), t1), None);
        assert_eq!(s.next(t1), Step::Run);
        // Plugged in: reopened on it, and said so once it opens.
        let t2 = t1 + CHECK;
        assert_eq!(s.next(t2), Step::List);
        assert_eq!(s.listed(Ok(&both()), t2), None);
        assert_eq!(s.next(t2), Step::Open(Some("usb".into())));
        assert_eq!(
            s.opened(Ok(()), t2),
            Some(DeviceChange::Restored {
                device: "USB Headset".into()
            })
        );
        assert_eq!(s.next(t2), Step::Run);
    }

    #[test]
    fn unplugging_the_device_in_use_falls_back_whether_the_stream_dies_or_is_moved() {
        let t0 = Instant::now();
        // The stream dies (PulseAudio killed it).
        let mut s = running("usb", &both(), t0);
        assert_eq!(
            s.lost("Entity killed".into(), t0),
            fell_back("usb", "Entity killed")
        );
        assert_eq!(s.next(t0), Step::Open(None));
        assert_eq!(s.opened(Ok(()), t0), None);
        // The stream lives on, moved elsewhere by the server: the next
        // listing notices the device is gone.
        let mut s = running("usb", &both(), t0);
        let t1 = t0 + CHECK;
        assert_eq!(s.next(t1), Step::List);
        assert!(matches!(
            s.listed(Ok(&[dev("builtin", "Built-in Audio")]), t1),
            Some(DeviceChange::FellBack { .. })
        ));
        assert_eq!(s.next(t1), Step::Open(None));
    }

    #[test]
    fn a_chosen_device_that_fails_to_open_falls_back_to_the_default() {
        let t0 = Instant::now();
        let mut s = Selector::new(Some("usb".into()), t0);
        s.next(t0);
        s.listed(Ok(&both()), t0);
        assert_eq!(s.next(t0), Step::Open(Some("usb".into())));
        assert_eq!(s.opened(Err("busy".into()), t0), fell_back("usb", "busy"));
        assert_eq!(s.next(t0), Step::Open(None));
        assert_eq!(s.opened(Ok(()), t0), None);
        // Listed again later, present: tried again.
        let t1 = t0 + CHECK;
        s.next(t1);
        s.listed(Ok(&both()), t1);
        assert_eq!(s.next(t1), Step::Open(Some("usb".into())));
    }

    #[test]
    fn with_nothing_to_open_it_waits_and_retries_with_one_notice() {
        let t0 = Instant::now();
        let mut s = Selector::new(None, t0);
        s.next(t0);
        assert_eq!(
            s.listed(Err("Connection refused".into()), t0),
            Some(DeviceChange::Unavailable {
                reason: "Connection refused".into()
            })
        );
        assert_eq!(s.next(t0), Step::Wait(t0 + CHECK));
        let t1 = t0 + CHECK;
        assert_eq!(s.next(t1), Step::List);
        assert_eq!(s.listed(Ok(&both()), t1), None);
        assert_eq!(s.next(t1), Step::Open(None));
        assert_eq!(s.opened(Err("no sink".into()), t1), None);
        assert_eq!(s.next(t1), Step::Wait(t1 + CHECK));
        let t2 = t1 + CHECK;
        s.next(t2);
        s.listed(Ok(&both()), t2);
        s.next(t2);
        assert_eq!(s.opened(Ok(()), t2), None);
        // Unavailable again later: a new notice, since one opened between.
        assert_eq!(s.lost("server gone".into(), t2), None);
        assert!(matches!(
            s.opened(Err("refused".into()), t2),
            Some(DeviceChange::Unavailable { .. })
        ));
    }

    #[test]
    fn choosing_another_device_reopens_on_it_and_forgets_the_old_fallback() {
        let t0 = Instant::now();
        let mut s = running("gone", &both(), t0);
        s.choose(Some("USB Headset".into()), t0);
        assert_eq!(s.next(t0), Step::List);
        assert_eq!(s.listed(Ok(&both()), t0), None);
        assert_eq!(s.next(t0), Step::Open(Some("usb".into())));
        // Not a "restored": the user chose it.
        assert_eq!(s.opened(Ok(()), t0), None);
        // Back to the default.
        s.choose(None, t0);
        assert_eq!(s.next(t0), Step::List);
        assert_eq!(s.listed(Ok(&both()), t0), None);
        assert_eq!(s.next(t0), Step::Open(None));
    }

    #[test]
    fn a_failed_listing_keeps_a_running_stream() {
        let t0 = Instant::now();
        let mut s = running("usb", &both(), t0);
        let t1 = t0 + CHECK;
        assert_eq!(s.next(t1), Step::List);
        assert_eq!(s.listed(Err("timeout".into()), t1), None);
        assert_eq!(s.next(t1), Step::Run);
    }
}
