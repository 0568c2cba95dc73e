//! Paystack's API as careplane uses it: `POST /transaction/initialize`, `GET
//! /transaction/verify/:reference`, `POST /refund` (Bearer secret key; answers `{status, message,
//! data}`), and the webhook signature (`x-paystack-signature`: lowercase hex HMAC-SHA512 of the
//! raw body with the secret key).
//!
//! Without a secret key the same calls are answered by the in-process [`Sandbox`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::Sha512;

use super::sandbox::Sandbox;
use crate::config::PaystackConfig;
use crate::error::AppError;

/// The secret the sandbox signs its own webhooks with (never used when a key is configured).
pub const SANDBOX_SECRET: &str = "sk_test_careplane_sandbox_development_only";

/// Lowercase hex HMAC-SHA512 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` (hex, as sent in `x-paystack-signature`) is the HMAC-SHA512 of `body`;
/// compared in constant time (`Mac::verify_slice`).
pub fn verify_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else { return false };
    let mut mac = Hmac::<Sha512>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A whole number of minor units from JSON: a number, or a string of digits (Paystack's
/// `refund.processed` sends `"amount": "10000"`). Never through a float.
pub fn minor_units(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A transaction as `GET /transaction/verify/:reference` describes it.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: Option<String>,
    pub reference: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub paid_at: Option<String>,
}

impl Transaction {
    pub fn from_json(data: &Value) -> Option<Self> {
        Some(Transaction {
            id: data.get("id").and_then(id_text),
            reference: data.get("reference")?.as_str()?.to_owned(),
            status: data.get("status")?.as_str()?.to_owned(),
            amount: minor_units(data.get("amount")?)?,
            currency: data.get("currency")?.as_str()?.to_owned(),
            paid_at: data.get("paid_at").or_else(|| data.get("paidAt")).and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// An id Paystack sends as a number or a string.
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `POST /transaction/initialize`'s `data`.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub authorization_url: String,
    pub access_code: String,
}

/// A refund as `POST /refund` answers it.
#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub status: String,
}

/// Why a call to Paystack did not give an answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum PaystackError {
    /// No answer (connection, timeout): 503.
    #[error("Paystack did not answer: {0}")]
    Unavailable(String),
    /// An answer that is not a success (`status: false`, an error status, an unreadable body): 502.
    #[error("Paystack refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl From<PaystackError> for AppError {
    fn from(e: PaystackError) -> Self {
        match &e {
            PaystackError::Unavailable(_) => AppError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                "paystack_unavailable",
                "the payment provider did not answer; retry with the same Idempotency-Key",
            ),
            PaystackError::Refused { status, message } => {
                AppError::status(StatusCode::BAD_GATEWAY, "paystack_error", "the payment provider refused the request")
                    .with_details(json!({"provider_status": status, "provider_message": message}))
            }
        }
    }
}

#[derive(Clone)]
pub enum Paystack {
    Api { base_url: String, secret: SecretString, http: reqwest::Client },
    Sandbox(Arc<Sandbox>),
}

impl Paystack {
    pub fn new(config: &PaystackConfig) -> Self {
        match &config.secret_key {
            Some(secret) => Paystack::Api {
                base_url: config.base_url.clone(),
                secret: secret.clone(),
                http: reqwest::Client::builder().timeout(config.timeout).connect_timeout(Duration::from_secs(5)).build().expect("reqwest client"),
            },
            None => Paystack::Sandbox(Arc::new(Sandbox::default())),
        }
    }

    /// The key webhooks are signed with.
    pub fn webhook_secret(&self) -> &[u8] {
        match self {
            Paystack::Api { secret, .. } => secret.expose_secret().as_bytes(),
            Paystack::Sandbox(_) => SANDBOX_SECRET.as_bytes(),
        }
    }

    pub fn sandbox(&self) -> Option<&Arc<Sandbox>> {
        match self {
            Paystack::Sandbox(s) => Some(s),
            Paystack::Api { .. } => None,
        }
    }

    /// `POST /transaction/initialize`. `checkout_base` is where the sandbox serves its page.
    pub async fn initialize(&self, request: &Value, checkout_base: &str) -> Result<Checkout, PaystackError> {
        let data = match self {
            Paystack::Api { .. } => self.call(reqwest::Method::POST, "/transaction/initialize", Some(request), "initialize").await?,
            Paystack::Sandbox(s) => s.initialize(request, checkout_base),
        };
        let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
        match (text("authorization_url"), text("access_code")) {
            (Some(authorization_url), Some(access_code)) => Ok(Checkout { authorization_url, access_code }),
            _ => Err(PaystackError::Refused { status: 200, message: "initialize answered without authorization_url".into() }),
        }
    }

    /// `GET /transaction/verify/:reference`.
    pub async fn verify(&self, reference: &str) -> Result<Transaction, PaystackError> {
        let data = match self {
            Paystack::Api { .. } => {
                let path = format!("/transaction/verify/{}", urlencode(reference));
                self.call(reqwest::Method::GET, &path, None, "verify").await?
            }
            Paystack::Sandbox(s) => s.verify(reference)?,
        };
        Transaction::from_json(&data)
            .ok_or_else(|| PaystackError::Refused { status: 200, message: "verify answered without reference, status, amount or currency".into() })
    }

    /// `POST /refund` `{transaction, amount}`.
    pub async fn refund(&self, reference: &str, amount: i64) -> Result<Refund, PaystackError> {
        let body = json!({"transaction": reference, "amount": amount});
        let data = match self {
            Paystack::Api { .. } => self.call(reqwest::Method::POST, "/refund", Some(&body), "refund").await?,
            Paystack::Sandbox(s) => s.refund(reference, amount)?,
        };
        let id = data.get("id").and_then(id_text);
        match id {
            Some(id) => Ok(Refund { id, status: data.get("status").and_then(Value::as_str).unwrap_or("pending").to_owned() }),
            None => Err(PaystackError::Refused { status: 200, message: "refund answered without an id".into() }),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>, op: &'static str) -> Result<Value, PaystackError> {
        let Paystack::Api { base_url, secret, http } = self else { unreachable!("only the API calls out") };
        let mut request = http.request(method, format!("{base_url}{path}")).bearer_auth(secret.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let outcome = async {
            let response = request.send().await.map_err(|e| PaystackError::Unavailable(without_url(&e)))?;
            let status = response.status();
            let body: Value = response.json().await.map_err(|e| {
                if status.is_server_error() {
                    PaystackError::Refused { status: status.as_u16(), message: status.to_string() }
                } else {
                    PaystackError::Unavailable(without_url(&e))
                }
            })?;
            let ok = body.get("status").and_then(Value::as_bool) == Some(true);
            if !status.is_success() || !ok {
                let message = body.get("message").and_then(Value::as_str).unwrap_or("no message").chars().take(300).collect();
                return Err(PaystackError::Refused { status: status.as_u16(), message });
            }
            Ok(body.get("data").cloned().unwrap_or(Value::Null))
        }
        .await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(PaystackError::Unavailable(_)) => "unavailable",
            Err(PaystackError::Refused { .. }) => "refused",
        };
        metrics::counter!("careplane_paystack_requests_total", "op" => op, "outcome" => label).increment(1);
        outcome
    }
}

/// A reqwest error's text without its URL (which may carry a reference; no secrets are in it,
/// but logs stay short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    format!("{kind} error")
}

/// Percent-encodes a path segment (references are `[A-Za-z0-9_.=-]`, so this rarely changes anything).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'=' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paystack's documented example, as the issue gives it.
    #[test]
    fn signature_test_vector() {
        let body = br#"{"event":"charge.success","data":{"reference":"qTPrJoy9Bx","amount":10000,"currency":"NGN","status":"success"}}"#;
        let expected = "a23563e72579e8f4c95c88a5dcd0daa1a65696be6f5bb07e1f898762df30b7fe05b252d6d23ab53469e547116e06d56c575eef4ea231bae98a34aee0b6e54b05";
        assert_eq!(sign(b"sk_test_dummy", body), expected);
        assert!(verify_signature(b"sk_test_dummy", body, expected));
        assert!(verify_signature(b"sk_test_dummy", body, &expected.to_uppercase()), "hex is case-insensitive");
        assert!(!verify_signature(b"sk_test_other", body, expected));
        assert!(!verify_signature(b"sk_test_dummy", &body[1..], expected));
        assert!(!verify_signature(b"sk_test_dummy", body, &expected[..64]), "a truncated signature is refused");
        assert!(!verify_signature(b"sk_test_dummy", body, "not hex"));
        assert!(!verify_signature(b"sk_test_dummy", body, ""));
    }

    #[test]
    fn amounts_arrive_as_numbers_or_strings() {
        assert_eq!(minor_units(&json!(10000)), Some(10000));
        assert_eq!(minor_units(&json!("10000")), Some(10000));
        assert_eq!(minor_units(&json!("100.5")), None);
        assert_eq!(minor_units(&json!(100.5)), None);
        assert_eq!(minor_units(&json!(null)), None);
    }
}
