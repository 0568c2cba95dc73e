//! `/metrics` in the Prometheus text format.
//!
//! Request counts and latency histograms are labelled by method, *route* (the matched route
//! pattern, e.g. `/v1/me`, never the raw URI, so ids and query strings cannot explode the
//! series or leak into them) and status. The gauges and counters that later features drive
//! (websocket connections, outbox depth, webhook outcomes) are registered here at zero, so
//! dashboards and alerts can be built before the features land.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub const PROVIDERS: &[&str] = &["paystack", "twilio", "sendgrid"];
pub const WEBHOOK_OUTCOMES: &[&str] = &["accepted", "duplicate", "bad_signature", "failed"];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("no other metrics recorder is installed");
            describe_and_register();
            handle
        })
        .clone()
}

fn describe_and_register() {
    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
    describe_counter!("http_requests_total", "HTTP requests answered, by method, route and status");
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "time from request to response head, by method, route and status"
    );
    describe_gauge!("careplane_websocket_connections", "open realtime websocket connections");
    describe_gauge!("careplane_outbox_depth", "outbox rows (SMS / email) waiting to be sent");
    describe_counter!("careplane_webhook_events_total", "provider webhooks received, by provider and outcome");
    describe_gauge!("careplane_rate_limiter_degraded", "1 while Redis is unreachable and limits are per instance");
    describe_counter!("careplane_rate_limited_total", "requests answered 429, by scope (ip, user)");
    describe_counter!("careplane_auth_rejections_total", "requests refused for their token, by reason");
    describe_counter!("careplane_jwks_fetches_total", "JWKS fetches, by outcome");
    gauge!("careplane_websocket_connections").set(0.0);
    gauge!("careplane_outbox_depth").set(0.0);
    for provider in PROVIDERS {
        for outcome in WEBHOOK_OUTCOMES {
            counter!("careplane_webhook_events_total", "provider" => *provider, "outcome" => *outcome).absolute(0);
        }
    }
}

/// Middleware: counts and times every request under its matched route.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
pub async fn render(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
