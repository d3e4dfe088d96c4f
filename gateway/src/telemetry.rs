//! Metrics: one Prometheus recorder per process, with latency buckets fine
//! enough for sub-millisecond reads.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::router::Route;

/// Latency buckets in seconds: 50 µs to 5 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// The process's recorder handle, installed on first use. Tests start many
/// gateways in one process; they share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("buckets are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// Status codes the gateway answers, each with its own pre-registered
/// counter; anything else is counted under `other`.
const STATUSES: [(u16, &str); 17] = [
    (200, "200"),
    (201, "201"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (408, "408"),
    (413, "413"),
    (409, "409"),
    (415, "415"),
    (422, "422"),
    (429, "429"),
    (500, "500"),
    (503, "503"),
    (0, "other"),
];

/// Request counters by (route, status) and latency histograms by route,
/// registered once at start so that recording on the request path is an
/// atomic add, with no label formatting or map lookup.
pub struct RouteMetrics {
    requests: Vec<[metrics::Counter; STATUSES.len()]>,
    latency: Vec<metrics::Histogram>,
}

impl RouteMetrics {
    /// Registers the handles for every route.
    pub fn new() -> Self {
        let requests = Route::ALL
            .iter()
            .map(|route| {
                STATUSES.map(|(_, status)| {
                    metrics::counter!("standings_http_requests_total", "route" => route.label(), "status" => status)
                })
            })
            .collect();
        let latency = Route::ALL
            .iter()
            .map(|route| {
                metrics::histogram!("standings_http_request_duration_seconds", "route" => route.label())
            })
            .collect();
        Self { requests, latency }
    }

    /// Counts and times one request to `route`.
    pub fn record(&self, route: Route, status: http::StatusCode, elapsed: std::time::Duration) {
        let code = status.as_u16();
        let slot = STATUSES
            .iter()
            .position(|&(c, _)| c == code)
            .unwrap_or(STATUSES.len() - 1);
        if let (Some(counters), Some(histogram)) = (
            self.requests.get(route.index()),
            self.latency.get(route.index()),
        ) {
            counters[slot].increment(1);
            histogram.record(elapsed.as_secs_f64());
        }
    }
}

impl Default for RouteMetrics {
    fn default() -> Self {
        Self::new()
    }
}
