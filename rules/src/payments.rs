//! Payments: when an appointment may be paid, whether a provider's answer settles a payment,
//! how a payment splits between the practitioner and the platform, how much a refund may move
//! and how it splits back, and whether a cancellation is refunded.
//!
//! The companion asks these between the read and the write of one transaction that holds the
//! payment's row lock (see migrations/20261128000100_payments.sql), so each decision is made on
//! what is stored, and the writes follow it. Money is `i64` minor units; every product is
//! computed in `i128` and every result checked.

use serde_json::{json, Map, Value};

use crate::ledger::named_list;
use crate::scheduling::appointment::{self, Status as AppointmentStatus};
use crate::verdict::Refusal;

named_list! {
    /// `public.payments.status`.
    PaymentStatus {
        /// Stored, Paystack not yet asked (or asking failed): not in flight; a retry with the
        /// same idempotency key resumes it under a new reference.
        Initializing => "initializing",
        /// Paystack initialized it; the patient may be paying.
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Paystack's answer did not match the payment: nothing was posted, a person looks.
        NeedsReview => "needs_review",
        /// A refund was submitted and is not yet processed.
        RefundPending => "refund_pending",
        PartiallyRefunded => "partially_refunded",
        Refunded => "refunded",
    }
}

named_list! {
    /// `private.payment_refunds.status`.
    RefundStatus {
        Requested => "requested",
        Submitted => "submitted",
        Processed => "processed",
        Failed => "failed",
        /// The rules said no (outside the refund window, nothing left to refund).
        Declined => "declined",
    }
}

/// Basis points in a whole.
pub const BPS_PER_WHOLE: u32 = 10_000;

/// Every refusal of the payment rules; the SQLSTATE is the HTTP status the companion answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("only the appointment's patient may pay for it")]
    NotPatient,
    #[error("the appointment is {0}: it cannot be paid")]
    AppointmentNotPayable(String),
    #[error("the appointment is already paid (payment {0})")]
    AlreadyPaid(String),
    #[error("a payment for this appointment is in progress (payment {0})")]
    InProgress(String),
    #[error("a payment with this idempotency key exists for another appointment")]
    KeyReused,
    #[error("the consultation is free: there is nothing to pay")]
    NothingToPay,
    #[error("a fee of {0} basis points is not between 0 and 10000")]
    InvalidFee(u32),
    #[error("{field} must be a positive whole number of minor units, got {amount}")]
    InvalidAmount { field: &'static str, amount: i64 },
    #[error("payment {reference} is {status}: only a paid payment is refunded")]
    NotRefundable { reference: String, status: String },
    #[error("cannot refund {requested}: {available} remains refundable")]
    RefundTooLarge { requested: i64, available: i64 },
    #[error("the refund is in {got}, the payment in {expected}")]
    RefundCurrency { expected: String, got: String },
}

