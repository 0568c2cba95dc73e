//! Medical files through an S3-compatible store (docs/files.md):
//!
//! - `POST /v1/files/upload-url`: the database, as the caller, records the object and its
//!   attachment (the insert policies of `storage.objects` and `public.attachments` decide);
//!   then a presigned `PUT` bound to the declared size and type.
//! - `GET /v1/files/{id}/download-url`: the database, as the caller, shows the attachment and
//!   its object (the select policies decide); then a presigned `GET` for five minutes.
//! - `POST /v1/files/{id}/complete`: the uploader's pending attachment becomes visible once the
//!   store holds exactly the declared size and type; its SHA-256 is recorded.
//!
//! A refusal signs nothing. Every request that reaches the database is logged in
//! `private.file_access_log` (granted, denied or rejected), without file names.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use careplane_rules::files::{self as rules, BucketLimits, Stored, Upload};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use chrono::{DateTime, Utc};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::db::errors::db_error;
use crate::db::user::{act_as_claims, begin_as_user, Access};
use crate::error::{AppError, Envelope, ErrorEnvelope};
use crate::files::{Presigned, StoreError};
use crate::AppState;

/// The Storage buckets that take attachments, and what an attachment in each hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileBucket {
    /// A patient's documents; `attach_to` is the patient.
    MedicalRecords,
    /// Files of one consultation; `attach_to` is the consultation.
    ConsultationFiles,
    /// Attachments of a message; `attach_to` is one of the caller's messages.
    MessageAttachments,
}

impl FileBucket {
    fn id(self) -> &'static str {
        match self {
            FileBucket::MedicalRecords => "medical-records",
            FileBucket::ConsultationFiles => "consultation-files",
            FileBucket::MessageAttachments => "message-attachments",
        }
    }
}

/// What a file is (the `kind` check of `public.attachments`).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    LabResult,
    Imaging,
    Document,
    Report,
    Photo,
}

impl AttachmentKind {
    fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::LabResult => "lab_result",
            AttachmentKind::Imaging => "imaging",
            AttachmentKind::Document => "document",
            AttachmentKind::Report => "report",
            AttachmentKind::Photo => "photo",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadUrlRequest {
    pub bucket: FileBucket,
    pub attach_to: Uuid,
    /// The file's name (`careplane_rules::files::is_valid_file_name`): letters, digits, spaces
    /// and `. _ - ( ) + , ! @ =`, at most 255 bytes, not starting with a dot or a space nor
    /// ending with a space.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[A-Za-z0-9_()+,!@=-]([A-Za-z0-9 _.()+,!@=-]*[A-Za-z0-9_.()+,!@=-])?$")]
    pub file_name: String,
    /// Its media type without parameters, e.g. `application/pdf`; the bucket's
    /// `allowed_mime_types` apply (415 otherwise).
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")]
    pub content_type: String,
    /// Its exact size in bytes; the bucket's `file_size_limit` applies (413 otherwise).
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::http::whole_number")]
    pub size: i64,
    /// `document` when not given.
    #[serde(default)]
    pub kind: Option<AttachmentKind>,
}

/// An attached file as the caller may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attachment {
    pub id: Uuid,
    pub bucket: String,
    pub object_name: String,
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    /// `pending` until completed, then `ready`.
    pub status: String,
    /// Hex SHA-256 of the stored bytes, once completed.
    pub sha256: Option<String>,
    pub uploaded_by: Uuid,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub completed_at: Option<String>,
}

/// A presigned request to send to the store as given.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedRequest {
    pub method: String,
    pub url: String,
    /// Headers to send exactly as given: they are part of the signature.
    pub headers: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

