//! The calls to Twilio and SendGrid, and the sandbox sink used when a provider has no keys.
//!
//! Each call answers an [`Attempt`]: the HTTP status (none when no answer came), the provider's
//! error code and message, its message id, and `Retry-After`. Deciding what that means is
//! `careplane_rules::notify::classify`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{json, Value};

use super::config::{NotifyConfig, SendGridConfig, TwilioConfig, TwilioSender};
use super::templates::Rendered;

/// One message to send.
pub struct Outgoing<'a> {
    pub outbox_id: i64,
    pub template: &'a str,
    pub recipient: &'a str,
    pub rendered: &'a Rendered,
}

#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub status: Option<u16>,
    pub provider_code: Option<i64>,
    pub message_id: Option<String>,
    /// The provider's error message (or the transport error), for `last_error`.
    pub error: Option<String>,
    pub retry_after_ms: Option<u64>,
}

/// A message the sandbox "sent": listed by the development endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct SinkMessage {
    pub outbox_id: i64,
    pub channel: &'static str,
    pub to: String,
    pub template: String,
    pub subject: Option<String>,
    pub body: String,
    pub message_id: String,
    /// RFC 3339.
    pub at: String,
}

/// The last [`Sink::CAPACITY`] sandbox messages, in memory.
#[derive(Default)]
pub struct Sink {
    messages: Mutex<VecDeque<SinkMessage>>,
}

impl Sink {
    pub const CAPACITY: usize = 500;

    pub fn list(&self) -> Vec<SinkMessage> {
        self.messages.lock().expect("sink lock").iter().cloned().collect()
    }

    fn push(&self, m: SinkMessage) {
        let mut q = self.messages.lock().expect("sink lock");
        if q.len() == Self::CAPACITY {
            q.pop_front();
        }
        q.push_back(m);
    }
}

pub struct Providers {
    http: reqwest::Client,
    twilio: Option<TwilioConfig>,
    sendgrid: Option<SendGridConfig>,
    public_base_url: String,
    pub sink: Sink,
}

