use super::json::{apply_verdict, canonical_uuid, parse_instant, request_verdict};
use super::transfer::{check_reversal, decide, may_resolve, pending_state, Body, Instant, Outcome, Request, Situation, Stored};
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn account(id: &str, currency: &str, flags: Flags) -> Account {
    Account { id: id.into(), currency: currency.into(), flags, debits_posted: 0, credits_posted: 0, debits_pending: 0, credits_pending: 0 }
}

fn leg(account: &str, direction: Direction, amount: i64, currency: &str) -> Leg {
    Leg { account_id: account.into(), direction, amount, currency: currency.into() }
}

fn book_of(accounts: &[Account]) -> BTreeMap<String, Account> {
    accounts.iter().map(|a| (a.id.clone(), a.clone())).collect()
}

/// A funded wallet (credit balance 10_000), a clinic revenue account and a USD account.
fn world() -> BTreeMap<String, Account> {
    let mut wallet = account("wallet", "NGN", Flags::DebitsMustNotExceedCredits);
    wallet.credits_posted = 10_000;
    let mut cash = account("cash", "NGN", Flags::CreditsMustNotExceedDebits);
    cash.debits_posted = 10_000;
    book_of(&[wallet, cash, account("revenue", "NGN", Flags::None), account("usd", "USD", Flags::None)])
}

use Direction::{Credit, Debit};

// Balances ------------------------------------------------------------------------------------

#[test]
fn a_balanced_transfer_moves_money() {
    let after = apply(&world(), &Action::Post(vec![leg("wallet", Debit, 4_000, "NGN"), leg("revenue", Credit, 4_000, "NGN")])).unwrap();
    assert_eq!((after["wallet"].debits_posted, after["revenue"].credits_posted), (4_000, 4_000));
}

