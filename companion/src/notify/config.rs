//! Notification settings (`PUBLIC_BASE_URL`, `TWILIO_*`, `SENDGRID_*`, `NOTIFY_*`).
//!
//! A provider whose keys are unset is in sandbox: its messages go to the local sink. A provider
//! with only some of its keys set is a configuration error, never a silent sandbox.

use std::time::Duration;

use secrecy::SecretString;

use crate::config::ConfigError;

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `PUBLIC_BASE_URL`: the URL providers call (no trailing slash); webhook signatures are
    /// checked against it and Twilio's `StatusCallback` is built from it.
    pub public_base_url: String,
    /// `NOTIFY_APP_URL`: links in messages point here (default `PUBLIC_BASE_URL`).
    pub app_url: String,
    /// `NOTIFY_CLINIC_NAME`: the sender's name in messages.
    pub clinic_name: String,
    pub twilio: Option<TwilioConfig>,
    pub sendgrid: Option<SendGridConfig>,
    /// `SENDGRID_WEBHOOK_PUBLIC_KEY`: base64 SPKI of the event webhook's ECDSA P-256 key.
    pub sendgrid_webhook_public_key: Option<String>,
    /// `SENDGRID_WEBHOOK_MAX_AGE_SECONDS`: events signed longer ago are refused (0: no window).
    pub sendgrid_webhook_max_age: Option<Duration>,
    /// `NOTIFY_WORKER_ENABLED`: run the outbox worker and reminder scheduler in this instance.
    pub worker_enabled: bool,
    /// `NOTIFY_BATCH_SIZE`: rows claimed at once.
    pub batch_size: i32,
    /// `NOTIFY_CONCURRENCY`: provider calls in flight per instance.
    pub concurrency: usize,
    /// `NOTIFY_LEASE_SECONDS`: how long a claim lasts; a crashed instance's rows return then.
    pub lease: Duration,
    /// `NOTIFY_POLL_INTERVAL_MS`: the wait when the outbox has nothing due.
    pub poll_interval: Duration,
    /// `NOTIFY_MAX_ATTEMPTS`, `NOTIFY_BACKOFF_BASE_MS`, `NOTIFY_BACKOFF_MAX_MS`.
    pub backoff: careplane_rules::notify::Backoff,
    /// `NOTIFY_PROVIDER_TIMEOUT_MS`: one provider call.
    pub provider_timeout: Duration,
    /// `NOTIFY_REMINDER_OFFSETS_MINUTES`: e.g. `1440,60` (24 hours and 1 hour before).
    pub reminder_offsets: Vec<u32>,
    /// `NOTIFY_REMINDER_INTERVAL_SECONDS`: how often due reminders are enqueued (0: never).
    pub reminder_interval: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub sender: TwilioSender,
    /// `TWILIO_BASE_URL` (default `https://api.twilio.com`).
    pub base_url: String,
}

#[derive(Debug, Clone)]
pub enum TwilioSender {
    /// `TWILIO_FROM`: an E.164 number.
    From(String),
    /// `TWILIO_MESSAGING_SERVICE_SID`.
    MessagingService(String),
}

#[derive(Debug, Clone)]
pub struct SendGridConfig {
    pub api_key: SecretString,
    /// `SENDGRID_FROM`: the sender address.
    pub from: String,
    /// `SENDGRID_BASE_URL` (default `https://api.sendgrid.com`).
    pub base_url: String,
}

