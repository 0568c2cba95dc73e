//! Settings, read once from the environment into one typed struct.
//!
//! Every variable except the token keys has a default that makes `make run` work on a developer
//! machine (local Postgres and Redis). A variable that is set but malformed stops the service at
//! start-up with a message that names it; nothing is silently replaced by its default.
//!
//! There is deliberately no default for `SUPABASE_JWT_SECRET`: `serve` refuses to start without
//! a key source (the secret, `SUPABASE_URL` or `SUPABASE_JWKS_URL`). `make run` exports a
//! development secret of its own (see `scripts/dev.sh`).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/careplane";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected \"text\" or \"json\"".into()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the Postgres the companion reads and writes (secret: may hold a password).
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`: size of the companion's connection pool.
    pub database_max_connections: u32,
    /// `REDIS_URL`: shared rate limits (secret: may hold a password).
    pub redis_url: SecretString,
    /// `BIND_ADDR`: where the HTTP server listens.
    pub bind_addr: SocketAddr,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `HEALTH_CHECK_TIMEOUT_MS`: how long one dependency check in `/health/detailed` may take.
    pub health_check_timeout: Duration,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub rate_limit: RateLimitConfig,
    /// Notifications: `PUBLIC_BASE_URL`, `TWILIO_*`, `SENDGRID_*`, `NOTIFY_*` (crate::notify::config).
    pub notify: crate::notify::config::NotifyConfig,
    /// `LEDGER_EXPIRY_INTERVAL_SECONDS`: how often pending ledger transfers past their timeout
    /// are voided (`private.expire_pending_transfers()`); 0 turns the sweep off (e.g. when
    /// pg_cron runs it instead).
    pub ledger_expiry_interval: Option<Duration>,
    /// `S3_*`, `FILES_*`: the file store (docs/files.md); `None` without `S3_ENDPOINT`.
    pub files: Option<crate::files::FilesConfig>,
    pub paystack: PaystackConfig,
    /// `TURN_URLS`, `TURN_SECRET`, `TURN_TTL_SECONDS`: STUN/TURN for consultation calls.
    pub turn: crate::turn::TurnConfig,
    /// `CONSULTATION_SWEEP_INTERVAL_SECONDS`: how often calls past their slot are ended
    /// (`private.end_overdue_consultations()`); 0 turns the sweep off.
    pub consultation_sweep_interval: Option<Duration>,
    /// `EXAMPLES_DIR`: development only — serve this directory (the repository's `examples/`)
    /// at `/examples/`; unset (the default, and in production) serves nothing.
    pub examples_dir: Option<std::path::PathBuf>,
    pub realtime: RealtimeConfig,
}

/// Paystack payments (docs/payments.md).
#[derive(Debug, Clone)]
pub struct PaystackConfig {
    /// `PAYSTACK_SECRET_KEY`: the API key, which also signs webhooks. Unset: the sandbox (a
    /// local checkout page; never active when a key is set).
    pub secret_key: Option<SecretString>,
    /// `PAYSTACK_BASE_URL`: the API (default `https://api.paystack.co`).
    pub base_url: String,
    /// `PAYSTACK_CALLBACK_URL`: where Paystack sends the patient after the checkout.
    pub callback_url: Option<String>,
    /// `PAYSTACK_ALLOWED_IPS`: comma-separated source addresses webhooks may come from (the
    /// client IP as `TRUST_X_FORWARDED_FOR` decides it). Empty: any source.
    pub allowed_ips: Vec<std::net::IpAddr>,
    /// `PLATFORM_FEE_BPS`: the platform's share of each payment, in basis points (0–10000).
    pub platform_fee_bps: u32,
    /// `PAYMENT_REFUND_WINDOW_HOURS`: a paid appointment cancelled at least this long before
    /// it starts is refunded automatically.
    pub refund_window_hours: u32,
    /// `PAYSTACK_RECONCILE_AFTER_SECONDS`: a payment still pending this long is verified by the
    /// reconciliation job.
    pub reconcile_after: Duration,
    /// `PAYSTACK_RECONCILE_INTERVAL_SECONDS`: how often the job runs; 0 turns it off.
    pub reconcile_interval: Option<Duration>,
    /// `PAYSTACK_ABANDON_AFTER_SECONDS`: an abandoned checkout older than this fails.
    pub abandon_after_seconds: i64,
    /// `PAYSTACK_TIMEOUT_MS`: one call to Paystack.
    pub timeout: Duration,
    /// `PAYSTACK_INBOX_POLL_MS`: how often the inbox worker looks for due rows when nothing woke it.
    pub inbox_poll: Duration,
    /// `PAYSTACK_INBOX_LEASE_SECONDS`: how long a claimed row is the claimer's (a crashed
    /// worker's rows are taken again after it).
    pub inbox_lease: Duration,
    /// `PAYSTACK_INBOX_MAX_ATTEMPTS`: attempts before a row is given up (`failed_at`).
    pub inbox_max_attempts: u32,
    /// `PAYMENT_WORKERS`: run the inbox, refund and reconciliation workers in this instance
    /// (`false`: it only takes webhooks and payments, and other instances apply them).
    pub workers: bool,
}

