use super::*;
use Actor::*;
use Status::*;
use serde_json::Value;

const ALL: [Status; 6] = [Open, Assigned, EnRoute, OnScene, Resolved, Cancelled];

#[test]
fn the_happy_path_is_allowed_for_the_dispatcher() {
    for (a, b) in [(Open, Assigned), (Assigned, EnRoute), (EnRoute, OnScene), (OnScene, Resolved)] {
        assert_eq!(transition(a, b, Dispatcher), Ok(()), "{a} -> {b}");
    }
}

#[test]
fn responders_move_their_own_request_forward_but_do_not_assign_or_cancel() {
    assert_eq!(transition(Assigned, EnRoute, AssignedResponder), Ok(()));
    assert_eq!(transition(OnScene, Resolved, AssignedResponder), Ok(()));
    assert!(matches!(transition(Open, Assigned, AssignedResponder), Err(TransitionError::Forbidden { .. })));
    assert!(matches!(transition(EnRoute, Cancelled, AssignedResponder), Err(TransitionError::Forbidden { .. })));
}

#[test]
fn requesters_may_only_cancel_before_help_is_on_the_way() {
    assert_eq!(transition(Open, Cancelled, Requester), Ok(()));
    assert_eq!(transition(Assigned, Cancelled, Requester), Ok(()));
    assert!(matches!(transition(EnRoute, Cancelled, Requester), Err(TransitionError::Forbidden { .. })));
    assert!(matches!(transition(Assigned, EnRoute, Requester), Err(TransitionError::Forbidden { .. })));
}

#[test]
fn terminal_states_are_final_and_steps_are_not_skipped() {
    for to in ALL {
        assert!(matches!(transition(Resolved, to, Dispatcher), Err(TransitionError::NotAllowed { .. })));
        assert!(matches!(transition(Cancelled, to, Dispatcher), Err(TransitionError::NotAllowed { .. })));
    }
    assert!(matches!(transition(Open, OnScene, Dispatcher), Err(TransitionError::NotAllowed { .. })));
    assert!(matches!(transition(Assigned, Resolved, Dispatcher), Err(TransitionError::NotAllowed { .. })));
    assert!(matches!(transition(EnRoute, Open, Dispatcher), Err(TransitionError::NotAllowed { .. })));
}

#[test]
fn names_round_trip() {
    for s in ALL {
        assert_eq!(Status::parse(s.as_str()), Some(s));
    }
    assert_eq!(Status::parse("closed"), None);
}

// Verdicts -----------------------------------------------------------------------------------------

use crate::verdict::Verdict;
use proptest::prelude::*;
use serde_json::json;

fn verdict(e: impl Refusal) -> Value {
    Verdict::refuse(&e).into_json()
}

#[test]
fn a_move_outside_the_life_cycle_is_pt422_invalid_transition_with_from_and_to() {
    assert_eq!(
        verdict(transition(EnRoute, Resolved, AssignedResponder).unwrap_err()),
        json!({"ok": false, "sqlstate": "PT422", "message": "an emergency request cannot go from en_route to resolved",
               "detail": {"code": "invalid_transition", "from": "en_route", "to": "resolved"}})
    );
}

#[test]
fn a_move_this_actor_may_not_make_is_42501_forbidden_transition() {
    assert_eq!(
        verdict(transition(EnRoute, Cancelled, Requester).unwrap_err()),
        json!({"ok": false, "sqlstate": "42501", "message": "a requester may not move an emergency request from en_route to cancelled",
               "detail": {"code": "forbidden_transition", "actor": "requester", "from": "en_route", "to": "cancelled"}})
    );
}

#[test]
fn a_status_change_to_assigned_points_at_assign_responder() {
    let v = verdict(status_change(Open, Assigned, Dispatcher).unwrap_err());
    assert_eq!((v["sqlstate"].as_str(), v["detail"]["code"].as_str()), (Some("PT422"), Some("use_assign_responder")));
    assert!(v["hint"].as_str().unwrap().contains("assign_responder"));
    assert_eq!(status_change(Assigned, EnRoute, Dispatcher), Ok(()));
}

// Status lists -------------------------------------------------------------------------------------

#[test]
fn the_status_lists_are_the_life_cycle_in_order() {
    assert_eq!(status_names(|_| true), ["open", "assigned", "en_route", "on_scene", "resolved", "cancelled"]);
    assert_eq!(status_names(Status::is_active), ["open", "assigned", "en_route", "on_scene"]);
    assert_eq!(status_names(Status::has_responder), ["assigned", "en_route", "on_scene"]);
}

