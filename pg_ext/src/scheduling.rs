//! `careplane.available_slots(jsonb)`, `careplane.booking_conflicts(jsonb)`,
//! `careplane.appointment_transition(text, text, text)`: pure functions; the RPCs in
//! migrations/ read the tables and pass the data in.

use careplane_rules::json::{invalid, Fields, InputError};
use careplane_rules::scheduling::{self, parse_instant, periods_from_json, Period, Schedule};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

use crate::errors::invalid_parameter;
use crate::json_arg::JsonArg;

const HINT: &str = "input: {schedule: {time_zone, slot_minutes, weekly, exceptions, …}, busy: [{start, end}], now, from, to}";

fn instant(f: &Fields<'_>, field: &str) -> Result<scheduling::Instant, InputError> {
    f.parsed(field, "an RFC 3339 timestamp", parse_instant)?.ok_or_else(|| invalid(&f.name(field), "required"))
}

/// `{schedule, busy: [{start, end}], now, from, to}` → `[{slot_start, slot_end}]`: the
/// bookable slots in `[from, to)`, in time order.
#[pg_extern(immutable, strict, parallel_safe)]
fn available_slots(input: JsonArg) -> JsonB {
    let run = || -> Result<Value, InputError> {
        let f = Fields::new("input", input.value("input")?, &["schedule", "busy", "now", "from", "to"])?;
        let schedule = Schedule::from_json(f.require("schedule")?)?;
        let busy = periods_from_json("input.busy", f.get("busy"))?;
        let window = Period::new(instant(&f, "from")?, instant(&f, "to")?);
        let slots = scheduling::available_slots(&schedule, &busy, instant(&f, "now")?, window)?;
        Ok(Value::Array(slots.iter().map(scheduling::period_json).collect()))
    };
    JsonB(run().unwrap_or_else(|e| invalid_parameter(&e, HINT)))
}

/// `{schedule, practitioner_busy, patient_busy, now, start, end}` → the conflict reason codes
/// (`[]` when the period can be booked).
#[pg_extern(immutable, strict, parallel_safe)]
fn booking_conflicts(input: JsonArg) -> JsonB {
    let run = || -> Result<Value, InputError> {
        let f = Fields::new("input", input.value("input")?, &["schedule", "practitioner_busy", "patient_busy", "now", "start", "end"])?;
        let schedule = Schedule::from_json(f.require("schedule")?)?;
        let practitioner_busy = periods_from_json("input.practitioner_busy", f.get("practitioner_busy"))?;
        let patient_busy = periods_from_json("input.patient_busy", f.get("patient_busy"))?;
        let slot = Period::new(instant(&f, "start")?, instant(&f, "end")?);
        let conflicts = scheduling::booking_conflicts(&schedule, &practitioner_busy, &patient_busy, instant(&f, "now")?, slot);
        Ok(json!(conflicts.iter().map(|c| c.code()).collect::<Vec<_>>()))
    };
    JsonB(run().unwrap_or_else(|e| invalid_parameter(&e, HINT)))
}

/// Checks an appointment status move for an actor (`patient`, `practitioner`, `admin`).
/// `{"allowed": true}` or `{"allowed": false, "reason": "not_allowed" | "forbidden", "message"}`.
/// Unknown statuses or actors are 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn appointment_transition(from: &str, to: &str, actor: &str) -> JsonB {
    use scheduling::{status_transition, Actor, StatusError};
    let hint = "statuses: proposed, pending, booked, arrived, checked-in, fulfilled, cancelled, noshow, entered-in-error, waitlist";
    let Some(actor) = Actor::parse(actor) else {
        invalid_parameter(&invalid("actor", format!("unknown actor {actor:?}")), "actors: patient, practitioner, admin")
    };
    JsonB(match status_transition(from, to, actor) {
        Ok(()) => json!({ "allowed": true }),
        Err(e @ StatusError::Unknown(_)) => invalid_parameter(&e, hint),
        Err(e @ StatusError::NotAllowed { .. }) => json!({ "allowed": false, "reason": "not_allowed", "message": e.to_string() }),
        Err(e @ StatusError::Forbidden { .. }) => json!({ "allowed": false, "reason": "forbidden", "message": e.to_string() }),
    })
}
