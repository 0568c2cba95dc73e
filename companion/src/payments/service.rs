//! Applying what Paystack says to the database: settle a payment from a verification, post a
//! processed refund, request and submit refunds. Each runs in one transaction as the service
//! role: lock and read (`private.payment_facts`), decide (`careplane_rules::payments`), write
//! (`private.payment_apply`, which posts through the ledger's writer).

use std::net::IpAddr;

use axum::http::StatusCode;
use careplane_rules::payments::{self as rules, PaymentError, PaymentStatus, RefundStatus, Settlement, Split};
use careplane_rules::verdict::Refusal;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::paystack::{id_text, minor_units, verify_signature, PaystackError};
use crate::error::AppError;
use crate::AppState;

/// Why applying something did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Worth retrying later (Paystack or the database did not answer).
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help (no such payment, a rule refused): a person must look.
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Retry(format!("database: {e}"))
    }
}

impl From<PaystackError> for Failure {
    /// Paystack refusing a request (a 4xx: an unknown reference, a bad key) will refuse it again;
    /// anything else may pass on a later attempt.
    fn from(e: PaystackError) -> Self {
        match &e {
            PaystackError::Refused { status, .. } if (400..500).contains(status) => Failure::Permanent(e.to_string()),
            _ => Failure::Retry(e.to_string()),
        }
    }
}

impl From<Failure> for AppError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Retry(m) => AppError::Internal(anyhow::anyhow!(m)),
            Failure::Permanent(m) => AppError::status(StatusCode::CONFLICT, "payment_not_applied", m),
        }
    }
}

/// A rule's refusal as the companion answers it (`PTxyz` → status xyz), like a database refusal.
pub fn refusal(e: PaymentError) -> AppError {
    let status = e.sqlstate().get(2..).and_then(|s| s.parse::<u16>().ok()).and_then(|n| StatusCode::from_u16(n).ok());
    let mut details = serde_json::Map::new();
    details.extend(e.detail());
    if let Some(hint) = e.hint() {
        details.insert("hint".into(), hint.into());
    }
    AppError::status(status.unwrap_or(StatusCode::UNPROCESSABLE_ENTITY), e.code(), e.to_string()).with_details(Value::Object(details))
}

/// A transaction acting as the service role (as PostgREST would for a service key).
pub async fn service_tx(db: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("set local role service_role").execute(&mut *tx).await?;
    Ok(tx)
}

/// The locked payment and what its decisions read (`private.payment_facts`).
pub struct Facts(pub Value);

impl Facts {
    pub fn payment(&self) -> &Value {
        &self.0["payment"]
    }
    pub fn id(&self) -> Uuid {
        self.payment()["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default()
    }
    pub fn reference(&self) -> &str {
        self.payment()["provider_reference"].as_str().unwrap_or_default()
    }
    pub fn status(&self) -> PaymentStatus {
        PaymentStatus::parse(self.payment()["status"].as_str().unwrap_or_default()).unwrap_or(PaymentStatus::NeedsReview)
    }
    pub fn amount(&self) -> i64 {
        self.payment()["amount_minor"].as_i64().unwrap_or(0)
    }
    pub fn currency(&self) -> &str {
        self.payment()["currency"].as_str().unwrap_or_default()
    }
    pub fn refunded(&self) -> i64 {
        self.payment()["refunded_minor"].as_i64().unwrap_or(0)
    }
    pub fn refunds(&self) -> &[Value] {
        self.0["refunds"].as_array().map(Vec::as_slice).unwrap_or(&[])
    }
    fn practitioner(&self) -> Option<Uuid> {
        self.0["practitioner_profile_id"].as_str().and_then(|s| s.parse().ok())
    }
    fn charge(&self) -> Split {
        Split { payable: self.0["charge"]["payable"].as_i64().unwrap_or(0), fee: self.0["charge"]["fee"].as_i64().unwrap_or(0) }
    }
}

fn refund_status(r: &Value) -> Option<RefundStatus> {
    RefundStatus::parse(r["status"].as_str().unwrap_or_default())
}

pub async fn facts(conn: &mut PgConnection, reference: &str) -> Result<Option<Facts>, sqlx::Error> {
    let v: Option<Value> = sqlx::query_scalar("select private.payment_facts($1)").bind(reference).fetch_one(conn).await?;
    Ok(v.map(Facts))
}

pub async fn apply(conn: &mut PgConnection, payment: Uuid, change: &Value) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar("select to_jsonb(private.payment_apply($1, $2))").bind(payment).bind(change).fetch_one(conn).await
}

