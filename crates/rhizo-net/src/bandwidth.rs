//! Bytes moved over the node's connections, reported as [`NetStats::bytes_received`] and
//! [`NetStats::bytes_sent`](crate::client::NetStats::bytes_sent): libp2p-metrics'
//! `BandwidthTransport` wraps the whole transport (TCP, QUIC, relayed circuits, and the memory
//! transport of the scale lab) and counts every byte read from and written to a connection's
//! streams, per protocol stack and direction, into a prometheus-client registry; this reads the
//! totals back out of it.
//!
//! ```text
//!  transport ─▶ BandwidthTransport (counts per stream) ─▶ Registry ─▶ totals() ─▶ NetStats
//! ```
//!
//! [`NetStats::bytes_received`]: crate::client::NetStats::bytes_received

use std::sync::OnceLock;

use libp2p::metrics::Registry;

/// The metric libp2p-metrics registers (prefix `libp2p`, name `bandwidth`, unit bytes, a
/// counter): one line per protocol stack and direction.
const BANDWIDTH_METRIC: &str = "libp2p_bandwidth_bytes_total{";

/// The registry of one node's bandwidth counters, set once the swarm is built.
#[derive(Debug, Default)]
pub(crate) struct BandwidthMeter(OnceLock<Registry>);

impl BandwidthMeter {
    /// Keeps `registry`, the one the swarm's transport counts into.
    pub(crate) fn set(&self, registry: Registry) {
        let _ = self.0.set(registry);
    }

    /// Bytes received and sent over all connections since start (0, 0 before the swarm is
    /// built).
    pub(crate) fn totals(&self) -> (u64, u64) {
        let Some(registry) = self.0.get() else {
            return (0, 0);
        };
        let mut text = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut text, registry).is_err() {
            return (0, 0);
        }
        totals_of(&text)
    }
}

/// Sums the bandwidth counter's lines of an OpenMetrics text by direction.
fn totals_of(text: &str) -> (u64, u64) {
    let (mut received, mut sent) = (0u64, 0u64);
    for line in text.lines().filter(|l| l.starts_with(BANDWIDTH_METRIC)) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        let labels = labels.to_ascii_lowercase();
        if labels.contains("direction=\"inbound\"") {
            received = received.saturating_add(value);
        } else if labels.contains("direction=\"outbound\"") {
            sent = sent.saturating_add(value);
        }
    }
    (received, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_protocol_stack_by_direction_and_skip_other_lines() {
        let text = "# HELP libp2p_bandwidth_bytes Bandwidth usage by direction and transport protocols.\n\
             # TYPE libp2p_bandwidth_bytes counter\n\
             # UNIT libp2p_bandwidth_bytes bytes\n\
             libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 100\n\
             libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 40\n\
             libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Inbound\"} 5\n\
             libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Sideways\"} 7\n\
             libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} garbage\n\
             other_total{direction=\"Inbound\"} 1000\n";
        assert_eq!(totals_of(text), (105, 40));
    }

    #[test]
    fn no_registry_reads_as_nothing_moved() {
        assert_eq!(BandwidthMeter::default().totals(), (0, 0));
    }
}
