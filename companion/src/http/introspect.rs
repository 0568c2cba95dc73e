//! `POST /v1/auth/introspect`: lets a trusted backend (holding the service_role key) ask
//! whether a user's access token is acceptable, and why not — the same checks every companion
//! endpoint applies (in the spirit of RFC 7662 token introspection).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Principal, ServiceRole};
use crate::error::{AppError, Envelope, ErrorEnvelope};
use crate::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectRequest {
    /// The access token to check; not empty or only whitespace.
    #[schema(min_length = 1, pattern = r"\S")]
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Introspection {
    /// Whether the token would be accepted.
    pub active: bool,
    /// Why not (the 401 code an endpoint would answer), when `active` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// `user` or `service_role`, when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_roles: Option<Vec<String>>,
    /// Expiry (seconds since the epoch), when active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// Checks a token; service_role only.
#[utoipa::path(
    post,
    path = "/v1/auth/introspect",
    tag = "auth",
    security(("bearer" = [])),
    request_body = IntrospectRequest,
    responses(
        (status = 200, body = Envelope<Introspection>, description = "whether the token is accepted, and why not"),
        (status = 400, body = ErrorEnvelope, description = "the body is not JSON"),
        (status = 401, body = ErrorEnvelope, description = "the caller's own token was refused"),
        (status = 403, body = ErrorEnvelope, description = "a user token (`service_role_required`)"),
        (status = 413, body = ErrorEnvelope, description = "body larger than BODY_LIMIT_BYTES"),
        (status = 415, body = ErrorEnvelope, description = "not `Content-Type: application/json`"),
        (status = 422, body = ErrorEnvelope, description = "JSON without a non-empty `token`"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    _caller: ServiceRole,
    Json(request): Json<IntrospectRequest>,
) -> Result<Envelope<Introspection>, AppError> {
    if request.token.trim().is_empty() {
        return Err(AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "token must not be empty")
            .with_details(serde_json::json!({"field": "token"})));
    }
    let inactive = |reason| Introspection {
        active: false,
        reason: Some(reason),
        kind: None,
        sub: None,
        user_role: None,
        user_roles: None,
        exp: None,
    };
    let data = match state.verifier.verify(request.token.trim()).await {
        Ok(Principal::User(u)) => Introspection {
            active: true,
            reason: None,
            kind: Some("user"),
            sub: Some(u.id),
            exp: u.claims.get("exp").and_then(|v| v.as_i64()),
            user_role: u.user_role,
            user_roles: Some(u.user_roles),
        },
        Ok(Principal::Service(s)) => Introspection {
            active: true,
            reason: None,
            kind: Some("service_role"),
            sub: None,
            user_role: None,
            user_roles: None,
            exp: s.claims.get("exp").and_then(|v| v.as_i64()),
        },
        Err(e) => inactive(e.reason.code()),
    };
    Ok(Envelope::new(data))
}