impl Refusal for PaymentError {
    fn sqlstate(&self) -> &'static str {
        use PaymentError::*;
        match self {
            NotPatient => "PT403",
            AppointmentNotPayable(_) | AlreadyPaid(_) | InProgress(_) | KeyReused | NotRefundable { .. } => "PT409",
            NothingToPay | InvalidFee(_) | InvalidAmount { .. } | RefundTooLarge { .. } | RefundCurrency { .. } => "PT422",
        }
    }

    fn code(&self) -> &'static str {
        use PaymentError::*;
        match self {
            NotPatient => "not_patient",
            AppointmentNotPayable(_) => "appointment_not_payable",
            AlreadyPaid(_) => "already_paid",
            InProgress(_) => "payment_in_progress",
            KeyReused => "idempotency_key_reused",
            NothingToPay => "nothing_to_pay",
            InvalidFee(_) => "invalid_fee",
            InvalidAmount { .. } => "invalid_amount",
            NotRefundable { .. } => "not_refundable",
            RefundTooLarge { .. } => "refund_too_large",
            RefundCurrency { .. } => "refund_currency_mismatch",
        }
    }

    fn detail(&self) -> Map<String, Value> {
        use PaymentError::*;
        let v = match self {
            AppointmentNotPayable(status) => json!({"appointment_status": status}),
            AlreadyPaid(reference) | InProgress(reference) => json!({"reference": reference}),
            InvalidFee(bps) => json!({"fee_bps": bps}),
            InvalidAmount { field, amount } => json!({"field": field, "amount": amount}),
            NotRefundable { reference, status } => json!({"reference": reference, "status": status}),
            RefundTooLarge { requested, available } => json!({"requested": requested, "available": available}),
            RefundCurrency { expected, got } => json!({"expected": expected, "got": got}),
            NotPatient | KeyReused | NothingToPay => json!({}),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        use PaymentError::*;
        Some(match self {
            InProgress(_) => "Finish or abandon that checkout (GET /v1/payments/{reference}); an abandoned one fails after PAYSTACK_ABANDON_AFTER_SECONDS.",
            KeyReused => "Use a new Idempotency-Key for each payment.",
            RefundTooLarge { .. } => "Refund at most what was paid and not yet refunded.",
            _ => return None,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Opening a payment

/// What the database holds about an appointment a caller wants to pay.
#[derive(Debug, Clone)]
pub struct Opening<'a> {
    pub caller_is_patient: bool,
    pub appointment_status: &'a str,
    pub fee_minor: i64,
    /// The appointment's payments: (reference, status).
    pub payments: &'a [(String, PaymentStatus)],
}

/// May the caller open a new payment for the appointment? The amount to charge, or why not.
/// (A request repeating an idempotency key is answered from the stored payment before this.)
pub fn open(o: &Opening) -> Result<i64, PaymentError> {
    if !o.caller_is_patient {
        return Err(PaymentError::NotPatient);
    }
    let payable = AppointmentStatus::parse(o.appointment_status).is_some_and(appointment::holds_time);
    if !payable {
        return Err(PaymentError::AppointmentNotPayable(o.appointment_status.to_owned()));
    }
    for (reference, status) in o.payments {
        match status {
            // Money may have been taken: the appointment is paid (or a person is looking).
            PaymentStatus::Succeeded | PaymentStatus::NeedsReview | PaymentStatus::RefundPending | PaymentStatus::PartiallyRefunded => {
                return Err(PaymentError::AlreadyPaid(reference.clone()))
            }
            PaymentStatus::Pending => return Err(PaymentError::InProgress(reference.clone())),
            PaymentStatus::Initializing | PaymentStatus::Failed | PaymentStatus::Refunded => {}
        }
    }
    if o.fee_minor <= 0 {
        return Err(PaymentError::NothingToPay);
    }
    Ok(o.fee_minor)
}

// ------------------------------------------------------------------------------------------------
// The split

/// How a payment (or a refund) divides: what the practitioner is owed, what the platform keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub payable: i64,
    pub fee: i64,
}

impl Split {
    pub fn total(self) -> i64 {
        self.payable + self.fee
    }
}

/// Splits `amount` with a platform fee of `fee_bps` basis points, rounded down (the
/// practitioner gets the odd minor unit): 10 000 kobo at 250 bps → 9 750 payable, 250 fee.
pub fn split(amount: i64, fee_bps: u32) -> Result<Split, PaymentError> {
    if fee_bps > BPS_PER_WHOLE {
        return Err(PaymentError::InvalidFee(fee_bps));
    }
    if amount <= 0 {
        return Err(PaymentError::InvalidAmount { field: "amount", amount });
    }
    let fee = i64::try_from(i128::from(amount) * i128::from(fee_bps) / i128::from(BPS_PER_WHOLE))
        .expect("fee ≤ amount fits i64");
    Ok(Split { payable: amount - fee, fee })
}

/// The part of `charge` that a refund of `refund` moves back, after `refunded_before` was
/// refunded already: the fee refunded so far is always the charge's fee in proportion to what
/// was refunded so far (rounded down), so partial refunds that add up to the whole payment
/// return exactly its fee and its payable, whatever the parts.
pub fn refund_split(charge: Split, refunded_before: i64, refund: i64) -> Result<Split, PaymentError> {
    let total = charge.total();
    if refund <= 0 {
        return Err(PaymentError::InvalidAmount { field: "refund", amount: refund });
    }
    let available = total - refunded_before;
    if refunded_before < 0 || refund > available {
        return Err(PaymentError::RefundTooLarge { requested: refund, available: available.max(0) });
    }
    let fee_upto = |refunded: i64| -> i64 {
        i64::try_from(i128::from(charge.fee) * i128::from(refunded) / i128::from(total)).expect("≤ fee")
    };
    let fee = fee_upto(refunded_before + refund) - fee_upto(refunded_before);
    Ok(Split { payable: refund - fee, fee })
}

// ------------------------------------------------------------------------------------------------
// Settling a payment with the provider's answer

/// What the provider says about a transaction (Paystack's `GET /transaction/verify/:reference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub reference: String,
    /// Paystack's transaction status: `success`, `failed`, `reversed`, `abandoned`, `ongoing`,
    /// `pending`, `processing`, `queued`.
    pub status: String,
    pub amount: i64,
    pub currency: String,
}

/// What the stored payment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub reference: String,
    pub status: PaymentStatus,
    pub amount: i64,
    pub currency: String,
    /// Seconds since it was created.
    pub age_seconds: i64,
}

/// Why a payment needs review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Reference { expected: String, got: String },
    Amount { expected: i64, got: i64 },
    Currency { expected: String, got: String },
}

impl Mismatch {
    /// The audit-friendly record (codes and amounts; no personal data).
    pub fn to_json(&self) -> Value {
        match self {
            Mismatch::Reference { expected, got } => json!({"code": "reference_mismatch", "expected": expected, "got": got}),
            Mismatch::Amount { expected, got } => json!({"code": "amount_mismatch", "expected": expected, "got": got}),
            Mismatch::Currency { expected, got } => json!({"code": "currency_mismatch", "expected": expected, "got": got}),
        }
    }
}

