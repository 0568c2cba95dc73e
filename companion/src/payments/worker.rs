//! The payment workers: the webhook inbox (claims `provider = 'paystack'` rows with SKIP
//! LOCKED and a lease, applies each, retries with backoff, gives up after
//! `PAYSTACK_INBOX_MAX_ATTEMPTS`), reconciliation (verifies payments pending past
//! `PAYSTACK_RECONCILE_AFTER_SECONDS`), and refunds requested by cancellations.
//!
//! Any number of companions may run them at once: claims skip what another holds, and every
//! application locks its payment and is idempotent (a settled payment stays settled; a transfer
//! id is posted once).

use std::time::Duration;

use careplane_rules::payments::{self as rules, RefundStatus};
use serde_json::{json, Value};
use sqlx::types::chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::service::{self, service_tx, Failure};
use crate::AppState;

/// How long to wait before attempt `attempt + 1`: 2, 4, 8 … seconds, at most 5 minutes.
pub fn retry_delay(attempt: i32) -> Duration {
    Duration::from_secs(1u64 << attempt.clamp(1, 8)).min(Duration::from_secs(300))
}

struct InboxRow {
    id: i64,
    event_type: String,
    payload: Value,
    received_at: DateTime<Utc>,
    attempts: i32,
}

/// One claimed row, applied. The charge events re-verify with Paystack (the webhook's own
/// figures are never trusted); the refund events post the reversal.
async fn process(state: &AppState, row: &InboxRow) -> Result<(), Failure> {
    let data = &row.payload["data"];
    match row.event_type.as_str() {
        "charge.success" | "charge.failed" => {
            let reference = data["reference"].as_str().ok_or_else(|| Failure::Permanent("charge event without reference".into()))?;
            service::settle(state, reference, Some(row.id)).await?;
            if row.event_type == "charge.success" {
                let latency = (Utc::now() - row.received_at).to_std().unwrap_or_default();
                metrics::histogram!("careplane_payment_webhook_to_ledger_seconds").record(latency.as_secs_f64());
            }
            Ok(())
        }
        "refund.processed" => service::refund_processed(state, data, Some(row.id)).await,
        // Nothing careplane acts on: recorded, done.
        _ => {
            let mut tx = service_tx(&state.db).await?;
            sqlx::query("select private.webhook_done($1)").bind(row.id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }
    }
}

/// Claims and applies due rows until none is due; returns how many were claimed.
pub async fn drain_inbox(state: &AppState) -> Result<usize, sqlx::Error> {
    let config = &state.config.paystack;
    let lease = i32::try_from(config.inbox_lease.as_secs()).unwrap_or(i32::MAX);
    let mut claimed = 0;
    loop {
        let mut tx = service_tx(&state.db).await?;
        let rows: Vec<(i64, String, Value, DateTime<Utc>, i32)> = sqlx::query_as(
            "select id, event_type, payload, received_at, attempts from private.webhook_claim('paystack', 16, $1)",
        )
        .bind(lease)
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<InboxRow> = rows
            .into_iter()
            .map(|(id, event_type, payload, received_at, attempts)| InboxRow { id, event_type, payload, received_at, attempts })
            .collect();
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(claimed);
        }
        claimed += rows.len();
        // Rows of different payments are applied concurrently (each locks its payment; a
        // payment's rows queue on that lock); the batch is finished before the next claim.
        let mut batch = tokio::task::JoinSet::new();
        for row in rows {
            let state = state.clone();
            batch.spawn(async move { apply_row(&state, row).await });
        }
        while let Some(done) = batch.join_next().await {
            match done {
                Ok(result) => result?,
                Err(e) => tracing::error!(error = %e, "paystack inbox: a row's task failed"),
            }
        }
    }
}

