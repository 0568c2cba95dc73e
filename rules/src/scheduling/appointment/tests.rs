use super::*;
use crate::scheduling::parse_instant;
use proptest::prelude::*;

use Status::*;

fn at(s: &str) -> Instant {
    parse_instant(s).unwrap()
}

const NOW: &str = "2026-11-30T10:00:00Z";

fn set(from: Status, to: Status, actor: Actor) -> Result<Status, TransitionError> {
    decide(Action::SetStatus(to), from, actor, Some(at("2026-11-30T09:00:00Z")), at(NOW))
}

#[test]
fn lists_are_fhirs() {
    assert_eq!(
        statuses(),
        ["proposed", "pending", "booked", "arrived", "checked-in", "fulfilled", "cancelled", "noshow", "entered-in-error", "waitlist"]
    );
    let active: Vec<&str> = Status::ALL.into_iter().filter(|s| holds_time(*s)).map(Status::code).collect();
    assert_eq!(active, ["pending", "booked", "arrived", "checked-in", "fulfilled"]);
    let care: Vec<&str> = Status::ALL.into_iter().filter(|s| grants_care_team(*s)).map(Status::code).collect();
    assert_eq!(care, ["booked", "arrived", "checked-in", "fulfilled", "noshow"]);
    assert_eq!(participations(), ["accepted", "needs-action", "declined"]);
    assert_eq!(consultation_statuses(), ["scheduled", "waiting", "in_progress", "ended"]);
    for s in Status::ALL {
        assert_eq!(Status::parse(s.code()), Some(s));
    }
    assert_eq!(Status::parse("Booked"), None, "codes are exact");
}

#[test]
fn fhir_invariants() {
    assert!(check_invariants(Booked, false, false).is_err());
    assert!(check_invariants(Proposed, false, false).is_ok());
    assert!(check_invariants(Waitlist, false, false).is_ok());
    assert!(check_invariants(Booked, true, true).is_err());
    assert!(check_invariants(Cancelled, false, true).is_ok());
    assert!(check_invariants(Noshow, true, true).is_ok());
}

#[test]
fn patients_cannot_mark_themselves_arrived_and_terminal_states_hold() {
    assert!(matches!(set(Booked, Arrived, Actor::Patient), Err(TransitionError::Forbidden { .. })));
    assert_eq!(set(Booked, Arrived, Actor::Practitioner), Ok(Arrived));
    assert_eq!(decide(Action::Cancel, Booked, Actor::Patient, None, at(NOW)), Ok(Cancelled));
    assert!(matches!(decide(Action::Cancel, Arrived, Actor::Patient, None, at(NOW)), Err(TransitionError::Forbidden { .. })));
    assert_eq!(decide(Action::Cancel, Arrived, Actor::Practitioner, None, at(NOW)), Ok(Cancelled));
    assert!(matches!(decide(Action::Cancel, Fulfilled, Actor::Practitioner, None, at(NOW)), Err(TransitionError::NotAllowed { .. })));
    assert!(matches!(set(Cancelled, Booked, Actor::Practitioner), Err(TransitionError::NotAllowed { .. })));
    assert_eq!(set(Fulfilled, EnteredInError, Actor::Admin), Ok(EnteredInError));
    assert!(matches!(set(Booked, Fulfilled, Actor::Admin), Err(TransitionError::NotAllowed { .. })));
}

#[test]
fn cancelling_goes_through_cancel_appointment() {
    assert_eq!(set(Booked, Cancelled, Actor::Practitioner), Err(TransitionError::UseCancel));
}

#[test]
fn practitioner_cannot_accept_their_own_proposal() {
    // Through set_appointment_status: a proposal starts holding time only by acceptance.
    assert_eq!(set(Proposed, Booked, Actor::Practitioner), Err(TransitionError::UseAccept { from: Proposed }));
    assert_eq!(set(Proposed, Booked, Actor::Patient), Err(TransitionError::UseAccept { from: Proposed }));
    assert_eq!(set(Waitlist, Pending, Actor::Practitioner), Err(TransitionError::UseAccept { from: Waitlist }));
    // Through accept_appointment: only the patient.
    let accept = |actor| decide(Action::Accept, Proposed, actor, None, at(NOW));
    assert_eq!(accept(Actor::Patient), Ok(Booked));
    assert!(matches!(accept(Actor::Practitioner), Err(TransitionError::Forbidden { .. })));
    assert!(matches!(accept(Actor::Admin), Err(TransitionError::Forbidden { .. })));
    assert_eq!(decide(Action::Decline, Proposed, Actor::Patient, None, at(NOW)), Ok(Cancelled));
    assert!(matches!(decide(Action::Decline, Proposed, Actor::Practitioner, None, at(NOW)), Err(TransitionError::Forbidden { .. })));
    assert_eq!(
        decide(Action::Accept, Booked, Actor::Patient, None, at(NOW)),
        Err(TransitionError::NotAllowed { from: Booked, to: Booked }),
        "only a proposal is accepted"
    );
    // The practitioner withdraws a proposal by cancelling it.
    assert_eq!(decide(Action::Cancel, Proposed, Actor::Practitioner, None, at(NOW)), Ok(Cancelled));
}

