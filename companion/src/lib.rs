//! careplane-companion: the thin service beside Supabase.
//!
//! `app(state)` builds the whole HTTP service; `main` only reads config, wires and serves.

use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod redis_conn;

pub use config::Config;
pub use error::AppError;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    pub redis: redis_conn::Redis,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Wires the state from config without connecting: the service starts, and reports in
    /// `/health/detailed`, even while Postgres or Redis is down.
    pub fn from_config(config: Config) -> Result<Self, config::ConfigError> {
        let options = PgConnectOptions::from_str(config.database_url.expose_secret())
            .map_err(|e| config::ConfigError { name: "DATABASE_URL", reason: e.to_string() })?
            .application_name("careplane-companion");
        let db = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(config.health_check_timeout)
            .connect_lazy_with(options);
        let redis = redis_conn::Redis::new(config.redis_url.expose_secret(), config.health_check_timeout)
            .map_err(|e| config::ConfigError { name: "REDIS_URL", reason: e.to_string() })?;
        Ok(AppState(Arc::new(Inner { config, db, redis })))
    }
}

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(http::health::routes())
        .fallback(|| async { AppError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
