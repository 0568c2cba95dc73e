//! The companion's HTTP surface, driven through `app()` with no network dependencies up:
//! liveness must not depend on them, and readiness must say which is down.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use careplane_companion::{app, AppState, Config};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "companion-http-test-secret-0123456789abcdef";

fn config_with(extra: &[(&str, &str)]) -> Config {
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| {
        if let Some((_, v)) = extra.iter().find(|(name, _)| name == k) {
            return Some(v.clone());
        }
        match k {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:1/careplane".into()),
            "REDIS_URL" => Some("redis://127.0.0.1:1".into()),
            "HEALTH_CHECK_TIMEOUT_MS" => Some("300".into()),
            "RATE_LIMIT_REDIS_TIMEOUT_MS" => Some("50".into()),
            "SUPABASE_JWT_SECRET" => Some(SECRET.into()),
            _ => None,
        }
    })
    .unwrap()
}

/// Config pointing at ports where nothing listens.
fn unreachable_deps() -> AppState {
    AppState::from_config(config_with(&[])).unwrap()
}

fn token(claims: Value) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()))
        .unwrap()
}

fn service_token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    token(json!({"iss": "supabase", "role": "service_role", "iat": now, "exp": now + 600}))
}

async fn send(app: axum::Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let res = app.oneshot(request).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    (parts.status, parts.headers, body)
}

fn introspect(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/v1/auth/introspect")
        .header("authorization", format!("Bearer {}", service_token()));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).unwrap()
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

