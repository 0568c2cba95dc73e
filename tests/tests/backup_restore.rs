//! Backups that restore: a database with activity (the seed's world, a booking, messages, a
//! payment and a ledger history) is backed up with scripts/backup.sh and restored with
//! scripts/restore.sh into a new database, which must hold the same rows, a clean ledger, RLS on
//! every table, the same audit log, and an extension that answers.

use std::collections::BTreeMap;
use std::process::Command;

use careplane_tests::{admin_url, begin_as, user_claims, workspace_root, LedgerFixture, TestDb};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const AMAKA: &str = "a0000000-0000-4000-8000-00000000000a";

/// Row count of every table in the schemas that hold the product's data.
async fn row_counts(conn: &mut PgConnection) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select format('%I.%I', n.nspname, c.relname) from pg_catalog.pg_class c
           join pg_catalog.pg_namespace n on n.oid = c.relnamespace
          where n.nspname in ('public', 'private', 'auth', 'supabase_migrations') and c.relkind in ('r', 'p')
          order by 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {t}")).fetch_one(&mut *conn).await.unwrap();
        counts.insert(t, n);
    }
    counts
}

/// A fingerprint of the audit log: every row, in order.
async fn audit_fingerprint(conn: &mut PgConnection) -> String {
    sqlx::query_scalar("select coalesce(md5(string_agg(a::text, '|' order by a.id)), '') from private.audit_log a")
        .fetch_one(conn)
        .await
        .unwrap()
}

fn run(script: &str, args: &[&str]) {
    let url = admin_url();
    let hostport = url.split('@').nth(1).and_then(|s| s.split('/').next()).unwrap_or("127.0.0.1:5432");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    let out = Command::new(workspace_root().join(script))
        .args(args)
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", "postgres")
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_backup_restores_into_a_new_database_with_every_row_a_clean_ledger_rls_and_the_audit_log() {
    let db = TestDb::migrated().await.unwrap();
    let mut owner = db.connect().await.unwrap();
    careplane_companion::db::migrate::run_file(&mut owner, &workspace_root().join("supabase/seed.sql")).await.unwrap();

    // Activity: the patient writes in her conversation (as PostgREST would run it), a payment
    // and a ledger history (a top-up and a consultation fee, posted by the service).
    let amaka: Uuid = AMAKA.parse().unwrap();
    let mut tx = begin_as(&mut owner, &user_claims(amaka, "patient")).await.unwrap();
    sqlx::query("insert into public.messages (conversation_id, body) values ('e2000000-0000-4000-8000-000000000001', 'Readings attached')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sqlx::query(
        "insert into public.payments (patient_id, amount_minor, currency, provider_reference, status)
         values ($1, 1500000, 'NGN', 'cp_restore_drill_1', 'succeeded')",
    )
    .bind(amaka)
    .execute(&mut owner)
    .await
    .unwrap();
    // The payment's path through the payments tables: its webhook in the inbox, a refund requested.
    for sql in [
        "select private.webhook_store('paystack', 'charge.success:cp_restore_drill_1', 'charge.success', '{\"event\": \"charge.success\"}')",
        "select private.payment_apply(p.id, jsonb_build_object('refund', jsonb_build_object('id', gen_random_uuid(), 'amount_minor', 1000,
           'reason', 'admin'))) from public.payments p where p.provider_reference = 'cp_restore_drill_1'",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    let ledger = LedgerFixture::create(&mut owner, "NGN").await.unwrap();
    for (from, to, amount) in [(ledger.clearing, ledger.wallet, 1_500_000_i64), (ledger.wallet, ledger.revenue, 1_000_000)] {
        sqlx::query("select private.post_transfer($1, 'restore_drill', $2)")
            .bind(Uuid::new_v4())
            .bind(ledger.legs(from, to, amount))
            .execute(&mut owner)
            .await
            .unwrap();
    }

    let before = row_counts(&mut owner).await;
    let audit_before = audit_fingerprint(&mut owner).await;
    assert!(before["private.audit_log"] > 0 && before["public.ledger_entries"] >= 4 && before["public.messages"] >= 3);
    assert!(before["private.webhook_inbox"] == 1 && before["private.payment_refunds"] == 1);
    let patient_sees_before: i64 = {
        let mut tx = begin_as(&mut owner, &user_claims(amaka, "patient")).await.unwrap();
        sqlx::query_scalar("select count(*) from public.appointments").fetch_one(&mut *tx).await.unwrap()
    };

    let dir = std::env::temp_dir().join(format!("careplane-backup-{}", Uuid::new_v4().simple()));
    let restored_name = format!("{}_restored", db.name);
    let restored_url = db.url.replace(&format!("/{}", db.name), &format!("/{restored_name}"));
    // Dropped (with force) when the test ends, however it ends.
    let _restored_db = TestDb { name: restored_name.clone(), url: restored_url.clone() };
    run("scripts/backup.sh", &[&db.name, dir.to_str().unwrap()]);
    for file in ["db.dump", "roles.sql", "manifest"] {
        assert!(dir.join(file).exists(), "the backup has {file}");
    }
    run("scripts/restore.sh", &[dir.to_str().unwrap(), &restored_name]);
    let mut restored = PgConnection::connect(&restored_url).await.unwrap();

    assert_eq!(row_counts(&mut restored).await, before, "every table holds the same number of rows");
    assert_eq!(audit_fingerprint(&mut restored).await, audit_before, "the audit log is intact, row for row");
    let violations: i64 = sqlx::query_scalar("select count(*) from private.verify_ledger()").fetch_one(&mut restored).await.unwrap();
    assert_eq!(violations, 0, "the restored ledger verifies");
    let without_rls: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity",
    )
    .fetch_all(&mut restored)
    .await
    .unwrap();
    assert!(without_rls.is_empty(), "RLS stays enabled on every table: {without_rls:?}");
    let (version, exponent): (String, i32) = sqlx::query_as("select careplane.version(), careplane.currency_exponent('NGN')")
        .fetch_one(&mut restored)
        .await
        .unwrap();
    assert_eq!((version.as_str(), exponent), (careplane_companion::VERSION, 2), "the extension's functions answer");
    let patient_sees_after: i64 = {
        let mut tx = begin_as(&mut restored, &user_claims(amaka, "patient")).await.unwrap();
        sqlx::query_scalar("select count(*) from public.appointments").fetch_one(&mut *tx).await.unwrap()
    };
    assert_eq!(patient_sees_after, patient_sees_before, "the policies decide as before");

    // restore.sh refuses to overwrite a database.
    let again = Command::new(workspace_root().join("scripts/restore.sh")).args([dir.to_str().unwrap(), &restored_name]).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "restoring over an existing database is refused");
    let _ = std::fs::remove_dir_all(&dir);
}
