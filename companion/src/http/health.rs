//! Liveness (`/health`) and readiness with dependency checks (`/health/detailed`).
//!
//! `/health` answers as long as the process serves HTTP; it touches nothing else, so a load
//! balancer does not pull every instance when a shared dependency blips. `/health/detailed`
//! checks the database, the `careplane` extension and Redis concurrently, each bounded by
//! `HEALTH_CHECK_TIMEOUT_MS`, and answers 503 naming what is down.

use std::future::Future;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/health/detailed", get(detailed))
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: crate::VERSION })
}

#[derive(Debug, Serialize)]
pub struct Check {
    /// `ok` or `down`.
    pub status: &'static str,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Checks {
    pub database: Check,
    pub extension: Check,
    pub redis: Check,
}

#[derive(Debug, Serialize)]
pub struct Detailed {
    /// `ok` when every check passed, else `unavailable`.
    pub status: &'static str,
    pub version: &'static str,
    pub checks: Checks,
    /// Names of the checks that failed, e.g. `["redis"]`.
    pub failing: Vec<&'static str>,
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
        Ok(version) => Check { status: "ok", latency_ms, version, error: None },
        Err(error) => Check { status: "down", latency_ms, version: None, error: Some(error) },
    }
}

async fn detailed(State(state): State<AppState>) -> Response {
    let timeout = state.config.health_check_timeout;
    let db = &state.db;
    let (database, extension, redis) = tokio::join!(
        timed(timeout, async {
            sqlx::query_scalar::<_, i32>("select 1").fetch_one(db).await.map(|_| None).map_err(|e| e.to_string())
        }),
        timed(timeout, async {
            sqlx::query_scalar::<_, String>(
                "select extversion from pg_catalog.pg_extension where extname = 'careplane'",
            )
            .fetch_optional(db)
            .await
            .map_err(|e| e.to_string())?
            .map(Some)
            .ok_or_else(|| "the careplane extension is not installed in this database".to_owned())
        }),
        timed(timeout, async { state.redis.ping().await.map(|()| None) }),
    );
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
    (code, Json(Detailed { status, version: crate::VERSION, checks, failing })).into_response()
}
