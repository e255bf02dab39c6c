//! USB PTT pedals and buttons that are not keyboards: they send HID input
//! reports (a vendor bitmask, or a consumer-control usage) that no key
//! grab sees. Pedals that act as keyboards work through the talk key.
//!
//! The logic is pure: [`PedalMap`] says which bits of which report mean
//! "down", [`Learner`] finds them from two reports (press, then release),
//! [`PedalInput`] turns a report stream into press and release edges, and
//! [`parse_uevent`] reads a hidraw device's identity. I/O is at the edge:
//! [`list`] reads `/sys/class/hidraw`, [`spawn_reader`] reads `/dev/hidrawN`
//! (one `read` is one report, the report ID first when the device numbers
//! its reports; Linux `Documentation/hid/hidraw.rst`).
//!
//! Reading `/dev/hidraw*` needs permission: see `docs/pedals.md` for the
//! udev rule.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tauri::{Manager, State};

use crate::{
    AppState, emit_ui,
    events::{AppEvent, UiError, UiErrorCode},
    hotkey::on_talk_key,
    save_settings, settings,
};

/// Which bits of which input report mean "pedal down".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PedalMap {
    /// First byte of the pedal's reports when the device numbers them
    /// (HID report ID), else `None`.
    pub report_id: Option<u8>,
    /// Byte of the report that changes, counted from the report's start
    /// (the report ID, when there is one, is byte 0).
    pub byte: usize,
    /// Bits of that byte that change between up and down.
    pub mask: u8,
    /// Those bits' value when the pedal is down.
    pub down: u8,
}

impl PedalMap {
    /// Whether `report` says the pedal is down; `None` for a report this
    /// map does not describe (another report ID, or too short).
    pub fn is_down(&self, report: &[u8]) -> Option<bool> {
        if let Some(id) = self.report_id
            && report.first() != Some(&id)
        {
            return None;
        }
        let b = report.get(self.byte)?;
        Some(b & self.mask == self.down)
    }

    /// The map from a report read with the pedal up and one with it down:
    /// the first byte that differs, and its differing bits. The first byte
    /// is taken as a report ID when both reports start with the same
    /// non-zero byte and something after it differs.
    pub fn learn(up: &[u8], down: &[u8]) -> Option<Self> {
        let byte = up.iter().zip(down).position(|(u, d)| u != d)?;
        let report_id = (byte > 0 && up[0] == down[0] && up[0] != 0).then_some(up[0]);
        let mask = up[byte] ^ down[byte];
        Some(Self {
            report_id,
            byte,
            mask,
            down: down[byte] & mask,
        })
    }
}

/// Learns a [`PedalMap`] from live reports: the user presses and releases
/// the pedal once. The first report is taken as "down", the next report
/// that differs from it as "up".
#[derive(Debug, Default, Clone)]
pub struct Learner {
    down: Option<Vec<u8>>,
}

impl Learner {
    /// Feeds one report; returns the map once press and release were seen.
    pub fn report(&mut self, report: &[u8]) -> Option<PedalMap> {
        match &self.down {
            None => {
                self.down = Some(report.to_vec());
                None
            }
            Some(down) if down.as_slice() == report => None,
            Some(down) => PedalMap::learn(report, down),
        }
    }
}

/// Turns a pedal's reports into edges: `Some(true)` when it goes down,
/// `Some(false)` when it comes up, `None` otherwise (a repeated report, a
/// report about something else).
#[derive(Debug, Clone)]
pub struct PedalInput {
    map: PedalMap,
    down: bool,
}

impl PedalInput {
    /// A pedal described by `map`, up.
    pub fn new(map: PedalMap) -> Self {
        Self { map, down: false }
    }

    /// Feeds one report.
    pub fn report(&mut self, report: &[u8]) -> Option<bool> {
        let down = self.map.is_down(report)?;
        (down != self.down).then(|| {
            self.down = down;
            down
        })
    }
}

/// A HID device as `/sys/class/hidraw` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HidDevice {
    /// Device node, e.g. `/dev/hidraw3`.
    pub path: PathBuf,
    /// Product name (`HID_NAME`).
    pub name: String,
    /// USB vendor ID.
    pub vendor: u16,
    /// USB product ID.
    pub product: u16,
}

