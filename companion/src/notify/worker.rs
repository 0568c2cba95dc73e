//! The outbox worker: claims due rows with a lease (`private.claim_outbox`: `FOR UPDATE SKIP
//! LOCKED`), decides and sends each, and records the outcome; and the reminder scheduler.
//!
//! Every decision is `careplane_rules::notify`'s. Per row:
//! 1. taken over from an expired lease after the provider was called → `on_unknown_outcome`;
//! 2. the recipient turned the channel off (non-urgent) or the email address is suppressed →
//!    `skipped`;
//! 3. inside the recipient's quiet hours (non-urgent) → back to `pending` until they end, the
//!    attempt not counted;
//! 4. a reminder whose appointment was cancelled or moved → `skipped`;
//! 5. render, mark `provider_called_at`, call the provider, `classify` + `next_step`.
//!
//! Every write is conditioned on this instance still holding the lease, so a row another
//! instance took over is never overwritten with a stale answer.

use std::sync::Arc;
use std::time::Duration;

use careplane_rules::notify::{self as rules, Channel, Step, UnknownOutcome};
use chrono::{DateTime, NaiveTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::providers::Outgoing;
use super::templates::Context;
use super::Notifier;

/// A row of `private.claim_outbox`, with what it says about the recipient (all `None` when no
/// profile has the address).
#[derive(Debug)]
pub struct Claimed {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    pub payload: Value,
    pub attempts: i32,
    pub outcome_unknown: bool,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
    pub quiet_hours: Option<rules::QuietHours>,
    /// The recipient's opt-in for this channel.
    pub opted_in: Option<bool>,
    /// The SendGrid event that suppressed this email address.
    pub suppressed: Option<String>,
}

type ClaimRow = (
    i64,
    String,
    String,
    String,
    Value,
    i32,
    bool,
    Option<String>,
    Option<String>,
    Option<NaiveTime>,
    Option<NaiveTime>,
    Option<bool>,
    Option<String>,
);

impl From<ClaimRow> for Claimed {
    fn from(r: ClaimRow) -> Self {
        let (id, channel, recipient, template, payload, attempts, outcome_unknown, locale, time_zone, start, end, opted_in, suppressed) = r;
        let quiet_hours = start.zip(end).map(|(start, end)| rules::QuietHours { start, end });
        Claimed { id, channel, recipient, template, payload, attempts, outcome_unknown, locale, time_zone, quiet_hours, opted_in, suppressed }
    }
}

/// How a row leaves this instance's hands.
enum Finish {
    Sent { message_id: Option<String> },
    Retry { after_ms: u64, error: String },
    Dead(String),
    Skipped(String),
    /// Quiet hours: due again at this instant; the attempt does not count.
    Defer(DateTime<Utc>),
    /// Our lease ran out before the call and another instance holds the row: theirs to send.
    LeaseLost,
}

impl Finish {
    fn label(&self) -> &'static str {
        match self {
            Finish::Sent { .. } => "sent",
            Finish::Retry { .. } => "retry",
            Finish::Dead(_) => "dead",
            Finish::Skipped(_) => "skipped",
            Finish::Defer(_) => "deferred",
            Finish::LeaseLost => "lease_lost",
        }
    }
}