#[test]
fn each_error_has_its_own_code() {
    let w = world();
    let err = |a: Action| apply(&w, &a).unwrap_err();
    let e = err(Action::Post(vec![leg("wallet", Debit, 100, "NGN"), leg("revenue", Credit, 90, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG001", "unbalanced"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 100, "NGN"), leg("usd", Credit, 100, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG002", "mixed_currency"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 10_001, "NGN"), leg("revenue", Credit, 10_001, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG003", "exceeds_credits"));
    let e = err(Action::Post(vec![leg("revenue", Debit, 1, "NGN"), leg("cash", Credit, 10_001, "NGN"), leg("revenue", Debit, 10_000, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG003", "exceeds_debits"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 0, "NGN"), leg("revenue", Credit, 0, "NGN")]));
    assert_eq!((e.sqlstate(), e.code(), e.to_string().as_str()), ("LG009", "invalid_amount", "legs[0].amount must be a positive whole number of minor units, got 0"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 5, "NGN")]));
    assert_eq!(e.sqlstate(), "LG011");
    let e = err(Action::Post(vec![leg("wallet", Debit, 5, "NGN"), leg("revenue", Debit, 5, "NGN")]));
    assert_eq!((e.sqlstate(), e.to_string().as_str()), ("LG011", "invalid legs: a transfer needs a debit and a credit"));
    let e = err(Action::Post(vec![leg("ghost", Debit, 5, "NGN"), leg("revenue", Credit, 5, "NGN")]));
    assert_eq!(e.sqlstate(), "LG010");
    let e = err(Action::Reserve(vec![leg("wallet", Debit, 5, "NGN"), leg("revenue", Credit, 3, "NGN"), leg("revenue", Credit, 2, "NGN")]));
    assert_eq!(e.sqlstate(), "LG011", "pending transfers have exactly two legs");
}

#[test]
fn two_phase_reserve_post_in_part_and_never_more_than_reserved() {
    let legs = vec![leg("wallet", Debit, 6_000, "NGN"), leg("revenue", Credit, 6_000, "NGN")];
    let reserved = apply(&world(), &Action::Reserve(legs.clone())).unwrap();
    assert_eq!((reserved["wallet"].debits_pending, reserved["wallet"].debits_posted), (6_000, 0));
    // The reservation counts against the wallet's flag.
    let e = apply(&reserved, &Action::Post(vec![leg("wallet", Debit, 4_001, "NGN"), leg("revenue", Credit, 4_001, "NGN")])).unwrap_err();
    assert_eq!(e.code(), "exceeds_credits");
    let e = apply(&reserved, &Action::PostPending { legs: legs.clone(), amount: Some(6_001) }).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("LG005", "exceeds_pending_amount"));
    let e = apply(&reserved, &Action::PostPending { legs: legs.clone(), amount: Some(0) }).unwrap_err();
    assert_eq!((e.sqlstate(), e.to_string().as_str()), ("LG009", "amount must be a positive whole number of minor units, got 0"));
    let posted = apply(&reserved, &Action::PostPending { legs: legs.clone(), amount: Some(2_500) }).unwrap();
    assert_eq!((posted["wallet"].debits_pending, posted["wallet"].debits_posted, posted["revenue"].credits_posted), (0, 2_500, 2_500));
    let voided = apply(&reserved, &Action::VoidPending { legs }).unwrap();
    assert_eq!(voided, world());
}

#[test]
fn a_balance_past_the_bigint_limit_is_lg009_not_a_wrap() {
    let mut revenue = account("revenue", "NGN", Flags::None);
    revenue.credits_posted = i64::MAX - 5;
    let w = book_of(&[revenue, account("src", "NGN", Flags::None)]);
    let at_limit = apply(&w, &Action::Post(vec![leg("src", Debit, 5, "NGN"), leg("revenue", Credit, 5, "NGN")])).unwrap();
    assert_eq!(at_limit["revenue"].credits_posted, i64::MAX, "the bigint limit itself is a valid balance");
    let e = apply(&at_limit, &Action::Post(vec![leg("src", Debit, 1, "NGN"), leg("revenue", Credit, 1, "NGN")])).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("LG009", "overflow"));
    assert_eq!(e.to_string(), "account revenue: credits_posted would pass the bigint limit (9223372036854775807)");
}

#[test]
fn flag_sums_are_compared_without_overflow() {
    // debits_posted + debits_pending is past i64::MAX: compared in i128, it is an overdraft.
    let mut a = account("w", "NGN", Flags::DebitsMustNotExceedCredits);
    (a.debits_posted, a.debits_pending, a.credits_posted) = (i64::MAX, 1, i64::MAX);
    assert_eq!(a.flag_violation().map(|e| e.code()), Some("exceeds_credits"));
    assert!(flags_hold(Flags::CreditsMustNotExceedDebits, i64::MAX, i64::MAX, 0, 0));
    assert!(!flags_hold(Flags::CreditsMustNotExceedDebits, 0, 1, 0, 0));
    assert!(flags_hold(Flags::None, 0, i64::MAX, i64::MAX, 0));
}

// Lists ---------------------------------------------------------------------------------------

#[test]
fn every_list_has_one_spelling_that_parses_back() {
    assert_eq!(Flags::names(), ["none", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits"]);
    assert_eq!(TransferType::names(), ["posted", "pending", "post_pending", "void_pending"]);
    assert_eq!(Direction::names(), ["debit", "credit"]);
    assert_eq!(VoidReason::names(), ["voided", "expired"]);
    assert_eq!(PendingState::names(), ["pending", "posted", "voided", "expired"]);
    for f in Flags::ALL {
        assert_eq!(Flags::parse(f.as_str()), Some(*f));
    }
    for t in TransferType::ALL {
        assert_eq!(TransferType::parse(t.as_str()), Some(*t));
        assert_eq!(t.resolves_pending(), t.as_str().ends_with("_pending"));
        assert_eq!(t.posts(), matches!(t.as_str(), "posted" | "post_pending"));
    }
    assert_eq!(TransferType::expected(), "posted, pending, post_pending or void_pending");
}

// Requests ------------------------------------------------------------------------------------

const A: &str = "1b000000-0000-4000-8000-000000000001";
const B: &str = "1b000000-0000-4000-8000-000000000002";
const C: &str = "1b000000-0000-4000-8000-000000000003";
const T1: &str = "2a000000-0000-4000-8000-000000000001";
const T2: &str = "2a000000-0000-4000-8000-000000000002";
const T3: &str = "2a000000-0000-4000-8000-000000000003";

fn legs_value(debit: &str, credit: &str, amount: Value) -> Value {
    json!([{"account_id": debit, "direction": "debit", "amount": amount, "currency": "KES"},
           {"account_id": credit, "direction": "credit", "amount": amount, "currency": "KES"}])
}

fn refused(v: &crate::verdict::Verdict) -> (String, String) {
    let j = v.clone().into_json();
    (j["sqlstate"].as_str().unwrap_or("").to_owned(), j["detail"]["code"].as_str().unwrap_or("").to_owned())
}

#[test]
fn a_request_reads_into_its_canonical_form_and_the_accounts_to_lock() {
    let upper = A.to_uppercase();
    let v = request_verdict(&json!({"id": T1, "type": "posted", "kind": "top_up", "legs": legs_value(B, &upper, json!(100)), "description": null})).unwrap();
    let j = v.into_json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["account_ids"], json!([A, B]), "sorted, lower case, each once");
    assert_eq!(j["request"], json!({"id": T1, "type": "posted", "kind": "top_up", "legs": legs_value(B, A, json!(100))}));
    // The canonical form reads back as itself.
    let again = request_verdict(&j["request"]).unwrap().into_json();
    assert_eq!(again["request"], j["request"]);
}

#[test]
fn malformed_requests_name_the_field() {
    let err = |v: Value| request_verdict(&v).unwrap_err().to_string();
    assert_eq!(err(json!({"type": "posted"})), "request.id: required");
    assert_eq!(err(json!({"id": "nope", "type": "posted"})), "request.id: must be a UUID, got \"nope\"");
    assert_eq!(err(json!({"id": T1, "type": "sideways"})), "request.type: must be posted, pending, post_pending or void_pending, got \"sideways\"");
    assert_eq!(err(json!({"id": T1, "type": "posted", "legs": []})), "request.kind: required");
    assert_eq!(err(json!({"id": T1, "type": "posted", "kind": "x", "legs": [], "pending_id": T2})), "request.pending_id: not taken by a posted transfer");
    assert_eq!(err(json!({"id": T1, "type": "pending", "kind": "x", "legs": [], "timeout_seconds": -1})),
               "request.timeout_seconds: must be a whole number between 0 and 2147483647, got -1");
    assert_eq!(err(json!({"id": T1, "type": "post_pending"})), "request.pending_id: required");
    assert_eq!(err(json!({"id": T1, "type": "void_pending", "pending_id": T2, "void_reason": "bored"})),
               "request.void_reason: must be voided or expired, got \"bored\"");
    let bad_leg = json!([{"account_id": A, "direction": "sideways", "amount": 5, "currency": "KES"}]);
    assert_eq!(err(json!({"id": T1, "type": "posted", "kind": "x", "legs": bad_leg})),
               "request.legs[0].direction: must be debit or credit, got \"sideways\"");
    let past_limit: Value = serde_json::from_str(&format!(r#"[{{"account_id": "{A}", "direction": "debit", "amount": 9223372036854775808, "currency": "KES"}}]"#)).unwrap();
    assert!(err(json!({"id": T1, "type": "posted", "kind": "x", "legs": past_limit}))
        .starts_with("request.legs[0].amount: must be a whole number between -9223372036854775808 and 9223372036854775807, got 9223372036854775808"));
    let unknown_currency = json!([{"account_id": A, "direction": "debit", "amount": 5, "currency": "XXX"}]);
    assert!(err(json!({"id": T1, "type": "posted", "kind": "x", "legs": unknown_currency})).starts_with("request.legs[0].currency: "));
}

#[test]
fn legs_that_are_not_an_array_are_lg011() {
    for legs in [Value::Null, json!({}), json!("[]"), json!(3)] {
        let v = request_verdict(&json!({"id": T1, "type": "posted", "kind": "x", "legs": legs})).unwrap();
        assert_eq!(refused(&v), ("LG011".into(), "invalid_legs".into()), "{legs}");
    }
}

// Decisions -----------------------------------------------------------------------------------

fn now() -> Instant {
    parse_instant("2026-11-26T10:00:00.000000+00:00").unwrap()
}

fn kes_world() -> BTreeMap<String, Account> {
    let mut wallet = account(A, "KES", Flags::DebitsMustNotExceedCredits);
    wallet.credits_posted = 100_000;
    let mut clearing = account(B, "KES", Flags::CreditsMustNotExceedDebits);
    clearing.debits_posted = 100_000;
    book_of(&[wallet, clearing, account(C, "KES", Flags::None)])
}

fn situation() -> Situation {
    Situation { accounts: kes_world(), pending: None, pending_resolution: None, existing: None, reversed: None, reversed_by: None, now: now() }
}

fn post(id: &str, legs: Vec<Leg>) -> Request {
    Request { id: id.into(), description: None, body: Body::Post { kind: "fee".into(), legs, reverses: None } }
}

fn stored(id: &str, transfer_type: TransferType, legs: Vec<Leg>) -> Stored {
    Stored {
        id: id.into(),
        transfer_type,
        kind: "fee".into(),
        description: None,
        reverses: None,
        pending_id: None,
        amount: None,
        created_at: now() - chrono::TimeDelta::minutes(5),
        timeout_at: None,
        void_reason: None,
        legs,
    }
}

fn created(o: Outcome) -> (transfer::NewTransfer, Vec<Leg>, BTreeMap<String, Account>) {
    match o {
        Outcome::Created { transfer, entries, accounts } => (transfer, entries, accounts),
        Outcome::Exists => panic!("expected a new transfer"),
    }
}

#[test]
fn a_post_answers_the_row_its_entries_and_only_the_balances_that_changed() {
    let legs = vec![leg(A, Debit, 4_000, "KES"), leg(C, Credit, 4_000, "KES")];
    let (t, entries, accounts) = created(decide(&post(T1, legs.clone()), &situation()).unwrap());
    assert_eq!((t.transfer_type, t.kind.as_str(), t.amount, t.timeout_at), (TransferType::Posted, "fee", None, None));
    assert_eq!(entries, legs);
    assert_eq!(accounts.keys().collect::<Vec<_>>(), [A, C], "the clearing account did not change");
    assert_eq!((accounts[A].debits_posted, accounts[C].credits_posted), (4_000, 4_000));
}

#[test]
fn the_same_request_twice_is_the_same_transfer_and_a_different_one_names_the_fields() {
    let legs = vec![leg(B, Debit, 100, "KES"), leg(A, Credit, 100, "KES")];
    let mut s = situation();
    s.existing = Some(stored(T1, TransferType::Posted, legs.clone()));
    assert_eq!(decide(&post(T1, legs.clone()), &s), Ok(Outcome::Exists));
    let mut other = post(T1, vec![leg(B, Debit, 101, "KES"), leg(A, Credit, 101, "KES")]);
    let e = decide(&other, &s).unwrap_err();
    assert_eq!((e.sqlstate(), e.to_string().as_str()), ("LG004", "transfer 2a000000-0000-4000-8000-000000000001 already exists with a different legs"));
    other.description = Some("top-up".into());
    let e = decide(&other, &s).unwrap_err();
    assert_eq!(e, LedgerError::ExistsWithDifferent { id: T1.into(), fields: vec!["description".into(), "legs".into()] });
    // The same id for another type of transfer differs in its type too.
    let reserve = Request { id: T1.into(), description: None, body: Body::Reserve { kind: "fee".into(), legs, timeout_seconds: Some(60) } };
    let e = decide(&reserve, &s).unwrap_err();
    assert_eq!(e, LedgerError::ExistsWithDifferent { id: T1.into(), fields: vec!["timeout_seconds".into(), "type".into()] });
}

#[test]
fn a_retried_reservation_matches_its_timeout_and_a_retried_post_its_default_amount() {
    let legs = vec![leg(A, Debit, 6_000, "KES"), leg(C, Credit, 6_000, "KES")];
    let reserve = Request { id: T2.into(), description: None, body: Body::Reserve { kind: "fee".into(), legs: legs.clone(), timeout_seconds: Some(3600) } };
    let (t, _, _) = created(decide(&reserve, &situation()).unwrap());
    assert_eq!(t.timeout_at, Some(now() + chrono::TimeDelta::hours(1)));
    // Stored as the writer stores it (created now), the retry is the same request.
    let mut pending = stored(T2, TransferType::Pending, legs.clone());
    (pending.created_at, pending.timeout_at) = (now(), t.timeout_at);
    let mut s = situation();
    s.existing = Some(pending.clone());
    assert_eq!(decide(&reserve, &s), Ok(Outcome::Exists));

    // Posting it in full without an amount; the retry names the amount explicitly: the same.
    let mut s = situation();
    s.pending = Some(pending.clone());
    let post_all = Request { id: T3.into(), description: None, body: Body::PostPending { pending_id: T2.into(), amount: None } };
    let (t, entries, _) = created(decide(&post_all, &s).unwrap());
    assert_eq!((t.amount, t.kind.as_str(), t.pending_id.as_deref()), (Some(6_000), "fee", Some(T2)));
    assert_eq!(entries, legs);
    let mut done = stored(T3, TransferType::PostPending, vec![]);
    (done.pending_id, done.amount) = (Some(T2.into()), Some(6_000));
    s.existing = Some(done);
    let explicit = Request { id: T3.into(), description: None, body: Body::PostPending { pending_id: T2.into(), amount: Some(6_000) } };
    assert_eq!(decide(&explicit, &s), Ok(Outcome::Exists));
    assert_eq!(decide(&post_all, &s), Ok(Outcome::Exists));
}

fn reserved_world(timeout_at: Option<Instant>) -> Situation {
    let legs = vec![leg(A, Debit, 6_000, "KES"), leg(C, Credit, 6_000, "KES")];
    let mut s = situation();
    s.accounts = apply(&s.accounts, &Action::Reserve(legs.clone())).unwrap();
    let mut pending = stored(T2, TransferType::Pending, legs);
    pending.timeout_at = timeout_at;
    s.pending = Some(pending);
    s
}

fn resolution(transfer_type: TransferType, reason: Option<VoidReason>) -> Stored {
    let mut r = stored(T3, transfer_type, vec![]);
    (r.pending_id, r.void_reason) = (Some(T2.into()), reason);
    r
}

fn post_pending(amount: Option<i64>) -> Request {
    Request { id: "2a000000-0000-4000-8000-0000000000ff".into(), description: None, body: Body::PostPending { pending_id: T2.into(), amount } }
}

fn void(reason: VoidReason) -> Request {
    Request { id: "2a000000-0000-4000-8000-0000000000fe".into(), description: None, body: Body::VoidPending { pending_id: T2.into(), reason } }
}

#[test]
fn pending_state_boundaries() {
    let t = now();
    let us = chrono::TimeDelta::microseconds(1);
    let pending = |timeout_at| {
        let mut p = stored(T2, TransferType::Pending, vec![]);
        p.timeout_at = timeout_at;
        p
    };
    use PendingState::*;
    for (timeout_at, resolution, state) in [
        (None, None, Pending),
        (Some(t + us), None, Pending),
        (Some(t), None, Expired), // the timeout instant itself is expired
        (Some(t - us), None, Expired),
        (Some(t + us), Some(resolution(TransferType::PostPending, None)), Posted),
        (Some(t - us), Some(resolution(TransferType::PostPending, None)), Posted),
        (None, Some(resolution(TransferType::VoidPending, Some(VoidReason::Voided))), Voided),
        (Some(t - us), Some(resolution(TransferType::VoidPending, Some(VoidReason::Expired))), Expired),
    ] {
        assert_eq!(pending_state(&pending(timeout_at), resolution.as_ref(), t), state, "{timeout_at:?} {resolution:?}");
    }
}

#[test]
fn only_the_sweep_releases_an_expired_hold_once_and_never_an_open_one() {
    use PendingState::*;
    // (state, resolved, expiring) → answer
    for (state, resolved, expiring, answer) in [
        (Pending, false, false, Ok(())),
        (Pending, false, true, Err("LG014")),
        (Expired, false, true, Ok(())),
        (Expired, false, false, Err("LG008")),
        (Expired, true, true, Err("LG008")),
        (Posted, true, false, Err("LG006")),
        (Posted, true, true, Err("LG006")),
        (Voided, true, false, Err("LG007")),
        (Voided, true, true, Err("LG007")),
    ] {
        assert_eq!(may_resolve(T2, state, resolved, expiring).map_err(|e| e.sqlstate()), answer, "{state:?} {resolved} {expiring}");
    }
}

#[test]
fn resolving_a_hold_through_decide() {
    let past = Some(now() - chrono::TimeDelta::seconds(1));
    let future = Some(now() + chrono::TimeDelta::seconds(1));
    let code = |s: &Situation, r: &Request| decide(r, s).map(|_| ()).map_err(|e| e.sqlstate());

    let open = reserved_world(future);
    let (t, entries, accounts) = created(decide(&post_pending(Some(2_500)), &open).unwrap());
    assert_eq!((t.amount, entries.iter().map(|l| l.amount).collect::<Vec<_>>()), (Some(2_500), vec![2_500, 2_500]));
    assert_eq!((accounts[A].debits_pending, accounts[A].debits_posted), (0, 2_500));
    assert_eq!(code(&open, &post_pending(Some(6_001))), Err("LG005"));
    assert_eq!(code(&open, &void(VoidReason::Expired)), Err("LG014"));
    let (t, entries, accounts) = created(decide(&void(VoidReason::Voided), &open).unwrap());
    assert_eq!((t.void_reason, entries.len(), accounts[A].debits_pending), (Some(VoidReason::Voided), 0, 0));

    let expired = reserved_world(past);
    assert_eq!(code(&expired, &post_pending(None)), Err("LG008"));
    assert_eq!(code(&expired, &void(VoidReason::Voided)), Err("LG008"));
    let (t, _, accounts) = created(decide(&void(VoidReason::Expired), &expired).unwrap());
    assert_eq!((t.void_reason, t.kind.as_str(), accounts[A].debits_pending, accounts[C].credits_pending), (Some(VoidReason::Expired), "fee", 0, 0));

    let mut swept = reserved_world(past);
    swept.pending_resolution = Some(resolution(TransferType::VoidPending, Some(VoidReason::Expired)));
    assert_eq!(code(&swept, &void(VoidReason::Expired)), Err("LG008"), "a hold is swept once");

    let mut posted = reserved_world(future);
    posted.pending_resolution = Some(resolution(TransferType::PostPending, None));
    assert_eq!(code(&posted, &post_pending(None)), Err("LG006"));
    assert_eq!(code(&posted, &void(VoidReason::Voided)), Err("LG006"));

    // No pending transfer, or one that is not pending: LG013, before anything else.
    let mut s = situation();
    assert_eq!(code(&s, &post_pending(None)), Err("LG013"));
    s.pending = Some(stored(T2, TransferType::Posted, vec![leg(A, Debit, 5, "KES"), leg(C, Credit, 5, "KES")]));
    s.existing = Some(stored("2a000000-0000-4000-8000-0000000000fe", TransferType::Posted, vec![]));
    assert_eq!(code(&s, &void(VoidReason::Voided)), Err("LG013"));
}

#[test]
fn a_reversal_mirrors_a_posted_transfer_once() {
    let original = stored(T1, TransferType::Posted, vec![leg(A, Debit, 300, "KES"), leg(C, Credit, 200, "KES"), leg(C, Credit, 100, "KES")]);
    let mirror = vec![leg(C, Debit, 300, "KES"), leg(A, Credit, 300, "KES")];
    assert_eq!(check_reversal(T2, &mirror, T1, Some(&original), None), Ok(()), "legs are compared per account and direction");
    let e = check_reversal(T2, &[leg(C, Debit, 299, "KES"), leg(A, Credit, 299, "KES")], T1, Some(&original), None).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("LG012", "reversal_not_exact"));
    let e = check_reversal(T2, &original.legs, T1, Some(&original), None).unwrap_err();
    assert_eq!(e.code(), "reversal_not_exact", "the same directions are a repeat, not a reversal");
    let e = check_reversal(T2, &mirror, T1, None, None).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("LG012", "reversed_not_posted"));
    let pending = stored(T1, TransferType::Pending, original.legs.clone());
    assert_eq!(check_reversal(T2, &mirror, T1, Some(&pending), None).unwrap_err().code(), "reversed_not_posted");
    let by = stored(T3, TransferType::Posted, mirror.clone());
    let e = check_reversal(T2, &mirror, T1, Some(&original), Some(&by)).unwrap_err();
    assert_eq!((e.sqlstate(), e.code(), e.to_string().as_str()),
               ("LG012", "already_reversed", "transfer 2a000000-0000-4000-8000-000000000001 was already reversed by transfer 2a000000-0000-4000-8000-000000000003"));

    // Through decide: the balances are checked first, then the reversal.
    let mut s = situation();
    s.accounts.get_mut(C).unwrap().credits_posted = 300;
    s.accounts.get_mut(A).unwrap().debits_posted = 300;
    s.reversed = Some(original);
    let mut request = post(T2, mirror);
    if let Body::Post { reverses, .. } = &mut request.body {
        *reverses = Some(T1.into());
    }
    let (t, _, _) = created(decide(&request, &s).unwrap());
    assert_eq!(t.reverses.as_deref(), Some(T1));
}

// JSON, end to end, and money at the limits ---------------------------------------------------

fn input(request: Value, accounts: Value) -> Value {
    json!({"request": request, "accounts": accounts, "now": "2026-11-26T10:00:00.123456+01:00"})
}

fn accounts_json(balance: i64) -> Value {
    json!([
        {"id": A, "currency": "KES", "flags": "none", "debits_posted": balance, "credits_posted": 0, "debits_pending": 0, "credits_pending": 0},
        {"id": C, "currency": "KES", "flags": "none", "debits_posted": 0, "credits_posted": balance, "debits_pending": 0, "credits_pending": 0},
    ])
}

#[test]
fn two_pow_53_plus_one_is_posted_exactly() {
    let text = format!(
        r#"{{"request": {{"id": "{T1}", "type": "posted", "kind": "x", "legs": [
             {{"account_id": "{A}", "direction": "debit", "amount": 9007199254740993, "currency": "KES"}},
             {{"account_id": "{C}", "direction": "credit", "amount": 9007199254740993, "currency": "KES"}}]}},
           "accounts": {}, "now": "2026-11-26T10:00:00Z"}}"#,
        accounts_json(0)
    );
    let v = apply_verdict(&serde_json::from_str(&text).unwrap()).unwrap().into_json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries"][0]["amount"].as_i64(), Some(9_007_199_254_740_993));
    assert_eq!(v["accounts"][0]["debits_posted"].as_i64(), Some(9_007_199_254_740_993));
    assert_eq!(serde_json::to_string(&v["accounts"][1]["credits_posted"]).unwrap(), "9007199254740993");
}

