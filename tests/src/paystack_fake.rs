//! A local Paystack for the tests (`PAYSTACK_BASE_URL`), following the documented shapes of
//! `POST /transaction/initialize`, `GET /transaction/verify/:reference` and `POST /refund`:
//! `Authorization: Bearer <secret key>`, answers `{status: true, message, data}`, errors
//! `{status: false, message, meta: {nextStep}, type, code}` with the documented statuses (401
//! for a bad key, 400 for validation errors, 404 for an unknown transaction). It also builds the
//! webhooks Paystack would send, signed as Paystack signs them (HMAC-SHA512 of the body with
//! the secret key, lowercase hex).
//!
//! Knobs for the tests: what a transaction's verification answers ([`FakePaystack::pay`],
//! [`FakePaystack::answer`]), failing or hanging calls, and call counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct FakeTransaction {
    pub id: u64,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub email: String,
    pub metadata: Value,
}

#[derive(Default)]
struct Inner {
    transactions: HashMap<String, FakeTransaction>,
    /// reference → (amount, currency) verification answers that differ from the stored charge.
    overrides: HashMap<String, (i64, String)>,
    refunds: Vec<(u64, String, i64)>,
    calls: HashMap<&'static str, usize>,
    /// Answer initialize with this status and an error body (Some(500): Paystack failing).
    initialize_fails_with: Option<u16>,
    /// Answer verify with this status and an error body.
    verify_fails_with: Option<u16>,
    last_initialize: Option<Value>,
}

#[derive(Clone)]
pub struct FakePaystack {
    pub url: String,
    pub secret: String,
    inner: Arc<Mutex<Inner>>,
    /// While true, verify requests wait (the companion's worker is then stuck mid-call).
    hold: Arc<watch::Sender<bool>>,
    ids: Arc<AtomicU64>,
}

fn error(status: StatusCode, message: &str, code: &str) -> Response {
    let kind = if status == StatusCode::UNAUTHORIZED { "api_error" } else { "validation_error" };
    (status, Json(json!({"status": false, "message": message, "meta": {"nextStep": "Check the request and try again"},
                         "type": kind, "code": code}))).into_response()
}

impl FakePaystack {
    pub async fn start(secret: &str) -> Self {
        let (hold, _) = watch::channel(false);
        let fake = FakePaystack {
            url: String::new(),
            secret: secret.to_owned(),
            inner: Arc::default(),
            hold: Arc::new(hold),
            ids: Arc::new(AtomicU64::new(3_000_000_001)),
        };
        let app = Router::new()
            .route("/transaction/initialize", post(initialize))
            .route("/transaction/verify/{reference}", get(verify))
            .route("/refund", post(refund))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakePaystack { url: format!("http://{addr}"), ..fake }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", self.secret))
    }

    fn count(&self, op: &'static str) {
        *self.inner.lock().unwrap().calls.entry(op).or_default() += 1;
    }

    pub fn calls(&self, op: &str) -> usize {
        self.inner.lock().unwrap().calls.get(op).copied().unwrap_or(0)
    }

    pub fn transaction(&self, reference: &str) -> Option<FakeTransaction> {
        self.inner.lock().unwrap().transactions.get(reference).cloned()
    }

    pub fn last_initialize(&self) -> Option<Value> {
        self.inner.lock().unwrap().last_initialize.clone()
    }

    /// The patient paid at Paystack.
    pub fn pay(&self, reference: &str) {
        self.inner.lock().unwrap().transactions.get_mut(reference).expect("initialized").status = "success".into();
    }

    /// Verification answers this amount and currency for `reference` (a tampered or mixed-up charge).
    pub fn answer(&self, reference: &str, amount: i64, currency: &str) {
        self.inner.lock().unwrap().overrides.insert(reference.to_owned(), (amount, currency.to_owned()));
    }

    pub fn fail_initialize(&self, status: Option<u16>) {
        self.inner.lock().unwrap().initialize_fails_with = status;
    }

    pub fn fail_verify(&self, status: Option<u16>) {
        self.inner.lock().unwrap().verify_fails_with = status;
    }

    /// Verify requests wait while held.
    pub fn hold_verify(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    pub fn refunds(&self) -> Vec<(u64, String, i64)> {
        self.inner.lock().unwrap().refunds.clone()
    }

    /// The signed `charge.success` Paystack sends for a paid transaction: (body, signature).
    pub fn charge_success(&self, reference: &str) -> (Vec<u8>, String) {
        let tx = self.transaction(reference).expect("initialized");
        let body = json!({"event": "charge.success", "data": {
            "id": tx.id, "domain": "test", "status": "success", "reference": reference, "amount": tx.amount,
            "message": null, "gateway_response": "Successful", "paid_at": "2026-11-28T10:00:00.000Z",
            "created_at": "2026-11-28T09:59:00.000Z", "channel": "card", "currency": tx.currency,
            "metadata": tx.metadata, "customer": {"email": tx.email}}});
        self.signed(&body)
    }

    /// The signed `refund.processed` for a refund of `reference` (amount as a string, as Paystack sends it).
    pub fn refund_processed(&self, reference: &str, refund_id: u64, amount: i64) -> (Vec<u8>, String) {
        let tx = self.transaction(reference).expect("initialized");
        let body = json!({"event": "refund.processed", "data": {
            "id": refund_id, "status": "processed", "transaction_reference": reference,
            "refund_reference": format!("RF{refund_id}"), "amount": amount.to_string(), "currency": tx.currency,
            "processor": "fake", "customer": {"email": tx.email}, "integration": 463433, "domain": "test"}});
        self.signed(&body)
    }

    pub fn signed(&self, body: &Value) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = careplane_companion::payments::paystack::sign(self.secret.as_bytes(), &bytes);
        (bytes, signature)
    }
}

