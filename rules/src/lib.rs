//! careplane's business rules.
//!
//! Pure Rust: no pgrx types, no I/O, no clock. Everything a rule needs is passed in, so the
//! same code runs in unit tests, inside Postgres (through `pg_ext`) and in the companion.
//! One module per domain, each with its own error enum.

pub mod currency;
pub mod dispatch;
pub mod files;
pub mod geo;
pub mod json;
pub mod ledger;
pub mod payments;
pub mod notify;
pub mod scheduling;
pub mod settings;
pub mod triage;
pub mod verdict;

/// The version of the rules, which is also the version of the `careplane` extension.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