impl From<Presigned> for SignedRequest {
    fn from(p: Presigned) -> Self {
        SignedRequest {
            method: p.method.into(),
            url: p.url,
            headers: p.headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            expires_at: rfc3339(p.expires_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicket {
    pub attachment: Attachment,
    pub upload: SignedRequest,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadTicket {
    pub attachment: Attachment,
    pub download: SignedRequest,
}

type Row = (Uuid, String, String, String, String, String, i64, Option<Vec<u8>>, String, Uuid, DateTime<Utc>, Option<DateTime<Utc>>);
const COLUMNS: &str = "a.id, a.bucket_id, a.object_name, a.kind, a.file_name, a.content_type, a.size_bytes, a.sha256, \
                       a.status, a.uploaded_by, a.created_at, a.completed_at";

impl From<Row> for Attachment {
    fn from(r: Row) -> Self {
        Attachment {
            id: r.0,
            bucket: r.1,
            object_name: r.2,
            kind: r.3,
            file_name: r.4,
            content_type: r.5,
            size: r.6,
            sha256: r.7.map(hex::encode),
            status: r.8,
            uploaded_by: r.9,
            created_at: rfc3339(r.10),
            completed_at: r.11.map(rfc3339),
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Clone, Copy)]
enum Action {
    UploadUrl,
    DownloadUrl,
    Complete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::UploadUrl => "upload_url",
            Action::DownloadUrl => "download_url",
            Action::Complete => "complete",
        }
    }
}

fn store(state: &AppState) -> Result<&crate::files::Store, AppError> {
    state.files.as_ref().ok_or_else(|| {
        AppError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "files_not_configured",
            "file storage not configured: set S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY",
        )
    })
}

fn not_permitted(what: &str) -> AppError {
    AppError::forbidden("not_permitted", format!("you may not {what}"))
}

/// A refusal by row-level security (42501) as the caller's 403; anything else as the
/// database error it is.
fn denied_as(what: &'static str) -> impl Fn(sqlx::Error) -> AppError {
    move |err| match &err {
        sqlx::Error::Database(e) if e.code().as_deref() == Some("42501") => not_permitted(what),
        _ => db_error(err),
    }
}

/// Records one access in `private.file_access_log` through the companion's own connection.
async fn log_access(
    conn: impl sqlx::PgExecutor<'_>,
    user: &AuthUser,
    action: Action,
    outcome: &str,
    attachment: Option<Uuid>,
    bucket: Option<&str>,
    reason: Option<&str>,
) -> Result<(), AppError> {
    sqlx::query("select private.log_file_access($1, $2, $3, $4, $5, $6, $7)")
        .bind(user.id)
        .bind(user.user_role.as_deref())
        .bind(action.as_str())
        .bind(outcome)
        .bind(attachment)
        .bind(bucket)
        .bind(reason)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Logs a refusal (403 → denied, 409/422 at completion → rejected) and passes the error on.
async fn log_refusal<T>(
    state: &AppState,
    user: &AuthUser,
    action: Action,
    attachment: Option<Uuid>,
    bucket: Option<&str>,
    result: Result<T, AppError>,
) -> Result<T, AppError> {
    if let Err(err) = &result {
        let outcome = match err.http_status() {
            StatusCode::FORBIDDEN => Some("denied"),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT if matches!(action, Action::Complete) => Some("rejected"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            if let Err(log_err) = log_access(&state.db, user, action, outcome, attachment, bucket, Some(&err.code())).await {
                tracing::error!(error = %log_err, action = action.as_str(), "file access refusal not logged");
            }
        }
    }
    result
}

/// A presigned upload for a new attachment, after the database, as the caller, has accepted
/// the object and the attachment.
#[utoipa::path(
    post,
    path = "/v1/files/upload-url",
    tag = "files",
    security(("bearer" = [])),
    request_body = UploadUrlRequest,
    responses(
        (status = 201, body = Envelope<UploadTicket>, description = "the pending attachment and a presigned PUT bound to its size and type"),
        (status = 400, body = ErrorEnvelope, description = "a bad file name or content type, or malformed JSON; `error.code` says which"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "you may not attach files there (`not_permitted`); nothing was signed"),
        (status = 413, body = ErrorEnvelope, description = "the size is over the bucket's limit (`file_too_large`)"),
        (status = 415, body = ErrorEnvelope, description = "the bucket does not take this content type (`content_type_not_allowed`), or the body is not JSON (`unsupported_media_type`)"),
        (status = 422, body = ErrorEnvelope, description = "the body is not a valid request (`validation_failed`), e.g. an unknown bucket"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 503, body = ErrorEnvelope, description = "file storage not configured (`files_not_configured`), or the database is unavailable"),
    )
)]
pub async fn upload_url(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<UploadUrlRequest>,
) -> Result<(StatusCode, Envelope<UploadTicket>), AppError> {
    let store = store(&state)?;
    let bad_request = |e: rules::FilesError| AppError::status(StatusCode::BAD_REQUEST, e.code(), e.to_string());
    if !rules::is_valid_file_name(&req.file_name) {
        return Err(bad_request(rules::FilesError::InvalidFileName));
    }
    let content_type = rules::normalize_content_type(&req.content_type).ok_or(rules::FilesError::InvalidContentType).map_err(bad_request)?;
    let limits = bucket_limits(&state, req.bucket.id()).await?;
    let recorded = record_upload(&state, &user, &req, &content_type, &limits).await;
    let attachment = log_refusal(&state, &user, Action::UploadUrl, None, Some(req.bucket.id()), recorded).await?;
    log_access(&state.db, &user, Action::UploadUrl, "granted", Some(attachment.id), Some(&attachment.bucket), None).await?;
    let key = crate::files::Store::key(&attachment.bucket, &attachment.object_name);
    let upload = store.presign_upload(&key, &attachment.content_type, attachment.size).into();
    Ok((StatusCode::CREATED, Envelope::new(UploadTicket { attachment, upload })))
}

async fn bucket_limits(state: &AppState, bucket: &str) -> Result<BucketLimits, AppError> {
    let row: Option<(Option<i64>, Option<Vec<String>>)> =
        sqlx::query_as("select file_size_limit, allowed_mime_types from storage.buckets where id = $1")
            .bind(bucket)
            .fetch_optional(&state.db)
            .await
            .map_err(db_error)?;
    let (file_size_limit, allowed_mime_types) = row.ok_or_else(|| {
        AppError::status(StatusCode::BAD_REQUEST, "unknown_bucket", format!("there is no bucket {bucket:?}"))
    })?;
    Ok(BucketLimits { file_size_limit, allowed_mime_types })
}

/// As the caller: the object row through its insert policy (403 when refused), then the
/// bucket's limits (so a caller learns them only for a place they may write), then the pending
/// attachment through its insert policy. A refusal rolls everything back.
async fn record_upload(
    state: &AppState,
    user: &AuthUser,
    req: &UploadUrlRequest,
    content_type: &str,
    limits: &BucketLimits,
) -> Result<Attachment, AppError> {
    const WHAT: &str = "attach files there";
    let bucket = req.bucket.id();
    let mut tx = begin_as_user(&state.db, user, Access::ReadWrite).await?;
    let folder = match req.bucket {
        FileBucket::MessageAttachments => sqlx::query_scalar::<_, Uuid>("select conversation_id from public.messages where id = $1")
            .bind(req.attach_to)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| not_permitted(WHAT))?,
        FileBucket::MedicalRecords | FileBucket::ConsultationFiles => req.attach_to,
    };
    let id = Uuid::new_v4();
    let object_name = rules::object_name(folder, id, &req.file_name);
    sqlx::query("insert into storage.objects (bucket_id, name, owner, owner_id) values ($1, $2, auth.uid(), auth.uid()::text)")
        .bind(bucket)
        .bind(&object_name)
        .execute(&mut *tx)
        .await
        .map_err(denied_as(WHAT))?;
    let upload = rules::check_upload(limits, &req.file_name, content_type, req.size).map_err(|e| {
        let status = match e {
            rules::FilesError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            rules::FilesError::TypeNotAllowed(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        AppError::status(status, e.code(), e.to_string())
    })?;
    let on = |b: FileBucket| (req.bucket == b).then_some(req.attach_to);
    let row: Row = sqlx::query_as(&format!(
        "insert into public.attachments as a (id, bucket_id, object_name, kind, file_name, content_type, size_bytes,
                                              patient_id, consultation_id, message_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning {COLUMNS}"
    ))
    .bind(id)
    .bind(bucket)
    .bind(&object_name)
    .bind(req.kind.unwrap_or(AttachmentKind::Document).as_str())
    .bind(&upload.file_name)
    .bind(&upload.content_type)
    .bind(upload.size)
    .bind(on(FileBucket::MedicalRecords))
    .bind(on(FileBucket::ConsultationFiles))
    .bind(on(FileBucket::MessageAttachments))
    .fetch_one(&mut *tx)
    .await
    .map_err(denied_as(WHAT))?;
    tx.commit().await.map_err(db_error)?;
    Ok(row.into())
}

/// The attachment `id` as the caller may see it, with its object (both through their select
/// policies); `None` when they may see neither, or it does not exist (the same answer, so an
/// id's existence is not revealed).
async fn visible_attachment(state: &AppState, user: &AuthUser, id: Uuid) -> Result<Option<Attachment>, AppError> {
    let mut tx = begin_as_user(&state.db, user, Access::ReadOnly).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from public.attachments a
          where a.id = $1
            and exists (select 1 from storage.objects o where o.bucket_id = a.bucket_id and o.name = a.object_name)"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(row.map(Attachment::from))
}

/// A presigned download of a ready attachment, valid for five minutes (by default), after the
/// database, as the caller, has shown it.
#[utoipa::path(
    get,
    path = "/v1/files/{id}/download-url",
    tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the attachment")),
    responses(
        (status = 400, body = ErrorEnvelope, description = "the id is not a UUID (`bad_request`)"),
        (status = 200, body = Envelope<DownloadTicket>, description = "the attachment and a presigned GET"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "you may not read this file, or there is none (`not_permitted`); nothing was signed"),
        (status = 409, body = ErrorEnvelope, description = "your upload is not complete yet (`upload_incomplete`)"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 503, body = ErrorEnvelope, description = "file storage not configured (`files_not_configured`), or the database is unavailable"),
    )
)]
pub async fn download_url(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Envelope<DownloadTicket>, AppError> {
    let store = store(&state)?;
    let found = async {
        let attachment = visible_attachment(&state, &user, id).await?.ok_or_else(|| not_permitted("read this file"))?;
        if attachment.status != "ready" {
            return Err(AppError::status(StatusCode::CONFLICT, "upload_incomplete", "the upload of this file is not complete yet"));
        }
        Ok(attachment)
    }
    .await;
    let attachment = log_refusal(&state, &user, Action::DownloadUrl, Some(id), None, found).await?;
    log_access(&state.db, &user, Action::DownloadUrl, "granted", Some(id), Some(&attachment.bucket), None).await?;
    let key = crate::files::Store::key(&attachment.bucket, &attachment.object_name);
    let download = store.presign_download(&key, &attachment.file_name).into();
    Ok(Envelope::new(DownloadTicket { attachment, download }))
}

/// Makes the caller's upload visible once the store holds exactly what was declared.
#[utoipa::path(
    post,
    path = "/v1/files/{id}/complete",
    tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the attachment")),
    responses(
        (status = 400, body = ErrorEnvelope, description = "the id is not a UUID (`bad_request`)"),
        (status = 200, body = Envelope<Attachment>, description = "the attachment, ready, with its SHA-256 (completing again answers the same)"),
        (status = 401, body = ErrorEnvelope, description = "no token, or the token was refused"),
        (status = 403, body = ErrorEnvelope, description = "this is not your upload, or there is none (`not_permitted`)"),
        (status = 409, body = ErrorEnvelope, description = "nothing has been uploaded yet (`upload_missing`)"),
        (status = 422, body = ErrorEnvelope, description = "the stored object is not the declared size or type (`upload_mismatch`); it was removed"),
        (status = 429, body = ErrorEnvelope, description = "rate limited; see `Retry-After`"),
        (status = 502, body = ErrorEnvelope, description = "the store could not be read (`store_unavailable`)"),
        (status = 503, body = ErrorEnvelope, description = "file storage not configured (`files_not_configured`), or the database is unavailable"),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Envelope<Attachment>, AppError> {
    let store = store(&state)?;
    let checked = check_stored(&state, store, &user, id).await;
    let (attachment, stored) = log_refusal(&state, &user, Action::Complete, Some(id), None, checked).await?;
    let Some(stored) = stored else {
        // Already complete: the same answer, and the access logged like any other.
        log_access(&state.db, &user, Action::Complete, "granted", Some(id), Some(&attachment.bucket), None).await?;
        return Ok(Envelope::new(attachment));
    };
    // The companion's own role, acting for the uploader (the audit rows name them).
    let mut tx = state.db.begin().await.map_err(db_error)?;
    act_as_claims(&mut tx, &user).await?;
    let row: Row = sqlx::query_as(&format!("select {COLUMNS} from private.complete_attachment($1, $2, $3, $4) a"))
        .bind(id)
        .bind(user.id)
        .bind(stored.sha256.as_slice())
        .bind(stored.etag.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    log_access(&mut *tx, &user, Action::Complete, "granted", Some(id), Some(&row.1), None).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Envelope::new(row.into()))
}

/// The caller's pending attachment and what the store holds for it (`None` when the attachment
/// is already complete).
async fn check_stored(
    state: &AppState,
    store: &crate::files::Store,
    user: &AuthUser,
    id: Uuid,
) -> Result<(Attachment, Option<crate::files::StoredObject>), AppError> {
    let attachment = visible_attachment(state, user, id)
        .await?
        .filter(|a| a.uploaded_by == user.id)
        .ok_or_else(|| not_permitted("complete this upload"))?;
    if attachment.status == "ready" {
        return Ok((attachment, None));
    }
    let key = crate::files::Store::key(&attachment.bucket, &attachment.object_name);
    let declared = Upload { file_name: attachment.file_name.clone(), content_type: attachment.content_type.clone(), size: attachment.size };
    let mismatch = |details: Value| {
        AppError::status(StatusCode::UNPROCESSABLE_ENTITY, "upload_mismatch", "the stored file is not the declared size or type; it was removed")
            .with_details(details)
    };
    let stored = match store.read_back(&key, attachment.size).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return Err(AppError::status(StatusCode::CONFLICT, "upload_missing", "nothing has been uploaded for this file yet"))
        }
        Err(StoreError::TooLarge(declared)) => {
            remove(store, &key).await;
            return Err(mismatch(json!({ "declared_size": declared, "stored_size": "larger" })));
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading an upload back failed");
            return Err(AppError::status(StatusCode::BAD_GATEWAY, "store_unavailable", "the file store could not be read; try again"));
        }
    };
    if let Err(e) = rules::verify_stored(&declared, &Stored { size: stored.size, content_type: stored.content_type.as_deref() }) {
        remove(store, &key).await;
        return Err(mismatch(json!({ "reason": e.to_string() })));
    }
    Ok((attachment, Some(stored)))
}

async fn remove(store: &crate::files::Store, key: &str) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(error = %e, "removing a mismatched upload failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(size: Value) -> Result<UploadUrlRequest, serde_json::Error> {
        serde_json::from_value(json!({"bucket": "medical-records", "attach_to": Uuid::nil(), "file_name": "a.pdf",
                                      "content_type": "application/pdf", "size": size}))
    }

    #[test]
    fn size_is_a_whole_number_as_json_schema_reads_it() {
        assert_eq!(request(json!(1024)).unwrap().size, 1024);
        assert_eq!(request(json!(1024.0)).unwrap().size, 1024);
        assert!(request(json!(1024.5)).is_err());
        assert!(request(json!(9_007_199_254_740_992.0_f64)).is_err(), "past 2^53 a float is not exact");
        assert!(request(json!(u64::MAX)).is_err());
        assert!(request(json!("1024")).is_err());
    }

    #[test]
    fn unknown_buckets_and_fields_are_refused() {
        let mut body = json!({"bucket": "avatars", "attach_to": Uuid::nil(), "file_name": "a.pdf", "content_type": "application/pdf", "size": 1});
        assert!(serde_json::from_value::<UploadUrlRequest>(body.clone()).is_err());
        body["bucket"] = json!("consultation-files");
        assert_eq!(serde_json::from_value::<UploadUrlRequest>(body.clone()).unwrap().bucket.id(), "consultation-files");
        body["owner"] = json!("someone");
        assert!(serde_json::from_value::<UploadUrlRequest>(body).is_err());
    }
}
