//! Double-entry ledger rules, after TigerBeetle's model.
//!
//! A transfer has two or more legs (debits and credits on accounts); it balances per currency,
//! an account takes legs only in its own currency, amounts are positive integers in minor
//! units, and the account flags hold after it:
//! - `debits_must_not_exceed_credits` (credit-balance accounts, e.g. a patient wallet):
//!   `debits_posted + debits_pending ≤ credits_posted`;
//! - `credits_must_not_exceed_debits` (debit-balance accounts):
//!   `credits_posted + credits_pending ≤ debits_posted`.
//!
//! Two-phase transfers: a pending transfer (exactly two legs) reserves its amount in the
//! pending balances; it is then posted (in full or in part, never more than reserved) or
//! voided, once, or it expires after its timeout. [`apply`] validates one action against the
//! current balances and returns the new ones; a rejected action changes nothing.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::currency::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    None,
    DebitsMustNotExceedCredits,
    CreditsMustNotExceedDebits,
}

impl Flags {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "debits_must_not_exceed_credits" => Self::DebitsMustNotExceedCredits,
            "credits_must_not_exceed_debits" => Self::CreditsMustNotExceedDebits,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Debit,
    Credit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub currency: String,
    pub flags: Flags,
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leg {
    pub account_id: String,
    pub direction: Direction,
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingState {
    Pending,
    Posted,
    Voided,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Posts immediately.
    Post(Vec<Leg>),
    /// Reserves (two legs).
    Reserve(Vec<Leg>),
    /// Posts a pending transfer's legs, for `amount` (default: all of it).
    PostPending { legs: Vec<Leg>, state: PendingState, amount: Option<i64> },
    /// Releases a pending transfer (voided, or expired by the timeout sweep).
    VoidPending { legs: Vec<Leg>, state: PendingState },
}

/// Each error has its own SQLSTATE (class `LG`), listed by [`LedgerError::sqlstate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a transfer needs at least two legs, and a pending transfer exactly one debit and one credit")]
    InvalidLegs,
    #[error("amounts are positive integers in minor units (leg {leg} has {amount})")]
    InvalidAmount { leg: usize, amount: i64 },
    #[error("the transfer does not balance in {currency}: debits {debits}, credits {credits}")]
    Unbalanced { currency: String, debits: i128, credits: i128 },
    #[error("leg {leg} is in {leg_currency} but account {account} is in {account_currency}")]
    MixedCurrency { leg: usize, account: String, leg_currency: String, account_currency: String },
    #[error("account {account} would have debits exceeding credits (debits {debits} > credits {credits})")]
    ExceedsCredits { account: String, debits: i128, credits: i128 },
    #[error("account {account} would have credits exceeding debits (credits {credits} > debits {debits})")]
    ExceedsDebits { account: String, credits: i128, debits: i128 },
    #[error("transfer {id} already exists with a different {fields}")]
    ExistsWithDifferent { id: String, fields: String },
    #[error("cannot post {amount}: the pending transfer reserved {reserved}")]
    ExceedsPendingAmount { amount: i64, reserved: i64 },
    #[error("the pending transfer was already posted")]
    PendingAlreadyPosted,
    #[error("the pending transfer was already voided")]
    PendingAlreadyVoided,
    #[error("the pending transfer expired")]
    PendingExpired,
    #[error("no account {0}")]
    UnknownAccount(String),
    #[error("amounts overflow")]
    Overflow,
}

impl LedgerError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            LedgerError::Unbalanced { .. } => "LG001",
            LedgerError::MixedCurrency { .. } => "LG002",
            LedgerError::ExceedsCredits { .. } | LedgerError::ExceedsDebits { .. } => "LG003",
            LedgerError::ExistsWithDifferent { .. } => "LG004",
            LedgerError::ExceedsPendingAmount { .. } => "LG005",
            LedgerError::PendingAlreadyPosted => "LG006",
            LedgerError::PendingAlreadyVoided => "LG007",
            LedgerError::PendingExpired => "LG008",
            LedgerError::InvalidAmount { .. } | LedgerError::Overflow => "LG009",
            LedgerError::UnknownAccount(_) => "LG010",
            LedgerError::InvalidLegs => "LG011",
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Unbalanced { .. } => "unbalanced",
            LedgerError::MixedCurrency { .. } => "mixed_currency",
            LedgerError::ExceedsCredits { .. } => "exceeds_credits",
            LedgerError::ExceedsDebits { .. } => "exceeds_debits",
            LedgerError::ExistsWithDifferent { .. } => "exists_with_different",
            LedgerError::ExceedsPendingAmount { .. } => "exceeds_pending_amount",
            LedgerError::PendingAlreadyPosted => "pending_already_posted",
            LedgerError::PendingAlreadyVoided => "pending_already_voided",
            LedgerError::PendingExpired => "pending_expired",
            LedgerError::InvalidAmount { .. } => "invalid_amount",
            LedgerError::Overflow => "overflow",
            LedgerError::UnknownAccount(_) => "unknown_account",
            LedgerError::InvalidLegs => "invalid_legs",
        }
    }
}

