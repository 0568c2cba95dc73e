//! `careplane.ledger_apply(jsonb)` and `careplane.ledger_differences(jsonb, jsonb)`: the
//! ledger's validation, called by `private.ledger_execute` with the locked account rows.

use careplane_rules::ledger;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use crate::errors::invalid_parameter;
use crate::json_arg::JsonArg;

/// `{accounts, action, legs, pending_state, amount}` → `{"ok": true, "accounts": [balances after]}`
/// or `{"ok": false, "sqlstate": "LG0xx", "code", "message"}`; malformed input is 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_apply(input: JsonArg) -> JsonB {
    let outcome = input.value("input").and_then(ledger::apply_json).unwrap_or_else(|e| {
        invalid_parameter(&e, "legs: [{account_id, direction: debit|credit, amount, currency}]")
    });
    JsonB(match outcome {
        Ok(accounts) => json!({ "ok": true, "accounts": accounts }),
        Err(e) => json!({ "ok": false, "sqlstate": e.sqlstate(), "code": e.code(), "message": e.to_string() }),
    })
}

/// The top-level fields in which two transfer requests differ.
#[pg_extern(immutable, strict, parallel_safe)]
fn ledger_differences(existing: JsonArg, requested: JsonArg) -> Vec<String> {
    let hint = "two transfer requests as private.transfer_request builds them";
    let existing = existing.value("existing").unwrap_or_else(|e| invalid_parameter(&e, hint));
    let requested = requested.value("requested").unwrap_or_else(|e| invalid_parameter(&e, hint));
    ledger::differing_fields(existing, requested)
}