async fn inbox_done(conn: &mut PgConnection, inbox: Option<i64>) -> Result<(), sqlx::Error> {
    if let Some(id) = inbox {
        sqlx::query("select private.webhook_done($1)").bind(id).execute(conn).await?;
    }
    Ok(())
}

/// The accounts a payment in `currency` moves money between.
struct Accounts {
    clearing: Uuid,
    payable: Uuid,
    fees: Uuid,
}

async fn account_for(conn: &mut PgConnection, owner: Option<Uuid>, kind: &str, currency: &str, flags: &str) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("select private.ledger_account_for($1, $2, $3, $4)")
        .bind(owner)
        .bind(kind)
        .bind(currency)
        .bind(flags)
        .fetch_one(conn)
        .await
}

async fn accounts(conn: &mut PgConnection, practitioner: Uuid, currency: &str) -> Result<Accounts, sqlx::Error> {
    // Clearing is what Paystack holds for us (debit balance); payable and fees are owed or
    // earned (credit balances): neither may go below zero.
    let clearing = account_for(conn, None, "payment_clearing", currency, "credits_must_not_exceed_debits").await?;
    let payable = account_for(conn, Some(practitioner), "practitioner_payable", currency, "debits_must_not_exceed_credits").await?;
    let fees = account_for(conn, None, "platform_fees", currency, "debits_must_not_exceed_credits").await?;
    Ok(Accounts { clearing, payable, fees })
}

/// The legs of a charge (`refund == false`) or of a refund (the charge's legs swapped): the
/// clearing account against the practitioner's payable and the platform's fees, zero legs left out.
fn legs(a: &Accounts, split: Split, currency: &str, refund: bool) -> Value {
    let (toward, back) = if refund { ("credit", "debit") } else { ("debit", "credit") };
    let mut legs = vec![json!({"account_id": a.clearing, "direction": toward, "amount": split.total(), "currency": currency})];
    for (account, amount) in [(a.payable, split.payable), (a.fees, split.fee)] {
        if amount > 0 {
            legs.push(json!({"account_id": account, "direction": back, "amount": amount, "currency": currency}));
        }
    }
    if refund {
        legs.rotate_left(1); // debits first, as the charge lists them
    }
    Value::Array(legs)
}

/// Asks Paystack about `reference` and applies the answer: the one path for the webhook worker,
/// `GET /v1/payments/{reference}` and reconciliation. `inbox`: the webhook row this settles,
/// marked processed in the same transaction. Returns the payment's status afterwards.
pub async fn settle(state: &AppState, reference: &str, inbox: Option<i64>) -> Result<PaymentStatus, Failure> {
    let verified = state.payments.paystack.verify(reference).await?;
    let mut tx = service_tx(&state.db).await?;
    let Some(f) = facts(&mut tx, reference).await? else {
        return Err(Failure::Permanent(format!("no payment has reference {reference}")));
    };
    let config = &state.config.paystack;
    let payment = rules::Payment {
        reference: f.reference().to_owned(),
        status: f.status(),
        amount: f.amount(),
        currency: f.currency().to_owned(),
        age_seconds: f.0["age_seconds"].as_i64().unwrap_or(0),
    };
    let answer = rules::Verification {
        reference: verified.reference.clone(),
        status: verified.status.clone(),
        amount: verified.amount,
        currency: verified.currency.clone(),
    };
    let decision = rules::settle(&payment, &answer, config.platform_fee_bps, config.abandon_after_seconds)
        .map_err(|e| Failure::Permanent(e.to_string()))?;
    let change = match &decision {
        Settlement::Post(split) => {
            let practitioner = f.practitioner().ok_or_else(|| Failure::Permanent(format!("payment {reference} has no practitioner to pay")))?;
            let a = accounts(&mut tx, practitioner, f.currency()).await?;
            Some(json!({
                "status": PaymentStatus::Succeeded.as_str(), "paid": true, "provider_transaction_id": verified.id,
                "transfer": {"id": f.id(), "kind": "payment", "legs": legs(&a, *split, f.currency(), false),
                             "description": format!("payment {reference}")},
                "announce": true, "receipt": true,
            }))
        }
        Settlement::Fail => Some(json!({"status": PaymentStatus::Failed.as_str(), "announce": true})),
        Settlement::Review(m) => {
            tracing::warn!(payment_id = %f.id(), reason = %m.to_json()["code"], "payment: Paystack's answer does not match; needs review");
            Some(json!({"status": PaymentStatus::NeedsReview.as_str(), "review_reason": m.to_json(), "announce": true}))
        }
        Settlement::Wait | Settlement::AlreadySettled => None,
    };
    let mut status = f.status();
    if let Some(change) = change {
        let row = apply(&mut tx, f.id(), &change).await?;
        status = PaymentStatus::parse(row["status"].as_str().unwrap_or_default()).unwrap_or(status);
    }
    inbox_done(&mut tx, inbox).await?;
    tx.commit().await?;
    if matches!(decision, Settlement::Post(_)) {
        metrics::counter!("careplane_payments_settled_total", "outcome" => "succeeded").increment(1);
    } else if let Settlement::Review(_) | Settlement::Fail = decision {
        metrics::counter!("careplane_payments_settled_total", "outcome" => status.as_str()).increment(1);
    }
    Ok(status)
}

