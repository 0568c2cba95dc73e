//! End-to-end: the companion binary checking Supabase access tokens — HS256 with the legacy
//! secret, ES256 and RS256 from a JWKS served by a local server — and every rejection with
//! the reason a client sees in the 401.

use std::time::Duration;

use careplane_tests::jwt::{self, JwksServer, TestKey};
use careplane_tests::{redis_url, unique_prefix, Companion, TestDb, TEST_JWT_SECRET};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};
use uuid::Uuid;

async fn call(app: &Companion, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON body"))
}

/// Asserts a 401 envelope with `code`.
async fn rejected(app: &Companion, token: &str, code: &str) {
    let (status, body) = call(app, "/v1/auth/ping", Some(token)).await;
    assert_eq!(status, 401, "expected 401 {code}, got {body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn accepted(app: &Companion, token: &str, sub: Uuid) {
    let (status, body) = call(app, "/v1/auth/ping", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"success": true, "data": {"pong": true, "sub": sub}, "meta": {}}));
}

fn base_env(redis: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.to_owned()),
        ("RATE_LIMIT_REDIS_PREFIX", prefix.to_owned()),
        ("RATE_LIMIT_IP_PER_MINUTE", "100000".into()),
        ("RATE_LIMIT_IP_BURST", "10000".into()),
    ]
}

/// Settings for a companion that trusts `jwks` and re-reads it every second (for rotation tests).
fn fast_jwks_env(jwks: &JwksServer) -> Vec<(&'static str, String)> {
    let mut env = base_env(&redis_url(), &unique_prefix());
    env.push(("SUPABASE_URL", jwks.supabase_url()));
    env.push(("JWKS_CACHE_TTL_SECONDS", "1".into()));
    env.push(("JWKS_MIN_REFETCH_INTERVAL_MS", "100".into()));
    env
}