impl PaystackConfig {
    /// The sandbox runs exactly when no secret key is configured.
    pub fn sandbox(&self) -> bool {
        self.secret_key.is_none()
    }
}

/// The realtime relay (`/realtime/v1/websocket`); see docs/realtime.md.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `REALTIME_QUEUE_CAPACITY`: frames queued for one socket; a client that falls this far
    /// behind is disconnected as a slow consumer (it can rejoin with replay).
    pub queue_capacity: usize,
    /// `REALTIME_RETENTION_HOURS`: how long events stay replayable; older ones are pruned.
    pub replay_retention: Duration,
    /// `REALTIME_REPLAY_MAX`: most events one replay sends.
    pub replay_max: i64,
    /// `REALTIME_REPLAY_SLACK_MS`: replay starts this much before `since`, so an event whose
    /// transaction began before `since` and committed after it is not missed (the app drops
    /// duplicates by `meta.id`).
    pub replay_slack: Duration,
    /// `REALTIME_POLL_INTERVAL_MS`: the log is read at least this often even without a NOTIFY.
    pub poll_interval: Duration,
    /// `REALTIME_PRUNE_INTERVAL_SECONDS`: how often events past retention are removed; 0 off.
    pub prune_interval: Option<Duration>,
    /// `REALTIME_BROADCAST_MAX_BYTES`: largest client broadcast or presence payload.
    pub broadcast_max_bytes: usize,
    /// `REALTIME_BROADCAST_PER_SECOND`: client broadcasts one socket may send per second.
    pub broadcast_per_second: u32,
    /// `REALTIME_MAX_CHANNELS`: channels one socket may join.
    pub max_channels_per_socket: usize,
    /// Largest websocket frame accepted (the broadcast limit plus room for the envelope).
    pub max_frame_bytes: usize,
    /// `REALTIME_PRESENCE_TTL_MS`: an instance silent this long no longer counts its clients.
    pub presence_ttl: Duration,
    /// `REALTIME_REDIS_PREFIX`: key and channel prefix in Redis.
    pub redis_prefix: String,
    /// `REALTIME_SHUTDOWN_GRACE_MS`: how long shutdown waits for sockets to close.
    pub shutdown_grace: Duration,
}

/// How access tokens are checked.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `SUPABASE_URL`: the project URL, e.g. `https://abc.supabase.co`; tokens must then carry
    /// `iss` = `<SUPABASE_URL>/auth/v1`, and the JWKS defaults to its well-known address.
    pub supabase_url: Option<String>,
    /// `SUPABASE_JWT_SECRET`: the legacy HS256 secret (at least 32 bytes).
    pub jwt_secret: Option<SecretString>,
    /// `SUPABASE_JWKS_URL`, else `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// `JWT_LEEWAY_SECONDS`: tolerated clock skew for `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// `JWKS_CACHE_TTL_SECONDS`: how long fetched keys are trusted before a refresh (1–600).
    pub jwks_cache_ttl: Duration,
    /// `JWKS_MIN_REFETCH_INTERVAL_MS`: at most one fetch per interval for unknown kids or
    /// after a failed refresh, so bogus kids cannot hammer the JWKS endpoint.
    pub jwks_min_refetch_interval: Duration,
    /// `JWT_CACHE_SIZE`: how many verified tokens are remembered (0: verify every request).
    pub verified_cache_size: usize,
}

