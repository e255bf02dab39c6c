//! Prometheus `/metrics`: the hub's gauges and floor outcomes, and each SFU
//! worker's packet counters, in the OpenMetrics text format
//! (`prometheus-client`). Built afresh from snapshots at each scrape (a
//! scrape every few seconds costs microseconds), so the hot paths keep
//! their plain counters.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `squawk_connections` | gauge | |
//! | `squawk_channels` | gauge | |
//! | `squawk_floor_grants_total` | counter | |
//! | `squawk_floor_denies_total` | counter | `reason` (Floor Deny reason, `docs/protocol.md`) |
//! | `squawk_floor_revokes_total` | counter | `reason` (Floor Revoke reason) |
//! | `squawk_turn_credentials_total` | counter | |
//! | `squawk_rtp_received_total` | counter | `worker` |
//! | `squawk_rtp_forwarded_total` | counter | `worker` |
//! | `squawk_rtp_dropped_total` | counter | `worker`, `reason`: `no_floor`, `send_buffer_full` |
//! | `squawk_rtp_held_forwarded_total` | counter | `worker` (sent before Floor Granted, held by the SFU, forwarded on the grant) |
//! | `squawk_stray_datagrams_total` | counter | `worker` |
//! | `squawk_worker_peers` | gauge | `worker` |
//! | `squawk_worker_failures_total` | counter | `worker` (its loop panicked and was restarted; its connections got `media_failed`) |

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;

use crate::{hub::HubMetrics, sfu::SfuStats};

type Labels = Vec<(String, String)>;

/// The content type of [`render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A reason as it is written on the wire (`busy`, `preempted`, …).
fn wire_name(reason: impl Serialize) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into())
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// One label family of counters, filled from `(labels, value)` pairs.
fn counters(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, u64)>,
) {
    let family = Family::<Labels, Counter>::default();
    for (labels, v) in values {
        family.get_or_create(&labels).inc_by(v);
    }
    registry.register(name, help, family);
}

fn label(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// The text of `/metrics`.
pub(crate) fn render(hub: &HubMetrics, workers: &[SfuStats], turn_issued: u64) -> String {
    let mut r = Registry::with_prefix("squawk");
    gauge(
        &mut r,
        "connections",
        "WebSocket connections that said hello",
        hub.connections,
    );
    gauge(&mut r, "channels", "Channels that exist", hub.channels);
    counter(
        &mut r,
        "floor_grants",
        "Floor Granted sent",
        hub.floor.granted,
    );
    counters(
        &mut r,
        "floor_denies",
        "Floor Deny sent, by reason",
        hub.floor
            .denied
            .iter()
            .map(|(reason, n)| (label(&[("reason", wire_name(reason))]), *n)),
    );
    counters(
        &mut r,
        "floor_revokes",
        "Floor Revoke sent, by reason",
        hub.floor
            .revoked
            .iter()
            .map(|(reason, n)| (label(&[("reason", wire_name(reason))]), *n)),
    );
    counter(
        &mut r,
        "turn_credentials",
        "TURN credentials issued in welcomes",
        turn_issued,
    );
    let per = |f: fn(&SfuStats) -> u64| {
        workers
            .iter()
            .enumerate()
            .map(move |(i, w)| (label(&[("worker", i.to_string())]), f(w)))
    };
    counters(
        &mut r,
        "rtp_received",
        "RTP packets received from clients",
        per(|w| w.rtp_in),
    );
    counters(
        &mut r,
        "rtp_forwarded",
        "RTP packets sent to listeners",
        per(|w| w.rtp_out),
    );
    counters(
        &mut r,
        "rtp_dropped",
        "RTP packets dropped, by reason",
        workers.iter().enumerate().flat_map(|(i, w)| {
            [
                (
                    label(&[("worker", i.to_string()), ("reason", "no_floor".into())]),
                    w.dropped_no_floor,
                ),
                (
                    label(&[
                        ("worker", i.to_string()),
                        ("reason", "send_buffer_full".into()),
                    ]),
                    w.send_dropped,
                ),
                (
                    label(&[
                        ("worker", i.to_string()),
                        ("reason", "malformed_red".into()),
                    ]),
                    w.red_malformed,
                ),
                (
                    label(&[("worker", i.to_string()), ("reason", "padding".into())]),
                    w.padding_dropped,
                ),
            ]
        }),
    );
    counters(
        &mut r,
        "rtp_held_forwarded",
        "RTP packets sent before Floor Granted, held by the SFU and forwarded on the grant",
        per(|w| w.held_forwarded),
    );
    counters(
        &mut r,
        "rtp_red_recovered",
        "Uplink RTP packets lost before the SFU and recovered from RED (RFC 2198)",
        per(|w| w.red_recovered),
    );
    counters(
        &mut r,
        "stray_datagrams",
        "UDP datagrams that were not for a known peer",
        per(|w| w.stray_datagrams),
    );
    counters(
        &mut r,
        "worker_failures",
        "SFU worker loops that panicked and were restarted (their connections were closed)",
        per(|w| w.failures),
    );
    let peers = Family::<Labels, Gauge>::default();
    for (i, w) in workers.iter().enumerate() {
        peers
            .get_or_create(&label(&[("worker", i.to_string())]))
            .set(i64::try_from(w.peers).unwrap_or(i64::MAX));
    }
    r.register("worker_peers", "WebRTC peers on each SFU worker", peers);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &r);
    text
}

#[cfg(test)]
mod tests {
    use squawk_protocol::{DenyReason, RevokeReason};

    use super::*;

    #[test]
    fn the_text_carries_every_gauge_counter_and_label() {
        let mut hub = HubMetrics {
            connections: 3,
            channels: 2,
            ..HubMetrics::default()
        };
        hub.floor.granted = 5;
        hub.floor.denied.insert(DenyReason::Busy, 4);
        hub.floor.revoked.insert(RevokeReason::Preempted, 1);
        let w0 = SfuStats {
            rtp_in: 100,
            rtp_out: 1400,
            dropped_no_floor: 7,
            red_recovered: 3,
            peers: 2,
            ..SfuStats::default()
        };
        let text = render(&hub, &[w0, SfuStats::default()], 9);
        for line in [
            "squawk_connections 3",
            "squawk_channels 2",
            "squawk_floor_grants_total 5",
            "squawk_turn_credentials_total 9",
            "squawk_floor_denies_total{reason=\"busy\"} 4",
            "squawk_floor_revokes_total{reason=\"preempted\"} 1",
            "squawk_rtp_forwarded_total{worker=\"0\"} 1400",
            "squawk_rtp_forwarded_total{worker=\"1\"} 0",
            "squawk_rtp_dropped_total{worker=\"0\",reason=\"no_floor\"} 7",
            "squawk_rtp_red_recovered_total{worker=\"0\"} 3",
            "squawk_worker_peers{worker=\"0\"} 2",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
}
