//! The life of an emergency request — open → assigned → en_route → on_scene → resolved, or
//! cancelled — who may make each move, the claims dispatchers hold while they route a request,
//! the limits that keep one account from flooding the queue, when the on-call dispatchers are
//! paged, and the named settings (with their defaults) those rules read.
//!
//! Every refusal is a [`Refusal`]: the extension answers a verdict and `private.enforce`
//! raises it, so the SQLSTATE and the `detail.code` below are what a client sees.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::json::InputError;
use crate::verdict::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Assigned,
    EnRoute,
    OnScene,
    Resolved,
    Cancelled,
}

impl Status {
    /// Every status, in life-cycle order: the one list (`careplane.emergency_statuses()`).
    pub const ALL: [Status; 6] = [Self::Open, Self::Assigned, Self::EnRoute, Self::OnScene, Self::Resolved, Self::Cancelled];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Assigned => "assigned",
            Self::EnRoute => "en_route",
            Self::OnScene => "on_scene",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
        }
    }

    /// Not finished: open, or a responder is on it.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Resolved | Self::Cancelled)
    }

    /// A responder is attached and busy with it (and the request must name one).
    pub fn has_responder(self) -> bool {
        matches!(self, Self::Assigned | Self::EnRoute | Self::OnScene)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the statuses for which `keep` holds, in life-cycle order.
pub fn status_names(keep: impl Fn(Status) -> bool) -> Vec<&'static str> {
    Status::ALL.into_iter().filter(|s| keep(*s)).map(Status::as_str).collect()
}

/// Who is asking, relative to this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The person who raised it.
    Requester,
    Dispatcher,
    /// The responder assigned to it (holding the responder role and active).
    AssignedResponder,
}

impl Actor {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requester" => Self::Requester,
            "dispatcher" => Self::Dispatcher,
            "assigned_responder" => Self::AssignedResponder,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requester => "requester",
            Self::Dispatcher => "dispatcher",
            Self::AssignedResponder => "assigned_responder",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("an emergency request cannot go from {from} to {to}")]
    NotAllowed { from: Status, to: Status },
    #[error("a {} may not move an emergency request from {from} to {to}", .actor.as_str().replace('_', " "))]
    Forbidden { actor: Actor, from: Status, to: Status },
    #[error("use assign_responder to assign a responder")]
    AssignThroughAssignResponder { from: Status },
}

impl Refusal for TransitionError {
    fn sqlstate(&self) -> &'static str {
        match self {
            Self::Forbidden { .. } => "42501",
            Self::NotAllowed { .. } | Self::AssignThroughAssignResponder { .. } => "PT422",
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::NotAllowed { .. } => "invalid_transition",
            Self::Forbidden { .. } => "forbidden_transition",
            Self::AssignThroughAssignResponder { .. } => "use_assign_responder",
        }
    }
    fn detail(&self) -> Map<String, Value> {
        let v = match self {
            Self::NotAllowed { from, to } => json!({ "from": from.as_str(), "to": to.as_str() }),
            Self::Forbidden { actor, from, to } => json!({ "actor": actor.as_str(), "from": from.as_str(), "to": to.as_str() }),
            Self::AssignThroughAssignResponder { from } => json!({ "from": from.as_str(), "to": "assigned" }),
        };
        v.as_object().cloned().unwrap_or_default()
    }
    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::AssignThroughAssignResponder { .. } => Some("Call assign_responder(request_id, responder_id)."),
            _ => None,
        }
    }
}

