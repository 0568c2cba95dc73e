use super::*;
use proptest::prelude::*;

const DOCTOR: &str = "d1000000-0000-4000-8000-000000000001";
const ME: &str = "11111111-1111-4111-8111-111111111111";
const OTHER: &str = "22222222-2222-4222-8222-222222222222";

fn start() -> Instant {
    parse_instant("2027-01-04T09:00:00+01:00").unwrap()
}

/// A patient booking for themselves, everything in order.
fn own() -> BookingRequest {
    BookingRequest {
        signed_in: true,
        on_behalf: false,
        may_book_for_patients: false,
        owns_calendar: false,
        practitioner_found: true,
        patient_found: true,
        patient_is_practitioner: false,
        relationship: false,
        practitioner_id: DOCTOR.into(),
        patient_id: ME.into(),
        starts_at: Some(start()),
        earlier: None,
    }
}

/// The calendar's practitioner booking for `OTHER`.
fn practitioner_for_other() -> BookingRequest {
    BookingRequest { on_behalf: true, owns_calendar: true, patient_id: OTHER.into(), ..own() }
}

#[test]
fn a_patient_books_for_themselves() {
    assert_eq!(plan(&own()), Ok(Plan::Book));
    assert_eq!(plan(&BookingRequest { signed_in: false, ..own() }), Err(BookingError::SignInRequired));
    assert_eq!(plan(&BookingRequest { practitioner_found: false, ..own() }), Err(BookingError::PractitionerNotFound));
    assert_eq!(plan(&BookingRequest { starts_at: None, ..own() }), Err(BookingError::StartsAtRequired));
}

#[test]
fn practitioner_booking_a_stranger_makes_a_proposal() {
    assert_eq!(plan(&practitioner_for_other()), Ok(Plan::Propose));
    let p = Plan::Propose.json();
    assert_eq!(p["status"], "proposed");
    assert_eq!(p["participation"], "needs-action");
    assert_eq!(p["opens_consultation"], false);
}

#[test]
fn practitioner_the_patient_chose_books_directly() {
    assert_eq!(plan(&BookingRequest { relationship: true, ..practitioner_for_other() }), Ok(Plan::Book));
}

#[test]
fn admin_with_book_for_patients_keeps_the_power() {
    let admin = BookingRequest { on_behalf: true, may_book_for_patients: true, patient_id: OTHER.into(), ..own() };
    assert_eq!(plan(&admin), Ok(Plan::Book));
    assert_eq!(plan(&BookingRequest { patient_found: false, ..admin.clone() }), Err(BookingError::PatientNotFound));
    assert_eq!(plan(&BookingRequest { practitioner_found: false, ..admin }), Err(BookingError::PractitionerNotFound));
}

#[test]
fn booking_for_unknown_and_known_user_answer_the_same_without_permission() {
    let stranger = BookingRequest { on_behalf: true, patient_id: OTHER.into(), ..own() };
    assert_eq!(plan(&stranger), Err(BookingError::NotPermitted));
    assert_eq!(plan(&BookingRequest { patient_found: false, ..stranger.clone() }), Err(BookingError::NotPermitted));
    assert_eq!(
        plan(&BookingRequest { practitioner_found: false, ..stranger }),
        Err(BookingError::NotPermitted),
        "nor does an unknown calendar"
    );
}

#[test]
fn no_booking_with_oneself() {
    let r = BookingRequest { patient_is_practitioner: true, ..own() };
    assert_eq!(plan(&r), Err(BookingError::WithThemselves));
}

#[test]
fn idempotency_replays_the_same_request_and_refuses_another() {
    let earlier = Earlier { practitioner_id: DOCTOR.into(), patient_id: ME.into(), starts_at: Some(start()) };
    let again = BookingRequest { earlier: Some(earlier.clone()), ..own() };
    assert_eq!(plan(&again), Ok(Plan::Replay));
    let moved = Earlier { starts_at: Some(start() + chrono::Duration::minutes(30)), ..earlier.clone() };
    assert_eq!(plan(&BookingRequest { earlier: Some(moved), ..own() }), Err(BookingError::IdempotencyKeyReused));
    let other_patient = Earlier { patient_id: OTHER.into(), ..earlier };
    assert_eq!(plan(&BookingRequest { earlier: Some(other_patient), ..own() }), Err(BookingError::IdempotencyKeyReused));
    let v = Verdict::refuse(&BookingError::IdempotencyKeyReused).into_json();
    assert_eq!(v["sqlstate"], "PT409");
    assert_eq!(v["detail"], json!({"code": "idempotency_key_reused", "reasons": ["idempotency_key_reused"]}));
}