/// Name, vendor and product from a hidraw device's `uevent` file
/// (`HID_ID=BUS:VVVVVVVV:PPPPPPPP`, `HID_NAME=...`).
pub fn parse_uevent(text: &str) -> Option<(String, u16, u16)> {
    let mut name = None;
    let mut ids = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("HID_NAME=") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("HID_ID=") {
            let mut parts = v.trim().split(':').skip(1);
            let vendor = u32::from_str_radix(parts.next()?, 16).ok()?;
            let product = u32::from_str_radix(parts.next()?, 16).ok()?;
            ids = Some((u16::try_from(vendor).ok()?, u16::try_from(product).ok()?));
        }
    }
    let (vendor, product) = ids?;
    Some((name.unwrap_or_default(), vendor, product))
}

/// The HID devices under `sys` (normally `/sys/class/hidraw`), by name.
pub fn list(sys: &Path) -> Vec<HidDevice> {
    let Ok(entries) = std::fs::read_dir(sys) else {
        return Vec::new();
    };
    let mut out: Vec<HidDevice> = entries
        .flatten()
        .filter_map(|e| {
            let uevent = std::fs::read_to_string(e.path().join("device").join("uevent")).ok()?;
            let (name, vendor, product) = parse_uevent(&uevent)?;
            Some(HidDevice {
                path: Path::new("/dev").join(e.file_name()),
                name,
                vendor,
                product,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    out
}

/// Reads reports from `path` on its own thread and gives each to
/// `on_report`, until `stop` is set (checked after each report) or the
/// device goes away (unplugged: `on_end` gets the reason).
///
/// # Errors
/// The device cannot be opened; a permission error names the udev rule.
pub fn spawn_reader(
    path: &Path,
    stop: Arc<AtomicBool>,
    mut on_report: impl FnMut(&[u8]) + Send + 'static,
    on_end: impl FnOnce(String) + Send + 'static,
) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "{}: permission denied (add the udev rule in docs/pedals.md, then replug)",
                path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("pedal".into())
        .spawn(move || {
            // HID full-speed reports are at most 64 bytes; hidraw allows 4096.
            let mut buf = [0u8; 4096];
            let reason = loop {
                match file.read(&mut buf) {
                    Ok(0) => break format!("{shown}: closed"),
                    Ok(n) => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        on_report(&buf[..n]);
                    }
                    Err(e) => break format!("{shown}: {e}"),
                }
            };
            if !stop.load(Ordering::Relaxed) {
                on_end(reason);
            }
        })
        .map_err(|e| format!("cannot start the pedal thread: {e}"))?;
    Ok(())
}

// The app's side: the reader that acts as the talk key, and the
// commands that list, learn and forget a pedal.

/// Where Linux lists HID devices.
pub(crate) const HIDRAW_SYS: &str = "/sys/class/hidraw";

/// Stops the pedal reader or learner that runs now, if any.
pub(crate) fn stop_pedal(state: &AppState) {
    if let Ok(mut s) = state.pedal_stop.lock()
        && let Some(stop) = s.take()
    {
        stop.store(true, Ordering::Relaxed);
    }
}

/// Starts reading `setting`'s device: its presses and releases act as the
/// talk key (hold or latch as set). A device that goes away is reported.
pub(crate) fn start_pedal<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    setting: &settings::PedalSetting,
) -> Result<(), String> {
    let state = app.state::<AppState>();
    stop_pedal(&state);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut input = PedalInput::new(setting.map);
    let (on_edge, on_end) = (app.clone(), app.clone());
    let name = setting.device.name.clone();
    spawn_reader(
        &setting.device.path,
        stop.clone(),
        move |report| {
            if let Some(down) = input.report(report) {
                on_talk_key(&on_edge, down);
            }
        },
        move |why| {
            emit_ui(
                &on_end,
                AppEvent::Warning {
                    message: format!("pedal {name}: {why}"),
                },
            );
        },
    )?;
    if let Ok(mut s) = state.pedal_stop.lock() {
        *s = Some(stop);
    }
    Ok(())
}

/// The HID devices a pedal can be picked from (`/sys/class/hidraw`).
#[tauri::command]
pub(crate) fn app_list_pedals() -> Vec<HidDevice> {
    list(std::path::Path::new(HIDRAW_SYS))
}

/// Learns the pedal at `path` (a node from `app_list_pedals`): the user
/// presses and releases it within 20 s. Then it acts as the talk key, and
/// is saved. Returns the learned setting.
///
/// # Errors
/// Unknown device, no permission (the udev rule), or nothing pressed in time.
#[tauri::command]
pub(crate) async fn app_learn_pedal<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    state: State<'_, AppState>,
    path: String,
) -> Result<settings::PedalSetting, UiError> {
    let device = app_list_pedals()
        .into_iter()
        .find(|d| d.path == std::path::Path::new(&path))
        .ok_or_else(|| {
            UiError::invalid(format!("{path}: not a HID device listed in {HIDRAW_SYS}"))
        })?;
    stop_pedal(&state);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let mut learner = Learner::default();
    spawn_reader(
        &device.path,
        stop.clone(),
        move |report| {
            if let Some(map) = learner.report(report)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(map);
            }
        },
        |_| {},
    )
    .map_err(|e| UiError::new(UiErrorCode::Device, e))?;
    let learned = tokio::time::timeout(Duration::from_secs(20), rx).await;
    stop.store(true, Ordering::Relaxed);
    let map = match learned {
        Ok(Ok(map)) => map,
        _ => {
            return Err(UiError::new(
                UiErrorCode::Device,
                format!("{}: no press and release within 20 s", device.name),
            ));
        }
    };
    let setting = settings::PedalSetting { device, map };
    start_pedal(&app, &setting).map_err(|e| UiError::new(UiErrorCode::Device, e))?;
    save_settings(state.inner(), |s| s.pedal = Some(setting.clone()));
    Ok(setting)
}

