//! The payment routes: `POST /v1/payments`, `GET /v1/payments/{reference}`,
//! `POST /v1/payments/{reference}/refund`, `POST /webhooks/paystack`, and the sandbox's
//! checkout page.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use careplane_rules::payments::{self as rules, PaymentStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::{self, refusal, service_tx};
use crate::auth::AuthUser;
use crate::db::errors::db_error;
use crate::db::user::{begin_as_user, Access};
use crate::error::{AppError, Envelope, ErrorEnvelope};
use crate::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    pub appointment_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checkout {
    /// Where to send the patient to pay (Paystack's checkout, or the sandbox's page).
    pub authorization_url: String,
    pub access_code: String,
    /// The payment's reference (`GET /v1/payments/{reference}`).
    pub reference: String,
}

/// The payment as the caller may see it, built from the row RLS lets them read.
const PAYMENT_JSON: &str = "select jsonb_build_object(
    'id', p.id, 'reference', p.provider_reference, 'appointment_id', p.appointment_id, 'status', p.status,
    'amount_minor', p.amount_minor, 'currency', p.currency, 'refunded_minor', p.refunded_minor,
    'authorization_url', p.authorization_url, 'paid_at', p.paid_at, 'review_reason', p.review_reason,
    'created_at', p.created_at, 'updated_at', p.updated_at)
  from public.payments p where p.provider_reference = $1";

fn idempotency_key(headers: &HeaderMap) -> Result<String, AppError> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if key.is_empty() || key.len() > 200 {
        return Err(AppError::status(StatusCode::BAD_REQUEST, "idempotency_key_required", "send an Idempotency-Key header of 1 to 200 characters"));
    }
    Ok(key.to_owned())
}

/// Where the sandbox's checkout page is reached: the address the client used.
fn public_base(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1:8080");
    let scheme = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}")
}

fn new_reference() -> String {
    format!("cp_{}", Uuid::new_v4().simple())
}

