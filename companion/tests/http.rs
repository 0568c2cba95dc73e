//! The companion's HTTP surface, driven through `app()` with no network dependencies up:
//! liveness must not depend on them, and readiness must say which is down.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use careplane_companion::{app, AppState, Config};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Config pointing at ports where nothing listens.
fn unreachable_deps() -> AppState {
    let config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:1/careplane".into()),
        "REDIS_URL" => Some("redis://127.0.0.1:1".into()),
        "HEALTH_CHECK_TIMEOUT_MS" => Some("300".into()),
        _ => None,
    })
    .unwrap();
    AppState::from_config(config).unwrap()
}

async fn call(method: &str, uri: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
    let res = app(unreachable_deps())
        .oneshot(Request::builder().method(method).uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn health_answers_with_version_while_dependencies_are_down() {
    let (status, headers, body) = call("GET", "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "ok", "version": careplane_companion::VERSION}));
    assert!(headers.contains_key("x-request-id"), "request id is returned");
}

#[tokio::test]
async fn detailed_health_is_503_naming_each_dependency_that_is_down() {
    let (status, _, body) = call("GET", "/health/detailed").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failing"], serde_json::json!(["database", "extension", "redis"]));
    for check in ["database", "extension", "redis"] {
        assert_eq!(body["checks"][check]["status"], "down");
        let latency = body["checks"][check]["latency_ms"].as_f64().unwrap();
        assert!(latency < 5_000.0, "{check} check is bounded by the timeout, took {latency} ms");
    }
}

#[tokio::test]
async fn unknown_route_and_wrong_method_use_the_error_envelope() {
    let (status, _, body) = call("GET", "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "not_found");

    let (status, _, body) = call("DELETE", "/health").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
