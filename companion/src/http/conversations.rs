//! A conversation's messages: `GET /v1/conversations/{id}/messages` (history) and
//! `POST /v1/conversations/{id}/messages` (send). Both run as the caller under the tables'
//! row-level security, exactly as PostgREST's `/messages` would; what is new reaches members
//! through the relay (`message:new` on `conversation:<id>`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::errors::db_error;
use crate::db::user::{begin_as_user, Access};
use crate::error::{AppError, Envelope, ErrorEnvelope};
use crate::AppState;

const MAX_LIMIT: i64 = 200;
const MAX_BODY_CHARS: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Uuid,
    pub body: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// How many of the latest messages (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMessage {
    /// 1 to 10000 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    pub body: String,
}

type Row = (Uuid, Uuid, Uuid, String, chrono::DateTime<chrono::Utc>);

fn message((id, conversation_id, sender_id, body, created_at): Row) -> ChatMessage {
    ChatMessage { id, conversation_id, sender_id, body, created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true) }
}

fn not_found(id: Uuid) -> AppError {
    AppError::status(StatusCode::NOT_FOUND, "conversation_not_found", format!("no conversation {id}"))
}

/// The conversation's latest messages, oldest first (chronological, ready to render).
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}/messages",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the conversation"), HistoryParams),
    responses(
        (status = 200, body = Envelope<Vec<ChatMessage>>, description = "the latest `limit` messages in the order they were sent"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id or `limit`"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 404, body = ErrorEnvelope, description = "no conversation the caller can read (`conversation_not_found`)"),
        (status = 422, body = ErrorEnvelope, description = "`limit` outside 1–200"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Query(params): Query<HistoryParams>,
) -> Result<Envelope<Vec<ChatMessage>>, AppError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", format!("limit must be 1 to {MAX_LIMIT}"))
            .with_details(json!({"field": "limit"})));
    }
    let mut tx = begin_as_user(&state.db, &user, Access::ReadOnly).await?;
    let visible: bool = sqlx::query_scalar("select exists (select 1 from public.conversations where id = $1)")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    if !visible {
        return Err(not_found(id));
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select * from (select id, conversation_id, sender_id, body, created_at from public.messages
                          where conversation_id = $1 order by created_at desc, id desc limit $2) latest
          order by created_at, id",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let mut envelope = Envelope::new(rows.into_iter().map(message).collect::<Vec<_>>());
    envelope.meta = json!({"limit": limit, "order": "oldest_first"});
    Ok(envelope)
}

/// Sends a message as the caller (a member of the conversation).
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/messages",
    tag = "conversations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the conversation")),
    request_body = NewMessage,
    responses(
        (status = 201, body = Envelope<ChatMessage>, description = "the stored message; members get `message:new`"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id, or a body that is not JSON"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 404, body = ErrorEnvelope, description = "no conversation the caller is a member of (`conversation_not_found`)"),
        (status = 413, body = ErrorEnvelope, description = "body larger than BODY_LIMIT_BYTES"),
        (status = 415, body = ErrorEnvelope, description = "not `Content-Type: application/json`"),
        (status = 422, body = ErrorEnvelope, description = "an empty or too long `body`"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
    Json(new): Json<NewMessage>,
) -> Result<(StatusCode, Envelope<ChatMessage>), AppError> {
    let chars = new.body.trim().chars().count();
    if chars == 0 || chars > MAX_BODY_CHARS {
        return Err(AppError::status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("body must be 1 to {MAX_BODY_CHARS} characters, not only whitespace"),
        )
        .with_details(json!({"field": "body"})));
    }
    let mut tx = begin_as_user(&state.db, &user, Access::ReadWrite).await?;
    let member: bool = sqlx::query_scalar("select access.is_conversation_member($1)")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    if !member {
        return Err(not_found(id));
    }
    let row: Row = sqlx::query_as(
        "insert into public.messages (conversation_id, body) values ($1, $2)
         returning id, conversation_id, sender_id, body, created_at",
    )
    .bind(id)
    .bind(&new.body)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok((StatusCode::CREATED, Envelope::new(message(row))))
}
