//! Concurrent dispatchers and requesters on real connections:
//! - `claim_next_emergency` never hands the same request to two dispatchers, and every request
//!   is claimed exactly once;
//! - dispatchers racing to assign one request assign it once: the first assignment takes the
//!   claim, and every other dispatcher is refused with `claimed_by_another_dispatcher`;
//! - one requester racing many raises gets no more open requests than the limit allows.

use std::collections::HashMap;
use std::sync::Arc;

use careplane_tests::{begin_as, create_user, user_claims, TestDb};
use sqlx::postgres::PgDatabaseError;
use sqlx::PgConnection;
use tokio::sync::Barrier;
use uuid::Uuid;

const DISPATCHERS: usize = 8;
const REQUESTS: usize = 500;

/// The SQLSTATE and `detail.code` of a refusal.
fn refusal(e: &sqlx::Error) -> (String, String) {
    let sqlx::Error::Database(db) = e else { panic!("unexpected error: {e}") };
    let code = db
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(PgDatabaseError::detail)
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|d| d["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (db.code().unwrap_or_default().into_owned(), code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_dispatchers_claim_a_queue_of_500_each_request_exactly_once() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let requester = create_user(&mut owner, "patient").await.unwrap();
    let mut dispatchers = Vec::new();
    for _ in 0..DISPATCHERS {
        dispatchers.push(create_user(&mut owner, "dispatcher").await.unwrap());
    }
    // Any priorities and arrival times: the race is about who gets each request.
    sqlx::query(
        "insert into public.emergency_requests (requester_id, lat, lon, esi_level, priority, created_at)
         select $1, 6.5, 3.4, 1 + (i % 5), (1 + (i % 5)) * 100 + (i % 21), now() - i * interval '1 second'
         from generate_series(1, $2) i",
    )
    .bind(requester)
    .bind(REQUESTS as i32)
    .execute(&mut owner)
    .await
    .unwrap();

    let mut tasks = Vec::new();
    for dispatcher in dispatchers.clone() {
        let mut conn = db.connect().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let claims = user_claims(dispatcher, "dispatcher");
            let mut mine: Vec<Uuid> = Vec::new();
            loop {
                let mut tx = begin_as(&mut conn, &claims).await.unwrap();
                let claimed: Option<Uuid> = sqlx::query_scalar("select id from public.claim_next_emergency()")
                    .fetch_optional(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                match claimed {
                    Some(id) => mine.push(id),
                    None => break,
                }
            }
            (dispatcher, mine)
        }));
    }

    let mut claimed_by: HashMap<Uuid, Uuid> = HashMap::new();
    let mut dispatchers_with_claims = 0;
    for task in tasks {
        let (dispatcher, mine) = task.await.unwrap();
        dispatchers_with_claims += usize::from(!mine.is_empty());
        for id in mine {
            assert!(claimed_by.insert(id, dispatcher).is_none(), "request {id} was claimed twice");
        }
    }
    assert_eq!(claimed_by.len(), REQUESTS, "every request is claimed");
    assert!(dispatchers_with_claims >= 2, "the dispatchers really ran concurrently");

    let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as("select id, claimed_by from public.emergency_requests")
        .fetch_all(&mut owner)
        .await
        .unwrap();
    for (id, by) in rows {
        assert_eq!(by, claimed_by.get(&id).copied(), "the database records the dispatcher who got {id}");
    }
}

