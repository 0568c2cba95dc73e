//! Settings, read once from the environment into one typed struct.
//!
//! Every variable has a default that makes `make run` work on a developer machine (local
//! Postgres and Redis). A variable that is set but malformed stops the service at start-up
//! with a message that names it; nothing is silently replaced by its default.

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
    /// `REDIS_URL`: presence, rate limits (secret: may hold a password).
    pub redis_url: SecretString,
    /// `BIND_ADDR`: where the HTTP server listens.
    pub bind_addr: SocketAddr,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `HEALTH_CHECK_TIMEOUT_MS`: how long one dependency check in `/health/detailed` may take.
    pub health_check_timeout: Duration,
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
        Ok(Config {
            database_url: database_url.into(),
            database_max_connections,
            redis_url: redis_url.into(),
            bind_addr: parse("BIND_ADDR", &get("BIND_ADDR", DEFAULT_BIND_ADDR))?,
            log_format: parse("LOG_FORMAT", &get("LOG_FORMAT", "text"))?,
            health_check_timeout: Duration::from_millis(timeout_ms),
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

fn parse<T: FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError { name, reason: format!("{value:?}: {e}") })
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
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:p@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
