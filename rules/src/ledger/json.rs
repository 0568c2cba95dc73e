//! The ledger's JSON: what the SQL writer passes in and what it gets back.
//!
//! - [`request_verdict`] (`careplane.ledger_request`): a transfer request as the entry points
//!   build it → `{"ok": true, "request": <canonical request>, "account_ids": [sorted]}`.
//! - [`apply_verdict`] (`careplane.ledger_apply`): `{request, accounts, pending,
//!   pending_resolution, existing, reversed, reversed_by, now}` → `{"ok": true, "outcome":
//!   "exists"}` or `{"ok": true, "outcome": "created", "transfer", "entries", "accounts"}`.
//!
//! Refusals are [`Verdict`]s (`LG0xx`); malformed input is an [`InputError`] naming the field
//! (22023). Amounts and balances are read with [`Fields::whole`]: integers, never `f64`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{json, Value};

use super::transfer::{decide, legs_json, Body, Instant, NewTransfer, Outcome, Request, Situation, Stored};
use super::{Account, Direction, Flags, LedgerError, Leg, TransferType, VoidReason};
use crate::currency::Currency;
use crate::json::{invalid, Fields, InputError};
use crate::verdict::Verdict;

const REQUEST_FIELDS: &[&str] =
    &["id", "type", "kind", "legs", "description", "reverses", "pending_id", "amount", "timeout_seconds", "void_reason"];
const STORED_FIELDS: &[&str] =
    &["id", "kind", "description", "reverses", "created_at", "type", "pending_id", "amount", "timeout_at", "void_reason", "legs"];
const ACCOUNT_FIELDS: &[&str] =
    &["id", "currency", "flags", "debits_posted", "credits_posted", "debits_pending", "credits_pending"];
const INPUT_FIELDS: &[&str] =
    &["request", "accounts", "pending", "pending_resolution", "existing", "reversed", "reversed_by", "now"];

/// A UUID in its canonical text form (lower case, hyphenated), as Postgres prints one.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let ok = s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == b'-' } else { c.is_ascii_hexdigit() });
    ok.then(|| s.to_ascii_lowercase())
}

/// An RFC 3339 timestamp, as Postgres writes a `timestamptz` into JSON — including an offset
/// with seconds (`+00:13:35`), which Postgres prints for historical local mean times and
/// RFC 3339 does not have.
pub fn parse_instant(s: &str) -> Option<Instant> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let split = s.len().checked_sub(9)?;
    let (head, offset) = (s.get(..split)?, s.get(split..)?);
    let sign = match offset.as_bytes() {
        [b'+', _, _, b':', _, _, b':', _, _] => 1,
        [b'-', _, _, b':', _, _, b':', _, _] => -1,
        _ => return None,
    };
    let part = |r: std::ops::Range<usize>| offset.get(r).filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok();
    let seconds = sign * (part(1..3)? * 3600 + part(4..6)? * 60 + part(7..9)?);
    let local = NaiveDateTime::parse_from_str(head, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    local.and_utc().checked_sub_signed(TimeDelta::seconds(seconds))
}

pub fn instant_json(t: Instant) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn required<T>(f: &Fields<'_>, field: &str, value: Option<T>) -> Result<T, InputError> {
    value.ok_or_else(|| invalid(&f.name(field), "required"))
}

fn uuid(f: &Fields<'_>, field: &str) -> Result<Option<String>, InputError> {
    f.parsed(field, "a UUID", canonical_uuid)
}

fn instant(f: &Fields<'_>, field: &str) -> Result<Option<Instant>, InputError> {
    f.parsed(field, "an RFC 3339 timestamp", parse_instant)
}

/// A field that must be absent for this type of request.
fn absent(f: &Fields<'_>, field: &str, transfer_type: TransferType) -> Result<(), InputError> {
    match f.get(field) {
        Some(_) => Err(invalid(&f.name(field), format!("not taken by a {} transfer", transfer_type.as_str()))),
        None => Ok(()),
    }
}

fn parse_legs(values: &[Value], prefix: &str) -> Result<Vec<Leg>, InputError> {
    let mut legs = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let l = Fields::new(format!("{prefix}[{i}]"), v, &["account_id", "direction", "amount", "currency"])?;
        let currency = required(&l, "currency", l.text("currency")?)?;
        Currency::parse(currency).map_err(|e| invalid(&l.name("currency"), e.to_string()))?;
        legs.push(Leg {
            account_id: required(&l, "account_id", uuid(&l, "account_id")?)?,
            direction: required(&l, "direction", l.parsed("direction", &Direction::expected(), Direction::parse)?)?,
            amount: required(&l, "amount", l.whole("amount", i64::MIN, i64::MAX)?)?,
            currency: currency.to_owned(),
        });
    }
    Ok(legs)
}