#[test]
fn future_appointment_cannot_be_marked_noshow() {
    let noshow = |start: &str| decide(Action::SetStatus(Noshow), Booked, Actor::Practitioner, Some(at(start)), at(NOW));
    assert_eq!(noshow("2026-11-30T10:00:01Z"), Err(TransitionError::NotYetStarted { to: Noshow }), "one second early");
    assert_eq!(noshow("2026-11-30T10:00:00Z"), Ok(Noshow), "at the start");
    assert_eq!(noshow("2026-11-29T10:00:00Z"), Ok(Noshow));
    assert_eq!(
        decide(Action::SetStatus(Noshow), Booked, Actor::Practitioner, None, at(NOW)),
        Err(TransitionError::NotYetStarted { to: Noshow }),
        "no start, no no-show"
    );
}

#[test]
fn reschedule_statuses_and_actors() {
    let r = |from, actor| decide(Action::Reschedule, from, actor, None, at(NOW));
    assert_eq!(r(Booked, Actor::Patient), Ok(Booked));
    assert_eq!(r(Pending, Actor::Practitioner), Ok(Pending));
    assert_eq!(r(Proposed, Actor::Practitioner), Ok(Proposed));
    assert!(matches!(r(Proposed, Actor::Patient), Err(TransitionError::Forbidden { .. })));
    assert!(matches!(r(Booked, Actor::Admin), Err(TransitionError::Forbidden { .. })));
    for from in [Arrived, CheckedIn, Fulfilled, Cancelled, Noshow, EnteredInError, Waitlist] {
        for actor in [Actor::Patient, Actor::Practitioner, Actor::Admin] {
            assert_eq!(r(from, actor), Err(TransitionError::NotReschedulable { status: from }), "{from} by {actor:?}");
        }
    }
}

#[test]
fn refusals_carry_sqlstate_code_and_detail() {
    let v = Verdict::refuse(&set(Booked, Fulfilled, Actor::Practitioner).unwrap_err()).into_json();
    assert_eq!(v["sqlstate"], "PT422");
    assert_eq!(v["detail"], json!({"code": "invalid_transition", "from": "booked", "to": "fulfilled"}));
    assert_eq!(v["message"], "an appointment cannot go from booked to fulfilled");
    let v = Verdict::refuse(&set(Booked, Arrived, Actor::Patient).unwrap_err()).into_json();
    assert_eq!(v["sqlstate"], "42501");
    assert_eq!(v["detail"], json!({"code": "forbidden", "actor": "patient", "action": "set_status", "from": "booked", "to": "arrived"}));
    assert_eq!(v["message"], "a patient may not move an appointment from booked to arrived");
    let v = Verdict::refuse(&decide(Action::Reschedule, Booked, Actor::Admin, None, at(NOW)).unwrap_err()).into_json();
    assert_eq!(v["message"], "an admin may not reschedule an appointment that is booked");
}

#[test]
fn transition_json_names_the_field() {
    let err = |v: Value| match transition_verdict(&v) {
        Err(InputError::Invalid { field, .. }) => field,
        Ok(v) => panic!("accepted: {v:?}"),
    };
    let base = json!({"action": "set_status", "from": "booked", "to": "arrived", "actor": "practitioner", "now": NOW});
    assert!(transition_verdict(&base).unwrap().is_ok());
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_eq!(err(with("from", json!("done"))), "input.from");
    assert_eq!(err(with("to", Value::Null)), "input.to");
    assert_eq!(err(with("actor", json!("nurse"))), "input.actor");
    assert_eq!(err(with("action", json!("delete"))), "input.action");
    assert_eq!(err(with("now", json!("yesterday"))), "input.now");
    assert_eq!(err(with("extra", json!(1))), "input.extra");
    assert_eq!(err(json!({"action": "cancel", "from": "booked", "to": "cancelled", "actor": "patient", "now": NOW})), "input.to");
    let ok = transition_verdict(&json!({"action": "cancel", "from": "booked", "actor": "patient", "now": NOW})).unwrap();
    assert_eq!(ok.into_json(), json!({"ok": true, "to": "cancelled"}));
    let accepted = transition_verdict(&json!({"action": "accept", "from": "proposed", "actor": "patient", "now": NOW})).unwrap();
    assert_eq!(accepted.into_json(), json!({"ok": true, "to": "booked", "participation": "accepted"}));
}

