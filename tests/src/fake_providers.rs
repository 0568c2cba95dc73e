//! Local fakes of Twilio's Messages API and SendGrid's v3 Mail Send, following their published
//! request and response shapes:
//!
//! - Twilio `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: form body, HTTP Basic auth
//!   (Account SID, auth token); `201` with the Message resource (`sid` `SM…`, `status: queued`);
//!   errors as `{"code", "message", "more_info", "status"}` (20003 authenticate, 21211 invalid
//!   `To`, 21602 body required, 21604 `To` required, 20429 too many requests, 20500 internal).
//! - SendGrid `POST /v3/mail/send`: JSON, `Authorization: Bearer`; `202` with an empty body and
//!   `X-Message-Id`; errors as `{"errors": [{"message", "field", "help"}]}`.
//!
//! Either can be told to fail the next requests ([`Fail`]): 500, 429 with `Retry-After`, the
//! provider's 400, or a slow answer. Every accepted message is recorded with its outbox id
//! (Twilio: the `outbox_id` in `StatusCallback`; SendGrid: `custom_args.outbox_id`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

/// What to do with the next request instead of accepting it.
#[derive(Debug, Clone)]
pub enum Fail {
    /// 500 with the provider's error body.
    ServerError,
    /// 429 with `Retry-After: secs`.
    TooManyRequests { retry_after_secs: u64 },
    /// The provider's permanent 400 (Twilio 21211 invalid number; SendGrid invalid address).
    BadRequest,
    /// Wait this long, then accept.
    Slow(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub outbox_id: Option<i64>,
    pub to: String,
    pub subject: Option<String>,
    pub body: String,
    pub message_id: String,
    /// Twilio: the StatusCallback URL. SendGrid: the categories, comma-separated.
    pub extra: String,
}

#[derive(Default)]
pub struct Shared {
    pub received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Fail>>,
    /// Requests answered (accepted or not).
    pub requests: Mutex<u64>,
    /// Slow down every accepted request by this much.
    pub latency: Mutex<Duration>,
}

impl Shared {
    fn next_failure(&self) -> Option<Fail> {
        *self.requests.lock().unwrap() += 1;
        self.script.lock().unwrap().pop_front()
    }
}

/// A fake provider on an ephemeral loopback port; stops when dropped.
pub struct Fake {
    pub base: String,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// The next requests fail in this order, then requests are accepted again.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Fail>) {
        self.shared.script.lock().unwrap().extend(failures);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn requests(&self) -> u64 {
        *self.shared.requests.lock().unwrap()
    }

    pub fn set_latency(&self, d: Duration) {
        *self.shared.latency.lock().unwrap() = d;
    }

    async fn serve(router: impl FnOnce(Arc<Shared>) -> Router) -> Self {
        let shared = Arc::new(Shared::default());
        let router = router(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Fake { base, shared, task }
    }
}

pub const TWILIO_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_AUTH_TOKEN: &str = "fake-twilio-auth-token";
pub const SENDGRID_API_KEY: &str = "SG.fake-sendgrid-key";

fn hex_id(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    s.truncate(len);
    s
}

fn twilio_error(status: u16, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status,
    });
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

fn sendgrid_error(status: u16, message: &str, field: Option<&str>) -> Response {
    let body = json!({ "errors": [{ "message": message, "field": field, "help": null }] });
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

pub async fn twilio() -> Fake {
    Fake::serve(|shared| Router::new().route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio_messages)).with_state(shared))
        .await
}

