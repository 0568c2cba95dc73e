//! The appointment life cycle: FHIR R4 Appointment statuses, what each status means (holds
//! time, opens the patient's records to the practitioner, …), who may move an appointment
//! from one status to another, and the consultation that follows it.
//!
//! Every list here is the only one: the table constraints, the exclusion constraints and the
//! access helpers in migrations/ call the extension functions that expose them.

use serde_json::{json, Map, Value};

use super::Instant;
use crate::json::{invalid, Fields, InputError};
use crate::verdict::{Refusal, Verdict};

/// FHIR R4 `Appointment.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Proposed,
    Pending,
    Booked,
    Arrived,
    CheckedIn,
    Fulfilled,
    Cancelled,
    Noshow,
    EnteredInError,
    Waitlist,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Proposed,
        Status::Pending,
        Status::Booked,
        Status::Arrived,
        Status::CheckedIn,
        Status::Fulfilled,
        Status::Cancelled,
        Status::Noshow,
        Status::EnteredInError,
        Status::Waitlist,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Pending => "pending",
            Status::Booked => "booked",
            Status::Arrived => "arrived",
            Status::CheckedIn => "checked-in",
            Status::Fulfilled => "fulfilled",
            Status::Cancelled => "cancelled",
            Status::Noshow => "noshow",
            Status::EnteredInError => "entered-in-error",
            Status::Waitlist => "waitlist",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.code() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

pub fn statuses() -> Vec<&'static str> {
    Status::ALL.iter().map(|s| s.code()).collect()
}

/// Does an appointment in this status hold its time (the exclusion constraints on practitioner
/// and patient time, and the busy time the conflict rules read)? A proposal or a waitlist entry
/// holds none; a fulfilled visit still does (it happened then).
pub fn holds_time(s: Status) -> bool {
    matches!(s, Status::Pending | Status::Booked | Status::Arrived | Status::CheckedIn | Status::Fulfilled)
}

/// Does an appointment in this status make its practitioner part of the patient's care team
/// (read the patient's profile)? From booked onward, a no-show included; never a proposal the
/// patient has not accepted.
pub fn grants_care_team(s: Status) -> bool {
    matches!(s, Status::Booked | Status::Arrived | Status::CheckedIn | Status::Fulfilled | Status::Noshow)
}

/// FHIR: start and end are required unless proposed, cancelled or waitlist.
pub fn needs_period(s: Status) -> bool {
    !matches!(s, Status::Proposed | Status::Cancelled | Status::Waitlist)
}

/// FHIR: a cancellation reason only when cancelled or noshow.
pub fn allows_cancellation_reason(s: Status) -> bool {
    matches!(s, Status::Cancelled | Status::Noshow)
}

/// FHIR invariants on one appointment.
pub fn check_invariants(status: Status, has_period: bool, has_cancellation_reason: bool) -> Result<(), String> {
    if !has_period && needs_period(status) {
        return Err(format!("a {status} appointment needs a start and an end"));
    }
    if has_cancellation_reason && !allows_cancellation_reason(status) {
        return Err("a cancellation reason is only for a cancelled or no-show appointment".to_owned());
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The patient's participation (FHIR Appointment.participant.status, for the patient)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Participation {
    /// The patient booked it, accepted it, or it was booked by someone entitled to (an admin,
    /// or a practitioner the patient has chosen before).
    Accepted,
    /// A practitioner's proposal the patient has not answered.
    NeedsAction,
    /// A proposal the patient declined.
    Declined,
}

impl Participation {
    pub const ALL: [Participation; 3] = [Participation::Accepted, Participation::NeedsAction, Participation::Declined];

    pub fn code(self) -> &'static str {
        match self {
            Participation::Accepted => "accepted",
            Participation::NeedsAction => "needs-action",
            Participation::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.code() == s)
    }
}

pub fn participations() -> Vec<&'static str> {
    Participation::ALL.iter().map(|p| p.code()).collect()
}

/// Does this appointment show that the patient chose this practitioner, so that the
/// practitioner may book follow-ups straight into the patient's calendar? An appointment the
/// patient accepted (booked themselves, or accepted as a proposal), unless it was entered in
/// error or is still only proposed.
pub fn establishes_relationship(status: Status, participation: Participation) -> bool {
    participation == Participation::Accepted && !matches!(status, Status::Proposed | Status::EnteredInError)
}

