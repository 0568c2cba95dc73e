//! 16 writers racing random transfers over 200 accounts with overdraft flags, on real
//! connections: no deadlock reaches a caller, no flag is violated, and the ledger verifies.

use careplane_tests::TestDb;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const WRITERS: usize = 16;
const TRANSFERS_PER_WRITER: usize = 2_000;
const ACCOUNTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_2000_transfers_each_no_deadlock_no_overdraft_and_a_clean_ledger() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    // 100 wallets (no overdraft), 50 funding sources (credits must not exceed debits), 50 plain.
    let accounts: Vec<Uuid> = sqlx::query_scalar(
        "insert into public.ledger_accounts (kind, currency, flags)
         select case when i <= 100 then 'refunds' when i <= 150 then 'payment_clearing' else 'clinic_revenue' end, 'NGN',
                case when i <= 100 then 'debits_must_not_exceed_credits' when i <= 150 then 'credits_must_not_exceed_debits' else 'none' end
           from generate_series(1, $1) i
         returning id",
    )
    .bind(ACCOUNTS as i32)
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(accounts.len(), ACCOUNTS);

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let accounts = accounts.clone();
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(writer as u64);
            let (mut posted, mut refused) = (0u32, 0u32);
            for _ in 0..TRANSFERS_PER_WRITER {
                // Two or three legs: money flows between random accounts.
                let a = accounts[rng.random_range(0..ACCOUNTS)];
                let b = accounts[rng.random_range(0..ACCOUNTS)];
                let c = accounts[rng.random_range(0..ACCOUNTS)];
                let amount: i64 = rng.random_range(1..5_000);
                let legs = if rng.random_bool(0.5) {
                    serde_json::json!([
                        {"account_id": a, "direction": "debit", "amount": amount, "currency": "NGN"},
                        {"account_id": b, "direction": "credit", "amount": amount, "currency": "NGN"},
                    ])
                } else {
                    serde_json::json!([
                        {"account_id": a, "direction": "debit", "amount": amount * 2, "currency": "NGN"},
                        {"account_id": b, "direction": "credit", "amount": amount, "currency": "NGN"},
                        {"account_id": c, "direction": "credit", "amount": amount, "currency": "NGN"},
                    ])
                };
                let mut tx = conn.begin().await.unwrap();
                sqlx::query("set local role service_role").execute(&mut *tx).await.unwrap();
                let result = sqlx::query("select private.post_transfer($1, 'race', $2)")
                    .bind(Uuid::new_v4())
                    .bind(&legs)
                    .execute(&mut *tx)
                    .await;
                match result {
                    Ok(_) => {
                        tx.commit().await.unwrap();
                        posted += 1;
                    }
                    // Overdrafts are the rule working; anything else (a deadlock above all) fails.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("LG003") => refused += 1,
                    Err(e) => panic!("writer {writer}: unexpected error {e}"),
                }
            }
            (posted, refused)
        }));
    }
    let (mut posted, mut refused) = (0, 0);
    for t in tasks {
        let (p, r) = t.await.unwrap();
        posted += p;
        refused += r;
    }
    assert_eq!(posted + refused, (WRITERS * TRANSFERS_PER_WRITER) as u32);
    assert!(posted > 1_000, "enough transfers went through to mean something: {posted}");
    assert!(refused > 0, "the flags were exercised: {refused} refused");

    let violations: Vec<(String, serde_json::Value)> =
        sqlx::query_as("select invariant, details from private.verify_ledger()").fetch_all(&mut owner).await.unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    let entries: i64 = sqlx::query_scalar("select count(*) from public.ledger_entries").fetch_one(&mut owner).await.unwrap();
    assert!(entries >= 2 * i64::from(posted));
}
