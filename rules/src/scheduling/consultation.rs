//! A video consultation's life: `scheduled → waiting → in_progress → ended`.
//!
//! - The **patient** joins the waiting room (`scheduled → waiting`) from
//!   `waiting_room_opens_minutes` before the slot's start until the slot's end; joining marks the
//!   appointment `arrived`.
//! - The **clinician** admits them (`waiting → in_progress`); the appointment is `checked-in` and
//!   the consultation's start is recorded.
//! - **Either participant** ends it (`in_progress → ended`), or the **system** ends it
//!   `auto_end_after_minutes` after the slot's end; the appointment is `fulfilled`.
//! - The **clinician** marks a no-show once `no_show_grace_minutes` have passed since the start
//!   while the patient never joined; the appointment is `noshow` and the consultation stays
//!   `scheduled`, closed for good because its appointment is no longer active.
//! - The clinician's **summary** is written by the clinician only, once the consultation has
//!   started.
//!
//! Repeating the move a consultation already made (a reloaded page joining again, both sides
//! hanging up at once) is not an error: the verdict says `changed: false` and nothing moves.
//! Every refusal has a reason code (docs/consultations.md).

use serde_json::{json, Map, Value};

use super::appointment::{in_life_cycle, ConsultationStatus, Status};
use super::{Instant, Period};
use crate::json::{invalid, Fields, InputError};
use crate::settings::Setting;
use crate::verdict::{Refusal, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The patient enters the waiting room.
    Join,
    /// The clinician admits the patient: the call starts.
    Admit,
    /// A participant hangs up for good.
    End,
    /// The system ends a call that outlived its slot.
    AutoEnd,
    /// The clinician records that the patient never came.
    NoShow,
    /// The clinician writes the summary.
    WriteSummary,
}

impl Move {
    pub const ALL: [Move; 6] = [Move::Join, Move::Admit, Move::End, Move::AutoEnd, Move::NoShow, Move::WriteSummary];

    pub fn code(self) -> &'static str {
        match self {
            Move::Join => "join",
            Move::Admit => "admit",
            Move::End => "end",
            Move::AutoEnd => "auto_end",
            Move::NoShow => "no_show",
            Move::WriteSummary => "write_summary",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == s)
    }
}

/// Who asks: one of the two participants, or the companion's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Patient,
    Clinician,
    System,
}

impl Party {
    pub const ALL: [Party; 3] = [Party::Patient, Party::Clinician, Party::System];

    pub fn code(self) -> &'static str {
        match self {
            Party::Patient => "patient",
            Party::Clinician => "clinician",
            Party::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == s)
    }
}

/// The clinic's timing, in minutes (`careplane.<name>` overrides the default; see [`SETTINGS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub waiting_room_opens_minutes: i64,
    pub no_show_grace_minutes: i64,
    pub auto_end_after_minutes: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { waiting_room_opens_minutes: 10, no_show_grace_minutes: 15, auto_end_after_minutes: 30 }
    }
}

pub const SETTINGS: [Setting; 3] = [
    Setting {
        name: "waiting_room_opens_minutes",
        default: 10,
        min: 0,
        max: 120,
        doc: "the patient may enter the waiting room this many minutes before the slot starts",
    },
    Setting {
        name: "no_show_grace_minutes",
        default: 15,
        min: 0,
        max: 240,
        doc: "the clinician may mark a no-show once the slot started this many minutes ago and the patient never joined",
    },
    Setting {
        name: "auto_end_after_minutes",
        default: 30,
        min: 0,
        max: 720,
        doc: "a call still running this many minutes after the slot's end is ended by the companion's sweep",
    },
];

/// What a move needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub status: ConsultationStatus,
    pub appointment: Status,
    pub slot: Period,
    pub now: Instant,
}

/// What a move does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub to: ConsultationStatus,
    /// The appointment's new status, when it moves.
    pub appointment_to: Option<Status>,
    /// Record the start (`started_at = now`).
    pub starts: bool,
    /// Record the end (`ended_at = now`).
    pub ends: bool,
    /// False when the consultation already was where the move leads.
    pub changed: bool,
}

