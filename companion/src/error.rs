//! The one error type of the HTTP layer, and the response envelope.
//!
//! Success: `{"success": true, "data": …, "meta": …}`.
//! Failure: `{"success": false, "error": {"code", "message", "details"}}`.
//! Internal errors are logged with their cause chain and answered without it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        error_response(status, code, &self.to_string(), Value::Null)
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
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub data: T,
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
