//! Voids pending ledger transfers whose timeout has passed.
//!
//! Posting a held amount after its timeout is already refused by the database (LG008); this
//! sweep releases the reservation so the money is available again. It runs the service role's
//! entry point exactly as the service role would (`set local role service_role`), and any
//! number of companions may run it at once: the function skips rows another sweep holds.

use std::time::Duration;

use sqlx::{Connection, PgPool};

/// Runs one sweep and returns how many holds expired.
pub async fn sweep(db: &PgPool) -> Result<i32, sqlx::Error> {
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("set local role service_role").execute(&mut *tx).await?;
    let expired: i32 = sqlx::query_scalar("select private.expire_pending_transfers()").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(expired)
}

/// Sweeps every `interval` until the task is dropped. Failures are logged and retried on the
/// next tick: the database being briefly away must not stop the companion.
pub async fn run(db: PgPool, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "ledger: voided pending transfers past their timeout"),
            Err(error) => tracing::warn!(%error, "ledger: expiry sweep failed; retrying next interval"),
        }
    }
}
