//! `POST /v1/consultations/{id}/ice-servers`: STUN/TURN servers for a consultation's call, with
//! short-lived TURN credentials (coturn's REST scheme, [`crate::turn`]).
//!
//! Only a participant of a consultation whose call is open (waiting or in progress) gets them;
//! the database decides, as the caller (`access.is_consultation_participant`,
//! `careplane.consultation_call_is_open`), with row-level security hiding other people's
//! consultations.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::errors::db_error;
use crate::db::user::{begin_as_user, Access};
use crate::error::{AppError, Envelope, ErrorEnvelope};
use crate::turn::{ice_servers, IceServer};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct IceServers {
    /// `RTCConfiguration.iceServers`.
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid.
    pub ttl: u64,
    /// When they stop being valid (Unix time); ask again before then.
    pub expires_at: u64,
}

/// STUN/TURN servers for the caller's call in this consultation.
#[utoipa::path(
    post,
    path = "/v1/consultations/{id}/ice-servers",
    tag = "consultations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the consultation")),
    responses(
        (status = 200, body = Envelope<IceServers>, description = "servers and credentials for `new RTCPeerConnection({iceServers})`"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id (not a UUID)"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "the caller may read the consultation but is not one of its two participants (`not_a_participant`)"),
        (status = 404, body = ErrorEnvelope, description = "no such consultation the caller can see (`consultation_not_found`)"),
        (status = 409, body = ErrorEnvelope, description = "the call is not open: the consultation is scheduled or ended (`call_not_open`)"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 503, body = ErrorEnvelope, description = "no STUN/TURN servers configured (`turn_not_configured`), or the database is unavailable"),
    )
)]
pub async fn ice_servers_for(State(state): State<AppState>, user: AuthUser, Path(id): Path<Uuid>) -> Result<Envelope<IceServers>, AppError> {
    let turn = &state.config.turn;
    if !turn.is_configured() {
        return Err(AppError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "turn_not_configured",
            "no STUN/TURN servers are configured (TURN_URLS, TURN_SECRET)",
        ));
    }
    let mut tx = begin_as_user(&state.db, &user, Access::ReadOnly).await?;
    let row: Option<(String, bool, bool)> = sqlx::query_as(
        "select c.status, access.is_consultation_participant(c.id), careplane.consultation_call_is_open(c.status)
           from public.consultations c where c.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let Some((status, participant, open)) = row else {
        return Err(AppError::status(StatusCode::NOT_FOUND, "consultation_not_found", format!("no consultation {id}")));
    };
    if !participant {
        return Err(AppError::forbidden("not_a_participant", "only the patient and the clinician of a consultation take part in its call"));
    }
    if !open {
        return Err(AppError::status(
            StatusCode::CONFLICT,
            "call_not_open",
            format!("the consultation is {status}: its call is open while the patient waits and during the consultation"),
        )
        .with_details(json!({ "status": status })));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let ttl = turn.ttl.as_secs();
    Ok(Envelope::new(IceServers { ice_servers: ice_servers(turn, user.id, now), ttl, expires_at: now + ttl }))
}

type Timestamp = chrono::DateTime<chrono::Utc>;

/// A consultation as the moves return it (`public.consultations`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Consultation {
    pub id: Uuid,
    pub appointment_id: Uuid,
    /// The consultation's chat (`conversation:<id>`).
    pub conversation_id: Option<Uuid>,
    /// `scheduled`, `waiting`, `in_progress` or `ended`.
    pub status: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    pub duration_seconds: Option<i32>,
    /// The clinician's summary.
    pub summary: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

const COLUMNS: &str = "c.id, c.appointment_id, (select v.id from public.conversations v where v.consultation_id = c.id),
                c.status, c.started_at, c.ended_at, c.duration_seconds, c.summary, c.updated_at";
type Row = (Uuid, Uuid, Option<Uuid>, String, Option<Timestamp>, Option<Timestamp>, Option<i32>, Option<String>, Timestamp);

fn consultation(row: Row) -> Consultation {
    let (id, appointment_id, conversation_id, status, started_at, ended_at, duration_seconds, summary, updated_at) = row;
    let rfc3339 = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    Consultation {
        id,
        appointment_id,
        conversation_id,
        status,
        started_at: started_at.map(rfc3339),
        ended_at: ended_at.map(rfc3339),
        duration_seconds,
        summary,
        updated_at: rfc3339(updated_at),
    }
}

/// Calls one of the consultation RPCs as the caller, exactly as PostgREST's `/rpc/<name>` would.
async fn move_consultation(state: &AppState, user: &AuthUser, rpc: &'static str, id: Uuid) -> Result<Envelope<Consultation>, AppError> {
    let mut tx = begin_as_user(&state.db, user, Access::ReadWrite).await?;
    let row: Row = sqlx::query_as(&format!("select {COLUMNS} from public.{rpc}($1) c"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(Envelope::new(consultation(row)))
}

/// A consultation the caller may read (its participants; admins), with its conversation.
#[utoipa::path(
    get,
    path = "/v1/consultations/{id}",
    tag = "consultations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the consultation")),
    responses(
        (status = 200, body = Envelope<Consultation>, description = "the consultation"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id (not a UUID)"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 404, body = ErrorEnvelope, description = "no such consultation the caller can see (`consultation_not_found`)"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn get_one(State(state): State<AppState>, user: AuthUser, Path(id): Path<Uuid>) -> Result<Envelope<Consultation>, AppError> {
    let mut tx = begin_as_user(&state.db, &user, Access::ReadOnly).await?;
    let row: Option<Row> = sqlx::query_as(&format!("select {COLUMNS} from public.consultations c where c.id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let row = row.ok_or_else(|| AppError::status(StatusCode::NOT_FOUND, "consultation_not_found", format!("no consultation {id}")))?;
    Ok(Envelope::new(consultation(row)))
}

/// The patient enters the waiting room (`join_consultation`).
#[utoipa::path(
    post,
    path = "/v1/consultations/{id}/join",
    tag = "consultations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the consultation")),
    responses(
        (status = 200, body = Envelope<Consultation>, description = "the consultation, now `waiting` (unchanged when already there)"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id (not a UUID)"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "the move is not the caller's (`forbidden`)"),
        (status = 404, body = ErrorEnvelope, description = "not a consultation of the caller (`consultation_not_found`)"),
        (status = 422, body = ErrorEnvelope, description = "refused by the rule: `waiting_room_not_open`, `waiting_room_closed`, `invalid_transition`, `appointment_not_active`"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn join(State(state): State<AppState>, user: AuthUser, Path(id): Path<Uuid>) -> Result<Envelope<Consultation>, AppError> {
    move_consultation(&state, &user, "join_consultation", id).await
}

/// The clinician admits the waiting patient (`admit_patient`).
#[utoipa::path(
    post,
    path = "/v1/consultations/{id}/admit",
    tag = "consultations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the consultation")),
    responses(
        (status = 200, body = Envelope<Consultation>, description = "the consultation, now `in_progress`"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id (not a UUID)"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "the move is not the caller's (`forbidden`)"),
        (status = 404, body = ErrorEnvelope, description = "not a consultation of the caller (`consultation_not_found`)"),
        (status = 422, body = ErrorEnvelope, description = "refused by the rule: `invalid_transition`, `appointment_not_active`"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn admit(State(state): State<AppState>, user: AuthUser, Path(id): Path<Uuid>) -> Result<Envelope<Consultation>, AppError> {
    move_consultation(&state, &user, "admit_patient", id).await
}

/// Either participant ends the call (`end_consultation`); the appointment becomes fulfilled.
#[utoipa::path(
    post,
    path = "/v1/consultations/{id}/end",
    tag = "consultations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the consultation")),
    responses(
        (status = 200, body = Envelope<Consultation>, description = "the consultation, now `ended` with its duration"),
        (status = 400, body = ErrorEnvelope, description = "a malformed id (not a UUID)"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "the move is not the caller's (`forbidden`)"),
        (status = 404, body = ErrorEnvelope, description = "not a consultation of the caller (`consultation_not_found`)"),
        (status = 422, body = ErrorEnvelope, description = "refused by the rule: `invalid_transition`, `appointment_not_active`"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
    )
)]
pub async fn end(State(state): State<AppState>, user: AuthUser, Path(id): Path<Uuid>) -> Result<Envelope<Consultation>, AppError> {
    move_consultation(&state, &user, "end_consultation", id).await
}
