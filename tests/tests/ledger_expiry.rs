//! The running companion voids ledger holds whose timeout has passed, releasing the money.

use std::time::Duration;

use careplane_tests::{redis_url, Companion, TestDb};
use sqlx::Connection;
use uuid::Uuid;

#[tokio::test]
async fn the_companion_voids_an_expired_hold_and_the_wallet_is_available_again() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let accounts: Vec<Uuid> = sqlx::query_scalar(
        "insert into public.ledger_accounts (kind, currency, flags) values
           ('payment_clearing', 'GHS', 'none'), ('refunds', 'GHS', 'debits_must_not_exceed_credits'), ('clinic_revenue', 'GHS', 'none')
         returning id",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let (clearing, wallet, revenue) = (accounts[0], accounts[1], accounts[2]);
    let legs = |from: Uuid, to: Uuid, amount: i64| {
        serde_json::json!([
            {"account_id": from, "direction": "debit", "amount": amount, "currency": "GHS"},
            {"account_id": to, "direction": "credit", "amount": amount, "currency": "GHS"},
        ])
    };
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("set local role service_role").execute(&mut *tx).await.unwrap();
    sqlx::query("select private.post_transfer($1, 'top_up', $2)")
        .bind(Uuid::new_v4())
        .bind(legs(clearing, wallet, 10_000))
        .execute(&mut *tx)
        .await
        .unwrap();
    let hold = Uuid::new_v4();
    sqlx::query("select private.reserve_transfer($1, 'consultation_hold', $2, 1)")
        .bind(hold)
        .bind(legs(wallet, revenue, 10_000))
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
        .bind(wallet)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(pending, 0, "the reservation is released");
    let violations: i64 = sqlx::query_scalar("select count(*) from private.verify_ledger()").fetch_one(&mut owner).await.unwrap();
    assert_eq!(violations, 0);
}