#[tokio::test]
async fn errors_from_extractors_and_layers_use_the_envelope() {
    let app = || app(unreachable_deps());
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (introspect(Some("application/json"), "{not json"), 400, "bad_request"),
        (introspect(None, r#"{"token":"x"}"#), 415, "unsupported_media_type"),
        (introspect(Some("application/json"), r#"{"tok":"x"}"#), 422, "validation_failed"),
        (introspect(Some("application/json"), r#"{"token":"  "}"#), 422, "validation_failed"),
        (introspect(Some("application/json"), vec![b' '; 2 * 1024 * 1024]), 413, "payload_too_large"),
    ];
    for (request, status, code) in cases {
        let (s, h, body) = send(app(), request).await;
        assert_eq!(s.as_u16(), status, "{body}");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A JSON body that is well-formed introspects.
    let (s, _, body) = send(app(), introspect(Some("application/json"), r#"{"token":"a.b.c"}"#)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, json!({"success": true, "data": {"active": false, "reason": "malformed_token"}, "meta": {}}));
}

#[tokio::test]
async fn body_limit_is_configurable_and_chunked_bodies_are_held_to_it() {
    let state = AppState::from_config(config_with(&[("BODY_LIMIT_BYTES", "64")])).unwrap();
    let big = format!(r#"{{"token":"{}"}}"#, "x".repeat(100));
    let (s, _, body) = send(app(state.clone()), introspect(Some("application/json"), big.clone())).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    // No content-length: the limit applies while reading.
    let stream = futures_stream(big);
    let (s, _, body) = send(app(state), introspect(Some("application/json"), stream)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
}

fn futures_stream(text: String) -> Body {
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
        text.into_bytes().chunks(16).map(|c| Ok(axum::body::Bytes::copy_from_slice(c))).collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter<T>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

async fn boom() -> &'static str {
    panic!("handler bug with patient name")
}

#[tokio::test]
async fn slow_handlers_time_out_as_503_and_panics_are_500_envelopes() {
    let config = config_with(&[("REQUEST_TIMEOUT_MS", "100")]);
    let router = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "never"
            }),
        )
        .route("/panic", axum::routing::get(boom));
    let router = careplane_companion::http::with_layers(router, &config.http);
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();

    let (s, h, body) = send(router.clone(), get("/slow")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "timeout");
    assert!(h.contains_key("x-request-id"));

    let (s, _, body) = send(router, get("/panic")).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], json!({"code": "internal", "message": "internal error", "details": null}));
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let state = AppState::from_config(config_with(&[("CORS_ALLOWED_ORIGINS", "https://app.careplane.example")])).unwrap();
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/me")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .body(Body::empty())
            .unwrap()
    };
    let res = app(state.clone()).oneshot(preflight("https://app.careplane.example")).await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.careplane.example");
    assert!(res.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let res = app(state.clone()).oneshot(preflight("https://evil.example")).await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));

    let simple = Request::builder().uri("/health").header("origin", "https://app.careplane.example").body(Body::empty()).unwrap();
    let res = app(state).oneshot(simple).await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.careplane.example");
    assert!(res.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_gzip() {
    let request = Request::builder().uri("/openapi.json").header("accept-encoding", "gzip").body(Body::empty()).unwrap();
    let res = app(unreachable_deps()).oneshot(request).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
}

#[tokio::test]
async fn request_id_is_generated_or_kept_and_returned() {
    let (_, headers, _) = call("GET", "/health").await;
    assert_eq!(headers["x-request-id"].len(), 36, "a UUID");
    let request = Request::builder().uri("/nope").header("x-request-id", "client-chosen-42").body(Body::empty()).unwrap();
    let (_, headers, _) = send(app(unreachable_deps()), request).await;
    assert_eq!(headers["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn openapi_document_is_3_1_and_describes_every_route() {
    let (status, _, doc) = call("GET", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/health",
            "/health/detailed",
            "/metrics",
            "/openapi.json",
            "/v1/auth/introspect",
            "/v1/auth/ping",
            "/v1/consultations/{id}",
            "/v1/consultations/{id}/admit",
            "/v1/consultations/{id}/end",
            "/v1/consultations/{id}/ice-servers",
            "/v1/consultations/{id}/join",
            "/v1/conversations/{id}/messages",
            "/v1/files/upload-url",
            "/v1/files/{id}/complete",
            "/v1/files/{id}/download-url",
            "/v1/me",
            "/v1/payments",
            "/v1/payments/{reference}",
            "/v1/payments/{reference}/refund",
            "/v1/ping",
            "/webhooks/paystack",
        ]
    );
    // Every documented path answers something other than 404 (and each route is documented:
    // an undocumented route would be missing from the list above).
    for path in &paths {
        for method in doc["paths"][*path].as_object().unwrap().keys() {
            let path = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
            let (status, _, _) = call_any(&method.to_uppercase(), &path).await;
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Errors without context answer `details: null` (a 401, a 404): the schema says so.
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_body["properties"]["details"]["type"], json!(["object", "null"]));
    assert_eq!(error_body["required"], json!(["code", "message", "details"]));
    assert!(doc["paths"]["/v1/me"]["get"]["responses"]["401"].is_object());
}

async fn call_any(method: &str, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let res = app(unreachable_deps())
        .oneshot(Request::builder().method(method).uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

/// The value of the series `series` (name and labels) in a Prometheus text page, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

async fn metrics_page() -> (StatusCode, axum::http::HeaderMap, String) {
    let (status, headers, body) = call_any("GET", "/metrics").await;
    (status, headers, String::from_utf8(body).unwrap())
}

// Deltas, not absolute values: under `cargo test` other tests in this binary share the
// process-wide recorder.
#[tokio::test]
async fn metrics_count_requests_by_matched_route_and_status_in_prometheus_format() {
    let state = unreachable_deps();
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
    let (_, _, before) = metrics_page().await;
    for uri in ["/v1/ping", "/v1/ping", "/v1/auth/ping", "/no/such/thing/123"] {
        app(state.clone()).oneshot(get(uri)).await.unwrap();
    }
    let (status, headers, text) = metrics_page().await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let delta = |series: &str| sample(&text, series) - sample(&before, series);
    assert_eq!(delta(r#"http_requests_total{method="GET",route="/v1/ping",status="200"}"#), 2.0, "{text}");
    assert_eq!(delta(r#"http_requests_total{method="GET",route="/v1/auth/ping",status="401"}"#), 1.0, "{text}");
    assert_eq!(delta(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#), 1.0, "{text}");
    assert_eq!(delta(r#"careplane_auth_rejections_total{reason="missing_token"}"#), 1.0, "{text}");
    assert_eq!(
        delta(r#"http_request_duration_seconds_count{method="GET",route="/v1/ping",status="200"}"#),
        2.0,
        "{text}"
    );
    assert!(!text.contains("/no/such/thing"), "raw URIs never become labels");
    assert!(text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/v1/ping",status="200",le="0.005"}"#));
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn metrics_report_no_series_for_what_the_companion_cannot_measure() {
    let (status, _, text) = metrics_page().await;
    assert_eq!(status, StatusCode::OK);
    // The database is down: the outbox depth is unknown, so it is left out, not reported as 0.
    assert!(!text.contains("careplane_outbox_depth"), "{text}");
    // Nothing in this version opens websockets or receives provider webhooks.
    assert!(!text.contains("careplane_websocket_connections"), "{text}");
    assert!(!text.contains("careplane_webhook_events_total"), "{text}");
}

#[tokio::test]
async fn public_routes_answer_whatever_token_comes_along() {
    let request = Request::builder().uri("/v1/ping").header("authorization", "Bearer garbage").body(Body::empty()).unwrap();
    let (status, _, body) = send(app(unreachable_deps()), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true, "data": {"pong": true}, "meta": {}}));
}

#[tokio::test]
async fn me_with_the_database_down_is_503_database_unavailable() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let user = token(json!({
        "aud": "authenticated", "role": "authenticated", "sub": "0b8f3c1e-5d2a-4c7b-9e1f-2a3b4c5d6e7f", "exp": now + 600, "iat": now,
    }));
    let request = Request::builder().uri("/v1/me").header("authorization", format!("Bearer {user}")).body(Body::empty()).unwrap();
    let (status, _, body) = send(app(unreachable_deps()), request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable");
}