async fn initialize(State(fake): State<FakePaystack>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    fake.count("initialize");
    if !fake.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid key", "invalid_Key");
    }
    let mut inner = fake.inner.lock().unwrap();
    inner.last_initialize = Some(body.clone());
    if let Some(status) = inner.initialize_fails_with {
        let status = StatusCode::from_u16(status).unwrap();
        return error(status, "An error occurred", "unknown");
    }
    let (Some(email), Some(amount), Some(reference)) = (body["email"].as_str(), body["amount"].as_i64(), body["reference"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "email, amount (integer, in subunits) and reference are required", "invalid_params");
    };
    if inner.transactions.contains_key(reference) {
        return error(StatusCode::BAD_REQUEST, "Duplicate Transaction Reference", "duplicate_reference");
    }
    let id = fake.ids.fetch_add(1, Ordering::Relaxed);
    let tx = FakeTransaction {
        id,
        amount,
        currency: body["currency"].as_str().unwrap_or("NGN").to_owned(),
        status: "abandoned".into(),
        email: email.to_owned(),
        metadata: body["metadata"].clone(),
    };
    inner.transactions.insert(reference.to_owned(), tx);
    let access_code = format!("ac_{id}");
    Json(json!({"status": true, "message": "Authorization URL created",
                "data": {"authorization_url": format!("https://checkout.paystack.com/{access_code}"),
                         "access_code": access_code, "reference": reference}}))
    .into_response()
}

async fn verify(State(fake): State<FakePaystack>, headers: HeaderMap, Path(reference): Path<String>) -> Response {
    fake.count("verify");
    if !fake.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid key", "invalid_Key");
    }
    let mut held = fake.hold.subscribe();
    while *held.borrow_and_update() {
        if held.changed().await.is_err() {
            break;
        }
    }
    let inner = fake.inner.lock().unwrap();
    if let Some(status) = inner.verify_fails_with {
        return error(StatusCode::from_u16(status).unwrap(), "An error occurred", "unknown");
    }
    let Some(tx) = inner.transactions.get(&reference) else {
        return error(StatusCode::BAD_REQUEST, "Transaction reference not found", "transaction_not_found");
    };
    let (amount, currency) = inner.overrides.get(&reference).cloned().unwrap_or((tx.amount, tx.currency.clone()));
    let paid = tx.status == "success";
    Json(json!({"status": true, "message": "Verification successful", "data": {
        "id": tx.id, "domain": "test", "status": tx.status, "reference": reference, "amount": amount,
        "message": null, "gateway_response": if paid { "Successful" } else { "The transaction was not completed" },
        "paid_at": if paid { json!("2026-11-28T10:00:00.000Z") } else { Value::Null },
        "created_at": "2026-11-28T09:59:00.000Z", "channel": "card", "currency": currency,
        "metadata": tx.metadata, "fees": 150, "customer": {"email": tx.email}}}))
    .into_response()
}

async fn refund(State(fake): State<FakePaystack>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    fake.count("refund");
    if !fake.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid key", "invalid_Key");
    }
    let mut inner = fake.inner.lock().unwrap();
    let Some(reference) = body["transaction"].as_str().map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "Transaction reference or id is required", "invalid_params");
    };
    let Some(tx) = inner.transactions.get(&reference).cloned() else {
        return error(StatusCode::NOT_FOUND, "Transaction not found", "transaction_not_found");
    };
    if tx.status != "success" {
        return error(StatusCode::BAD_REQUEST, "Cannot refund a transaction that was not successful", "invalid_params");
    }
    let already: i64 = inner.refunds.iter().filter(|(_, r, _)| *r == reference).map(|(_, _, a)| a).sum();
    let amount = match &body["amount"] {
        Value::Null => tx.amount - already,
        v => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(a) => a,
            None => return error(StatusCode::BAD_REQUEST, "Amount should be an integer", "invalid_params"),
        },
    };
    if amount <= 0 || amount + already > tx.amount {
        return error(StatusCode::BAD_REQUEST, "Refund amount cannot be greater than transaction amount", "invalid_params");
    }
    let id = fake.ids.fetch_add(1, Ordering::Relaxed);
    inner.refunds.push((id, reference.clone(), amount));
    Json(json!({"status": true, "message": "Refund has been queued for processing", "data": {
        "transaction": {"id": tx.id, "domain": "test", "reference": reference, "amount": tx.amount, "currency": tx.currency},
        "integration": 463433, "deducted_amount": 0, "channel": null, "merchant_note": "Refund for transaction",
        "customer_note": "Refund for transaction", "status": "pending", "refunded_by": "api", "expected_at": "2026-12-08T10:00:00.000Z",
        "currency": tx.currency, "domain": "test", "amount": amount, "fully_deducted": false, "id": id,
        "createdAt": "2026-11-28T10:05:00.000Z", "updatedAt": "2026-11-28T10:05:00.000Z"}}))
    .into_response()
}
