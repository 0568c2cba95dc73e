//! Provider webhooks and the sandbox's development endpoint.
//!
//! - `POST /webhooks/twilio/status`, `POST /webhooks/twilio/inbound`: `X-Twilio-Signature`
//!   checked against `PUBLIC_BASE_URL` + the request's path and query; 403 otherwise.
//! - `POST /webhooks/sendgrid/events`: ECDSA signature over timestamp + raw body, replay window.
//! - `GET /dev/notifications`: the sandbox sink (mounted only while a channel is sandboxed).
//!
//! Each callback is stored once in `private.webhook_inbox` (`on conflict do nothing`) and
//! applied in the same transaction, which sets `processed_at`: a retry of the same callback
//! changes nothing.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use careplane_rules::notify::{self as rules, DeliveryStatus, SmsCommand};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::signature;
use crate::error::{AppError, Envelope};
use crate::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        .route("/webhooks/twilio/status", post(twilio_status))
        .route("/webhooks/twilio/inbound", post(twilio_inbound))
        .route("/webhooks/sendgrid/events", post(sendgrid_events));
    if !state.notify.providers.sandboxed().is_empty() {
        router = router.route("/dev/notifications", get(sandbox_messages));
    }
    router
}

fn db_err(e: sqlx::Error) -> AppError {
    AppError::Internal(anyhow::Error::new(e).context("notifications webhook"))
}

fn bad_signature() -> AppError {
    AppError::forbidden("invalid_signature", "the webhook signature does not match")
}

/// The Twilio form, verified. `Err` is the answer to give.
fn twilio_form(state: &AppState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    let twilio = state.notify.config.twilio.as_ref().ok_or_else(|| {
        AppError::status(StatusCode::SERVICE_UNAVAILABLE, "not_configured", "Twilio is not configured (sandbox)")
    })?;
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| AppError::status(StatusCode::BAD_REQUEST, "invalid_body", format!("expected a form body: {e}")))?;
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).ok_or_else(bad_signature)?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", state.notify.config.public_base_url);
    if !signature::twilio_verify(twilio.auth_token.expose_secret().as_bytes(), &url, &params, given) {
        return Err(bad_signature());
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Stores a callback once; `None` when it was stored before (a retry).
async fn store_once(
    tx: &mut Transaction<'_, Postgres>,
    provider: &str,
    event_id: &str,
    event_type: &str,
    payload: &Value,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "insert into private.webhook_inbox (provider, event_id, event_type, payload) values ($1, $2, $3, $4)
         on conflict (provider, event_id) do nothing returning id",
    )
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(payload)
    .fetch_optional(&mut **tx)
    .await
}

async fn mark_processed(tx: &mut Transaction<'_, Postgres>, inbox_id: i64, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("update private.webhook_inbox set processed_at = now(), error = $2 where id = $1")
        .bind(inbox_id)
        .bind(error)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Applies a delivery report to an outbox row when it moves the row forward
/// (`DeliveryStatus::after_callback`). Returns what happened, for the inbox's `error` column.
async fn apply_report(
    tx: &mut Transaction<'_, Postgres>,
    outbox_id: Option<i64>,
    provider_message_id: Option<&str>,
    report: DeliveryStatus,
    error: Option<&str>,
) -> Result<Option<&'static str>, sqlx::Error> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "select id, status from private.outbox
          where ($1::bigint is not null and id = $1) or ($1 is null and provider_message_id = $2)
          for update",
    )
    .bind(outbox_id)
    .bind(provider_message_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((id, status)) = row else { return Ok(Some("no such outbox message")) };
    let Some(next) = DeliveryStatus::parse(&status).and_then(|s| s.after_callback(report)) else {
        return Ok(Some("not a forward move; ignored"));
    };
    sqlx::query(
        "update private.outbox
            set status = $2, delivered_at = case when $2 = 'delivered' then now() else delivered_at end,
                last_error = coalesce($3, last_error), updated_at = now()
          where id = $1",
    )
    .bind(id)
    .bind(next.code())
    .bind(error)
    .execute(&mut **tx)
    .await?;
    Ok(None)
}