fn check_legs(accounts: &BTreeMap<String, Account>, legs: &[Leg]) -> Result<(), LedgerError> {
    if legs.len() < 2 || !legs.iter().any(|l| l.direction == Direction::Debit) || !legs.iter().any(|l| l.direction == Direction::Credit) {
        return Err(LedgerError::InvalidLegs);
    }
    let mut sums: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
    for (i, leg) in legs.iter().enumerate() {
        if leg.amount <= 0 {
            return Err(LedgerError::InvalidAmount { leg: i, amount: leg.amount });
        }
        let account = accounts.get(&leg.account_id).ok_or_else(|| LedgerError::UnknownAccount(leg.account_id.clone()))?;
        if account.currency != leg.currency {
            return Err(LedgerError::MixedCurrency {
                leg: i,
                account: account.id.clone(),
                leg_currency: leg.currency.clone(),
                account_currency: account.currency.clone(),
            });
        }
        let e = sums.entry(leg.currency.as_str()).or_default();
        match leg.direction {
            Direction::Debit => e.0 += i128::from(leg.amount),
            Direction::Credit => e.1 += i128::from(leg.amount),
        }
    }
    for (currency, (debits, credits)) in sums {
        if debits != credits {
            return Err(LedgerError::Unbalanced { currency: currency.to_owned(), debits, credits });
        }
    }
    Ok(())
}

/// Adds `amount` to the posted or pending side of each leg's account (negative releases).
fn book(accounts: &mut BTreeMap<String, Account>, legs: &[Leg], pending: bool, sign: i64, amount: Option<i64>) -> Result<(), LedgerError> {
    for leg in legs {
        let a = accounts.get_mut(&leg.account_id).ok_or_else(|| LedgerError::UnknownAccount(leg.account_id.clone()))?;
        let delta = amount.unwrap_or(leg.amount).checked_mul(sign).ok_or(LedgerError::Overflow)?;
        let field = match (leg.direction, pending) {
            (Direction::Debit, false) => &mut a.debits_posted,
            (Direction::Credit, false) => &mut a.credits_posted,
            (Direction::Debit, true) => &mut a.debits_pending,
            (Direction::Credit, true) => &mut a.credits_pending,
        };
        *field = field.checked_add(delta).ok_or(LedgerError::Overflow)?;
    }
    Ok(())
}

fn check_flags(accounts: &BTreeMap<String, Account>, touched: &[Leg]) -> Result<(), LedgerError> {
    for leg in touched {
        let a = &accounts[&leg.account_id];
        let (dp, cp, dq, cq) = (i128::from(a.debits_posted), i128::from(a.credits_posted), i128::from(a.debits_pending), i128::from(a.credits_pending));
        match a.flags {
            Flags::DebitsMustNotExceedCredits if dp + dq > cp => {
                return Err(LedgerError::ExceedsCredits { account: a.id.clone(), debits: dp + dq, credits: cp })
            }
            Flags::CreditsMustNotExceedDebits if cp + cq > dp => {
                return Err(LedgerError::ExceedsDebits { account: a.id.clone(), credits: cp + cq, debits: dp })
            }
            _ => {}
        }
    }
    Ok(())
}

fn pending_is_open(state: PendingState) -> Result<(), LedgerError> {
    match state {
        PendingState::Pending => Ok(()),
        PendingState::Posted => Err(LedgerError::PendingAlreadyPosted),
        PendingState::Voided => Err(LedgerError::PendingAlreadyVoided),
        PendingState::Expired => Err(LedgerError::PendingExpired),
    }
}

/// Validates `action` against `accounts` and returns the balances after it. `accounts` must
/// hold every account the legs name. On error nothing is returned, so nothing changes.
pub fn apply(accounts: &BTreeMap<String, Account>, action: &Action) -> Result<BTreeMap<String, Account>, LedgerError> {
    let mut next = accounts.clone();
    match action {
        Action::Post(legs) => {
            check_legs(accounts, legs)?;
            book(&mut next, legs, false, 1, None)?;
            check_flags(&next, legs)?;
        }
        Action::Reserve(legs) => {
            check_legs(accounts, legs)?;
            if legs.len() != 2 {
                return Err(LedgerError::InvalidLegs);
            }
            book(&mut next, legs, true, 1, None)?;
            check_flags(&next, legs)?;
        }
        Action::PostPending { legs, state, amount } => {
            pending_is_open(*state)?;
            let reserved = legs.first().map_or(0, |l| l.amount);
            let amount = amount.unwrap_or(reserved);
            if amount <= 0 {
                return Err(LedgerError::InvalidAmount { leg: 0, amount });
            }
            if amount > reserved {
                return Err(LedgerError::ExceedsPendingAmount { amount, reserved });
            }
            book(&mut next, legs, true, -1, None)?;
            book(&mut next, legs, false, 1, Some(amount))?;
            check_flags(&next, legs)?;
        }
        Action::VoidPending { legs, state } => {
            pending_is_open(*state)?;
            book(&mut next, legs, true, -1, None)?;
        }
    }
    Ok(next)
}