impl AuthConfig {
    /// The issuer Supabase Auth writes into user tokens, when the project URL is known.
    pub fn expected_issuer(&self) -> Option<String> {
        self.supabase_url.as_ref().map(|u| format!("{u}/auth/v1"))
    }

    /// `serve` needs at least one key source; `migrate` and `token` do not.
    pub fn require_key_source(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.is_none() && self.jwks_url.is_none() {
            return Err(ConfigError {
                name: "SUPABASE_JWT_SECRET",
                reason: "no token keys configured: set SUPABASE_JWT_SECRET (HS256), or SUPABASE_URL / \
                         SUPABASE_JWKS_URL (ES256/RS256 signing keys), or both"
                    .into(),
            });
        }
        Ok(())
    }
}

/// HTTP conventions applied to every route.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example.com`), or `*`.
    /// Empty: no cross-origin access.
    pub cors_allowed_origins: CorsOrigins,
    /// `BODY_LIMIT_BYTES`: largest accepted request body.
    pub body_limit_bytes: usize,
    /// `REQUEST_TIMEOUT_MS`: a request still running after this is answered 503.
    pub request_timeout: Duration,
    /// `TRUST_X_FORWARDED_FOR`: take the client IP from the last `X-Forwarded-For` entry
    /// (only behind a proxy that sets it).
    pub trust_x_forwarded_for: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

/// Limits per client IP and per user, shared through Redis.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_IP_PER_MINUTE` / `RATE_LIMIT_IP_BURST`.
    pub ip: Quota,
    /// `RATE_LIMIT_USER_PER_MINUTE` / `RATE_LIMIT_USER_BURST`.
    pub user: Quota,
    /// `RATE_LIMIT_REDIS_PREFIX`: key prefix in Redis (separates environments sharing one Redis).
    pub redis_prefix: String,
    /// `RATE_LIMIT_REDIS_TIMEOUT_MS`: a Redis answer slower than this counts as Redis down, and
    /// the local limiter decides.
    pub redis_timeout: Duration,
}

