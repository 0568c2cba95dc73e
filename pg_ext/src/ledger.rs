//! The ledger's rules for its SQL writer (`private.ledger_execute`): `careplane.ledger_request`
//! reads a request, `careplane.ledger_apply` decides it against what the writer read under
//! its locks. Both answer a verdict (`{"ok": true, …}` or the `LG0xx` refusal that
//! `private.enforce` raises); malformed input is 22023 naming the field. The lists the ledger's
//! check constraints read come from here too, so they have one definition (`rules::ledger`).

use careplane_rules::ledger::{self, json as ledger_json, Direction, Flags, TransferType, VoidReason};
use pgrx::prelude::*;
use crate::jsonb::Jsonb;

use crate::errors::invalid_parameter;
use crate::json_arg::JsonArg;

const REQUEST_HINT: &str = "request: {id, type: posted|pending|post_pending|void_pending, kind, legs: [{account_id, direction, amount, currency}], \
                            description, reverses, pending_id, amount, timeout_seconds, void_reason}";
const APPLY_HINT: &str = "input: {request, accounts, pending, pending_resolution, existing, reversed, reversed_by, now}";

/// A transfer request → `{"ok": true, "request": <canonical>, "account_ids": [sorted]}`, or
/// `LG011` when its legs are not an array.
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_request(request: JsonArg) -> Jsonb {
    let verdict = request.value("request").and_then(ledger_json::request_verdict);
    Jsonb(verdict.unwrap_or_else(|e| invalid_parameter(&e, REQUEST_HINT)).into_json())
}

/// `{request, accounts, pending, pending_resolution, existing, reversed, reversed_by, now}` →
/// `{"ok": true, "outcome": "exists"}`, `{"ok": true, "outcome": "created", "transfer",
/// "entries", "accounts"}`, or the refusal.
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_apply(input: JsonArg) -> Jsonb {
    let verdict = input.value("input").and_then(ledger_json::apply_verdict);
    Jsonb(verdict.unwrap_or_else(|e| invalid_parameter(&e, APPLY_HINT)).into_json())
}

/// The account flags (`ledger_accounts.flags`).
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_flags() -> Vec<&'static str> {
    Flags::names()
}

/// The transfer types (`ledger_transfers.type`).
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_transfer_types() -> Vec<&'static str> {
    TransferType::names()
}

/// The transfer types whose entries are posted (count in the posted balances).
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_posting_types() -> Vec<&'static str> {
    TransferType::ALL.iter().filter(|t| t.posts()).map(|t| t.as_str()).collect()
}

/// The transfer types that resolve a pending transfer (name it in `pending_id`).
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_resolution_types() -> Vec<&'static str> {
    TransferType::ALL.iter().filter(|t| t.resolves_pending()).map(|t| t.as_str()).collect()
}

/// The directions of an entry (`ledger_entries.direction`).
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_directions() -> Vec<&'static str> {
    Direction::names()
}

/// Why a pending transfer was released (`ledger_transfers.void_reason`).
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_void_reasons() -> Vec<&'static str> {
    VoidReason::names()
}

/// Whether an account's balances satisfy its flag; an unknown flag is 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_flags_hold(flags: &str, debits_posted: i64, credits_posted: i64, debits_pending: i64, credits_pending: i64) -> bool {
    let Some(flags) = Flags::parse(flags) else {
        let e = careplane_rules::json::invalid("flags", format!("must be {}, got {flags:?}", Flags::expected()));
        invalid_parameter(&e, "flags as in ledger_accounts.flags")
    };
    ledger::flags_hold(flags, debits_posted, credits_posted, debits_pending, credits_pending)
}
