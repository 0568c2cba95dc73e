use proptest::prelude::*;

use super::*;

fn payment(status: PaymentStatus) -> Payment {
    Payment { reference: "cp_ref".into(), status, amount: 10_000, currency: "NGN".into(), age_seconds: 10 }
}

fn verified(status: &str, amount: i64, currency: &str) -> Verification {
    Verification { reference: "cp_ref".into(), status: status.into(), amount, currency: currency.into() }
}

#[test]
fn a_fee_in_basis_points_rounds_down_in_the_practitioners_favour() {
    assert_eq!(split(10_000, 250).unwrap(), Split { payable: 9_750, fee: 250 });
    assert_eq!(split(999, 250).unwrap(), Split { payable: 975, fee: 24 });
    assert_eq!(split(1, 9_999).unwrap(), Split { payable: 1, fee: 0 });
    assert_eq!(split(10_000, 0).unwrap(), Split { payable: 10_000, fee: 0 });
    assert_eq!(split(10_000, 10_000).unwrap(), Split { payable: 0, fee: 10_000 });
    assert_eq!(split(i64::MAX, 10_000).unwrap().fee, i64::MAX, "no overflow at the bigint limit");
    assert_eq!(split(10_000, 10_001), Err(PaymentError::InvalidFee(10_001)));
    assert!(matches!(split(0, 250), Err(PaymentError::InvalidAmount { .. })));
}

#[test]
fn duplicate_or_late_answers_settle_nothing() {
    for status in [PaymentStatus::Succeeded, PaymentStatus::Failed, PaymentStatus::NeedsReview, PaymentStatus::Refunded] {
        assert_eq!(settle(&payment(status), &verified("success", 10_000, "NGN"), 250, 3600).unwrap(), Settlement::AlreadySettled);
    }
}

#[test]
fn a_matching_success_posts_the_split() {
    assert_eq!(
        settle(&payment(PaymentStatus::Pending), &verified("success", 10_000, "NGN"), 250, 3600).unwrap(),
        Settlement::Post(Split { payable: 9_750, fee: 250 })
    );
}

#[test]
fn amount_or_currency_mismatch_needs_review() {
    assert_eq!(
        settle(&payment(PaymentStatus::Pending), &verified("success", 9_999, "NGN"), 250, 3600).unwrap(),
        Settlement::Review(Mismatch::Amount { expected: 10_000, got: 9_999 })
    );
    assert_eq!(
        settle(&payment(PaymentStatus::Pending), &verified("success", 10_000, "GHS"), 250, 3600).unwrap(),
        Settlement::Review(Mismatch::Currency { expected: "NGN".into(), got: "GHS".into() })
    );
    let mut other = verified("success", 10_000, "NGN");
    other.reference = "cp_other".into();
    assert!(matches!(settle(&payment(PaymentStatus::Pending), &other, 250, 3600).unwrap(), Settlement::Review(Mismatch::Reference { .. })));
}

#[test]
fn an_abandoned_checkout_waits_until_it_is_old() {
    let p = payment(PaymentStatus::Pending);
    assert_eq!(settle(&p, &verified("abandoned", 10_000, "NGN"), 250, 3600).unwrap(), Settlement::Wait);
    assert_eq!(settle(&Payment { age_seconds: 3600, ..p.clone() }, &verified("abandoned", 10_000, "NGN"), 250, 3600).unwrap(), Settlement::Fail);
    assert_eq!(settle(&p, &verified("failed", 10_000, "NGN"), 250, 3600).unwrap(), Settlement::Fail);
    assert_eq!(settle(&p, &verified("ongoing", 10_000, "NGN"), 250, 3600).unwrap(), Settlement::Wait);
}

#[test]
fn who_may_open_a_payment() {
    let none: Vec<(String, PaymentStatus)> = vec![];
    let ok = Opening { caller_is_patient: true, appointment_status: "booked", fee_minor: 5_000, payments: &none };
    assert_eq!(open(&ok), Ok(5_000));
    assert_eq!(open(&Opening { caller_is_patient: false, ..ok.clone() }), Err(PaymentError::NotPatient));
    assert_eq!(
        open(&Opening { appointment_status: "cancelled", ..ok.clone() }),
        Err(PaymentError::AppointmentNotPayable("cancelled".into()))
    );
    assert_eq!(open(&Opening { fee_minor: 0, ..ok.clone() }), Err(PaymentError::NothingToPay));
    let paid = vec![("cp_1".to_owned(), PaymentStatus::Failed), ("cp_2".to_owned(), PaymentStatus::Succeeded)];
    assert_eq!(open(&Opening { payments: &paid, ..ok.clone() }), Err(PaymentError::AlreadyPaid("cp_2".into())));
    let pending = vec![("cp_3".to_owned(), PaymentStatus::Pending)];
    assert_eq!(open(&Opening { payments: &pending, ..ok.clone() }), Err(PaymentError::InProgress("cp_3".into())));
    let refunded = vec![("cp_4".to_owned(), PaymentStatus::Refunded)];
    assert_eq!(open(&Opening { payments: &refunded, ..ok }), Ok(5_000), "a refunded payment can be paid again");
    assert_eq!(PaymentError::AlreadyPaid("x".into()).sqlstate(), "PT409");
    assert_eq!(PaymentError::NotPatient.sqlstate(), "PT403");
}