/// A GCRA quota: `per_minute` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// Time between two requests at the sustained rate.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str, default: &str| -> String {
            lookup(name).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
        };
        let database_url = get("DATABASE_URL", DEFAULT_DATABASE_URL);
        require_scheme("DATABASE_URL", &database_url, &["postgres://", "postgresql://"])?;
        let redis_url = get("REDIS_URL", DEFAULT_REDIS_URL);
        require_scheme("REDIS_URL", &redis_url, &["redis://", "rediss://", "redis+unix://", "unix://"])?;
        let database_max_connections = parse("DATABASE_MAX_CONNECTIONS", &get("DATABASE_MAX_CONNECTIONS", "10"))?;
        if database_max_connections == 0 {
            return Err(ConfigError { name: "DATABASE_MAX_CONNECTIONS", reason: "must be at least 1".into() });
        }
        let timeout_ms: u64 = parse("HEALTH_CHECK_TIMEOUT_MS", &get("HEALTH_CHECK_TIMEOUT_MS", "2000"))?;
        let opt = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());

        let supabase_url = match opt("SUPABASE_URL") {
            Some(url) => {
                require_scheme("SUPABASE_URL", &url, &["http://", "https://"])?;
                Some(url.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let jwt_secret = match opt("SUPABASE_JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError { name: "SUPABASE_JWT_SECRET", reason: "must be at least 32 bytes".into() })
            }
            Some(secret) => Some(SecretString::from(secret)),
            None => None,
        };
        let jwks_url = match opt("SUPABASE_JWKS_URL") {
            Some(url) => {
                require_scheme("SUPABASE_JWKS_URL", &url, &["http://", "https://"])?;
                Some(url)
            }
            None => supabase_url.as_ref().map(|u| format!("{u}/auth/v1/.well-known/jwks.json")),
        };
        let ttl: u64 = parse("JWKS_CACHE_TTL_SECONDS", &get("JWKS_CACHE_TTL_SECONDS", "600"))?;
        if !(1..=600).contains(&ttl) {
            return Err(ConfigError { name: "JWKS_CACHE_TTL_SECONDS", reason: "must be between 1 and 600".into() });
        }
        let refetch_ms: u64 = parse("JWKS_MIN_REFETCH_INTERVAL_MS", &get("JWKS_MIN_REFETCH_INTERVAL_MS", "10000"))?;
        let auth = AuthConfig {
            supabase_url,
            jwt_secret,
            jwks_url,
            leeway_seconds: parse("JWT_LEEWAY_SECONDS", &get("JWT_LEEWAY_SECONDS", "10"))?,
            jwks_cache_ttl: Duration::from_secs(ttl),
            jwks_min_refetch_interval: Duration::from_millis(refetch_ms),
            verified_cache_size: parse("JWT_CACHE_SIZE", &get("JWT_CACHE_SIZE", "10000"))?,
        };

        let cors_allowed_origins = parse_origins(&get("CORS_ALLOWED_ORIGINS", ""))?;
        let body_limit_bytes: usize = parse("BODY_LIMIT_BYTES", &get("BODY_LIMIT_BYTES", "1048576"))?;
        if body_limit_bytes == 0 {
            return Err(ConfigError { name: "BODY_LIMIT_BYTES", reason: "must be at least 1".into() });
        }
        let request_timeout_ms: u64 = parse("REQUEST_TIMEOUT_MS", &get("REQUEST_TIMEOUT_MS", "15000"))?;
        if request_timeout_ms == 0 {
            return Err(ConfigError { name: "REQUEST_TIMEOUT_MS", reason: "must be at least 1".into() });
        }
        let http = HttpConfig {
            cors_allowed_origins,
            body_limit_bytes,
            request_timeout: Duration::from_millis(request_timeout_ms),
            trust_x_forwarded_for: parse_bool("TRUST_X_FORWARDED_FOR", &get("TRUST_X_FORWARDED_FOR", "false"))?,
        };

        let positive = |name: &'static str, default: &str| -> Result<u32, ConfigError> {
            let n: u32 = parse(name, &get(name, default))?;
            if n == 0 {
                return Err(ConfigError { name, reason: "must be at least 1".into() });
            }
            Ok(n)
        };
        let rate_limit = RateLimitConfig {
            ip: Quota {
                per_minute: positive("RATE_LIMIT_IP_PER_MINUTE", "600")?,
                burst: positive("RATE_LIMIT_IP_BURST", "100")?,
            },
            user: Quota {
                per_minute: positive("RATE_LIMIT_USER_PER_MINUTE", "300")?,
                burst: positive("RATE_LIMIT_USER_BURST", "60")?,
            },
            redis_prefix: get("RATE_LIMIT_REDIS_PREFIX", "careplane:ratelimit"),
            redis_timeout: Duration::from_millis(
                positive("RATE_LIMIT_REDIS_TIMEOUT_MS", "200")?.into(),
            ),
        };

        let paystack = paystack_config(&get, &opt)?;
        let broadcast_max_bytes = positive("REALTIME_BROADCAST_MAX_BYTES", "65536")? as usize;
        let prune_seconds: u64 = parse("REALTIME_PRUNE_INTERVAL_SECONDS", &get("REALTIME_PRUNE_INTERVAL_SECONDS", "600"))?;
        let realtime = RealtimeConfig {
            queue_capacity: positive("REALTIME_QUEUE_CAPACITY", "1024")? as usize,
            replay_retention: Duration::from_secs(u64::from(positive("REALTIME_RETENTION_HOURS", "24")?) * 3600),
            replay_max: positive("REALTIME_REPLAY_MAX", "1000")?.into(),
            replay_slack: Duration::from_millis(parse("REALTIME_REPLAY_SLACK_MS", &get("REALTIME_REPLAY_SLACK_MS", "10000"))?),
            poll_interval: Duration::from_millis(positive("REALTIME_POLL_INTERVAL_MS", "1000")?.into()),
            prune_interval: (prune_seconds > 0).then(|| Duration::from_secs(prune_seconds)),
            broadcast_max_bytes,
            broadcast_per_second: positive("REALTIME_BROADCAST_PER_SECOND", "50")?,
            max_channels_per_socket: positive("REALTIME_MAX_CHANNELS", "100")? as usize,
            max_frame_bytes: broadcast_max_bytes + 4096,
            presence_ttl: Duration::from_millis(positive("REALTIME_PRESENCE_TTL_MS", "15000")?.into()),
            redis_prefix: get("REALTIME_REDIS_PREFIX", "careplane:realtime"),
            shutdown_grace: Duration::from_millis(positive("REALTIME_SHUTDOWN_GRACE_MS", "5000")?.into()),
        };

        let expiry_seconds: u64 = parse("LEDGER_EXPIRY_INTERVAL_SECONDS", &get("LEDGER_EXPIRY_INTERVAL_SECONDS", "30"))?;

        let bind_addr: SocketAddr = parse("BIND_ADDR", &get("BIND_ADDR", DEFAULT_BIND_ADDR))?;
        let notify = crate::notify::config::parse(&lookup, bind_addr)?;
        let sweep_seconds: u64 =
            parse("CONSULTATION_SWEEP_INTERVAL_SECONDS", &get("CONSULTATION_SWEEP_INTERVAL_SECONDS", "60"))?;

        let examples_dir = match lookup("EXAMPLES_DIR").filter(|d| !d.trim().is_empty()) {
            None => None,
            Some(dir) => {
                let path = std::path::PathBuf::from(dir.trim());
                if !path.is_dir() {
                    return Err(ConfigError { name: "EXAMPLES_DIR", reason: format!("{} is not a directory", path.display()) });
                }
                Some(path)
            }
        };

        Ok(Config {
            examples_dir,
            turn: crate::turn::TurnConfig::from_lookup(&lookup)?,
            consultation_sweep_interval: (sweep_seconds > 0).then(|| Duration::from_secs(sweep_seconds)),
            ledger_expiry_interval: (expiry_seconds > 0).then(|| Duration::from_secs(expiry_seconds)),
            database_url: database_url.into(),
            database_max_connections,
            redis_url: redis_url.into(),
            bind_addr,
            log_format: parse("LOG_FORMAT", &get("LOG_FORMAT", "text"))?,
            health_check_timeout: Duration::from_millis(timeout_ms),
            auth,
            http,
            rate_limit,
            files: crate::files::FilesConfig::from_lookup(&lookup)?,
            paystack,
            notify,
            realtime,
        })
    }

    /// The database URL with any password replaced by `***`, for banners and logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }

    /// The Redis URL with any password replaced by `***`.
    pub fn redis_url_redacted(&self) -> String {
        redact_url(self.redis_url.expose_secret())
    }
}

