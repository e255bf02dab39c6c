//! The tray icon's talk state: a pure model fed with the same JSON events
//! the UI gets, and the icon drawn as the app icon with a coloured status
//! dot (the talk button's colours), so the state is visible with the
//! window in the background.

use std::collections::BTreeMap;

use serde_json::Value;

/// What the tray shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrayState {
    /// Not connected (or reconnecting): grey dot.
    Offline,
    /// Connected, nobody talking: blue dot.
    Idle,
    /// We hold the floor (Floor Granted) in `channel`: green dot.
    Talking(String),
    /// `talker` holds the floor in `channel` (Floor Taken): amber dot.
    Receiving {
        /// Channel.
        channel: String,
        /// Talker's display name.
        talker: String,
    },
}

impl TrayState {
    /// Dot colour, RGB: the talk button's colours in `ui/style.css`.
    pub fn color(&self) -> [u8; 3] {
        match self {
            Self::Offline => [0x8b, 0x94, 0x9e],
            Self::Idle => [0x1f, 0x6f, 0xeb],
            Self::Talking(_) => [0x2e, 0xa0, 0x43],
            Self::Receiving { .. } => [0xd2, 0x99, 0x22],
        }
    }

    /// Tooltip text, e.g. `Squawk: Dispatch on #ops`.
    pub fn tooltip(&self) -> String {
        match self {
            Self::Offline => "Squawk: offline".into(),
            Self::Idle => "Squawk: idle".into(),
            Self::Talking(c) => format!("Squawk: talking on #{c}"),
            Self::Receiving { channel, talker } => format!("Squawk: {talker} on #{channel}"),
        }
    }
}

/// Follows the UI event stream (see `event_json` in `lib.rs`) and derives
/// a [`TrayState`]. Talking wins over receiving; with several channels
/// busy, the first by name is shown.
#[derive(Debug, Default, Clone)]
pub struct TrayModel {
    connected: bool,
    me: Option<u64>,
    talking: Option<String>,
    talkers: BTreeMap<String, String>,
}

impl TrayModel {
    /// The state now.
    pub fn state(&self) -> TrayState {
        if !self.connected {
            TrayState::Offline
        } else if let Some(c) = &self.talking {
            TrayState::Talking(c.clone())
        } else if let Some((channel, talker)) = self.talkers.iter().next() {
            TrayState::Receiving {
                channel: channel.clone(),
                talker: talker.clone(),
            }
        } else {
            TrayState::Idle
        }
    }

    /// Feeds one UI event; returns the new state if it changed.
    pub fn on_event(&mut self, ev: &Value) -> Option<TrayState> {
        let before = self.state();
        let channel = || ev["channel"].as_str().unwrap_or_default().to_string();
        match ev["type"].as_str().unwrap_or_default() {
            "welcome" => {
                *self = Self {
                    connected: true,
                    me: ev["client_id"].as_u64(),
                    ..Self::default()
                };
            }
            "closed" => *self = Self::default(),
            "connection" if ev["state"] != "connected" => *self = Self::default(),
            "floor_granted" => self.talking = Some(channel()),
            "talk_ended" | "floor_revoke" | "floor_deny"
                if self.talking.as_deref() == Some(&channel()) =>
            {
                self.talking = None;
            }
            "floor_taken" if ev["talker"].as_u64() != self.me => {
                let name = ev["talker_name"].as_str().unwrap_or("someone").to_string();
                self.talkers.insert(channel(), name);
            }
            "floor_idle" | "left" => {
                self.talkers.remove(&channel());
            }
            _ => {}
        }
        let after = self.state();
        (after != before).then_some(after)
    }
}