async fn on_duty_responder(owner: &mut PgConnection, n: usize) -> Uuid {
    let id = create_user(owner, "responder").await.unwrap();
    sqlx::query("insert into public.responders (id, call_sign, on_duty, last_lat, last_lon) values ($1, $2, true, 6.45, 3.39)")
        .bind(id)
        .bind(format!("R-{n}-{}", &id.simple().to_string()[..6]))
        .execute(owner)
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatchers_racing_to_assign_one_request_assign_it_once_and_the_rest_see_the_claim() {
    const ROUNDS: usize = 10;
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let requester = create_user(&mut owner, "patient").await.unwrap();
    let mut pairs = Vec::new();
    for n in 0..DISPATCHERS {
        pairs.push((create_user(&mut owner, "dispatcher").await.unwrap(), on_duty_responder(&mut owner, n).await));
    }
    let mut conns = Vec::new();
    for _ in 0..DISPATCHERS {
        conns.push(db.connect().await.unwrap());
    }

    for round in 0..ROUNDS {
        let request: Uuid = sqlx::query_scalar(
            "insert into public.emergency_requests (requester_id, lat, lon, esi_level, priority) values ($1, 6.5, 3.4, 1, 121) returning id",
        )
        .bind(requester)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        let barrier = Arc::new(Barrier::new(DISPATCHERS));
        let mut tasks = Vec::new();
        for ((dispatcher, responder), mut conn) in pairs.iter().copied().zip(conns.drain(..)) {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let claims = user_claims(dispatcher, "dispatcher");
                let mut tx = begin_as(&mut conn, &claims).await.unwrap();
                barrier.wait().await;
                let result = sqlx::query("select * from public.assign_responder($1, $2)")
                    .bind(request)
                    .bind(responder)
                    .execute(&mut *tx)
                    .await;
                let outcome = match result {
                    Ok(_) => {
                        tx.commit().await.unwrap();
                        Ok((dispatcher, responder))
                    }
                    Err(e) => {
                        drop(tx);
                        Err(refusal(&e))
                    }
                };
                (outcome, conn)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (outcome, conn) = t.await.unwrap();
            conns.push(conn);
            match outcome {
                Ok(w) => winners.push(w),
                Err(r) => assert_eq!(r, ("PT409".into(), "claimed_by_another_dispatcher".into()), "round {round}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one dispatcher assigns the request");
        let (dispatcher, responder) = winners[0];
        let row: (String, Option<Uuid>, Option<Uuid>) =
            sqlx::query_as("select status, assigned_responder_id, claimed_by from public.emergency_requests where id = $1")
                .bind(request)
                .fetch_one(&mut owner)
                .await
                .unwrap();
        assert_eq!(row, ("assigned".into(), Some(responder), Some(dispatcher)), "round {round}: the winner's assignment stands");
        let notified: i64 =
            sqlx::query_scalar("select count(*) from public.notifications where kind = 'emergency:assigned' and data ->> 'emergency_id' = $1::text")
                .bind(request)
                .fetch_one(&mut owner)
                .await
                .unwrap();
        assert_eq!(notified, 2, "round {round}: one responder and the requester are notified, once");
        // Free the responder for the next round.
        sqlx::query("update public.emergency_requests set status = 'resolved' where id = $1")
            .bind(request)
            .execute(&mut owner)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_requester_racing_sixteen_raises_gets_only_the_open_limit() {
    const RAISES: usize = 16;
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let requester = create_user(&mut owner, "patient").await.unwrap();
    let limit: i64 = sqlx::query_scalar("select careplane.dispatch_setting('max_open_emergencies', null)")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(RAISES));
    let mut tasks = Vec::new();
    for _ in 0..RAISES {
        let mut conn = db.connect().await.unwrap();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let claims = user_claims(requester, "patient");
            let mut tx = begin_as(&mut conn, &claims).await.unwrap();
            barrier.wait().await;
            let result = sqlx::query(
                "select * from public.raise_emergency(6.5, 3.4, 'help', null, '{\"lifesaving_intervention\": true}')",
            )
            .execute(&mut *tx)
            .await;
            match result {
                Ok(_) => {
                    tx.commit().await.unwrap();
                    None
                }
                Err(e) => Some(refusal(&e)),
            }
        }));
    }
    let mut raised = 0;
    for t in tasks {
        match t.await.unwrap() {
            None => raised += 1,
            Some(r) => assert_eq!(r, ("PT422".into(), "too_many_open_emergencies".into())),
        }
    }
    assert_eq!(raised, limit, "concurrent raises cannot all pass the open limit");
    let stored: i64 = sqlx::query_scalar("select count(*) from public.emergency_requests where requester_id = $1")
        .bind(requester)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(stored, limit);
    let pages: i64 = sqlx::query_scalar("select count(*) from public.emergency_requests where paged_at is not null")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(pages, 1, "a burst of ESI 1 requests pages once");
}
