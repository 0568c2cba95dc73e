//! careplane-companion: the thin service beside Supabase.
//!
//! `app(state)` builds the whole HTTP service; `main` only reads config, wires and serves.

use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod files;
pub mod http;
pub mod metrics;
pub mod payments;
pub mod notify;
pub mod ratelimit;
pub mod realtime;
pub mod redis_conn;
pub mod turn;
pub mod workers;

pub use config::Config;
pub use error::AppError;
pub use http::app;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    pub redis: redis_conn::Redis,
    pub verifier: auth::Verifier,
    pub rate_limiter: ratelimit::RateLimiter,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The S3-compatible file store; `None` when `S3_ENDPOINT` is not set.
    pub files: Option<files::Store>,
    pub payments: payments::Payments,
    /// Notifications: the outbox worker's providers, templates and sandbox sink (issue 14).
    pub notify: Arc<notify::Notifier>,
    pub realtime: Arc<realtime::Realtime>,
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
            .connect_lazy_with(options.clone());
        let open_redis = || {
            redis_conn::Redis::new(config.redis_url.expose_secret(), config.health_check_timeout)
                .map_err(|e| config::ConfigError { name: "REDIS_URL", reason: e.to_string() })
        };
        let redis = open_redis()?;
        // The relay's presence and bus get a connection of their own, so their traffic never
        // queues behind (or ahead of) rate-limit checks.
        let realtime = Arc::new(realtime::Realtime::new(config.realtime.clone(), Arc::new(open_redis()?)));
        let metrics = metrics::install();
        let verifier = auth::Verifier::new(&config.auth);
        let rate_limiter = ratelimit::RateLimiter::new(config.rate_limit.clone());
        let files = config.files.as_ref().map(files::Store::new).transpose()?;
        let payments = payments::Payments::new(&config, options);
        let notify = Arc::new(notify::Notifier::new(config.notify.clone()));
        Ok(AppState(Arc::new(Inner { config, db, redis, verifier, rate_limiter, metrics, files, payments, notify, realtime })))
    }
}
