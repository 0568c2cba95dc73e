//! The one error type of the HTTP layer, and the response envelope.
//!
//! Success: `{"success": true, "data": …, "meta": …}`.
//! Failure: `{"success": false, "error": {"code", "message", "details"}}`.
//! Internal errors are logged with their cause chain and answered without it.
//!
//! Errors that axum and tower-http produce themselves (JSON rejections, body too large,
//! timeouts, panics) are rewritten into the same envelope by [`envelope_errors`].

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 401: the access token is missing or was rejected; the code names why.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 429, with `Retry-After`.
    #[error("too many requests: retry in {} s", retry_after_secs(.retry_after))]
    RateLimited { scope: &'static str, retry_after: Duration },
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Any other answer with a status, a machine-readable code and a message for humans.
    #[error("{message}")]
    Status { status: StatusCode, code: Cow<'static, str>, message: String, details: Value },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

fn retry_after_secs(d: &Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl AppError {
    pub fn status(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        AppError::Status { status, code: code.into(), message: message.into(), details: Value::Null }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::status(StatusCode::FORBIDDEN, code, message)
    }

    pub fn with_details(self, details: Value) -> Self {
        match self {
            AppError::Status { status, code, message, .. } => AppError::Status { status, code, message, details },
            other => other,
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            AppError::Auth(e) => e.http_status(),
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Status { status, .. } => *status,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> Cow<'static, str> {
        match self {
            AppError::Auth(e) => e.reason.code().into(),
            AppError::RateLimited { .. } => "rate_limited".into(),
            AppError::NotFound(_) => "not_found".into(),
            AppError::MethodNotAllowed => "method_not_allowed".into(),
            AppError::Status { code, .. } => code.clone(),
            AppError::Internal(_) => "internal".into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let code = self.code();
        if let AppError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        let details = match &self {
            AppError::Status { details, .. } => details.clone(),
            AppError::RateLimited { scope, retry_after } => {
                json!({ "scope": scope, "retry_after_seconds": retry_after_secs(retry_after) })
            }
            _ => Value::Null,
        };
        let mut response = error_response(status, &code, &self.to_string(), details);
        match &self {
            AppError::RateLimited { retry_after, .. } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(retry_after)));
            }
            AppError::Auth(e) if e.http_status() == StatusCode::UNAUTHORIZED => {
                let value = format!("Bearer error=\"invalid_token\", error_description=\"{}\"", e.reason.code());
                if let Ok(v) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        response
    }
}

/// Builds a failure envelope.
pub fn error_response(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = json!({
        "success": false,
        "error": { "code": code, "message": message, "details": details },
    });
    (status, Json(body)).into_response()
}

/// A success envelope: `{"success": true, "data": …, "meta": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T: Serialize> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
    /// Paging and other information about `data`; `{}` when there is none.
    #[schema(value_type = Object)]
    pub meta: Value,
}

impl<T: Serialize> Envelope<T> {
    pub fn new(data: T) -> Self {
        Envelope { success: true, data, meta: json!({}) }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// The failure envelope, for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable, e.g. `token_expired`, `rate_limited`, `validation_failed`.
    pub code: String,
    /// For humans; never carries secrets or internal causes.
    pub message: String,
    /// Structured context (for database errors `{sqlstate, detail, hint}`), or `null` when
    /// there is none.
    #[schema(value_type = Option<Object>, required = true)]
    pub details: Value,
}

/// The code an error status gets when the layer that produced it did not say.
fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        429 => "rate_limited",
        500 => "internal",
        503 => "unavailable",
        _ if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// Largest body of a non-envelope error response that is read to become the message.
const MAX_REWRITTEN_BODY: usize = 4096;

/// Middleware: any error response that is not already JSON (axum's rejections are text, the
/// body-limit and timeout layers answer with an empty or text body) becomes an envelope with
/// the same status. The original text, which never carries secrets, becomes the message.
pub async fn envelope_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, message) = match status {
        // Only the timeout layer answers 503 without a JSON body.
        StatusCode::SERVICE_UNAVAILABLE if text.is_empty() => {
            ("timeout", "the request took longer than REQUEST_TIMEOUT_MS allows".to_owned())
        }
        StatusCode::INTERNAL_SERVER_ERROR => ("internal", "internal error".to_owned()),
        _ if text.is_empty() => (code_for_status(status), status.canonical_reason().unwrap_or("error").to_lowercase()),
        _ => (code_for_status(status), text),
    };
    let rewritten = error_response(status, code, &message, Value::Null);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, rewritten.into_body())
}

/// For `CatchPanicLayer`: a panic is a 500 envelope; the payload is logged, not returned.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = what, "handler panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (parts, body) = r.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_error_status_is_an_envelope_with_its_code() {
        let cases = [
            (AppError::status(StatusCode::BAD_REQUEST, "bad_request", "x"), 400, "bad_request"),
            (AppError::forbidden("permission_denied", "no"), 403, "permission_denied"),
            (AppError::NotFound("gone".into()), 404, "not_found"),
            (AppError::MethodNotAllowed, 405, "method_not_allowed"),
            (AppError::status(StatusCode::CONFLICT, "conflict", "taken"), 409, "conflict"),
            (AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "bad"), 422, "validation_failed"),
            (AppError::status(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "down"), 503, "database_unavailable"),
            (AppError::Internal(anyhow::anyhow!("secret cause")), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let (s, _, b) = body(err.into_response()).await;
            assert_eq!(s.as_u16(), status);
            assert_eq!(b["success"], false);
            assert_eq!(b["error"]["code"], code);
            assert!(b["error"].get("details").is_some());
            assert!(!b.to_string().contains("secret cause"), "internal causes are not returned");
        }
    }

    #[tokio::test]
    async fn rate_limited_carries_retry_after_rounded_up() {
        let err = AppError::RateLimited { scope: "user", retry_after: Duration::from_millis(1500) };
        let (s, h, b) = body(err.into_response()).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h[header::RETRY_AFTER], "2");
        assert_eq!(b["error"]["details"], json!({"scope": "user", "retry_after_seconds": 2}));
    }

    #[tokio::test]
    async fn plain_text_errors_from_layers_are_rewritten() {
        let plain = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let (s, h, b) = body(envelope_errors(plain).await).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(b["error"]["code"], "payload_too_large");
        assert_eq!(b["error"]["message"], "length limit exceeded");

        let (s, _, b) = body(envelope_errors(StatusCode::SERVICE_UNAVAILABLE.into_response()).await).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(b["error"]["code"], "timeout");
    }
}
