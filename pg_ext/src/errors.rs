//! Turning rule errors into Postgres errors.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

/// Raises `22023 invalid_parameter_value` with the rule's message and a hint. Never returns.
pub(crate) fn invalid_parameter(err: &dyn std::error::Error, hint: &str) -> ! {
    ErrorReport::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, err.to_string(), "careplane")
        .set_hint(hint)
        .report(pgrx::PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}
