//! The database helper runs user work exactly as PostgREST does, so row-level security
//! decides: checked against a throwaway database with an RLS-protected table of the test's own,
//! and against careplane's own roles, where a revocation counts from the next statement
//! whatever token the person still holds.

use careplane_companion::auth::{AuthUser, Principal, Verifier};
use careplane_companion::db::errors::db_error;
use careplane_companion::db::user::{begin_as_user, Access};
use careplane_companion::{AppError, Config};
use careplane_tests::{create_user, jwt, TestDb, TEST_JWT_SECRET};
use serde_json::json;
use sqlx::Executor;
use uuid::Uuid;

/// A verified token for `sub` whose claims list `roles` (the first is `user_role`), as the
/// access token hook issues it.
async fn user_with_roles(verifier: &Verifier, sub: Uuid, roles: &[&str]) -> AuthUser {
    let claims = jwt::with(&jwt::user_claims("local", sub, roles[0]), &[("user_roles", json!(roles))]);
    let token = jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &claims);
    match verifier.verify(&token).await.unwrap() {
        Principal::User(u) => u,
        Principal::Service(_) => unreachable!(),
    }
}

async fn user(verifier: &Verifier, sub: Uuid) -> AuthUser {
    user_with_roles(verifier, sub, &["patient"]).await
}

fn verifier_and_pool(db: &TestDb) -> (Verifier, sqlx::PgPool) {
    let config = Config::from_lookup(|k| match k {
        "SUPABASE_JWT_SECRET" => Some(TEST_JWT_SECRET.into()),
        "DATABASE_URL" => Some(db.url.clone()),
        _ => None,
    })
    .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_lazy(&db.url).unwrap();
    (Verifier::new(&config.auth), pool)
}

#[tokio::test]
async fn user_work_runs_as_authenticated_with_the_claims_so_rls_decides() {
    let db = TestDb::migrated().await.unwrap();
    let mut admin = db.connect().await.unwrap();
    let (alice_id, bob_id) = (Uuid::new_v4(), Uuid::new_v4());
    admin
        .execute(
            format!(
                "create table public.notes (owner uuid not null default auth.uid(), body text not null);
                 alter table public.notes enable row level security;
                 create policy \"users read own notes\" on public.notes for select to authenticated using (owner = auth.uid());
                 create unique index notes_owner_body on public.notes (owner, body);
                 create policy \"users write own notes\" on public.notes for insert to authenticated with check (owner = auth.uid());
                 grant select, insert on public.notes to authenticated;
                 insert into public.notes values ('{alice_id}', 'alice 1'), ('{alice_id}', 'alice 2'), ('{bob_id}', 'bob 1');"
            )
            .as_str(),
        )
        .await
        .unwrap();

    let (verifier, pool) = verifier_and_pool(&db);
    let alice = user(&verifier, alice_id).await;

    // Reads: only her rows; the database sees her id and role.
    let mut tx = begin_as_user(&pool, &alice, Access::ReadOnly).await.unwrap();
    let bodies: Vec<String> = sqlx::query_scalar("select body from public.notes order by body").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(bodies, ["alice 1", "alice 2"]);
    let (current_user, uid, claim_role): (String, Uuid, String) =
        sqlx::query_as("select current_user::text, auth.uid(), auth.jwt() ->> 'user_role'").fetch_one(&mut *tx).await.unwrap();
    assert_eq!((current_user.as_str(), uid, claim_role.as_str()), ("authenticated", alice_id, "patient"));
    // Read-only, like PostgREST's GET.
    let err = sqlx::query("insert into public.notes (body) values ('x')").execute(&mut *tx).await.unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().as_deref(), Some("25006"));
    drop(tx);

    // Writes: her own row goes in; one claiming to be Bob's is refused by RLS, answered 403.
    let mut tx = begin_as_user(&pool, &alice, Access::ReadWrite).await.unwrap();
    sqlx::query("insert into public.notes (body) values ('alice 3')").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = begin_as_user(&pool, &alice, Access::ReadWrite).await.unwrap();
    let err = sqlx::query(&format!("insert into public.notes values ('{bob_id}', 'forged')")).execute(&mut *tx).await.unwrap_err();
    let app_err = db_error(err);
    assert!(matches!(&app_err, AppError::Status { status, .. } if status.as_u16() == 403), "{app_err:?}");
    assert_eq!(app_err.code(), "permission_denied");
    drop(tx);
    // A duplicate is a conflict, answered 409 as PostgREST answers 23505.
    let mut tx = begin_as_user(&pool, &alice, Access::ReadWrite).await.unwrap();
    let err = sqlx::query("insert into public.notes (body) values ('alice 1')").execute(&mut *tx).await.unwrap_err();
    let app_err = db_error(err);
    assert_eq!((app_err.http_status().as_u16(), app_err.code().as_ref()), (409, "conflict"));
    drop(tx);

    // Nothing leaks into the pooled connection afterwards: it is the companion's role again,
    // with no claims.
    let (current_user, claims): (String, Option<String>) =
        sqlx::query_as("select current_user::text, nullif(current_setting('request.jwt.claims', true), '')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(current_user, "postgres");
    assert_eq!(claims, None);

    let all: Vec<(Uuid, String)> =
        sqlx::query_as("select owner, body from public.notes order by body").fetch_all(&mut admin).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.contains(&(alice_id, "alice 3".into())));
    assert!(!all.iter().any(|(_, b)| b == "forged"));

    // Bob sees only his.
    let bob = user(&verifier, bob_id).await;
    let mut tx = begin_as_user(&pool, &bob, Access::ReadOnly).await.unwrap();
    let bodies: Vec<String> = sqlx::query_scalar("select body from public.notes").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(bodies, ["bob 1"]);
}