#[test]
fn refund_amounts() {
    let s = PaymentStatus::Succeeded;
    assert_eq!(refund_amount("r", s, 10_000, 0, 0, None), Ok(10_000));
    assert_eq!(refund_amount("r", s, 10_000, 4_000, 1_000, None), Ok(5_000));
    assert_eq!(refund_amount("r", s, 10_000, 4_000, 0, Some(6_001)), Err(PaymentError::RefundTooLarge { requested: 6_001, available: 6_000 }));
    assert!(matches!(refund_amount("r", s, 10_000, 0, 0, Some(0)), Err(PaymentError::InvalidAmount { .. })));
    assert!(matches!(refund_amount("r", PaymentStatus::Pending, 10_000, 0, 0, None), Err(PaymentError::NotRefundable { .. })));
    assert!(matches!(refund_amount("r", PaymentStatus::Refunded, 10_000, 10_000, 0, None), Err(PaymentError::NotRefundable { .. })));
}

#[test]
fn a_full_refund_reverses_the_charge_and_a_partial_one_does_not() {
    let charge = split(10_000, 250).unwrap();
    let full = refund_processed("NGN", charge, 0, false, 10_000, "NGN").unwrap();
    assert_eq!(full.split, charge);
    assert!(full.reverses_charge);
    assert_eq!(full.status_after, PaymentStatus::Refunded);
    let part = refund_processed("NGN", charge, 0, false, 4_000, "NGN").unwrap();
    assert_eq!(part.split, Split { payable: 3_900, fee: 100 });
    assert!(!part.reverses_charge);
    assert_eq!(part.status_after, PaymentStatus::PartiallyRefunded);
    let rest = refund_processed("NGN", charge, 4_000, false, 6_000, "NGN").unwrap();
    assert_eq!(rest.split, Split { payable: 5_850, fee: 150 });
    assert_eq!(rest.status_after, PaymentStatus::Refunded);
    assert!(matches!(refund_processed("NGN", charge, 4_000, false, 6_001, "NGN"), Err(PaymentError::RefundTooLarge { .. })));
    assert!(matches!(refund_processed("NGN", charge, 0, false, 100, "GHS"), Err(PaymentError::RefundCurrency { .. })));
}

#[test]
fn cancellations_inside_the_window_are_refunded() {
    let start = 1_000_000;
    assert!(cancellation_refunded(Some(start), start - 24 * 3600, 24));
    assert!(!cancellation_refunded(Some(start), start - 24 * 3600 + 1, 24));
    assert!(cancellation_refunded(Some(start), start - 1, 0));
    assert!(!cancellation_refunded(Some(start), start, 0), "not after it started");
    assert!(cancellation_refunded(None, start, 24));
}

#[test]
fn status_names_round_trip() {
    for s in PaymentStatus::ALL {
        assert_eq!(PaymentStatus::parse(s.as_str()), Some(*s));
    }
    assert_eq!(PaymentStatus::parse("paid"), None);
}

proptest! {
    #[test]
    fn a_split_always_adds_up(amount in 1i64..=i64::MAX, bps in 0u32..=10_000) {
        let s = split(amount, bps).unwrap();
        prop_assert_eq!(s.total(), amount);
        prop_assert!(s.fee >= 0 && s.payable >= 0);
    }

    #[test]
    fn partial_refunds_that_add_up_return_exactly_the_charge(
        amount in 1i64..=1_000_000_000_000,
        bps in 0u32..=10_000,
        cuts in proptest::collection::vec(1u32..=1000, 1..8),
    ) {
        let charge = split(amount, bps).unwrap();
        // Cut the amount into parts proportional to `cuts`, the last part taking the remainder.
        let weight: u64 = cuts.iter().map(|c| u64::from(*c)).sum();
        let mut parts: Vec<i64> = cuts.iter().map(|c| (i128::from(amount) * i128::from(*c) / i128::from(weight)) as i64).collect();
        let sum: i64 = parts.iter().sum();
        *parts.last_mut().unwrap() += amount - sum;
        let (mut refunded, mut payable, mut fee) = (0i64, 0i64, 0i64);
        for part in parts.into_iter().filter(|p| *p > 0) {
            let r = refund_processed("NGN", charge, refunded, false, part, "NGN").unwrap();
            prop_assert_eq!(r.split.total(), part);
            prop_assert!(r.split.fee >= 0 && r.split.payable >= 0);
            refunded = r.refunded_after;
            payable += r.split.payable;
            fee += r.split.fee;
        }
        prop_assert_eq!(refunded, amount);
        prop_assert_eq!((payable, fee), (charge.payable, charge.fee));
    }
}
