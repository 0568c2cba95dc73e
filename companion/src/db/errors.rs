//! Database errors answered the way Supabase PostgREST answers them, so a frontend sees the
//! same status for the same SQLSTATE whether it called an RPC through PostgREST or an endpoint
//! of the companion.
//!
//! [`http_status`] is PostgREST's own SQLSTATE → HTTP table (`mapSQLtoHTTP` in
//! `src/PostgREST/Error.hs`): every class it lists, `PTxyz` → `xyz`, the `PGRST` raise whose
//! DETAIL carries the status, and 400 for every class it does not list (the ledger's `LGxxx`
//! included). [`db_error`] builds the envelope: the message the database chose, and in
//! `details` the SQLSTATE, the DETAIL (parsed when it is a JSON object, as `private.enforce`
//! writes it) and the HINT; a `"code"` in that DETAIL becomes the envelope's `error.code`.
//!
//! Server errors (5xx) are logged; their message is not returned (it may name internals), only
//! the SQLSTATE.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use crate::error::AppError;

/// The HTTP status PostgREST answers for a database error with this SQLSTATE, message and
/// DETAIL. `authenticated`: the request carried an accepted token (PostgREST answers 42501
/// with 401 to anonymous callers and 403 to signed-in ones).
pub fn http_status(sqlstate: &str, message: &str, detail: Option<&str>, authenticated: bool) -> StatusCode {
    let code = |n: u16| StatusCode::from_u16(n).expect("a valid status literal");
    let class = sqlstate.get(..2).unwrap_or("");
    match (sqlstate, class) {
        (_, "08") => code(503),
        (_, "09") => code(500),
        (_, "0L" | "0P") => code(403),
        ("23503" | "23505", _) => code(409),
        ("25006", _) => code(405),
        // cardinality_violation: pg-safeupdate's refusal is the caller's fault, anything else
        // (a subquery returning several rows) is the function's.
        ("21000", _) if message.ends_with("requires a WHERE clause") => code(400),
        ("21000", _) => code(500),
        // invalid_parameter_value naming a role that does not exist: the token's role is bad.
        ("22023", _) if message.starts_with("role") && message.ends_with("does not exist") => code(401),
        (_, "25") => code(500),
        (_, "28") => code(403),
        (_, "2D" | "38" | "39" | "3B" | "40") => code(500),
        ("53400", _) => code(500),
        (_, "53") => code(503),
        (_, "54" | "55") => code(500),
        ("57P01", _) => code(503),
        (_, "57" | "58" | "F0" | "HV") => code(500),
        ("P0001", _) => code(400),
        (_, "P0" | "XX") => code(500),
        ("42883", _) if message.starts_with("function xmlagg(") => code(406),
        ("42883" | "42P01", _) => code(404),
        ("42P17", _) => code(500),
        ("42501", _) if authenticated => code(403),
        ("42501", _) => code(401),
        ("PGRST", _) => pgrst_raise(message, detail).map_or(code(500), |r| r.status),
        (_, "PT") => sqlstate[2..]
            .parse::<u16>()
            .ok()
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or(code(500)),
        _ => code(400),
    }
}

/// `raise sqlstate 'PGRST' using message = '{"code", "message", "details", "hint"}', detail =
/// '{"status", "status_text", "headers"}'`: the RPC chooses the whole answer.
struct PgrstRaise {
    status: StatusCode,
    code: String,
    message: String,
    details: Value,
    hint: Value,
}

