//! Prometheus metrics through the `metrics` facade: requests by route, method and status,
//! request latency, batch sizes and queue depth per model (recorded by the batcher).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ServeError;

/// Latency histogram buckets, seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Batch size histogram buckets, requests.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use (the metrics facade has one
/// global recorder), with its upkeep running on the current tokio runtime.
pub fn prometheus() -> Result<PrometheusHandle, ServeError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let bad = |e: metrics_exporter_prometheus::BuildError| {
        ServeError::Config(format!("cannot set up the metrics: {e}"))
    };
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("profundo_http_request_duration_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .map_err(bad)?
        .set_buckets_for_metric(Matcher::Full("profundo_batch_size".into()), &BATCH_BUCKETS)
        .map_err(bad)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| ServeError::Config(format!("cannot install the metrics recorder: {e}")))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Counts every request by route, method and status, and times it by route.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("profundo_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("profundo_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}