/// Posts a refund Paystack processed (`refund.processed`'s `data`), exactly once: the transfer's
/// id is the refund's, and a refund already processed is left alone.
pub async fn refund_processed(state: &AppState, data: &Value, inbox: Option<i64>) -> Result<(), Failure> {
    let reference = data["transaction_reference"]
        .as_str()
        .or_else(|| data["transaction"]["reference"].as_str())
        .ok_or_else(|| Failure::Permanent("refund.processed without transaction_reference".into()))?;
    let amount = minor_units(&data["amount"]).ok_or_else(|| Failure::Permanent("refund.processed without a whole amount".into()))?;
    let currency = data["currency"].as_str().unwrap_or_default();
    let provider_id = id_text(&data["id"]).or_else(|| id_text(&data["refund_reference"]));
    let mut tx = service_tx(&state.db).await?;
    let Some(f) = facts(&mut tx, reference).await? else {
        return Err(Failure::Permanent(format!("no payment has reference {reference}")));
    };
    let known = |r: &&Value| provider_id.is_some() && r["provider_refund_id"].as_str() == provider_id.as_deref();
    let target = f.refunds().iter().find(known).or_else(|| {
        // A refund whose submission answer is not stored yet: the same amount, still open.
        f.refunds().iter().find(|r| {
            r["provider_refund_id"].is_null()
                && r["amount_minor"].as_i64() == Some(amount)
                && matches!(refund_status(r), Some(RefundStatus::Requested | RefundStatus::Submitted))
        })
    });
    if target.is_some_and(|r| refund_status(r) == Some(RefundStatus::Processed)) {
        inbox_done(&mut tx, inbox).await?;
        tx.commit().await?;
        return Ok(());
    }
    let refund_id = target.and_then(|r| r["id"].as_str()).and_then(|s| s.parse().ok()).unwrap_or_else(Uuid::new_v4);
    let other_in_flight = f.refunds().iter().any(|r| {
        r["id"].as_str() != Some(&refund_id.to_string()) && refund_status(r) == Some(RefundStatus::Submitted)
    });
    let posting = rules::refund_processed(f.currency(), f.charge(), f.refunded(), other_in_flight, amount, currency)
        .map_err(|e| Failure::Permanent(format!("refund of payment {reference}: {e}")))?;
    let practitioner = f.practitioner().ok_or_else(|| Failure::Permanent(format!("payment {reference} has no practitioner")))?;
    let a = accounts(&mut tx, practitioner, f.currency()).await?;
    let change = json!({
        "status": posting.status_after.as_str(), "refunded_minor": posting.refunded_after,
        "transfer": {"id": refund_id, "kind": "payment_refund", "legs": legs(&a, posting.split, f.currency(), true),
                     "description": format!("refund of payment {reference}"),
                     "reverses": if posting.reverses_charge { Some(f.id()) } else { None }},
        "refund": {"id": refund_id, "amount_minor": amount, "reason": "provider", "status": RefundStatus::Processed.as_str(),
                   "provider_refund_id": provider_id},
        "announce": true,
    });
    apply(&mut tx, f.id(), &change).await?;
    inbox_done(&mut tx, inbox).await?;
    tx.commit().await?;
    metrics::counter!("careplane_payment_refunds_total", "outcome" => "processed").increment(1);
    Ok(())
}

