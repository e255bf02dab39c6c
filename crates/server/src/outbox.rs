//! One connection's outbound queue, as a pure data structure: the hub puts
//! messages in, the connection's task takes them out in batches and writes
//! them to the WebSocket.
//!
//! Rules (see `docs/architecture.md`, "Slow clients"):
//! - control messages (floor, join, SDP, errors) are kept in order and
//!   never dropped;
//! - presence deltas ([`ServerMessage::MemberJoined`] and
//!   [`ServerMessage::MemberLeft`]) that wait unsent for the same channel are
//!   merged into one pending delta per channel, kept at the position of the
//!   first one; a member that joined and left before the client was told
//!   cancels out;
//! - a `joined` or `left` for a channel discards that channel's pending
//!   delta (`joined` carries the full list; after `left` it is moot);
//! - the estimated size of everything waiting is bounded: over the bound the
//!   outbox turns [`Outbox::overflowed`] and accepts nothing more, and the
//!   connection is closed with `too_slow`.

use std::collections::{HashMap, VecDeque};

use squawk_protocol::{ChannelName, ClientId, Member, ServerMessage};

/// Estimated JSON size of a presence entry (one member), bytes.
const MEMBER_BYTES: usize = 48;
/// Estimated JSON size of a message's fixed part, bytes.
const MESSAGE_BYTES: usize = 96;

enum Item {
    Message(ServerMessage),
    /// The pending delta of a channel, valid while its generation matches.
    Presence(ChannelName, u64),
}

#[derive(Default)]
struct Delta {
    generation: u64,
    joined: Vec<Member>,
    left: Vec<ClientId>,
}

impl Delta {
    fn len(&self) -> usize {
        self.joined.len() + self.left.len()
    }
}

/// Outbound queue of one connection. See the module docs.
pub(crate) struct Outbox {
    items: VecDeque<Item>,
    presence: HashMap<ChannelName, Delta>,
    next_generation: u64,
    bytes: usize,
    limit: usize,
    overflowed: bool,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued (or merged); the connection's task should be woken.
    Queued,
    /// The bound was passed now: close the connection (`too_slow`).
    Overflowed,
    /// The outbox had already overflowed; the message was discarded.
    Discarded,
}

fn estimate(msg: &ServerMessage) -> usize {
    MESSAGE_BYTES
        + match msg {
            ServerMessage::Offer { sdp } | ServerMessage::Answer { sdp } => sdp.len(),
            ServerMessage::Joined { members, .. } => members.len() * MEMBER_BYTES,
            ServerMessage::Channels { channels } => channels.len() * MEMBER_BYTES,
            ServerMessage::Error { message, .. } => message.len(),
            _ => 0,
        }
}