pub(crate) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
    bind_addr: std::net::SocketAddr,
) -> Result<NotifyConfig, ConfigError> {
    let opt = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let err = |name: &'static str, reason: &str| ConfigError { name, reason: reason.to_owned() };
    let num = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        match opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| ConfigError { name, reason: format!("{v:?}: {e}") }),
        }
    };
    let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
        let v = opt(name).unwrap_or_else(|| default.to_owned());
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            return Err(err(name, "must start with http:// or https://"));
        }
        Ok(v.trim_end_matches('/').to_owned())
    };
    let public_base_url = url("PUBLIC_BASE_URL", &format!("http://{bind_addr}"))?;
    let app_url = url("NOTIFY_APP_URL", &public_base_url)?;

    let twilio = match (opt("TWILIO_ACCOUNT_SID"), opt("TWILIO_AUTH_TOKEN")) {
        (None, None) => None,
        (Some(account_sid), Some(token)) => {
            let sender = match (opt("TWILIO_FROM"), opt("TWILIO_MESSAGING_SERVICE_SID")) {
                (Some(from), None) => TwilioSender::From(from),
                (None, Some(sid)) => TwilioSender::MessagingService(sid),
                _ => return Err(err("TWILIO_FROM", "set exactly one of TWILIO_FROM and TWILIO_MESSAGING_SERVICE_SID")),
            };
            Some(TwilioConfig {
                account_sid,
                auth_token: SecretString::from(token),
                sender,
                base_url: url("TWILIO_BASE_URL", "https://api.twilio.com")?,
            })
        }
        (Some(_), None) => return Err(err("TWILIO_AUTH_TOKEN", "required with TWILIO_ACCOUNT_SID")),
        (None, Some(_)) => return Err(err("TWILIO_ACCOUNT_SID", "required with TWILIO_AUTH_TOKEN")),
    };
    let sendgrid = match opt("SENDGRID_API_KEY") {
        None => None,
        Some(key) => Some(SendGridConfig {
            api_key: SecretString::from(key),
            from: opt("SENDGRID_FROM").ok_or_else(|| err("SENDGRID_FROM", "required with SENDGRID_API_KEY"))?,
            base_url: url("SENDGRID_BASE_URL", "https://api.sendgrid.com")?,
        }),
    };
    let sendgrid_webhook_public_key = opt("SENDGRID_WEBHOOK_PUBLIC_KEY");
    if let Some(key) = &sendgrid_webhook_public_key {
        super::signature::sendgrid_key(key).map_err(|e| err("SENDGRID_WEBHOOK_PUBLIC_KEY", &e))?;
    }
    let max_age = num("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", 600)?;

    let positive = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        let n = num(name, default)?;
        if n == 0 {
            return Err(err(name, "must be at least 1"));
        }
        Ok(n)
    };
    let batch_size = positive("NOTIFY_BATCH_SIZE", 50)?;
    if batch_size > 1000 {
        return Err(err("NOTIFY_BATCH_SIZE", "at most 1000"));
    }
    let backoff = careplane_rules::notify::Backoff {
        base_ms: positive("NOTIFY_BACKOFF_BASE_MS", 30_000)?,
        max_ms: positive("NOTIFY_BACKOFF_MAX_MS", 3_600_000)?,
        max_attempts: u32::try_from(positive("NOTIFY_MAX_ATTEMPTS", 8)?).map_err(|_| err("NOTIFY_MAX_ATTEMPTS", "too large"))?,
    };
    let provider_timeout = Duration::from_millis(positive("NOTIFY_PROVIDER_TIMEOUT_MS", 10_000)?);
    let lease = Duration::from_secs(positive("NOTIFY_LEASE_SECONDS", 60)?);
    let concurrency = positive("NOTIFY_CONCURRENCY", 16)?;
    // A claimed batch is sent in ⌈batch / concurrency⌉ waves of at most one provider timeout
    // each; a lease shorter than that would hand rows still being sent to another instance.
    let waves = u32::try_from(batch_size.div_ceil(concurrency)).unwrap_or(u32::MAX);
    if lease <= provider_timeout.saturating_mul(waves) {
        return Err(err(
            "NOTIFY_LEASE_SECONDS",
            "must exceed NOTIFY_PROVIDER_TIMEOUT_MS × ⌈NOTIFY_BATCH_SIZE / NOTIFY_CONCURRENCY⌉, the longest a claimed batch takes",
        ));
    }
    let reminder_offsets = match opt("NOTIFY_REMINDER_OFFSETS_MINUTES") {
        None => vec![1440, 60],
        Some(v) => v
            .split(',')
            .map(|s| s.trim().parse::<u32>().ok().filter(|n| (1..=43_200).contains(n)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| err("NOTIFY_REMINDER_OFFSETS_MINUTES", "comma-separated minutes, each 1 to 43200"))?,
    };
    let reminder_seconds = num("NOTIFY_REMINDER_INTERVAL_SECONDS", 60)?;
    Ok(NotifyConfig {
        public_base_url,
        app_url,
        clinic_name: opt("NOTIFY_CLINIC_NAME").unwrap_or_else(|| "careplane".to_owned()),
        twilio,
        sendgrid,
        sendgrid_webhook_public_key,
        sendgrid_webhook_max_age: (max_age > 0).then(|| Duration::from_secs(max_age)),
        worker_enabled: match opt("NOTIFY_WORKER_ENABLED").as_deref() {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(_) => return Err(err("NOTIFY_WORKER_ENABLED", "expected true or false")),
        },
        batch_size: batch_size as i32,
        concurrency: concurrency as usize,
        lease,
        poll_interval: Duration::from_millis(positive("NOTIFY_POLL_INTERVAL_MS", 1000)?),
        backoff,
        provider_timeout,
        reminder_offsets,
        reminder_interval: (reminder_seconds > 0).then(|| Duration::from_secs(reminder_seconds)),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<super::NotifyConfig, crate::config::ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        super::parse(&|k| map.get(k).cloned(), "127.0.0.1:8080".parse().unwrap())
    }

    #[test]
    fn no_keys_means_sandbox_and_half_a_provider_is_an_error() {
        let c = parse(&[]).unwrap();
        assert!(c.twilio.is_none() && c.sendgrid.is_none());
        assert_eq!(c.public_base_url, "http://127.0.0.1:8080");
        assert_eq!(c.reminder_offsets, vec![1440, 60]);
        assert_eq!(parse(&[("TWILIO_ACCOUNT_SID", "AC1")]).unwrap_err().name, "TWILIO_AUTH_TOKEN");
        assert_eq!(parse(&[("TWILIO_ACCOUNT_SID", "AC1"), ("TWILIO_AUTH_TOKEN", "t")]).unwrap_err().name, "TWILIO_FROM");
        assert_eq!(parse(&[("SENDGRID_API_KEY", "SG.x")]).unwrap_err().name, "SENDGRID_FROM");
        assert_eq!(parse(&[("SENDGRID_WEBHOOK_PUBLIC_KEY", "bm90IGEga2V5")]).unwrap_err().name, "SENDGRID_WEBHOOK_PUBLIC_KEY");
        assert_eq!(parse(&[("NOTIFY_REMINDER_OFFSETS_MINUTES", "1440,0")]).unwrap_err().name, "NOTIFY_REMINDER_OFFSETS_MINUTES");
        assert_eq!(parse(&[("NOTIFY_LEASE_SECONDS", "5")]).unwrap_err().name, "NOTIFY_LEASE_SECONDS");
        // 50 rows, 16 at a time, 10 s each: four waves, 40 s.
        assert_eq!(parse(&[("NOTIFY_LEASE_SECONDS", "40")]).unwrap_err().name, "NOTIFY_LEASE_SECONDS");
        assert!(parse(&[("NOTIFY_LEASE_SECONDS", "41")]).is_ok());
        assert_eq!(parse(&[("PUBLIC_BASE_URL", "example.com")]).unwrap_err().name, "PUBLIC_BASE_URL");
        let c = parse(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("TWILIO_MESSAGING_SERVICE_SID", "MG1"),
            ("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", "0"),
        ])
        .unwrap();
        assert!(matches!(c.twilio.unwrap().sender, super::TwilioSender::MessagingService(_)));
        assert!(c.sendgrid_webhook_max_age.is_none());
    }
}