fn paystack_config(
    get: &impl Fn(&'static str, &str) -> String,
    opt: &impl Fn(&'static str) -> Option<String>,
) -> Result<PaystackConfig, ConfigError> {
    let base_url = get("PAYSTACK_BASE_URL", "https://api.paystack.co").trim_end_matches('/').to_owned();
    require_scheme("PAYSTACK_BASE_URL", &base_url, &["http://", "https://"])?;
    let callback_url = opt("PAYSTACK_CALLBACK_URL");
    if let Some(url) = &callback_url {
        require_scheme("PAYSTACK_CALLBACK_URL", url, &["http://", "https://"])?;
    }
    let allowed_ips = get("PAYSTACK_ALLOWED_IPS", "")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse("PAYSTACK_ALLOWED_IPS", s))
        .collect::<Result<Vec<std::net::IpAddr>, _>>()?;
    let platform_fee_bps: u32 = parse("PLATFORM_FEE_BPS", &get("PLATFORM_FEE_BPS", "0"))?;
    if platform_fee_bps > 10_000 {
        return Err(ConfigError { name: "PLATFORM_FEE_BPS", reason: "must be between 0 and 10000 (basis points)".into() });
    }
    let at_least_one = |name: &'static str, default: &str| -> Result<u64, ConfigError> {
        let n: u64 = parse(name, &get(name, default))?;
        if n == 0 {
            return Err(ConfigError { name, reason: "must be at least 1".into() });
        }
        Ok(n)
    };
    let reconcile_interval: u64 = parse("PAYSTACK_RECONCILE_INTERVAL_SECONDS", &get("PAYSTACK_RECONCILE_INTERVAL_SECONDS", "60"))?;
    let abandon_after: u64 = at_least_one("PAYSTACK_ABANDON_AFTER_SECONDS", "86400")?;
    Ok(PaystackConfig {
        secret_key: opt("PAYSTACK_SECRET_KEY").map(SecretString::from),
        base_url,
        callback_url,
        allowed_ips,
        platform_fee_bps,
        refund_window_hours: parse("PAYMENT_REFUND_WINDOW_HOURS", &get("PAYMENT_REFUND_WINDOW_HOURS", "24"))?,
        reconcile_after: Duration::from_secs(parse("PAYSTACK_RECONCILE_AFTER_SECONDS", &get("PAYSTACK_RECONCILE_AFTER_SECONDS", "900"))?),
        reconcile_interval: (reconcile_interval > 0).then(|| Duration::from_secs(reconcile_interval)),
        abandon_after_seconds: i64::try_from(abandon_after).map_err(|_| ConfigError {
            name: "PAYSTACK_ABANDON_AFTER_SECONDS",
            reason: "too large".into(),
        })?,
        timeout: Duration::from_millis(at_least_one("PAYSTACK_TIMEOUT_MS", "10000")?),
        inbox_poll: Duration::from_millis(at_least_one("PAYSTACK_INBOX_POLL_MS", "1000")?),
        inbox_lease: Duration::from_secs(at_least_one("PAYSTACK_INBOX_LEASE_SECONDS", "60")?),
        inbox_max_attempts: u32::try_from(at_least_one("PAYSTACK_INBOX_MAX_ATTEMPTS", "10")?).unwrap_or(u32::MAX),
        workers: parse_bool("PAYMENT_WORKERS", &get("PAYMENT_WORKERS", "true"))?,
    })
}