/// The legs of a transfer that carries them: an array, else `LG011`.
fn request_legs(f: &Fields<'_>) -> Result<Result<Vec<Leg>, LedgerError>, InputError> {
    match f.get("legs").and_then(Value::as_array) {
        Some(values) => Ok(Ok(parse_legs(values, &f.name("legs"))?)),
        None => Ok(Err(LedgerError::InvalidLegs("legs must be an array of {account_id, direction, amount, currency}"))),
    }
}

/// Reads a transfer request (`prefix` names it in errors). Legs that are not an array are the
/// ledger's `LG011`; everything else malformed is an [`InputError`].
pub fn parse_request(value: &Value, prefix: &str) -> Result<Result<Request, LedgerError>, InputError> {
    let f = Fields::new(prefix, value, REQUEST_FIELDS)?;
    let id = required(&f, "id", uuid(&f, "id")?)?;
    let transfer_type = required(&f, "type", f.parsed("type", &TransferType::expected(), TransferType::parse)?)?;
    let description = f.text("description")?.map(str::to_owned);
    let kind = || -> Result<String, InputError> { Ok(required(&f, "kind", f.text("kind")?)?.to_owned()) };
    let only = |fields: &[&str]| -> Result<(), InputError> {
        for field in REQUEST_FIELDS.iter().filter(|k| !["id", "type", "description"].contains(k) && !fields.contains(k)) {
            absent(&f, field, transfer_type)?;
        }
        Ok(())
    };
    let body = match transfer_type {
        TransferType::Posted => {
            only(&["kind", "legs", "reverses"])?;
            let kind = kind()?;
            let reverses = uuid(&f, "reverses")?;
            match request_legs(&f)? {
                Ok(legs) => Body::Post { kind, legs, reverses },
                Err(e) => return Ok(Err(e)),
            }
        }
        TransferType::Pending => {
            only(&["kind", "legs", "timeout_seconds"])?;
            let kind = kind()?;
            // 0 (or none): the reservation never times out.
            let timeout_seconds = f.whole("timeout_seconds", 0, i64::from(i32::MAX))?.filter(|s| *s > 0);
            match request_legs(&f)? {
                Ok(legs) => Body::Reserve { kind, legs, timeout_seconds },
                Err(e) => return Ok(Err(e)),
            }
        }
        TransferType::PostPending => {
            only(&["pending_id", "amount"])?;
            Body::PostPending {
                pending_id: required(&f, "pending_id", uuid(&f, "pending_id")?)?,
                amount: f.whole("amount", i64::MIN, i64::MAX)?,
            }
        }
        TransferType::VoidPending => {
            only(&["pending_id", "void_reason"])?;
            Body::VoidPending {
                pending_id: required(&f, "pending_id", uuid(&f, "pending_id")?)?,
                reason: f.parsed("void_reason", &VoidReason::expected(), VoidReason::parse)?.unwrap_or(VoidReason::Voided),
            }
        }
    };
    Ok(Ok(Request { id, description, body }))
}

/// The request as [`parse_request`] reads it back (fields that do not apply are left out).
pub fn request_json(r: &Request) -> Value {
    let mut v = json!({"id": r.id, "type": r.transfer_type().as_str()});
    if let Some(d) = &r.description {
        v["description"] = d.as_str().into();
    }
    match &r.body {
        Body::Post { kind, legs, reverses } => {
            v["kind"] = kind.as_str().into();
            v["legs"] = legs_json(legs);
            if let Some(x) = reverses {
                v["reverses"] = x.as_str().into();
            }
        }
        Body::Reserve { kind, legs, timeout_seconds } => {
            v["kind"] = kind.as_str().into();
            v["legs"] = legs_json(legs);
            if let Some(s) = timeout_seconds {
                v["timeout_seconds"] = (*s).into();
            }
        }
        Body::PostPending { pending_id, amount } => {
            v["pending_id"] = pending_id.as_str().into();
            if let Some(a) = amount {
                v["amount"] = (*a).into();
            }
        }
        Body::VoidPending { pending_id, reason } => {
            v["pending_id"] = pending_id.as_str().into();
            v["void_reason"] = reason.as_str().into();
        }
    }
    v
}

