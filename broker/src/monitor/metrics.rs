//! `/metrics`: the same counters in the Prometheus text exposition format
//! (version 0.0.4), so the broker can be scraped without an exporter.
//! nats-server has no such endpoint; names carry a `tribune_` prefix and
//! base units (seconds, bytes).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;

use super::{accounts, procstat, stat_key, text_response, varz, Monitor};
use crate::server::NATS_COMPAT_VERSION;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Escape a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escape `# HELP` text: backslash and line feed.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus parses it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Builds an exposition, one metric family at a time.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// A family with samples `(labels, value)`.
    pub fn family(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: &[(&[(&str, &str)], f64)],
    ) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.out.push_str(name);
            if !labels.is_empty() {
                self.out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
                }
                self.out.push('}');
            }
            let _ = writeln!(self.out, " {}", format_value(*value));
        }
    }

    /// A family whose samples carry owned label values (per stream,
    /// per replica, ...).
    pub fn labelled(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        rows: &[(Vec<(&str, &str)>, f64)],
    ) {
        let samples: Vec<(&[(&str, &str)], f64)> =
            rows.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        self.family(name, kind, help, &samples);
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help, &[(&[], value)]);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn render(m: &Monitor) -> String {
    use Kind::{Counter, Gauge};
    let s = &m.server;
    let opts = s.opts();
    let st = &s.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let start = s
        .start_time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let uptime = SystemTime::now()
        .duration_since(s.start_time)
        .unwrap_or_default()
        .as_secs_f64();
    let clients = s.clients();
    let pending: usize = clients.iter().map(|c| c.pending_bytes()).sum();
    let accs = accounts(s);
    let (mut subs, mut inserts, mut removes, mut matches) = (0u64, 0u64, 0u64, 0u64);
    for a in &accs {
        let x = a.sublist.stats();
        subs += x.num_subs;
        inserts += x.num_inserts;
        removes += x.num_removes;
        matches += x.num_matches;
    }

    let mut e = Exposition::default();
    e.family(
        "tribune_info",
        Gauge,
        "Server identity; the value is always 1.",
        &[(
            &[
                ("server_id", s.id.as_str()),
                ("server_name", s.name.as_str()),
                ("version", crate::VERSION),
                ("nats_compat_version", NATS_COMPAT_VERSION),
            ],
            1.0,
        )],
    );
    e.single(
        "tribune_start_time_seconds",
        Gauge,
        "Start time of the server since the Unix epoch, in seconds.",
        start,
    );
    e.single(
        "tribune_uptime_seconds",
        Gauge,
        "Time since the server started, in seconds.",
        uptime,
    );
    e.single(
        "tribune_lame_duck",
        Gauge,
        "1 while the server is in lame-duck mode, else 0.",
        if s.is_lame_duck() { 1.0 } else { 0.0 },
    );
    e.single(
        "tribune_connections",
        Gauge,
        "Client connections currently open.",
        clients.len() as f64,
    );
    e.single(
        "tribune_connections_total",
        Counter,
        "Client connections accepted since start.",
        load(&st.total_connections),
    );
    e.single(
        "tribune_websocket_connections",
        Gauge,
        "Client connections over WebSocket currently open (part of tribune_connections).",
        clients
            .iter()
            .filter(|c| c.client_type == crate::client::ClientType::Websocket)
            .count() as f64,
    );
    e.single(
        "tribune_websocket_connections_total",
        Counter,
        "Client connections over WebSocket accepted since start (part of tribune_connections_total).",
        load(&st.total_websocket_connections),
    );
    e.single(
        "tribune_max_connections",
        Gauge,
        "Maximum number of client connections allowed.",
        opts.max_connections as f64,
    );
    e.single(
        "tribune_subscriptions",
        Gauge,
        "Subscriptions currently registered.",
        subs as f64,
    );
    e.single(
        "tribune_routes",
        Gauge,
        "Cluster routes currently connected (one per peer, as /varz counts them).",
        s.routes.num_peers() as f64,
    );
    e.single(
        "tribune_messages_received_total",
        Counter,
        "Messages received from clients.",
        load(&st.in_msgs),
    );
    e.single(
        "tribune_messages_sent_total",
        Counter,
        "Messages delivered to clients.",
        load(&st.out_msgs),
    );
    e.single(
        "tribune_bytes_received_total",
        Counter,
        "Payload bytes received from clients.",
        load(&st.in_bytes),
    );
    e.single(
        "tribune_bytes_sent_total",
        Counter,
        "Payload bytes delivered to clients.",
        load(&st.out_bytes),
    );
    e.single(
        "tribune_slow_consumers_total",
        Counter,
        "Clients disconnected for being slow consumers.",
        load(&st.slow_consumers),
    );
    e.single(
        "tribune_stale_connections",
        Gauge,
        "Stale connections among the recently closed connections remembered for /connz.",
        varz::stale_connections(m) as f64,
    );
    e.single(
        "tribune_auth_errors_total",
        Counter,
        "Failed client authentications.",
        load(&st.auth_errors),
    );
    e.single(
        "tribune_pending_bytes",
        Gauge,
        "Bytes queued for delivery to clients, not yet written.",
        pending as f64,
    );
    e.single(
        "tribune_max_payload_bytes",
        Gauge,
        "Maximum message payload size allowed.",
        opts.max_payload as f64,
    );
    e.single(
        "tribune_max_pending_bytes",
        Gauge,
        "Maximum bytes queued per client before it is a slow consumer.",
        opts.max_pending as f64,
    );
    e.single(
        "tribune_sublist_inserts_total",
        Counter,
        "Subscriptions added to the subscription index.",
        inserts as f64,
    );
    e.single(
        "tribune_sublist_removes_total",
        Counter,
        "Subscriptions removed from the subscription index.",
        removes as f64,
    );
    e.single(
        "tribune_sublist_matches_total",
        Counter,
        "Subject lookups in the subscription index (per-connection cache misses).",
        matches as f64,
    );
    e.single(
        "tribune_resident_memory_bytes",
        Gauge,
        "Resident memory size, in bytes.",
        procstat::rss_bytes() as f64,
    );
    e.single(
        "tribune_cpu_seconds_total",
        Counter,
        "User and system CPU time used by the process, in seconds.",
        procstat::cpu_seconds(),
    );
    if let Some((total, available)) = procstat::system_memory() {
        e.single(
            "tribune_system_memory_bytes",
            Gauge,
            "The host's memory.",
            total as f64,
        );
        e.single(
            "tribune_system_memory_available_bytes",
            Gauge,
            "The host's memory still available to new work.",
            available as f64,
        );
    }
    e.single(
        "tribune_cpu_cores",
        Gauge,
        "CPU cores available to the process.",
        varz::cores() as f64,
    );
    e.single(
        "tribune_worker_threads",
        Gauge,
        "Runtime worker threads.",
        varz::worker_threads() as f64,
    );
    let reqs = m.req_stats();
    let samples: Vec<(Vec<(&str, &str)>, f64)> = reqs
        .iter()
        .map(|(path, n)| (vec![("path", *path)], *n as f64))
        .collect();
    e.labelled(
        "tribune_http_requests_total",
        Counter,
        "Monitoring HTTP requests, by endpoint.",
        &samples,
    );
    super::jsz::metrics(m, &mut e);
    e.finish()
}

pub(super) fn handle(m: &Monitor) -> Response {
    m.count(stat_key::METRICS);
    text_response(StatusCode::OK, CONTENT_TYPE, render(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn values_format_for_prometheus() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn exposition_layout() {
        let mut e = Exposition::default();
        e.single("x_total", Kind::Counter, "Things.", 3.0);
        e.family(
            "y",
            Kind::Gauge,
            "Ys.",
            &[(&[("a", "1"), ("b", "q\"")], 0.5)],
        );
        assert_eq!(e.finish(), "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n# HELP y Ys.\n# TYPE y gauge\ny{a=\"1\",b=\"q\\\"\"} 0.5\n");
    }

    #[test]
    fn full_render_has_help_and_type_for_every_family() {
        let m = Monitor::new(crate::server::Server::new(Default::default()));
        let text = render(&m);
        let mut families = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families += 1;
                assert!(
                    rest.ends_with(" counter") || rest.ends_with(" gauge"),
                    "{line}"
                );
            } else if !line.starts_with("# HELP ") {
                let (name, value) = line.rsplit_once(' ').expect(line);
                assert!(name.starts_with("tribune_"), "{line}");
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(families > 20);
        assert!(text.contains("tribune_info{server_id=\""));
    }
}