#[tokio::test]
async fn revoked_role_is_refused_on_the_next_request_with_the_token_still_claiming_it() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    let admin_id = create_user(&mut owner, "admin").await.unwrap();
    let dispatcher_id = create_user(&mut owner, "dispatcher").await.unwrap();
    let requester_id = create_user(&mut owner, "patient").await.unwrap();
    sqlx::query("insert into public.emergency_requests (requester_id, lat, lon, description) values ($1, 6.5, 3.4, 'fall')")
        .bind(requester_id)
        .execute(&mut owner)
        .await
        .unwrap();
    let (verifier, pool) = verifier_and_pool(&db);
    let admin = user_with_roles(&verifier, admin_id, &["admin", "patient"]).await;
    let dispatcher = user_with_roles(&verifier, dispatcher_id, &["dispatcher", "patient"]).await;

    // The dispatcher's token works: the queue holds the request.
    let mut tx = begin_as_user(&pool, &dispatcher, Access::ReadOnly).await.unwrap();
    let queued: i64 = sqlx::query_scalar("select count(*) from public.dispatch_queue()").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(queued, 1);
    drop(tx);

    // An admin revokes the role (committed).
    let mut tx = begin_as_user(&pool, &admin, Access::ReadWrite).await.unwrap();
    let removed: bool = sqlx::query_scalar("select public.revoke_role($1, 'dispatcher')")
        .bind(dispatcher_id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(removed);
    tx.commit().await.unwrap();

    // The same token, an hour from expiring, still claims it: the next request is refused, 403
    // as PostgREST answers 42501, and the database counts only what is still granted.
    assert_eq!(dispatcher.user_roles, ["dispatcher", "patient"]);
    let mut tx = begin_as_user(&pool, &dispatcher, Access::ReadWrite).await.unwrap();
    let err = sqlx::query("select * from public.claim_next_emergency()").execute(&mut *tx).await.unwrap_err();
    let app_err = db_error(err);
    assert_eq!((app_err.http_status().as_u16(), app_err.code().as_ref()), (403, "permission_denied"), "{app_err:?}");
    drop(tx);
    let mut tx = begin_as_user(&pool, &dispatcher, Access::ReadOnly).await.unwrap();
    let effective: Vec<String> = sqlx::query_scalar("select unnest(access.effective_roles())::text")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(effective, ["patient"]);
    drop(tx);

    // A token claiming a role that was never granted carries none of its permissions.
    let pretender = user_with_roles(&verifier, requester_id, &["admin"]).await;
    let mut tx = begin_as_user(&pool, &pretender, Access::ReadOnly).await.unwrap();
    let (manages_roles, effective): (bool, Vec<String>) =
        sqlx::query_as("select public.authorize('roles.manage'), access.effective_roles()::text[]")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!((manages_roles, effective.as_slice()), (false, &[] as &[String]));
}