/// The fields in which two requests for the same transfer id differ (empty: the same request).
pub fn differing_fields(existing: &Value, requested: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (existing.as_object(), requested.as_object()) else { return vec!["content".into()] };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k).unwrap_or(&Value::Null) != b.get(*k).unwrap_or(&Value::Null))
        .map(|k| k.to_string())
        .collect()
}

// ------------------------------------------------------------------------------------------------
// JSON: what the SQL layer passes in and gets back.

use crate::json::{invalid, Fields, InputError};

fn parse_legs(f: &Fields<'_>, field: &str) -> Result<Vec<Leg>, InputError> {
    let mut legs = Vec::new();
    for (i, v) in f.array(field)?.iter().enumerate() {
        let l = Fields::new(format!("{}[{i}]", f.name(field)), v, &["account_id", "direction", "amount", "currency"])?;
        let currency = l.text("currency")?.ok_or_else(|| invalid(&l.name("currency"), "required"))?;
        Currency::parse(currency).map_err(|e| invalid(&l.name("currency"), e.to_string()))?;
        legs.push(Leg {
            account_id: l.text("account_id")?.ok_or_else(|| invalid(&l.name("account_id"), "required"))?.to_owned(),
            direction: l
                .parsed("direction", "\"debit\" or \"credit\"", |s| match s {
                    "debit" => Some(Direction::Debit),
                    "credit" => Some(Direction::Credit),
                    _ => None,
                })?
                .ok_or_else(|| invalid(&l.name("direction"), "required"))?,
            amount: l.whole("amount", i64::MIN, i64::MAX)?.ok_or_else(|| invalid(&l.name("amount"), "required"))?,
            currency: currency.to_owned(),
        });
    }
    Ok(legs)
}

fn parse_accounts(f: &Fields<'_>) -> Result<BTreeMap<String, Account>, InputError> {
    let mut out = BTreeMap::new();
    for (i, v) in f.array("accounts")?.iter().enumerate() {
        let a = Fields::new(
            format!("input.accounts[{i}]"),
            v,
            &["id", "currency", "flags", "debits_posted", "credits_posted", "debits_pending", "credits_pending"],
        )?;
        let n = |field: &str| -> Result<i64, InputError> { Ok(a.whole(field, 0, i64::MAX)?.unwrap_or(0)) };
        let account = Account {
            id: a.text("id")?.ok_or_else(|| invalid(&a.name("id"), "required"))?.to_owned(),
            currency: a.text("currency")?.ok_or_else(|| invalid(&a.name("currency"), "required"))?.to_owned(),
            flags: a.parsed("flags", "a ledger flag", Flags::parse)?.unwrap_or(Flags::None),
            debits_posted: n("debits_posted")?,
            credits_posted: n("credits_posted")?,
            debits_pending: n("debits_pending")?,
            credits_pending: n("credits_pending")?,
        };
        out.insert(account.id.clone(), account);
    }
    Ok(out)
}

/// `{accounts: [...], action: "post" | "reserve" | "post_pending" | "void_pending", legs: [...],
/// pending_state, amount}` → `Ok(accounts after)` or the rule error.
pub fn apply_json(input: &Value) -> Result<Result<Value, LedgerError>, InputError> {
    let f = Fields::new("input", input, &["accounts", "action", "legs", "pending_state", "amount"])?;
    let accounts = parse_accounts(&f)?;
    let legs = parse_legs(&f, "legs")?;
    let state = f
        .parsed("pending_state", "pending, posted, voided or expired", |s| match s {
            "pending" => Some(PendingState::Pending),
            "posted" => Some(PendingState::Posted),
            "voided" => Some(PendingState::Voided),
            "expired" => Some(PendingState::Expired),
            _ => None,
        })?
        .unwrap_or(PendingState::Pending);
    let action = match f.text("action")? {
        Some("post") => Action::Post(legs),
        Some("reserve") => Action::Reserve(legs),
        Some("post_pending") => Action::PostPending { legs, state, amount: f.whole("amount", i64::MIN, i64::MAX)? },
        Some("void_pending") => Action::VoidPending { legs, state },
        _ => return Err(invalid("input.action", "must be post, reserve, post_pending or void_pending")),
    };
    Ok(apply(&accounts, &action).map(|after| {
        Value::Array(
            after
                .values()
                .map(|a| {
                    json!({"id": a.id, "debits_posted": a.debits_posted, "credits_posted": a.credits_posted,
                           "debits_pending": a.debits_pending, "credits_pending": a.credits_pending})
                })
                .collect(),
        )
    }))
}

#[cfg(test)]
mod tests;
