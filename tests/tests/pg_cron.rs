//! Periodic jobs without the companion: the ledger expiry sweep the companion runs on a timer,
//! scheduled with pg_cron instead (as Supabase users schedule jobs), in a cluster of the test's
//! own with pg_cron preloaded. pg_cron 1.4 (Debian 12) schedules by the minute, so this waits
//! up to 90 s for the first run.

use std::time::Duration;

use careplane_tests::{migrate, LedgerFixture, PrivateCluster};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[tokio::test]
async fn pg_cron_runs_the_ledger_expiry_sweep_and_voids_an_expired_hold() {
    let cluster = PrivateCluster::start(&[
        ("shared_preload_libraries", "pg_cron"),
        ("cron.database_name", "careplane_cron"),
        ("cron.host", "127.0.0.1"),
    ])
    .unwrap();
    let mut admin = PgConnection::connect(&cluster.url("postgres")).await.unwrap();
    sqlx::query("create database careplane_cron").execute(&mut admin).await.unwrap();
    let mut owner = PgConnection::connect(&cluster.url("careplane_cron")).await.unwrap();
    migrate(&mut owner).await.unwrap();
    sqlx::query("create extension pg_cron").execute(&mut owner).await.unwrap();

    // A wallet with money, and a hold on it that times out after one second.
    let ledger = LedgerFixture::create(&mut owner, "KES").await.unwrap();
    sqlx::query("select private.post_transfer($1, 'top_up', $2)")
        .bind(Uuid::new_v4())
        .bind(ledger.legs(ledger.clearing, ledger.wallet, 5_000))
        .execute(&mut owner)
        .await
        .unwrap();
    let hold = Uuid::new_v4();
    sqlx::query("select private.reserve_transfer($1, 'consultation_hold', $2, 1)")
        .bind(hold)
        .bind(ledger.legs(ledger.wallet, ledger.revenue, 5_000))
        .execute(&mut owner)
        .await
        .unwrap();

    // The job exactly as docs/operations.md schedules it.
    let job: i64 = sqlx::query_scalar(
        "select cron.schedule('careplane-ledger-expiry', '* * * * *', $$select private.expire_pending_transfers()$$)",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();

    let mut reason: Option<String> = None;
    for _ in 0..180 {
        reason = sqlx::query_scalar("select void_reason from public.ledger_transfers where pending_id = $1")
            .bind(hold)
            .fetch_optional(&mut owner)
            .await
            .unwrap();
        if reason.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(reason.as_deref(), Some("expired"), "pg_cron's run voided the hold; server log:\n{}", cluster.log());
    let status: String = sqlx::query_scalar("select status from cron.job_run_details where jobid = $1 order by runid limit 1")
        .bind(job)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(status, "succeeded");
    let pending: i64 = sqlx::query_scalar("select debits_pending from public.ledger_accounts where id = $1")
        .bind(ledger.wallet)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(pending, 0, "the reservation is released");
}
