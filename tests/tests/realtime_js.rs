//! The Node conformance suite (`tests/realtime-js`): the official `@supabase/supabase-js`
//! against careplane's realtime relay. This test makes the database and the fixture users, then
//! runs `node --test`, which starts its own companions; any failing case fails this test with
//! node's output. `make test` installs the pinned packages first (`npm ci`).

use std::process::Stdio;

use careplane_tests::{companion_bin, create_user, redis_url, unique_prefix, workspace_root, TestDb, TEST_JWT_SECRET};

#[tokio::test(flavor = "multi_thread")]
async fn supabase_js_conformance_suite() -> anyhow::Result<()> {
    let dir = workspace_root().join("tests/realtime-js");
    anyhow::ensure!(
        dir.join("node_modules/@supabase/supabase-js").exists(),
        "tests/realtime-js/node_modules is missing: run `npm ci` there (make test does)"
    );
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let patient = create_user(&mut conn, "patient").await?;
    let other = create_user(&mut conn, "patient").await?;
    let outsider = create_user(&mut conn, "patient").await?;
    let dispatcher = create_user(&mut conn, "dispatcher").await?;
    let conversation = careplane_tests::create_conversation(&mut conn, &[patient, other]).await?;

    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec", "conformance.test.mjs"])
        .current_dir(&dir)
        .env("CAREPLANE_COMPANION_BIN", companion_bin())
        .env("DATABASE_URL", &db.url)
        .env("SUPABASE_JWT_SECRET", TEST_JWT_SECRET)
        .env("REDIS_URL", redis_url())
        .env("REALTIME_REDIS_PREFIX", unique_prefix())
        .env("FIXTURE_PATIENT", patient.to_string())
        .env("FIXTURE_OTHER", other.to_string())
        .env("FIXTURE_OUTSIDER", outsider.to_string())
        .env("FIXTURE_DISPATCHER", dispatcher.to_string())
        .env("FIXTURE_CONVERSATION", conversation.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    anyhow::ensure!(output.status.success(), "the supabase-js conformance suite failed ({}):\n{stdout}\n{stderr}", output.status);
    anyhow::ensure!(stdout.contains("# fail 0") || stdout.contains("fail 0"), "no test summary from node:\n{stdout}");
    Ok(())
}
