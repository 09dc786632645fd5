//! Prometheus metrics and the health endpoint.
//!
//! Hand-rolled text exposition (a handful of counters and one histogram) so
//! the service does not pull in a metrics framework for five numbers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Latency bucket upper bounds, seconds. Callouts are on the connect path and
/// the server's auth timeout is typically 1-2 s, so resolution is in ms.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
pub struct Metrics {
    /// result label ("allow" / "deny" / "invalid") -> count.
    requests: Mutex<BTreeMap<&'static str, u64>>,
    /// reason label -> count, for deny and invalid.
    reasons: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// (application, result) -> count, for decisions taken once the token's
    /// application was known. A separate metric rather than an `app` label on
    /// `requests`, so existing queries on `requests` keep their meaning.
    app_requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (application, reason) -> count, for refusals of a known application.
    app_reasons: Mutex<BTreeMap<(String, &'static str), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    nats_connected: AtomicBool,
    jwks_fetch_ok: AtomicU64,
    jwks_fetch_error: AtomicU64,
    jwks_keys: AtomicU64,
    jwks_last_success_unix: AtomicU64,
    reload_ok: AtomicU64,
    reload_error: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let m = Metrics::default();
        {
            let mut r = m.requests.lock().unwrap();
            for l in ["allow", "deny", "invalid"] {
                r.insert(l, 0);
            }
        }
        Arc::new(m)
    }

    pub fn record(&self, result: &'static str, reason: Option<&'static str>, latency: Duration) {
        *self.requests.lock().unwrap().entry(result).or_default() += 1;
        if let Some(reason) = reason {
            *self
                .reasons
                .lock()
                .unwrap()
                .entry((result, reason))
                .or_default() += 1;
        }
        let secs = latency.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(latency.as_nanos() as u64, Ordering::Relaxed);
    }

    /// A decision about a token of application `app` (see [`Metrics::app_requests`]).
    pub fn record_app(&self, app: &str, result: &'static str, reason: Option<&'static str>) {
        *lock(&self.app_requests)
            .entry((app.to_string(), result))
            .or_default() += 1;
        if let Some(reason) = reason {
            *lock(&self.app_reasons)
                .entry((app.to_string(), reason))
                .or_default() += 1;
        }
    }