/// May the outbox email or text the patient about this appointment? Only once they accepted
/// it: a proposal reaches the patient in the app, never through their email or phone.
pub fn may_contact_patient(participation: Participation) -> bool {
    participation == Participation::Accepted
}

// ------------------------------------------------------------------------------------------------
// Consultations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsultationStatus {
    Scheduled,
    Waiting,
    InProgress,
    Ended,
}

impl ConsultationStatus {
    pub const ALL: [ConsultationStatus; 4] =
        [ConsultationStatus::Scheduled, ConsultationStatus::Waiting, ConsultationStatus::InProgress, ConsultationStatus::Ended];

    pub fn code(self) -> &'static str {
        match self {
            ConsultationStatus::Scheduled => "scheduled",
            ConsultationStatus::Waiting => "waiting",
            ConsultationStatus::InProgress => "in_progress",
            ConsultationStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.code() == s)
    }
}

pub fn consultation_statuses() -> Vec<&'static str> {
    ConsultationStatus::ALL.iter().map(|s| s.code()).collect()
}

/// The consultation's status once its appointment has moved to `appointment`: the patient's
/// arrival (or check-in) puts a scheduled consultation in the waiting room; nothing else moves it.
pub fn consultation_status_after(appointment: Status, consultation: ConsultationStatus) -> ConsultationStatus {
    match (appointment, consultation) {
        (Status::Arrived | Status::CheckedIn, ConsultationStatus::Scheduled) => ConsultationStatus::Waiting,
        (_, c) => c,
    }
}

// ------------------------------------------------------------------------------------------------
// Who moves an appointment

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Patient,
    Practitioner,
    Admin,
}

impl Actor {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "patient" => Self::Patient,
            "practitioner" => Self::Practitioner,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Actor::Patient => "patient",
            Actor::Practitioner => "practitioner",
            Actor::Admin => "admin",
        }
    }
}

/// What the caller asks of an appointment (one RPC each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `set_appointment_status(to)`: the visit's progress.
    SetStatus(Status),
    /// `cancel_appointment`.
    Cancel,
    /// `accept_appointment`: the patient accepts a proposal.
    Accept,
    /// `decline_appointment`: the patient declines a proposal.
    Decline,
    /// `reschedule_appointment`: a new time, the same status.
    Reschedule,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::SetStatus(_) => "set_status",
            Action::Cancel => "cancel",
            Action::Accept => "accept",
            Action::Decline => "decline",
            Action::Reschedule => "reschedule",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// `PT422 invalid_transition`: the life cycle has no such move.
    #[error("an appointment cannot go from {from} to {to}")]
    NotAllowed { from: Status, to: Status },
    /// `42501 forbidden`: the move exists, but not for this actor.
    #[error("{}", forbidden_message(*actor, *action, *from))]
    Forbidden { actor: Actor, action: Action, from: Status },
    /// `PT422 use_cancel_appointment`.
    #[error("use cancel_appointment, which records the reason")]
    UseCancel,
    /// `PT422 use_accept_appointment`: an appointment starts holding time only through a path
    /// that checks the calendars.
    #[error("an appointment that is {from} is booked by the patient's accept_appointment, which checks both calendars")]
    UseAccept { from: Status },
    /// `PT422 not_yet_started`.
    #[error("an appointment that has not started cannot be marked {to}")]
    NotYetStarted { to: Status },
    /// `PT422 not_reschedulable`.
    #[error("an appointment that is {status} cannot be rescheduled")]
    NotReschedulable { status: Status },
    /// `PT422 inside_cancellation_notice`: a patient cancels only until the practitioner's
    /// notice before the start (see [`check_cancellation_notice`]).
    #[error("a patient may cancel only until {notice_minutes} minutes before the start; please contact the clinic")]
    InsideCancellationNotice { notice_minutes: u32 },
}

fn forbidden_message(actor: Actor, action: Action, from: Status) -> String {
    let who = match actor {
        Actor::Admin => "an admin",
        Actor::Patient => "a patient",
        Actor::Practitioner => "a practitioner",
    };
    match action {
        Action::SetStatus(to) => format!("{who} may not move an appointment from {from} to {to}"),
        other => format!("{who} may not {} an appointment that is {from}", other.code()),
    }
}