/// The app icon `rgba` (`width` × `height`, 4 bytes per pixel) with a
/// filled dot of `color` in the bottom-right corner (diameter 5/8 of the
/// width, with a one-pixel dark ring so it reads on light and dark panels).
///
/// # Panics
/// If `rgba` is shorter than `width × height × 4`.
pub fn badge(rgba: &[u8], width: u32, height: u32, color: [u8; 3]) -> Vec<u8> {
    let mut out = rgba[..(width * height * 4) as usize].to_vec();
    let r = width.min(height) as f32 * 5.0 / 16.0;
    let (cx, cy) = (width as f32 - r, height as f32 - r);
    for y in 0..height {
        for x in 0..width {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let px = &mut out[((y * width + x) * 4) as usize..][..4];
            if d <= r - 1.0 {
                px.copy_from_slice(&[color[0], color[1], color[2], 255]);
            } else if d <= r {
                px.copy_from_slice(&[0x0d, 0x11, 0x17, 255]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_tray_follows_talking_and_receiving() {
        let mut m = TrayModel::default();
        assert_eq!(m.state(), TrayState::Offline);
        assert_eq!(
            m.on_event(&json!({"type": "welcome", "client_id": 7, "max_talk_ms": 60000})),
            Some(TrayState::Idle)
        );
        // Our own Floor Taken (the server echoes it) is not "receiving".
        let ours =
            json!({"type": "floor_taken", "channel": "ops", "talker": 7, "talker_name": "Me"});
        assert_eq!(m.on_event(&ours), None);
        assert_eq!(
            m.on_event(
                &json!({"type": "floor_granted", "channel": "ops", "max_duration_ms": 60000})
            ),
            Some(TrayState::Talking("ops".into()))
        );
        // Someone else in another channel: talking still wins.
        let other =
            json!({"type": "floor_taken", "channel": "fire", "talker": 9, "talker_name": "Bo"});
        assert_eq!(m.on_event(&other), None);
        assert_eq!(
            m.on_event(&json!({"type": "talk_ended", "channel": "ops"})),
            Some(TrayState::Receiving {
                channel: "fire".into(),
                talker: "Bo".into()
            })
        );
        assert_eq!(
            m.on_event(&json!({"type": "floor_idle", "channel": "fire"})),
            Some(TrayState::Idle)
        );
        // A lost connection shows offline, whatever was going on.
        m.on_event(&other);
        assert_eq!(
            m.on_event(&json!({"type": "connection", "state": "reconnecting", "retry_in_ms": 500})),
            Some(TrayState::Offline)
        );
        // Events that say nothing about talking change nothing.
        assert_eq!(m.on_event(&json!({"type": "level", "peak": 0.5})), None);
    }

    #[test]
    fn a_deny_or_revoke_on_another_channel_does_not_end_our_talk() {
        let mut m = TrayModel::default();
        m.on_event(&json!({"type": "welcome", "client_id": 1}));
        m.on_event(&json!({"type": "floor_granted", "channel": "ops"}));
        assert_eq!(
            m.on_event(&json!({"type": "floor_deny", "channel": "fire"})),
            None
        );
        assert_eq!(
            m.on_event(&json!({"type": "floor_revoke", "channel": "ops"})),
            Some(TrayState::Idle)
        );
    }

    #[test]
    fn the_badge_is_drawn_in_the_corner_only() {
        let (w, h) = (32, 32);
        let icon = vec![10u8; (w * h * 4) as usize];
        let green = TrayState::Talking("a".into()).color();
        let out = badge(&icon, w, h, green);
        let px = |x: u32, y: u32| &out[((y * w + x) * 4) as usize..][..4];
        assert_eq!(
            px(26, 26),
            &[green[0], green[1], green[2], 255],
            "dot centre"
        );
        assert_eq!(px(2, 2), &[10, 10, 10, 10], "top-left untouched");
        assert_eq!(px(31, 0), &[10, 10, 10, 10], "top-right untouched");
        assert_eq!(out.len(), icon.len());
    }

    #[test]
    fn tooltips_name_the_talker_and_channel() {
        let s = TrayState::Receiving {
            channel: "ops".into(),
            talker: "Dispatch".into(),
        };
        assert_eq!(s.tooltip(), "Squawk: Dispatch on #ops");
        assert_eq!(TrayState::Offline.tooltip(), "Squawk: offline");
    }
}