/// Stops using the pedal and forgets it.
#[tauri::command]
pub(crate) fn app_clear_pedal(state: State<'_, AppState>) {
    stop_pedal(&state);
    save_settings(state.inner(), |s| s.pedal = None);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Infinity IN-USB-2 transcription pedal (05f3:00ff), three pedals:
    /// 2-byte reports, no report ID, byte 0 a bitmask (left 1, middle 2,
    /// right 4), as published by users reading its hidraw node.
    const INFINITY_UP: [u8; 2] = [0x00, 0x00];
    const INFINITY_LEFT: [u8; 2] = [0x01, 0x00];
    const INFINITY_MIDDLE: [u8; 2] = [0x02, 0x00];
    const INFINITY_LEFT_AND_MIDDLE: [u8; 2] = [0x03, 0x00];

    /// A consumer-control button (HID usage page 0x0C, HID Usage Tables
    /// §15) with numbered reports: report ID 2, then the 16-bit usage,
    /// little-endian: Play/Pause (0x00CD) down, 0 up; Volume Up (0x00E9)
    /// is another button of the same device.
    const CC_UP: [u8; 3] = [0x02, 0x00, 0x00];
    const CC_PLAY: [u8; 3] = [0x02, 0xCD, 0x00];
    const CC_VOLUME_UP: [u8; 3] = [0x02, 0xE9, 0x00];
    const OTHER_REPORT: [u8; 3] = [0x01, 0xCD, 0x00];

    #[test]
    fn a_vendor_bitmask_pedal_is_learned_and_followed() {
        let map = PedalMap::learn(&INFINITY_UP, &INFINITY_MIDDLE).unwrap();
        assert_eq!(
            map,
            PedalMap {
                report_id: None,
                byte: 0,
                mask: 0x02,
                down: 0x02
            }
        );
        let mut p = PedalInput::new(map);
        assert_eq!(p.report(&INFINITY_LEFT), None, "another pedal");
        assert_eq!(p.report(&INFINITY_MIDDLE), Some(true));
        assert_eq!(p.report(&INFINITY_MIDDLE), None, "repeated report");
        assert_eq!(p.report(&INFINITY_LEFT_AND_MIDDLE), None, "still down");
        assert_eq!(p.report(&INFINITY_LEFT), Some(false));
        assert_eq!(p.report(&INFINITY_UP), None);
    }

    #[test]
    fn a_consumer_control_button_keeps_its_report_id_and_usage() {
        let mut l = Learner::default();
        assert_eq!(l.report(&CC_PLAY), None, "press");
        assert_eq!(l.report(&CC_PLAY), None, "repeat while held");
        let map = l.report(&CC_UP).expect("release completes learning");
        assert_eq!(map.report_id, Some(2));
        assert_eq!((map.byte, map.mask, map.down), (1, 0xCD, 0xCD));
        let mut p = PedalInput::new(map);
        assert_eq!(p.report(&CC_VOLUME_UP), None, "not our usage");
        assert_eq!(p.report(&OTHER_REPORT), None, "another report ID");
        assert_eq!(p.report(&CC_PLAY), Some(true));
        assert_eq!(p.report(&CC_UP), Some(false));
        assert_eq!(p.report(&[0x02]), None, "a short report is ignored");
    }

    #[test]
    fn identical_reports_teach_nothing() {
        assert_eq!(PedalMap::learn(&CC_UP, &CC_UP), None);
        assert_eq!(PedalMap::learn(&[], &[]), None);
    }

    #[test]
    fn uevent_names_the_device() {
        // As in /sys/class/hidraw/hidraw3/device/uevent.
        let text = "DRIVER=hid-generic\nHID_ID=0003:000005F3:000000FF\n\
                    HID_NAME=VEC  VEC USB Footpedal\nHID_PHYS=usb-0000:00:14.0-2/input0\n\
                    HID_UNIQ=\nMODALIAS=hid:b0003g0001v000005F3p000000FF\n";
        assert_eq!(
            parse_uevent(text),
            Some(("VEC  VEC USB Footpedal".into(), 0x05f3, 0x00ff))
        );
        assert_eq!(parse_uevent("HID_NAME=x\n"), None, "no ids");
        assert_eq!(parse_uevent("HID_ID=0003:zz:01\n"), None);
    }

    #[test]
    fn devices_are_listed_from_sysfs() {
        let sys = std::env::temp_dir().join(format!("squawk-hidraw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&sys);
        for (node, id, name) in [
            ("hidraw1", "0003:0000046D:0000C52B", "Logitech USB Receiver"),
            ("hidraw0", "0003:000005F3:000000FF", "VEC USB Footpedal"),
        ] {
            let dir = sys.join(node).join("device");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("uevent"),
                format!("HID_ID={id}\nHID_NAME={name}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(sys.join("hidraw9")).unwrap(); // no uevent: skipped
        let list = list(&sys);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "Logitech USB Receiver");
        assert_eq!(list[1].path, Path::new("/dev/hidraw0"));
        assert_eq!((list[1].vendor, list[1].product), (0x05f3, 0x00ff));
        std::fs::remove_dir_all(sys).unwrap();
        assert!(super::list(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn the_reader_hands_over_each_read_and_reports_the_end() {
        // A regular file reads like a device that sent one report and went away.
        let path = std::env::temp_dir().join(format!("squawk-report-{}", std::process::id()));
        std::fs::write(&path, INFINITY_LEFT).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let end = tx.clone();
        let stop = Arc::new(AtomicBool::new(false));
        spawn_reader(
            &path,
            stop,
            move |r| tx.send(Ok(r.to_vec())).unwrap(),
            move |why| end.send(Err(why)).unwrap(),
        )
        .unwrap();
        let wait = std::time::Duration::from_secs(5);
        assert_eq!(rx.recv_timeout(wait).unwrap(), Ok(INFINITY_LEFT.to_vec()));
        let why = rx.recv_timeout(wait).unwrap().unwrap_err();
        assert!(why.ends_with("closed"), "{why}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let stop = Arc::new(AtomicBool::new(false));
        let e = spawn_reader(Path::new("/dev/hidraw-none"), stop, |_| {}, |_| {}).unwrap_err();
        assert!(e.contains("/dev/hidraw-none"), "{e}");
    }
}
