//! Notifications: SMS through Twilio and email through SendGrid from `private.outbox`, signed
//! provider webhooks, reminders and SMS replies. Contract: docs/notifications.md.

pub mod config;
pub mod http;
pub mod providers;
pub mod signature;
pub mod templates;
pub mod worker;

use std::time::Duration;

use config::NotifyConfig;

/// What the worker and the webhooks share: settings, provider clients (or the sandbox sink),
/// templates, and this instance's name in `lease_owner`.
pub struct Notifier {
    pub config: NotifyConfig,
    pub providers: providers::Providers,
    pub templates: templates::Templates,
    pub instance: String,
}

impl Notifier {
    pub fn new(config: NotifyConfig) -> Self {
        let providers = providers::Providers::new(&config);
        let instance = format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Notifier { config, providers, templates: templates::Templates::new(), instance }
    }
}

/// Dead messages, and stuck ones: `sending` past their lease, or `pending` and overdue by
/// more than five minutes (no worker is draining).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct OutboxHealth {
    pub dead: i64,
    pub stuck: i64,
}

/// Read as `crate::metrics::bounded_read` reads.
pub async fn outbox_health(db: &sqlx::PgPool, timeout: Duration) -> Result<OutboxHealth, String> {
    let (dead, stuck): (i64, i64) = crate::metrics::bounded_read(
        db,
        timeout,
        "select count(*) filter (where status = 'dead'),
                count(*) filter (where (status = 'sending' and lease_expires_at < now())
                                    or (status = 'pending' and next_attempt_at < now() - interval '5 minutes'))
           from private.outbox where status in ('dead', 'sending', 'pending')",
    )
    .await?;
    Ok(OutboxHealth { dead, stuck })
}

/// The exposition of the outbox gauges, appended to `/metrics`.
pub fn outbox_health_exposition(h: OutboxHealth) -> String {
    format!(
        "# HELP careplane_outbox_dead outbox messages given up on (dead), read from private.outbox at scrape time\n\
         # TYPE careplane_outbox_dead gauge\n\
         careplane_outbox_dead {}\n\
         # HELP careplane_outbox_stuck outbox messages sending past their lease, or pending and overdue by more than 5 minutes\n\
         # TYPE careplane_outbox_stuck gauge\n\
         careplane_outbox_stuck {}\n",
        h.dead, h.stuck
    )
}
