//! `/metrics` in the Prometheus text format.
//!
//! Request counts and latency histograms are labelled by method, *route* (the matched route
//! pattern, e.g. `/v1/me`, never the raw URI, so ids and query strings cannot explode the
//! series or leak into them) and status. Every other series measures something the companion
//! does or sees; `careplane_outbox_depth` is read from the database at each scrape and left out
//! of the page when the database does not answer, rather than reported as a number it is not.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
                .expect("non-empty buckets")
                .set_buckets_for_metric(Matcher::Full("careplane_realtime_commit_to_send_seconds".into()), LATENCY_BUCKETS)
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("no other metrics recorder is installed");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("http_requests_total", "HTTP requests answered, by method, route and status");
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "time from request to response head, by method, route and status"
    );
    describe_gauge!("careplane_rate_limiter_degraded", "1 while Redis is unreachable and limits are per instance");
    describe_counter!("careplane_rate_limited_total", "requests answered 429, by scope (ip, user)");
    describe_counter!("careplane_auth_rejections_total", "requests refused for their token, by reason");
    describe_counter!("careplane_jwks_fetches_total", "JWKS fetches, by outcome");
    describe_counter!("careplane_paystack_webhooks_total", "Paystack webhooks received, by outcome (stored, duplicate, bad_signature, source_refused)");
    describe_counter!("careplane_paystack_requests_total", "calls to Paystack, by operation and outcome");
    describe_counter!("careplane_webhook_inbox_processed_total", "inbox rows worked on, by provider and outcome (applied, retry, dead)");
    describe_counter!("careplane_payments_settled_total", "payments decided, by outcome");
    describe_counter!("careplane_payment_refunds_total", "refunds, by outcome (submitted, processed)");
    describe_counter!("careplane_payment_reconciliations_total", "payments verified by the reconciliation job, by resulting status");
    describe_histogram!(
        "careplane_payment_webhook_to_ledger_seconds",
        Unit::Seconds,
        "from storing a charge.success webhook to its ledger posting committed"
    );
    describe_counter!(
        "careplane_notifications_total",
        "outbox messages handled, by channel and outcome (sent, retry, dead, skipped, deferred)"
    );
    describe_gauge!("careplane_realtime_connections", "realtime websockets open on this instance");
    describe_counter!("careplane_realtime_joins_total", "realtime channel joins, by outcome (ok, refused, invalid)");
    describe_counter!(
        "careplane_realtime_events_relayed_total",
        "frames queued to realtime sockets, by kind (broadcast, postgres_changes, client_broadcast)"
    );
    describe_histogram!(
        "careplane_realtime_commit_to_send_seconds",
        Unit::Seconds,
        "from the event's transaction timestamp (an upper bound on its commit) to its fan-out"
    );
    describe_counter!("careplane_realtime_slow_clients_dropped_total", "realtime sockets closed because their queue was full");
    describe_counter!("careplane_realtime_channels_expired_total", "realtime channels ended because their token expired");
    describe_counter!("careplane_realtime_broadcasts_refused_total", "client broadcasts refused (size, rate, event name)");
}

/// Outbox rows (SMS / email) with status `pending`, counted in `private.outbox` (the partial
/// index `outbox_due_idx` covers exactly these rows). The statement is bounded by
/// `statement_timeout` and the whole read by `HEALTH_CHECK_TIMEOUT_MS`, so a slow database
/// delays a scrape by at most that.
pub async fn outbox_depth(db: &sqlx::PgPool, timeout: Duration) -> Result<i64, String> {
    let (depth,): (i64,) = bounded_read(db, timeout, "select count(*) from private.outbox where status = 'pending'").await?;
    Ok(depth)
}

/// One read-only statement for a scrape or a health check: bounded by `statement_timeout` in
/// the database and by `timeout` as a whole, so a slow database delays the answer by at most that.
pub async fn bounded_read<T>(db: &sqlx::PgPool, timeout: Duration, sql: &'static str) -> Result<T, String>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let read = async {
        let mut tx = db.begin().await?;
        sqlx::query("select set_config('statement_timeout', $1, true)")
            .bind(timeout.as_millis().max(1).to_string())
            .execute(&mut *tx)
            .await?;
        let row: T = sqlx::query_as(sql).fetch_one(&mut *tx).await?;
        tx.rollback().await?;
        Ok::<_, sqlx::Error>(row)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// The exposition of `careplane_outbox_depth`, appended to the recorder's page.
fn outbox_depth_exposition(depth: i64) -> String {
    format!(
        "# HELP careplane_outbox_depth outbox rows (SMS / email) with status pending, read from private.outbox at scrape time\n\
         # TYPE careplane_outbox_depth gauge\n\
         careplane_outbox_depth {depth}\n"
    )
}

/// The Paystack webhook inbox, read from `private.webhook_inbox` at scrape time.
fn inbox_exposition(s: &crate::payments::worker::InboxStats) -> String {
    format!(
        "# HELP careplane_webhook_inbox_waiting Paystack webhooks stored and not yet applied\n\
         # TYPE careplane_webhook_inbox_waiting gauge\n\
         careplane_webhook_inbox_waiting{{provider=\"paystack\"}} {}\n\
         # HELP careplane_webhook_inbox_retrying waiting webhooks whose last attempt failed\n\
         # TYPE careplane_webhook_inbox_retrying gauge\n\
         careplane_webhook_inbox_retrying{{provider=\"paystack\"}} {}\n\
         # HELP careplane_webhook_inbox_dead webhooks given up after the last attempt\n\
         # TYPE careplane_webhook_inbox_dead gauge\n\
         careplane_webhook_inbox_dead{{provider=\"paystack\"}} {}\n\
         # HELP careplane_webhook_inbox_oldest_waiting_seconds age of the oldest waiting webhook\n\
         # TYPE careplane_webhook_inbox_oldest_waiting_seconds gauge\n\
         careplane_webhook_inbox_oldest_waiting_seconds{{provider=\"paystack\"}} {}\n",
        s.waiting, s.retrying, s.dead, s.oldest_waiting_seconds
    )
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
    let mut page = state.metrics.render();
    match outbox_depth(&state.db, state.config.health_check_timeout).await {
        Ok(depth) => page.push_str(&outbox_depth_exposition(depth)),
        Err(error) => tracing::warn!(%error, "metrics: outbox depth unavailable; left out of this scrape"),
    }
    match tokio::time::timeout(state.config.health_check_timeout, crate::payments::worker::inbox_stats(&state.db)).await {
        Ok(Ok(stats)) => page.push_str(&inbox_exposition(&stats)),
        _ => tracing::warn!("metrics: webhook inbox counts unavailable; left out of this scrape"),
    }
    match crate::notify::outbox_health(&state.db, state.config.health_check_timeout).await {
        Ok(h) => page.push_str(&crate::notify::outbox_health_exposition(h)),
        Err(error) => tracing::warn!(%error, "metrics: dead / stuck outbox counts unavailable; left out of this scrape"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page).into_response()
}
