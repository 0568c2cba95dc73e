//! User work in the database, run exactly as Supabase PostgREST runs a request: one
//! transaction, `set local role authenticated` and the verified claims in
//! `request.jwt.claims` (transaction-local), so `auth.uid()`, `auth.jwt()` and row-level
//! security see the same caller they would see through PostgREST.
//!
//! The role in `DATABASE_URL` must be a member of `authenticated` (as Supabase's
//! `authenticator` is, and the superuser `postgres` is). Nothing is left behind: `commit` or
//! `rollback` (also on drop) ends the settings with the transaction, so a pooled connection
//! goes back to the companion's own role.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::auth::{AuthUser, Claims};
use crate::error::AppError;

use super::errors::db_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Like PostgREST for GET/HEAD: the transaction cannot write.
    ReadOnly,
    ReadWrite,
}

/// Begins a transaction acting as `user`. Commit it to keep the work.
pub async fn begin_as_user(pool: &PgPool, user: &AuthUser, access: Access) -> Result<Transaction<'static, Postgres>, AppError> {
    begin_as(pool, &user.role, &user.claims, access).await
}

/// Begins a transaction acting as `role` with these verified `claims`.
pub async fn begin_as(pool: &PgPool, role: &str, claims: &Claims, access: Access) -> Result<Transaction<'static, Postgres>, AppError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    if access == Access::ReadOnly {
        sqlx::query("set transaction read only").execute(&mut *tx).await.map_err(db_error)?;
    }
    act_as(&mut tx, role, claims.json()).await.map_err(db_error)?;
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

/// Puts `user`'s verified claims in `request.jwt.claims` for the rest of the open transaction
/// without changing role: the companion's own privileged work (functions in `private`) done
/// for that user, whose audit rows then name them.
pub async fn act_as_claims(conn: &mut PgConnection, user: &AuthUser) -> Result<(), AppError> {
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(user.claims.json())
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}