impl Outbox {
    /// An empty outbox holding at most about `limit` bytes of JSON.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            items: VecDeque::new(),
            presence: HashMap::new(),
            next_generation: 0,
            bytes: 0,
            limit,
            overflowed: false,
        }
    }

    /// Whether the bound was passed (the connection must be closed).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Estimated bytes waiting.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues `msg`, merging presence deltas. See the module docs.
    pub(crate) fn push(&mut self, msg: ServerMessage) -> Pushed {
        if self.overflowed {
            return Pushed::Discarded;
        }
        match msg {
            ServerMessage::MemberJoined { channel, members } => {
                let delta = self.delta(channel);
                let before = delta.len();
                for m in members {
                    if let Some(i) = delta.left.iter().position(|id| *id == m.id) {
                        // Left and came back before the client was told:
                        // the client still has it in its list.
                        delta.left.swap_remove(i);
                    } else {
                        delta.joined.push(m);
                    }
                }
                let after = delta.len();
                self.resize(before, after);
            }
            ServerMessage::MemberLeft { channel, ids } => {
                let delta = self.delta(channel);
                let before = delta.len();
                for id in ids {
                    if let Some(i) = delta.joined.iter().position(|m| m.id == id) {
                        // Joined and left before the client was told.
                        delta.joined.remove(i);
                    } else {
                        delta.left.push(id);
                    }
                }
                let after = delta.len();
                self.resize(before, after);
            }
            msg => {
                if let ServerMessage::Joined { channel, .. } | ServerMessage::Left { channel } =
                    &msg
                    && let Some(d) = self.presence.remove(channel)
                {
                    self.bytes = self.bytes.saturating_sub(d.len() * MEMBER_BYTES);
                }
                self.bytes += estimate(&msg);
                self.items.push_back(Item::Message(msg));
            }
        }
        if self.bytes > self.limit {
            self.overflowed = true;
            self.items.clear();
            self.presence.clear();
            self.bytes = 0;
            return Pushed::Overflowed;
        }
        Pushed::Queued
    }

    /// Accounts for a pending delta that went from `before` to `after` entries.
    fn resize(&mut self, before: usize, after: usize) {
        self.bytes = (self.bytes + after * MEMBER_BYTES).saturating_sub(before * MEMBER_BYTES);
    }

    fn delta(&mut self, channel: ChannelName) -> &mut Delta {
        let generation = &mut self.next_generation;
        let items = &mut self.items;
        let bytes = &mut self.bytes;
        self.presence.entry(channel.clone()).or_insert_with(|| {
            *generation += 1;
            *bytes += MESSAGE_BYTES;
            items.push_back(Item::Presence(channel, *generation));
            Delta {
                generation: *generation,
                ..Delta::default()
            }
        })
    }

    /// Takes everything waiting, in order, as messages to write (merged
    /// deltas become at most one `member_left` and one `member_joined` per
    /// channel). Empty when nothing waits.
    pub(crate) fn take(&mut self) -> Vec<ServerMessage> {
        let mut out = Vec::with_capacity(self.items.len());
        while let Some(item) = self.items.pop_front() {
            match item {
                Item::Message(m) => out.push(m),
                Item::Presence(channel, generation) => {
                    if self
                        .presence
                        .get(&channel)
                        .is_none_or(|d| d.generation != generation)
                    {
                        continue; // discarded by a later joined/left
                    }
                    let Some(d) = self.presence.remove(&channel) else {
                        continue;
                    };
                    if !d.left.is_empty() {
                        out.push(ServerMessage::MemberLeft {
                            channel: channel.clone(),
                            ids: d.left,
                        });
                    }
                    if !d.joined.is_empty() {
                        out.push(ServerMessage::MemberJoined {
                            channel,
                            members: d.joined,
                        });
                    }
                }
            }
        }
        self.bytes = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use squawk_protocol::{DenyReason, ServerMessage as S};

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).unwrap()
    }
    fn m(id: ClientId) -> Member {
        Member {
            id,
            name: format!("m{id}"),
        }
    }
    fn joined(c: &str, ids: &[ClientId]) -> S {
        S::MemberJoined {
            channel: ch(c),
            members: ids.iter().map(|i| m(*i)).collect(),
        }
    }
    fn left(c: &str, ids: &[ClientId]) -> S {
        S::MemberLeft {
            channel: ch(c),
            ids: ids.to_vec(),
        }
    }
    fn deny(c: &str) -> S {
        S::FloorDeny {
            channel: ch(c),
            reason: DenyReason::Busy,
        }
    }

    #[test]
    fn control_messages_keep_their_order_and_are_never_merged() {
        let mut o = Outbox::new(1 << 20);
        for c in ["a", "b", "a"] {
            assert_eq!(o.push(deny(c)), Pushed::Queued);
        }
        assert_eq!(o.take(), vec![deny("a"), deny("b"), deny("a")]);
        assert!(o.take().is_empty());
    }

    #[test]
    fn deltas_for_a_channel_merge_at_the_first_ones_place() {
        let mut o = Outbox::new(1 << 20);
        o.push(joined("a", &[1]));
        o.push(deny("a"));
        o.push(joined("a", &[2]));
        o.push(joined("b", &[3]));
        o.push(left("a", &[7]));
        assert_eq!(
            o.take(),
            vec![
                left("a", &[7]),
                joined("a", &[1, 2]),
                deny("a"),
                joined("b", &[3])
            ]
        );
    }

    #[test]
    fn join_then_leave_before_sending_cancels_out_and_leave_then_join_too() {
        let mut o = Outbox::new(1 << 20);
        o.push(joined("a", &[1, 2]));
        o.push(left("a", &[1]));
        assert_eq!(o.take(), vec![joined("a", &[2])]);
        o.push(left("a", &[2]));
        let one = o.bytes();
        o.push(joined("a", &[2]));
        assert!(o.bytes() < one, "the cancelled entries no longer count");
        assert!(
            o.take().is_empty(),
            "the client still has 2: nothing to say"
        );
    }

    #[test]
    fn joined_and_left_discard_the_channels_pending_delta() {
        let mut o = Outbox::new(1 << 20);
        o.push(joined("a", &[1]));
        let full = S::Joined {
            channel: ch("a"),
            mid: "0".into(),
            members: vec![m(1), m(9)],
        };
        o.push(full.clone());
        o.push(joined("a", &[2])); // after the full list: must follow it
        o.push(joined("b", &[3]));
        o.push(S::Left { channel: ch("b") });
        assert_eq!(
            o.take(),
            vec![full, joined("a", &[2]), S::Left { channel: ch("b") }]
        );
    }

    #[test]
    fn a_connection_that_does_not_read_overflows_once_and_then_discards() {
        let mut o = Outbox::new(4096);
        let mut overflowed = 0;
        for i in 0..1000 {
            match o.push(S::Offer {
                sdp: format!("{i:0200}"),
            }) {
                Pushed::Queued => {}
                Pushed::Overflowed => overflowed += 1,
                Pushed::Discarded => assert!(o.overflowed()),
            }
        }
        assert_eq!(overflowed, 1);
        assert!(o.overflowed());
        assert!(
            o.take().is_empty(),
            "nothing is written to a closed connection"
        );
    }

    #[test]
    fn a_storm_of_joins_stays_within_one_message_per_channel() {
        // 1,000 members join while the client is not reading: one merged
        // delta, bounded by the channel's size, not 1,000 messages.
        let mut o = Outbox::new(1 << 20);
        for i in 0..1000 {
            assert_eq!(o.push(joined("a", &[i])), Pushed::Queued);
        }
        let out = o.take();
        assert_eq!(out.len(), 1);
        let S::MemberJoined { members, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(members.len(), 1000);
    }
}