async fn twilio_messages(State(s): State<Arc<Shared>>, Path(sid): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}"))
    );
    if sid != TWILIO_ACCOUNT_SID || headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(&expected) {
        return twilio_error(401, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return twilio_error(400, 20001, "Unable to parse the request body"),
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match s.next_failure() {
        Some(Fail::ServerError) => return twilio_error(500, 20500, "An internal server error has occurred"),
        Some(Fail::TooManyRequests { retry_after_secs }) => {
            let mut r = twilio_error(429, 20429, "Too Many Requests");
            r.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
            return r;
        }
        Some(Fail::BadRequest) => {
            let to = get("To").unwrap_or_default();
            return twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
        }
        Some(Fail::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let latency = *s.latency.lock().unwrap();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(to) = get("To") else { return twilio_error(400, 21604, "A 'To' phone number is required.") };
    let Some(text) = get("Body") else { return twilio_error(400, 21602, "Message body is required.") };
    if get("From").is_none() && get("MessagingServiceSid").is_none() {
        return twilio_error(400, 21603, "A 'From' phone number is required.");
    }
    let e164 = to.starts_with('+') && to.len() > 7 && to[1..].bytes().all(|b| b.is_ascii_digit());
    if !e164 {
        return twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    let message_sid = format!("SM{}", hex_id(32));
    let callback = get("StatusCallback").unwrap_or_default();
    let outbox_id = callback.split("outbox_id=").nth(1).and_then(|v| v.split('&').next()).and_then(|v| v.parse().ok());
    s.received.lock().unwrap().push(Received {
        outbox_id,
        to: to.clone(),
        subject: None,
        body: text.clone(),
        message_id: message_sid.clone(),
        extra: callback,
    });
    let resource = json!({
        "sid": message_sid, "account_sid": TWILIO_ACCOUNT_SID, "to": to, "from": get("From"),
        "messaging_service_sid": get("MessagingServiceSid"), "body": text, "status": "queued",
        "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
        "price": null, "price_unit": "USD", "error_code": null, "error_message": null,
        "uri": format!("/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{message_sid}.json"),
    });
    (StatusCode::CREATED, Json(resource)).into_response()
}

pub async fn sendgrid() -> Fake {
    Fake::serve(|shared| Router::new().route("/v3/mail/send", post(sendgrid_send)).with_state(shared)).await
}

async fn sendgrid_send(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {SENDGRID_API_KEY}")) {
        return sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked", None);
    }
    let Ok(mail) = serde_json::from_slice::<Value>(&body) else {
        return sendgrid_error(400, "Bad Request", None);
    };
    let to = mail.pointer("/personalizations/0/to/0/email").and_then(Value::as_str).unwrap_or_default().to_owned();
    match s.next_failure() {
        Some(Fail::ServerError) => return sendgrid_error(500, "internal error", None),
        Some(Fail::TooManyRequests { retry_after_secs }) => {
            let mut r = sendgrid_error(429, "too many requests", None);
            r.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
            return r;
        }
        Some(Fail::BadRequest) => {
            return sendgrid_error(400, "Does not contain a valid address.", Some("personalizations.0.to.0.email"))
        }
        Some(Fail::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let latency = *s.latency.lock().unwrap();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !to.contains('@') {
        return sendgrid_error(400, "Does not contain a valid address.", Some("personalizations.0.to.0.email"));
    }
    if mail.pointer("/from/email").and_then(Value::as_str).is_none() {
        return sendgrid_error(400, "The from object must be provided for every email send.", Some("from"));
    }
    let Some(subject) = mail.get("subject").and_then(Value::as_str) else {
        return sendgrid_error(400, "The subject is required.", Some("subject"));
    };
    let Some(text) = mail.pointer("/content/0/value").and_then(Value::as_str) else {
        return sendgrid_error(400, "The content value must be a string at least one character in length.", Some("content.0.value"));
    };
    let outbox_id = mail.pointer("/custom_args/outbox_id").and_then(Value::as_str).and_then(|v| v.parse().ok());
    let categories: Vec<&str> =
        mail.get("categories").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let message_id = hex_id(22);
    s.received.lock().unwrap().push(Received {
        outbox_id,
        to,
        subject: Some(subject.to_owned()),
        body: text.to_owned(),
        message_id: message_id.clone(),
        extra: categories.join(","),
    });
    let mut r = StatusCode::ACCEPTED.into_response();
    r.headers_mut().insert("x-message-id", message_id.parse().unwrap());
    r
}
