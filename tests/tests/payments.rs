//! Payments with Paystack end to end: the real companion, Postgres and Redis, and a local fake
//! Paystack. Whatever the network does — duplicates in a row and at once, forgeries, tampered
//! amounts, a crash between storing and applying, a lost webhook, a refund announced twice —
//! a payment is posted to the ledger exactly once, and `private.verify_ledger()` stays clean.

use std::time::Duration;

use careplane_rules::payments::PaymentStatus;
use careplane_tests::paystack_fake::FakePaystack;
use careplane_tests::{begin_as, create_user, jwt, redis_url, user_claims, Companion, TestDb, TEST_JWT_SECRET};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

const SECRET: &str = "sk_test_careplane_fake_0123456789";
const FEE: i64 = 10_000;

struct World {
    db: TestDb,
    fake: FakePaystack,
    app: Companion,
    http: reqwest::Client,
    patient: Uuid,
    doctor: Uuid,
    admin: Uuid,
    practitioner: Uuid,
    env: Vec<(String, String)>,
    days: std::sync::atomic::AtomicI32,
}

fn token(sub: Uuid, role: &str) -> String {
    jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("https://careplane.test/auth/v1", sub, role))
}

impl World {
    async fn new(extra: &[(&str, &str)]) -> World {
        let db = TestDb::migrated().await.unwrap();
        let fake = FakePaystack::start(SECRET).await;
        let mut conn = db.connect().await.unwrap();
        let patient = create_user(&mut conn, "patient").await.unwrap();
        let doctor = create_user(&mut conn, "doctor").await.unwrap();
        let admin = create_user(&mut conn, "admin").await.unwrap();
        let practitioner: Uuid = sqlx::query_scalar(
            "insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
             values ($1, 'doctor', 'Dr Test', $2, 'NGN', 'Africa/Lagos') returning id",
        )
        .bind(doctor)
        .bind(FEE)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), db.url.clone()),
            ("REDIS_URL".into(), redis_url()),
            ("PAYSTACK_SECRET_KEY".into(), SECRET.into()),
            ("PAYSTACK_BASE_URL".into(), fake.url.clone()),
            ("PLATFORM_FEE_BPS".into(), "250".into()),
            ("PAYSTACK_INBOX_POLL_MS".into(), "100".into()),
            ("RATE_LIMIT_IP_PER_MINUTE".into(), "100000".into()),
            ("RATE_LIMIT_IP_BURST".into(), "10000".into()),
            ("RATE_LIMIT_USER_PER_MINUTE".into(), "100000".into()),
            ("RATE_LIMIT_USER_BURST".into(), "10000".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).into(), (*v).into()));
        }
        let app = spawn(&env).await;
        World { db, fake, app, http: reqwest::Client::new(), patient, doctor, admin, practitioner, env, days: 2.into() }
    }

    async fn conn(&self) -> PgConnection {
        self.db.connect().await.unwrap()
    }

    /// A booked appointment of the patient with the practitioner, two days ahead or later (each
    /// a day after the last, so none overlaps another).
    async fn appointment(&self) -> Uuid {
        let days = self.days.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sqlx::query_scalar(
            "insert into public.appointments (patient_id, practitioner_id, period, status)
             values ($1, $2, tstzrange(now() + make_interval(days => $3), now() + make_interval(days => $3, mins => 30)), 'booked')
             returning id",
        )
        .bind(self.patient)
        .bind(self.practitioner)
        .bind(days)
        .fetch_one(&mut self.conn().await)
        .await
        .unwrap()
    }

    async fn post_payment(&self, who: Uuid, role: &str, appointment: Uuid, key: &str) -> (u16, Value) {
        let res = self
            .http
            .post(self.app.url("/v1/payments"))
            .bearer_auth(token(who, role))
            .header("Idempotency-Key", key)
            .json(&json!({"appointment_id": appointment}))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// A pending payment for a new appointment: its reference and id.
    async fn pending_payment(&self) -> (String, Uuid) {
        let appointment = self.appointment().await;
        let (status, body) = self.post_payment(self.patient, "patient", appointment, &Uuid::new_v4().to_string()).await;
        assert_eq!(status, 200, "{body}");
        let reference = body["data"]["reference"].as_str().unwrap().to_owned();
        let id = sqlx::query_scalar("select id from public.payments where provider_reference = $1")
            .bind(&reference)
            .fetch_one(&mut self.conn().await)
            .await
            .unwrap();
        (reference, id)
    }

    async fn send(&self, body: &[u8], signature: Option<&str>) -> u16 {
        let mut req = self.http.post(self.app.url("/webhooks/paystack")).header("content-type", "application/json").body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("x-paystack-signature", s);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn status(&self, reference: &str) -> String {
        sqlx::query_scalar("select status from public.payments where provider_reference = $1")
            .bind(reference)
            .fetch_one(&mut self.conn().await)
            .await
            .unwrap()
    }

    async fn wait_status(&self, reference: &str, want: PaymentStatus) {
        let mut last = String::new();
        for _ in 0..150 {
            last = self.status(reference).await;
            if last == want.as_str() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("payment {reference} stayed {last}, expected {}", want.as_str());
    }

    async fn scalar(&self, sql: &str, id: Uuid) -> i64 {
        sqlx::query_scalar(sql).bind(id).fetch_one(&mut self.conn().await).await.unwrap()
    }

    /// Transfers that move this payment's money: its charge (the payment's id) and its refunds.
    async fn transfers(&self, payment: Uuid) -> (i64, i64) {
        let charges = self.scalar("select count(*) from public.ledger_transfers where id = $1", payment).await;
        let refunds = self
            .scalar(
                "select count(*) from public.ledger_transfers t where t.kind = 'payment_refund'
                   and t.description = 'refund of payment ' || (select provider_reference from public.payments where id = $1)",
                payment,
            )
            .await;
        (charges, refunds)
    }

    async fn assert_ledger_clean(&self) {
        let violations: Vec<(String, Value)> =
            sqlx::query_as("select invariant, details from private.verify_ledger()").fetch_all(&mut self.conn().await).await.unwrap();
        assert!(violations.is_empty(), "verify_ledger: {violations:?}");
    }

    async fn paid(&self) -> (String, Uuid) {
        let (reference, id) = self.pending_payment().await;
        self.fake.pay(&reference);
        let (body, sig) = self.fake.charge_success(&reference);
        assert_eq!(self.send(&body, Some(&sig)).await, 200);
        self.wait_status(&reference, PaymentStatus::Succeeded).await;
        (reference, id)
    }
}

/// `/health/detailed` once its `payments_inbox.status` is `want` (or after 10 s, as it was).
async fn inbox_health(http: &reqwest::Client, app: &Companion, want: &str) -> Value {
    let mut health = Value::Null;
    for _ in 0..100 {
        health = http.get(app.url("/health/detailed")).send().await.unwrap().json().await.unwrap();
        if health["payments_inbox"]["status"] == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    health
}

async fn spawn(env: &[(String, String)]) -> Companion {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Companion::spawn(&pairs).await.unwrap()
}

#[tokio::test]
async fn the_same_charge_success_five_times_in_a_row_and_eight_at_once_posts_one_transfer() {
    let w = World::new(&[]).await;

    // Taking the payment: the same Idempotency-Key answers the same and asks Paystack once.
    let appointment = w.appointment().await;
    let (s1, first) = w.post_payment(w.patient, "patient", appointment, "key-1").await;
    let (s2, again) = w.post_payment(w.patient, "patient", appointment, "key-1").await;
    assert_eq!((s1, s2), (200, 200), "{first} {again}");
    assert_eq!(first["data"], again["data"]);
    assert_eq!(w.fake.calls("initialize"), 1);
    let sent = w.fake.last_initialize().unwrap();
    assert_eq!(sent["amount"], FEE, "the amount is the practitioner's fee, from the database");
    assert_eq!(sent["currency"], "NGN");
    let metadata_keys: Vec<&String> = sent["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(metadata_keys, ["appointment_id", "patient_id", "payment_id"], "ids only");
    let reference = first["data"]["reference"].as_str().unwrap().to_owned();
    let payment: Uuid = sqlx::query_scalar("select id from public.payments where provider_reference = $1")
        .bind(&reference)
        .fetch_one(&mut w.conn().await)
        .await
        .unwrap();
    // A different key while it is pending: 409, the checkout in progress named.
    let (s, busy) = w.post_payment(w.patient, "patient", appointment, "key-2").await;
    assert_eq!(s, 409, "{busy}");
    assert_eq!(busy["error"]["code"], "payment_in_progress");

    w.fake.pay(&reference);
    let (body, sig) = w.fake.charge_success(&reference);
    for _ in 0..5 {
        assert_eq!(w.send(&body, Some(&sig)).await, 200);
    }
    w.wait_status(&reference, PaymentStatus::Succeeded).await;
    assert_eq!(w.transfers(payment).await, (1, 0));

    // Eight at once, on a fresh payment, racing a verify through GET.
    let (reference2, payment2) = w.pending_payment().await;
    w.fake.pay(&reference2);
    let (body2, sig2) = w.fake.charge_success(&reference2);
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (w_http, url, body, sig) = (w.http.clone(), w.app.url("/webhooks/paystack"), body2.clone(), sig2.clone());
        racers.push(tokio::spawn(async move {
            w_http.post(url).header("x-paystack-signature", sig).body(body).send().await.unwrap().status().as_u16()
        }));
    }
    let get = w
        .http
        .get(w.app.url(&format!("/v1/payments/{reference2}")))
        .bearer_auth(token(w.patient, "patient"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    for r in racers {
        assert_eq!(r.await.unwrap(), 200);
    }
    w.wait_status(&reference2, PaymentStatus::Succeeded).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.transfers(payment2).await, (1, 0));

    // What the posting did: the split, the event, the receipt, one inbox row per event.
    let mut c = w.conn().await;
    let (payable, fee): (i64, i64) = sqlx::query_as(
        "select coalesce(sum(e.amount) filter (where a.kind = 'practitioner_payable'), 0)::bigint,
                coalesce(sum(e.amount) filter (where a.kind = 'platform_fees'), 0)::bigint
           from public.ledger_entries e join public.ledger_accounts a on a.id = e.account_id where e.transfer_id = $1",
    )
    .bind(payment2)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((payable, fee), (9_750, 250), "PLATFORM_FEE_BPS=250");
    let events: i64 = sqlx::query_scalar(
        "select count(*) from private.realtime_events where topic = 'user:' || $1 and event = 'payment:updated' and payload ->> 'status' = 'succeeded'",
    )
    .bind(w.patient)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(events, 2, "one payment:updated per payment");
    let receipts: Vec<Value> = sqlx::query_scalar("select payload from private.outbox where template = 'payment_receipt' order by id")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[1]["payment_id"], payment2.to_string(), "ids only: {}", receipts[1]);
    let inbox: i64 = sqlx::query_scalar("select count(*) from private.webhook_inbox where processed_at is not null")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(inbox, 2);

    // Paid: a new payment for the appointment is 409.
    let (s, paid) = w.post_payment(w.patient, "patient", appointment, "key-3").await;
    assert_eq!(s, 409);
    assert_eq!(paid["error"]["code"], "already_paid");
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_forged_or_unsigned_webhook_is_401_and_stores_nothing_and_a_refused_source_is_403() {
    let w = World::new(&[]).await;
    let (reference, payment) = w.pending_payment().await;
    w.fake.pay(&reference);
    let (body, good) = w.fake.charge_success(&reference);
    let forged = careplane_companion::payments::paystack::sign(b"sk_test_not_the_key", &body);
    assert_eq!(w.send(&body, None).await, 401);
    assert_eq!(w.send(&body, Some(&forged)).await, 401);
    assert_eq!(w.send(&body, Some("zz")).await, 401);
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] = b'9';
    assert_eq!(w.send(&tampered, Some(&good)).await, 401, "the signature covers every byte");
    let res = w.http.post(w.app.url("/webhooks/paystack")).body(body.clone()).send().await.unwrap();
    let envelope: Value = res.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], "invalid_signature");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = w.scalar("select count(*) from private.webhook_inbox where $1 is not null", payment).await;
    assert_eq!(stored, 0, "nothing stored");
    assert_eq!(w.status(&reference).await, "pending");
    assert_eq!(w.transfers(payment).await, (0, 0));

    // An allow-list that does not hold the sender: 403, nothing stored.
    let mut env = w.env.clone();
    env.push(("PAYSTACK_ALLOWED_IPS".into(), "52.31.139.75,52.49.173.169,52.214.14.220".into()));
    let strict = spawn(&env).await;
    let res = w.http.post(strict.url("/webhooks/paystack")).header("x-paystack-signature", &good).body(body.clone()).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(w.scalar("select count(*) from private.webhook_inbox where $1 is not null", payment).await, 0);
    // Behind a trusted proxy the forwarded address decides.
    env.push(("TRUST_X_FORWARDED_FOR".into(), "true".into()));
    let proxied = spawn(&env).await;
    let res = w
        .http
        .post(proxied.url("/webhooks/paystack"))
        .header("x-paystack-signature", &good)
        .header("x-forwarded-for", "52.49.173.169")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    w.wait_status(&reference, PaymentStatus::Succeeded).await;
    w.assert_ledger_clean().await;

    // A signed webhook Paystack knows nothing of: stored, given up, and visible.
    let (unknown, sig) = w.fake.signed(&json!({"event": "charge.success", "data": {"reference": "cp_unknown", "amount": 1, "currency": "NGN"}}));
    let res = w
        .http
        .post(proxied.url("/webhooks/paystack"))
        .header("x-paystack-signature", &sig)
        .header("x-forwarded-for", "52.31.139.75")
        .body(unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let health = inbox_health(&w.http, &proxied, "failing").await;
    assert_eq!(health["payments_inbox"]["status"], "failing", "{health}");
    assert_eq!(health["payments_inbox"]["counts"]["dead"], 1);
    assert_eq!(health["status"], "ok", "a failing inbox does not take the instance out of service");
    let metrics = w.http.get(proxied.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "careplane_webhook_inbox_dead{provider=\"paystack\"} 1"), "{metrics}");
    // (Which of the three companions sharing this database gave the row up is not fixed, so the
    // per-instance careplane_webhook_inbox_processed_total is not asserted here.)
}

#[tokio::test]
async fn an_amount_or_currency_mismatch_needs_review_posts_nothing_and_is_audited() {
    let w = World::new(&[]).await;
    for (amount, currency, code) in [(FEE - 1, "NGN", "amount_mismatch"), (FEE, "GHS", "currency_mismatch")] {
        let (reference, payment) = w.pending_payment().await;
        w.fake.pay(&reference);
        w.fake.answer(&reference, amount, currency);
        let (body, sig) = w.fake.charge_success(&reference);
        assert_eq!(w.send(&body, Some(&sig)).await, 200);
        w.wait_status(&reference, PaymentStatus::NeedsReview).await;
        assert_eq!(w.transfers(payment).await, (0, 0), "nothing posted");
        let reason: Value = sqlx::query_scalar("select review_reason from public.payments where id = $1")
            .bind(payment)
            .fetch_one(&mut w.conn().await)
            .await
            .unwrap();
        assert_eq!(reason["code"], code);
        let audited: i64 = w
            .scalar(
                "select count(*) from private.audit_log where table_name = 'payments' and row_id = $1::text
                   and action = 'UPDATE' and 'review_reason' = any (changed_columns)",
                payment,
            )
            .await;
        assert_eq!(audited, 1, "the mismatch is in the audit log");
    }
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn killed_after_storing_and_before_applying_the_webhook_is_posted_once_after_restart() {
    let mut w = World::new(&[("PAYSTACK_INBOX_LEASE_SECONDS", "1")]).await;
    let (reference, payment) = w.pending_payment().await;
    w.fake.pay(&reference);
    w.fake.hold_verify(true);
    let (body, sig) = w.fake.charge_success(&reference);
    assert_eq!(w.send(&body, Some(&sig)).await, 200, "stored and answered at once");
    // The worker has claimed the row and is inside its verify call when the process dies.
    for _ in 0..100 {
        if w.fake.calls("verify") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w.fake.calls("verify"), 1);
    w.app.child.start_kill().unwrap(); // SIGKILL
    w.app.child.wait().await.unwrap();
    assert_eq!(w.status(&reference).await, "pending");
    assert_eq!(w.transfers(payment).await, (0, 0));
    w.fake.hold_verify(false);

    w.app = spawn(&w.env).await;
    w.wait_status(&reference, PaymentStatus::Succeeded).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.transfers(payment).await, (1, 0), "posted exactly once");
    let (attempts, processed): (i32, bool) =
        sqlx::query_as("select attempts, processed_at is not null from private.webhook_inbox where event_id = 'charge.success:' || $1")
            .bind(&reference)
            .fetch_one(&mut w.conn().await)
            .await
            .unwrap();
    assert!(processed);
    assert_eq!(attempts, 2, "claimed before the crash and once after");
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn paystack_failing_while_applying_is_retried_with_backoff_and_shows_until_it_passes() {
    let w = World::new(&[]).await;
    let (reference, payment) = w.pending_payment().await;
    w.fake.pay(&reference);
    w.fake.fail_verify(Some(503));
    let (body, sig) = w.fake.charge_success(&reference);
    assert_eq!(w.send(&body, Some(&sig)).await, 200);
    let health = inbox_health(&w.http, &w.app, "retrying").await;
    assert_eq!(health["payments_inbox"]["status"], "retrying", "{health}");
    assert_eq!(w.status(&reference).await, "pending");
    w.fake.fail_verify(None);
    w.wait_status(&reference, PaymentStatus::Succeeded).await; // the next attempt, 2 s later
    assert_eq!(w.transfers(payment).await, (1, 0));
    let health: Value = w.http.get(w.app.url("/health/detailed")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["payments_inbox"]["status"], "ok", "{health}");
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_lost_webhook_is_found_by_reconciliation() {
    let w = World::new(&[("PAYSTACK_RECONCILE_AFTER_SECONDS", "1"), ("PAYSTACK_RECONCILE_INTERVAL_SECONDS", "1")]).await;
    let (reference, payment) = w.pending_payment().await;
    w.fake.pay(&reference); // and Paystack's webhook never arrives
    w.wait_status(&reference, PaymentStatus::Succeeded).await;
    assert_eq!(w.transfers(payment).await, (1, 0));
    let stored = w.scalar("select count(*) from private.webhook_inbox where $1 is not null", payment).await;
    assert_eq!(stored, 0, "no webhook was involved");
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_refund_announced_twice_reverses_once_in_full_or_in_parts() {
    let w = World::new(&[]).await;
    let refund = |reference: &str, who: Uuid, role: &str, body: Value| {
        let req = w
            .http
            .post(w.app.url(&format!("/v1/payments/{reference}/refund")))
            .bearer_auth(token(who, role))
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };

    // Full refund: one reversal that names the charge.
    let (reference, payment) = w.paid().await;
    let (s, denied) = refund(&reference, w.patient, "patient", json!({})).await;
    assert_eq!(s, 403, "{denied}");
    let (s, answer) = refund(&reference, w.admin, "admin", json!({})).await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["data"]["amount_minor"], FEE);
    assert_eq!(w.status(&reference).await, "refund_pending");
    let (refund_id, _, amount) = w.fake.refunds()[0].clone();
    let (body, sig) = w.fake.refund_processed(&reference, refund_id, amount);
    assert_eq!(w.send(&body, Some(&sig)).await, 200);
    assert_eq!(w.send(&body, Some(&sig)).await, 200);
    w.wait_status(&reference, PaymentStatus::Refunded).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.transfers(payment).await, (1, 1), "one reversal");
    let reverses = w.scalar("select count(*) from public.ledger_transfers where reverses = $1", payment).await;
    assert_eq!(reverses, 1, "the full refund reverses the charge");
    let (s, again) = refund(&reference, w.admin, "admin", json!({})).await;
    assert_eq!(s, 409, "nothing left: {again}");

    // Partial refunds: 4 000 then the rest; each announced twice (amounts as strings).
    let (reference, payment) = w.paid().await;
    let (s, over) = refund(&reference, w.admin, "admin", json!({"amount_minor": FEE + 1})).await;
    assert_eq!(s, 422, "{over}");
    for part in [4_000, 6_000] {
        let (s, answer) = refund(&reference, w.admin, "admin", json!({"amount_minor": part})).await;
        assert_eq!(s, 200, "{answer}");
        let (refund_id, _, amount) = *w.fake.refunds().last().unwrap();
        assert_eq!(amount, part);
        let (body, sig) = w.fake.refund_processed(&reference, refund_id, amount);
        for _ in 0..2 {
            assert_eq!(w.send(&body, Some(&sig)).await, 200);
        }
        let want = if part == 4_000 { PaymentStatus::PartiallyRefunded } else { PaymentStatus::Refunded };
        w.wait_status(&reference, want).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.transfers(payment).await, (1, 2), "one transfer per refund");
    // The practitioner's payable and the platform's fee are back to zero.
    let mut c = w.conn().await;
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "select kind, (credits_posted - debits_posted)::bigint from public.ledger_accounts
          where kind in ('practitioner_payable', 'platform_fees') order by kind",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(balances, [("platform_fees".to_owned(), 0), ("practitioner_payable".to_owned(), 0)]);
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn who_may_pay_and_what_paystack_failing_leaves_behind() {
    let w = World::new(&[]).await;
    let appointment = w.appointment().await;
    // The practitioner sees the appointment (RLS) but is not its patient: 403.
    let (s, body) = w.post_payment(w.doctor, "doctor", appointment, "k").await;
    assert_eq!(s, 403, "{body}");
    // Another patient does not see it at all: 404.
    let stranger = create_user(&mut w.conn().await, "patient").await.unwrap();
    let (s, _) = w.post_payment(stranger, "patient", appointment, "k").await;
    assert_eq!(s, 404);
    // No key: 400.
    let res = w
        .http
        .post(w.app.url("/v1/payments"))
        .bearer_auth(token(w.patient, "patient"))
        .json(&json!({"appointment_id": appointment}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Paystack failing: 502, and the row is not in flight (no authorization url, initializing).
    w.fake.fail_initialize(Some(500));
    let (s, body) = w.post_payment(w.patient, "patient", appointment, "retry-me").await;
    assert_eq!(s, 502, "{body}");
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("select status, authorization_url from public.payments where appointment_id = $1")
            .bind(appointment)
            .fetch_all(&mut w.conn().await)
            .await
            .unwrap();
    assert_eq!(rows, [("initializing".to_owned(), None)]);
    // The same key after Paystack recovers resumes it.
    w.fake.fail_initialize(None);
    let (s, body) = w.post_payment(w.patient, "patient", appointment, "retry-me").await;
    assert_eq!(s, 200, "{body}");
    let count = w.scalar("select count(*) from public.payments where appointment_id = $1", appointment).await;
    assert_eq!(count, 1, "resumed, not duplicated");
    assert_eq!(w.status(body["data"]["reference"].as_str().unwrap()).await, "pending");

    // Paystack unreachable: 503.
    let mut env = w.env.clone();
    env.push(("PAYSTACK_BASE_URL".into(), format!("http://127.0.0.1:{}", careplane_tests::free_port())));
    env.push(("PAYSTACK_TIMEOUT_MS".into(), "2000".into()));
    let offline = spawn(&env).await;
    let other = w.appointment().await;
    let res = w
        .http
        .post(offline.url("/v1/payments"))
        .bearer_auth(token(w.patient, "patient"))
        .header("Idempotency-Key", "offline")
        .json(&json!({"appointment_id": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);

    // A cancelled appointment is 409.
    let cancelled = w.appointment().await;
    let mut c = w.conn().await;
    let mut tx = begin_as(&mut c, &user_claims(w.patient, "patient")).await.unwrap();
    sqlx::query("select public.cancel_appointment($1, 'cannot make it')").bind(cancelled).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let (s, body) = w.post_payment(w.patient, "patient", cancelled, "c").await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "appointment_not_payable");
    w.assert_ledger_clean().await;
}

#[tokio::test]
async fn cancelling_a_paid_appointment_inside_the_window_refunds_it() {
    let w = World::new(&[("PAYMENT_REFUND_WINDOW_HOURS", "24")]).await;
    let (reference, payment) = w.paid().await; // three days ahead: inside the window
    let appointment: Uuid = sqlx::query_scalar("select appointment_id from public.payments where id = $1")
        .bind(payment)
        .fetch_one(&mut w.conn().await)
        .await
        .unwrap();
    let mut c = w.conn().await;
    let mut tx = begin_as(&mut c, &user_claims(w.patient, "patient")).await.unwrap();
    sqlx::query("select public.cancel_appointment($1, 'feeling better')").bind(appointment).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    w.wait_status(&reference, PaymentStatus::RefundPending).await;
    let (refund_id, _, amount) = w.fake.refunds()[0].clone();
    assert_eq!(amount, FEE);
    let (body, sig) = w.fake.refund_processed(&reference, refund_id, amount);
    assert_eq!(w.send(&body, Some(&sig)).await, 200);
    w.wait_status(&reference, PaymentStatus::Refunded).await;
    assert_eq!(w.transfers(payment).await, (1, 1));
    w.assert_ledger_clean().await;
}

/// The payments status constraint names exactly the rules' list (careplane_rules::payments).
#[tokio::test]
async fn the_payment_status_constraint_is_the_rules_list() {
    let db = TestDb::migrated().await.unwrap();
    let definition: String = sqlx::query_scalar(
        "select pg_get_constraintdef(oid) from pg_constraint where conname = 'payments_status_check' and conrelid = 'public.payments'::regclass",
    )
    .fetch_one(&mut db.connect().await.unwrap())
    .await
    .unwrap();
    let mut named: Vec<String> = definition.split('\'').skip(1).step_by(2).map(str::to_owned).collect();
    let mut rules: Vec<String> = PaymentStatus::names().into_iter().map(str::to_owned).collect();
    named.sort();
    rules.sort();
    assert_eq!(named, rules, "{definition}");
    let refunds: String = sqlx::query_scalar(
        "select pg_get_constraintdef(oid) from pg_constraint where conname = 'payment_refunds_status_check'",
    )
    .fetch_one(&mut db.connect().await.unwrap())
    .await
    .unwrap();
    let mut named: Vec<String> = refunds.split('\'').skip(1).step_by(2).map(str::to_owned).collect();
    let mut rules: Vec<String> = careplane_rules::payments::RefundStatus::names().into_iter().map(str::to_owned).collect();
    named.sort();
    rules.sort();
    assert_eq!(named, rules, "{refunds}");
}

#[tokio::test]
async fn without_a_key_the_sandbox_checkout_pays_and_refunds_through_signed_webhooks() {
    let w = World::new(&[("PAYSTACK_SECRET_KEY", "")]).await;
    let appointment = w.appointment().await;
    let (s, body) = w
        .post_payment(w.patient, "patient", appointment, "sandbox")
        .await;
    assert_eq!(s, 200, "{body}");
    let url = body["data"]["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let reference = body["data"]["reference"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        w.app
            .url(&format!("/sandbox/paystack/checkout/{reference}")),
        "a local checkout page"
    );
    let page = w.http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("value=\"pay\"")
            && page.contains("value=\"decline\"")
            && page.contains("100.00"),
        "{page}"
    );
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirect
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("action=pay")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    w.wait_status(&reference, PaymentStatus::Succeeded).await;
    let payment: Uuid =
        sqlx::query_scalar("select id from public.payments where provider_reference = $1")
            .bind(&reference)
            .fetch_one(&mut w.conn().await)
            .await
            .unwrap();
    assert_eq!(w.transfers(payment).await, (1, 0));
    // The sandbox refunds at once and announces it with a signed refund.processed.
    let res = w
        .http
        .post(w.app.url(&format!("/v1/payments/{reference}/refund")))
        .bearer_auth(token(w.admin, "admin"))
        .json(&json!({"amount_minor": 2_500}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    w.wait_status(&reference, PaymentStatus::PartiallyRefunded)
        .await;
    assert_eq!(w.transfers(payment).await, (1, 1));
    assert_eq!(
        w.fake.calls("initialize") + w.fake.calls("verify") + w.fake.calls("refund"),
        0,
        "nothing left the machine"
    );
    w.assert_ledger_clean().await;

    // With a key the sandbox does not exist.
    let keyed = spawn(
        &w.env
            .iter()
            .filter(|(k, _)| k != "PAYSTACK_SECRET_KEY")
            .cloned()
            .chain([("PAYSTACK_SECRET_KEY".to_owned(), SECRET.to_owned())])
            .collect::<Vec<_>>(),
    )
    .await;
    let res = w
        .http
        .get(keyed.url(&format!("/sandbox/paystack/checkout/{reference}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
