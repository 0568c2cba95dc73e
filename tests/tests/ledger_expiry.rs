//! The running companion voids ledger holds whose timeout has passed, releasing the money.

use std::time::Duration;

use careplane_tests::{redis_url, Companion, LedgerFixture, TestDb};
use sqlx::Connection;
use uuid::Uuid;

#[tokio::test]
async fn the_companion_voids_an_expired_hold_and_the_wallet_is_available_again() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let ledger = LedgerFixture::create(&mut owner, "GHS").await.unwrap();
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("set local role service_role").execute(&mut *tx).await.unwrap();
    sqlx::query("select private.post_transfer($1, 'top_up', $2)")
        .bind(Uuid::new_v4())
        .bind(ledger.legs(ledger.clearing, ledger.wallet, 10_000))
        .execute(&mut *tx)
        .await
        .unwrap();
    let hold = Uuid::new_v4();
    sqlx::query("select private.reserve_transfer($1, 'consultation_hold', $2, 1)")
        .bind(hold)
        .bind(ledger.legs(ledger.wallet, ledger.revenue, 10_000))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let redis = redis_url();
    let _app = Companion::spawn(&[("DATABASE_URL", &db.url), ("REDIS_URL", &redis), ("LEDGER_EXPIRY_INTERVAL_SECONDS", "1")])
        .await
        .unwrap();

    let mut reason: Option<String> = None;
    for _ in 0..100 {
        reason = sqlx::query_scalar("select void_reason from public.ledger_transfers where pending_id = $1")
            .bind(hold)
            .fetch_optional(&mut owner)
            .await
            .unwrap();
        if reason.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reason.as_deref(), Some("expired"), "the sweep voided the hold");
    let pending: i64 = sqlx::query_scalar("select debits_pending from public.ledger_accounts where id = $1")
        .bind(ledger.wallet)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(pending, 0, "the reservation is released");
    let violations: i64 = sqlx::query_scalar("select count(*) from private.verify_ledger()").fetch_one(&mut owner).await.unwrap();
    assert_eq!(violations, 0);
}
