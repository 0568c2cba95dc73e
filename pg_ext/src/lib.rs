//! The `careplane` Postgres extension.
//!
//! Thin wrappers only: each function converts its arguments, calls `careplane_rules`, and
//! converts the result. Rule errors become Postgres errors with a chosen SQLSTATE and a hint;
//! nothing here panics on input (a panic would surface as XX000 / HTTP 500).

use pgrx::prelude::*;

mod binary;
mod errors;
mod json_arg;
mod jsonb;

::pgrx::pg_module_magic!(name, version);

/// The extension's version, which is the crate version of `careplane` and `careplane-rules`.
#[pg_extern(immutable, strict, parallel_safe)]
fn version() -> &'static str {
    careplane_rules::VERSION
}

/// Which build of the extension this database runs: `{"version": "0.2.0", "profile":
/// "release"}` (`profile` is `debug` for a build with debug assertions, unoptimised and
/// not for serving; `make db` and the benchmarks install `release`). `/health/detailed` reports it.
#[pg_extern(stable, parallel_safe)]
fn build_info() -> jsonb::Jsonb {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    jsonb::Jsonb(serde_json::json!({ "version": careplane_rules::VERSION, "profile": profile }))
}

/// Minor-unit exponent of an ISO 4217 currency: `currency_exponent('NGN')` is 2.
/// Unknown or malformed codes raise 22023 (invalid_parameter_value).
#[pg_extern(immutable, strict, parallel_safe)]
fn currency_exponent(code: &str) -> i32 {
    match careplane_rules::currency::Currency::parse(code) {
        Ok(c) => i32::from(c.exponent()),
        Err(e) => errors::invalid_parameter(&e, "use an ISO 4217 code in upper case, e.g. 'NGN'"),
    }
}

/// Formats an amount of minor units in major units: `format_minor(150050, 'NGN')` is `1500.50`.
#[pg_extern(immutable, strict, parallel_safe)]
fn format_minor(amount: i64, code: &str) -> String {
    match careplane_rules::currency::Currency::parse(code) {
        Ok(c) => c.format_minor(amount),
        Err(e) => errors::invalid_parameter(&e, "use an ISO 4217 code in upper case, e.g. 'NGN'"),
    }
}

mod triage;
mod dispatch;
mod scheduling;
mod ledger;
