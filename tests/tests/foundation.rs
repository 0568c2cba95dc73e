//! End-to-end: the companion binary against the running Postgres and Redis, and the migration
//! runner against real databases.

use std::time::Duration;

use careplane_companion::db::errors::db_error;
use careplane_companion::db::migrate::{self, MigrateError};
use careplane_companion::AppError;
use careplane_tests::{free_port, redis_url, workspace_root, Companion, PrivateRedis, TestDb};
use serde_json::{json, Value};

async fn get(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON body"))
}

#[tokio::test]
async fn health_detailed_reports_database_extension_and_redis_ok() {
    let db = TestDb::migrated().await.unwrap();
    let redis = redis_url();
    let app = Companion::spawn(&[("DATABASE_URL", &db.url), ("REDIS_URL", &redis)]).await.unwrap();

    let (status, body) = get(&app.url("/health")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], careplane_companion::VERSION);

    let (status, body) = get(&app.url("/health/detailed")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    for check in ["database", "extension", "redis"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{check}: {body}");
        assert!(body["checks"][check]["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(body["checks"]["extension"]["version"], careplane_companion::VERSION);
    assert_eq!(body["failing"], serde_json::json!([]));
}

#[tokio::test]
async fn redis_going_down_turns_detailed_health_503_naming_redis_and_health_still_answers() {
    let db = TestDb::migrated().await.unwrap();
    let mut redis = PrivateRedis::start(free_port());
    let redis_url = redis.url();
    let app = Companion::spawn(&[
        ("DATABASE_URL", &db.url),
        ("REDIS_URL", &redis_url),
        ("HEALTH_CHECK_TIMEOUT_MS", "500"),
    ])
    .await
    .unwrap();
    assert_eq!(get(&app.url("/health/detailed")).await.0, 200);
    let healthcheck = |live: bool| {
        // The container healthcheck: the binary asks the companion at BIND_ADDR.
        let mut cmd = std::process::Command::new(careplane_tests::companion_bin());
        cmd.arg("health").env_clear().env("BIND_ADDR", app.base.trim_start_matches("http://"));
        if live {
            cmd.arg("--live");
        }
        cmd.output().unwrap()
    };
    assert!(healthcheck(false).status.success(), "healthy while everything answers");

    redis.stop();
    let unhealthy = healthcheck(false);
    assert_eq!(unhealthy.status.code(), Some(1), "unhealthy while Redis is down");
    assert!(String::from_utf8_lossy(&unhealthy.stderr).contains("503"), "{unhealthy:?}");
    assert!(healthcheck(true).status.success(), "--live only asks whether it serves");
    let (status, body) = get(&app.url("/health/detailed")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert!(body["checks"]["redis"]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(get(&app.url("/health")).await.0, 200, "liveness does not depend on Redis");

    // Redis comes back on the same port: the companion reconnects by itself.
    let port = redis.port;
    let _redis = PrivateRedis::start(port);
    let mut recovered = false;
    for _ in 0..40 {
        if get(&app.url("/health/detailed")).await.0 == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "health did not recover after Redis restarted");
}

#[tokio::test]
async fn database_without_the_extension_is_reported_as_extension_down() {
    let db = TestDb::empty().await.unwrap();
    let redis = redis_url();
    let app = Companion::spawn(&[("DATABASE_URL", &db.url), ("REDIS_URL", &redis)]).await.unwrap();
    let (status, body) = get(&app.url("/health/detailed")).await;
    assert_eq!(status, 503);
    assert_eq!(body["failing"], serde_json::json!(["extension"]));
    assert!(body["checks"]["extension"]["error"].as_str().unwrap().contains("not installed"));
}

#[tokio::test]
async fn sigterm_stops_the_companion_cleanly() {
    let redis = redis_url();
    let mut app = Companion::spawn(&[("REDIS_URL", &redis)]).await.unwrap();
    let pid = app.child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), app.child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "exit status {status}");
}

/// The value of an unlabelled series in a Prometheus text page, if present.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(app: &Companion) -> String {
    let res = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn outbox_depth_counts_the_pending_outbox_rows_at_each_scrape() {
    let db = TestDb::migrated().await.unwrap();
    let redis = redis_url();
    let app = Companion::spawn(&[("DATABASE_URL", &db.url), ("REDIS_URL", &redis)]).await.unwrap();
    let mut conn = db.connect().await.unwrap();
    assert_eq!(sample(&scrape(&app).await, "careplane_outbox_depth"), Some(0.0));

    let queue = |status: &'static str, n: i32| {
        format!(
            "insert into private.outbox (channel, recipient, template, status)
             select 'sms', '+234800000000' || i, 'appointment_booked', '{status}' from generate_series(1, {n}) i"
        )
    };
    for (status, n) in [("pending", 3), ("sent", 2), ("dead", 1), ("sending", 1)] {
        sqlx::raw_sql(&queue(status, n)).execute(&mut conn).await.unwrap();
    }
    assert_eq!(sample(&scrape(&app).await, "careplane_outbox_depth"), Some(3.0), "only pending rows wait to be sent");

    sqlx::raw_sql(&queue("pending", 4)).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("update private.outbox set status = 'sent' where id = (select min(id) from private.outbox)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(sample(&scrape(&app).await, "careplane_outbox_depth"), Some(6.0), "read again at the next scrape");
}

#[tokio::test]
async fn outbox_depth_is_left_out_when_the_database_cannot_say() {
    // No migrations: private.outbox does not exist. The page still answers, without a guess.
    let db = TestDb::empty().await.unwrap();
    let redis = redis_url();
    let app = Companion::spawn(&[("DATABASE_URL", &db.url), ("REDIS_URL", &redis)]).await.unwrap();
    let page = scrape(&app).await;
    assert_eq!(sample(&page, "careplane_outbox_depth"), None, "{page}");
    assert!(page.contains("# TYPE careplane_rate_limiter_degraded gauge"), "the rest of the page is there: {page}");
}

fn status_code_details(err: AppError) -> (u16, String, String, Value) {
    let response_code = err.code().into_owned();
    match err {
        AppError::Status { status, message, details, .. } => (status.as_u16(), response_code, message, details),
        other => panic!("not answered with a status: {other:?}"),
    }
}

#[tokio::test]
async fn errors_the_database_raises_are_answered_as_postgrest_answers_them() {
    let db = TestDb::migrated().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    sqlx::raw_sql(
        "create table public.error_probe (id int primary key, amount bigint not null check (amount >= 0));
         insert into public.error_probe values (1, 10);",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    // A rule's refusal, raised the one way every refusal is raised: private.enforce(verdict).
    let verdict = json!({
        "ok": false, "sqlstate": "LG003", "message": "account 7 would go below zero",
        "detail": {"code": "exceeds_credits", "account_id": 7},
    });
    let err = sqlx::query("select private.enforce($1)").bind(&verdict).execute(&mut conn).await.unwrap_err();
    let (status, code, message, details) = status_code_details(db_error(err));
    assert_eq!((status, code.as_str(), message.as_str()), (400, "exceeds_credits", "account 7 would go below zero"));
    assert_eq!(details, json!({"sqlstate": "LG003", "detail": {"code": "exceeds_credits", "account_id": 7}, "hint": null}));

    let verdict = json!({
        "ok": false, "sqlstate": "PT409", "message": "the slot is taken",
        "detail": {"code": "practitioner_busy"}, "hint": "Pick a slot from available_slots().",
    });
    let err = sqlx::query("select private.enforce($1)").bind(&verdict).execute(&mut conn).await.unwrap_err();
    let (status, code, _, details) = status_code_details(db_error(err));
    assert_eq!((status, code.as_str()), (409, "practitioner_busy"));
    assert_eq!(details["hint"], "Pick a slot from available_slots().");

    // Postgres's own errors: the table's constraints, a bad cast, a missing function.
    let cases: &[(&str, u16, &str, &str)] = &[
        ("insert into public.error_probe values (1, 5)", 409, "conflict", "23505"),
        ("insert into public.error_probe values (2, -1)", 400, "invalid_input", "23514"),
        ("select 'not-a-uuid'::uuid", 400, "invalid_input", "22P02"),
        ("select public.no_such_function()", 404, "not_found", "42883"),
        ("select * from public.no_such_table", 404, "not_found", "42P01"),
    ];
    for &(sql, want_status, want_code, sqlstate) in cases {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        let (status, code, _, details) = status_code_details(db_error(err));
        assert_eq!((status, code.as_str()), (want_status, want_code), "{sql}");
        assert_eq!(details["sqlstate"], sqlstate, "{sql}");
    }

    // An internal error: 500 with the SQLSTATE, the database's words kept out of the answer.
    let err = sqlx::raw_sql("do $$ begin raise exception 'invariant broken in rules/src/x.rs' using errcode = 'XX000'; end $$")
        .execute(&mut conn)
        .await
        .unwrap_err();
    let (status, code, message, details) = status_code_details(db_error(err));
    assert_eq!((status, code.as_str(), message.as_str()), (500, "internal", "internal error"));
    assert_eq!(details, json!({"sqlstate": "XX000"}));
}

fn write(dir: &std::path::Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

#[tokio::test]
async fn migrations_apply_once_in_order_and_are_recorded_like_the_supabase_cli() {
    let db = TestDb::empty().await.unwrap();
    let dir = tempdir("order");
    write(&dir, "20260102000000_second.sql", "create table b (id int references a);\ninsert into b values (1);");
    write(&dir, "20260101000000_first.sql", "create table a (id int primary key);\ninsert into a values (1);");
    let mut conn = db.connect().await.unwrap();

    let report = migrate::apply(&mut conn, &migrate::load_dir(&dir).unwrap()).await.unwrap();
    assert_eq!(report.applied, ["20260101000000_first", "20260102000000_second"]);
    let rows: Vec<(String, String, Vec<String>)> =
        sqlx::query_as("select version, name, statements from supabase_migrations.schema_migrations order by version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows[0].0, "20260101000000");
    assert_eq!(rows[0].1, "first");
    assert_eq!(rows[0].2, ["create table a (id int primary key)", "insert into a values (1)"]);

    let again = migrate::apply(&mut conn, &migrate::load_dir(&dir).unwrap()).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, 2);
    assert_eq!(count(&mut conn, "select count(*) from b").await, 1, "nothing ran twice");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn failing_migration_rolls_back_whole_and_stops_the_run_naming_file_and_line() {
    let db = TestDb::empty().await.unwrap();
    let dir = tempdir("failing");
    write(&dir, "20260101000000_ok.sql", "create table a (id int);");
    write(&dir, "20260102000000_broken.sql", "create table half (id int);\ninsert into a values (1);\nselect no_such_function();");
    write(&dir, "20260103000000_later.sql", "create table later (id int);");
    let mut conn = db.connect().await.unwrap();

    let err = migrate::apply(&mut conn, &migrate::load_dir(&dir).unwrap()).await.unwrap_err();
    let MigrateError::Failed { path, error } = &err else { panic!("unexpected {err:?}") };
    assert!(path.ends_with("20260102000000_broken.sql"));
    assert_eq!(error.code.as_deref(), Some("42883"));
    assert_eq!(error.line, Some(3));
    let message = err.to_string();
    assert!(message.contains("20260102000000_broken.sql: line 3: ERROR 42883"), "{message}");

    assert_eq!(count(&mut conn, "select count(*) from pg_tables where tablename in ('half', 'later')").await, 0);
    assert_eq!(count(&mut conn, "select count(*) from a").await, 0, "the broken file's insert was rolled back");
    let versions: Vec<String> = sqlx::query_scalar("select version from supabase_migrations.schema_migrations")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, ["20260101000000"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn seed_runs_once_per_content_and_is_recorded_with_its_hash() {
    let db = TestDb::empty().await.unwrap();
    let dir = tempdir("seed");
    write(&dir, "seed.sql", "create table if not exists s (n int); insert into s values (1);");
    let mut conn = db.connect().await.unwrap();
    assert!(migrate::seed(&mut conn, &dir.join("seed.sql"), "seed.sql").await.unwrap());
    assert!(!migrate::seed(&mut conn, &dir.join("seed.sql"), "seed.sql").await.unwrap(), "unchanged seed skipped");
    assert_eq!(count(&mut conn, "select count(*) from s").await, 1);
    write(&dir, "seed.sql", "create table if not exists s (n int); insert into s values (2);");
    assert!(migrate::seed(&mut conn, &dir.join("seed.sql"), "seed.sql").await.unwrap(), "changed seed re-run");
    assert_eq!(count(&mut conn, "select count(*) from supabase_migrations.seed_files").await, 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn migrate_command_sets_up_a_database_like_make_db_and_is_safe_to_rerun() {
    let db = TestDb::empty().await.unwrap();
    let root = workspace_root();
    let run = || {
        std::process::Command::new(careplane_tests::companion_bin())
            .current_dir(&root)
            .env("DATABASE_URL", &db.url)
            .args(["migrate", "--compat", "sql/supabase_compat.sql", "--dir", "migrations", "--seed", "supabase/seed.sql"])
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = run();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("0 applied"), "{out}");
    assert!(out.contains("unchanged, skipped"), "{out}");

    let mut conn = db.connect().await.unwrap();
    let version: String = sqlx::query_scalar("select careplane.version()").fetch_one(&mut conn).await.unwrap();
    assert_eq!(version, careplane_companion::VERSION);
}

#[tokio::test]
async fn migrate_command_fails_loudly_naming_the_file() {
    let db = TestDb::empty().await.unwrap();
    let dir = tempdir("cli-failing");
    write(&dir, "20260101000000_typo.sql", "create tabel oops (id int);");
    let out = std::process::Command::new(careplane_tests::companion_bin())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("20260101000000_typo.sql: line 1: ERROR 42601: syntax error"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("careplane-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