fn parse_stored(value: &Value, prefix: &str) -> Result<Stored, InputError> {
    let f = Fields::new(prefix, value, STORED_FIELDS)?;
    Ok(Stored {
        id: required(&f, "id", uuid(&f, "id")?)?,
        transfer_type: required(&f, "type", f.parsed("type", &TransferType::expected(), TransferType::parse)?)?,
        kind: required(&f, "kind", f.text("kind")?)?.to_owned(),
        description: f.text("description")?.map(str::to_owned),
        reverses: uuid(&f, "reverses")?,
        pending_id: uuid(&f, "pending_id")?,
        amount: f.whole("amount", 1, i64::MAX)?,
        created_at: required(&f, "created_at", instant(&f, "created_at")?)?,
        timeout_at: instant(&f, "timeout_at")?,
        void_reason: f.parsed("void_reason", &VoidReason::expected(), VoidReason::parse)?,
        legs: parse_legs(f.array("legs")?, &f.name("legs"))?,
    })
}

fn parse_accounts(f: &Fields<'_>) -> Result<BTreeMap<String, Account>, InputError> {
    let mut out = BTreeMap::new();
    for (i, v) in f.array("accounts")?.iter().enumerate() {
        let a = Fields::new(format!("{}[{i}]", f.name("accounts")), v, ACCOUNT_FIELDS)?;
        let balance = |field: &str| -> Result<i64, InputError> { required(&a, field, a.whole(field, 0, i64::MAX)?) };
        let account = Account {
            id: required(&a, "id", uuid(&a, "id")?)?,
            currency: required(&a, "currency", a.text("currency")?)?.to_owned(),
            flags: required(&a, "flags", a.parsed("flags", &Flags::expected(), Flags::parse)?)?,
            debits_posted: balance("debits_posted")?,
            credits_posted: balance("credits_posted")?,
            debits_pending: balance("debits_pending")?,
            credits_pending: balance("credits_pending")?,
        };
        out.insert(account.id.clone(), account);
    }
    Ok(out)
}

pub fn account_json(a: &Account) -> Value {
    json!({"id": a.id, "debits_posted": a.debits_posted, "credits_posted": a.credits_posted,
           "debits_pending": a.debits_pending, "credits_pending": a.credits_pending})
}

fn transfer_json(t: &NewTransfer) -> Value {
    json!({
        "id": t.id, "type": t.transfer_type.as_str(), "kind": t.kind, "description": t.description,
        "reverses": t.reverses, "pending_id": t.pending_id, "amount": t.amount,
        "timeout_at": t.timeout_at.map(instant_json), "void_reason": t.void_reason.map(VoidReason::as_str),
    })
}

/// `careplane.ledger_request`: the request read, or its refusal.
pub fn request_verdict(value: &Value) -> Result<Verdict, InputError> {
    Ok(match parse_request(value, "request")? {
        Ok(r) => Verdict::allow_with(json!({"request": request_json(&r), "account_ids": r.account_ids()})),
        Err(e) => Verdict::refuse(&e),
    })
}

/// `careplane.ledger_apply`: the decision for a request, given what the writer read.
pub fn apply_verdict(value: &Value) -> Result<Verdict, InputError> {
    let f = Fields::new("input", value, INPUT_FIELDS)?;
    let request = match parse_request(f.require("request")?, &f.name("request"))? {
        Ok(r) => r,
        Err(e) => return Ok(Verdict::refuse(&e)),
    };
    let stored = |field: &str| f.get(field).map(|v| parse_stored(v, &f.name(field))).transpose();
    let situation = Situation {
        accounts: parse_accounts(&f)?,
        pending: stored("pending")?,
        pending_resolution: stored("pending_resolution")?,
        existing: stored("existing")?,
        reversed: stored("reversed")?,
        reversed_by: stored("reversed_by")?,
        now: required(&f, "now", instant(&f, "now")?)?,
    };
    Ok(match decide(&request, &situation) {
        Ok(Outcome::Exists) => Verdict::allow_with(json!({"outcome": "exists"})),
        Ok(Outcome::Created { transfer, entries, accounts }) => Verdict::allow_with(json!({
            "outcome": "created",
            "transfer": transfer_json(&transfer),
            "entries": legs_json(&entries),
            "accounts": accounts.values().map(account_json).collect::<Vec<_>>(),
        })),
        Err(e) => Verdict::refuse(&e),
    })
}