/// Checks one move. Assignment (open → assigned) is the dispatcher's, through
/// `assign_responder`; reassignment keeps the status `assigned`.
pub fn transition(from: Status, to: Status, actor: Actor) -> Result<(), TransitionError> {
    use Status::*;
    let allowed = matches!(
        (from, to),
        (Open, Assigned) | (Assigned, Assigned) | (Assigned, EnRoute) | (EnRoute, OnScene) | (OnScene, Resolved)
    ) || (from.is_active() && to == Cancelled);
    if !allowed {
        return Err(TransitionError::NotAllowed { from, to });
    }
    let permitted = match actor {
        Actor::Dispatcher => true,
        Actor::AssignedResponder => matches!(to, EnRoute | OnScene | Resolved),
        // The requester may call it off until help is on the way.
        Actor::Requester => to == Cancelled && matches!(from, Open | Assigned),
    };
    if permitted {
        Ok(())
    } else {
        Err(TransitionError::Forbidden { actor, from, to })
    }
}

/// A status change through `set_emergency_status` (or a dispatcher marking abuse): every move
/// of [`transition`] except assignment, which names a responder and goes through
/// `assign_responder`.
pub fn status_change(from: Status, to: Status, actor: Actor) -> Result<(), TransitionError> {
    if to == Status::Assigned {
        return Err(TransitionError::AssignThroughAssignResponder { from });
    }
    transition(from, to, actor)
}

// ------------------------------------------------------------------------------------------------
// Settings

pub use crate::settings::Setting;

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "claim_lapse_minutes",
        default: 10,
        min: 1,
        max: 1440,
        doc: "a dispatcher's claim on a request lapses this long after it was taken (or renewed by an \
              assignment); until then no other dispatcher may assign, reassign or release it",
    },
    Setting {
        name: "max_open_emergencies",
        default: 3,
        min: 1,
        max: 100,
        doc: "active (not resolved or cancelled) emergency requests one requester may have at once",
    },
    Setting {
        name: "max_emergencies_per_window",
        default: 5,
        min: 1,
        max: 1000,
        doc: "emergency requests one requester may raise within emergency_window_minutes",
    },
    Setting { name: "emergency_window_minutes", default: 60, min: 1, max: 10080, doc: "the window max_emergencies_per_window counts over" },
    Setting {
        name: "page_burst_minutes",
        default: 5,
        min: 0,
        max: 1440,
        doc: "after an SMS page to the on-call dispatchers, further emergencies that would page within \
              this many minutes do not page again (they are on the queue and announced in realtime); 0 pages every time",
    },
];

/// The value of dispatch setting `name` (see [`crate::settings::value_of`]).
pub fn setting(name: &str, value: Option<&str>) -> Result<i64, InputError> {
    crate::settings::value_of(SETTINGS, "dispatch", name, value)
}

// ------------------------------------------------------------------------------------------------
// Claims, assignment, release

/// Who holds the claim on a request, seen from the dispatcher asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Unclaimed,
    ByCaller,
    /// Held by another dispatcher since this many seconds.
    ByAnother { held_for_seconds: i64 },
}

/// A claim is live for `claim_lapse_minutes` after it was taken; a claim from the future
/// (clock skew) is live.
pub fn claim_is_live(held_for_seconds: i64, claim_lapse_minutes: i64) -> bool {
    held_for_seconds < claim_lapse_minutes.saturating_mul(60)
}

/// What assignment needs to know about the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponderState {
    /// Holds the responder role and has not been deactivated (revocation sets it false).
    pub active: bool,
    pub on_duty: bool,
    /// On another request that has a responder attached.
    pub busy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("another dispatcher holds this emergency request")]
    ClaimedByAnother { held_for_seconds: i64, claim_lapse_minutes: i64 },
    #[error("this emergency request is not claimed and open (it is {status})")]
    NotClaimed { status: Status },
    #[error("this responder is not an active responder")]
    ResponderInactive,
    #[error("this responder is off duty")]
    ResponderOffDuty,
    #[error("this responder is already on another emergency")]
    ResponderBusy,
    #[error("you already have {open} open emergency requests (at most {limit}); dispatchers are handling them")]
    TooManyOpen { open: i64, limit: i64 },
    #[error("you have raised {raised} emergency requests in the last {window_minutes} minutes (at most {limit})")]
    RateLimited { raised: i64, limit: i64, window_minutes: i64 },
    #[error("staff assess an emergency request; a {} may not", .actor.as_str().replace('_', " "))]
    AssessmentForbidden { actor: Actor },
    #[error("this emergency request is {status}; only active requests are assessed")]
    Closed { status: Status },
    #[error("give vitals, findings or both to assess")]
    NothingToAssess,
    #[error("the note is {chars} characters long; at most {MAX_NOTE_CHARS} are accepted")]
    NoteTooLong { chars: i64 },
}

