//! The sandbox: Paystack's three calls answered in process when no `PAYSTACK_SECRET_KEY` is
//! set, and a local checkout page (`/sandbox/paystack/checkout/{reference}`) with Pay and
//! Decline buttons. Pressing one records the outcome (what verify answers next) and sends the
//! companion a `charge.success` webhook signed with [`super::paystack::SANDBOX_SECRET`], which
//! goes through the same signature check, inbox and worker as Paystack's. A refund is processed
//! at once and announced by a signed `refund.processed`. Nothing leaves the machine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::paystack::PaystackError;

#[derive(Debug, Clone)]
struct SandboxTransaction {
    id: u64,
    amount: i64,
    currency: String,
    status: &'static str,
    callback_url: Option<String>,
}

#[derive(Debug, Default)]
pub struct Sandbox {
    transactions: Mutex<HashMap<String, SandboxTransaction>>,
    next_id: AtomicU64,
}

impl Sandbox {
    fn id(&self) -> u64 {
        4_000_000_000 + self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn initialize(&self, request: &Value, checkout_base: &str) -> Value {
        let reference = request["reference"].as_str().unwrap_or_default().to_owned();
        let tx = SandboxTransaction {
            id: self.id(),
            amount: request["amount"].as_i64().unwrap_or(0),
            currency: request["currency"].as_str().unwrap_or("NGN").to_owned(),
            status: "abandoned",
            callback_url: request["callback_url"].as_str().map(str::to_owned),
        };
        self.transactions.lock().expect("sandbox lock").insert(reference.clone(), tx);
        json!({
            "authorization_url": format!("{checkout_base}/sandbox/paystack/checkout/{reference}"),
            "access_code": format!("sandbox_{reference}"),
            "reference": reference,
        })
    }

    pub fn verify(&self, reference: &str) -> Result<Value, PaystackError> {
        let map = self.transactions.lock().expect("sandbox lock");
        let tx = map.get(reference).ok_or_else(|| PaystackError::Refused { status: 400, message: "Transaction reference not found".into() })?;
        Ok(json!({"id": tx.id, "reference": reference, "status": tx.status, "amount": tx.amount, "currency": tx.currency,
                  "paid_at": null}))
    }

    pub fn refund(&self, reference: &str, amount: i64) -> Result<Value, PaystackError> {
        let map = self.transactions.lock().expect("sandbox lock");
        let tx = map.get(reference).ok_or_else(|| PaystackError::Refused { status: 400, message: "Transaction not found".into() })?;
        if tx.status != "success" {
            return Err(PaystackError::Refused { status: 400, message: "Transaction has not been paid".into() });
        }
        Ok(json!({"id": self.id(), "status": "pending", "amount": amount, "currency": tx.currency,
                  "transaction": {"reference": reference, "amount": tx.amount}}))
    }

    /// The page for a checkout: what is paid, and the two buttons. `None`: no such checkout.
    pub fn page(&self, reference: &str) -> Option<String> {
        let map = self.transactions.lock().expect("sandbox lock");
        let tx = map.get(reference)?;
        let amount = careplane_rules::currency::Currency::parse(&tx.currency)
            .map(|c| c.format_minor(tx.amount))
            .unwrap_or_else(|_| tx.amount.to_string());
        let reference = html_escape(reference);
        let state = match tx.status {
            "abandoned" => format!(
                "<form method=\"post\"><button name=\"action\" value=\"pay\">Pay {} {amount}</button> \
                 <button name=\"action\" value=\"decline\">Decline</button></form>",
                html_escape(&tx.currency)
            ),
            other => format!("<p>This checkout is <strong>{other}</strong>.</p>"),
        };
        Some(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>careplane sandbox checkout</title></head>\
             <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">\
             <h1>Sandbox checkout</h1><p>No money moves: the companion runs without PAYSTACK_SECRET_KEY.</p>\
             <p>Reference <code>{reference}</code></p>{state}</body></html>"
        ))
    }

    /// Records the patient's choice and returns the webhook Paystack would send (`None` for an
    /// unknown or already decided checkout), and where to send the patient next.
    pub fn decide(&self, reference: &str, pay: bool) -> Option<(Value, Option<String>)> {
        let mut map = self.transactions.lock().expect("sandbox lock");
        let tx = map.get_mut(reference)?;
        if tx.status != "abandoned" {
            return None;
        }
        tx.status = if pay { "success" } else { "failed" };
        let event = if pay { "charge.success" } else { "charge.failed" };
        let body = json!({"event": event, "data": {"id": tx.id, "reference": reference, "amount": tx.amount,
                                                   "currency": tx.currency, "status": tx.status}});
        Some((body, tx.callback_url.clone()))
    }

    /// The `refund.processed` webhook for a refund the sandbox accepted (amount as a string, as
    /// Paystack sends it).
    pub fn refund_processed(reference: &str, refund_id: &str, amount: i64, currency: &str) -> Value {
        json!({"event": "refund.processed", "data": {"id": refund_id, "status": "processed", "transaction_reference": reference,
                                                     "refund_reference": format!("sandbox-{refund_id}"),
                                                     "amount": amount.to_string(), "currency": currency}})
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
