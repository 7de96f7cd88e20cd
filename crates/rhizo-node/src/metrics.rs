//! Prometheus text exposition of the node's counters.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

use crate::api::StatsResponse;

/// Renders the metrics in the Prometheus text format. A fresh registry per scrape keeps the
/// network counters owned by the event loop: nothing is shared or locked.
pub fn render(stats: &StatsResponse) -> String {
    let mut registry = Registry::with_prefix("rhizo");
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    };
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        registry.register(name, help, c);
    };
    gauge(
        &mut registry,
        "connected_peers",
        "Peers with an open connection",
        stats.connected_peers as u64,
    );
    gauge(
        &mut registry,
        "routing_table_peers",
        "Peers in the Kademlia routing table",
        stats.routing_table_peers as u64,
    );
    gauge(
        &mut registry,
        "peer_book_peers",
        "Peers remembered in the peer book",
        stats.peer_book_peers,
    );
    gauge(
        &mut registry,
        "uptime_seconds",
        "Seconds since the node started",
        stats.uptime_secs,
    );
    counter(
        &mut registry,
        "connections_established",
        "Connections established",
        stats.net.connections_established,
    );
    counter(
        &mut registry,
        "connections_closed",
        "Connections closed",
        stats.net.connections_closed,
    );
    counter(
        &mut registry,
        "inbound_connections",
        "Inbound connections accepted",
        stats.net.inbound_connections,
    );
    counter(
        &mut registry,
        "dial_failures",
        "Outgoing dials that failed",
        stats.net.dial_failures,
    );
    counter(
        &mut registry,
        "peer_discoveries",
        "Peer discovery events",
        stats.net.discoveries,
    );
    counter(
        &mut registry,
        "kad_queries",
        "Kademlia queries finished",
        stats.net.kad_queries,
    );
    counter(
        &mut registry,
        "kad_inbound_requests",
        "Kademlia requests answered",
        stats.net.kad_inbound_requests,
    );
    counter(
        &mut registry,
        "providers_stored",
        "Provider records stored or renewed for other peers",
        stats.net.providers_stored,
    );
    counter(
        &mut registry,
        "providers_refused",
        "Provider records refused (key size, or a bound reached)",
        stats.net.providers_refused,
    );
    gauge(
        &mut registry,
        "provider_keys_held",
        "Keys this node holds other peers' provider records for",
        stats.net.provider_keys_held,
    );
    let n = &stats.net;
    for (name, help, v) in [
        (
            "records_stored",
            "DHT records stored for other peers after validation",
            n.records_stored,
        ),
        (
            "records_rejected",
            "DHT records refused by the validator or the store's bounds",
            n.records_rejected,
        ),
        (
            "records_rate_limited",
            "DHT records refused unvalidated: sender over its PUT_VALUE rate",
            n.records_rate_limited,
        ),
        (
            "records_shed",
            "DHT records refused unvalidated: validations in flight at their bound",
            n.records_shed,
        ),
        (
            "events_shed",
            "Network events dropped: node channel and event loop backlog full",
            n.events_shed,
        ),
        (
            "inbound_requests_shed",
            "Inbound requests dropped unanswered: node channel and backlog full",
            n.inbound_requests_shed,
        ),
        (
            "events_dropped",
            "Best-effort network reports dropped: the node was behind",
            n.events_dropped,
        ),
        (
            "commands_shed",
            "Answers and bans not handed to the network: command channel full",
            n.commands_shed,
        ),
        (
            "inbound_refused_busy",
            "Inbound requests answered RATE_LIMITED: every handler busy",
            n.inbound_refused_busy,
        ),
    ] {
        counter(&mut registry, name, help, v);
    }
    gauge(
        &mut registry,
        "records_held",
        "DHT records this node keeps for other peers",
        n.records_held,
    );
    gauge(
        &mut registry,
        "event_backlog",
        "Network events waiting in the event loop for room in the node's channel",
        n.event_backlog,
    );
    let m = &stats.messaging;
    for (name, help, v) in [
        (
            "send_commits",
            "Transactions that committed grouped sends",
            m.send_commits,
        ),
        (
            "grouped_sends",
            "Texts queued through the group commit",
            m.grouped_sends,
        ),
        (
            "batches_sent",
            "Batch frames of envelopes sent",
            m.batches_sent,
        ),
        (
            "batched_envelopes_sent",
            "Envelopes sent in batch frames",
            m.batched_envelopes_sent,
        ),
        (
            "batches_received",
            "Batch frames of envelopes applied",
            m.batches_received,
        ),
        (
            "batched_envelopes_received",
            "Envelopes received in batch frames",
            m.batched_envelopes_received,
        ),
        (
            "conversation_cache_hits",
            "MLS conversations found loaded in memory",
            m.conversation_cache_hits,
        ),
        (
            "conversation_cache_misses",
            "MLS conversations loaded from the database",
            m.conversation_cache_misses,
        ),
        (
            "mailbox_commits",
            "Mailbox replica transactions committing stores for others",
            m.mailbox_commits,
        ),
        (
            "mailbox_stores",
            "Mailbox replica stores committed",
            m.mailbox_stores,
        ),
        (
            "mailbox_refused_busy",
            "Mailbox replica stores refused: writer queue full",
            m.mailbox_refused_busy,
        ),
    ] {
        counter(&mut registry, name, help, v);
    }
    counter(
        &mut registry,
        "api_requests",
        "Local API requests served",
        stats.api_requests,
    );
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        out = format!("# cannot encode metrics: {e}\n");
    }
    out
}