/// Twilio message status callbacks (`MessageSid`, `MessageStatus`, `ErrorCode`), with the
/// outbox id in the callback URL's query.
async fn twilio_status(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Response, AppError> {
    let params = twilio_form(&state, &uri, &headers, &body)?;
    let (Some(sid), Some(status)) = (param(&params, "MessageSid"), param(&params, "MessageStatus")) else {
        return Err(AppError::status(StatusCode::BAD_REQUEST, "invalid_body", "MessageSid and MessageStatus are required"));
    };
    let outbox_id = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|q| q.into_iter().find(|(k, _)| k == "outbox_id"))
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let error_code = param(&params, "ErrorCode");
    let payload = json!({ "MessageSid": sid, "MessageStatus": status, "ErrorCode": error_code, "outbox_id": outbox_id });
    let mut tx = state.db.begin().await.map_err(db_err)?;
    if let Some(inbox_id) = store_once(&mut tx, "twilio", &format!("{sid}:{status}"), "message_status", &payload)
        .await
        .map_err(db_err)?
    {
        let outcome = match rules::twilio_report(status) {
            Some(report) => {
                let error = error_code.map(|c| format!("twilio {status}: error {c}"));
                apply_report(&mut tx, outbox_id, Some(sid), report, error.as_deref()).await.map_err(db_err)?
            }
            None => None,
        };
        mark_processed(&mut tx, inbox_id, outcome).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(twiml(None))
}

/// `<Response/>`, or one `<Message>` with `text` (XML-escaped).
fn twiml(text: Option<&str>) -> Response {
    let body = match text {
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
        Some(t) => {
            let escaped = t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{escaped}</Message></Response>")
        }
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// An SMS to the clinic's number: `C`, `X`, `STOP`, `START`, `HELP`. The reply is TwiML.
async fn twilio_inbound(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Response, AppError> {
    let params = twilio_form(&state, &uri, &headers, &body)?;
    let (Some(sid), Some(from)) = (param(&params, "MessageSid"), param(&params, "From")) else {
        return Err(AppError::status(StatusCode::BAD_REQUEST, "invalid_body", "MessageSid and From are required"));
    };
    let command = rules::parse_command(param(&params, "Body").unwrap_or(""));
    let mut tx = state.db.begin().await.map_err(db_err)?;
    // The body and the number are not stored: the command is enough to audit what was done.
    let payload = json!({ "MessageSid": sid, "command": format!("{command:?}").to_lowercase() });
    let Some(inbox_id) = store_once(&mut tx, "twilio", sid, "inbound_sms", &payload).await.map_err(db_err)? else {
        tx.commit().await.map_err(db_err)?;
        return Ok(twiml(None));
    };
    let reply = inbound_reply(&state, &mut tx, from, command).await.map_err(db_err)?;
    mark_processed(&mut tx, inbox_id, None).await.map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    Ok(twiml(Some(&reply)))
}

async fn inbound_reply(
    state: &AppState,
    tx: &mut Transaction<'_, Postgres>,
    from: &str,
    command: SmsCommand,
) -> Result<String, sqlx::Error> {
    let clinic = &state.notify.config.clinic_name;
    let app = &state.notify.config.app_url;
    match command {
        SmsCommand::Stop | SmsCommand::Start => {
            let on = command == SmsCommand::Start;
            sqlx::query("update public.profiles set sms_opt_in = $2 where phone = $1 and sms_opt_in <> $2")
                .bind(from)
                .bind(on)
                .execute(&mut **tx)
                .await?;
            return Ok(if on {
                format!("{clinic}: texts are on again. Reply STOP to turn them off.")
            } else {
                format!("{clinic}: you will get no more texts from us. Reply START to turn them back on.")
            });
        }
        SmsCommand::Help | SmsCommand::Unknown => {
            return Ok(format!(
                "{clinic}: reply C to confirm your next consultation, X to cancel it, STOP to stop texts. {app}"
            ))
        }
        SmsCommand::Confirm | SmsCommand::Cancel => {}
    }
    // The next consultation of the patient with this number that still holds time.
    let next: Option<(Uuid, Uuid, DateTime<Utc>, Uuid, String)> = sqlx::query_as(
        "select a.id, a.patient_id, lower(a.period), p.profile_id, pa.time_zone
           from public.appointments a
           join public.profiles pa on pa.id = a.patient_id
           join public.practitioners p on p.id = a.practitioner_id
          where pa.phone = $1 and lower(a.period) > now() and careplane.is_active_appointment_status(a.status)
          order by lower(a.period) limit 1",
    )
    .bind(from)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((appointment, patient, starts_at, practitioner_profile, tz)) = next else {
        return Ok(format!("{clinic}: you have no upcoming consultation."));
    };
    let when = starts_at
        .with_timezone(&tz.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC))
        .format("%Y-%m-%d %H:%M %Z")
        .to_string();
    if command == SmsCommand::Confirm {
        sqlx::query(
            "insert into public.notifications (user_id, kind, title, data)
             values ($1, 'appointment:confirmed', 'Consultation confirmed by the patient', jsonb_build_object('appointment_id', $2::uuid))",
        )
        .bind(practitioner_profile)
        .bind(appointment)
        .execute(&mut **tx)
        .await?;
        return Ok(format!("{clinic}: thank you, your consultation on {when} is confirmed."));
    }
    // The same RPC a signed-in patient calls through PostgREST, run as that patient: its rules
    // decide, the cancellation notice included, and a refusal's message is the reply.
    let roles: Vec<String> = sqlx::query_scalar("select role::text from public.user_roles where user_id = $1")
        .bind(patient)
        .fetch_all(&mut **tx)
        .await?;
    let claims = json!({
        "sub": patient, "role": "authenticated", "aud": "authenticated",
        "user_role": "patient", "user_roles": roles,
    });
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    crate::db::user::act_as(&mut savepoint, "authenticated", &claims.to_string()).await?;
    let cancelled = sqlx::query("select public.cancel_appointment($1, 'Cancelled by the patient by SMS reply')")
        .bind(appointment)
        .execute(&mut *savepoint)
        .await;
    match cancelled {
        Ok(_) => {
            sqlx::query("select set_config('role', 'none', true), set_config('request.jwt.claims', '', true)")
                .execute(&mut *savepoint)
                .await?;
            savepoint.commit().await?;
            Ok(format!("{clinic}: your consultation on {when} is cancelled. Book again at {app}"))
        }
        Err(sqlx::Error::Database(e)) => {
            savepoint.rollback().await?;
            Ok(format!("{clinic}: your consultation on {when} could not be cancelled: {}.", e.message()))
        }
        Err(other) => Err(other),
    }
}

/// SendGrid's signed event webhook: a JSON array of events.
async fn sendgrid_events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, AppError> {
    let config = &state.notify.config;
    let key = config.sendgrid_webhook_public_key.as_deref().ok_or_else(|| {
        AppError::status(StatusCode::SERVICE_UNAVAILABLE, "not_configured", "SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
    })?;
    let key = signature::sendgrid_key(key).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::sendgrid_verify(
        &key,
        h("x-twilio-email-event-webhook-signature"),
        h("x-twilio-email-event-webhook-timestamp"),
        &body,
        config.sendgrid_webhook_max_age.map(|d| d.as_secs()),
        Utc::now().timestamp(),
    )
    .map_err(|refusal| match refusal {
        signature::SendGridRefusal::Stale => {
            AppError::forbidden("stale_signature", "the webhook timestamp is outside the replay window")
        }
        _ => bad_signature(),
    })?;
    let events: Vec<Value> = serde_json::from_slice(&body)
        .map_err(|e| AppError::status(StatusCode::BAD_REQUEST, "invalid_body", format!("expected a JSON array of events: {e}")))?;
    let mut tx = state.db.begin().await.map_err(db_err)?;
    for event in &events {
        let text = |k: &str| event.get(k).and_then(Value::as_str);
        let (Some(event_id), Some(kind)) = (text("sg_event_id"), text("event")) else {
            return Err(AppError::status(StatusCode::BAD_REQUEST, "invalid_body", "every event needs sg_event_id and event"));
        };
        // custom_args come back as top-level fields of each event.
        let outbox_id = match event.get("outbox_id") {
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            Some(v) => v.as_i64(),
            None => None,
        };
        let reason: Option<String> = text("reason").or(text("response")).map(|r| r.chars().take(500).collect());
        let payload = json!({ "event": kind, "sg_message_id": text("sg_message_id"), "outbox_id": outbox_id, "reason": reason });
        let Some(inbox_id) = store_once(&mut tx, "sendgrid", event_id, kind, &payload).await.map_err(db_err)? else {
            continue;
        };
        let (report, suppress) = rules::sendgrid_event(kind);
        let mut outcome = None;
        if let Some(report) = report {
            let error = (report == DeliveryStatus::Failed).then(|| format!("sendgrid {kind}"));
            let message_id = text("sg_message_id").and_then(|m| m.split('.').next());
            outcome = apply_report(&mut tx, outbox_id, message_id, report, error.as_deref()).await.map_err(db_err)?;
        }
        if let (true, Some(email)) = (suppress, text("email")) {
            sqlx::query(
                "insert into private.email_suppressions (email, event, reason) values (lower($1), $2, $3)
                 on conflict (email) do nothing",
            )
            .bind(email)
            .bind(kind)
            .bind(&reason)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("update public.profiles set email_opt_in = false where lower(email) = lower($1) and email_opt_in")
                .bind(email)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        mark_processed(&mut tx, inbox_id, outcome).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(StatusCode::OK.into_response())
}

/// The sandbox's messages, oldest first, with their bodies. Development only: mounted while
/// a channel has no provider keys, and answered only to a client on this machine.
async fn sandbox_messages(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Envelope<Vec<super::providers::SinkMessage>>, AppError> {
    if !peer.ip().is_loopback() {
        return Err(AppError::NotFound("no such route".into()));
    }
    let mut envelope = Envelope::new(state.notify.providers.sink.list());
    envelope.meta = json!({ "sandboxed_channels": state.notify.providers.sandboxed() });
    Ok(envelope)
}