impl Providers {
    pub fn new(config: &NotifyConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.provider_timeout)
            .connect_timeout(config.provider_timeout.min(Duration::from_secs(5)))
            .build()
            .expect("an HTTP client with rustls");
        Providers {
            http,
            twilio: config.twilio.clone(),
            sendgrid: config.sendgrid.clone(),
            public_base_url: config.public_base_url.clone(),
            sink: Sink::default(),
        }
    }

    /// Which channels go to the sandbox sink (no keys configured).
    pub fn sandboxed(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.twilio.is_none() {
            v.push("sms");
        }
        if self.sendgrid.is_none() {
            v.push("email");
        }
        v
    }

    pub async fn send(&self, m: &Outgoing<'_>) -> Attempt {
        match (m.rendered, &self.twilio, &self.sendgrid) {
            (Rendered::Sms { body }, Some(t), _) => self.twilio_send(t, m, body).await,
            (Rendered::Email { subject, text }, _, Some(s)) => self.sendgrid_send(s, m, subject, text).await,
            (rendered, _, _) => self.sandbox(m, rendered),
        }
    }

    fn sandbox(&self, m: &Outgoing<'_>, rendered: &Rendered) -> Attempt {
        let (channel, subject, body) = match rendered {
            Rendered::Sms { body } => ("sms", None, body.clone()),
            Rendered::Email { subject, text } => ("email", Some(subject.clone()), text.clone()),
        };
        let message_id = format!("sandbox-{}", uuid::Uuid::new_v4().simple());
        tracing::info!(
            outbox_id = m.outbox_id,
            channel,
            to = %careplane_rules::notify::mask_recipient(m.recipient),
            template = m.template,
            "notifications: sandbox \"sent\" a message (no provider keys; GET /dev/notifications lists it)"
        );
        self.sink.push(SinkMessage {
            outbox_id: m.outbox_id,
            channel,
            to: m.recipient.to_owned(),
            template: m.template.to_owned(),
            subject,
            body,
            message_id: message_id.clone(),
            at: chrono::Utc::now().to_rfc3339(),
        });
        Attempt { status: Some(202), message_id: Some(message_id), ..Attempt::default() }
    }

    async fn twilio_send(&self, t: &TwilioConfig, m: &Outgoing<'_>, body: &str) -> Attempt {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", t.base_url, t.account_sid);
        let callback = format!("{}/webhooks/twilio/status?outbox_id={}", self.public_base_url, m.outbox_id);
        let mut form = vec![("To", m.recipient), ("Body", body), ("StatusCallback", callback.as_str())];
        match &t.sender {
            TwilioSender::From(from) => form.push(("From", from)),
            TwilioSender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        let request = self
            .http
            .post(url)
            .basic_auth(&t.account_sid, Some(t.auth_token.expose_secret()))
            .form(&form);
        let (mut attempt, body) = exchange(request).await;
        if let Some(v) = body {
            if attempt.status.is_some_and(|s| (200..300).contains(&s)) {
                attempt.message_id = v.get("sid").and_then(Value::as_str).map(str::to_owned);
            } else {
                // {"code": 21211, "message": "…", "more_info": "…", "status": 400}
                attempt.provider_code = v.get("code").and_then(Value::as_i64);
                attempt.error = v.get("message").and_then(Value::as_str).map(|msg| match attempt.provider_code {
                    Some(code) => format!("twilio {code}: {msg}"),
                    None => format!("twilio: {msg}"),
                });
            }
        }
        attempt
    }

    async fn sendgrid_send(&self, s: &SendGridConfig, m: &Outgoing<'_>, subject: &str, text: &str) -> Attempt {
        // Categories and custom_args carry ids only; custom_args come back on every event.
        let payload = json!({
            "personalizations": [{ "to": [{ "email": m.recipient }] }],
            "from": { "email": s.from },
            "subject": subject,
            "content": [{ "type": "text/plain", "value": text }],
            "categories": [m.template],
            "custom_args": { "outbox_id": m.outbox_id.to_string() },
        });
        let request = self
            .http
            .post(format!("{}/v3/mail/send", s.base_url))
            .bearer_auth(s.api_key.expose_secret())
            .json(&payload);
        let (attempt, body) = exchange(request).await;
        let mut attempt = attempt;
        if attempt.status.is_some_and(|s| !(200..300).contains(&s)) {
            // {"errors": [{"message": "…", "field": "…", "help": …}]}
            let messages: Vec<String> = body
                .as_ref()
                .and_then(|v| v.get("errors")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|e| {
                    let msg = e.get("message")?.as_str()?;
                    Some(match e.get("field").and_then(Value::as_str) {
                        Some(field) => format!("{field}: {msg}"),
                        None => msg.to_owned(),
                    })
                })
                .collect();
            if !messages.is_empty() {
                attempt.error = Some(format!("sendgrid: {}", messages.join("; ")));
            }
        }
        attempt
    }
}

/// Sends, and reads status, `Retry-After`, `X-Message-Id` and a JSON body if there is one.
async fn exchange(request: reqwest::RequestBuilder) -> (Attempt, Option<Value>) {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_timeout() { "timed out" } else { "no answer" };
            return (Attempt { error: Some(format!("{what}: {}", without_url(&e))), ..Attempt::default() }, None);
        }
    };
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let retry_after_ms = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(|s| s.saturating_mul(1000));
    let message_id = header("x-message-id");
    let body = response.bytes().await.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let error = (!(200..300).contains(&status)).then(|| format!("HTTP {status}"));
    (Attempt { status: Some(status), provider_code: None, message_id, error, retry_after_ms }, body)
}

/// A transport error without the URL (which for Twilio names the account).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<provider>");
    }
    s
}
