//! `GET /v1/ping` and `GET /v1/auth/ping`: the cheapest answers the API gives, for clients
//! checking reachability and whether their token is accepted (and for `bench/`).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{Envelope, ErrorEnvelope};

#[derive(Debug, Serialize, ToSchema)]
pub struct Pong {
    pub pong: bool,
    /// The caller's user id (authenticated ping only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
}

/// Reachability; no token needed.
#[utoipa::path(
    get,
    path = "/v1/ping",
    tag = "auth",
    responses(
        (status = 200, body = Envelope<Pong>, description = "the API is reachable"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn ping() -> Envelope<Pong> {
    Envelope::new(Pong { pong: true, sub: None })
}

/// Answers only with an accepted user token.
#[utoipa::path(
    get,
    path = "/v1/auth/ping",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<Pong>, description = "the token is accepted"),
        (status = 401, body = ErrorEnvelope, description = "`error.code` names the reason"),
        (status = 403, body = ErrorEnvelope, description = "a service_role token"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn auth_ping(user: AuthUser) -> Envelope<Pong> {
    Envelope::new(Pong { pong: true, sub: Some(user.id) })
}
