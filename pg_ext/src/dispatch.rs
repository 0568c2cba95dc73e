//! Dispatch: the emergency status lists and life cycle, the dispatcher's claims, assignment,
//! release, staff assessment, the flooding limits, paging, and the named settings those rules
//! read (`careplane_rules::dispatch`). Every function that can refuse answers a verdict
//! (`{"ok": true}` or `{"ok": false, sqlstate, message, detail: {code, …}, hint}`), which
//! `private.enforce` raises. Unknown statuses or actors are 22023.

use careplane_rules::dispatch::{self, Actor, Claim, ResponderState, Status};
use careplane_rules::json::invalid;
use careplane_rules::verdict::Verdict;
use pgrx::datum::{TimestampWithTimeZone, Uuid};
use pgrx::prelude::*;
use pgrx::pg_sys;

use crate::jsonb::Jsonb;

use crate::errors::invalid_parameter;

const STATUS_HINT: &str = "statuses: careplane.emergency_statuses()";

fn status(field: &str, s: &str) -> Status {
    Status::parse(s).unwrap_or_else(|| invalid_parameter(&invalid(field, format!("unknown status {s:?}")), STATUS_HINT))
}

fn actor(s: &str) -> Actor {
    Actor::parse(s).unwrap_or_else(|| {
        invalid_parameter(&invalid("actor", format!("unknown actor {s:?}")), "actors: requester, dispatcher, assigned_responder")
    })
}

fn required<T>(field: &str, v: Option<T>) -> T {
    v.unwrap_or_else(|| invalid_parameter(&invalid(field, "required"), "only the claim columns may be null"))
}

/// Whole seconds from `since` to `at` (negative when `since` is later), saturating.
fn seconds_between(since: TimestampWithTimeZone, at: TimestampWithTimeZone) -> i64 {
    pg_sys::TimestampTz::from(at).saturating_sub(pg_sys::TimestampTz::from(since)) / 1_000_000
}

fn claim(claimed_by: Option<Uuid>, claimed_at: Option<TimestampWithTimeZone>, caller: Option<Uuid>, at: TimestampWithTimeZone) -> Claim {
    match claimed_by {
        None => Claim::Unclaimed,
        Some(by) if Some(by) == caller => Claim::ByCaller,
        Some(_) => Claim::ByAnother { held_for_seconds: claimed_at.map_or(0, |c| seconds_between(c, at)) },
    }
}

/// Every emergency request status, in life-cycle order: the one list the table's check
/// constraint and the RPCs use.
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_statuses() -> Vec<&'static str> {
    dispatch::status_names(|_| true)
}

/// The statuses of a request not yet resolved or cancelled.
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_active_statuses() -> Vec<&'static str> {
    dispatch::status_names(Status::is_active)
}

/// The statuses in which a responder is attached to the request and busy with it.
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_responder_statuses() -> Vec<&'static str> {
    dispatch::status_names(Status::has_responder)
}

/// A status change of an emergency request by an actor (`requester`, `dispatcher`,
/// `assigned_responder`): a verdict. PT422 `invalid_transition` for a move the life cycle does
/// not have, 42501 `forbidden_transition` for one this actor may not make, PT422
/// `use_assign_responder` for a move to `assigned`.
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_transition(from: &str, to: &str, actor: &str) -> Jsonb {
    let (from, to, actor) = (status("from", from), status("to", to), self::actor(actor));
    Jsonb(Verdict::of(dispatch::status_change(from, to, actor)).into_json())
}

/// The value of a dispatch setting: `value` (the text of the custom setting
/// `careplane.<name>`, null or empty when unset) or the rule's default. 22023 for an unknown
/// name or a value outside the setting's bounds.
#[pg_extern(immutable, parallel_safe)]
fn dispatch_setting(name: Option<&str>, value: Option<&str>) -> i64 {
    let hint = "settings: claim_lapse_minutes, max_open_emergencies, max_emergencies_per_window, \
                emergency_window_minutes, page_burst_minutes (see docs/triage.md)";
    dispatch::setting(required("name", name), value).unwrap_or_else(|e| invalid_parameter(&e, hint))
}

