use super::*;
use crate::scheduling::parse_instant;
use proptest::prelude::*;
use serde_json::json;

use ConsultationStatus::{Ended, InProgress, Scheduled, Waiting};

fn utc(s: &str) -> Instant {
    parse_instant(s).unwrap()
}

/// A 09:00–09:30 UTC slot, looked at `now`.
fn facts(status: ConsultationStatus, appointment: Status, now: &str) -> Facts {
    Facts { status, appointment, slot: Period::new(utc("2026-12-01T09:00:00Z"), utc("2026-12-01T09:30:00Z")), now: utc(now) }
}

fn code(r: Result<Outcome, ConsultationError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

const T: Timing = Timing { waiting_room_opens_minutes: 10, no_show_grace_minutes: 15, auto_end_after_minutes: 30 };

#[test]
fn the_happy_path_moves_consultation_and_appointment_together() {
    let join = decide(Move::Join, Party::Patient, facts(Scheduled, Status::Booked, "2026-12-01T08:55:00Z"), T).unwrap();
    assert_eq!(join, Outcome { to: Waiting, appointment_to: Some(Status::Arrived), starts: false, ends: false, changed: true });
    let admit = decide(Move::Admit, Party::Clinician, facts(Waiting, Status::Arrived, "2026-12-01T09:01:00Z"), T).unwrap();
    assert_eq!(admit, Outcome { to: InProgress, appointment_to: Some(Status::CheckedIn), starts: true, ends: false, changed: true });
    for party in [Party::Patient, Party::Clinician] {
        let end = decide(Move::End, party, facts(InProgress, Status::CheckedIn, "2026-12-01T09:25:00Z"), T).unwrap();
        assert_eq!(end, Outcome { to: Ended, appointment_to: Some(Status::Fulfilled), starts: false, ends: true, changed: true });
    }
}

#[test]
fn the_waiting_room_opens_before_the_start_and_closes_at_the_end() {
    let at = |now| code(decide(Move::Join, Party::Patient, facts(Scheduled, Status::Booked, now), T));
    assert_eq!(at("2026-12-01T08:49:59Z"), "waiting_room_not_open");
    assert_eq!(at("2026-12-01T08:50:00Z"), "ok");
    assert_eq!(at("2026-12-01T09:29:59Z"), "ok");
    assert_eq!(at("2026-12-01T09:30:00Z"), "waiting_room_closed");
    let early = decide(Move::Join, Party::Patient, facts(Scheduled, Status::Booked, "2026-12-01T08:00:00Z"), T).unwrap_err();
    assert_eq!(early.detail()["opens_at"], json!("2026-12-01T08:50:00+00:00"));
    // Opening at the start exactly when the clinic sets 0.
    let zero = Timing { waiting_room_opens_minutes: 0, ..T };
    assert_eq!(code(decide(Move::Join, Party::Patient, facts(Scheduled, Status::Booked, "2026-12-01T08:59:59Z"), zero)), "waiting_room_not_open");
}

#[test]
fn a_patient_who_checked_in_at_the_desk_keeps_that_status_when_joining() {
    let o = decide(Move::Join, Party::Patient, facts(Scheduled, Status::CheckedIn, "2026-12-01T09:00:00Z"), T).unwrap();
    assert_eq!(o.appointment_to, None);
    let o = decide(Move::Admit, Party::Clinician, facts(Waiting, Status::CheckedIn, "2026-12-01T09:00:00Z"), T).unwrap();
    assert_eq!(o.appointment_to, None);
}

#[test]
fn who_may_make_each_move() {
    let cases = [
        (Move::Join, Party::Clinician),
        (Move::Join, Party::System),
        (Move::Admit, Party::Patient),
        (Move::NoShow, Party::Patient),
        (Move::WriteSummary, Party::Patient),
        (Move::AutoEnd, Party::Patient),
        (Move::AutoEnd, Party::Clinician),
        (Move::End, Party::System),
    ];
    for (mv, party) in cases {
        let e = decide(mv, party, facts(Scheduled, Status::Booked, "2026-12-01T09:00:00Z"), T).unwrap_err();
        assert_eq!(e, ConsultationError::Forbidden { party, mv }, "{mv:?} by {party:?}");
        assert_eq!(e.sqlstate(), "42501");
    }
    assert_eq!(
        ConsultationError::Forbidden { party: Party::Patient, mv: Move::Admit }.to_string(),
        "the patient may not admit the patient to a consultation"
    );
}

#[test]
fn moves_from_the_wrong_status_are_invalid_transitions() {
    let cases = [
        (Move::Admit, Party::Clinician, Scheduled),
        (Move::Admit, Party::Clinician, Ended),
        (Move::End, Party::Patient, Scheduled),
        (Move::End, Party::Clinician, Waiting),
        (Move::AutoEnd, Party::System, Waiting),
        (Move::Join, Party::Patient, Ended),
        (Move::NoShow, Party::Clinician, Waiting),
        (Move::NoShow, Party::Clinician, InProgress),
    ];
    for (mv, party, from) in cases {
        let e = decide(mv, party, facts(from, Status::Booked, "2026-12-01T12:00:00Z"), T).unwrap_err();
        assert_eq!(e, ConsultationError::NotAllowed { from, mv }, "{mv:?} from {from:?}");
        assert_eq!(e.sqlstate(), "PT422");
    }
}

#[test]
fn repeating_the_last_move_changes_nothing() {
    let same = |mv, party, status, appointment| {
        let o = decide(mv, party, facts(status, appointment, "2026-12-01T09:10:00Z"), T).unwrap();
        assert_eq!(o, Outcome::unchanged(status), "{mv:?} on {status:?}");
    };
    same(Move::Join, Party::Patient, Waiting, Status::Arrived);
    same(Move::Join, Party::Patient, InProgress, Status::CheckedIn);
    same(Move::Admit, Party::Clinician, InProgress, Status::CheckedIn);
    same(Move::End, Party::Patient, Ended, Status::Fulfilled);
    same(Move::End, Party::Clinician, Ended, Status::Fulfilled);
    same(Move::AutoEnd, Party::System, Ended, Status::Fulfilled);
    same(Move::NoShow, Party::Clinician, Scheduled, Status::Noshow);
}

#[test]
fn a_closed_appointment_closes_the_consultation() {
    for appointment in [Status::Cancelled, Status::Noshow, Status::Proposed, Status::Pending, Status::EnteredInError] {
        let e = decide(Move::Join, Party::Patient, facts(Scheduled, appointment, "2026-12-01T09:00:00Z"), T).unwrap_err();
        assert_eq!(e, ConsultationError::AppointmentNotActive { appointment });
    }
    let e = decide(Move::Admit, Party::Clinician, facts(Waiting, Status::Cancelled, "2026-12-01T09:00:00Z"), T).unwrap_err();
    assert_eq!(e.code(), "appointment_not_active");
}

#[test]
fn a_no_show_waits_for_the_grace_period() {
    let at = |now| code(decide(Move::NoShow, Party::Clinician, facts(Scheduled, Status::Booked, now), T));
    assert_eq!(at("2026-12-01T09:14:59Z"), "no_show_too_early");
    assert_eq!(at("2026-12-01T09:15:00Z"), "ok");
    let o = decide(Move::NoShow, Party::Clinician, facts(Scheduled, Status::Booked, "2026-12-01T10:00:00Z"), T).unwrap();
    assert_eq!(o, Outcome { to: Scheduled, appointment_to: Some(Status::Noshow), starts: false, ends: false, changed: true });
}

#[test]
fn a_patient_shown_as_present_is_no_no_show() {
    for appointment in [Status::Arrived, Status::CheckedIn] {
        let e = decide(Move::NoShow, Party::Clinician, facts(Scheduled, appointment, "2026-12-01T10:00:00Z"), T).unwrap_err();
        assert_eq!(e, ConsultationError::PatientArrived { appointment });
    }
}

#[test]
fn the_sweep_ends_only_overdue_calls() {
    let at = |now| code(decide(Move::AutoEnd, Party::System, facts(InProgress, Status::CheckedIn, now), T));
    assert_eq!(at("2026-12-01T09:59:59Z"), "not_overdue");
    assert_eq!(at("2026-12-01T10:00:00Z"), "ok");
    // A participant may end it any time.
    assert_eq!(code(decide(Move::End, Party::Patient, facts(InProgress, Status::CheckedIn, "2026-12-01T09:01:00Z"), T)), "ok");
}

#[test]
fn the_summary_is_the_clinicians_once_started() {
    for status in [InProgress, Ended] {
        let o = decide(Move::WriteSummary, Party::Clinician, facts(status, Status::Fulfilled, "2026-12-02T00:00:00Z"), T).unwrap();
        assert!(!o.changed);
    }
    for status in [Scheduled, Waiting] {
        let e = decide(Move::WriteSummary, Party::Clinician, facts(status, Status::Booked, "2026-12-01T09:00:00Z"), T).unwrap_err();
        assert_eq!(e, ConsultationError::NotStarted);
    }
}

#[test]
fn the_verdict_reads_and_writes_json() {
    let input = json!({"move": "join", "party": "patient", "status": "scheduled", "appointment_status": "booked",
                       "starts_at": "2026-12-01T09:00:00Z", "ends_at": "2026-12-01T09:30:00Z", "now": "2026-12-01T08:58:00Z"});
    let v = move_verdict(&input).unwrap().into_json();
    assert_eq!(v, json!({"ok": true, "to": "waiting", "appointment_to": "arrived", "starts": false, "ends": false, "changed": true}));

    let mut late = input.clone();
    late["timing"] = json!({"waiting_room_opens_minutes": 1});
    let v = move_verdict(&late).unwrap().into_json();
    assert_eq!(v["ok"], json!(false));
    assert_eq!(v["detail"]["code"], json!("waiting_room_not_open"));

    let bad = |patch: Value, needle: &str| {
        let mut i = input.clone();
        for (k, v) in patch.as_object().unwrap() {
            i[k] = v.clone();
        }
        let e = move_verdict(&i).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    };
    bad(json!({"move": "teleport"}), "input.move");
    bad(json!({"party": "nurse"}), "input.party");
    bad(json!({"status": "paused"}), "input.status");
    bad(json!({"ends_at": "2026-12-01T09:00:00Z"}), "input.ends_at: must be after starts_at");
    bad(json!({"timing": {"no_show_grace_minutes": 241}}), "input.timing.no_show_grace_minutes");
    bad(json!({"timing": {"coffee_minutes": 5}}), "coffee_minutes");
    bad(json!({"extra": 1}), "extra");
}

#[test]
fn settings_take_defaults_and_bounded_overrides() {
    assert_eq!(setting("waiting_room_opens_minutes", None).unwrap(), Timing::default().waiting_room_opens_minutes);
    assert_eq!(setting("no_show_grace_minutes", Some(" 20 ")).unwrap(), 20);
    assert!(setting("auto_end_after_minutes", Some("-1")).unwrap_err().to_string().contains("careplane.auto_end_after_minutes"));
    assert!(setting("nap_minutes", None).unwrap_err().to_string().contains("unknown consultation setting"));
    let defaults = Timing::default();
    for s in SETTINGS {
        let d = match s.name {
            "waiting_room_opens_minutes" => defaults.waiting_room_opens_minutes,
            "no_show_grace_minutes" => defaults.no_show_grace_minutes,
            _ => defaults.auto_end_after_minutes,
        };
        assert_eq!(s.default, d, "{}", s.name);
    }
}

fn any_status() -> impl Strategy<Value = ConsultationStatus> {
    prop::sample::select(ConsultationStatus::ALL.to_vec())
}

fn any_appointment() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

proptest! {
    /// Every decision is consistent with the rest of the rules: only the right party moves,
    /// every appointment move it asks for is one the appointment life cycle has, a start is
    /// recorded exactly when the call starts and an end exactly when it ends.
    #[test]
    fn decisions_agree_with_the_appointment_life_cycle(
        mv in prop::sample::select(Move::ALL.to_vec()),
        party in prop::sample::select(Party::ALL.to_vec()),
        status in any_status(),
        appointment in any_appointment(),
        offset in -180i64..300,
    ) {
        let slot = Period::new(utc("2026-12-01T09:00:00Z"), utc("2026-12-01T09:30:00Z"));
        let now = slot.start + chrono::Duration::minutes(offset);
        match decide(mv, party, Facts { status, appointment, slot, now }, T) {
            Ok(o) => {
                prop_assert!(party_may(party, mv));
                if let Some(to) = o.appointment_to {
                    prop_assert!(in_life_cycle(appointment, to), "{appointment:?} -> {to:?}");
                }
                prop_assert_eq!(o.starts, o.changed && o.to == InProgress);
                prop_assert_eq!(o.ends, o.changed && o.to == Ended);
                if !o.changed {
                    prop_assert_eq!(o.to, status);
                    prop_assert_eq!(o.appointment_to, None);
                }
            }
            Err(ConsultationError::Forbidden { .. }) => prop_assert!(!party_may(party, mv)),
            Err(_) => prop_assert!(party_may(party, mv)),
        }
    }
}

#[test]
fn the_call_is_open_while_waiting_and_in_progress() {
    let open: Vec<_> = ConsultationStatus::ALL.into_iter().filter(|s| call_is_open(*s)).collect();
    assert_eq!(open, vec![Waiting, InProgress]);
}
