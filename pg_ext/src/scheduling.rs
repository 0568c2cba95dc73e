//! Scheduling rules as SQL functions: availability, booking conflicts, who books how, the
//! appointment life cycle, and the lists and limits the tables' constraints call. Pure
//! functions; the RPCs in migrations/ read the tables and pass the data in, and raise a refused
//! verdict with `private.enforce`.

use careplane_rules::json::{invalid, Fields, InputError};
use careplane_rules::scheduling::appointment::{self, ConsultationStatus, Participation, Status};
use careplane_rules::scheduling::{self, booking, consultation, periods_from_json, required_instant, ConflictQuery, Period, Schedule};
use pgrx::prelude::*;
use crate::jsonb::Jsonb;
use serde_json::Value;

use crate::errors::invalid_parameter;
use crate::json_arg::JsonArg;

const SLOTS_HINT: &str = "input: {schedule: {time_zone, slot_minutes, weekly, exceptions, …}, busy: [{start, end}], now, from, to}";
const CONFLICTS_HINT: &str =
    "input: {schedule: {time_zone, slot_minutes, weekly, exceptions, …}, status, practitioner_busy: [{start, end}], patient_busy, now, start, end}";
const PLAN_HINT: &str = "input: {signed_in, on_behalf, may_book_for_patients, owns_calendar, practitioner_found, patient_found, \
     patient_is_practitioner, relationship, practitioner_id, patient_id, starts_at, earlier}";
const TRANSITION_HINT: &str = "input: {action: set_status|cancel|accept|decline|reschedule, from, to (set_status), \
     actor: patient|practitioner|admin, starts_at, now}";

const CONSULTATION_HINT: &str = "input: {move: join|admit|end|auto_end|no_show|write_summary, party: patient|clinician|system, \
     status, appointment_status, starts_at, ends_at, now, timing?: {waiting_room_opens_minutes, no_show_grace_minutes, auto_end_after_minutes}}";

fn status_hint() -> String {
    format!("appointment statuses: {}", appointment::statuses().join(", "))
}

/// `{schedule, busy: [{start, end}], now, from, to}` → `[{slot_start, slot_end}]`: the
/// bookable slots in `[from, to)`, in time order (none when the practitioner is inactive or
/// not accepting patients).
#[pg_extern(immutable, strict, parallel_safe)]
fn available_slots(input: JsonArg) -> Jsonb {
    let run = || -> Result<Value, InputError> {
        let f = Fields::new("input", input.value("input")?, &["schedule", "busy", "now", "from", "to"])?;
        let schedule = Schedule::from_json(f.require("schedule")?)?;
        let busy = periods_from_json("input.busy", f.get("busy"))?;
        let window = Period::new(required_instant(&f, "from")?, required_instant(&f, "to")?);
        let slots = scheduling::available_slots(&schedule, &busy, required_instant(&f, "now")?, window)?;
        Ok(Value::Array(slots.iter().map(scheduling::period_json).collect()))
    };
    Jsonb(run().unwrap_or_else(|e| invalid_parameter(&e, SLOTS_HINT)))
}

/// `{schedule, status, practitioner_busy, patient_busy, now, start, end}` → a verdict:
/// `{"ok": true}`, or `PT409` with detail `{"code": "booking_conflict", "reasons": [...]}`.
/// The patient's calendar counts only when `status` holds time (not for a proposal).
#[pg_extern(immutable, strict, parallel_safe)]
fn booking_conflicts(input: JsonArg) -> Jsonb {
    let q = input.value("input").and_then(ConflictQuery::from_json).unwrap_or_else(|e| invalid_parameter(&e, CONFLICTS_HINT));
    Jsonb(scheduling::conflicts_verdict(q.conflicts()).into_json())
}