async fn spawn(env: Vec<(&'static str, String)>) -> Companion {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Companion::spawn(&pairs).await.unwrap()
}

#[tokio::test]
async fn hs256_tokens_are_accepted_and_every_rejection_names_its_reason() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    env.push(("SUPABASE_JWT_SECRET", TEST_JWT_SECRET.into()));
    env.push(("SUPABASE_URL", "https://careplanetest.supabase.co".into()));
    env.push(("JWT_LEEWAY_SECONDS", "10".into()));
    // Every request verifies from scratch here; the verified-token cache is tested below.
    env.push(("JWT_CACHE_SIZE", "0".into()));
    let app = spawn(env).await;
    let secret = TEST_JWT_SECRET.as_bytes();
    let sub = Uuid::new_v4();
    let claims = jwt::user_claims("https://careplanetest.supabase.co/auth/v1", sub, "patient");
    let now = jwt::now();

    accepted(&app, &jwt::sign_hs256(secret, &claims), sub).await;
    // aud as an array, and exp a few seconds past but within the leeway.
    accepted(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("aud", json!(["authenticated", "other"]))])), sub).await;
    accepted(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("exp", json!(now - 3))])), sub).await;

    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("exp", json!(now - 60))])), "token_expired").await;
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("nbf", json!(now + 120))])), "token_not_yet_valid").await;
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("aud", json!("anon"))])), "wrong_audience").await;
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("aud", json!(["anon"]))])), "wrong_audience").await;
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("aud", Value::Null)])), "wrong_audience").await;
    rejected(
        &app,
        &jwt::sign_hs256(secret, &jwt::with(&claims, &[("iss", json!("https://someone-else.supabase.co/auth/v1"))])),
        "wrong_issuer",
    )
    .await;
    rejected(&app, &jwt::sign_hs256(b"another-project-secret-another-project-secret", &claims), "bad_signature").await;
    rejected(&app, &jwt::unsigned(&claims), "alg_none").await;
    rejected(&app, "not-a-jwt", "malformed_token").await;
    rejected(&app, "a.b.c", "malformed_token").await;
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("sub", json!("not-a-uuid"))])), "invalid_claims").await;
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("exp", Value::Null)])), "invalid_claims").await;
    // An anon key is not a signed-in user.
    rejected(&app, &jwt::sign_hs256(secret, &jwt::with(&claims, &[("role", json!("anon"))])), "invalid_claims").await;
    // A claim named twice is refused, whichever value comes last (the registered claims by
    // jsonwebtoken's own reading, as malformed; the others by ours); a claim set is an object.
    let text = claims.to_string();
    let twice = format!(r#"{{"role": "service_role", {}"#, &text[1..]);
    rejected(&app, &jwt::sign_hs256_text(secret, &twice), "invalid_claims").await;
    let twice = format!(r#"{}, "user_role": "admin"}}"#, &text[..text.len() - 1]);
    rejected(&app, &jwt::sign_hs256_text(secret, &twice), "invalid_claims").await;
    let twice = format!(r#"{}, "sub": "{}"}}"#, &text[..text.len() - 1], Uuid::new_v4());
    rejected(&app, &jwt::sign_hs256_text(secret, &twice), "malformed_token").await;
    let (status, _) = call(&app, "/v1/auth/ping", Some(&jwt::sign_hs256_text(secret, &format!("[{text}]")))).await;
    assert_eq!(status, 401, "a claim set that is not an object");

    let (status, body) = call(&app, "/v1/auth/ping", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")));
    let res = reqwest::Client::new().get(app.url("/v1/auth/ping")).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "malformed_token");
}

#[tokio::test]
async fn es256_and_rs256_tokens_from_the_jwks_are_accepted_and_rejections_named() {
    let es = TestKey::load("es256-a");
    let rs = TestKey::load("rs256-a");
    let jwks = JwksServer::start(vec![es.jwk("es-1"), rs.jwk("rs-1")]).await;
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    // Only asymmetric keys: the JWKS comes from SUPABASE_URL's well-known path.
    env.push(("SUPABASE_URL", jwks.supabase_url()));
    let app = spawn(env).await;
    let sub = Uuid::new_v4();
    let claims = jwt::user_claims(&jwks.issuer(), sub, "doctor");
    let now = jwt::now();

    accepted(&app, &es.sign("es-1", &claims), sub).await;
    accepted(&app, &rs.sign("rs-1", &claims), sub).await;
    accepted(&app, &es.sign("es-1", &jwt::with(&claims, &[("aud", json!(["authenticated"]))])), sub).await;

    // Algorithm confusion: an HS256 token, even one keyed with the project's public key.
    rejected(&app, &jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &claims), "algorithm_not_allowed").await;
    rejected(&app, &jwt::sign_hs256(&es.public_pem(), &claims), "algorithm_not_allowed").await;
    rejected(&app, &jwt::sign_hs256(&rs.public_pem(), &claims), "algorithm_not_allowed").await;
    // A kid the project never published.
    rejected(&app, &es.sign("es-unknown", &claims), "unknown_kid").await;
    // Signed by someone else's key under the project's kid.
    rejected(&app, &TestKey::load("es256-evil").sign("es-1", &claims), "bad_signature").await;
    rejected(&app, &TestKey::load("rs256-evil").sign("rs-1", &claims), "bad_signature").await;
    // An ES256 header pointing at the RSA key.
    rejected(&app, &es.sign("rs-1", &claims), "algorithm_not_allowed").await;
    // Other algorithms are not accepted at all.
    let header = Header { kid: Some("rs-1".into()), ..Header::new(Algorithm::PS256) };
    rejected(&app, &jwt::sign_with_header(&rs, header, &claims), "algorithm_not_allowed").await;
    rejected(&app, &es.sign("es-1", &jwt::with(&claims, &[("exp", json!(now - 60))])), "token_expired").await;
    rejected(&app, &rs.sign("rs-1", &jwt::with(&claims, &[("exp", json!(now - 60))])), "token_expired").await;
    rejected(&app, &es.sign("es-1", &jwt::with(&claims, &[("nbf", json!(now + 120))])), "token_not_yet_valid").await;
    rejected(&app, &rs.sign("rs-1", &jwt::with(&claims, &[("aud", json!("anon"))])), "wrong_audience").await;
    rejected(&app, &es.sign("es-1", &jwt::with(&claims, &[("iss", json!("https://evil.example/auth/v1"))])), "wrong_issuer").await;
    rejected(&app, &jwt::unsigned(&claims), "alg_none").await;
    let header = Header { kid: None, ..Header::new(Algorithm::ES256) };
    rejected(&app, &jwt::sign_with_header(&es, header, &claims), "unknown_kid").await;
}

#[tokio::test]
async fn me_reports_identity_from_the_token_and_from_inside_the_database() {
    let db = TestDb::migrated().await.unwrap();
    let es = TestKey::load("es256-a");
    let jwks = JwksServer::start(vec![es.jwk("es-1")]).await;
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    env.push(("SUPABASE_URL", jwks.supabase_url()));
    env.push(("SUPABASE_JWT_SECRET", TEST_JWT_SECRET.into()));
    env.push(("DATABASE_URL", db.url.clone()));
    let app = spawn(env).await;
    let sub = Uuid::new_v4();
    let claims = jwt::with(
        &jwt::user_claims(&jwks.issuer(), sub, "dispatcher"),
        &[("user_roles", json!(["dispatcher", "doctor"]))],
    );

    for token in [es.sign("es-1", &claims), jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &claims)] {
        let (status, body) = call(&app, "/v1/me", Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"],
            json!({
                "sub": sub,
                "role": "authenticated",
                "user_role": "dispatcher",
                "user_roles": ["dispatcher", "doctor"],
                "email": "patient@example.test",
                "database": {
                    "current_user": "authenticated",
                    "auth_uid": sub,
                    "auth_role": "authenticated",
                    "jwt_user_role": "dispatcher",
                },
            })
        );
    }
    let (status, body) = call(&app, "/v1/me", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")));
}

#[tokio::test]
async fn service_role_key_is_accepted_only_where_the_endpoint_allows_it() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    env.push(("SUPABASE_JWT_SECRET", TEST_JWT_SECRET.into()));
    env.push(("SUPABASE_URL", "https://careplanetest.supabase.co".into()));
    let app = spawn(env).await;
    let secret = TEST_JWT_SECRET.as_bytes();
    let service = jwt::sign_hs256(secret, &jwt::service_role_claims());
    let sub = Uuid::new_v4();
    let user = jwt::sign_hs256(secret, &jwt::user_claims("https://careplanetest.supabase.co/auth/v1", sub, "patient"));
    let client = reqwest::Client::new();

    for path in ["/v1/me", "/v1/auth/ping"] {
        let (status, body) = call(&app, path, Some(&service)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "user_token_required");
    }

    let introspect = |caller: String, token: String| {
        let client = client.clone();
        let url = app.url("/v1/auth/introspect");
        async move {
            let res = client.post(url).bearer_auth(caller).json(&json!({"token": token})).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = introspect(service.clone(), user.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["active"], true);
    assert_eq!(body["data"]["kind"], "user");
    assert_eq!(body["data"]["sub"], json!(sub));
    assert_eq!(body["data"]["user_role"], "patient");

    let expired = jwt::sign_hs256(
        secret,
        &jwt::with(&jwt::user_claims("https://careplanetest.supabase.co/auth/v1", sub, "patient"), &[("exp", json!(jwt::now() - 600))]),
    );
    let (status, body) = introspect(service.clone(), expired).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"active": false, "reason": "token_expired"}));

    let (status, body) = introspect(user.clone(), user.clone()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "service_role_required");

    // A service_role key signed by another project is still a bad signature.
    let forged = jwt::sign_hs256(b"another-project-secret-another-project-secret", &jwt::service_role_claims());
    let (status, body) = introspect(forged, user).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "bad_signature");
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_and_the_old_key_works_until_removed_from_the_jwks() {
    let old = TestKey::load("es256-a");
    let new = TestKey::load("es256-b");
    let jwks = JwksServer::start(vec![old.jwk("old")]).await;
    let env = fast_jwks_env(&jwks);
    let app = spawn(env).await;
    let sub = Uuid::new_v4();
    let claims = jwt::user_claims(&jwks.issuer(), sub, "patient");

    accepted(&app, &old.sign("old", &claims), sub).await;
    assert_eq!(jwks.hits(), 1);
    accepted(&app, &old.sign("old", &claims), sub).await;
    assert_eq!(jwks.hits(), 1, "cached keys are reused");

    // The project adds a standby key and starts signing with it; both are published.
    jwks.set_keys(vec![old.jwk("old"), new.jwk("new")]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    accepted(&app, &new.sign("new", &claims), sub).await;
    assert_eq!(jwks.hits(), 2, "the unknown kid caused one refetch");
    accepted(&app, &old.sign("old", &claims), sub).await;

    // The old key is revoked: once the cache expires, its tokens are refused.
    jwks.set_keys(vec![new.jwk("new")]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rejected(&app, &old.sign("old", &claims), "unknown_kid").await;
    accepted(&app, &new.sign("new", &claims), sub).await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval() {
    let key = TestKey::load("es256-a");
    let jwks = JwksServer::start(vec![key.jwk("real")]).await;
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    env.push(("SUPABASE_URL", jwks.supabase_url()));
    env.push(("JWKS_MIN_REFETCH_INTERVAL_MS", "1000".into()));
    let app = std::sync::Arc::new(spawn(env).await);
    let sub = Uuid::new_v4();
    let claims = jwt::user_claims(&jwks.issuer(), sub, "patient");
    accepted(&app, &key.sign("real", &claims), sub).await;
    assert_eq!(jwks.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut flood = Vec::new();
    for i in 0..60 {
        let app = app.clone();
        let token = key.sign(&format!("bogus-{i}"), &claims);
        flood.push(tokio::spawn(async move { call(&app, "/v1/auth/ping", Some(&token)).await }));
    }
    for request in flood {
        let (status, body) = request.await.unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unknown_kid")));
    }
    assert_eq!(jwks.hits(), 2, "60 unknown kids caused exactly one refetch");
    accepted(&app, &key.sign("real", &claims), sub).await;
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn jwks_outage_serves_the_cached_keys_and_no_keys_at_all_is_503() {
    let key = TestKey::load("rs256-a");
    let jwks = JwksServer::start(vec![key.jwk("rs")]).await;
    let env = fast_jwks_env(&jwks);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = Companion::spawn_with_logs(&pairs).await.unwrap();
    let sub = Uuid::new_v4();
    let claims = jwt::user_claims(&jwks.issuer(), sub, "patient");
    accepted(&app, &key.sign("rs", &claims), sub).await;

    jwks.fail_with(Some(500));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accepted(&app, &key.sign("rs", &claims), sub).await;
    assert_eq!(jwks.hits(), 2, "the refresh was attempted, failed, and the stale keys served");
    let logs = app.logs.clone().unwrap();
    let mut warned = false;
    for _ in 0..40 {
        warned = logs.lock().unwrap().iter().any(|l| l.contains("WARN") && l.contains("serving the cached keys (stale)"));
        if warned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(warned, "a warning says stale keys are being served: {:?}", logs.lock().unwrap());

    // A companion that never got the keys cannot check tokens: that is its problem (503).
    let cold = spawn(env).await;
    let (status, body) = call(&cold, "/v1/auth/ping", Some(&key.sign("rs", &claims))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "signing_keys_unavailable");
    jwks.fail_with(None);
    tokio::time::sleep(Duration::from_millis(150)).await;
    accepted(&cold, &key.sign("rs", &claims), sub).await;
}

#[tokio::test]
async fn token_command_mints_a_token_the_companion_accepts_and_refuses_without_the_secret() {
    let sub = Uuid::new_v4();
    let mint = |secret: Option<&str>| {
        let mut cmd = std::process::Command::new(careplane_tests::companion_bin());
        cmd.env_clear().args(["token", "--sub", &sub.to_string(), "--role", "patient"]);
        if let Some(s) = secret {
            cmd.env("SUPABASE_JWT_SECRET", s);
        }
        cmd.output().unwrap()
    };
    let out = mint(None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUPABASE_JWT_SECRET is not set"));

    let out = mint(Some(TEST_JWT_SECRET));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    env.push(("SUPABASE_JWT_SECRET", TEST_JWT_SECRET.into()));
    let app = spawn(env).await;
    accepted(&app, &token, sub).await;
    // This companion has only the HS256 secret: ES256 tokens cannot be checked, so refused.
    let claims = jwt::user_claims(jwt_dev_issuer(), sub, "patient");
    rejected(&app, &TestKey::load("es256-a").sign("k1", &claims), "algorithm_not_allowed").await;
}

fn jwt_dev_issuer() -> &'static str {
    careplane_companion::auth::token::LOCAL_ISSUER
}

#[tokio::test]
async fn serve_refuses_to_start_without_token_keys_naming_the_setting() {
    let out = std::process::Command::new(careplane_tests::companion_bin())
        .env_clear()
        .arg("serve")
        .env("BIND_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SUPABASE_JWT_SECRET is invalid: no token keys configured"), "{stderr}");

    let out = std::process::Command::new(careplane_tests::companion_bin())
        .env_clear()
        .arg("serve")
        .env("SUPABASE_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUPABASE_JWT_SECRET is invalid: must be at least 32 bytes"));
}

#[tokio::test]
async fn a_remembered_token_still_expires_on_time() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut env = base_env(&redis, &prefix);
    env.push(("SUPABASE_JWT_SECRET", TEST_JWT_SECRET.into()));
    env.push(("JWT_LEEWAY_SECONDS", "0".into()));
    let app = spawn(env).await;
    let sub = Uuid::new_v4();
    let exp = jwt::now() + 2;
    let token = jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::with(&jwt::user_claims("local", sub, "patient"), &[("exp", json!(exp))]));
    accepted(&app, &token, sub).await;
    accepted(&app, &token, sub).await;
    while jwt::now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rejected(&app, &token, "token_expired").await;
}

#[tokio::test]
async fn a_key_replaced_under_the_same_kid_stops_accepting_tokens_signed_by_the_old_one() {
    let first = TestKey::load("es256-a");
    let second = TestKey::load("es256-b");
    let jwks = JwksServer::start(vec![first.jwk("main")]).await;
    let env = fast_jwks_env(&jwks);
    let app = spawn(env).await;
    let sub = Uuid::new_v4();
    let claims = jwt::user_claims(&jwks.issuer(), sub, "patient");
    let old_token = first.sign("main", &claims);
    accepted(&app, &old_token, sub).await;
    accepted(&app, &old_token, sub).await;

    jwks.set_keys(vec![second.jwk("main")]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rejected(&app, &old_token, "bad_signature").await;
    accepted(&app, &second.sign("main", &claims), sub).await;
}