#[test]
fn the_bigint_limit_is_posted_and_one_more_is_refused() {
    let request = |amount: i64| json!({"id": T1, "type": "posted", "kind": "x", "legs": legs_value(A, C, json!(amount))});
    let v = apply_verdict(&input(request(i64::MAX), accounts_json(0))).unwrap().into_json();
    assert_eq!(v["accounts"][1]["credits_posted"].as_i64(), Some(i64::MAX), "{v}");
    let v = apply_verdict(&input(request(1), accounts_json(i64::MAX))).unwrap().into_json();
    assert_eq!((v["sqlstate"].as_str(), v["detail"]["code"].as_str()), (Some("LG009"), Some("overflow")), "{v}");
    assert_eq!(v["detail"]["balance"], "debits_posted");
    assert_eq!(v["message"], format!("account {A}: debits_posted would pass the bigint limit (9223372036854775807)"));
}

#[test]
fn a_refusal_is_a_verdict_whose_detail_carries_the_code() {
    let v = apply_verdict(&input(
        json!({"id": T1, "type": "posted", "kind": "x", "legs": [
            {"account_id": A, "direction": "debit", "amount": 5, "currency": "KES"},
            {"account_id": C, "direction": "credit", "amount": 4, "currency": "KES"}]}),
        accounts_json(0),
    ))
    .unwrap()
    .into_json();
    assert_eq!(
        v,
        json!({"ok": false, "sqlstate": "LG001", "message": "the transfer does not balance in KES: debits 5, credits 4",
               "detail": {"code": "unbalanced", "currency": "KES", "debits": 5, "credits": 4}})
    );
}