/// The `PT409` verdict for conflicts found by the database itself (the exclusion constraints):
/// `conflict_verdict(array['patient_busy'])`.
#[pg_extern(immutable, strict, parallel_safe)]
fn conflict_verdict(reasons: Vec<Option<String>>) -> Jsonb {
    let codes = scheduling::Conflict::ALL.map(|c| c.code()).join(", ");
    let conflicts = reasons
        .iter()
        .map(|r| {
            r.as_deref()
                .and_then(scheduling::Conflict::parse)
                .ok_or_else(|| invalid("reasons", format!("unknown conflict {r:?}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| invalid_parameter(&e, &format!("conflicts: {codes}")));
    Jsonb(scheduling::conflicts_verdict(conflicts).into_json())
}

/// Who books how (`careplane_rules::scheduling::booking`): `{"ok": true, replay, status,
/// participation, opens_consultation, change}`, or `42501` / `PT404` / `22023` / `PT409`.
#[pg_extern(immutable, strict, parallel_safe)]
fn plan_booking(input: JsonArg) -> Jsonb {
    let v = input.value("input").and_then(booking::plan_verdict).unwrap_or_else(|e| invalid_parameter(&e, PLAN_HINT));
    Jsonb(v.into_json())
}

/// An appointment move: `{"ok": true, "to": status}`, or `42501 forbidden`, `PT422
/// invalid_transition | use_cancel_appointment | use_accept_appointment | not_yet_started |
/// not_reschedulable`.
#[pg_extern(immutable, strict, parallel_safe)]
fn appointment_transition(input: JsonArg) -> Jsonb {
    let v = input
        .value("input")
        .and_then(appointment::transition_verdict)
        .unwrap_or_else(|e| invalid_parameter(&e, TRANSITION_HINT));
    Jsonb(v.into_json())
}

// Lists -------------------------------------------------------------------------------------------

fn strings(v: Vec<&'static str>) -> Vec<String> {
    v.into_iter().map(str::to_owned).collect()
}

fn status(s: &str) -> Status {
    Status::parse(s).unwrap_or_else(|| invalid_parameter(&invalid("status", format!("unknown appointment status {s:?}")), &status_hint()))
}

fn participation(s: &str) -> Participation {
    Participation::parse(s).unwrap_or_else(|| {
        invalid_parameter(&invalid("participation", format!("unknown participation {s:?}")), "participation: accepted, needs-action, declined")
    })
}

/// FHIR R4 Appointment statuses, the values of `appointments.status`.
#[pg_extern(immutable, parallel_safe)]
fn appointment_statuses() -> Vec<String> {
    strings(appointment::statuses())
}

/// Does an appointment in this status hold its time (exclusion constraints, busy time)?
/// False for anything that is not a status.
#[pg_extern(immutable, strict, parallel_safe)]
fn is_active_appointment_status(status: &str) -> bool {
    Status::parse(status).is_some_and(appointment::holds_time)
}

/// Does an appointment in this status make its practitioner part of the patient's care team?
#[pg_extern(immutable, strict, parallel_safe)]
fn is_care_team_appointment_status(status: &str) -> bool {
    Status::parse(status).is_some_and(appointment::grants_care_team)
}

/// FHIR: start and end required in this status?
#[pg_extern(immutable, strict, parallel_safe)]
fn appointment_needs_period(status: &str) -> bool {
    appointment::needs_period(self::status(status))
}

/// FHIR: may an appointment in this status carry a cancellation reason?
#[pg_extern(immutable, strict, parallel_safe)]
fn appointment_allows_cancellation_reason(status: &str) -> bool {
    appointment::allows_cancellation_reason(self::status(status))
}

/// The patient's participation values (`appointments.patient_participation`).
#[pg_extern(immutable, parallel_safe)]
fn participation_statuses() -> Vec<String> {
    strings(appointment::participations())
}

/// Does this appointment show that the patient chose its practitioner?
#[pg_extern(immutable, strict, parallel_safe)]
fn establishes_relationship(status: &str, participation: &str) -> bool {
    appointment::establishes_relationship(self::status(status), self::participation(participation))
}

/// May the outbox email or text the patient about an appointment with this participation?
#[pg_extern(immutable, strict, parallel_safe)]
fn may_contact_patient(participation: &str) -> bool {
    appointment::may_contact_patient(self::participation(participation))
}

/// The values of `consultations.status`.
#[pg_extern(immutable, parallel_safe)]
fn consultation_statuses() -> Vec<String> {
    strings(appointment::consultation_statuses())
}

/// The consultation's status once its appointment moved to `appointment_status`.
#[pg_extern(immutable, strict, parallel_safe)]
fn consultation_status_after(appointment_status: &str, consultation_status: &str) -> &'static str {
    let c = ConsultationStatus::parse(consultation_status).unwrap_or_else(|| {
        invalid_parameter(
            &invalid("consultation_status", format!("unknown consultation status {consultation_status:?}")),
            &format!("consultation statuses: {}", appointment::consultation_statuses().join(", ")),
        )
    });
    appointment::consultation_status_after(status(appointment_status), c).code()
}

/// A consultation move (`careplane_rules::scheduling::consultation`): `{"ok": true, "to",
/// "appointment_to"?, "starts", "ends", "changed"}`, or `42501 forbidden`, `PT422
/// invalid_transition | appointment_not_active | waiting_room_not_open | waiting_room_closed |
/// no_show_too_early | not_overdue | not_started`.
#[pg_extern(immutable, strict, parallel_safe)]
fn consultation_move(input: JsonArg) -> Jsonb {
    let v = input.value("input").and_then(consultation::move_verdict).unwrap_or_else(|e| invalid_parameter(&e, CONSULTATION_HINT));
    Jsonb(v.into_json())
}

/// Is the call of a consultation in this status open (signaling, TURN credentials)? False for
/// anything that is not a consultation status.
#[pg_extern(immutable, strict, parallel_safe)]
fn consultation_call_is_open(status: &str) -> bool {
    ConsultationStatus::parse(status).is_some_and(consultation::call_is_open)
}

/// The value of a consultation timing setting: `value` (the text of the custom setting
/// `careplane.<name>`, null or empty when unset) or the rule's default; 22023 for an unknown
/// name or a value outside the setting's bounds.
#[pg_extern(immutable, parallel_safe)]
fn consultation_setting(name: Option<&str>, value: Option<&str>) -> i64 {
    let names: Vec<&str> = consultation::SETTINGS.iter().map(|s| s.name).collect();
    let name = name.unwrap_or_else(|| invalid_parameter(&invalid("name", "required"), &names.join(", ")));
    consultation::setting(name, value).unwrap_or_else(|e| invalid_parameter(&e, &format!("settings: {} (see docs/consultations.md)", names.join(", "))))
}

/// The values of `availability_exceptions.kind`.
#[pg_extern(immutable, parallel_safe)]
fn availability_exception_kinds() -> Vec<String> {
    scheduling::ExceptionKind::ALL.iter().map(|k| k.code().to_owned()).collect()
}

// Limits ------------------------------------------------------------------------------------------

fn setting(name: &str) -> scheduling::Setting {
    scheduling::setting(name).unwrap_or_else(|e| invalid_parameter(&e, "see careplane.scheduling_limits()"))
}

/// Is `value` within the bounds of the scheduling setting `setting` (a column of
/// `public.practitioners`: slot_minutes, slot_alignment_minutes, …)?
#[pg_extern(immutable, strict, parallel_safe)]
fn is_valid_schedule_setting(setting: &str, value: i64) -> bool {
    self::setting(setting).admits(value)
}

/// The default of a scheduling setting (null: none).
#[pg_extern(immutable, strict, parallel_safe)]
fn schedule_setting_default(setting: &str) -> Option<i32> {
    self::setting(setting).default.and_then(|d| i32::try_from(d).ok())
}

/// Minutes either side of a slot (or a window) in which the RPCs read busy time.
#[pg_extern(immutable, parallel_safe)]
fn busy_window_minutes() -> i32 {
    i32::try_from(scheduling::BUSY_WINDOW_MINUTES).expect("the busy window fits an i32")
}

/// Every scheduling limit by name: `{settings: {name: {min, max, default}}, busy_window_minutes,
/// max_window_days}`.
#[pg_extern(immutable, parallel_safe)]
fn scheduling_limits() -> Jsonb {
    Jsonb(scheduling::limits_json())
}

/// An IANA time zone the rules can compute with (`UTC`, `Africa/Lagos`); not an abbreviation,
/// a POSIX rule or a zone-directory path such as `posix/Africa/Lagos`.
#[pg_extern(immutable, strict, parallel_safe)]
fn is_valid_time_zone(name: &str) -> bool {
    scheduling::is_valid_time_zone(name)
}