/// Records a refund request the rules allow (`amount`: `None` refunds what remains). Returns
/// the refund's id and amount.
pub async fn request_refund(
    state: &AppState,
    reference: &str,
    amount: Option<i64>,
    requested_by: Option<Uuid>,
) -> Result<(Uuid, i64), AppError> {
    let mut tx = service_tx(&state.db).await.map_err(crate::db::errors::db_error)?;
    let f = facts(&mut tx, reference)
        .await
        .map_err(crate::db::errors::db_error)?
        .ok_or_else(|| AppError::NotFound(format!("no payment {reference}")))?;
    let in_flight: i64 = f
        .refunds()
        .iter()
        .filter(|r| matches!(refund_status(r), Some(RefundStatus::Requested | RefundStatus::Submitted)))
        .filter_map(|r| r["amount_minor"].as_i64())
        .sum();
    let amount = rules::refund_amount(reference, f.status(), f.amount(), f.refunded(), in_flight, amount).map_err(refusal)?;
    let id = Uuid::new_v4();
    // The refund worker takes it only if this submission never records an answer (a crash).
    let lease = state.config.paystack.inbox_lease.as_secs_f64();
    let change = json!({"refund": {"id": id, "amount_minor": amount, "reason": "admin", "status": "requested",
                                   "requested_by": requested_by, "retry_in_seconds": lease}});
    apply(&mut tx, f.id(), &change).await.map_err(crate::db::errors::db_error)?;
    tx.commit().await.map_err(crate::db::errors::db_error)?;
    Ok((id, amount))
}

/// Submits a recorded refund to Paystack and records the answer. On failure the refund is
/// `failed` (`retry_in`: `None`) or stays requested and is retried after `retry_in` seconds.
pub async fn submit_refund(state: &AppState, refund: Uuid, reference: &str, amount: i64, retry_in: Option<f64>) -> Result<String, Failure> {
    let answer = state.payments.paystack.refund(reference, amount).await;
    let mut tx = service_tx(&state.db).await?;
    let f = facts(&mut tx, reference).await?.ok_or_else(|| Failure::Permanent(format!("no payment {reference}")))?;
    let current = f.refunds().iter().find(|r| r["id"].as_str() == Some(&refund.to_string())).and_then(refund_status);
    let provider_id = match &answer {
        Ok(r) => {
            // A refund.processed that overtook this answer has done everything already.
            if current != Some(RefundStatus::Processed) {
                let mut change = json!({"refund": {"id": refund, "status": "submitted", "provider_refund_id": r.id}, "announce": true});
                if matches!(f.status(), PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded) {
                    change["status"] = PaymentStatus::RefundPending.as_str().into();
                }
                apply(&mut tx, f.id(), &change).await?;
            }
            Some(r.id.clone())
        }
        Err(e) => {
            let mut r = json!({"id": refund, "last_error": e.to_string()});
            match retry_in {
                Some(seconds) => r["retry_in_seconds"] = seconds.into(),
                None => r["status"] = "failed".into(),
            }
            apply(&mut tx, f.id(), &json!({"refund": r})).await?;
            None
        }
    };
    tx.commit().await?;
    match (answer, provider_id) {
        (Ok(_), Some(id)) => {
            metrics::counter!("careplane_payment_refunds_total", "outcome" => "submitted").increment(1);
            if state.payments.paystack.sandbox().is_some() {
                // The sandbox processes refunds at once and says so with a signed webhook.
                let body = super::sandbox::Sandbox::refund_processed(reference, &id, amount, f.currency());
                let state = state.clone();
                tokio::spawn(async move { send_self(&state, &body).await });
            }
            Ok(id)
        }
        (Err(e), _) => Err(Failure::Retry(e.to_string())),
        (Ok(_), None) => Err(Failure::Retry("refund answer not recorded".into())),
    }
}

/// The sandbox sending itself a webhook, signed with its secret, through the same door.
pub async fn send_self(state: &AppState, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("JSON serialises");
    let signature = super::paystack::sign(state.payments.paystack.webhook_secret(), &bytes);
    if let Err(e) = receive(state, None, Some(&signature), &bytes).await {
        tracing::warn!(error = %e, "sandbox: its own webhook was refused");
    }
}

