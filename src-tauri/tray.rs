//! The tray icon's talk state: a pure model fed with the same events the
//! UI gets ([`UiEvent`]), and the icon drawn as the app icon with a coloured status
//! dot (the talk button's colours), so the state is visible with the
//! window in the background.

use std::collections::BTreeMap;

use squawk_engine::{EngineEvent, LocalEvent};
use squawk_protocol::{ChannelName, ServerMessage};

use crate::events::{AppEvent, ConnectionState, UiEvent};

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

/// Follows the UI's events ([`UiEvent`]) and derives a [`TrayState`].
/// Talking wins over receiving; with several channels busy, the first by
/// name is shown.
#[derive(Debug, Default, Clone)]
pub struct TrayModel {
    connected: bool,
    me: Option<u64>,
    talking: Option<ChannelName>,
    talkers: BTreeMap<ChannelName, String>,
}

impl TrayModel {
    /// The state now.
    pub fn state(&self) -> TrayState {
        if !self.connected {
            TrayState::Offline
        } else if let Some(c) = &self.talking {
            TrayState::Talking(c.to_string())
        } else if let Some((channel, talker)) = self.talkers.iter().next() {
            TrayState::Receiving {
                channel: channel.to_string(),
                talker: talker.clone(),
            }
        } else {
            TrayState::Idle
        }
    }

    /// Feeds one event; returns the new state if it changed.
    pub fn on_event(&mut self, ev: &UiEvent) -> Option<TrayState> {
        let before = self.state();
        match ev {
            UiEvent::Engine(EngineEvent::Server(m)) => match m {
                ServerMessage::Welcome { client_id, .. } => {
                    *self = Self {
                        connected: true,
                        me: Some(*client_id),
                        ..Self::default()
                    };
                }
                ServerMessage::FloorGranted { channel, .. } => {
                    self.talking = Some(channel.clone());
                }
                ServerMessage::FloorRevoke { channel, .. }
                | ServerMessage::FloorDeny { channel, .. } => self.talk_ended(channel),
                ServerMessage::FloorTaken {
                    channel,
                    talker,
                    talker_name,
                    ..
                } if Some(*talker) != self.me => {
                    self.talkers.insert(channel.clone(), talker_name.clone());
                }
                ServerMessage::FloorIdle { channel } | ServerMessage::Left { channel } => {
                    self.talkers.remove(channel);
                }
                _ => {}
            },
            UiEvent::Engine(EngineEvent::Local(e)) => match e {
                LocalEvent::TalkEnded { channel } => self.talk_ended(channel),
                LocalEvent::Closed { .. } => *self = Self::default(),
                _ => {}
            },
            UiEvent::App(AppEvent::Connection { state, .. })
                if *state != ConnectionState::Connected =>
            {
                *self = Self::default();
            }
            UiEvent::App(_) => {}
        }
        let after = self.state();
        (after != before).then_some(after)
    }

    /// Our talk on `channel` ended (another channel's end changes nothing).
    fn talk_ended(&mut self, channel: &ChannelName) {
        if self.talking.as_ref() == Some(channel) {
            self.talking = None;
        }
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
    use squawk_protocol::{DenyReason, Priority, RevokeReason};

    use super::*;

    fn ch(name: &str) -> ChannelName {
        name.parse().unwrap()
    }

    fn server(m: ServerMessage) -> UiEvent {
        UiEvent::Engine(EngineEvent::Server(m))
    }

    fn taken(channel: &str, talker: u64, name: &str) -> UiEvent {
        server(ServerMessage::FloorTaken {
            channel: ch(channel),
            talker,
            talker_name: name.into(),
            priority: Priority::NORMAL,
            held_ms: 0,
        })
    }

    fn welcome(client_id: u64) -> UiEvent {
        server(ServerMessage::Welcome {
            version: 1,
            client_id,
            max_talk_ms: 60_000,
            ice_servers: Vec::new(),
        })
    }

    fn granted(channel: &str) -> UiEvent {
        server(ServerMessage::FloorGranted {
            channel: ch(channel),
            max_duration_ms: 60_000,
        })
    }

    #[test]
    fn the_tray_follows_talking_and_receiving() {
        let mut m = TrayModel::default();
        assert_eq!(m.state(), TrayState::Offline);
        assert_eq!(m.on_event(&welcome(7)), Some(TrayState::Idle));
        // Our own Floor Taken (the server echoes it) is not "receiving".
        assert_eq!(m.on_event(&taken("ops", 7, "Me")), None);
        assert_eq!(
            m.on_event(&granted("ops")),
            Some(TrayState::Talking("ops".into()))
        );
        // Someone else in another channel: talking still wins.
        assert_eq!(m.on_event(&taken("fire", 9, "Bo")), None);
        assert_eq!(
            m.on_event(&UiEvent::Engine(EngineEvent::Local(
                LocalEvent::TalkEnded { channel: ch("ops") }
            ))),
            Some(TrayState::Receiving {
                channel: "fire".into(),
                talker: "Bo".into()
            })
        );
        assert_eq!(
            m.on_event(&server(ServerMessage::FloorIdle {
                channel: ch("fire")
            })),
            Some(TrayState::Idle)
        );
        // A lost connection shows offline, whatever was going on.
        m.on_event(&taken("fire", 9, "Bo"));
        assert_eq!(
            m.on_event(&UiEvent::App(AppEvent::Connection {
                state: ConnectionState::Reconnecting,
                retry_in_ms: Some(500),
                reason: None,
            })),
            Some(TrayState::Offline)
        );
        // Events that say nothing about talking change nothing.
        m.on_event(&welcome(7));
        let level = squawk_engine::audio::controls::Level {
            peak: 0.5,
            rms_dbfs: -20.0,
        };
        assert_eq!(
            m.on_event(&UiEvent::Engine(EngineEvent::Local(LocalEvent::Level(
                level
            )))),
            None
        );
    }

    #[test]
    fn a_deny_or_revoke_on_another_channel_does_not_end_our_talk() {
        let mut m = TrayModel::default();
        m.on_event(&welcome(1));
        m.on_event(&granted("ops"));
        assert_eq!(
            m.on_event(&server(ServerMessage::FloorDeny {
                channel: ch("fire"),
                reason: DenyReason::Busy,
            })),
            None
        );
        assert_eq!(
            m.on_event(&server(ServerMessage::FloorRevoke {
                channel: ch("ops"),
                reason: RevokeReason::MaxDurationExceeded,
                by: None,
            })),
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
