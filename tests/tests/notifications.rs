//! Notifications end to end: the real companion binary draining `private.outbox` in a
//! throwaway database to the local Twilio and SendGrid fakes (tests/src/fake_providers.rs), and
//! the signed webhooks coming back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use careplane_companion::notify::signature::twilio_signature;
use careplane_tests::fake_providers::{self, Fail, Fake, SENDGRID_API_KEY, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};
use careplane_tests::{begin_as, create_user, user_claims, Companion, TestDb};
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

const PUBLIC: &str = "https://careplane.example";

fn webhook_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

/// SubjectPublicKeyInfo DER of the key: the fixed id-ecPublicKey / prime256v1 header, then the
/// uncompressed point.
fn webhook_public_key() -> String {
    let mut der = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.extend_from_slice(webhook_key().verifying_key().to_encoded_point(false).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A companion sending to the fakes, polling fast, retrying after ~100–200 ms.
async fn companion(db: &TestDb, twilio: &Fake, sendgrid: &Fake, extra: &[(&str, &str)]) -> Companion {
    let key = webhook_public_key();
    let mut env: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &db.url),
        ("PUBLIC_BASE_URL", PUBLIC),
        ("TWILIO_ACCOUNT_SID", TWILIO_ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
        ("TWILIO_FROM", "+15005550006"),
        ("TWILIO_BASE_URL", &twilio.base),
        ("SENDGRID_API_KEY", SENDGRID_API_KEY),
        ("SENDGRID_FROM", "care@careplane.example"),
        ("SENDGRID_BASE_URL", &sendgrid.base),
        ("SENDGRID_WEBHOOK_PUBLIC_KEY", &key),
        ("NOTIFY_POLL_INTERVAL_MS", "50"),
        ("NOTIFY_BACKOFF_BASE_MS", "200"),
        ("NOTIFY_BACKOFF_MAX_MS", "2000"),
        ("NOTIFY_PROVIDER_TIMEOUT_MS", "1000"),
        ("NOTIFY_BATCH_SIZE", "10"),
        ("NOTIFY_LEASE_SECONDS", "3"),
        ("NOTIFY_REMINDER_INTERVAL_SECONDS", "0"),
    ];
    env.extend_from_slice(extra);
    Companion::spawn(&env).await.unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_counts(conn: &mut PgConnection) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("select status, count(*) from private.outbox group by status")
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn row(conn: &mut PgConnection, id: i64) -> (String, i32, Option<String>, Option<String>) {
    sqlx::query_as("select status, attempts, last_error, provider_message_id from private.outbox where id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn enqueue(conn: &mut PgConnection, channel: &str, recipient: &str, template: &str, payload: Value) -> i64 {
    sqlx::query_scalar(
        "insert into private.outbox (channel, recipient, template, payload) values ($1, $2, $3, $4) returning id",
    )
    .bind(channel)
    .bind(recipient)
    .bind(template)
    .bind(payload)
    .fetch_one(conn)
    .await
    .unwrap()
}

fn phone() -> String {
    format!("+2348{:09}", rand::random_range(0..1_000_000_000u32))
}

/// A patient with a phone (SMS on) and an email address.
async fn new_patient(owner: &mut PgConnection) -> (Uuid, String, String) {
    let id = create_user(owner, "patient").await.unwrap();
    let phone = phone();
    let email: String = sqlx::query_scalar(
        "update public.profiles set phone = $2, sms_opt_in = true, email_opt_in = true where id = $1 returning email",
    )
    .bind(id)
    .bind(&phone)
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    (id, phone, email)
}

/// A practitioner in UTC working 09:00–17:00 every day, with `notice` minutes' notice.
async fn practitioner(owner: &mut PgConnection, notice: i32) -> Uuid {
    let doctor = create_user(owner, "doctor").await.unwrap();
    let id: Uuid = sqlx::query_scalar(
        "insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone,
                                           slot_minutes, min_notice_minutes)
         values ($1, 'doctor', 'Dr Notify', 100000, 'NGN', 'UTC', 30, $2) returning id",
    )
    .bind(doctor)
    .bind(notice)
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
         select $1, d, '09:00', '17:00' from generate_series(1, 7) d",
    )
    .bind(id)
    .execute(&mut *owner)
    .await
    .unwrap();
    id
}

/// A booked appointment (inserted as the owner, as a booking RPC would store it).
async fn appointment(owner: &mut PgConnection, patient: Uuid, practitioner: Uuid, starts_at: DateTime<Utc>) -> Uuid {
    sqlx::query_scalar(
        "insert into public.appointments (patient_id, practitioner_id, period, status)
         values ($1, $2, tstzrange($3, $3 + interval '30 minutes'), 'booked') returning id",
    )
    .bind(patient)
    .bind(practitioner)
    .bind(starts_at)
    .fetch_one(owner)
    .await
    .unwrap()
}

/// 10:00 UTC, `days` from today: inside the practitioner's hours.
fn day_at_10(days: i64) -> DateTime<Utc> {
    (Utc::now().date_naive() + chrono::Duration::days(days)).and_hms_opt(10, 0, 0).unwrap().and_utc()
}

/// `ahead` from now, to the second (as Postgres stores it).
fn in_(ahead: chrono::Duration) -> DateTime<Utc> {
    DateTime::from_timestamp((Utc::now() + ahead).timestamp(), 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_drain_1000_rows_sending_none_twice_and_losing_none() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    sqlx::query(
        "insert into private.outbox (channel, recipient, template, payload)
         select case when i % 2 = 0 then 'email' else 'sms' end,
                case when i % 2 = 0 then 'user' || i || '@example.test' else '+23480' || lpad(i::text, 8, '0') end,
                'appointment_booked', '{}'
           from generate_series(1, 1000) i",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    // Leases long enough that none runs out on a loaded machine: this is about SKIP LOCKED.
    let extra = [("NOTIFY_BATCH_SIZE", "25"), ("NOTIFY_LEASE_SECONDS", "30")];
    let _a = companion(&db, &twilio, &sendgrid, &extra).await;
    let _b = companion(&db, &twilio, &sendgrid, &extra).await;
    wait_for("1000 messages sent", Duration::from_secs(60), async || {
        status_counts(&mut owner).await.get("sent") == Some(&1000)
    })
    .await;
    let received: Vec<_> = twilio.received().into_iter().chain(sendgrid.received()).collect();
    assert_eq!(received.len(), 1000, "every message reached its provider exactly once");
    let mut per_id: HashMap<i64, usize> = HashMap::new();
    for r in &received {
        *per_id.entry(r.outbox_id.expect("the outbox id travels with the message")).or_default() += 1;
    }
    assert_eq!(per_id.len(), 1000);
    assert!(per_id.values().all(|n| *n == 1));
    // Each row holds the id its provider gave it; both instances took part.
    let stored: Vec<(i64, Option<String>, Option<String>)> =
        sqlx::query_as("select id, provider_message_id, lease_owner from private.outbox").fetch_all(&mut owner).await.unwrap();
    let by_id: HashMap<i64, String> = received.iter().map(|r| (r.outbox_id.unwrap(), r.message_id.clone())).collect();
    for (id, message_id, lease_owner) in stored {
        assert_eq!(message_id.as_ref(), by_id.get(&id));
        assert_eq!(lease_owner, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_batch_loses_nothing() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    sqlx::query(
        "insert into private.outbox (channel, recipient, template, payload)
         select 'email', 'user' || i || '@example.test', 'appointment_cancelled', '{}' from generate_series(1, 200) i",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    // 4 calls of 50 ms at a time: about 80 messages a second, in batches of 20.
    sendgrid.set_latency(Duration::from_millis(50));
    let extra = [("NOTIFY_BATCH_SIZE", "20"), ("NOTIFY_CONCURRENCY", "4"), ("NOTIFY_PROVIDER_TIMEOUT_MS", "500")];
    let mut first = companion(&db, &twilio, &sendgrid, &extra).await;
    // 26 received: the second batch (messages 21–40) is being sent.
    wait_for("the first instance to be mid-batch", Duration::from_secs(30), async || sendgrid.received().len() >= 26).await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let at_kill = status_counts(&mut owner).await;
    assert!(at_kill.get("sending").copied().unwrap_or(0) > 0, "killed with claimed rows in flight: {at_kill:?}");
    sendgrid.set_latency(Duration::ZERO);
    let _second = companion(&db, &twilio, &sendgrid, &extra).await;
    wait_for("every message sent after the crash", Duration::from_secs(30), async || {
        status_counts(&mut owner).await.get("sent") == Some(&200)
    })
    .await;
    let mut per_id: HashMap<i64, usize> = HashMap::new();
    for r in sendgrid.received() {
        *per_id.entry(r.outbox_id.unwrap()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 200, "nothing lost");
    // Only a call in flight at the kill can have been made twice (its outcome was unknown).
    let twice = per_id.values().filter(|n| **n > 1).count();
    assert!(twice <= 4, "{twice} messages sent twice, more than the 4 calls that can be in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_outcomes_resend_email_and_emergencies_and_hold_ordinary_sms() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let email = enqueue(&mut owner, "email", "ada@example.test", "appointment_booked", json!({})).await;
    let sms = enqueue(&mut owner, "sms", "+2348000000001", "appointment_booked", json!({})).await;
    let page = enqueue(&mut owner, "sms", "+2348000000002", "emergency_high_risk", json!({})).await;
    let never_called = enqueue(&mut owner, "sms", "+2348000000003", "appointment_booked", json!({})).await;
    // As a process leaves them when it dies after calling the provider (and, for the last,
    // after claiming but before calling).
    sqlx::query(
        "update private.outbox set status = 'sending', attempts = 1, lease_owner = 'dead-instance',
                lease_expires_at = now() - interval '1 second',
                provider_called_at = case when id = $1 then null else now() - interval '5 seconds' end",
    )
    .bind(never_called)
    .execute(&mut owner)
    .await
    .unwrap();
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    let _c = companion(&db, &twilio, &sendgrid, &[]).await;
    wait_for("the expired leases taken over", Duration::from_secs(20), async || {
        !status_counts(&mut owner).await.contains_key("sending")
    })
    .await;
    assert_eq!(row(&mut owner, email).await.0, "sent");
    assert_eq!(row(&mut owner, page).await.0, "sent");
    assert_eq!(row(&mut owner, never_called).await.0, "sent");
    let (status, _, error, _) = row(&mut owner, sms).await;
    assert_eq!(status, "dead");
    assert!(error.unwrap().starts_with("outcome_unknown"));
    let sent_sms: Vec<Option<i64>> = twilio.received().iter().map(|r| r.outbox_id).collect();
    assert!(sent_sms.contains(&Some(page)) && sent_sms.contains(&Some(never_called)) && !sent_sms.contains(&Some(sms)));
    assert_eq!(sendgrid.received()[0].outbox_id, Some(email));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_after_500_and_429_die_at_once_on_400_and_an_admin_requeues() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    sendgrid.fail_next([Fail::ServerError]);
    twilio.fail_next([Fail::BadRequest, Fail::TooManyRequests { retry_after_secs: 1 }]);
    let c = companion(&db, &twilio, &sendgrid, &[("NOTIFY_BATCH_SIZE", "1")]).await;
    let email = enqueue(&mut owner, "email", "ada@example.test", "appointment_booked", json!({})).await;
    let invalid = enqueue(&mut owner, "sms", "+2348000000001", "appointment_booked", json!({})).await;
    wait_for("the 400 dead", Duration::from_secs(10), async || row(&mut owner, invalid).await.0 == "dead").await;
    let limited_at = Instant::now();
    let limited = enqueue(&mut owner, "sms", "+2348000000002", "appointment_booked", json!({})).await;
    wait_for("the email and the rate-limited SMS sent", Duration::from_secs(10), async || {
        row(&mut owner, email).await.0 == "sent" && row(&mut owner, limited).await.0 == "sent"
    })
    .await;
    let (_, attempts, _, message_id) = row(&mut owner, email).await;
    assert_eq!(attempts, 2, "500 then 202");
    assert_eq!(sendgrid.received().len(), 1, "sent once");
    assert_eq!(message_id.as_deref(), Some(sendgrid.received()[0].message_id.as_str()));
    assert!(limited_at.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(row(&mut owner, limited).await.1, 2);
    let (_, attempts, error, _) = row(&mut owner, invalid).await;
    assert_eq!(attempts, 1, "a permanent refusal is not retried");
    assert!(error.as_deref().unwrap().contains("twilio 21211"), "{error:?}");

    // Dead messages show in /health/detailed and /metrics; an admin lists and requeues them.
    let http = reqwest::Client::new();
    let health: Value = http.get(c.url("/health/detailed")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["notifications"]["dead"], 1, "{health}");
    let metrics = http.get(c.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("careplane_outbox_dead 1"));
    assert!(metrics.contains("careplane_notifications_total"));
    let admin = create_user(&mut owner, "admin").await.unwrap();
    let patient = create_user(&mut owner, "patient").await.unwrap();
    let mut as_patient = begin_as(&mut owner, &user_claims(patient, "patient")).await.unwrap();
    let refused = sqlx::query("select * from public.dead_notifications()").execute(&mut *as_patient).await.unwrap_err();
    assert_eq!(refused.as_database_error().unwrap().code().as_deref(), Some("42501"));
    as_patient.rollback().await.unwrap();
    let mut as_admin = begin_as(&mut owner, &user_claims(admin, "admin")).await.unwrap();
    let dead: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("select id, template, last_error from public.dead_notifications()").fetch_all(&mut *as_admin).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, invalid);
    let not_dead = sqlx::query("select * from public.requeue_notification($1)").bind(email).execute(&mut *as_admin).await;
    assert_eq!(not_dead.unwrap_err().as_database_error().unwrap().code().as_deref(), Some("PT409"));
    as_admin.rollback().await.unwrap();
    let mut as_admin = begin_as(&mut owner, &user_claims(admin, "admin")).await.unwrap();
    sqlx::query("select * from public.requeue_notification($1)").bind(invalid).execute(&mut *as_admin).await.unwrap();
    as_admin.commit().await.unwrap();
    wait_for("the requeued message sent", Duration::from_secs(10), async || row(&mut owner, invalid).await.0 == "sent").await;
}

/// Signs a Twilio webhook the way Twilio does, for `PUBLIC` + `path`.
fn twilio_post(c: &Companion, path: &str, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let owned: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = twilio_signature(TWILIO_AUTH_TOKEN.as_bytes(), &format!("{PUBLIC}{path}"), &owned);
    reqwest::Client::new().post(c.url(path)).header("X-Twilio-Signature", signature).form(&owned)
}

async fn sms_reply(c: &Companion, from: &str, body: &str) -> (u16, String) {
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let r = twilio_post(c, "/webhooks/twilio/inbound", &[("MessageSid", &sid), ("From", from), ("To", "+15005550006"), ("Body", body)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbound_x_cancels_the_right_appointment_frees_its_slot_and_stop_stops_sms() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let practitioner = practitioner(&mut owner, 120).await;
    let (patient, phone, _) = new_patient(&mut owner).await;
    let (other, _, _) = new_patient(&mut owner).await;
    let soon = in_(chrono::Duration::minutes(30));
    let later = day_at_10(2);
    let inside_notice = appointment(&mut owner, patient, practitioner, soon).await;
    let others = appointment(&mut owner, other, practitioner, later).await;
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    let c = companion(&db, &twilio, &sendgrid, &[("NOTIFY_WORKER_ENABLED", "false")]).await;

    // A wrong signature is 403 and changes nothing.
    let forged = reqwest::Client::new()
        .post(c.url("/webhooks/twilio/inbound"))
        .header("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .form(&[("MessageSid", "SM1"), ("From", phone.as_str()), ("Body", "X")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // The next appointment is inside the 120-minute notice window: refused, with the reason.
    let (status, reply) = sms_reply(&c, &phone, "X").await;
    assert_eq!(status, 200);
    assert!(reply.contains("<Response><Message>") && reply.contains("could not be cancelled"), "{reply}");
    assert!(reply.contains("120 minutes before the start"), "{reply}");
    let status_of = async |conn: &mut PgConnection, id: Uuid| -> String {
        sqlx::query_scalar("select status from public.appointments where id = $1").bind(id).fetch_one(conn).await.unwrap()
    };
    assert_eq!(status_of(&mut owner, inside_notice).await, "booked");
    // The same rule through PostgREST's path: the patient's own cancel_appointment is refused too.
    let mut as_patient = begin_as(&mut owner, &user_claims(patient, "patient")).await.unwrap();
    let refused = sqlx::query("select public.cancel_appointment($1, 'running late')")
        .bind(inside_notice)
        .execute(&mut *as_patient)
        .await
        .unwrap_err();
    assert_eq!(refused.as_database_error().unwrap().code().as_deref(), Some("PT422"));
    as_patient.rollback().await.unwrap();

    // Move it out of the window (as the owner) and book another later one: X cancels the next.
    let far = day_at_10(3);
    let farther = day_at_10(4);
    sqlx::query("update public.appointments set period = tstzrange($2, $2 + interval '30 minutes') where id = $1")
        .bind(inside_notice)
        .bind(far)
        .execute(&mut owner)
        .await
        .unwrap();
    let last = appointment(&mut owner, patient, practitioner, farther).await;
    let free = async |conn: &mut PgConnection, at: DateTime<Utc>| -> bool {
        sqlx::query_scalar(
            "select exists (select 1 from public.available_slots($1, $2, $2 + interval '30 minutes') s where s.slot_start = $2)",
        )
        .bind(practitioner)
        .bind(at)
        .fetch_one(conn)
        .await
        .unwrap()
    };
    assert!(!free(&mut owner, far).await);
    let (_, reply) = sms_reply(&c, &phone, " x ").await;
    assert!(reply.contains("is cancelled"), "{reply}");
    assert_eq!(status_of(&mut owner, inside_notice).await, "cancelled");
    assert_eq!(status_of(&mut owner, last).await, "booked");
    assert_eq!(status_of(&mut owner, others).await, "booked");
    assert!(free(&mut owner, far).await, "the cancelled slot is offered again");
    // Cancelled through the RPC, as the patient: the change is announced and audited as theirs.
    let actor: Option<Uuid> = sqlx::query_scalar(
        "select actor_id from private.audit_log where table_name = 'appointments' and row_id = $1::text and action = 'UPDATE'
          order by id desc limit 1",
    )
    .bind(inside_notice)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(actor, Some(patient));

    // C confirms the next one; the practitioner is told.
    let (_, reply) = sms_reply(&c, &phone, "C").await;
    assert!(reply.contains("is confirmed"), "{reply}");

    // The same MessageSid again does nothing twice.
    let sid = "SM-replayed";
    let params = [("MessageSid", sid), ("From", phone.as_str()), ("Body", "X")];
    let first = twilio_post(&c, "/webhooks/twilio/inbound", &params).send().await.unwrap().text().await.unwrap();
    assert!(first.contains("is cancelled"), "{first}");
    let again = twilio_post(&c, "/webhooks/twilio/inbound", &params).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("<Message>"), "{again}");

    // STOP turns SMS off: an SMS for this number is not sent; START turns it back on.
    let (_, reply) = sms_reply(&c, &phone, "STOP").await;
    assert!(reply.contains("no more texts"), "{reply}");
    let opted_in: bool = sqlx::query_scalar("select sms_opt_in from public.profiles where id = $1")
        .bind(patient)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert!(!opted_in);
    drop(c);
    let id = enqueue(&mut owner, "sms", &phone, "appointment_booked", json!({})).await;
    let _worker = companion(&db, &twilio, &sendgrid, &[]).await;
    wait_for("the SMS skipped", Duration::from_secs(10), async || row(&mut owner, id).await.0 == "skipped").await;
    assert!(twilio.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quiet_hours_defer_a_reminder_but_not_an_emergency_alert_and_reminders_are_enqueued_once() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let practitioner = practitioner(&mut owner, 0).await;
    let (patient, phone, _) = new_patient(&mut owner).await;
    // Quiet hours around now in the patient's zone (Lagos), ending in about two hours.
    sqlx::query(
        "update public.profiles set time_zone = 'Africa/Lagos', email_opt_in = false,
                quiet_hours_start = ((now() - interval '1 hour') at time zone 'Africa/Lagos')::time,
                quiet_hours_end = ((now() + interval '2 hours') at time zone 'Africa/Lagos')::time
          where id = $1",
    )
    .bind(patient)
    .execute(&mut owner)
    .await
    .unwrap();
    // 40 minutes ahead: only the 1-hour reminder is due.
    let starts = in_(chrono::Duration::minutes(40));
    let booked = appointment(&mut owner, patient, practitioner, starts).await;
    let alert = enqueue(&mut owner, "sms", &phone, "emergency_high_risk", json!({"emergency_id": Uuid::new_v4()})).await;
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    let _a = companion(&db, &twilio, &sendgrid, &[("NOTIFY_REMINDER_INTERVAL_SECONDS", "1")]).await;
    let _b = companion(&db, &twilio, &sendgrid, &[("NOTIFY_REMINDER_INTERVAL_SECONDS", "1")]).await;
    let reminder_rows = async |conn: &mut PgConnection| -> Vec<(i64, String, DateTime<Utc>, i32, String)> {
        sqlx::query_as(
            "select id, status, next_attempt_at, attempts, dedupe_key from private.outbox
              where template = 'appointment_reminder' order by id",
        )
        .fetch_all(conn)
        .await
        .unwrap()
    };
    wait_for("the 1-hour reminder enqueued and deferred", Duration::from_secs(15), async || {
        let rows = reminder_rows(&mut owner).await;
        rows.len() == 1 && rows[0].1 == "pending" && rows[0].2 > Utc::now() + chrono::Duration::minutes(100)
    })
    .await;
    wait_for("the alert sent", Duration::from_secs(10), async || row(&mut owner, alert).await.0 == "sent").await;
    // Two instances, several ticks: still one reminder, for the 60-minute offset and this start.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rows = reminder_rows(&mut owner).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].3, 0, "deferral does not count as an attempt");
    assert!(rows[0].4.starts_with(&format!("reminder:{booked}:60:")), "{}", rows[0].4);
    let sent: Vec<String> = twilio.received().iter().map(|r| r.body.clone()).collect();
    assert_eq!(sent.len(), 1, "only the alert went out during quiet hours");
    assert!(sent[0].contains("URGENT"));

    // Quiet hours end (moved away): a reminder for a moved appointment is not sent; the new
    // time gets its own.
    sqlx::query("update public.profiles set quiet_hours_start = null, quiet_hours_end = null where id = $1")
        .bind(patient)
        .execute(&mut owner)
        .await
        .unwrap();
    let moved = starts + chrono::Duration::minutes(10);
    sqlx::query(
        "update public.appointments set period = tstzrange($2, $2 + interval '30 minutes') where id = $1;",
    )
    .bind(booked)
    .bind(moved)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("update private.outbox set next_attempt_at = now() where template = 'appointment_reminder'")
        .execute(&mut owner)
        .await
        .unwrap();
    wait_for("the stale reminder skipped and the new one sent", Duration::from_secs(15), async || {
        let rows = reminder_rows(&mut owner).await;
        rows.len() == 2 && rows[0].1 == "skipped" && rows[1].1 == "sent"
    })
    .await;
    let bodies: Vec<String> = twilio.received().iter().map(|r| r.body.clone()).collect();
    let reminder = bodies.iter().find(|b| b.contains("reminder")).unwrap();
    assert!(reminder.contains(&format!("/appointments/{booked}")), "{reminder}");
    assert!(reminder.contains("WAT"), "in the patient's time zone: {reminder}");
    assert!(!reminder.contains("Dr Notify"), "SMS carries no practitioner: {reminder}");
}

fn sendgrid_post(c: &Companion, body: &str, timestamp: &str) -> reqwest::RequestBuilder {
    let signature: p256::ecdsa::Signature = webhook_key().sign(format!("{timestamp}{body}").as_bytes());
    reqwest::Client::new()
        .post(c.url("/webhooks/sendgrid/events"))
        .header("X-Twilio-Email-Event-Webhook-Signature", base64::engine::general_purpose::STANDARD.encode(signature.to_der()))
        .header("X-Twilio-Email-Event-Webhook-Timestamp", timestamp)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bounce_turns_email_off_and_status_callbacks_only_move_forward() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let (_, phone, email) = new_patient(&mut owner).await;
    let (_, _, bouncing) = new_patient(&mut owner).await;
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    let c = companion(&db, &twilio, &sendgrid, &[]).await;
    let delivered = enqueue(&mut owner, "email", &email, "appointment_booked", json!({})).await;
    let bounced = enqueue(&mut owner, "email", &bouncing, "appointment_booked", json!({})).await;
    let sms = enqueue(&mut owner, "sms", &phone, "appointment_booked", json!({})).await;
    wait_for("three sent", Duration::from_secs(10), async || status_counts(&mut owner).await.get("sent") == Some(&3)).await;
    let message = |id: i64| sendgrid.received().into_iter().find(|r| r.outbox_id == Some(id)).unwrap();
    assert_eq!(message(delivered).extra, "appointment_booked", "the category is the template name, ids only");

    let now = Utc::now().timestamp().to_string();
    let events = json!([
        {"email": email, "timestamp": 1, "event": "delivered", "sg_event_id": "ev-1",
         "sg_message_id": format!("{}.filter0001", message(delivered).message_id), "outbox_id": delivered.to_string()},
        {"email": bouncing, "timestamp": 1, "event": "bounce", "sg_event_id": "ev-2", "reason": "550 5.1.1 unknown user",
         "sg_message_id": format!("{}.filter0001", message(bounced).message_id), "outbox_id": bounced.to_string()},
    ])
    .to_string();
    // A wrong signature (another body) and a stale timestamp change nothing.
    let forged = sendgrid_post(&c, "[]", &now).body(events.clone()).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let stale = (Utc::now().timestamp() - 3600).to_string();
    assert_eq!(sendgrid_post(&c, &events, &stale).send().await.unwrap().status(), 403);
    assert_eq!(row(&mut owner, delivered).await.0, "sent");

    assert_eq!(sendgrid_post(&c, &events, &now).send().await.unwrap().status(), 200);
    assert_eq!(sendgrid_post(&c, &events, &now).send().await.unwrap().status(), 200, "a retry is accepted");
    assert_eq!(row(&mut owner, delivered).await.0, "delivered");
    assert_eq!(row(&mut owner, bounced).await.0, "failed");
    let (opt_in, reason): (bool, Option<String>) = sqlx::query_as(
        "select p.email_opt_in, s.reason from public.profiles p join private.email_suppressions s on s.email = lower(p.email)
          where p.email = $1",
    )
    .bind(&bouncing)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(!opt_in);
    assert_eq!(reason.as_deref(), Some("550 5.1.1 unknown user"));
    let stored: i64 = sqlx::query_scalar("select count(*) from private.webhook_inbox where provider = 'sendgrid' and processed_at is not null")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(stored, 2, "each event stored once");
    let again = enqueue(&mut owner, "email", &bouncing, "appointment_cancelled", json!({})).await;
    wait_for("mail to the bounced address skipped", Duration::from_secs(10), async || row(&mut owner, again).await.0 == "skipped")
        .await;
    assert_eq!(sendgrid.received().len(), 2);

    // Twilio: delivered moves the SMS forward; a late "sent" does not move it back.
    let sid = twilio.received()[0].message_id.clone();
    let path = format!("/webhooks/twilio/status?outbox_id={sms}");
    for status in ["delivered", "sent"] {
        let r = twilio_post(&c, &path, &[("MessageSid", &sid), ("MessageStatus", status), ("AccountSid", TWILIO_ACCOUNT_SID)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(row(&mut owner, sms).await.0, "delivered");
    let forged = reqwest::Client::new()
        .post(c.url(&path))
        .header("X-Twilio-Signature", "bm90IGl0")
        .form(&[("MessageSid", sid.as_str()), ("MessageStatus", "failed")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_keys_messages_go_to_the_sandbox_with_a_masked_log_line() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let c = Companion::spawn_with_logs(&[
        ("DATABASE_URL", &db.url),
        ("NOTIFY_POLL_INTERVAL_MS", "50"),
        ("NOTIFY_REMINDER_INTERVAL_SECONDS", "0"),
        ("RUST_LOG", "info"),
    ])
    .await
    .unwrap();
    let id = enqueue(&mut owner, "sms", "+2348031234567", "appointment_booked", json!({})).await;
    wait_for("the sandbox send", Duration::from_secs(10), async || row(&mut owner, id).await.0 == "sent").await;
    let listed: Value = reqwest::get(c.url("/dev/notifications")).await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0]["outbox_id"], id);
    assert!(listed["data"][0]["body"].as_str().unwrap().contains("is booked"));
    // A payment receipt (issue 13's payload: ids and amounts only) renders the amount in the
    // currency's minor units.
    let receipt = enqueue(
        &mut owner,
        "email",
        "payer@example.test",
        "payment_receipt",
        json!({"payment_id": Uuid::new_v4(), "appointment_id": Uuid::new_v4(), "patient_id": Uuid::new_v4(),
               "amount_minor": 1_500_050, "currency": "NGN"}),
    )
    .await;
    wait_for("the receipt", Duration::from_secs(10), async || row(&mut owner, receipt).await.0 == "sent").await;
    let listed: Value = reqwest::get(c.url("/dev/notifications")).await.unwrap().json().await.unwrap();
    let receipt = listed["data"].as_array().unwrap().iter().find(|m| m["outbox_id"] == receipt).unwrap();
    assert_eq!(receipt["subject"], "Receipt: NGN 15000.50");
    let logs = c.logs.as_ref().unwrap().lock().unwrap().join("\n");
    assert!(logs.contains("+234********67") && logs.contains("sandbox"), "{logs}");
    assert!(!logs.contains("+2348031234567") && !logs.contains("is booked") && !logs.contains("payer@"));

    // Never with keys: the endpoint does not exist.
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    let keyed = companion(&db, &twilio, &sendgrid, &[("NOTIFY_WORKER_ENABLED", "false")]).await;
    assert_eq!(reqwest::get(keyed.url("/dev/notifications")).await.unwrap().status(), 404);
}