#[test]
fn only_moves_between_active_statuses_or_into_a_final_one_exist() {
    for from in ALL {
        for to in ALL {
            if transition(from, to, Dispatcher).is_ok() {
                assert!(from.is_active(), "{from} -> {to}: nothing leaves a final status");
                assert!(to != Open, "{from} -> {to}: nothing goes back to open");
            }
        }
    }
}

// Settings -----------------------------------------------------------------------------------------

#[test]
fn settings_default_when_unset_and_take_a_valid_override() {
    assert_eq!(setting("claim_lapse_minutes", None), Ok(10));
    assert_eq!(setting("claim_lapse_minutes", Some("")), Ok(10), "an empty custom setting is unset");
    assert_eq!(setting("claim_lapse_minutes", Some(" 15 ")), Ok(15));
    assert_eq!(setting("max_open_emergencies", None), Ok(3));
    assert_eq!(setting("max_emergencies_per_window", None), Ok(5));
    assert_eq!(setting("emergency_window_minutes", None), Ok(60));
    assert_eq!(setting("page_burst_minutes", None), Ok(5));
    assert_eq!(setting("page_burst_minutes", Some("0")), Ok(0));
}

#[test]
fn a_bad_setting_is_an_error_naming_it() {
    let e = setting("claim_lapse_minutes", Some("0")).unwrap_err().to_string();
    assert_eq!(e, "careplane.claim_lapse_minutes: must be a whole number between 1 and 1440, got \"0\"");
    assert!(setting("claim_lapse_minutes", Some("ten")).is_err());
    assert!(setting("claim_lapse_minutes", Some("99999999999999999999")).is_err());
    assert!(setting("nap_minutes", None).unwrap_err().to_string().starts_with("setting: unknown dispatch setting \"nap_minutes\""));
}

#[test]
fn every_default_is_within_its_bounds_and_names_are_unique() {
    for s in SETTINGS {
        assert!((s.min..=s.max).contains(&s.default), "{}", s.name);
        assert_eq!(SETTINGS.iter().filter(|t| t.name == s.name).count(), 1, "{}", s.name);
    }
}

// Claims -------------------------------------------------------------------------------------------

const FREE: ResponderState = ResponderState { active: true, on_duty: true, busy: false };

#[test]
fn a_claim_lapses_exactly_at_the_lapse() {
    assert!(claim_is_live(599, 10));
    assert!(!claim_is_live(600, 10));
    assert!(claim_is_live(-5, 10), "a claim from the future (clock skew) is live");
}

#[test]
fn another_dispatchers_live_claim_stops_assignment_and_a_lapsed_one_does_not() {
    let live = Claim::ByAnother { held_for_seconds: 30 };
    let e = check_assignment(Open, live, 10, FREE).unwrap_err();
    let v = verdict(e);
    assert_eq!(v["sqlstate"], "PT409");
    assert_eq!(v["detail"], json!({"code": "claimed_by_another_dispatcher", "lapses_in_seconds": 570}));
    assert_eq!(check_assignment(Open, Claim::ByAnother { held_for_seconds: 600 }, 10, FREE), Ok(()));
    assert_eq!(check_assignment(Open, Claim::ByCaller, 10, FREE), Ok(()));
    assert_eq!(check_assignment(Open, Claim::Unclaimed, 10, FREE), Ok(()));
}

#[test]
fn a_second_dispatcher_cannot_reassign_a_request_just_assigned_by_the_first() {
    // The first assignment renews the first dispatcher's claim; the second arrives a moment later.
    let e = check_assignment(Assigned, Claim::ByAnother { held_for_seconds: 0 }, 10, FREE).unwrap_err();
    assert_eq!(e.code(), "claimed_by_another_dispatcher");
    assert_eq!(check_assignment(Assigned, Claim::ByCaller, 10, FREE), Ok(()), "the claimant may reassign");
}

#[test]
fn assignment_needs_an_active_on_duty_free_responder_and_an_assignable_request() {
    let inactive = ResponderState { active: false, ..FREE };
    assert_eq!(check_assignment(Open, Claim::ByCaller, 10, inactive), Err(DispatchError::ResponderInactive));
    let off = ResponderState { on_duty: false, ..FREE };
    assert_eq!(check_assignment(Open, Claim::ByCaller, 10, off), Err(DispatchError::ResponderOffDuty));
    let busy = ResponderState { busy: true, ..FREE };
    assert_eq!(check_assignment(Open, Claim::ByCaller, 10, busy), Err(DispatchError::ResponderBusy));
    let e = check_assignment(Resolved, Claim::ByCaller, 10, FREE).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("PT422", "invalid_transition"));
}