#[test]
fn relationship_and_contact_need_the_patients_acceptance() {
    assert!(establishes_relationship(Booked, Participation::Accepted));
    assert!(establishes_relationship(Cancelled, Participation::Accepted), "a booking the patient later cancelled still shows their choice");
    assert!(!establishes_relationship(Proposed, Participation::Accepted));
    assert!(!establishes_relationship(EnteredInError, Participation::Accepted));
    assert!(!establishes_relationship(Cancelled, Participation::Declined));
    assert!(!establishes_relationship(Cancelled, Participation::NeedsAction), "a withdrawn proposal");
    assert!(may_contact_patient(Participation::Accepted));
    assert!(!may_contact_patient(Participation::NeedsAction));
    assert!(!may_contact_patient(Participation::Declined));
}

#[test]
fn arrival_puts_the_consultation_in_the_waiting_room() {
    use ConsultationStatus as C;
    assert_eq!(consultation_status_after(Arrived, C::Scheduled), C::Waiting);
    assert_eq!(consultation_status_after(CheckedIn, C::Scheduled), C::Waiting);
    assert_eq!(consultation_status_after(Arrived, C::InProgress), C::InProgress, "a started consultation stays started");
    assert_eq!(consultation_status_after(Fulfilled, C::Scheduled), C::Scheduled);
}

fn any_status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn any_actor() -> impl Strategy<Value = Actor> {
    prop::sample::select(vec![Actor::Patient, Actor::Practitioner, Actor::Admin])
}

proptest! {
    /// Whatever the action, an appointment only starts holding time when its patient accepts:
    /// no allowed move by a practitioner or an admin takes a non-holding status to a holding one.
    #[test]
    fn only_the_patient_makes_an_appointment_hold_time(
        from in any_status(), to in any_status(), actor in any_actor(),
        action in prop::sample::select(vec![0, 1, 2, 3, 4]),
    ) {
        let action = [Action::SetStatus(to), Action::Cancel, Action::Accept, Action::Decline, Action::Reschedule][action];
        if let Ok(next) = decide(action, from, actor, Some(at("2026-11-30T09:00:00Z")), at(NOW)) {
            if !holds_time(from) && holds_time(next) {
                prop_assert_eq!(actor, Actor::Patient);
                prop_assert_eq!(action, Action::Accept);
            }
            prop_assert!(in_life_cycle(from, next) || next == from, "{:?} {} → {}", action, from, next);
        }
    }

    /// Admins never choose times or run visits: they cancel or mark entered-in-error.
    #[test]
    fn admins_only_cancel_or_correct(from in any_status(), to in any_status()) {
        if let Ok(next) = decide(Action::SetStatus(to), from, Actor::Admin, None, at(NOW)) {
            prop_assert_eq!(next, EnteredInError);
        }
        prop_assert!(decide(Action::Reschedule, from, Actor::Admin, None, at(NOW)).is_err());
    }
}

#[test]
fn patient_cancellation_closes_at_the_practitioners_notice() {
    let start = Some(at("2026-11-30T12:00:00Z"));
    let check = |actor, now: &str, notice| check_cancellation_notice(Action::Cancel, actor, start, at(now), notice);
    assert_eq!(check(Actor::Patient, "2026-11-30T09:59:00Z", Some(120)), Ok(()));
    assert_eq!(check(Actor::Patient, "2026-11-30T10:00:00Z", Some(120)), Ok(()));
    assert_eq!(
        check(Actor::Patient, "2026-11-30T10:01:00Z", Some(120)),
        Err(TransitionError::InsideCancellationNotice { notice_minutes: 120 })
    );
    assert!(check(Actor::Patient, "2026-11-30T12:00:00Z", Some(0)).is_err(), "not once it has started");
    assert_eq!(check(Actor::Practitioner, "2026-11-30T11:59:00Z", Some(120)), Ok(()));
    assert_eq!(check(Actor::Admin, "2026-11-30T11:59:00Z", Some(120)), Ok(()));
    assert_eq!(check(Actor::Patient, "2026-11-30T11:59:00Z", None), Ok(()), "no notice given: no window");
    let v = transition_verdict(&serde_json::json!({
        "action": "cancel", "from": "booked", "actor": "patient", "starts_at": "2026-11-30T12:00:00Z",
        "now": "2026-11-30T11:00:00Z", "cancel_notice_minutes": 120,
    }))
    .unwrap();
    let v = v.into_json();
    assert_eq!(v["detail"]["code"], "inside_cancellation_notice", "{v}");
    assert_eq!(v["sqlstate"], "PT422");
}
