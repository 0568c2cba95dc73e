//! Concurrent dispatchers on real connections: `claim_next_emergency` never hands the same
//! request to two of them, and every request is claimed exactly once.

use std::collections::HashMap;

use careplane_tests::{begin_as, create_user, user_claims, TestDb};
use uuid::Uuid;

const DISPATCHERS: usize = 8;
const REQUESTS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_dispatchers_claim_a_queue_of_500_each_request_exactly_once() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let requester = create_user(&mut owner, "patient").await.unwrap();
    let mut dispatchers = Vec::new();
    for _ in 0..DISPATCHERS {
        dispatchers.push(create_user(&mut owner, "dispatcher").await.unwrap());
    }
    sqlx::query(
        "insert into public.emergency_requests (requester_id, lat, lon, esi_level, news2, created_at)
         select $1, 6.5, 3.4, 1 + (i % 5), jsonb_build_object('partial_total', i % 21), now() - i * interval '1 second'
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