/// `None` when MESSAGE or DETAIL is not what PostgREST requires (it then answers 500): MESSAGE
/// `{code, message}` strings with optional string `details` / `hint`; DETAIL `{status,
/// headers}` with an optional `status_text`. The headers are not sent by the companion.
fn pgrst_raise(message: &str, detail: Option<&str>) -> Option<PgrstRaise> {
    let m: Map<String, Value> = serde_json::from_str(message).ok()?;
    let d: Map<String, Value> = serde_json::from_str(detail?).ok()?;
    let status = d.get("status")?.as_u64().and_then(|n| u16::try_from(n).ok()).and_then(|n| StatusCode::from_u16(n).ok())?;
    d.get("headers")?.as_object()?.values().all(Value::is_string).then_some(())?;
    let optional_text = |key: &str| match m.get(key) {
        None | Some(Value::Null) => Some(Value::Null),
        Some(Value::String(s)) => Some(Value::String(s.clone())),
        Some(_) => None,
    };
    Some(PgrstRaise {
        status,
        code: m.get("code")?.as_str()?.to_owned(),
        message: m.get("message")?.as_str()?.to_owned(),
        details: optional_text("details")?,
        hint: optional_text("hint")?,
    })
}

/// The envelope's `error.code` when the database's DETAIL does not name one.
fn default_code(sqlstate: &str, status: StatusCode) -> &'static str {
    match sqlstate {
        "42501" => "permission_denied",
        "23503" | "23505" => "conflict",
        "42883" | "42P01" => "not_found",
        "P0001" => "rule_violation",
        s if s.starts_with("PT") => "rule_violation",
        s if s.starts_with("22") || s.starts_with("23") => "invalid_input",
        _ => match status.as_u16() {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            406 => "not_acceptable",
            409 => "conflict",
            503 => "database_unavailable",
            s if s >= 500 => "internal",
            _ => "bad_request",
        },
    }
}

/// The parts of a database error PostgREST answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFailure {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl DbFailure {
    /// The envelope PostgREST's answer becomes in the companion.
    pub fn into_app_error(self, authenticated: bool) -> AppError {
        let status = http_status(&self.sqlstate, &self.message, self.detail.as_deref(), authenticated);
        if self.sqlstate == "PGRST" {
            if let Some(r) = pgrst_raise(&self.message, self.detail.as_deref()) {
                let details = json!({ "sqlstate": "PGRST", "detail": r.details, "hint": r.hint });
                return AppError::status(r.status, r.code, r.message).with_details(details);
            }
        }
        if status.is_server_error() {
            let code = default_code(&self.sqlstate, status);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(sqlstate = %self.sqlstate, message = %self.message, "database unavailable");
                return AppError::status(status, code, "the database is unavailable")
                    .with_details(json!({ "sqlstate": self.sqlstate }));
            }
            tracing::error!(sqlstate = %self.sqlstate, message = %self.message, detail = ?self.detail, "database error");
            return AppError::status(status, code, "internal error").with_details(json!({ "sqlstate": self.sqlstate }));
        }
        // `private.enforce` writes the verdict's detail as JSON text: `{"code": …, …}`.
        let detail = match self.detail.as_deref().filter(|d| !d.is_empty()) {
            None => Value::Null,
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Value::Object(map),
                _ => Value::String(text.to_owned()),
            },
        };
        let code = match detail.get("code").and_then(Value::as_str).filter(|c| !c.is_empty()) {
            Some(c) => c.to_owned(),
            None => default_code(&self.sqlstate, status).to_owned(),
        };
        let hint = self.hint.filter(|h| !h.is_empty()).map_or(Value::Null, Value::String);
        let details = json!({ "sqlstate": self.sqlstate, "detail": detail, "hint": hint });
        AppError::status(status, code, self.message).with_details(details)
    }
}

