//! `bench/notifications/run.sh`: messages per second from `private.outbox` to the local fake
//! providers with one and with two companion instances, against the baseline of the same
//! number of provider calls made directly (no outbox, no database) at the same concurrency,
//! in the same run. Prints one `key value` line per figure.
//!
//! Settings: `ROWS` (default 2000, half SMS, half email), `ROUNDS` (3), `CONCURRENCY` (16 per
//! instance), `BATCH` (50), `LATENCY_MS` (the fakes' added latency, default 0), plus the test
//! harness's `CAREPLANE_TEST_ADMIN_URL` and `CAREPLANE_COMPANION_BIN`.

use std::time::{Duration, Instant};

use careplane_tests::fake_providers::{self, Fake, SENDGRID_API_KEY, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};
use careplane_tests::{Companion, TestDb};
use serde_json::json;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn drain(rows: u64, instances: usize, concurrency: u64, batch: u64, twilio: &Fake, sendgrid: &Fake) -> anyhow::Result<f64> {
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let (concurrency, batch) = (concurrency.to_string(), batch.to_string());
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("PUBLIC_BASE_URL", "https://careplane.example"),
        ("TWILIO_ACCOUNT_SID", TWILIO_ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
        ("TWILIO_FROM", "+15005550006"),
        ("TWILIO_BASE_URL", twilio.base.as_str()),
        ("SENDGRID_API_KEY", SENDGRID_API_KEY),
        ("SENDGRID_FROM", "care@careplane.example"),
        ("SENDGRID_BASE_URL", sendgrid.base.as_str()),
        ("NOTIFY_POLL_INTERVAL_MS", "20"),
        ("NOTIFY_CONCURRENCY", concurrency.as_str()),
        ("NOTIFY_BATCH_SIZE", batch.as_str()),
        ("NOTIFY_REMINDER_INTERVAL_SECONDS", "0"),
    ];
    // The instances are up and polling an empty outbox; the clock starts when the rows commit.
    let mut running = Vec::new();
    for _ in 0..instances {
        running.push(Companion::spawn(&env).await?);
    }
    let started = Instant::now();
    sqlx::query(
        "insert into private.outbox (channel, recipient, template, payload)
         select case when i % 2 = 0 then 'email' else 'sms' end,
                case when i % 2 = 0 then 'user' || i || '@example.test' else '+23480' || lpad(i::text, 8, '0') end,
                'appointment_booked', '{}'
           from generate_series(1, $1::int) i",
    )
    .bind(rows as i64)
    .execute(&mut conn)
    .await?;
    loop {
        let sent: i64 = sqlx::query_scalar("select count(*) from private.outbox where status = 'sent'").fetch_one(&mut conn).await?;
        if sent as u64 == rows {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "not drained within 10 minutes ({sent}/{rows})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(running);
    Ok(rows as f64 / elapsed)
}

/// The same calls straight to the fakes: what the providers (here, the fakes) allow at all.
async fn baseline(rows: u64, concurrency: u64, twilio: &Fake, sendgrid: &Fake) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = rows / concurrency;
    for t in 0..concurrency {
        let (client, tw, sg) = (client.clone(), twilio.base.clone(), sendgrid.base.clone());
        tasks.spawn(async move {
            for i in 0..per_task {
                let n = t * per_task + i;
                if n % 2 == 0 {
                    let body = json!({
                        "personalizations": [{"to": [{"email": format!("user{n}@example.test")}]}],
                        "from": {"email": "care@careplane.example"}, "subject": "Consultation booked",
                        "content": [{"type": "text/plain", "value": "Hello"}], "custom_args": {"outbox_id": n.to_string()},
                    });
                    client.post(format!("{sg}/v3/mail/send")).bearer_auth(SENDGRID_API_KEY).json(&body).send().await?;
                } else {
                    let to = format!("+23480{n:08}");
                    client
                        .post(format!("{tw}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"))
                        .basic_auth(TWILIO_ACCOUNT_SID, Some(TWILIO_AUTH_TOKEN))
                        .form(&[("To", to.as_str()), ("From", "+15005550006"), ("Body", "Hello")])
                        .send()
                        .await?;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok((per_task * concurrency) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let rows = setting("ROWS", 2000);
    let rounds = setting("ROUNDS", 3);
    let concurrency = setting("CONCURRENCY", 16);
    let batch = setting("BATCH", 50);
    let latency = Duration::from_millis(setting("LATENCY_MS", 0));
    let (twilio, sendgrid) = (fake_providers::twilio().await, fake_providers::sendgrid().await);
    twilio.set_latency(latency);
    sendgrid.set_latency(latency);
    for round in 1..=rounds {
        let base = baseline(rows, concurrency, &twilio, &sendgrid).await?;
        let one = drain(rows, 1, concurrency, batch, &twilio, &sendgrid).await?;
        let two = drain(rows, 2, concurrency, batch, &twilio, &sendgrid).await?;
        println!("round {round} baseline {base:.1} one {one:.1} two {two:.1}");
    }
    Ok(())
}