#[test]
fn a_reservation_answers_its_timeout_in_utc() {
    let v = apply_verdict(&input(
        json!({"id": T2, "type": "pending", "kind": "hold", "legs": legs_value(A, C, json!(5)), "timeout_seconds": 90}),
        accounts_json(0),
    ))
    .unwrap()
    .into_json();
    assert_eq!(v["transfer"]["timeout_at"], "2026-11-26T09:01:30.123456Z", "{v}");
    assert_eq!(v["transfer"]["type"], "pending");
    assert_eq!(v["accounts"][0]["debits_pending"], 5);
}

#[test]
fn stored_transfers_read_as_postgres_writes_them() {
    let existing = json!({"id": T1, "kind": "top_up", "description": null, "reverses": null, "created_at": "2026-11-26T10:00:00.5+01:00",
                          "type": "posted", "pending_id": null, "amount": null, "timeout_at": null, "void_reason": null,
                          "legs": legs_value(A, C, json!(5))});
    let mut i = input(json!({"id": T1, "type": "posted", "kind": "top_up", "legs": legs_value(A, C, json!(5))}), accounts_json(0));
    i["existing"] = existing;
    assert_eq!(apply_verdict(&i).unwrap().into_json(), json!({"ok": true, "outcome": "exists"}));
    i["existing"]["surprise"] = json!(1);
    assert!(apply_verdict(&i).unwrap_err().to_string().starts_with("input.existing.surprise: unknown field"));
    assert_eq!(canonical_uuid("1B000000-0000-4000-8000-00000000000A").as_deref(), Some("1b000000-0000-4000-8000-00000000000a"));
    assert_eq!(canonical_uuid("1b0000000000-4000-8000-000000000001-"), None);
    assert_eq!(parse_instant("1900-01-01T00:13:35+00:13:35"), parse_instant("1900-01-01T00:00:00Z"), "historical offsets with seconds");
    assert_eq!(parse_instant("1900-01-01T00:00:00-00:13:3x"), None);
}