/// Applies one claimed row and records the outcome (retry with backoff, or given up).
async fn apply_row(state: &AppState, row: InboxRow) -> Result<(), sqlx::Error> {
    let config = &state.config.paystack;
    let row = &row;
    let (outcome, retry_in) = match process(state, row).await {
        Ok(()) => ("applied", None),
        Err(Failure::Retry(e)) if u32::try_from(row.attempts).unwrap_or(u32::MAX) < config.inbox_max_attempts => {
            tracing::warn!(inbox_id = row.id, event = %row.event_type, attempt = row.attempts, error = %e, "paystack inbox: will retry");
            ("retry", Some((e, retry_delay(row.attempts).as_secs_f64())))
        }
        Err(e) => {
            tracing::error!(inbox_id = row.id, event = %row.event_type, attempt = row.attempts, error = %e, "paystack inbox: given up");
            ("dead", Some((e.to_string(), -1.0)))
        }
    };
    metrics::counter!("careplane_webhook_inbox_processed_total", "provider" => "paystack", "outcome" => outcome).increment(1);
    if let Some((error, seconds)) = retry_in {
        let mut tx = service_tx(&state.db).await?;
        sqlx::query("select private.webhook_failed($1, $2, $3)")
            .bind(row.id)
            .bind(error)
            .bind((seconds >= 0.0).then_some(seconds))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The inbox worker: drains on every wake-up (a stored webhook) and every `PAYSTACK_INBOX_POLL_MS`.
pub async fn run_inbox(state: AppState) {
    let poll = state.config.paystack.inbox_poll;
    let wake = state.payments.inbox_wake.clone();
    loop {
        if let Err(error) = drain_inbox(&state).await {
            tracing::warn!(%error, "paystack inbox: database unavailable; retrying");
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// One reconciliation pass: every payment pending past the age is verified and the answer
/// applied. Returns how many were looked at.
pub async fn reconcile(state: &AppState) -> Result<usize, sqlx::Error> {
    let age = state.config.paystack.reconcile_after;
    let mut tx = service_tx(&state.db).await?;
    let references: Vec<String> = sqlx::query_scalar("select private.payments_to_reconcile(make_interval(secs => $1), 100)")
        .bind(age.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    for reference in &references {
        let outcome = match service::settle(state, reference, None).await {
            Ok(status) => status.as_str(),
            Err(error) => {
                tracing::warn!(%error, "paystack reconciliation: a payment could not be verified");
                "error"
            }
        };
        metrics::counter!("careplane_payment_reconciliations_total", "outcome" => outcome).increment(1);
    }
    Ok(references.len())
}

/// Runs `pass` every `interval` until the task is dropped; a failed pass is logged and the next
/// tick tries again (the database being briefly away must not stop the worker).
async fn every<F, Fut>(interval: Duration, what: &'static str, pass: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, sqlx::Error>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = pass().await {
            tracing::warn!(%error, "{what}: database unavailable; retrying next interval");
        }
    }
}

/// Refunds requested by cancellations (and admin requests whose submission must be retried):
/// the rules decide the window and the amount; accepted ones go to Paystack.
pub async fn refund_pass(state: &AppState) -> Result<usize, sqlx::Error> {
    let lease = i32::try_from(state.config.paystack.inbox_lease.as_secs()).unwrap_or(i32::MAX);
    let mut tx = service_tx(&state.db).await?;
    let due: Vec<(Uuid, String)> = sqlx::query_as("select id, reference from private.claim_refunds(10, $1)")
        .bind(lease)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    for (id, reference) in &due {
        if let Err(error) = refund_one(state, *id, reference).await {
            tracing::warn!(refund_id = %id, %error, "payment refunds: will retry");
        }
    }
    Ok(due.len())
}

async fn refund_one(state: &AppState, id: Uuid, reference: &str) -> Result<(), Failure> {
    let window = state.config.paystack.refund_window_hours;
    let mut tx = service_tx(&state.db).await?;
    let f = service::facts(&mut tx, reference).await?.ok_or_else(|| Failure::Permanent(format!("no payment {reference}")))?;
    let Some(refund) = f.refunds().iter().find(|r| r["id"].as_str() == Some(&id.to_string())).cloned() else {
        return Ok(());
    };
    if RefundStatus::parse(refund["status"].as_str().unwrap_or_default()) != Some(RefundStatus::Requested) {
        return Ok(());
    }
    let appointment = &f.0["appointment"];
    let in_window = refund["reason"] != "appointment_cancelled"
        || rules::cancellation_refunded(appointment["starts_at"].as_i64(), appointment["changed_at"].as_i64().unwrap_or(i64::MAX), window);
    let others: i64 = f
        .refunds()
        .iter()
        .filter(|r| r["id"] != refund["id"] && matches!(r["status"].as_str(), Some("requested" | "submitted")))
        .filter_map(|r| r["amount_minor"].as_i64())
        .sum();
    let amount = match in_window {
        false => Err(json!({"code": "outside_refund_window", "window_hours": window})),
        true => rules::refund_amount(reference, f.status(), f.amount(), f.refunded(), others, refund["amount_minor"].as_i64())
            .map_err(|e| json!({"code": careplane_rules::verdict::Refusal::code(&e), "message": e.to_string()})),
    };
    let amount = match amount {
        Ok(amount) => amount,
        Err(decision) => {
            service::apply(&mut tx, f.id(), &json!({"refund": {"id": id, "status": "declined", "decision": decision}})).await?;
            tx.commit().await?;
            return Ok(());
        }
    };
    service::apply(&mut tx, f.id(), &json!({"refund": {"id": id, "amount_minor": amount}})).await?;
    tx.commit().await?;
    let attempts = refund["attempts"].as_i64().unwrap_or(0);
    let retry = retry_delay(i32::try_from(attempts + 1).unwrap_or(8)).as_secs_f64();
    service::submit_refund(state, id, reference, amount, Some(retry)).await.map(|_| ())
}

/// The inbox as `/health/detailed` and `/metrics` report it.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct InboxStats {
    /// Rows stored and not yet applied.
    pub waiting: i64,
    /// Of those, rows whose last attempt failed (retried with backoff).
    pub retrying: i64,
    /// Rows given up after the last attempt: a person must look.
    pub dead: i64,
    /// Age of the oldest waiting row.
    pub oldest_waiting_seconds: f64,
}

pub async fn inbox_stats(db: &PgPool) -> Result<InboxStats, sqlx::Error> {
    let mut tx = service_tx(db).await?;
    let (waiting, retrying, dead, oldest_waiting_seconds): (i64, i64, i64, f64) =
        sqlx::query_as("select * from private.webhook_inbox_stats('paystack')").fetch_one(&mut *tx).await?;
    tx.rollback().await?;
    Ok(InboxStats { waiting, retrying, dead, oldest_waiting_seconds })
}

/// Spawns the payment workers (main calls this once).
pub fn spawn_all(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    if !state.config.paystack.workers {
        return Vec::new();
    }
    let refunds = state.clone();
    let mut tasks = vec![
        tokio::spawn(run_inbox(state.clone())),
        tokio::spawn(async move {
            let interval = refunds.config.paystack.inbox_poll.max(Duration::from_secs(1));
            every(interval, "payment refunds", || refund_pass(&refunds)).await
        }),
    ];
    if let Some(interval) = state.config.paystack.reconcile_interval {
        let reconciler = state.clone();
        tasks.push(tokio::spawn(async move { every(interval, "paystack reconciliation", || reconcile(&reconciler)).await }));
    }
    tasks
}