impl Refusal for TransitionError {
    fn sqlstate(&self) -> &'static str {
        match self {
            TransitionError::Forbidden { .. } => "42501",
            _ => "PT422",
        }
    }
    fn code(&self) -> &'static str {
        match self {
            TransitionError::NotAllowed { .. } => "invalid_transition",
            TransitionError::Forbidden { .. } => "forbidden",
            TransitionError::UseCancel => "use_cancel_appointment",
            TransitionError::UseAccept { .. } => "use_accept_appointment",
            TransitionError::NotYetStarted { .. } => "not_yet_started",
            TransitionError::NotReschedulable { .. } => "not_reschedulable",
            TransitionError::InsideCancellationNotice { .. } => "inside_cancellation_notice",
        }
    }
    fn detail(&self) -> Map<String, Value> {
        let v = match self {
            TransitionError::NotAllowed { from, to } => json!({ "from": from.code(), "to": to.code() }),
            TransitionError::Forbidden { actor, action, from } => {
                let mut d = json!({ "actor": actor.code(), "action": action.code(), "from": from.code() });
                if let Action::SetStatus(to) = action {
                    d["to"] = json!(to.code());
                }
                d
            }
            TransitionError::UseCancel => json!({}),
            TransitionError::UseAccept { from } => json!({ "from": from.code() }),
            TransitionError::NotYetStarted { to } => json!({ "to": to.code() }),
            TransitionError::NotReschedulable { status } => json!({ "from": status.code() }),
            TransitionError::InsideCancellationNotice { notice_minutes } => json!({ "notice_minutes": notice_minutes }),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// The FHIR flow (proposed → pending → booked → arrived → checked-in → fulfilled; booked →
/// cancelled | noshow) and the corrections it allows; any status but entered-in-error may be
/// marked entered-in-error.
pub fn in_life_cycle(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Proposed, Pending | Booked | Waitlist | Cancelled)
            | (Waitlist, Pending | Booked | Cancelled)
            | (Pending, Booked | Cancelled)
            | (Booked, Arrived | CheckedIn | Cancelled | Noshow)
            | (Arrived, CheckedIn | Fulfilled | Noshow | Cancelled)
            | (CheckedIn, Fulfilled)
    ) || (to == EnteredInError && from != EnteredInError)
}

/// May `actor` make the life-cycle move `from → to`?
/// - the patient cancels before the visit starts, and accepts a proposal;
/// - the practitioner runs the visit, but never accepts on the patient's behalf;
/// - an admin cancels or marks entered-in-error.
fn actor_may(actor: Actor, from: Status, to: Status) -> bool {
    use Status::*;
    match actor {
        Actor::Patient => {
            (to == Cancelled && matches!(from, Proposed | Pending | Booked | Waitlist)) || (from == Proposed && to == Booked)
        }
        Actor::Practitioner => !(matches!(from, Proposed | Waitlist) && matches!(to, Pending | Booked)),
        Actor::Admin => matches!(to, Cancelled | EnteredInError),
    }
}

/// The decision on one action: the status the appointment moves to, or why not.
///
/// Checks, in order: the life cycle has the move (`invalid_transition`, `not_reschedulable`),
/// the action is the right path for it (`use_cancel_appointment`, `use_accept_appointment`),
/// the actor may make it (`forbidden`), and it is not early (`not_yet_started`: a no-show is
/// only marked once the appointment's start has passed).
pub fn decide(action: Action, from: Status, actor: Actor, starts_at: Option<Instant>, now: Instant) -> Result<Status, TransitionError> {
    let forbidden = || TransitionError::Forbidden { actor, action, from };
    let to = match action {
        Action::SetStatus(to) => {
            if !in_life_cycle(from, to) {
                return Err(TransitionError::NotAllowed { from, to });
            }
            if to == Status::Cancelled {
                return Err(TransitionError::UseCancel);
            }
            if !holds_time(from) && holds_time(to) {
                return Err(TransitionError::UseAccept { from });
            }
            to
        }
        Action::Cancel => Status::Cancelled,
        Action::Accept | Action::Decline => {
            let to = if action == Action::Accept { Status::Booked } else { Status::Cancelled };
            if from != Status::Proposed {
                return Err(TransitionError::NotAllowed { from, to });
            }
            if actor != Actor::Patient {
                return Err(forbidden());
            }
            return Ok(to);
        }
        Action::Reschedule => {
            match from {
                Status::Pending | Status::Booked => {}
                // A proposal is moved by the practitioner who made it; the patient accepts or declines.
                Status::Proposed if actor != Actor::Patient => {}
                Status::Proposed => return Err(forbidden()),
                _ => return Err(TransitionError::NotReschedulable { status: from }),
            }
            // Admins correct records; the two parties choose times.
            if actor == Actor::Admin {
                return Err(forbidden());
            }
            return Ok(from);
        }
    };
    if !in_life_cycle(from, to) {
        return Err(TransitionError::NotAllowed { from, to });
    }
    if !actor_may(actor, from, to) {
        return Err(forbidden());
    }
    if to == Status::Noshow && starts_at.is_none_or(|start| now < start) {
        return Err(TransitionError::NotYetStarted { to });
    }
    Ok(to)
}

