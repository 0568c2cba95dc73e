//! Liveness (`/health`) and readiness with dependency checks (`/health/detailed`).
//!
//! `/health` answers as long as the process serves HTTP; it touches nothing else, so a load
//! balancer does not pull every instance when a shared dependency blips. `/health/detailed`
//! checks the database, the `careplane` extension and Redis concurrently, each bounded by
//! `HEALTH_CHECK_TIMEOUT_MS`, and answers 503 naming what is down.
//!
//! These two bodies are the one documented exception to the response envelope: their shape
//! is fixed by the foundation issue and load balancers / probes read them as they are.
//! `rate_limiter` was added beside the existing fields (nothing else changed).

use std::future::Future;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: answers while the process serves HTTP; touches no dependency.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health, description = "the process serves HTTP")))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: crate::VERSION })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `ok` or `down`.
    pub status: &'static str,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The extension only: which build the database runs, `release` or `debug` (a debug build
    /// is unoptimised and not for serving traffic; see docs/dba.md). Absent when the installed extension
    /// predates `careplane.build_info()` (0.1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    pub database: Check,
    pub extension: Check,
    pub redis: Check,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Detailed {
    /// `ok` when every check passed, else `unavailable`.
    pub status: &'static str,
    pub version: &'static str,
    pub checks: Checks,
    /// Names of the checks that failed, e.g. `["redis"]`.
    pub failing: Vec<&'static str>,
    pub rate_limiter: RateLimiterHealth,
    /// The Paystack webhook inbox: `ok`, `retrying` (an attempt failed; retried with backoff),
    /// `failing` (rows given up: a person must look) or `unknown` (the database did not answer).
    /// Reported, not a readiness failure: the instance still takes webhooks and payments.
    pub payments_inbox: InboxHealth,
    /// Dead and stuck outbox messages (absent when the database does not answer), and the
    /// channels in sandbox (no provider keys).
    pub notifications: NotificationsHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxHealth {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<crate::payments::worker::InboxStats>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationsHealth {
    #[serde(flatten)]
    pub outbox: Option<crate::notify::OutboxHealth>,
    pub sandboxed_channels: Vec<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimiterHealth {
    /// `redis` (limits shared by every instance) or `local` (per instance, Redis unreachable).
    pub backend: &'static str,
    /// `ok`, or `degraded` while the local fallback decides.
    pub status: &'static str,
}

async fn timed<F>(timeout: std::time::Duration, fut: F) -> Check
where
    F: Future<Output = Result<Option<String>, String>>,
{
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    match outcome {
        Ok(version) => Check { status: "ok", latency_ms, version, error: None, build: None },
        Err(error) => Check { status: "down", latency_ms, version: None, error: Some(error), build: None },
    }
}

/// Readiness: database, the careplane extension and Redis, each bounded by
/// `HEALTH_CHECK_TIMEOUT_MS`; 503 naming what is down.
#[utoipa::path(
    get,
    path = "/health/detailed",
    tag = "operations",
    responses(
        (status = 200, body = Detailed, description = "every dependency answers"),
        (status = 503, body = Detailed, description = "`failing` names what is down"),
    )
)]
pub async fn detailed(State(state): State<AppState>) -> Response {
    let timeout = state.config.health_check_timeout;
    let db = &state.db;
    let mut build = None;
    let (database, mut extension, redis, inbox) = tokio::join!(
        timed(timeout, async {
            sqlx::query_scalar::<_, i32>("select 1").fetch_one(db).await.map(|_| None).map_err(|e| e.to_string())
        }),
        timed(timeout, async {
            let version = sqlx::query_scalar::<_, String>(
                "select extversion from pg_catalog.pg_extension where extname = 'careplane'",
            )
            .fetch_optional(db)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the careplane extension is not installed in this database".to_owned())
            .map(Some)?;
            // Which build (release / debug); an extension older than build_info() says nothing.
            build = sqlx::query_scalar::<_, Option<String>>("select careplane.build_info() ->> 'profile'")
                .fetch_one(db)
                .await
                .ok()
                .flatten();
            Ok(version)
        }),
        timed(timeout, async { state.redis.ping().await.map(|()| None) }),
        tokio::time::timeout(timeout, crate::payments::worker::inbox_stats(db)),
    );
    extension.build = build;
    let payments_inbox = match inbox {
        Ok(Ok(counts)) => InboxHealth {
            status: if counts.dead > 0 {
                "failing"
            } else if counts.retrying > 0 {
                "retrying"
            } else {
                "ok"
            },
            counts: Some(counts),
        },
        _ => InboxHealth { status: "unknown", counts: None },
    };
    let degraded = state.rate_limiter.is_degraded() || redis.status != "ok";
    let rate_limiter = if degraded {
        RateLimiterHealth { backend: "local", status: "degraded" }
    } else {
        RateLimiterHealth { backend: "redis", status: "ok" }
    };
    let checks = Checks { database, extension, redis };
    let failing: Vec<&'static str> = [
        ("database", &checks.database),
        ("extension", &checks.extension),
        ("redis", &checks.redis),
    ]
    .into_iter()
    .filter(|(_, c)| c.status != "ok")
    .map(|(name, _)| name)
    .collect();
    let (status, code) = if failing.is_empty() {
        ("ok", StatusCode::OK)
    } else {
        tracing::warn!(?failing, "health check failed");
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
    };
    let notifications = NotificationsHealth {
        outbox: crate::notify::outbox_health(&state.db, timeout).await.ok(),
        sandboxed_channels: state.notify.providers.sandboxed(),
    };
    (code, Json(Detailed { status, version: crate::VERSION, checks, failing, rate_limiter, payments_inbox, notifications }))
        .into_response()
}