#[test]
fn release_needs_an_open_claimed_request_held_by_the_caller_or_lapsed() {
    assert_eq!(check_release(Open, Claim::ByCaller, 10), Ok(()));
    assert_eq!(check_release(Open, Claim::ByAnother { held_for_seconds: 601 }, 10), Ok(()));
    assert_eq!(check_release(Open, Claim::ByAnother { held_for_seconds: 1 }, 10).unwrap_err().code(), "claimed_by_another_dispatcher");
    let e = check_release(Open, Claim::Unclaimed, 10).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("PT409", "not_claimed"));
    assert_eq!(check_release(Assigned, Claim::ByCaller, 10), Err(DispatchError::NotClaimed { status: Assigned }));
}

#[test]
fn only_staff_assess_and_only_active_requests() {
    assert_eq!(check_assessment(Open, Dispatcher, true), Ok(()));
    assert_eq!(check_assessment(OnScene, AssignedResponder, true), Ok(()));
    let e = check_assessment(Open, Requester, true).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("42501", "forbidden_assessment"));
    let e = check_assessment(Resolved, Dispatcher, true).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("PT422", "emergency_closed"));
    let e = check_assessment(Open, Dispatcher, false).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("22023", "nothing_to_assess"));
}

#[test]
fn marking_abuse_cancels_an_active_request_with_a_bounded_note() {
    for status in [Open, Assigned, EnRoute, OnScene] {
        assert_eq!(check_abuse_mark(status, 0), Ok(()), "{status}");
    }
    assert_eq!(check_abuse_mark(Resolved, 0).unwrap_err().code(), "invalid_transition");
    assert_eq!(check_abuse_mark(Open, MAX_NOTE_CHARS), Ok(()));
    let v = verdict(check_abuse_mark(Open, MAX_NOTE_CHARS + 1).unwrap_err());
    assert_eq!(v["sqlstate"], "22023");
    assert_eq!(v["detail"], json!({"code": "note_too_long", "chars": 501, "limit": 500}));
}

// Flooding and paging ------------------------------------------------------------------------------

#[test]
fn the_open_limit_is_pt422_and_the_rate_limit_pt429_each_with_its_code() {
    assert_eq!(check_raise(2, 4, 3, 5, 60), Ok(()));
    let v = verdict(check_raise(3, 0, 3, 5, 60).unwrap_err());
    assert_eq!(v["sqlstate"], "PT422");
    assert_eq!(v["detail"], json!({"code": "too_many_open_emergencies", "open": 3, "limit": 3}));
    assert!(v["hint"].as_str().unwrap().contains("emergency number"));
    let v = verdict(check_raise(0, 5, 3, 5, 60).unwrap_err());
    assert_eq!(v["sqlstate"], "PT429");
    assert_eq!(v["detail"], json!({"code": "emergency_rate_limited", "raised": 5, "limit": 5, "window_minutes": 60}));
}

#[test]
fn a_page_goes_out_at_most_once_per_burst() {
    assert!(page_due(None, 5), "the first page goes out");
    assert!(!page_due(Some(0), 5));
    assert!(!page_due(Some(299), 5));
    assert!(page_due(Some(300), 5), "a new burst starts when the last page is page_burst_minutes old");
    assert!(page_due(Some(0), 0), "0 pages every time");
}

proptest! {
    #[test]
    fn a_live_claim_of_another_always_refuses_and_never_otherwise(held in -10_000i64..10_000, lapse in 1i64..1440, st in 0usize..6) {
        let status = ALL[st];
        let r = check_assignment(status, Claim::ByAnother { held_for_seconds: held }, lapse, FREE);
        if transition(status, Assigned, Dispatcher).is_err() {
            prop_assert_eq!(r.unwrap_err().code(), "invalid_transition");
        } else if claim_is_live(held, lapse) {
            prop_assert_eq!(r.unwrap_err().code(), "claimed_by_another_dispatcher");
        } else {
            prop_assert_eq!(r, Ok(()));
        }
    }

    #[test]
    fn raising_is_allowed_exactly_below_both_limits(open in 0i64..20, raised in 0i64..20, max_open in 1i64..10, max_raised in 1i64..10) {
        let r = check_raise(open, raised, max_open, max_raised, 60);
        prop_assert_eq!(r.is_ok(), open < max_open && raised < max_raised);
    }

    #[test]
    fn pages_within_a_burst_never_go_out(ago in 0i64..100_000, burst in 0i64..1440) {
        prop_assert_eq!(page_due(Some(ago), burst), ago >= burst * 60);
    }

    #[test]
    fn any_override_inside_the_bounds_is_taken_and_outside_refused(n in -100i64..3000) {
        let r = setting("claim_lapse_minutes", Some(&n.to_string()));
        prop_assert_eq!(r.is_ok(), (1..=1440).contains(&n));
    }
}
