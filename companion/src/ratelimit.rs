//! Rate limits per client IP and per user, shared by every instance through Redis.
//!
//! The algorithm is GCRA (the generic cell rate algorithm), run atomically in one Lua script
//! that checks the IP key and the user key together and consumes from both only when both
//! allow; Redis's own clock (`TIME`) is used so instances with skewed clocks agree.
//!
//! If Redis does not answer within `RATE_LIMIT_REDIS_TIMEOUT_MS`, a local limiter (governor)
//! with the same quotas decides instead, the limiter reports itself degraded (in
//! `/health/detailed` and the `careplane_rate_limiter_degraded` gauge) and Redis is tried again
//! after [`REDIS_RETRY_AFTER`]. The local limits are per instance: with N instances a client
//! may get up to N times the quota while Redis is down, which is the price of staying up.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use uuid::Uuid;

use crate::auth::{self, Principal};
use crate::config::{Quota, RateLimitConfig};
use crate::error::AppError;
use crate::redis_conn::Redis;
use crate::AppState;

/// After Redis failed, how long the local limiter decides before Redis is tried again.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(2);

/// KEYS: the limits to check. ARGV: per key, emission interval and burst (microseconds,
/// count). Returns `{0, 0}` when allowed (and consumed), else `{index of the tightest key,
/// microseconds until it allows}`.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new_tats = {}
local blocked, retry = 0, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if not tat or tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    if allow_at - now > retry then blocked, retry = i, allow_at - now end
  end
  new_tats[i] = new_tat
end
if blocked > 0 then return {blocked, retry} end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', string.format('%.0f', ttl_ms))
end
return {0, 0}
";

type LocalLimiter = governor::RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { scope: &'static str, retry_after: Duration },
}

pub struct RateLimiter {
    config: RateLimitConfig,
    script: redis::Script,
    local_ip: LocalLimiter,
    local_user: LocalLimiter,
    clock: DefaultClock,
    degraded: AtomicBool,
    redis_retry_at: Mutex<Option<Instant>>,
}

fn governor_quota(q: Quota) -> governor::Quota {
    let burst = NonZeroU32::new(q.burst).expect("config ensures burst ≥ 1");
    governor::Quota::with_period(q.emission_interval().max(Duration::from_nanos(1)))
        .expect("non-zero period")
        .allow_burst(burst)
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        metrics::gauge!("careplane_rate_limiter_degraded").set(0.0);
        RateLimiter {
            script: redis::Script::new(GCRA_LUA),
            local_ip: governor::RateLimiter::keyed(governor_quota(config.ip)),
            local_user: governor::RateLimiter::keyed(governor_quota(config.user)),
            clock: DefaultClock::default(),
            degraded: AtomicBool::new(false),
            redis_retry_at: Mutex::new(None),
            config,
        }
    }

    /// True while the local limiter decides because Redis failed.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Checks (and on success consumes) the IP limit and, for a signed-in user, the user limit.
    pub async fn check(&self, redis: &Redis, ip: IpAddr, user: Option<Uuid>) -> Decision {
        let skip_redis = self.redis_retry_at.lock().expect("lock").is_some_and(|t| Instant::now() < t);
        if !skip_redis {
            match tokio::time::timeout(self.config.redis_timeout, self.check_redis(redis, ip, user)).await {
                Ok(Ok(decision)) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        metrics::gauge!("careplane_rate_limiter_degraded").set(0.0);
                        tracing::info!("rate limiter: Redis is back; limits are shared again");
                    }
                    *self.redis_retry_at.lock().expect("lock") = None;
                    return decision;
                }
                Ok(Err(e)) => self.fall_back(&e.to_string()),
                Err(_) => self.fall_back("no answer within RATE_LIMIT_REDIS_TIMEOUT_MS"),
            }
        }
        self.check_local(ip, user)
    }

    fn fall_back(&self, why: &str) {
        *self.redis_retry_at.lock().expect("lock") = Some(Instant::now() + REDIS_RETRY_AFTER);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            metrics::gauge!("careplane_rate_limiter_degraded").set(1.0);
            tracing::warn!(error = why, "rate limiter: Redis unreachable; falling back to per-instance limits");
        }
    }

    async fn check_redis(&self, redis: &Redis, ip: IpAddr, user: Option<Uuid>) -> redis::RedisResult<Decision> {
        let mut conn = redis.connection().await?;
        let prefix = &self.config.redis_prefix;
        let mut invocation = self.script.prepare_invoke();
        let mut scopes = vec!["ip"];
        invocation
            .key(format!("{prefix}:ip:{ip}"))
            .arg(self.config.ip.emission_interval().as_micros() as u64)
            .arg(self.config.ip.burst);
        if let Some(user) = user {
            scopes.push("user");
            invocation
                .key(format!("{prefix}:user:{user}"))
                .arg(self.config.user.emission_interval().as_micros() as u64)
                .arg(self.config.user.burst);
        }
        let (blocked, retry_us): (usize, u64) = invocation.invoke_async(&mut conn).await?;
        Ok(match blocked {
            0 => Decision::Allowed,
            i => Decision::Limited { scope: scopes[(i - 1).min(scopes.len() - 1)], retry_after: Duration::from_micros(retry_us) },
        })
    }

    fn check_local(&self, ip: IpAddr, user: Option<Uuid>) -> Decision {
        if let Err(not_until) = self.local_ip.check_key(&ip.to_string()) {
            return Decision::Limited { scope: "ip", retry_after: not_until.wait_time_from(self.clock.now()) };
        }
        if let Some(user) = user {
            if let Err(not_until) = self.local_user.check_key(&user.to_string()) {
                return Decision::Limited { scope: "user", retry_after: not_until.wait_time_from(self.clock.now()) };
            }
        }
        Decision::Allowed
    }
}