// Properties ----------------------------------------------------------------------------------

const IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn accounts() -> BTreeMap<String, Account> {
    let flags = [Flags::DebitsMustNotExceedCredits, Flags::CreditsMustNotExceedDebits, Flags::None];
    let mut m: BTreeMap<String, Account> = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), account(id, if i < 5 { "NGN" } else { "KWD" }, flags[i % 3])))
        .collect();
    // Opening balances: a (credit-balance) funded from b (debit-balance).
    m.get_mut("a").unwrap().credits_posted = 50_000;
    m.get_mut("b").unwrap().debits_posted = 50_000;
    m
}

fn invariants(m: &BTreeMap<String, Account>) -> Result<(), String> {
    for currency in ["NGN", "KWD"] {
        let (mut d, mut c, mut dq, mut cq) = (0i128, 0i128, 0i128, 0i128);
        for a in m.values().filter(|a| a.currency == currency) {
            d += i128::from(a.debits_posted);
            c += i128::from(a.credits_posted);
            dq += i128::from(a.debits_pending);
            cq += i128::from(a.credits_pending);
            if a.debits_posted < 0 || a.credits_posted < 0 || a.debits_pending < 0 || a.credits_pending < 0 {
                return Err(format!("negative balance on {}", a.id));
            }
            if a.flag_violation().is_some() {
                return Err(format!("{} overdrawn", a.id));
            }
        }
        if d != c || dq != cq {
            return Err(format!("{currency} does not balance"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Post(usize, usize, i64),
    Reserve(usize, usize, i64),
    Settle(usize, Option<i64>, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..IDS.len(), 0..IDS.len(), 1i64..20_000).prop_map(|(a, b, n)| Op::Post(a, b, n)),
        (0..IDS.len(), 0..IDS.len(), 1i64..20_000).prop_map(|(a, b, n)| Op::Reserve(a, b, n)),
        (0usize..8, prop::option::of(1i64..25_000), any::<bool>()).prop_map(|(i, n, post)| Op::Settle(i, n, post)),
    ]
}

/// Amounts near 2^53 (where `f64` stops being exact) and near the `bigint` limit.
fn edge_amount() -> impl Strategy<Value = i64> {
    const TWO_53: i64 = 1 << 53;
    prop_oneof![(TWO_53 - 3)..=(TWO_53 + 3), (i64::MAX - 3)..=i64::MAX, (i64::MAX / 2 - 3)..=(i64::MAX / 2 + 3)]
}

proptest! {
    #[test]
    fn random_transfer_sequences_keep_every_invariant(ops in prop::collection::vec(op(), 1..60)) {
        let mut m = accounts();
        let mut pendings: Vec<(Vec<Leg>, PendingState)> = Vec::new();
        for op in ops {
            let currency_of = |i: usize| if i < 5 { "NGN" } else { "KWD" };
            let (action, pending_index) = match op {
                Op::Post(a, b, n) => (Action::Post(vec![leg(IDS[a], Debit, n, currency_of(a)), leg(IDS[b], Credit, n, currency_of(a))]), None),
                Op::Reserve(a, b, n) => (Action::Reserve(vec![leg(IDS[a], Debit, n, currency_of(a)), leg(IDS[b], Credit, n, currency_of(a))]), None),
                Op::Settle(i, _, _) if i >= pendings.len() || pendings[i].1 != PendingState::Pending => continue,
                Op::Settle(i, amount, true) => (Action::PostPending { legs: pendings[i].0.clone(), amount }, Some((i, PendingState::Posted))),
                Op::Settle(i, _, false) => (Action::VoidPending { legs: pendings[i].0.clone() }, Some((i, PendingState::Voided))),
            };
            match apply(&m, &action) {
                Ok(next) => {
                    prop_assert!(invariants(&next).is_ok(), "{:?} after {:?}", invariants(&next), action);
                    m = next;
                    if let Action::Reserve(legs) = &action {
                        pendings.push((legs.clone(), PendingState::Pending));
                    }
                    if let Some((i, s)) = pending_index {
                        pendings[i].1 = s;
                    }
                }
                Err(_) => prop_assert!(invariants(&m).is_ok()),
            }
        }
    }

    /// Two postings of edge amounts onto the same account, through the JSON the SQL writer
    /// exchanges: each balance is the exact integer sum, or the posting is refused as LG009
    /// exactly when that sum passes the bigint limit. Nothing is rounded, nothing wraps.
    #[test]
    fn edge_amounts_are_exact_or_refused_as_overflow(first in edge_amount(), second in edge_amount()) {
        let request = |id: &str, amount: i64| json!({"id": id, "type": "posted", "kind": "x", "legs": legs_value(A, C, json!(amount))});
        // Through text, as Postgres hands jsonb over.
        let roundtrip = |v: Value| -> Value { serde_json::from_str(&v.to_string()).unwrap() };
        let v = apply_verdict(&roundtrip(input(request(T1, first), accounts_json(0)))).unwrap().into_json();
        prop_assert_eq!(v["accounts"][0]["debits_posted"].as_i64(), Some(first));
        let mut accounts = accounts_json(0);
        accounts[0]["debits_posted"] = v["accounts"][0]["debits_posted"].clone();
        accounts[1]["credits_posted"] = v["accounts"][1]["credits_posted"].clone();
        let v = apply_verdict(&roundtrip(input(request(T2, second), accounts))).unwrap().into_json();
        let sum = i128::from(first) + i128::from(second);
        if sum <= i128::from(i64::MAX) {
            prop_assert_eq!(v["accounts"][0]["debits_posted"].as_i64().map(i128::from), Some(sum));
            prop_assert_eq!(v["accounts"][1]["credits_posted"].as_i64().map(i128::from), Some(sum));
        } else {
            prop_assert_eq!(v["sqlstate"].as_str(), Some("LG009"));
            prop_assert_eq!(v["detail"]["code"].as_str(), Some("overflow"));
        }
    }

    /// A transfer whose legs together pass the bigint limit (each leg within it) still
    /// balances exactly: sums are i128.
    #[test]
    fn legs_summing_past_the_bigint_limit_balance_exactly(a in edge_amount(), b in edge_amount()) {
        let w = book_of(&[account("x", "NGN", Flags::None), account("y", "NGN", Flags::None), account("z", "NGN", Flags::None)]);
        let legs = vec![leg("x", Debit, a, "NGN"), leg("y", Debit, b, "NGN"), leg("z", Credit, a, "NGN"), leg("z", Credit, b, "NGN")];
        let r = apply(&w, &Action::Post(legs));
        if i128::from(a) + i128::from(b) <= i128::from(i64::MAX) {
            prop_assert_eq!(r.map(|m| m["z"].credits_posted), Ok(a + b));
        } else {
            prop_assert_eq!(r.map_err(|e| e.code()), Err("overflow"));
        }
        let unbalanced = apply(&w, &Action::Post(vec![leg("x", Debit, a, "NGN"), leg("y", Debit, b, "NGN"), leg("z", Credit, a, "NGN")])).unwrap_err();
        prop_assert_eq!(unbalanced, LedgerError::Unbalanced { currency: "NGN".into(), debits: i128::from(a) + i128::from(b), credits: i128::from(a) });
    }
}