/// Whether a claim taken at `claimed_at` is still live at `at`.
#[pg_extern(immutable, strict, parallel_safe)]
fn claim_is_live(claimed_at: TimestampWithTimeZone, at: TimestampWithTimeZone, claim_lapse_minutes: i64) -> bool {
    dispatch::claim_is_live(seconds_between(claimed_at, at), claim_lapse_minutes)
}

/// A dispatcher (`caller`) assigns a responder to a request: a verdict (PT422
/// `invalid_transition`; PT409 `claimed_by_another_dispatcher`, `responder_inactive`,
/// `responder_off_duty`, `responder_busy`). `claimed_by` and `claimed_at` are null when unclaimed.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn emergency_assignment_verdict(
    status: Option<&str>,
    claimed_by: Option<Uuid>,
    claimed_at: Option<TimestampWithTimeZone>,
    caller: Option<Uuid>,
    at: Option<TimestampWithTimeZone>,
    claim_lapse_minutes: Option<i64>,
    responder_active: Option<bool>,
    responder_on_duty: Option<bool>,
    responder_busy: Option<bool>,
) -> Jsonb {
    let status = self::status("status", required("status", status));
    let claim = claim(claimed_by, claimed_at, caller, required("at", at));
    let responder = ResponderState {
        active: required("responder_active", responder_active),
        on_duty: required("responder_on_duty", responder_on_duty),
        busy: required("responder_busy", responder_busy),
    };
    let lapse = required("claim_lapse_minutes", claim_lapse_minutes);
    Jsonb(Verdict::of(dispatch::check_assignment(status, claim, lapse, responder)).into_json())
}

/// A dispatcher (`caller`) hands a claimed request back: a verdict (PT409 `not_claimed`,
/// `claimed_by_another_dispatcher`).
#[pg_extern(immutable, parallel_safe)]
fn emergency_release_verdict(
    status: Option<&str>,
    claimed_by: Option<Uuid>,
    claimed_at: Option<TimestampWithTimeZone>,
    caller: Option<Uuid>,
    at: Option<TimestampWithTimeZone>,
    claim_lapse_minutes: Option<i64>,
) -> Jsonb {
    let status = self::status("status", required("status", status));
    let claim = claim(claimed_by, claimed_at, caller, required("at", at));
    let lapse = required("claim_lapse_minutes", claim_lapse_minutes);
    Jsonb(Verdict::of(dispatch::check_release(status, claim, lapse)).into_json())
}

/// Staff record their assessment of a request: a verdict (42501 `forbidden_assessment`, PT422
/// `emergency_closed`, 22023 `nothing_to_assess`).
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_assessment_verdict(status: &str, actor: &str, gives_something: bool) -> Jsonb {
    let (status, actor) = (self::status("status", status), self::actor(actor));
    Jsonb(Verdict::of(dispatch::check_assessment(status, actor, gives_something)).into_json())
}

/// A dispatcher marks a request as abuse, with a note of `note_chars` characters: a verdict
/// (the life cycle's refusals for a move to `cancelled`; 22023 `note_too_long`).
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_abuse_verdict(status: &str, note_chars: i64) -> Jsonb {
    let status = self::status("status", status);
    Jsonb(Verdict::of(dispatch::check_abuse_mark(status, note_chars)).into_json())
}

/// A requester with `open` active requests, `raised` of them within the window, raises another:
/// a verdict (PT422 `too_many_open_emergencies`, PT429 `emergency_rate_limited`).
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_raise_verdict(open: i64, raised: i64, max_open: i64, max_per_window: i64, window_minutes: i64) -> Jsonb {
    Jsonb(Verdict::of(dispatch::check_raise(open, raised, max_open, max_per_window, window_minutes)).into_json())
}

/// Whether a request that qualifies for a page texts the on-call dispatchers now, given when
/// the last page went out (null: never): at most once per burst.
#[pg_extern(immutable, parallel_safe)]
fn page_due(last_paged_at: Option<TimestampWithTimeZone>, at: Option<TimestampWithTimeZone>, page_burst_minutes: Option<i64>) -> bool {
    let at = required("at", at);
    dispatch::page_due(last_paged_at.map(|p| seconds_between(p, at)), required("page_burst_minutes", page_burst_minutes))
}