/// Maps a database error to the answer PostgREST would give for it. The companion's database
/// work always runs for an accepted token (a user's, or the service role's), so 42501 is 403.
pub fn db_error(err: sqlx::Error) -> AppError {
    match &err {
        sqlx::Error::Database(db) => {
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
            let failure = DbFailure {
                sqlstate: db.code().map(|c| c.into_owned()).unwrap_or_default(),
                message: db.message().to_owned(),
                detail: pg.and_then(|e| e.detail()).map(str::to_owned),
                hint: pg.and_then(|e| e.hint()).map(str::to_owned),
            };
            failure.into_app_error(true)
        }
        // PostgREST: a connection error is 503.
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(error = %err, "database unavailable");
            AppError::status(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unavailable")
        }
        _ => AppError::Internal(anyhow::Error::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgREST's table, row by row: (SQLSTATE, message, DETAIL, authenticated, status).
    #[test]
    fn every_sqlstate_class_maps_to_the_status_postgrest_answers() {
        let rows: &[(&str, &str, Option<&str>, bool, u16)] = &[
            ("08006", "connection failure", None, true, 503),
            ("08P01", "protocol violation", None, true, 503),
            ("09000", "triggered action exception", None, true, 500),
            ("0L000", "invalid grantor", None, true, 403),
            ("0P000", "invalid role specification", None, true, 403),
            ("23503", "violates foreign key constraint", None, true, 409),
            ("23505", "duplicate key value", None, true, 409),
            ("25006", "cannot execute INSERT in a read-only transaction", None, true, 405),
            ("21000", "DELETE requires a WHERE clause", None, true, 400),
            ("21000", "more than one row returned by a subquery used as an expression", None, true, 500),
            ("22023", "role \"ghost\" does not exist", None, true, 401),
            ("22023", "amount must be a whole number", None, true, 400),
            ("25001", "active sql transaction", None, true, 500),
            ("28000", "invalid authorization specification", None, true, 403),
            ("28P01", "password authentication failed", None, true, 403),
            ("2D000", "invalid transaction termination", None, true, 500),
            ("38000", "external routine exception", None, true, 500),
            ("39000", "external routine invocation exception", None, true, 500),
            ("3B000", "savepoint exception", None, true, 500),
            ("40001", "could not serialize access", None, true, 500),
            ("40P01", "deadlock detected", None, true, 500),
            ("53400", "configuration limit exceeded", None, true, 500),
            ("53300", "too many connections", None, true, 503),
            ("53100", "disk full", None, true, 503),
            ("54001", "statement too complex", None, true, 500),
            ("55P03", "lock not available", None, true, 500),
            ("57P01", "terminating connection due to administrator command", None, true, 503),
            ("57014", "canceling statement due to statement timeout", None, true, 500),
            ("58030", "io error", None, true, 500),
            ("F0000", "config file error", None, true, 500),
            ("HV000", "fdw error", None, true, 500),
            ("P0001", "raise exception", None, true, 400),
            ("P0002", "query returned no rows", None, true, 500),
            ("P0004", "assert failure", None, true, 500),
            ("XX000", "internal error", None, true, 500),
            ("XX001", "data corrupted", None, true, 500),
            ("42883", "function xmlagg(bytea) does not exist", None, true, 406),
            ("42883", "function public.nope() does not exist", None, true, 404),
            ("42P01", "relation \"nope\" does not exist", None, true, 404),
            ("42P17", "infinite recursion detected in policy", None, true, 500),
            ("42501", "permission denied for table x", None, true, 403),
            ("42501", "permission denied for table x", None, false, 401),
            ("PT409", "the slot is taken", None, true, 409),
            ("PT422", "not allowed", None, true, 422),
            ("PT402", "payment required", None, true, 402),
            ("PTxyz", "not a status", None, true, 500),
            ("PGRST", r#"{"code":"123","message":"m"}"#, Some(r#"{"status":418,"headers":{}}"#), true, 418),
            ("PGRST", "not json", Some(r#"{"status":418,"headers":{}}"#), true, 500),
            ("PGRST", r#"{"code":"123","message":"m"}"#, Some(r#"{"status":418}"#), true, 500),
            ("PGRST", r#"{"code":"123","message":"m"}"#, None, true, 500),
            // Everything PostgREST does not list is the caller's: 400.
            ("23P01", "conflicting key value violates exclusion constraint", None, true, 400),
            ("23514", "violates check constraint", None, true, 400),
            ("23502", "null value in column", None, true, 400),
            ("22P02", "invalid input syntax for type uuid", None, true, 400),
            ("42601", "syntax error", None, true, 400),
            ("42703", "column does not exist", None, true, 400),
            ("LG003", "insufficient funds", None, true, 400),
            ("LG011", "legs must be an array", None, true, 400),
            ("ZZ999", "no such class", None, true, 400),
            ("", "no SQLSTATE at all", None, true, 400),
        ];
        for &(sqlstate, message, detail, authenticated, want) in rows {
            let got = http_status(sqlstate, message, detail, authenticated);
            assert_eq!(got.as_u16(), want, "{sqlstate} {message:?} authenticated={authenticated}");
        }
    }

    fn failure(sqlstate: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> DbFailure {
        DbFailure {
            sqlstate: sqlstate.into(),
            message: message.into(),
            detail: detail.map(Into::into),
            hint: hint.map(Into::into),
        }
    }

    fn parts(err: AppError) -> (u16, String, String, Value) {
        match err {
            AppError::Status { status, code, message, details } => (status.as_u16(), code.into_owned(), message, details),
            other => panic!("not a status error: {other:?}"),
        }
    }

    #[test]
    fn a_verdict_detail_becomes_details_and_its_code_the_error_code() {
        let err = failure(
            "LG003",
            "insufficient funds in account 7",
            Some(r#"{"code": "exceeds_credits", "account_id": 7}"#),
            Some(""),
        )
        .into_app_error(true);
        let (status, code, message, details) = parts(err);
        assert_eq!((status, code.as_str(), message.as_str()), (400, "exceeds_credits", "insufficient funds in account 7"));
        assert_eq!(
            details,
            json!({"sqlstate": "LG003", "detail": {"code": "exceeds_credits", "account_id": 7}, "hint": null})
        );
    }

    #[test]
    fn a_plain_text_detail_is_kept_as_text_and_the_code_named_for_the_sqlstate() {
        let (status, code, _, details) =
            parts(failure("23505", "duplicate key", Some("Key (id)=(1) already exists."), None).into_app_error(true));
        assert_eq!((status, code.as_str()), (409, "conflict"));
        assert_eq!(details, json!({"sqlstate": "23505", "detail": "Key (id)=(1) already exists.", "hint": null}));
        // A JSON detail that is not an object is text too, and names no code.
        let (_, code, _, details) = parts(failure("PT422", "no", Some("[1, 2]"), Some("try again")).into_app_error(true));
        assert_eq!(code, "rule_violation");
        assert_eq!(details, json!({"sqlstate": "PT422", "detail": "[1, 2]", "hint": "try again"}));
        let (status, code, _, _) = parts(failure("42501", "permission denied", None, None).into_app_error(false));
        assert_eq!((status, code.as_str()), (401, "permission_denied"));
    }

    #[test]
    fn server_errors_carry_the_sqlstate_but_not_the_database_message() {
        let (status, code, message, details) =
            parts(failure("XX000", "panicked at rules/src/ledger.rs:42", Some(r#"{"code":"x"}"#), None).into_app_error(true));
        assert_eq!((status, code.as_str(), message.as_str()), (500, "internal", "internal error"));
        assert_eq!(details, json!({"sqlstate": "XX000"}));
        let (status, code, message, _) = parts(failure("53300", "too many connections", None, None).into_app_error(true));
        assert_eq!((status, code.as_str(), message.as_str()), (503, "database_unavailable", "the database is unavailable"));
    }

    #[test]
    fn a_pgrst_raise_chooses_status_code_message_and_details() {
        let err = failure(
            "PGRST",
            r#"{"code": "123", "message": "Payment Required", "details": "Quota exceeded", "hint": "Upgrade"}"#,
            Some(r#"{"status": 402, "headers": {"X-Powered-By": "Nerd Rage"}}"#),
            None,
        )
        .into_app_error(true);
        let (status, code, message, details) = parts(err);
        assert_eq!((status, code.as_str(), message.as_str()), (402, "123", "Payment Required"));
        assert_eq!(details, json!({"sqlstate": "PGRST", "detail": "Quota exceeded", "hint": "Upgrade"}));
    }
}