/// What to do with a payment given the provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Paid as stored: post one transfer split this way, the payment succeeds.
    Post(Split),
    /// The provider says it failed (or it was abandoned too long ago): the payment fails.
    Fail,
    /// Paid, but not what was stored: needs review, nothing posted.
    Review(Mismatch),
    /// Not decided yet at the provider: nothing changes.
    Wait,
    /// The payment was decided before (a duplicate or late answer): nothing changes.
    AlreadySettled,
}

/// Settles a pending payment. Only `pending` (or `initializing`: Paystack may answer a
/// reference whose initialize reply was lost) payments move; every other status was decided
/// before, so a duplicate webhook, a verify racing the webhook or a late reconciliation changes
/// nothing. `abandon_after_seconds`: an abandoned checkout older than this fails.
pub fn settle(p: &Payment, v: &Verification, fee_bps: u32, abandon_after_seconds: i64) -> Result<Settlement, PaymentError> {
    if !matches!(p.status, PaymentStatus::Pending | PaymentStatus::Initializing) {
        return Ok(Settlement::AlreadySettled);
    }
    if v.reference != p.reference {
        return Ok(Settlement::Review(Mismatch::Reference { expected: p.reference.clone(), got: v.reference.clone() }));
    }
    Ok(match v.status.as_str() {
        "success" if v.currency != p.currency => {
            Settlement::Review(Mismatch::Currency { expected: p.currency.clone(), got: v.currency.clone() })
        }
        "success" if v.amount != p.amount => Settlement::Review(Mismatch::Amount { expected: p.amount, got: v.amount }),
        "success" => Settlement::Post(split(p.amount, fee_bps)?),
        "failed" | "reversed" => Settlement::Fail,
        "abandoned" if p.age_seconds >= abandon_after_seconds => Settlement::Fail,
        _ => Settlement::Wait,
    })
}

// ------------------------------------------------------------------------------------------------
// Refunds

/// Statuses from which money can be refunded.
pub fn is_refundable(s: PaymentStatus) -> bool {
    matches!(s, PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded | PaymentStatus::RefundPending)
}

/// How much a new refund moves: `requested`, or all that remains (`None`). `in_flight`: refunds
/// submitted and not yet processed, which count against what remains.
pub fn refund_amount(
    reference: &str,
    status: PaymentStatus,
    amount: i64,
    refunded: i64,
    in_flight: i64,
    requested: Option<i64>,
) -> Result<i64, PaymentError> {
    if !is_refundable(status) {
        return Err(PaymentError::NotRefundable { reference: reference.to_owned(), status: status.as_str().to_owned() });
    }
    let available = amount - refunded - in_flight;
    let requested = requested.unwrap_or(available);
    if requested <= 0 && available > 0 {
        return Err(PaymentError::InvalidAmount { field: "amount_minor", amount: requested });
    }
    if requested > available || available <= 0 {
        return Err(PaymentError::RefundTooLarge { requested, available: available.max(0) });
    }
    Ok(requested)
}

/// A processed refund: how it splits back, and the payment's refunded total and status after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundPosting {
    pub split: Split,
    pub refunded_after: i64,
    pub status_after: PaymentStatus,
    /// The whole payment in one refund: the transfer mirrors the charge exactly and names it.
    pub reverses_charge: bool,
}

/// Posts a refund the provider processed. `other_in_flight`: other refunds still submitted.
pub fn refund_processed(
    payment_currency: &str,
    charge: Split,
    refunded_before: i64,
    other_in_flight: bool,
    refund: i64,
    refund_currency: &str,
) -> Result<RefundPosting, PaymentError> {
    if refund_currency != payment_currency {
        return Err(PaymentError::RefundCurrency { expected: payment_currency.to_owned(), got: refund_currency.to_owned() });
    }
    let split = refund_split(charge, refunded_before, refund)?;
    let refunded_after = refunded_before + refund;
    let status_after = if refunded_after == charge.total() {
        PaymentStatus::Refunded
    } else if other_in_flight {
        PaymentStatus::RefundPending
    } else {
        PaymentStatus::PartiallyRefunded
    };
    Ok(RefundPosting { split, refunded_after, status_after, reverses_charge: refunded_before == 0 && refund == charge.total() })
}

/// Is a paid appointment cancelled at `cancelled_at` (unix seconds) refunded automatically?
/// When it was cancelled at least `window_hours` before it starts (`starts_at`; none: it never
/// held a time, refunded). A window of 0 refunds any cancellation before the start.
pub fn cancellation_refunded(starts_at: Option<i64>, cancelled_at: i64, window_hours: u32) -> bool {
    match starts_at {
        None => true,
        Some(start) => i128::from(start) - i128::from(cancelled_at) >= i128::from(window_hours) * 3600 && cancelled_at < start,
    }
}

#[cfg(test)]
mod tests;
