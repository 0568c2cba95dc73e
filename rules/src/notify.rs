//! Notification delivery: what the outbox worker and the provider webhooks decide.
//!
//! Pure: the clock, the random jitter and the provider's answer are arguments. The companion
//! calls these directly (`careplane-rules`); nothing here touches the network or the database.
//!
//! - [`classify`]: is a provider's answer sent, worth retrying, or a permanent refusal?
//! - [`next_step`]: after an attempt, sent / retry at (exponential backoff with bounded jitter,
//!   at least the provider's `Retry-After`) / dead.
//! - [`quiet_until`]: non-urgent messages wait for the end of the recipient's quiet hours, in
//!   the recipient's time zone; urgent ones never wait.
//! - [`due_reminder`]: which reminder offset is due for an appointment, if any.
//! - [`parse_command`]: an inbound SMS reply (`C`, `X`, `STOP`, `START`, `HELP`).
//! - [`DeliveryStatus::after_callback`]: provider status callbacks only move a message forward.
//! - [`on_unknown_outcome`]: a send whose outcome is unknown (the process died after calling
//!   the provider, before recording the answer).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The channels of `private.outbox.channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// Emergency messages (`emergency_*` templates) are urgent: they ignore quiet hours and are
/// resent when their outcome is unknown.
pub fn is_urgent(template: &str) -> bool {
    template.starts_with("emergency_")
}

/// What one provider answer means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The provider accepted the message.
    Sent,
    /// Worth another attempt: a timeout, a connection failure, 5xx, 429, 408, or our own
    /// credentials refused (401/403: the operator fixes the keys, the message is not at fault).
    Transient,
    /// The provider refused this message and will refuse it again (e.g. Twilio 21211 invalid
    /// number, SendGrid 400).
    Permanent,
}

/// Twilio error codes answered with a 4xx that are nevertheless transient: 20429 (too many
/// requests) and 20003 (authentication: our configuration, not the message).
const TWILIO_TRANSIENT_CODES: &[i64] = &[20003, 20429];

/// `status`: the HTTP status, `None` when no answer arrived (timeout, connection refused).
/// `provider_code`: Twilio's numeric `code` in the error body, when there is one.
pub fn classify(status: Option<u16>, provider_code: Option<i64>) -> Disposition {
    match status {
        None => Disposition::Transient,
        Some(s) if (200..300).contains(&s) => Disposition::Sent,
        Some(_) if provider_code.is_some_and(|c| TWILIO_TRANSIENT_CODES.contains(&c)) => Disposition::Transient,
        Some(401 | 403 | 408 | 425 | 429) => Disposition::Transient,
        Some(s) if s >= 500 => Disposition::Transient,
        Some(_) => Disposition::Permanent,
    }
}

/// The retry schedule: attempt `n` (1-based) waits `base · 2^(n-1)`, capped at `max`, then
/// jittered into `[d/2, d]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
    /// Attempts after which a transient failure is final (`dead`).
    pub max_attempts: u32,
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based). `jitter_permille` (0–1000, from the
    /// caller's random source) places it within `[d/2, d]`; values above 1000 count as 1000.
    pub fn delay_ms(&self, attempt: u32, jitter_permille: u16) -> u64 {
        let exp = attempt.saturating_sub(1).min(40);
        let full = self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms);
        let half = full / 2;
        half + (full - half) * u64::from(jitter_permille.min(1000)) / 1000
    }
}

/// What to do with a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Sent,
    /// Back to `pending`, due after this many milliseconds.
    RetryAfterMs(u64),
    /// `dead`: permanent refusal, or attempts used up.
    Dead,
}

/// `attempts`: attempts made so far, this one included. `retry_after_ms`: the provider's
/// `Retry-After`, honoured as a lower bound (never beyond `max_ms`).
pub fn next_step(
    disposition: Disposition,
    attempts: u32,
    backoff: &Backoff,
    retry_after_ms: Option<u64>,
    jitter_permille: u16,
) -> Step {
    match disposition {
        Disposition::Sent => Step::Sent,
        Disposition::Permanent => Step::Dead,
        Disposition::Transient if attempts >= backoff.max_attempts => Step::Dead,
        Disposition::Transient => {
            let computed = backoff.delay_ms(attempts, jitter_permille);
            let honoured = retry_after_ms.map_or(0, |r| r.min(backoff.max_ms));
            Step::RetryAfterMs(computed.max(honoured))
        }
    }
}

/// A recipient's quiet hours, wall-clock times in their time zone. `start > end` wraps past
/// midnight (22:00–07:00); `start == end` means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else if self.start > self.end {
            t >= self.start || t < self.end
        } else {
            false
        }
    }
}