/// The longest note a dispatcher may give when marking a request as abuse, in characters.
pub const MAX_NOTE_CHARS: i64 = 500;

impl Refusal for DispatchError {
    fn sqlstate(&self) -> &'static str {
        match self {
            Self::Transition(t) => t.sqlstate(),
            Self::ClaimedByAnother { .. }
            | Self::NotClaimed { .. }
            | Self::ResponderInactive
            | Self::ResponderOffDuty
            | Self::ResponderBusy => "PT409",
            Self::TooManyOpen { .. } | Self::Closed { .. } => "PT422",
            Self::RateLimited { .. } => "PT429",
            Self::AssessmentForbidden { .. } => "42501",
            Self::NothingToAssess | Self::NoteTooLong { .. } => "22023",
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Transition(t) => t.code(),
            Self::ClaimedByAnother { .. } => "claimed_by_another_dispatcher",
            Self::NotClaimed { .. } => "not_claimed",
            Self::ResponderInactive => "responder_inactive",
            Self::ResponderOffDuty => "responder_off_duty",
            Self::ResponderBusy => "responder_busy",
            Self::TooManyOpen { .. } => "too_many_open_emergencies",
            Self::RateLimited { .. } => "emergency_rate_limited",
            Self::AssessmentForbidden { .. } => "forbidden_assessment",
            Self::Closed { .. } => "emergency_closed",
            Self::NothingToAssess => "nothing_to_assess",
            Self::NoteTooLong { .. } => "note_too_long",
        }
    }
    fn detail(&self) -> Map<String, Value> {
        let v = match self {
            Self::Transition(t) => return t.detail(),
            Self::ClaimedByAnother { held_for_seconds, claim_lapse_minutes } => json!({
                "lapses_in_seconds": (claim_lapse_minutes.saturating_mul(60) - held_for_seconds).max(0),
            }),
            Self::NotClaimed { status } | Self::Closed { status } => json!({ "status": status.as_str() }),
            Self::TooManyOpen { open, limit } => json!({ "open": open, "limit": limit }),
            Self::RateLimited { raised, limit, window_minutes } => {
                json!({ "raised": raised, "limit": limit, "window_minutes": window_minutes })
            }
            Self::AssessmentForbidden { actor } => json!({ "actor": actor.as_str() }),
            Self::NoteTooLong { chars } => json!({ "chars": chars, "limit": MAX_NOTE_CHARS }),
            Self::ResponderInactive | Self::ResponderOffDuty | Self::ResponderBusy | Self::NothingToAssess => json!({}),
        };
        v.as_object().cloned().unwrap_or_default()
    }
    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Transition(t) => t.hint(),
            Self::ClaimedByAnother { .. } => Some("Take another request from claim_next_emergency(), or wait until the claim lapses."),
            Self::ResponderInactive | Self::ResponderOffDuty | Self::ResponderBusy => {
                Some("Pick a responder from nearest_responders(request_id).")
            }
            Self::TooManyOpen { .. } | Self::RateLimited { .. } => {
                Some("If this is a new emergency, call your local emergency number now.")
            }
            Self::NotClaimed { .. }
            | Self::AssessmentForbidden { .. }
            | Self::Closed { .. }
            | Self::NothingToAssess
            | Self::NoteTooLong { .. } => None,
        }
    }
}

