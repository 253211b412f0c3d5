//! Monitoring: the server's figures as Prometheus metrics. This module reads
//! the server's own counters ([`Counters`], [`ErrorCounts`], [`ReplyTimes`],
//! all kept by the server) *at scrape time* through a
//! [`prometheus_client`] collector, so a scrape costs the chat path nothing
//! and nothing is counted twice. The server knows nothing of this module.
//!
//! Output is the Prometheus text format 0.0.4 (what `promtool check metrics`
//! reads), or OpenMetrics 1.0 when the scraper's `Accept` asks for it, as
//! Prometheus itself does. The HTTP endpoint that serves it is in `http`.
//!
//! [`Counters`]: crate::server::Counters

mod http;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::cluster::LinkState;
use crate::server::{ClusterView, Monitor};

pub use self::http::{MAX_INFLIGHT, MAX_REQUEST, MetricsServer, REQUEST_TIMEOUT, WRITE_TIMEOUT};
/// The server's figures, at the path they had when they lived here.
pub use crate::server::{ErrorCounts, ErrorKind, HistogramSnapshot, ReplyTimes};

/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// Picks the format from a request's `Accept` header: OpenMetrics when
    /// the scraper lists it (Prometheus does, first), else Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a)
                if a.to_ascii_lowercase()
                    .contains("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Reads a running server's figures on each scrape.
struct ServerCollector {
    monitor: Monitor,
    /// Unix time the server started, fixed once so that it does not jitter
    /// from scrape to scrape.
    start_time: f64,
}

impl fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCollector")
            .field("start_time", &self.start_time)
            .finish()
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn gauge<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: N) -> fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ServerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.monitor;
        let c = m.counters();
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut enc,
            "chatmon_clients_connected",
            "Connections being served now (plain and chat).",
            m.active_clients() as i64,
        )?;
        gauge(
            &mut enc,
            "chatmon_chat_clients",
            "Chat sessions in the room now.",
            m.chat_clients() as i64,
        )?;
        gauge(
            &mut enc,
            "chatmon_event_subscribers",
            "Chat clients subscribed to the server's event stream now.",
            m.subscribers() as i64,
        )?;
        gauge(
            &mut enc,
            "chatmon_start_time_seconds",
            "Start time of the server since the Unix epoch, in seconds.",
            self.start_time,
        )?;
        let counters: [(&str, &str, Option<&Unit>, u64); 9] = [
            (
                "chatmon_connections_accepted",
                "Connections accepted and served.",
                None,
                ld(&c.accepted),
            ),
            (
                "chatmon_connections_refused",
                "Connections refused because the server was full.",
                None,
                ld(&c.refused),
            ),
            (
                "chatmon_messages_received",
                "Messages received (plain lines and chat messages).",
                None,
                c.traffic.messages_received(),
            ),
            (
                "chatmon_messages_replied",
                "Replies written to the sender of a message.",
                None,
                c.traffic.replies_sent(),
            ),
            (
                "chatmon_messages_relayed",
                "Lines queued to other chat clients (messages and room notices).",
                None,
                ld(&c.relayed),
            ),
            (
                "chatmon_received",
                "Bytes read from clients.",
                Some(&Unit::Bytes),
                c.traffic.bytes_in(),
            ),
            (
                "chatmon_sent",
                "Bytes written to clients.",
                Some(&Unit::Bytes),
                c.traffic.bytes_out(),
            ),
            (
                "chatmon_events_dropped",
                "Event-stream lines dropped from slow subscribers' outbound queues (oldest first).",
                None,
                ld(&c.events_dropped),
            ),
            (
                "chatmon_slow_consumer_disconnects",
                "Chat clients disconnected because their outbound queue was full.",
                None,
                ld(&c.slow_disconnects),
            ),
        ];
        for (name, help, unit, v) in counters {
            counter(&mut enc, name, help, unit, v)?;
        }
        {
            let cc = ConstCounter::new(0u64);
            let mut me = enc.encode_descriptor(
                "chatmon_errors",
                "Errors counted by the server, by kind.",
                None,
                cc.metric_type(),
            )?;
            for kind in ErrorKind::ALL {
                let v = ConstCounter::new(c.errors_by_kind.get(kind));
                v.encode(me.encode_family(&[("kind", kind.label())])?)?;
            }
        }
        {
            let cc = ConstCounter::new(0u64);
            let mut me = enc.encode_descriptor(
                "chatmon_connections_shed",
                "Connections refused or closed so that slow or greedy peers cannot hold every slot, by reason.",
                None,
                cc.metric_type(),
            )?;
            for kind in ErrorKind::ALL {
                if let Some(reason) = kind.shed_reason() {
                    let v = ConstCounter::new(c.errors_by_kind.get(kind));
                    v.encode(me.encode_family(&[("reason", reason)])?)?;
                }
            }
        }
        let h = c.traffic.reply_times();
        {
            let mut me = enc.encode_descriptor(
                "chatmon_reply_duration",
                "Server time from handling a message to having written its reply.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            me.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum_secs, h.count, &h.buckets, None,
            )?;
        }
        match m.cluster() {
            Some(cv) => encode_cluster(&mut enc, &cv),
            None => Ok(()),
        }
    }
}

/// The `serve --cluster` figures; absent without a cluster.
fn encode_cluster(enc: &mut DescriptorEncoder, cv: &ClusterView) -> fmt::Result {
    gauge(
        enc,
        "chatmon_cluster_link_up",
        "1 while the link to NATS is up, 0 while it is down or not yet made.",
        i64::from(cv.link == LinkState::Up),
    )?;
    gauge(
        enc,
        "chatmon_cluster_nodes",
        "Other nodes of the cluster heard from now.",
        cv.nodes as i64,
    )?;
    gauge(
        enc,
        "chatmon_cluster_remote_users",
        "Users in the room on other nodes now.",
        cv.remote_users as i64,
    )?;
    let s = &cv.stats;
    let counters: [(&str, &str, u64); 4] = [
        (
            "chatmon_cluster_published",
            "Room events this node handed to NATS.",
            s.published,
        ),
        (
            "chatmon_cluster_dropped",
            "Room events this node could not hand to NATS (queue full or link down).",
            s.dropped,
        ),
        (
            "chatmon_cluster_received",
            "Room events received from other nodes.",
            s.received,
        ),
        (
            "chatmon_cluster_missed",
            "Room events other nodes sent that never arrived here (sequence gaps).",
            s.missed,
        ),
    ];
    for (name, help, v) in counters {
        counter(enc, name, help, None, v)?;
    }
    let h = &cv.relay_delay;
    let mut me = enc.encode_descriptor(
        "chatmon_cluster_relay_delay",
        "Cross-node relay delay of chat messages: this node's clock at receipt less the sender node's at publish.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    me.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum_secs, h.count, &h.buckets, None,
    )
}

/// A registry holding the server's metrics, for [`render`] and the endpoint.
pub fn registry(monitor: Monitor) -> Registry {
    let uptime = monitor.uptime();
    let start_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.saturating_sub(uptime).as_secs_f64())
        .unwrap_or(0.0);
    let mut r = Registry::default();
    r.register_collector(Box::new(ServerCollector {
        monitor,
        start_time,
    }));
    r
}

/// Encodes a registry in the given format.
pub fn render(registry: &Registry, format: Format) -> String {
    let mut out = String::with_capacity(4096);
    let r = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
    };
    // Writing to a String cannot fail, and our collector only fails when the
    // writer does; an empty page is still a valid (if useless) answer.
    if r.is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_format() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
    }
}