pub(crate) fn parse<T: FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError { name, reason: format!("{value:?}: {e}") })
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError { name, reason: format!("{value:?}: expected true or false") }),
    }
}

fn parse_origins(value: &str) -> Result<CorsOrigins, ConfigError> {
    let name = "CORS_ALLOWED_ORIGINS";
    if value.trim() == "*" {
        return Ok(CorsOrigins::Any);
    }
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') && axum::http::HeaderValue::from_str(origin).is_ok() => {
                origins.push(origin.to_owned())
            }
            _ => {
                return Err(ConfigError {
                    name,
                    reason: format!("{origin:?}: expected an origin like https://app.example.com (scheme and host, no path)"),
                })
            }
        }
    }
    Ok(CorsOrigins::List(origins))
}

fn require_scheme(name: &'static str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    if schemes.iter().any(|s| value.starts_with(s)) {
        Ok(())
    } else {
        // The value may carry a password: name the expected shape, not the value.
        Err(ConfigError { name, reason: format!("must start with one of {}", schemes.join(", ")) })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_point_at_local_services() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(c.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn malformed_setting_is_named_and_secret_not_echoed() {
        let err = config(&[("BIND_ADDR", "localhost")]).unwrap_err();
        assert_eq!(err.name, "BIND_ADDR");
        let err = config(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]).unwrap_err();
        assert_eq!(err.name, "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(config(&[("LOG_FORMAT", "xml")]).unwrap_err().name, "LOG_FORMAT");
        assert_eq!(config(&[("DATABASE_MAX_CONNECTIONS", "0")]).unwrap_err().name, "DATABASE_MAX_CONNECTIONS");
        assert_eq!(config(&[("SUPABASE_URL", "abc.supabase.co")]).unwrap_err().name, "SUPABASE_URL");
        assert_eq!(config(&[("SUPABASE_JWKS_URL", "ftp://x")]).unwrap_err().name, "SUPABASE_JWKS_URL");
        assert_eq!(config(&[("JWKS_CACHE_TTL_SECONDS", "3600")]).unwrap_err().name, "JWKS_CACHE_TTL_SECONDS");
        assert_eq!(config(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")]).unwrap_err().name, "CORS_ALLOWED_ORIGINS");
        assert_eq!(config(&[("RATE_LIMIT_USER_BURST", "0")]).unwrap_err().name, "RATE_LIMIT_USER_BURST");
        assert_eq!(config(&[("TRUST_X_FORWARDED_FOR", "maybe")]).unwrap_err().name, "TRUST_X_FORWARDED_FOR");
        assert_eq!(config(&[("REQUEST_TIMEOUT_MS", "soon")]).unwrap_err().name, "REQUEST_TIMEOUT_MS");
    }

    #[test]
    fn short_jwt_secret_is_refused_without_echoing_it() {
        let err = config(&[("SUPABASE_JWT_SECRET", "tooshort-hunter2")]).unwrap_err();
        assert_eq!(err.name, "SUPABASE_JWT_SECRET");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn serving_needs_a_key_source_and_says_which_variables_provide_one() {
        let c = config(&[]).unwrap();
        let err = c.auth.require_key_source().unwrap_err();
        assert_eq!(err.name, "SUPABASE_JWT_SECRET");
        assert!(err.to_string().contains("SUPABASE_JWKS_URL"));
        let c = config(&[("SUPABASE_URL", "https://abc.supabase.co/")]).unwrap();
        c.auth.require_key_source().unwrap();
        assert_eq!(c.auth.jwks_url.as_deref(), Some("https://abc.supabase.co/auth/v1/.well-known/jwks.json"));
        assert_eq!(c.auth.expected_issuer().as_deref(), Some("https://abc.supabase.co/auth/v1"));
    }

    #[test]
    fn cors_origins_parse_as_list_or_any() {
        let c = config(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com, http://localhost:3000")]).unwrap();
        assert_eq!(
            c.http.cors_allowed_origins,
            CorsOrigins::List(vec!["https://app.example.com".into(), "http://localhost:3000".into()])
        );
        assert_eq!(config(&[("CORS_ALLOWED_ORIGINS", "*")]).unwrap().http.cors_allowed_origins, CorsOrigins::Any);
        assert_eq!(config(&[]).unwrap().http.cors_allowed_origins, CorsOrigins::List(vec![]));
    }

    #[test]
    fn paystack_settings_default_to_the_sandbox_and_are_checked() {
        let c = config(&[]).unwrap();
        assert!(c.paystack.sandbox());
        assert_eq!(c.paystack.base_url, "https://api.paystack.co");
        assert_eq!(c.paystack.platform_fee_bps, 0);
        let c = config(&[("PAYSTACK_SECRET_KEY", "sk_test_x"), ("PAYSTACK_ALLOWED_IPS", "52.31.139.75, 52.49.173.169"),
                         ("PLATFORM_FEE_BPS", "250")]).unwrap();
        assert!(!c.paystack.sandbox());
        assert_eq!(c.paystack.allowed_ips.len(), 2);
        assert_eq!(c.paystack.platform_fee_bps, 250);
        assert_eq!(config(&[("PLATFORM_FEE_BPS", "10001")]).unwrap_err().name, "PLATFORM_FEE_BPS");
        assert_eq!(config(&[("PAYSTACK_ALLOWED_IPS", "paystack.com")]).unwrap_err().name, "PAYSTACK_ALLOWED_IPS");
        assert_eq!(config(&[("PAYSTACK_BASE_URL", "api.paystack.co")]).unwrap_err().name, "PAYSTACK_BASE_URL");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:p@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