fn check_claim(claim: Claim, claim_lapse_minutes: i64) -> Result<(), DispatchError> {
    match claim {
        Claim::ByAnother { held_for_seconds } if claim_is_live(held_for_seconds, claim_lapse_minutes) => {
            Err(DispatchError::ClaimedByAnother { held_for_seconds, claim_lapse_minutes })
        }
        _ => Ok(()),
    }
}

/// A dispatcher assigns (or reassigns) a responder. The move must be in the life cycle; a live
/// claim of another dispatcher stops it (so two dispatchers never both route one request); the
/// responder must be active, on duty and free. Assignment takes (or renews) the caller's claim.
pub fn check_assignment(
    status: Status,
    claim: Claim,
    claim_lapse_minutes: i64,
    responder: ResponderState,
) -> Result<(), DispatchError> {
    transition(status, Status::Assigned, Actor::Dispatcher)?;
    check_claim(claim, claim_lapse_minutes)?;
    if !responder.active {
        return Err(DispatchError::ResponderInactive);
    }
    if !responder.on_duty {
        return Err(DispatchError::ResponderOffDuty);
    }
    if responder.busy {
        return Err(DispatchError::ResponderBusy);
    }
    Ok(())
}

/// A dispatcher hands a claimed, open request back to the queue: its claimant, or anyone once
/// the claim has lapsed.
pub fn check_release(status: Status, claim: Claim, claim_lapse_minutes: i64) -> Result<(), DispatchError> {
    if status != Status::Open || claim == Claim::Unclaimed {
        return Err(DispatchError::NotClaimed { status });
    }
    check_claim(claim, claim_lapse_minutes)
}

/// Staff (a dispatcher, or the assigned responder) record their own vitals and/or findings on
/// an active request; the requester's report stays as it was, and triage is recomputed.
pub fn check_assessment(status: Status, actor: Actor, gives_something: bool) -> Result<(), DispatchError> {
    if actor == Actor::Requester {
        return Err(DispatchError::AssessmentForbidden { actor });
    }
    if !status.is_active() {
        return Err(DispatchError::Closed { status });
    }
    if !gives_something {
        return Err(DispatchError::NothingToAssess);
    }
    Ok(())
}

/// A dispatcher marks a request as abuse: it is cancelled (so the move must be one a
/// dispatcher may make) and the mark, with an optional note of at most [`MAX_NOTE_CHARS`], stays
/// on the request and in the audit log.
pub fn check_abuse_mark(status: Status, note_chars: i64) -> Result<(), DispatchError> {
    status_change(status, Status::Cancelled, Actor::Dispatcher)?;
    if note_chars > MAX_NOTE_CHARS {
        return Err(DispatchError::NoteTooLong { chars: note_chars });
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Flooding and paging

/// A requester raises another emergency request: at most `max_open` active at once, and at most
/// `max_per_window` raised within the window. A refused request is stored nowhere.
pub fn check_raise(open: i64, raised_in_window: i64, max_open: i64, max_per_window: i64, window_minutes: i64) -> Result<(), DispatchError> {
    if open >= max_open {
        return Err(DispatchError::TooManyOpen { open, limit: max_open });
    }
    if raised_in_window >= max_per_window {
        return Err(DispatchError::RateLimited { raised: raised_in_window, limit: max_per_window, window_minutes });
    }
    Ok(())
}

/// Whether an emergency that qualifies for a page (`triage::should_page`) texts the on-call
/// dispatchers now: at most once per burst — not when the last page went out less than
/// `page_burst_minutes` ago (`last_page_seconds_ago`, `None` when there was none).
pub fn page_due(last_page_seconds_ago: Option<i64>, page_burst_minutes: i64) -> bool {
    match last_page_seconds_ago {
        None => true,
        Some(ago) => ago >= page_burst_minutes.saturating_mul(60),
    }
}

#[cfg(test)]
mod tests;