    /// Show every configured application's allow and deny counters from the
    /// start (at 0), so a rate over them exists before the first decision.
    /// Counters of an application a reload removed stay: counters never vanish.
    pub fn register_apps<'a>(&self, apps: impl IntoIterator<Item = &'a str>) {
        let mut m = lock(&self.app_requests);
        for app in apps {
            for result in ["allow", "deny"] {
                m.entry((app.to_string(), result)).or_default();
            }
        }
    }

    pub fn set_connected(&self, up: bool) {
        self.nats_connected.store(up, Ordering::Relaxed);
    }

    /// A JWKS fetch installed a new key set of `keys` keys.
    pub fn jwks_fetched(&self, keys: usize) {
        self.jwks_fetch_ok.fetch_add(1, Ordering::Relaxed);
        self.jwks_keys.store(keys as u64, Ordering::Relaxed);
        self.jwks_last_success_unix
            .store(crate::jwt::now_unix().max(0) as u64, Ordering::Relaxed);
    }

    /// A JWKS fetch failed (provider down, bad TLS, garbage); the old set stays.
    pub fn jwks_fetch_failed(&self) {
        self.jwks_fetch_error.fetch_add(1, Ordering::Relaxed);
    }

    /// A SIGHUP reload was applied (`true`) or refused (`false`).
    pub fn reloaded(&self, ok: bool) {
        let c = if ok {
            &self.reload_ok
        } else {
            &self.reload_error
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.nats_connected.load(Ordering::Relaxed)
    }

    /// Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        o.push_str("# HELP tribune_auth_requests_total Auth callout requests by result.\n");
        o.push_str("# TYPE tribune_auth_requests_total counter\n");
        for (k, v) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(o, "tribune_auth_requests_total{{result=\"{k}\"}} {v}");
        }
        o.push_str("# HELP tribune_auth_rejections_total Denied or invalid requests by reason.\n");
        o.push_str("# TYPE tribune_auth_rejections_total counter\n");
        for ((res, reason), v) in self.reasons.lock().unwrap().iter() {
            let _ = writeln!(
                o,
                "tribune_auth_rejections_total{{result=\"{res}\",reason=\"{reason}\"}} {v}"
            );
        }
        o.push_str("# HELP tribune_auth_app_requests_total Decisions on tokens of a known application, by application and result.\n");
        o.push_str("# TYPE tribune_auth_app_requests_total counter\n");
        for ((app, res), v) in lock(&self.app_requests).iter() {
            let _ = writeln!(
                o,
                "tribune_auth_app_requests_total{{app=\"{app}\",result=\"{res}\"}} {v}"
            );
        }
        o.push_str("# HELP tribune_auth_app_rejections_total Refusals of tokens of a known application, by application and reason.\n");
        o.push_str("# TYPE tribune_auth_app_rejections_total counter\n");
        for ((app, reason), v) in lock(&self.app_reasons).iter() {
            let _ = writeln!(
                o,
                "tribune_auth_app_rejections_total{{app=\"{app}\",reason=\"{reason}\"}} {v}"
            );
        }
        o.push_str("# HELP tribune_auth_request_duration_seconds Time to handle one request.\n");
        o.push_str("# TYPE tribune_auth_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "tribune_auth_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "tribune_auth_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "tribune_auth_request_duration_seconds_sum {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(o, "tribune_auth_request_duration_seconds_count {count}");
        o.push_str("# HELP tribune_auth_nats_connected 1 while connected to NATS.\n");
        o.push_str("# TYPE tribune_auth_nats_connected gauge\n");
        let _ = writeln!(
            o,
            "tribune_auth_nats_connected {}",
            u8::from(self.connected())
        );
        o.push_str("# HELP tribune_auth_jwks_fetches_total Fetches of the IdP's JWKS by result.\n");
        o.push_str("# TYPE tribune_auth_jwks_fetches_total counter\n");
        for (label, c) in [
            ("ok", &self.jwks_fetch_ok),
            ("error", &self.jwks_fetch_error),
        ] {
            let _ = writeln!(
                o,
                "tribune_auth_jwks_fetches_total{{result=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        o.push_str("# HELP tribune_auth_jwks_keys Keys in the current IdP key set.\n");
        o.push_str("# TYPE tribune_auth_jwks_keys gauge\n");
        let _ = writeln!(
            o,
            "tribune_auth_jwks_keys {}",
            self.jwks_keys.load(Ordering::Relaxed)
        );
        o.push_str("# HELP tribune_auth_jwks_last_success_timestamp_seconds Unix time of the last good JWKS fetch.\n");
        o.push_str("# TYPE tribune_auth_jwks_last_success_timestamp_seconds gauge\n");
        let _ = writeln!(
            o,
            "tribune_auth_jwks_last_success_timestamp_seconds {}",
            self.jwks_last_success_unix.load(Ordering::Relaxed)
        );
        o.push_str("# HELP tribune_auth_config_reloads_total SIGHUP reloads by result.\n");
        o.push_str("# TYPE tribune_auth_config_reloads_total counter\n");
        for (label, c) in [("ok", &self.reload_ok), ("error", &self.reload_error)] {
            let _ = writeln!(
                o,
                "tribune_auth_config_reloads_total{{result=\"{label}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        o
    }
}

/// The counters stay usable even if a thread panicked while holding a lock:
/// they are plain numbers, never left half-updated.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// 200 while connected to NATS and subscribed; 503 otherwise, so an
/// orchestrator does not route "ready" to an instance that cannot answer.
async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.connected() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "nats disconnected\n")
    }
}

pub fn router(m: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new();
        m.record("allow", None, Duration::from_micros(700));
        m.record("deny", Some("expired"), Duration::from_millis(30));
        let t = m.render();
        assert!(t.contains("tribune_auth_requests_total{result=\"allow\"} 1"));
        assert!(t.contains("tribune_auth_requests_total{result=\"invalid\"} 0"));
        assert!(t.contains("tribune_auth_rejections_total{result=\"deny\",reason=\"expired\"} 1"));
        assert!(t.contains("tribune_auth_request_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(t.contains("tribune_auth_request_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(t.contains("tribune_auth_request_duration_seconds_count 2"));
    }

    #[test]
    fn per_application_counters() {
        let m = Metrics::new();
        m.register_apps(["default", "partners"]);
        m.record_app("partners", "allow", None);
        m.record_app("partners", "deny", Some("bad_claim_value"));
        let t = m.render();
        assert!(t.contains("tribune_auth_app_requests_total{app=\"default\",result=\"allow\"} 0"));
        assert!(t.contains("tribune_auth_app_requests_total{app=\"default\",result=\"deny\"} 0"));
        assert!(t.contains("tribune_auth_app_requests_total{app=\"partners\",result=\"allow\"} 1"));
        assert!(t.contains("tribune_auth_app_requests_total{app=\"partners\",result=\"deny\"} 1"));
        assert!(t.contains(
            "tribune_auth_app_rejections_total{app=\"partners\",reason=\"bad_claim_value\"} 1"
        ));
        // Registering again (a reload) keeps the counts.
        m.register_apps(["partners"]);
        assert!(m
            .render()
            .contains("tribune_auth_app_requests_total{app=\"partners\",result=\"allow\"} 1"));
    }
}
