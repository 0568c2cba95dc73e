//! Concurrent bookings on real connections: the database never stores a double booking, and
//! every loser gets PT409 — bookings racing bookings, and a patient accepting a proposal racing
//! other patients booking the same slot.

use std::sync::Arc;

use careplane_tests::{begin_as, create_user, user_claims, TestDb};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tokio::sync::Barrier;
use uuid::Uuid;

const CLIENTS: usize = 50;

enum Outcome {
    Booked,
    Conflict,
}

/// A Lagos practitioner working 09:00–17:00 every weekday; returns its id and next Monday 09:00.
async fn practitioner(owner: &mut PgConnection, alignment: Option<i32>) -> (Uuid, DateTime<Utc>) {
    let (id, _, monday) = practitioner_with_profile(owner, alignment).await;
    (id, monday)
}

/// As [`practitioner`], also returning the practitioner's own user id.
async fn practitioner_with_profile(owner: &mut PgConnection, alignment: Option<i32>) -> (Uuid, Uuid, DateTime<Utc>) {
    let doctor = create_user(owner, "doctor").await.unwrap();
    let id: Uuid = sqlx::query_scalar(
        "insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone,
                                           slot_minutes, slot_alignment_minutes, min_notice_minutes)
         values ($1, 'doctor', 'Dr Race', 100000, 'NGN', 'Africa/Lagos', 30, $2, 0) returning id",
    )
    .bind(doctor)
    .bind(alignment)
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
         select $1, d, '09:00', '17:00' from generate_series(1, 5) d",
    )
    .bind(id)
    .execute(&mut *owner)
    .await
    .unwrap();
    let monday: DateTime<Utc> = sqlx::query_scalar(
        "select (date_trunc('week', now() at time zone 'Africa/Lagos') + interval '7 days 9 hours') at time zone 'Africa/Lagos'",
    )
    .fetch_one(&mut *owner)
    .await
    .unwrap();
    (id, doctor, monday)
}

/// `CLIENTS` patients, each on their own connection, call book_appointment at the same moment.
async fn race(db: &TestDb, practitioner: Uuid, starts: Vec<DateTime<Utc>>) -> Vec<Outcome> {
    let mut owner = db.connect().await.unwrap();
    let barrier = Arc::new(Barrier::new(starts.len()));
    let mut tasks = Vec::new();
    for start in starts {
        let patient = create_user(&mut owner, "patient").await.unwrap();
        let mut conn = db.connect().await.unwrap();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let claims = user_claims(patient, "patient");
            let mut tx = begin_as(&mut conn, &claims).await.unwrap();
            barrier.wait().await;
            let result = sqlx::query("select * from public.book_appointment($1, $2)")
                .bind(practitioner)
                .bind(start)
                .execute(&mut *tx)
                .await;
            match result {
                Ok(_) => {
                    tx.commit().await.unwrap();
                    Outcome::Booked
                }
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("PT409") => Outcome::Conflict,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    outcomes
}

async fn stored_overlaps(conn: &mut PgConnection, practitioner: Uuid) -> i64 {
    sqlx::query_scalar(
        "select count(*) from public.appointments a join public.appointments b
           on a.practitioner_id = b.practitioner_id and a.id < b.id and a.period && b.period
         where a.practitioner_id = $1 and a.status = 'booked' and b.status = 'booked'",
    )
    .bind(practitioner)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_bookings_of_one_slot_make_one_appointment_and_49_conflicts() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let (practitioner, monday) = practitioner(&mut owner, None).await;
    let outcomes = race(&db, practitioner, vec![monday; CLIENTS]).await;
    let booked = outcomes.iter().filter(|o| matches!(o, Outcome::Booked)).count();
    let conflicts = outcomes.iter().filter(|o| matches!(o, Outcome::Conflict)).count();
    assert_eq!((booked, conflicts), (1, CLIENTS - 1));
    let stored: i64 = sqlx::query_scalar("select count(*) from public.appointments where practitioner_id = $1")
        .bind(practitioner)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_overlapping_different_slots_never_store_an_overlap() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    // 30-minute slots aligned every 5 minutes: starts 09:00, 09:05, … overlap their neighbours.
    let (practitioner, monday) = practitioner(&mut owner, Some(5)).await;
    let starts: Vec<DateTime<Utc>> = (0..CLIENTS as i64).map(|i| monday + chrono::Duration::minutes(5 * i)).collect();
    let outcomes = race(&db, practitioner, starts.clone()).await;
    let booked = outcomes.iter().filter(|o| matches!(o, Outcome::Booked)).count();
    // Each booking blocks at most 11 of the starts (itself and five either side).
    assert!(booked >= CLIENTS.div_ceil(11), "too few bookings succeeded: {booked}");
    assert!(booked < CLIENTS, "overlapping requests were refused");
    assert_eq!(stored_overlaps(&mut owner, practitioner).await, 0, "no overlapping appointments are stored");
    // Every refusal was real: the refused slot overlaps a stored booking.
    for (start, outcome) in starts.iter().zip(&outcomes) {
        if matches!(outcome, Outcome::Conflict) {
            let blocking: i64 = sqlx::query_scalar(
                "select count(*) from public.appointments
                  where practitioner_id = $1 and status = 'booked' and period && tstzrange($2, $2 + interval '30 minutes')",
            )
            .bind(practitioner)
            .bind(start)
            .fetch_one(&mut owner)
            .await
            .unwrap();
            assert!(blocking >= 1, "the request for {start} was refused but nothing overlaps it");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepting_a_proposal_while_others_book_its_slot_stores_one_appointment() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let (practitioner, doctor, monday) = practitioner_with_profile(&mut owner, None).await;
    // The practitioner proposes Monday 09:00 to a patient who has never booked with them.
    let invited = create_user(&mut owner, "patient").await.unwrap();
    let proposal: (Uuid, String) = {
        let mut conn = db.connect().await.unwrap();
        let mut tx = begin_as(&mut conn, &user_claims(doctor, "doctor")).await.unwrap();
        let row = sqlx::query_as("select id, status from public.book_appointment($1, $2, null, null, $3)")
            .bind(practitioner)
            .bind(monday)
            .bind(invited)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        row
    };
    assert_eq!(proposal.1, "proposed");

    // The invited patient accepts while CLIENTS - 1 others book the same slot.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let patient = if i == 0 { invited } else { create_user(&mut owner, "patient").await.unwrap() };
        let mut conn = db.connect().await.unwrap();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = begin_as(&mut conn, &user_claims(patient, "patient")).await.unwrap();
            barrier.wait().await;
            let result = if i == 0 {
                sqlx::query("select * from public.accept_appointment($1)").bind(proposal.0).execute(&mut *tx).await
            } else {
                sqlx::query("select * from public.book_appointment($1, $2)").bind(practitioner).bind(monday).execute(&mut *tx).await
            };
            match result {
                Ok(_) => {
                    tx.commit().await.unwrap();
                    Outcome::Booked
                }
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("PT409") => Outcome::Conflict,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }));
    }
    let mut booked = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Outcome::Booked) {
            booked += 1;
        }
    }
    assert_eq!(booked, 1, "exactly one of the acceptance and the bookings wins");
    let holding: i64 = sqlx::query_scalar(
        "select count(*) from public.appointments where practitioner_id = $1 and status = 'booked' and lower(period) = $2",
    )
    .bind(practitioner)
    .bind(monday)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(holding, 1, "one appointment holds the slot");
    assert_eq!(stored_overlaps(&mut owner, practitioner).await, 0);
}