/// The client's IP: the peer address, or the last `X-Forwarded-For` entry (the one the
/// companion's own proxy appended) when `TRUST_X_FORWARDED_FOR` is on.
pub fn client_ip(request: &Request, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .next_back()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Middleware for the API routes: verifies the bearer token once (the outcome goes into the
/// request for the `AuthUser` extractor), then applies the IP and user limits.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = client_ip(&request, state.config.http.trust_x_forwarded_for);
    let (mut parts, body) = request.into_parts();
    let user = match auth::bearer(&parts.headers) {
        Ok(Some(_)) => match auth::authenticate(&mut parts, &state).await {
            Ok(Principal::User(u)) => Some(u.id),
            _ => None,
        },
        _ => None,
    };
    match state.rate_limiter.check(&state.redis, ip, user).await {
        Decision::Allowed => next.run(Request::from_parts(parts, body)).await,
        Decision::Limited { scope, retry_after } => {
            metrics::counter!("careplane_rate_limited_total", "scope" => scope).increment(1);
            AppError::RateLimited { scope, retry_after }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(forwarded: &[&str]) -> Request {
        let mut b = axum::http::Request::builder().uri("/");
        for f in forwarded {
            b = b.header("x-forwarded-for", *f);
        }
        let mut r = b.body(Body::empty()).unwrap();
        r.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 4000))));
        r
    }

    #[test]
    fn client_ip_is_the_peer_unless_forwarded_for_is_trusted_then_its_last_entry() {
        let r = request(&["203.0.113.9, 198.51.100.4"]);
        assert_eq!(client_ip(&r, false), IpAddr::from([10, 0, 0, 7]), "a client cannot choose its IP");
        assert_eq!(client_ip(&r, true), IpAddr::from([198, 51, 100, 4]), "the entry our proxy appended");
        let r = request(&["203.0.113.9", "198.51.100.5"]);
        assert_eq!(client_ip(&r, true), IpAddr::from([198, 51, 100, 5]));
        let r = request(&["198.51.100.4, garbage"]);
        assert_eq!(client_ip(&r, true), IpAddr::from([10, 0, 0, 7]), "an unreadable last entry is not skipped");
        assert_eq!(client_ip(&request(&[]), true), IpAddr::from([10, 0, 0, 7]));
    }

    #[test]
    fn local_fallback_enforces_the_same_quotas_per_ip_and_per_user() {
        let limiter = RateLimiter::new(RateLimitConfig {
            ip: Quota { per_minute: 1, burst: 3 },
            user: Quota { per_minute: 1, burst: 2 },
            redis_prefix: "unused".into(),
            redis_timeout: Duration::from_millis(10),
        });
        let ip = IpAddr::from([192, 0, 2, 1]);
        let user = Uuid::new_v4();
        assert_eq!(limiter.check_local(ip, Some(user)), Decision::Allowed);
        assert_eq!(limiter.check_local(ip, Some(user)), Decision::Allowed);
        match limiter.check_local(ip, Some(user)) {
            Decision::Limited { scope: "user", retry_after } => assert!(retry_after > Duration::from_secs(50)),
            other => panic!("{other:?}"),
        }
        assert_eq!(limiter.check_local(IpAddr::from([192, 0, 2, 2]), None), Decision::Allowed);
        assert!(matches!(limiter.check_local(ip, None), Decision::Limited { scope: "ip", .. }));
    }
}
