//! End-to-end: rate limits per client IP and per user, shared by companion processes through
//! Redis, and the local fallback when Redis is gone.

use std::time::Duration;

use careplane_tests::jwt;
use careplane_tests::{free_port, redis_url, unique_prefix, Companion, PrivateRedis, TestDb, TEST_JWT_SECRET};
use serde_json::Value;
use uuid::Uuid;

async fn get(url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, res.json().await.expect("JSON body"))
}

#[tokio::test]
async fn two_companions_sharing_redis_enforce_one_combined_ip_limit() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    // 10 at once, then one a minute: nothing refills during the test.
    let env = [
        ("REDIS_URL", redis.as_str()),
        ("RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
        ("RATE_LIMIT_IP_PER_MINUTE", "1"),
        ("RATE_LIMIT_IP_BURST", "10"),
    ];
    let a = Companion::spawn(&env).await.unwrap();
    let b = Companion::spawn(&env).await.unwrap();

    let (mut ok, mut limited) = (0, 0);
    for i in 0..16 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (status, retry_after, body) = get(&app.url("/v1/ping"), None).await;
        match status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert_eq!(body["success"], false);
                assert_eq!(body["error"]["code"], "rate_limited");
                assert_eq!(body["error"]["details"]["scope"], "ip");
                let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
                assert!((1..=60).contains(&secs), "Retry-After {secs}");
                assert_eq!(body["error"]["details"]["retry_after_seconds"], secs);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, limited), (10, 6), "one limit of 10 across both instances, not 10 each");
    // Health and metrics are not rate limited (probes and scrapers must always get through).
    assert_eq!(get(&a.url("/health"), None).await.0, 200);
}

#[tokio::test]
async fn per_user_limit_is_shared_across_instances_and_separate_per_user() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    let env = [
        ("REDIS_URL", redis.as_str()),
        ("RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
        ("RATE_LIMIT_USER_PER_MINUTE", "1"),
        ("RATE_LIMIT_USER_BURST", "3"),
    ];
    let a = Companion::spawn(&env).await.unwrap();
    let b = Companion::spawn(&env).await.unwrap();
    let token = |sub| jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("local", sub, "patient"));
    let (alice, bob) = (token(Uuid::new_v4()), token(Uuid::new_v4()));

    let mut statuses = Vec::new();
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(get(&app.url("/v1/auth/ping"), Some(&alice)).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (status, retry_after, body) = get(&b.url("/v1/auth/ping"), Some(&alice)).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["details"]["scope"], "user");
    assert!(retry_after.is_some());
    // Another user from the same IP is not affected.
    assert_eq!(get(&a.url("/v1/auth/ping"), Some(&bob)).await.0, 200);
}

#[tokio::test]
async fn redis_down_falls_back_to_a_local_limiter_reports_degraded_and_keeps_serving() {
    let mut redis = PrivateRedis::start(free_port());
    let url = redis.url();
    let prefix = unique_prefix();
    // A migrated database, so that Redis is the only dependency the health check finds down.
    let db = TestDb::migrated().await.unwrap();
    let app = Companion::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", url.as_str()),
        ("RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
        ("RATE_LIMIT_IP_PER_MINUTE", "1"),
        ("RATE_LIMIT_IP_BURST", "5"),
        ("HEALTH_CHECK_TIMEOUT_MS", "300"),
    ])
    .await
    .unwrap();
    assert_eq!(get(&app.url("/v1/ping"), None).await.0, 200);
    let (_, _, health) = get(&app.url("/health/detailed"), None).await;
    assert_eq!(health["rate_limiter"], serde_json::json!({"backend": "redis", "status": "ok"}));

    redis.stop();
    // Still serving, now limited per instance: 5 at once, then 429.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(get(&app.url("/v1/ping"), None).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);

    let (status, _, health) = get(&app.url("/health/detailed"), None).await;
    assert_eq!(status, 503);
    assert_eq!(health["failing"], serde_json::json!(["redis"]));
    assert_eq!(health["rate_limiter"], serde_json::json!({"backend": "local", "status": "degraded"}));
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "careplane_rate_limiter_degraded 1"), "{metrics}");

    // Redis returns: after the retry window the shared limiter is back.
    let _redis = PrivateRedis::start(redis.port);
    let mut recovered = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = get(&app.url("/v1/ping"), None).await;
        let (status, _, health) = get(&app.url("/health/detailed"), None).await;
        if status == 200 && health["rate_limiter"]["backend"] == "redis" {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "rate limiter did not go back to Redis");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "careplane_rate_limiter_degraded 0"));
}