/// When a message may go: `None` now, or the instant quiet hours end in `tz`. Urgent messages
/// never wait. An end time that a DST change skips is taken at the first valid instant after it.
pub fn quiet_until(now: DateTime<Utc>, tz: Tz, quiet: Option<QuietHours>, urgent: bool) -> Option<DateTime<Utc>> {
    let quiet = quiet?;
    if urgent {
        return None;
    }
    let local = now.with_timezone(&tz);
    let t = local.time();
    if !quiet.contains(t) {
        return None;
    }
    let mut day = local.date_naive();
    if quiet.start > quiet.end && t >= quiet.start {
        day = day.succ_opt()?;
    }
    let end = day.and_time(quiet.end);
    // A skipped (spring-forward) local time: the first minute that exists after it.
    (0..=180)
        .find_map(|m| tz.from_local_datetime(&(end + Duration::minutes(m))).earliest())
        .map(|d| d.with_timezone(&Utc))
        .filter(|d| *d > now)
}

/// The reminder due for an appointment starting at `starts_at`: the smallest offset (minutes
/// before the start) whose moment has come, while the appointment has not started. An
/// appointment booked 30 minutes ahead gets its 1-hour reminder, not a late 24-hour one as well.
pub fn due_reminder(starts_at: DateTime<Utc>, now: DateTime<Utc>, offsets_minutes: &[u32]) -> Option<u32> {
    if now >= starts_at {
        return None;
    }
    offsets_minutes
        .iter()
        .copied()
        .filter(|o| starts_at - Duration::minutes(i64::from(*o)) <= now)
        .min()
}

/// An inbound SMS, read the way a person types it (case, spaces and a trailing full stop do
/// not matter). Twilio's own opt-out and opt-in keywords are honoured as STOP and START, so
/// `CANCEL` (an opt-out keyword at Twilio) never cancels an appointment: `X` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsCommand {
    Confirm,
    Cancel,
    Stop,
    Start,
    Help,
    Unknown,
}

pub fn parse_command(body: &str) -> SmsCommand {
    let word = body.trim().trim_end_matches(['.', '!']).trim().to_ascii_uppercase();
    match word.as_str() {
        "C" | "CONFIRM" => SmsCommand::Confirm,
        "X" => SmsCommand::Cancel,
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "OPTOUT" | "REVOKE" => SmsCommand::Stop,
        "START" | "UNSTOP" | "YES" | "OPTIN" => SmsCommand::Start,
        "HELP" | "INFO" => SmsCommand::Help,
        _ => SmsCommand::Unknown,
    }
}

/// `private.outbox.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Sent,
    Delivered,
    Failed,
    Dead,
    /// Not sent on purpose: the recipient opted out, or a reminder went stale.
    Skipped,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Dead,
        DeliveryStatus::Skipped,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.code() == s)
    }

    /// A provider's delivery report (`Delivered` or `Failed`) applied to a message in this
    /// status: the new status, or `None` when it would not move the message forward. The first
    /// final report wins; a message marked dead for an unknown outcome learns that it arrived.
    pub fn after_callback(self, report: DeliveryStatus) -> Option<DeliveryStatus> {
        use DeliveryStatus::*;
        if !matches!(report, Delivered | Failed) {
            return None;
        }
        match self {
            Sending | Sent | Dead => Some(report),
            Pending | Delivered | Failed | Skipped => None,
        }
    }
}

/// Twilio's `MessageStatus` as a delivery report: `delivered`; `undelivered` / `failed`.
/// The intermediate states (`queued`, `sending`, `sent`, …) report nothing new.
pub fn twilio_report(message_status: &str) -> Option<DeliveryStatus> {
    match message_status {
        "delivered" | "read" => Some(DeliveryStatus::Delivered),
        "undelivered" | "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// A SendGrid event: its delivery report, and whether it turns email off for the address.
pub fn sendgrid_event(event: &str) -> (Option<DeliveryStatus>, bool) {
    match event {
        "delivered" => (Some(DeliveryStatus::Delivered), false),
        "bounce" | "dropped" => (Some(DeliveryStatus::Failed), true),
        "spamreport" | "unsubscribe" | "group_unsubscribe" => (None, true),
        _ => (None, false),
    }
}

/// A message found `sending` with its lease expired after the provider was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownOutcome {
    /// Send again: at worst the recipient gets it twice.
    Resend,
    /// Do not send again: `dead` with `outcome_unknown`, for a person to check with the
    /// provider and requeue.
    Hold,
}

/// Email is resent: SendGrid carries the outbox id in `custom_args`, so a duplicate is
/// attributable in the event webhook. SMS has no idempotency key at Twilio, so a non-urgent
/// SMS is held rather than risk texting twice; an emergency alert is resent, since a missed
/// page costs more than a duplicate.
pub fn on_unknown_outcome(channel: Channel, urgent: bool) -> UnknownOutcome {
    match (channel, urgent) {
        (Channel::Email, _) | (Channel::Sms, true) => UnknownOutcome::Resend,
        (Channel::Sms, false) => UnknownOutcome::Hold,
    }
}

/// `+2348031234567` → `+234*******67`: enough to tell messages apart in a log, not to reach
/// anyone. Emails keep the first letter and the domain.
pub fn mask_recipient(recipient: &str) -> String {
    if let Some((local, domain)) = recipient.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = recipient.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

#[cfg(test)]
mod tests;