/// A patient's own cancellation (`cancel`, or declining is not one: a proposal holds no time) is
/// accepted only while at least `notice_minutes` remain before the start: the practitioner's
/// `min_notice_minutes`, the notice they need for a booking, is the notice they get for a
/// cancellation. Practitioners and admins cancel at any time. Web and SMS cancellations both
/// come here (`cancel_appointment`).
pub fn check_cancellation_notice(
    action: Action,
    actor: Actor,
    starts_at: Option<Instant>,
    now: Instant,
    notice_minutes: Option<u32>,
) -> Result<(), TransitionError> {
    let (Action::Cancel, Actor::Patient, Some(start), Some(notice)) = (action, actor, starts_at, notice_minutes) else {
        return Ok(());
    };
    if now >= start || start - now < chrono::Duration::minutes(i64::from(notice)) {
        return Err(TransitionError::InsideCancellationNotice { notice_minutes: notice });
    }
    Ok(())
}

pub const TRANSITION_FIELDS: &[&str] = &["action", "from", "to", "actor", "starts_at", "now", "cancel_notice_minutes"];

/// `careplane.appointment_transition(jsonb)`: `{action: set_status|cancel|accept|decline|reschedule,
/// from, to (set_status only), actor: patient|practitioner|admin, starts_at (null when the
/// appointment has no period), now, cancel_notice_minutes (optional: see
/// [`check_cancellation_notice`])}` → `{"ok": true, "to": status}` (and, for accept and
/// decline, the patient's `participation`) or the refusal.
pub fn transition_verdict(value: &Value) -> Result<Verdict, InputError> {
    let f = Fields::new("input", value, TRANSITION_FIELDS)?;
    let status = |field: &str| -> Result<Option<Status>, InputError> {
        f.parsed(field, &format!("an appointment status ({})", statuses().join(", ")), Status::parse)
    };
    let from = status("from")?.ok_or_else(|| invalid("input.from", "required"))?;
    let to = status("to")?;
    let action = match f.text("action")?.ok_or_else(|| invalid("input.action", "required"))? {
        "set_status" => Action::SetStatus(to.ok_or_else(|| invalid("input.to", "required for set_status"))?),
        other => {
            let action = match other {
                "cancel" => Action::Cancel,
                "accept" => Action::Accept,
                "decline" => Action::Decline,
                "reschedule" => Action::Reschedule,
                _ => {
                    return Err(invalid(
                        "input.action",
                        format!("must be set_status, cancel, accept, decline or reschedule, got {other:?}"),
                    ))
                }
            };
            if to.is_some() {
                return Err(invalid("input.to", format!("only for set_status; {other} implies it")));
            }
            action
        }
    };
    let actor = f
        .parsed("actor", "patient, practitioner or admin", Actor::parse)?
        .ok_or_else(|| invalid("input.actor", "required"))?;
    let starts_at = f.parsed("starts_at", "an RFC 3339 timestamp", super::parse_instant)?;
    let now = super::required_instant(&f, "now")?;
    let notice = f.whole("cancel_notice_minutes", 0, 43_200)?.map(|n| n as u32);
    let decision = decide(action, from, actor, starts_at, now)
        .and_then(|to| check_cancellation_notice(action, actor, starts_at, now, notice).map(|()| to));
    Ok(match decision {
        Ok(to) => {
            let mut payload = json!({ "to": to.code() });
            // The patient's answer to a proposal is their participation.
            match action {
                Action::Accept => payload["participation"] = json!(Participation::Accepted.code()),
                Action::Decline => payload["participation"] = json!(Participation::Declined.code()),
                _ => {}
            }
            Verdict::allow_with(payload)
        }
        Err(e) => Verdict::refuse(&e),
    })
}

#[cfg(test)]
mod tests;
