//! `GET /v1/me`: who the caller is, as the token says and as the database sees it.
//!
//! The database half runs through [`crate::db::user::begin_as_user`], so it shows exactly what
//! `auth.uid()` / `auth.jwt()` and row-level security see for this caller.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::errors::db_error;
use crate::db::user::{begin_as_user, Access};
use crate::error::{AppError, Envelope, ErrorEnvelope};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `sub`: the user's id.
    pub sub: Uuid,
    /// `role`: always `authenticated` for a signed-in user.
    pub role: String,
    /// careplane's role claim, e.g. `patient`.
    pub user_role: Option<String>,
    pub user_roles: Vec<String>,
    pub email: Option<String>,
    pub database: DatabaseIdentity,
}

/// What Postgres says inside the caller's transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseIdentity {
    /// `current_user`: `authenticated`.
    pub current_user: String,
    /// `auth.uid()`
    pub auth_uid: Option<Uuid>,
    /// `auth.role()`
    pub auth_role: Option<String>,
    /// `auth.jwt() ->> 'user_role'`
    pub jwt_user_role: Option<String>,
}

/// The caller's identity from the token and from inside the database.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<Me>, description = "the caller, from the token and from inside the database"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused; `error.code` says why"),
        (status = 403, body = ErrorEnvelope, description = "a service_role token (`user_token_required`)"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 503, body = ErrorEnvelope, description = "the database is unavailable"),
    )
)]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Envelope<Me>, AppError> {
    let mut tx = begin_as_user(&state.db, &user, Access::ReadOnly).await?;
    let (current_user, auth_uid, auth_role, jwt_user_role): (String, Option<Uuid>, Option<String>, Option<String>) =
        sqlx::query_as("select current_user::text, auth.uid(), auth.role(), auth.jwt() ->> 'user_role'")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(Envelope::new(Me {
        sub: user.id,
        role: user.role,
        user_role: user.user_role,
        user_roles: user.user_roles,
        email: user.email,
        database: DatabaseIdentity { current_user, auth_uid, auth_role, jwt_user_role },
    }))
}
