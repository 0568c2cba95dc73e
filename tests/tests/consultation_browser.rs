//! The consultation page (`examples/consultation/`) in a real browser: headless Debian chromium
//! with fake media devices, driven by `examples/consultation/browser-test.mjs` (playwright-core).
//! This test makes the database, the consultation and its conversation, a local coturn with the
//! companion's TURN secret and a companion serving the page; the script runs the call relay-only
//! (so TURN is really used), the chat and the hang-up, and this test checks the database after.
//! `make test` installs the pinned Node packages first (`npm ci` in examples/consultation).

use std::process::Stdio;
use std::time::Duration;

use careplane_tests::{create_user, free_port, jwt, workspace_root, Companion, TestDb, TEST_JWT_SECRET};
use serde_json::Value;
use uuid::Uuid;

const TURN_SECRET: &str = "turn-secret-for-the-browser-test";

fn token(sub: Uuid, role: &str) -> String {
    jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &jwt::user_claims("local", sub, role))
}

/// coturn on loopback with the REST-credentials secret; killed when dropped.
struct Coturn {
    _child: tokio::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Coturn {
    async fn start() -> anyhow::Result<Coturn> {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("careplane-coturn-{port}.log"));
        let child = tokio::process::Command::new("turnserver")
            .args(["-n", "--use-auth-secret", &format!("--static-auth-secret={TURN_SECRET}"), "--listening-ip", "127.0.0.1"])
            .args(["--relay-ip", "127.0.0.1", "--listening-port", &port.to_string(), "--allow-loopback-peers"])
            .args(["--no-tls", "--no-dtls", "--no-cli", "--realm", "careplane", "--verbose", "--simple-log", "--log-file"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("turnserver (Debian package coturn) does not start: {e}"))?;
        // Ready when it accepts TCP on its port (it listens on UDP and TCP alike).
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(Coturn { _child: child, port, log });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("turnserver did not listen on {port}; see {}", log.display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn patient_and_clinician_meet_through_turn_chat_and_hang_up() -> anyhow::Result<()> {
    let dir = workspace_root().join("examples/consultation");
    anyhow::ensure!(
        dir.join("node_modules/playwright-core").exists() && dir.join("node_modules/@supabase/supabase-js").exists(),
        "examples/consultation/node_modules is missing: run `npm ci` there (make test does)"
    );
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let patient = create_user(&mut conn, "patient").await?;
    let clinician = create_user(&mut conn, "doctor").await?;
    let outsider = create_user(&mut conn, "patient").await?;
    // A booked consultation that started two minutes ago, with its conversation.
    let (consultation, appointment): (Uuid, Uuid) = sqlx::query_as(
        "with p as (insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
                    values ($2, 'doctor', 'Dr Browser', 10000, 'NGN', 'Africa/Lagos') returning id),
              a as (insert into public.appointments (patient_id, practitioner_id, period, status, created_by)
                    select $1, p.id, tstzrange(now() - interval '2 minutes', now() + interval '28 minutes'), 'booked', $1 from p
                    returning id),
              c as (insert into public.consultations (appointment_id) select id from a returning id, appointment_id),
              v as (insert into public.conversations (consultation_id, kind) select id, 'consultation' from c returning id)
         insert into public.conversation_members (conversation_id, user_id)
         select v.id, u from v, unnest(array[$1, $2]::uuid[]) u
         returning (select id from c), (select appointment_id from c)",
    )
    .bind(patient)
    .bind(clinician)
    .fetch_one(&mut conn)
    .await?;

    let coturn = Coturn::start().await?;
    let turn_urls = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let examples = workspace_root().join("examples");
    let companion = Companion::spawn(&[
        ("DATABASE_URL", &db.url),
        ("TURN_URLS", &turn_urls),
        ("TURN_SECRET", TURN_SECRET),
        ("EXAMPLES_DIR", examples.to_str().expect("a UTF-8 path")),
        ("REALTIME_POLL_INTERVAL_MS", "200"),
        ("LEDGER_EXPIRY_INTERVAL_SECONDS", "0"),
        ("CONSULTATION_SWEEP_INTERVAL_SECONDS", "0"),
    ])
    .await?;

    // Taken into a temporary file, so a test run never changes the source tree; set
    // CAREPLANE_UPDATE_SCREENSHOT=1 to refresh the one examples/consultation/README.md shows.
    let screenshot = if std::env::var_os("CAREPLANE_UPDATE_SCREENSHOT").is_some() {
        dir.join("screenshot.png")
    } else {
        std::env::temp_dir().join(format!("careplane-consultation-{}.png", Uuid::new_v4().simple()))
    };
    let run = tokio::process::Command::new("node")
        .arg("browser-test.mjs")
        .current_dir(&dir)
        .env("BASE_URL", &companion.base)
        .env("CONSULTATION", consultation.to_string())
        .env("PATIENT_TOKEN", token(patient, "patient"))
        .env("CLINICIAN_TOKEN", token(clinician, "doctor"))
        .env("OUTSIDER_TOKEN", token(outsider, "patient"))
        .env("SCREENSHOT", &screenshot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(150), run).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}\ncoturn:\n{}", coturn.log());
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(serde_json::from_str)
        .ok_or_else(|| anyhow::anyhow!("no RESULT line:\n{stdout}"))??;
    println!("{result:#}");

    for side in ["patient", "clinician"] {
        let s = &result[side];
        assert!(["connected", "completed"].contains(&s["iceConnectionState"].as_str().unwrap_or("")), "{side}: {s}");
        assert_eq!(s["localCandidateType"], "relay", "{side}: the call goes through TURN: {s}");
        assert!(s["framesDecoded"].as_u64().unwrap_or(0) > 5, "{side}: video frames decoded: {s}");
    }
    assert_eq!(result["lateSend"]["sent"], "error", "{result}");
    assert!(std::fs::metadata(&screenshot)?.len() > 10_000, "a screenshot of the call");
    if std::env::var_os("CAREPLANE_UPDATE_SCREENSHOT").is_none() {
        let _ = std::fs::remove_file(&screenshot);
    }
    // coturn issued allocations for the call (its log names the REST username <expiry>:<user>).
    assert!(coturn.log().contains(&format!(":{patient}")), "coturn saw the patient's TURN credentials");

    // Hanging up ended the consultation and fulfilled the appointment; the chat is stored.
    let (status, duration, appointment_status): (String, Option<i32>, String) = sqlx::query_as(
        "select c.status, c.duration_seconds, a.status from public.consultations c
           join public.appointments a on a.id = c.appointment_id where c.id = $1 and a.id = $2",
    )
    .bind(consultation)
    .bind(appointment)
    .fetch_one(&mut conn)
    .await?;
    assert_eq!((status.as_str(), appointment_status.as_str()), ("ended", "fulfilled"));
    assert!(duration.is_some_and(|d| d >= 0));
    let bodies: Vec<String> = sqlx::query_scalar(
        "select m.body from public.messages m join public.conversations v on v.id = m.conversation_id
          where v.consultation_id = $1 order by m.created_at",
    )
    .bind(consultation)
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(bodies, ["Good morning — can you hear me?", "Yes, clearly"]);
    Ok(())
}
