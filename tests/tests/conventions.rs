//! End-to-end conventions of the companion binary: JSON logs that carry the request id and
//! route but no tokens or PHI, and graceful shutdown that finishes in-flight requests.

use std::time::Duration;

use careplane_tests::{jwt, redis_url, unique_prefix, Companion, TEST_JWT_SECRET};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[tokio::test]
async fn json_logs_carry_request_id_and_route_but_no_token_or_query() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    let app = Companion::spawn_with_logs(&[
        ("REDIS_URL", &redis),
        ("RATE_LIMIT_REDIS_PREFIX", &prefix),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ])
    .await
    .unwrap();
    let token = jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("local", Uuid::new_v4(), "patient"));
    let res = reqwest::Client::new()
        .get(app.url("/v1/auth/ping?email=jane.doe@example.test"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");

    let logs = app.logs.clone().unwrap();
    let mut found = None;
    for _ in 0..50 {
        found = logs.lock().unwrap().iter().find(|l| l.contains("trace-me-123")).cloned();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = found.expect("a log line with the request id");
    let entry: Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(entry["span"]["request_id"], "trace-me-123", "{line}");
    assert_eq!(entry["span"]["route"], "/v1/auth/ping", "{line}");
    assert_eq!(entry["status"], 200, "{line}");
    let all = logs.lock().unwrap().join("\n");
    assert!(!all.contains(&token), "the token is never logged");
    assert!(!all.contains("jane.doe"), "query strings (PHI) are never logged");
}

#[tokio::test]
async fn sigterm_finishes_the_in_flight_request_then_exits_and_stops_accepting() {
    let (redis, prefix) = (redis_url(), unique_prefix());
    let mut app = Companion::spawn(&[("REDIS_URL", &redis), ("RATE_LIMIT_REDIS_PREFIX", &prefix)]).await.unwrap();
    let addr = app.base.trim_start_matches("http://").to_owned();
    let service = jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::service_role_claims());
    let body = r#"{"token":"not-a-token"}"#;
    let (first, rest) = body.split_at(10);

    // A request whose body is still arriving when the signal comes.
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/auth/introspect HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {service}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = app.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.child.try_wait().unwrap().is_none(), "still running while a request is in flight");
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "no new connections after SIGTERM");

    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut response)).await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""reason":"malformed_token""#), "{response}");

    let status = tokio::time::timeout(Duration::from_secs(10), app.child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "exit status {status}");
}