/// What `POST /webhooks/paystack` does: source check, signature check (constant time), store
/// once. Returns whether the event was new. Nothing is stored unless both checks pass.
pub async fn receive(state: &AppState, source: Option<IpAddr>, signature: Option<&str>, body: &[u8]) -> Result<bool, AppError> {
    let allowed = &state.config.paystack.allowed_ips;
    if let Some(ip) = source {
        if !allowed.is_empty() && !allowed.contains(&ip) {
            metrics::counter!("careplane_paystack_webhooks_total", "outcome" => "source_refused").increment(1);
            return Err(AppError::forbidden("webhook_source_refused", "webhooks are accepted only from PAYSTACK_ALLOWED_IPS"));
        }
    }
    let valid = signature.is_some_and(|s| verify_signature(state.payments.paystack.webhook_secret(), body, s));
    if !valid {
        metrics::counter!("careplane_paystack_webhooks_total", "outcome" => "bad_signature").increment(1);
        return Err(AppError::status(StatusCode::UNAUTHORIZED, "invalid_signature", "x-paystack-signature is missing or wrong"));
    }
    let payload: Value = serde_json::from_slice(body)
        .map_err(|_| AppError::status(StatusCode::BAD_REQUEST, "invalid_json", "the body is not JSON"))?;
    let event = payload["event"].as_str().filter(|e| !e.is_empty() && e.len() <= 100).ok_or_else(|| {
        AppError::status(StatusCode::BAD_REQUEST, "invalid_event", "the body has no event name")
    })?;
    let key = event_key(event, &payload["data"], body);
    // One statement, its own transaction, as the service role: committed before the 200.
    let new: bool = sqlx::query_scalar("select private.webhook_store('paystack', $1, $2, $3)")
        .bind(&key)
        .bind(event)
        .bind(&payload)
        .fetch_one(&state.payments.service_db)
        .await
        .map_err(crate::db::errors::db_error)?;
    metrics::counter!("careplane_paystack_webhooks_total", "outcome" => if new { "stored" } else { "duplicate" }).increment(1);
    if new {
        state.payments.inbox_wake.notify_one();
    }
    Ok(new)
}

/// Paystack sends no event id: a charge event is one per reference, a refund event one per
/// refund; anything else is identified by its body.
pub fn event_key(event: &str, data: &Value, body: &[u8]) -> String {
    let text = |v: &Value| id_text(v);
    let id = if event.starts_with("charge.") {
        text(&data["reference"]).or_else(|| text(&data["id"]))
    } else if event.starts_with("refund.") {
        text(&data["id"]).or_else(|| text(&data["refund_reference"])).or_else(|| {
            Some(format!("{}:{}", text(&data["transaction_reference"])?, minor_units(&data["amount"])?))
        })
    } else {
        None
    };
    match id {
        Some(id) => format!("{event}:{id}"),
        None => format!("{event}:sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_deliveries_share_a_key_and_different_events_do_not() {
        let data = json!({"id": 302961, "reference": "cp_abc", "amount": 10000});
        assert_eq!(event_key("charge.success", &data, b"x"), "charge.success:cp_abc");
        assert_eq!(event_key("charge.success", &data, b"y"), "charge.success:cp_abc", "the body does not matter");
        let refund = json!({"id": "77", "transaction_reference": "cp_abc", "amount": "5000"});
        assert_eq!(event_key("refund.processed", &refund, b""), "refund.processed:77");
        let no_id = json!({"transaction_reference": "cp_abc", "amount": "5000"});
        assert_eq!(event_key("refund.processed", &no_id, b""), "refund.processed:cp_abc:5000");
        assert!(event_key("transfer.success", &json!({}), b"z").starts_with("transfer.success:sha256:"));
    }

    #[test]
    fn refund_legs_mirror_the_charge() {
        let a = Accounts { clearing: Uuid::from_u128(1), payable: Uuid::from_u128(2), fees: Uuid::from_u128(3) };
        let split = Split { payable: 9_750, fee: 250 };
        let charge = legs(&a, split, "NGN", false);
        let refund = legs(&a, split, "NGN", true);
        assert_eq!(charge[0]["direction"], "debit");
        assert_eq!(charge[0]["amount"], 10_000);
        for leg in refund.as_array().unwrap() {
            let twin = charge.as_array().unwrap().iter().find(|c| c["account_id"] == leg["account_id"]).unwrap();
            assert_eq!(twin["amount"], leg["amount"]);
            assert_ne!(twin["direction"], leg["direction"]);
        }
        assert_eq!(legs(&a, Split { payable: 100, fee: 0 }, "NGN", false).as_array().unwrap().len(), 2, "no zero legs");
    }
}