/// Pays for a booked appointment: the patient only, once; the amount is the practitioner's fee.
#[utoipa::path(
    post,
    path = "/v1/payments",
    tag = "payments",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, pattern = r"^[!-~]([ -~]*[!-~])?$",
            description = "1 to 200 visible ASCII characters (no surrounding spaces); the same key returns the same answer and asks Paystack once")),
    request_body = NewPayment,
    responses(
        (status = 200, body = Envelope<Checkout>, description = "where to pay"),
        (status = 400, body = ErrorEnvelope, description = "no Idempotency-Key, or a malformed body"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 415, body = ErrorEnvelope, description = "the body is not JSON"),
        (status = 422, body = ErrorEnvelope, description = "the body does not have the documented shape, or a rule refused it"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 403, body = ErrorEnvelope, description = "the caller is not the appointment's patient"),
        (status = 404, body = ErrorEnvelope, description = "no appointment the caller may see"),
        (status = 409, body = ErrorEnvelope, description = "cancelled, already paid, or a payment in progress"),
        (status = 502, body = ErrorEnvelope, description = "Paystack refused; nothing is in flight, retry with the same key"),
        (status = 503, body = ErrorEnvelope, description = "Paystack did not answer; retry with the same key"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(body): Json<NewPayment>,
) -> Result<Envelope<Checkout>, AppError> {
    let key = idempotency_key(&headers)?;
    // As the caller: RLS decides whether they see the appointment at all.
    let mut tx = begin_as_user(&state.db, &user, Access::ReadWrite).await?;
    let patient: Option<Uuid> = sqlx::query_scalar("select patient_id from public.appointments where id = $1")
        .bind(body.appointment_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    let Some(patient) = patient else {
        return Err(AppError::NotFound(format!("no appointment {}", body.appointment_id)));
    };
    sqlx::query("set local role service_role").execute(&mut *tx).await.map_err(db_error)?;
    let opening: Value = sqlx::query_scalar("select private.payment_opening($1, $2)")
        .bind(body.appointment_id)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    let (payment_id, reference, amount, currency) = match &opening["existing"] {
        Value::Object(existing) if patient == user.id => {
            if existing.get("appointment_id").and_then(Value::as_str) != Some(&body.appointment_id.to_string()) {
                return Err(refusal(rules::PaymentError::KeyReused));
            }
            let status = PaymentStatus::parse(existing["status"].as_str().unwrap_or_default());
            if let (Some(url), Some(code)) = (existing["authorization_url"].as_str(), existing["access_code"].as_str()) {
                // The same request again: the same answer, Paystack not asked.
                let reference = existing["provider_reference"].as_str().unwrap_or_default().to_owned();
                return Ok(Envelope::new(Checkout { authorization_url: url.into(), access_code: code.into(), reference }));
            }
            if status != Some(PaymentStatus::Initializing) {
                return Err(refusal(rules::PaymentError::AlreadyPaid(existing["provider_reference"].as_str().unwrap_or_default().into())));
            }
            // Another request with this key may be waiting for Paystack right now (a failed
            // attempt records its error, so it is not waiting).
            let busy = existing["provider_error"].is_null()
                && existing["seconds_since_update"].as_f64().unwrap_or(f64::MAX) < state.config.paystack.timeout.as_secs_f64() + 1.0;
            if busy {
                return Err(AppError::status(StatusCode::CONFLICT, "payment_initializing", "this payment is being initialized; retry shortly"));
            }
            // Resume: Paystack never answered for the old reference, so ask under a new one.
            let id: Uuid = existing["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
            let reference = new_reference();
            service::apply(&mut tx, id, &json!({"provider_reference": reference, "provider_error": null})).await.map_err(db_error)?;
            (id, reference, existing["amount_minor"].as_i64().unwrap_or(0), existing["currency"].as_str().unwrap_or_default().to_owned())
        }
        _ => {
            let payments: Vec<(String, PaymentStatus)> = opening["payments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["reference"].as_str()?.to_owned(), PaymentStatus::parse(p["status"].as_str()?)?)))
                .collect();
            let amount = rules::open(&rules::Opening {
                caller_is_patient: patient == user.id,
                appointment_status: opening["appointment_status"].as_str().unwrap_or_default(),
                fee_minor: opening["fee_minor"].as_i64().unwrap_or(0),
                payments: &payments,
            })
            .map_err(refusal)?;
            let currency = opening["currency"].as_str().unwrap_or_default().to_owned();
            let reference = new_reference();
            let id: Uuid = sqlx::query_scalar("select (private.payment_create($1, $2, $3, $4, $5, $6)).id")
                .bind(body.appointment_id)
                .bind(patient)
                .bind(amount)
                .bind(&currency)
                .bind(&reference)
                .bind(&key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            (id, reference, amount, currency)
        }
    };
    tx.commit().await.map_err(db_error)?;

    let email = user
        .email
        .clone()
        .or_else(|| opening["email"].as_str().map(str::to_owned))
        .ok_or_else(|| AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "email_required", "Paystack needs the patient's email address"))?;
    let mut request = json!({
        "email": email, "amount": amount, "currency": currency, "reference": reference,
        // Ids only: no names, reasons or health data leave for Paystack.
        "metadata": {"payment_id": payment_id, "appointment_id": body.appointment_id, "patient_id": patient},
    });
    if let Some(url) = &state.config.paystack.callback_url {
        request["callback_url"] = url.clone().into();
    }
    // The row stays `initializing` (not in flight) if this fails; the same key resumes it.
    let checkout = match state.payments.paystack.initialize(&request, &public_base(&headers)).await {
        Ok(checkout) => checkout,
        Err(e) => {
            let mut tx = service_tx(&state.db).await.map_err(db_error)?;
            service::apply(&mut tx, payment_id, &json!({"provider_error": e.to_string()})).await.map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            return Err(e.into());
        }
    };
    let mut tx = service_tx(&state.db).await.map_err(db_error)?;
    service::apply(
        &mut tx,
        payment_id,
        &json!({"status": "pending", "authorization_url": checkout.authorization_url, "access_code": checkout.access_code}),
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(Envelope::new(Checkout { authorization_url: checkout.authorization_url, access_code: checkout.access_code, reference }))
}

async fn read_as_user(state: &AppState, user: &AuthUser, reference: &str) -> Result<Option<Value>, AppError> {
    let mut tx = begin_as_user(&state.db, user, Access::ReadOnly).await?;
    let row: Option<Value> = sqlx::query_scalar(PAYMENT_JSON).bind(reference).fetch_optional(&mut *tx).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(row)
}

/// The payment as the caller may see it; while pending, Paystack is asked first and its answer
/// applied (the webhook's path).
#[utoipa::path(
    get,
    path = "/v1/payments/{reference}",
    tag = "payments",
    security(("bearer" = [])),
    params(("reference" = String, Path)),
    responses(
        (status = 200, body = Envelope<Object>, description = "the payment; `meta.verified` says whether Paystack was asked"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 404, body = ErrorEnvelope, description = "no payment the caller may see"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 503, body = ErrorEnvelope, description = "the database is unavailable"),
    )
)]
pub async fn show(State(state): State<AppState>, user: AuthUser, Path(reference): Path<String>) -> Result<Response, AppError> {
    let row = read_as_user(&state, &user, &reference).await?.ok_or_else(|| AppError::NotFound(format!("no payment {reference}")))?;
    let mut verified = Value::Null;
    if row["status"] == "pending" {
        verified = match service::settle(&state, &reference, None).await {
            Ok(_) => json!(true),
            Err(error) => {
                tracing::warn!(%error, "payments: verify while pending failed; answering the stored payment");
                json!(false)
            }
        };
    }
    let row = read_as_user(&state, &user, &reference).await?.unwrap_or(row);
    let mut envelope = Envelope::new(row);
    envelope.meta = json!({"verified": verified});
    Ok(envelope.into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units; absent: everything not yet refunded.
    #[serde(default, deserialize_with = "crate::http::optional_whole_number")]
    pub amount_minor: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundAnswer {
    pub refund_id: Uuid,
    pub amount_minor: i64,
    /// `submitted`: Paystack accepted it; the reversal is posted when it is processed.
    pub status: &'static str,
    pub provider_refund_id: String,
}

/// Refunds a paid payment, in full or in part (admins).
#[utoipa::path(
    post,
    path = "/v1/payments/{reference}/refund",
    tag = "payments",
    security(("bearer" = [])),
    params(("reference" = String, Path)),
    request_body = RefundRequest,
    responses(
        (status = 200, body = Envelope<RefundAnswer>, description = "submitted to Paystack"),
        (status = 400, body = ErrorEnvelope, description = "a malformed body"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 415, body = ErrorEnvelope, description = "the body is not JSON"),
        (status = 422, body = ErrorEnvelope, description = "the body does not have the documented shape, or a rule refused it"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 403, body = ErrorEnvelope, description = "not an admin"),
        (status = 404, body = ErrorEnvelope, description = "no payment the caller may see"),
        (status = 409, body = ErrorEnvelope, description = "not paid"),
        (status = 502, body = ErrorEnvelope, description = "Paystack refused; the refund is recorded as failed"),
        (status = 503, body = ErrorEnvelope, description = "Paystack did not answer; the refund is recorded as failed"),
    )
)]
pub async fn refund(
    State(state): State<AppState>,
    user: AuthUser,
    Path(reference): Path<String>,
    body: Option<Json<RefundRequest>>,
) -> Result<Envelope<RefundAnswer>, AppError> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let mut tx = begin_as_user(&state.db, &user, Access::ReadOnly).await?;
    let (admin, visible): (bool, bool) = sqlx::query_as(
        "select access.has_role('admin'), exists (select 1 from public.payments p where p.provider_reference = $1)",
    )
    .bind(&reference)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    if !visible {
        return Err(AppError::NotFound(format!("no payment {reference}")));
    }
    if !admin {
        return Err(AppError::forbidden("permission_denied", "only admins refund payments"));
    }
    let (id, amount) = service::request_refund(&state, &reference, body.amount_minor, Some(user.id)).await?;
    let provider_refund_id = service::submit_refund(&state, id, &reference, amount, None).await.map_err(|e| match e {
        service::Failure::Retry(m) if m.contains("did not answer") => {
            AppError::status(StatusCode::SERVICE_UNAVAILABLE, "paystack_unavailable", "the payment provider did not answer; the refund is recorded as failed")
        }
        other => AppError::status(StatusCode::BAD_GATEWAY, "paystack_error", other.to_string()),
    })?;
    Ok(Envelope::new(RefundAnswer { refund_id: id, amount_minor: amount, status: "submitted", provider_refund_id }))
}

/// Paystack's webhook: signature and source checked, stored once, answered at once; the
/// inbox worker applies it.
#[utoipa::path(
    post,
    path = "/webhooks/paystack",
    tag = "payments",
    responses(
        (status = 200, description = "stored (or a duplicate of a stored event): `data.stored` says which"),
        (status = 400, body = ErrorEnvelope, description = "signed, but not a Paystack event (no JSON, no event name)"),
        (status = 401, body = ErrorEnvelope, description = "x-paystack-signature missing or wrong; nothing stored"),
        (status = 403, body = ErrorEnvelope, description = "the source address is not in PAYSTACK_ALLOWED_IPS"),
        (status = 413, body = ErrorEnvelope, description = "larger than BODY_LIMIT_BYTES"),
        (status = 503, body = ErrorEnvelope, description = "the database is unavailable: Paystack retries later"),
    )
)]
pub async fn webhook(State(state): State<AppState>, request: Request) -> Result<Response, AppError> {
    let ip = crate::ratelimit::client_ip(&request, state.config.http.trust_x_forwarded_for);
    let connected = request.extensions().get::<ConnectInfo<SocketAddr>>().is_some();
    let signature = request.headers().get("x-paystack-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Bytes = axum::body::to_bytes(request.into_body(), state.config.http.body_limit_bytes)
        .await
        .map_err(|_| AppError::status(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large"))?;
    let stored = service::receive(&state, connected.then_some(ip), signature.as_deref(), &body).await?;
    Ok(Envelope::new(json!({"stored": stored})).into_response())
}

fn sandbox_only(state: &AppState) -> Result<&std::sync::Arc<super::sandbox::Sandbox>, AppError> {
    state.payments.paystack.sandbox().ok_or_else(|| AppError::NotFound("no such route".into()))
}

/// The sandbox's checkout page (only without `PAYSTACK_SECRET_KEY`).
pub async fn sandbox_page(State(state): State<AppState>, Path(reference): Path<String>) -> Result<Html<String>, AppError> {
    let sandbox = sandbox_only(&state)?;
    sandbox.page(&reference).map(Html).ok_or_else(|| AppError::NotFound(format!("no sandbox checkout {reference}")))
}

#[derive(Debug, Deserialize)]
pub struct SandboxChoice {
    action: String,
}

/// Pay or Decline: records the outcome and sends the companion the signed webhook.
pub async fn sandbox_decide(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    Form(choice): Form<SandboxChoice>,
) -> Result<Response, AppError> {
    let sandbox = sandbox_only(&state)?;
    let pay = match choice.action.as_str() {
        "pay" => true,
        "decline" => false,
        _ => return Err(AppError::status(StatusCode::BAD_REQUEST, "invalid_action", "action is pay or decline")),
    };
    let (body, callback) = sandbox
        .decide(&reference, pay)
        .ok_or_else(|| AppError::status(StatusCode::CONFLICT, "checkout_decided", "this checkout was already paid or declined"))?;
    service::send_self(&state, &body).await;
    Ok(match callback {
        Some(url) => Redirect::to(&format!("{url}{}reference={reference}", if url.contains('?') { '&' } else { '?' })).into_response(),
        None => Redirect::to(&format!("/sandbox/paystack/checkout/{reference}")).into_response(),
    })
}