impl Notifier {
    /// Claims one batch and processes it, `NOTIFY_CONCURRENCY` provider calls at a time.
    /// Returns how many rows were claimed.
    pub async fn drain_once(self: &Arc<Self>, db: &PgPool) -> Result<usize, sqlx::Error> {
        let rows: Vec<ClaimRow> = sqlx::query_as("select * from private.claim_outbox($1, $2, make_interval(secs => $3))")
            .bind(&self.instance)
            .bind(self.config.batch_size)
            .bind(self.config.lease.as_secs_f64())
            .fetch_all(db)
            .await?;
        let claimed = rows.len();
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let mut tasks = JoinSet::new();
        for row in rows.into_iter().map(Claimed::from) {
            let (me, db, permits) = (self.clone(), db.clone(), permits.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                let id = row.id;
                if let Err(error) = me.process(&db, row).await {
                    // The lease runs out and the row is claimed again.
                    tracing::warn!(outbox_id = id, %error, "notifications: could not record a message's outcome");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(claimed)
    }

    async fn process(&self, db: &PgPool, row: Claimed) -> Result<(), sqlx::Error> {
        let finish = self.decide_and_send(db, &row).await?;
        metrics::counter!("careplane_notifications_total", "channel" => row.channel.clone(), "outcome" => finish.label())
            .increment(1);
        self.finish(db, row.id, finish).await
    }

    async fn decide_and_send(&self, db: &PgPool, row: &Claimed) -> Result<Finish, sqlx::Error> {
        let Some(channel) = Channel::parse(&row.channel) else {
            return Ok(Finish::Dead(format!("unknown channel {:?}", row.channel)));
        };
        let urgent = rules::is_urgent(&row.template);
        if row.outcome_unknown && rules::on_unknown_outcome(channel, urgent) == UnknownOutcome::Hold {
            return Ok(Finish::Dead(
                "outcome_unknown: the previous attempt called Twilio and did not record the answer; \
                 check the message log at Twilio before requeueing"
                    .into(),
            ));
        }
        if !urgent && row.opted_in == Some(false) {
            return Ok(Finish::Skipped(format!("the recipient turned {} off", row.channel)));
        }
        if let Some(event) = &row.suppressed {
            return Ok(Finish::Skipped(format!("the address is suppressed after a SendGrid {event} event")));
        }
        let tz = row.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC);
        if let Some(until) = rules::quiet_until(Utc::now(), tz, row.quiet_hours, urgent) {
            return Ok(Finish::Defer(until));
        }
        let ctx = match self.context(db, row, tz).await? {
            Ok(ctx) => ctx,
            Err(reason) => return Ok(Finish::Skipped(reason)),
        };
        let rendered = match self.templates.render(&row.template, &row.channel, row.locale.as_deref(), &ctx) {
            Ok(r) => r,
            Err(e) => return Ok(Finish::Dead(format!("template: {e}"))),
        };
        let marked = sqlx::query(
            "update private.outbox set provider_called_at = now() where id = $1 and lease_owner = $2 and status = 'sending'",
        )
        .bind(row.id)
        .bind(&self.instance)
        .execute(db)
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(Finish::LeaseLost);
        }
        let outgoing = Outgoing { outbox_id: row.id, template: &row.template, recipient: &row.recipient, rendered: &rendered };
        let attempt = self.providers.send(&outgoing).await;
        let disposition = rules::classify(attempt.status, attempt.provider_code);
        let jitter = rand::random_range(0..=1000u16);
        let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
        let error = || attempt.error.clone().unwrap_or_else(|| "provider error".into());
        Ok(match rules::next_step(disposition, attempts, &self.config.backoff, attempt.retry_after_ms, jitter) {
            Step::Sent => Finish::Sent { message_id: attempt.message_id.clone() },
            Step::RetryAfterMs(after_ms) => Finish::Retry { after_ms, error: error() },
            Step::Dead => Finish::Dead(error()),
        })
    }

    /// What the template may say, looked up by the ids in the payload. `Err`: the message is
    /// stale (a reminder for an appointment cancelled or moved since).
    async fn context(&self, db: &PgPool, row: &Claimed, tz: chrono_tz::Tz) -> Result<Result<Context, String>, sqlx::Error> {
        let id = |k: &str| row.payload.get(k).and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
        let when = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
        let payload_start = row
            .payload
            .get("starts_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let app = &self.config.app_url;
        let mut ctx = Context { clinic: self.config.clinic_name.clone(), ..Context::default() };
        if let Some(appointment) = id("appointment_id") {
            let found: Option<(String, Option<DateTime<Utc>>, String, bool)> = sqlx::query_as(
                "select a.status, lower(a.period), p.display_name, careplane.is_active_appointment_status(a.status)
                   from public.appointments a join public.practitioners p on p.id = a.practitioner_id
                  where a.id = $1",
            )
            .bind(appointment)
            .fetch_optional(db)
            .await?;
            if row.template == "appointment_reminder" {
                let current = found.as_ref().filter(|f| f.3).and_then(|f| f.1);
                if current.is_none() || current != payload_start {
                    return Ok(Err("stale reminder: the appointment was cancelled or moved".into()));
                }
            }
            if let Some((status, starts_at, practitioner, _)) = found {
                ctx.when = payload_start.or(starts_at).map(when);
                ctx.practitioner = Some(practitioner);
                ctx.status = Some(status.replace('-', " "));
            }
            ctx.link = format!("{app}/appointments/{appointment}");
        }
        if row.template == "payment_receipt" {
            let amount = row.payload.get("amount_minor").and_then(Value::as_i64);
            let currency = row.payload.get("currency").and_then(Value::as_str).map(careplane_rules::currency::Currency::parse);
            if let (Some(amount), Some(Ok(currency))) = (amount, currency) {
                ctx.amount = Some(format!("{} {}", currency.code(), currency.format_minor(amount)));
            }
            if let Some(payment) = id("payment_id") {
                ctx.reference = Some(payment.to_string());
                ctx.link = format!("{app}/payments/{payment}");
            }
        }
        if let Some(emergency) = id("emergency_id") {
            ctx.link = format!("{app}/emergencies/{emergency}");
        }
        if ctx.link.is_empty() {
            ctx.link = app.clone();
        }
        Ok(Ok(ctx))
    }

    async fn finish(&self, db: &PgPool, id: i64, finish: Finish) -> Result<(), sqlx::Error> {
        const RELEASE: &str = "lease_owner = null, lease_expires_at = null, updated_at = now()";
        const MINE: &str = "where id = $1 and lease_owner = $2 and status = 'sending'";
        let q = match &finish {
            // A delivery report may have arrived before this answer: it stays.
            Finish::Sent { .. } => format!(
                "update private.outbox set status = 'sent', provider_message_id = $3, sent_at = now(), last_error = null, {RELEASE} {MINE}"
            ),
            Finish::Retry { .. } => format!(
                "update private.outbox set status = 'pending', next_attempt_at = now() + make_interval(secs => $3::float8 / 1000),
                        last_error = $4, {RELEASE} {MINE}"
            ),
            Finish::Dead(_) => format!("update private.outbox set status = 'dead', last_error = $3, {RELEASE} {MINE}"),
            Finish::LeaseLost => return Ok(()),
            Finish::Skipped(_) => format!("update private.outbox set status = 'skipped', last_error = $3, {RELEASE} {MINE}"),
            Finish::Defer(_) => format!(
                "update private.outbox set status = 'pending', next_attempt_at = $3, attempts = attempts - 1, {RELEASE} {MINE}"
            ),
        };
        let sent_id = match &finish {
            Finish::Sent { message_id } => Some(message_id.clone()),
            _ => None,
        };
        let mut query = sqlx::query(&q).bind(id).bind(&self.instance);
        query = match finish {
            Finish::Sent { message_id } => query.bind(message_id),
            Finish::Retry { after_ms, error } => query.bind(after_ms as f64).bind(error),
            Finish::Dead(e) | Finish::Skipped(e) => query.bind(e),
            Finish::Defer(until) => query.bind(until),
            Finish::LeaseLost => unreachable!("returned above"),
        };
        let done = query.execute(db).await?;
        if let (0, Some(message_id)) = (done.rows_affected(), sent_id) {
            // Sent, but a delivery report got there first: record the message id only.
            sqlx::query(&format!(
                "update private.outbox set provider_message_id = coalesce(provider_message_id, $3), sent_at = coalesce(sent_at, now()), {RELEASE}
                  where id = $1 and lease_owner = $2"
            ))
            .bind(id)
            .bind(&self.instance)
            .bind(message_id)
            .execute(db)
            .await?;
        }
        Ok(())
    }

    /// Enqueues the reminders that are due (`careplane_rules::notify::due_reminder`); the
    /// dedupe key makes a second enqueue a no-op. Returns how many rows were added.
    pub async fn enqueue_reminders(&self, db: &PgPool) -> Result<i64, sqlx::Error> {
        let offsets = &self.config.reminder_offsets;
        let horizon = offsets.iter().copied().max().unwrap_or(0);
        let candidates: Vec<(Uuid, DateTime<Utc>)> =
            sqlx::query_as("select * from private.reminder_candidates(make_interval(mins => $1))")
                .bind(horizon as i32)
                .fetch_all(db)
                .await?;
        let now = Utc::now();
        let mut added = 0i64;
        for (appointment, starts_at) in candidates {
            if let Some(offset) = rules::due_reminder(starts_at, now, offsets) {
                let n: i32 = sqlx::query_scalar("select private.enqueue_reminder($1, $2, $3)")
                    .bind(appointment)
                    .bind(offset as i32)
                    .bind(starts_at)
                    .fetch_one(db)
                    .await?;
                added += i64::from(n);
            }
        }
        Ok(added)
    }
}

/// The worker loop: drains while there is work, waits `NOTIFY_POLL_INTERVAL_MS` when there
/// is none. Database errors are logged and retried after the same wait.
pub async fn run(db: PgPool, notifier: Arc<Notifier>) {
    loop {
        match notifier.drain_once(&db).await {
            Ok(0) => tokio::time::sleep(notifier.config.poll_interval).await,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "notifications: claiming from the outbox failed; retrying");
                tokio::time::sleep(notifier.config.poll_interval.max(Duration::from_millis(500))).await;
            }
        }
    }
}

/// Enqueues due reminders every `interval`.
pub async fn run_reminders(db: PgPool, notifier: Arc<Notifier>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match notifier.enqueue_reminders(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(added = n, "notifications: reminders enqueued"),
            Err(error) => tracing::warn!(%error, "notifications: enqueueing reminders failed; retrying next interval"),
        }
    }
}