impl Outcome {
    fn unchanged(status: ConsultationStatus) -> Self {
        Outcome { to: status, appointment_to: None, starts: false, ends: false, changed: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsultationError {
    /// `42501 forbidden`: the move exists, but not for this party.
    #[error("{} may not {} a consultation", party_phrase(*party), move_phrase(*mv))]
    Forbidden { party: Party, mv: Move },
    /// `PT422 invalid_transition`.
    #[error("a consultation that is {} cannot {}", from.code(), move_phrase(*mv))]
    NotAllowed { from: ConsultationStatus, mv: Move },
    /// `PT422 appointment_not_active`: cancelled, no-show, fulfilled, or not yet booked.
    #[error("its appointment is {appointment}, so the consultation is closed")]
    AppointmentNotActive { appointment: Status },
    /// `PT422 waiting_room_not_open`.
    #[error("the waiting room opens at {opens_at}")]
    NotOpenYet { opens_at: Instant },
    /// `PT422 waiting_room_closed`: the slot is over.
    #[error("the waiting room closed at {closed_at}, when the slot ended")]
    Closed { closed_at: Instant },
    /// `PT422 no_show_too_early`.
    #[error("a no-show can be marked from {allowed_from}")]
    NoShowTooEarly { allowed_from: Instant },
    /// `PT422 not_overdue`: the sweep found a call that may still run.
    #[error("the call may run until {until}")]
    NotOverdue { until: Instant },
    /// `PT422 patient_arrived`: a no-show for a patient the appointment shows as present.
    #[error("the patient has arrived (the appointment is {appointment})")]
    PatientArrived { appointment: Status },
    /// `PT422 not_started`: nothing to summarise yet.
    #[error("the summary can be written once the consultation has started")]
    NotStarted,
}

fn party_phrase(p: Party) -> &'static str {
    match p {
        Party::Patient => "the patient",
        Party::Clinician => "the clinician",
        Party::System => "the system",
    }
}

fn move_phrase(m: Move) -> &'static str {
    match m {
        Move::Join => "join the waiting room of",
        Move::Admit => "admit the patient to",
        Move::End => "end",
        Move::AutoEnd => "be ended by the sweep as",
        Move::NoShow => "mark a no-show on",
        Move::WriteSummary => "write the summary of",
    }
}

impl Refusal for ConsultationError {
    fn sqlstate(&self) -> &'static str {
        match self {
            ConsultationError::Forbidden { .. } => "42501",
            _ => "PT422",
        }
    }
    fn code(&self) -> &'static str {
        match self {
            ConsultationError::Forbidden { .. } => "forbidden",
            ConsultationError::NotAllowed { .. } => "invalid_transition",
            ConsultationError::AppointmentNotActive { .. } => "appointment_not_active",
            ConsultationError::NotOpenYet { .. } => "waiting_room_not_open",
            ConsultationError::Closed { .. } => "waiting_room_closed",
            ConsultationError::NoShowTooEarly { .. } => "no_show_too_early",
            ConsultationError::NotOverdue { .. } => "not_overdue",
            ConsultationError::PatientArrived { .. } => "patient_arrived",
            ConsultationError::NotStarted => "not_started",
        }
    }
    fn detail(&self) -> Map<String, Value> {
        let v = match self {
            ConsultationError::Forbidden { party, mv } => json!({ "party": party.code(), "move": mv.code() }),
            ConsultationError::NotAllowed { from, mv } => json!({ "from": from.code(), "move": mv.code() }),
            ConsultationError::AppointmentNotActive { appointment } => json!({ "appointment_status": appointment.code() }),
            ConsultationError::NotOpenYet { opens_at } => json!({ "opens_at": opens_at.to_rfc3339() }),
            ConsultationError::Closed { closed_at } => json!({ "closed_at": closed_at.to_rfc3339() }),
            ConsultationError::NoShowTooEarly { allowed_from } => json!({ "allowed_from": allowed_from.to_rfc3339() }),
            ConsultationError::NotOverdue { until } => json!({ "until": until.to_rfc3339() }),
            ConsultationError::PatientArrived { appointment } => json!({ "appointment_status": appointment.code() }),
            ConsultationError::NotStarted => json!({}),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Which party makes which move.
fn party_may(party: Party, mv: Move) -> bool {
    match mv {
        Move::Join => party == Party::Patient,
        Move::Admit | Move::NoShow | Move::WriteSummary => party == Party::Clinician,
        Move::End => matches!(party, Party::Patient | Party::Clinician),
        Move::AutoEnd => party == Party::System,
    }
}

/// Is the appointment one a call can happen for? Booked, or already under way.
fn appointment_active(a: Status) -> bool {
    matches!(a, Status::Booked | Status::Arrived | Status::CheckedIn)
}

/// The appointment's move to `to`, when its life cycle has it (a consultation never pushes
/// its appointment somewhere the appointment rules would refuse).
fn appointment_move(from: Status, to: Status) -> Option<Status> {
    (from != to && in_life_cycle(from, to)).then_some(to)
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// The decision on one move: what changes, or why not.
///
/// Checks, in order: the party may make the move (`forbidden`); the move from this status
/// exists (`invalid_transition`; repeating the last move is a no-op); the appointment is still
/// active (`appointment_not_active`; the summary may still be written after the call); and the
/// clock (`waiting_room_not_open`, `waiting_room_closed`, `no_show_too_early`, `not_overdue`).
pub fn decide(mv: Move, party: Party, facts: Facts, timing: Timing) -> Result<Outcome, ConsultationError> {
    use ConsultationStatus::*;
    if !party_may(party, mv) {
        return Err(ConsultationError::Forbidden { party, mv });
    }
    let Facts { status, appointment, slot, now } = facts;
    let not_allowed = || ConsultationError::NotAllowed { from: status, mv };
    if mv == Move::WriteSummary {
        return match status {
            InProgress | Ended => Ok(Outcome::unchanged(status)),
            Scheduled | Waiting => Err(ConsultationError::NotStarted),
        };
    }
    // Repeats: joining again while waiting or in the call, admitting again, ending again.
    let repeat = match mv {
        Move::Join => matches!(status, Waiting | InProgress),
        Move::Admit => status == InProgress,
        Move::End | Move::AutoEnd => status == Ended,
        Move::NoShow => appointment == Status::Noshow && status == Scheduled,
        Move::WriteSummary => false,
    };
    if repeat {
        return Ok(Outcome::unchanged(status));
    }
    let from_ok = match mv {
        Move::Join | Move::NoShow => status == Scheduled,
        Move::Admit => status == Waiting,
        Move::End | Move::AutoEnd => status == InProgress,
        Move::WriteSummary => false,
    };
    if !from_ok {
        return Err(not_allowed());
    }
    if !appointment_active(appointment) {
        return Err(ConsultationError::AppointmentNotActive { appointment });
    }
    match mv {
        Move::Join => {
            let opens_at = slot.start - minutes(timing.waiting_room_opens_minutes);
            if now < opens_at {
                return Err(ConsultationError::NotOpenYet { opens_at });
            }
            if now >= slot.end {
                return Err(ConsultationError::Closed { closed_at: slot.end });
            }
            let appointment_to = if appointment == Status::Booked { appointment_move(appointment, Status::Arrived) } else { None };
            Ok(Outcome { to: Waiting, appointment_to, starts: false, ends: false, changed: true })
        }
        Move::Admit => {
            let appointment_to = appointment_move(appointment, Status::CheckedIn);
            Ok(Outcome { to: InProgress, appointment_to, starts: true, ends: false, changed: true })
        }
        Move::End | Move::AutoEnd => {
            if mv == Move::AutoEnd {
                let until = slot.end + minutes(timing.auto_end_after_minutes);
                if now < until {
                    return Err(ConsultationError::NotOverdue { until });
                }
            }
            let appointment_to = appointment_move(appointment, Status::Fulfilled);
            Ok(Outcome { to: Ended, appointment_to, starts: false, ends: true, changed: true })
        }
        Move::NoShow => {
            if appointment != Status::Booked {
                return Err(ConsultationError::PatientArrived { appointment });
            }
            let allowed_from = slot.start + minutes(timing.no_show_grace_minutes);
            if now < allowed_from {
                return Err(ConsultationError::NoShowTooEarly { allowed_from });
            }
            Ok(Outcome { to: Scheduled, appointment_to: appointment_move(appointment, Status::Noshow), starts: false, ends: false, changed: true })
        }
        Move::WriteSummary => unreachable!("answered above"),
    }
}

/// Is the call open: may the participants signal (WebRTC offers, answers, candidates on the
/// `consultation:<id>` topic) and get TURN credentials? While the patient waits and during the
/// call; not before the waiting room, not after the end.
pub fn call_is_open(status: ConsultationStatus) -> bool {
    matches!(status, ConsultationStatus::Waiting | ConsultationStatus::InProgress)
}

pub const FIELDS: &[&str] = &["move", "party", "status", "appointment_status", "starts_at", "ends_at", "now", "timing"];
const TIMING_FIELDS: &[&str] = &["waiting_room_opens_minutes", "no_show_grace_minutes", "auto_end_after_minutes"];

fn read_timing(value: Option<&Value>) -> Result<Timing, InputError> {
    let mut timing = Timing::default();
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(timing);
    };
    let f = Fields::new("input.timing", value, TIMING_FIELDS)?;
    for s in SETTINGS {
        if let Some(n) = f.whole(s.name, s.min, s.max)? {
            match s.name {
                "waiting_room_opens_minutes" => timing.waiting_room_opens_minutes = n,
                "no_show_grace_minutes" => timing.no_show_grace_minutes = n,
                _ => timing.auto_end_after_minutes = n,
            }
        }
    }
    Ok(timing)
}

/// `careplane.consultation_move(jsonb)`: `{move, party, status, appointment_status, starts_at,
/// ends_at, now, timing?: {waiting_room_opens_minutes, no_show_grace_minutes,
/// auto_end_after_minutes}}` → `{"ok": true, "to", "appointment_to"?, "starts", "ends",
/// "changed"}` or the refusal.
pub fn move_verdict(value: &Value) -> Result<Verdict, InputError> {
    let f = Fields::new("input", value, FIELDS)?;
    let names = |all: &[&'static str]| all.join(", ");
    let mv = f
        .parsed("move", &names(&Move::ALL.map(Move::code)), Move::parse)?
        .ok_or_else(|| invalid("input.move", "required"))?;
    let party = f
        .parsed("party", &names(&Party::ALL.map(Party::code)), Party::parse)?
        .ok_or_else(|| invalid("input.party", "required"))?;
    let status = f
        .parsed("status", &names(&ConsultationStatus::ALL.map(ConsultationStatus::code)), ConsultationStatus::parse)?
        .ok_or_else(|| invalid("input.status", "required"))?;
    let appointment = f
        .parsed("appointment_status", "an appointment status", Status::parse)?
        .ok_or_else(|| invalid("input.appointment_status", "required"))?;
    let start = super::required_instant(&f, "starts_at")?;
    let end = super::required_instant(&f, "ends_at")?;
    if end <= start {
        return Err(invalid("input.ends_at", "must be after starts_at"));
    }
    let now = super::required_instant(&f, "now")?;
    let timing = read_timing(value.get("timing"))?;
    let facts = Facts { status, appointment, slot: Period::new(start, end), now };
    Ok(match decide(mv, party, facts, timing) {
        Ok(o) => {
            let mut payload = json!({ "to": o.to.code(), "starts": o.starts, "ends": o.ends, "changed": o.changed });
            if let Some(a) = o.appointment_to {
                payload["appointment_to"] = json!(a.code());
            }
            Verdict::allow_with(payload)
        }
        Err(e) => Verdict::refuse(&e),
    })
}

/// The value of consultation setting `name` (see [`crate::settings::value_of`]).
pub fn setting(name: &str, value: Option<&str>) -> Result<i64, InputError> {
    crate::settings::value_of(&SETTINGS, "consultation", name, value)
}

#[cfg(test)]
mod tests;
