//! User work in the database, run exactly as Supabase PostgREST runs a request: one
//! transaction, `set local role authenticated` and the verified claims in
//! `request.jwt.claims` (transaction-local), so `auth.uid()`, `auth.jwt()` and row-level
//! security see the same caller they would see through PostgREST.
//!
//! The role in `DATABASE_URL` must be a member of `authenticated` (as Supabase's
//! `authenticator` is, and the superuser `postgres` is). Nothing is left behind: `commit` or
//! `rollback` (also on drop) ends the settings with the transaction, so a pooled connection
//! goes back to the companion's own role.

use serde_json::json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::auth::AuthUser;
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Like PostgREST for GET/HEAD: the transaction cannot write.
    ReadOnly,
    ReadWrite,
}

/// Begins a transaction acting as `user`. Commit it to keep the work.
pub async fn begin_as_user(pool: &PgPool, user: &AuthUser, access: Access) -> Result<Transaction<'static, Postgres>, AppError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    if access == Access::ReadOnly {
        sqlx::query("set transaction read only").execute(&mut *tx).await.map_err(db_error)?;
    }
    let claims = serde_json::Value::Object((*user.claims).clone()).to_string();
    act_as(&mut tx, &user.role, &claims).await.map_err(db_error)?;
    Ok(tx)
}

/// Sets the request identity for the rest of the open transaction on `conn`, with PostgREST's
/// own statement: `set_config('role', …, true)` is `set local role`, and the claims go to
/// `request.jwt.claims`.
pub async fn act_as(conn: &mut PgConnection, role: &str, claims_json: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)")
        .bind(role)
        .bind(claims_json)
        .execute(conn)
        .await?;
    Ok(())
}

/// Maps a database error to the answer PostgREST would give for it (REFERENCE.md: SQLSTATE
/// → HTTP), so the companion and PostgREST agree. The database's message is returned for
/// client errors (it is what the RPC chose to say); server errors are logged, not returned.
pub fn db_error(err: sqlx::Error) -> AppError {
    use axum::http::StatusCode;
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
            let details = json!({
                "sqlstate": code,
                "detail": pg.and_then(|e| e.detail()),
                "hint": pg.and_then(|e| e.hint()),
            });
            let client = |status: StatusCode, name: &'static str| {
                AppError::status(status, name, db.message().to_owned()).with_details(details.clone())
            };
            match code.as_str() {
                "42501" => client(StatusCode::FORBIDDEN, "permission_denied"),
                "23505" | "23503" => client(StatusCode::CONFLICT, "conflict"),
                "P0001" => client(StatusCode::BAD_REQUEST, "rule_violation"),
                c if c.starts_with("PT") => match c[2..].parse::<u16>().ok().and_then(|n| StatusCode::from_u16(n).ok()) {
                    Some(status) if status.is_client_error() => client(status, "rule_violation"),
                    _ => AppError::Internal(anyhow::Error::new(err)),
                },
                c if c.starts_with("08") || c.starts_with("53") || c == "57P01" => {
                    tracing::warn!(sqlstate = c, "database unavailable");
                    AppError::status(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable")
                }
                c if c.starts_with("22") || c.starts_with("23") => client(StatusCode::BAD_REQUEST, "invalid_input"),
                _ => AppError::Internal(anyhow::Error::new(err)),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(error = %err, "database unavailable");
            AppError::status(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable")
        }
        _ => AppError::Internal(anyhow::Error::new(err)),
    }
}
