//! Prometheus text exposition of the node's counters.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter as PromCounter, gauge::Gauge as PromGauge},
    registry::Registry,
};

use crate::api::StatsResponse;

/// A metric's kind.
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}
use Kind::{Counter, Gauge};

/// One metric: kind, name, help text, value.
type Metric = (Kind, &'static str, &'static str, u64);

/// Renders the metrics in the Prometheus text format. A fresh registry per scrape keeps the
/// network counters owned by the event loop: nothing is shared or locked.
pub fn render(stats: &StatsResponse) -> String {
    let mut registry = Registry::with_prefix("rhizo");
    let metrics = node_metrics(stats)
        .into_iter()
        .chain(net_metrics(&stats.net))
        .chain(record_metrics(&stats.net))
        .chain(messaging_metrics(&stats.messaging))
        .chain([(
            Counter,
            "api_requests",
            "Local API requests served",
            stats.api_requests,
        )]);
    for (kind, name, help, v) in metrics {
        match kind {
            Gauge => {
                let g: PromGauge = PromGauge::default();
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
                registry.register(name, help, g);
            }
            Counter => {
                let c: PromCounter = PromCounter::default();
                c.inc_by(v);
                registry.register(name, help, c);
            }
        }
    }
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        out = format!("# cannot encode metrics: {e}\n");
    }
    out
}

/// The node's own gauges.
fn node_metrics(stats: &StatsResponse) -> Vec<Metric> {
    vec![
        (
            Gauge,
            "connected_peers",
            "Peers with an open connection",
            stats.connected_peers as u64,
        ),
        (
            Gauge,
            "routing_table_peers",
            "Peers in the Kademlia routing table",
            stats.routing_table_peers as u64,
        ),
        (
            Gauge,
            "peer_book_peers",
            "Peers remembered in the peer book",
            stats.peer_book_peers,
        ),
        (
            Gauge,
            "uptime_seconds",
            "Seconds since the node started",
            stats.uptime_secs,
        ),
    ]
}

/// The network's connection, discovery and provider counters.
fn net_metrics(n: &rhizo_net::NetStats) -> Vec<Metric> {
    vec![
        (
            Counter,
            "connections_established",
            "Connections established",
            n.connections_established,
        ),
        (
            Counter,
            "bytes_received",
            "Bytes received over all connections",
            n.bytes_received,
        ),
        (
            Counter,
            "bytes_sent",
            "Bytes sent over all connections",
            n.bytes_sent,
        ),
        (
            Counter,
            "connections_closed",
            "Connections closed",
            n.connections_closed,
        ),
        (
            Counter,
            "inbound_connections",
            "Inbound connections accepted",
            n.inbound_connections,
        ),
        (
            Counter,
            "dial_failures",
            "Outgoing dials that failed",
            n.dial_failures,
        ),
        (
            Counter,
            "peer_discoveries",
            "Peer discovery events",
            n.discoveries,
        ),
        (
            Counter,
            "kad_queries",
            "Kademlia queries finished",
            n.kad_queries,
        ),
        (
            Counter,
            "kad_inbound_requests",
            "Kademlia requests answered",
            n.kad_inbound_requests,
        ),
        (
            Counter,
            "providers_stored",
            "Provider records stored or renewed for other peers",
            n.providers_stored,
        ),
        (
            Counter,
            "providers_refused",
            "Provider records refused (key size, or a bound reached)",
            n.providers_refused,
        ),
        (
            Gauge,
            "provider_keys_held",
            "Keys this node holds other peers' provider records for",
            n.provider_keys_held,
        ),
    ]
}

/// The network's counters and gauges of DHT records, shedding and backlog.
fn record_metrics(n: &rhizo_net::NetStats) -> Vec<Metric> {
    vec![
        (
            Counter,
            "records_stored",
            "DHT records stored for other peers after validation",
            n.records_stored,
        ),
        (
            Counter,
            "records_rejected",
            "DHT records refused by the validator or the store's bounds",
            n.records_rejected,
        ),
        (
            Counter,
            "records_rate_limited",
            "DHT records refused unvalidated: sender over its PUT_VALUE rate",
            n.records_rate_limited,
        ),
        (
            Counter,
            "records_shed",
            "DHT records refused unvalidated: validations in flight at their bound",
            n.records_shed,
        ),
        (
            Counter,
            "events_shed",
            "Network events dropped: node channel and event loop backlog full",
            n.events_shed,
        ),
        (
            Counter,
            "inbound_requests_shed",
            "Inbound requests dropped unanswered: node channel and backlog full",
            n.inbound_requests_shed,
        ),
        (
            Counter,
            "events_dropped",
            "Best-effort network reports dropped: the node was behind",
            n.events_dropped,
        ),
        (
            Counter,
            "commands_shed",
            "Answers and bans not handed to the network: command channel full",
            n.commands_shed,
        ),
        (
            Counter,
            "inbound_refused_busy",
            "Inbound requests answered RATE_LIMITED: every handler busy",
            n.inbound_refused_busy,
        ),
        (
            Gauge,
            "records_held",
            "DHT records this node keeps for other peers",
            n.records_held,
        ),
        (
            Gauge,
            "event_backlog",
            "Network events waiting in the event loop for room in the node's channel",
            n.event_backlog,
        ),
    ]
}

/// Messaging's and the mailbox replica's counters.
fn messaging_metrics(m: &crate::messaging::MessagingStats) -> Vec<Metric> {
    vec![
        (
            Counter,
            "send_commits",
            "Transactions that committed grouped sends",
            m.send_commits,
        ),
        (
            Counter,
            "grouped_sends",
            "Texts queued through the group commit",
            m.grouped_sends,
        ),
        (
            Counter,
            "batches_sent",
            "Batch frames of envelopes sent",
            m.batches_sent,
        ),
        (
            Counter,
            "batched_envelopes_sent",
            "Envelopes sent in batch frames",
            m.batched_envelopes_sent,
        ),
        (
            Counter,
            "batches_received",
            "Batch frames of envelopes applied",
            m.batches_received,
        ),
        (
            Counter,
            "batched_envelopes_received",
            "Envelopes received in batch frames",
            m.batched_envelopes_received,
        ),
        (
            Counter,
            "conversation_cache_hits",
            "MLS conversations found loaded in memory",
            m.conversation_cache_hits,
        ),
        (
            Counter,
            "conversation_cache_misses",
            "MLS conversations loaded from the database",
            m.conversation_cache_misses,
        ),
        (
            Counter,
            "mailbox_commits",
            "Mailbox replica transactions committing stores for others",
            m.mailbox_commits,
        ),
        (
            Counter,
            "mailbox_stores",
            "Mailbox replica stores committed",
            m.mailbox_stores,
        ),
        (
            Counter,
            "mailbox_refused_busy",
            "Mailbox replica stores refused: too many waiting for the database",
            m.mailbox_refused_busy,
        ),
    ]
}