#[test]
fn request_json_names_the_field() {
    let good = json!({
        "signed_in": true, "on_behalf": false, "may_book_for_patients": false, "owns_calendar": false,
        "practitioner_found": true, "patient_found": true, "patient_is_practitioner": false, "relationship": false,
        "practitioner_id": DOCTOR, "patient_id": ME, "starts_at": "2027-01-04T09:00:00+01:00", "earlier": null,
    });
    assert_eq!(BookingRequest::from_json(&good).unwrap(), own());
    let err = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        match BookingRequest::from_json(&b) {
            Err(InputError::Invalid { field, .. }) => field,
            Ok(_) => panic!("accepted {k} = {b}"),
        }
    };
    assert_eq!(err("signed_in", Value::Null), "input.signed_in");
    assert_eq!(err("relationship", json!("yes")), "input.relationship");
    assert_eq!(err("starts_at", json!("monday")), "input.starts_at");
    assert_eq!(err("earlier", json!({"starts_at": 5})), "input.earlier.starts_at");
    assert_eq!(err("surprise", json!(1)), "input.surprise");
}

fn any_request() -> impl Strategy<Value = BookingRequest> {
    (prop::collection::vec(any::<bool>(), 9), any::<bool>()).prop_map(|(b, with_start)| BookingRequest {
        signed_in: b[0],
        on_behalf: b[1],
        may_book_for_patients: b[2],
        owns_calendar: b[3],
        practitioner_found: b[4],
        patient_found: b[5],
        patient_is_practitioner: b[6],
        relationship: b[7],
        practitioner_id: DOCTOR.into(),
        patient_id: if b[1] { OTHER.into() } else { ME.into() },
        starts_at: with_start.then(start),
        earlier: b[8].then(|| Earlier { practitioner_id: DOCTOR.into(), patient_id: OTHER.into(), starts_at: Some(start()) }),
    })
}

proptest! {
    /// Permission before existence: without the permission or the calendar, nothing about the
    /// patient (found, related, the same as the practitioner) changes the answer.
    #[test]
    fn without_permission_nothing_about_the_patient_shows(r in any_request(), found: bool, related: bool, same: bool) {
        let r = BookingRequest { signed_in: true, on_behalf: true, may_book_for_patients: false, owns_calendar: false, ..r };
        let probe = BookingRequest { patient_found: found, relationship: related, patient_is_practitioner: same, ..r.clone() };
        prop_assert_eq!(plan(&probe), Err(BookingError::NotPermitted));
        prop_assert_eq!(plan(&r), Err(BookingError::NotPermitted));
    }

    /// Only a patient's own booking, an admin's, or a practitioner the patient chose is booked
    /// straight away; every other booking on someone's behalf is a proposal.
    #[test]
    fn booked_straight_away_only_with_the_patients_consent_or_the_permission(r in any_request()) {
        if plan(&r) == Ok(Plan::Book) {
            prop_assert!(!r.on_behalf || r.may_book_for_patients || (r.owns_calendar && r.relationship));
        }
        if plan(&r) == Ok(Plan::Propose) {
            prop_assert!(r.on_behalf && r.owns_calendar && !r.may_book_for_patients && !r.relationship);
        }
    }

    /// A patient's booking for themselves does not depend on the facts about booking on
    /// someone's behalf, which is why the RPC reads them only then (and passes false).
    #[test]
    fn a_booking_for_oneself_ignores_the_on_behalf_facts(r in any_request(), may: bool, owns: bool, related: bool) {
        let own = BookingRequest { on_behalf: false, patient_id: ME.into(), ..r };
        let unread = BookingRequest { may_book_for_patients: false, owns_calendar: false, relationship: false, ..own.clone() };
        let probe = BookingRequest { may_book_for_patients: may, owns_calendar: owns, relationship: related, ..own };
        prop_assert_eq!(plan(&probe), plan(&unread));
    }
}
