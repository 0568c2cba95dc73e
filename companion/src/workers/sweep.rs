//! Periodic sweeps: one service-role function the database offers for timed work, called on an
//! interval.
//!
//! - [`LEDGER_EXPIRY`] voids pending ledger transfers whose timeout has passed. Posting a held
//!   amount after its timeout is already refused by the database (LG008); the sweep releases
//!   the reservation so the money is available again.
//! - [`CONSULTATION_END`] ends calls still running past their slot
//!   (`careplane.auto_end_after_minutes`), marking the appointment fulfilled.
//!
//! Each runs exactly as the service role would (`set local role service_role`), and any number
//! of companions may run them at once: the functions skip or re-check rows another sweep holds.
//! pg_cron can run the same functions instead (docs/operations.md); set the interval to 0.

use std::time::Duration;

use sqlx::{Connection, PgPool};

pub struct Sweep {
    /// For logs: what one unit of work is.
    pub what: &'static str,
    /// `select <function>()`, returning how many rows it handled.
    pub sql: &'static str,
}

pub const LEDGER_EXPIRY: Sweep = Sweep { what: "ledger: voided pending transfers past their timeout", sql: "select private.expire_pending_transfers()" };
pub const CONSULTATION_END: Sweep =
    Sweep { what: "consultations: ended calls past their slot", sql: "select private.end_overdue_consultations()" };

impl Sweep {
    /// Runs once and returns how many rows it handled.
    pub async fn once(&self, db: &PgPool) -> Result<i32, sqlx::Error> {
        let mut conn = db.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("set local role service_role").execute(&mut *tx).await?;
        let n: i32 = sqlx::query_scalar(self.sql).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Runs every `interval` until the task is dropped. Failures are logged and retried on the
    /// next tick: the database being briefly away must not stop the companion.
    pub async fn run(&'static self, db: PgPool, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.once(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "{}", self.what),
                Err(error) => tracing::warn!(%error, sweep = self.sql, "sweep failed; retrying next interval"),
            }
        }
    }
}
