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
//! voided, once, or it expires after its timeout ([`transfer::pending_state`]).
//!
//! Money is integers end to end: amounts and balances are `i64` minor units (Postgres
//! `bigint`), read from JSON as integers, and every balance change is checked — a balance that
//! would pass the `bigint` limit is refused (`LG009`), never wrapped or rounded.
//!
//! [`apply`] moves balances for one action; [`transfer::decide`] is the whole decision for a
//! request — idempotency, the pending transfer's state, the reversal check — given what the
//! SQL writer read under its locks; [`json`] is the shape both travel in.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::verdict::Refusal;

pub mod json;
pub mod transfer;

/// A closed list of names, defined once: the enum, its SQL spelling, and the list SQL check
/// constraints read (`careplane.ledger_flags()`, …).
macro_rules! named_list {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Every name, in declaration order.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }

            /// "a, b or c", for error messages.
            pub fn expected() -> String {
                let names = Self::names();
                match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => names.join(""),
                }
            }
        }
    };
}
pub(crate) use named_list;

named_list! {
    /// Which balance an account may not let pass the other (at most one).
    Flags {
        None => "none",
        DebitsMustNotExceedCredits => "debits_must_not_exceed_credits",
        CreditsMustNotExceedDebits => "credits_must_not_exceed_debits",
    }
}

named_list! {
    Direction {
        Debit => "debit",
        Credit => "credit",
    }
}

named_list! {
    /// What a stored transfer did: posted at once, reserved, or resolved a reservation.
    TransferType {
        Posted => "posted",
        Pending => "pending",
        PostPending => "post_pending",
        VoidPending => "void_pending",
    }
}

named_list! {
    /// Why a pending transfer was released without posting.
    VoidReason {
        /// Its owner voided it.
        Voided => "voided",
        /// Its timeout passed and the expiry sweep released it.
        Expired => "expired",
    }
}

named_list! {
    /// Where a pending transfer stands (derived, never stored: see [`transfer::pending_state`]).
    PendingState {
        /// Open: it may be posted or voided.
        Pending => "pending",
        Posted => "posted",
        Voided => "voided",
        /// Its timeout has passed (whether or not the sweep has released it yet).
        Expired => "expired",
    }
}

impl Direction {
    pub fn opposite(self) -> Self {
        match self {
            Direction::Debit => Direction::Credit,
            Direction::Credit => Direction::Debit,
        }
    }
}

impl TransferType {
    /// Whether the transfer's entries are posted (they count in the posted balances).
    pub fn posts(self) -> bool {
        matches!(self, TransferType::Posted | TransferType::PostPending)
    }

    /// Whether the transfer resolves a pending one (names it in `pending_id`).
    pub fn resolves_pending(self) -> bool {
        matches!(self, TransferType::PostPending | TransferType::VoidPending)
    }
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

impl Account {
    /// The flag this account's balances violate, if any (compared in `i128`: no overflow).
    pub fn flag_violation(&self) -> Option<LedgerError> {
        let (dp, cp, dq, cq) = (
            i128::from(self.debits_posted),
            i128::from(self.credits_posted),
            i128::from(self.debits_pending),
            i128::from(self.credits_pending),
        );
        match self.flags {
            Flags::DebitsMustNotExceedCredits if dp + dq > cp => {
                Some(LedgerError::ExceedsCredits { account: self.id.clone(), debits: dp + dq, credits: cp })
            }
            Flags::CreditsMustNotExceedDebits if cp + cq > dp => {
                Some(LedgerError::ExceedsDebits { account: self.id.clone(), credits: cp + cq, debits: dp })
            }
            _ => None,
        }
    }
}

/// Whether balances satisfy `flags` (`private.verify_ledger` asks, through the extension).
pub fn flags_hold(flags: Flags, debits_posted: i64, credits_posted: i64, debits_pending: i64, credits_pending: i64) -> bool {
    let a = Account { id: String::new(), currency: String::new(), flags, debits_posted, credits_posted, debits_pending, credits_pending };
    a.flag_violation().is_none()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leg {
    pub account_id: String,
    pub direction: Direction,
    pub amount: i64,
    pub currency: String,
}

/// A change of balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Posts immediately.
    Post(Vec<Leg>),
    /// Reserves (two legs).
    Reserve(Vec<Leg>),
    /// Releases a pending transfer's legs and posts them for `amount` (default: all of it).
    PostPending { legs: Vec<Leg>, amount: Option<i64> },
    /// Releases a pending transfer (voided, or expired by the timeout sweep).
    VoidPending { legs: Vec<Leg> },
}

/// Every refusal of the ledger. The SQLSTATE (class `LG`) and the code are listed by the
/// [`Refusal`] implementation; docs/ledger.md has the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the transfer does not balance in {currency}: debits {debits}, credits {credits}")]
    Unbalanced { currency: String, debits: i128, credits: i128 },
    #[error("leg {leg} is in {leg_currency} but account {account} is in {account_currency}")]
    MixedCurrency { leg: usize, account: String, leg_currency: String, account_currency: String },
    #[error("account {account} would have debits exceeding credits (debits {debits} > credits {credits})")]
    ExceedsCredits { account: String, debits: i128, credits: i128 },
    #[error("account {account} would have credits exceeding debits (credits {credits} > debits {debits})")]
    ExceedsDebits { account: String, credits: i128, debits: i128 },
    #[error("transfer {id} already exists with a different {}", .fields.join(", "))]
    ExistsWithDifferent { id: String, fields: Vec<String> },
    #[error("cannot post {amount}: the pending transfer reserved {reserved}")]
    ExceedsPendingAmount { amount: i64, reserved: i64 },
    #[error("the pending transfer was already posted")]
    PendingAlreadyPosted,
    #[error("the pending transfer was already voided")]
    PendingAlreadyVoided,
    #[error("the pending transfer expired")]
    PendingExpired,
    #[error("{field} must be a positive whole number of minor units, got {amount}")]
    InvalidAmount { field: String, amount: i64 },
    #[error("account {account}: {balance} would pass the bigint limit ({})", i64::MAX)]
    Overflow { account: String, balance: &'static str },
    #[error("no account {0}")]
    UnknownAccount(String),
    #[error("invalid legs: {0}")]
    InvalidLegs(&'static str),
    #[error("transfer {id} does not exactly reverse posted transfer {reverses}")]
    ReversalNotExact { id: String, reverses: String },
    #[error("transfer {reverses} is not a posted transfer, so it cannot be reversed")]
    ReversedNotPosted { reverses: String },
    #[error("transfer {reverses} was already reversed by transfer {by}")]
    AlreadyReversed { reverses: String, by: String },
    #[error("no pending transfer {0}")]
    NoSuchPending(String),
    #[error("pending transfer {0} has not reached its timeout, so it cannot expire")]
    NotYetExpired(String),
}

/// A JSON number for an `i128` that fits JSON's integers (every sum of `i64` amounts a
/// transfer can carry does), else its decimal text: never rounded through `f64`.
fn exact(n: i128) -> Value {
    serde_json::Number::from_i128(n).map_or_else(|| Value::String(n.to_string()), Value::Number)
}

impl Refusal for LedgerError {
    fn sqlstate(&self) -> &'static str {
        use LedgerError::*;
        match self {
            Unbalanced { .. } => "LG001",
            MixedCurrency { .. } => "LG002",
            ExceedsCredits { .. } | ExceedsDebits { .. } => "LG003",
            ExistsWithDifferent { .. } => "LG004",
            ExceedsPendingAmount { .. } => "LG005",
            PendingAlreadyPosted => "LG006",
            PendingAlreadyVoided => "LG007",
            PendingExpired => "LG008",
            InvalidAmount { .. } | Overflow { .. } => "LG009",
            UnknownAccount(_) => "LG010",
            InvalidLegs(_) => "LG011",
            ReversalNotExact { .. } | ReversedNotPosted { .. } | AlreadyReversed { .. } => "LG012",
            NoSuchPending(_) => "LG013",
            NotYetExpired(_) => "LG014",
        }
    }

    fn code(&self) -> &'static str {
        use LedgerError::*;
        match self {
            Unbalanced { .. } => "unbalanced",
            MixedCurrency { .. } => "mixed_currency",
            ExceedsCredits { .. } => "exceeds_credits",
            ExceedsDebits { .. } => "exceeds_debits",
            ExistsWithDifferent { .. } => "exists_with_different",
            ExceedsPendingAmount { .. } => "exceeds_pending_amount",
            PendingAlreadyPosted => "pending_already_posted",
            PendingAlreadyVoided => "pending_already_voided",
            PendingExpired => "pending_expired",
            InvalidAmount { .. } => "invalid_amount",
            Overflow { .. } => "overflow",
            UnknownAccount(_) => "unknown_account",
            InvalidLegs(_) => "invalid_legs",
            ReversalNotExact { .. } => "reversal_not_exact",
            ReversedNotPosted { .. } => "reversed_not_posted",
            AlreadyReversed { .. } => "already_reversed",
            NoSuchPending(_) => "no_such_pending",
            NotYetExpired(_) => "not_yet_expired",
        }
    }

    fn detail(&self) -> Map<String, Value> {
        // Imported here: `json` in this module's scope is the `json` submodule.
        use serde_json::json;
        use LedgerError::*;
        let v = match self {
            Unbalanced { currency, debits, credits } => {
                json!({"currency": currency, "debits": exact(*debits), "credits": exact(*credits)})
            }
            MixedCurrency { leg, account, leg_currency, account_currency } => {
                json!({"leg": leg, "account_id": account, "leg_currency": leg_currency, "account_currency": account_currency})
            }
            ExceedsCredits { account, debits, credits } | ExceedsDebits { account, credits, debits } => {
                json!({"account_id": account, "debits": exact(*debits), "credits": exact(*credits)})
            }
            ExistsWithDifferent { id, fields } => json!({"transfer_id": id, "fields": fields}),
            ExceedsPendingAmount { amount, reserved } => json!({"amount": amount, "reserved": reserved}),
            InvalidAmount { field, amount } => json!({"field": field, "amount": amount}),
            Overflow { account, balance } => json!({"account_id": account, "balance": balance}),
            UnknownAccount(account) => json!({"account_id": account}),
            InvalidLegs(reason) => json!({"reason": reason}),
            ReversalNotExact { reverses, .. } | ReversedNotPosted { reverses } => json!({"reverses": reverses}),
            AlreadyReversed { reverses, by } => json!({"reverses": reverses, "reversed_by": by}),
            NoSuchPending(id) | NotYetExpired(id) => json!({"pending_id": id}),
            PendingAlreadyPosted | PendingAlreadyVoided | PendingExpired => json!({}),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        use LedgerError::*;
        Some(match self {
            ExistsWithDifferent { .. } => "A transfer id is an idempotency key: retry with the identical request, or use a new id.",
            ExceedsCredits { .. } | ExceedsDebits { .. } => "The account's flag forbids this balance; fund it first or move less.",
            PendingExpired => "The reservation timed out and its amount was released; reserve again.",
            ReversalNotExact { .. } => "A reversal has the original's accounts and amounts with debits and credits swapped.",
            Overflow { .. } => "Balances are bigint minor units; split the money over accounts.",
            _ => return None,
        })
    }
}

/// Checks that `legs` form a transfer: a debit and a credit at least, positive amounts, known
/// accounts in the legs' currencies, balanced per currency (sums in `i128`: no overflow).
fn check_legs(accounts: &BTreeMap<String, Account>, legs: &[Leg]) -> Result<(), LedgerError> {
    if legs.len() < 2 {
        return Err(LedgerError::InvalidLegs("a transfer needs at least two legs"));
    }
    if !legs.iter().any(|l| l.direction == Direction::Debit) || !legs.iter().any(|l| l.direction == Direction::Credit) {
        return Err(LedgerError::InvalidLegs("a transfer needs a debit and a credit"));
    }
    let mut sums: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
    for (i, leg) in legs.iter().enumerate() {
        if leg.amount <= 0 {
            return Err(LedgerError::InvalidAmount { field: format!("legs[{i}].amount"), amount: leg.amount });
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

/// Adds (`release == false`) or removes the legs' amounts — or `amount` for each leg — on the
/// posted or pending side of their accounts, every sum checked.
fn book(accounts: &mut BTreeMap<String, Account>, legs: &[Leg], pending: bool, release: bool, amount: Option<i64>) -> Result<(), LedgerError> {
    for leg in legs {
        let a = accounts.get_mut(&leg.account_id).ok_or_else(|| LedgerError::UnknownAccount(leg.account_id.clone()))?;
        let (field, balance) = match (leg.direction, pending) {
            (Direction::Debit, false) => (&mut a.debits_posted, "debits_posted"),
            (Direction::Credit, false) => (&mut a.credits_posted, "credits_posted"),
            (Direction::Debit, true) => (&mut a.debits_pending, "debits_pending"),
            (Direction::Credit, true) => (&mut a.credits_pending, "credits_pending"),
        };
        let amount = amount.unwrap_or(leg.amount);
        let next = if release { field.checked_sub(amount) } else { field.checked_add(amount) };
        *field = next.ok_or_else(|| LedgerError::Overflow { account: a.id.clone(), balance })?;
    }
    Ok(())
}

fn check_flags(accounts: &BTreeMap<String, Account>, touched: &[Leg]) -> Result<(), LedgerError> {
    match touched.iter().find_map(|leg| accounts[&leg.account_id].flag_violation()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Validates `action` against `accounts` and returns the balances after it. `accounts` must
/// hold every account the legs name. On error nothing is returned, so nothing changes.
pub fn apply(accounts: &BTreeMap<String, Account>, action: &Action) -> Result<BTreeMap<String, Account>, LedgerError> {
    let mut next = accounts.clone();
    match action {
        Action::Post(legs) => {
            check_legs(accounts, legs)?;
            book(&mut next, legs, false, false, None)?;
            check_flags(&next, legs)?;
        }
        Action::Reserve(legs) => {
            check_legs(accounts, legs)?;
            if legs.len() != 2 {
                return Err(LedgerError::InvalidLegs("a pending transfer has exactly one debit and one credit"));
            }
            book(&mut next, legs, true, false, None)?;
            check_flags(&next, legs)?;
        }
        Action::PostPending { legs, amount } => {
            let reserved = legs.first().map_or(0, |l| l.amount);
            let amount = amount.unwrap_or(reserved);
            if amount <= 0 {
                return Err(LedgerError::InvalidAmount { field: "amount".into(), amount });
            }
            if amount > reserved {
                return Err(LedgerError::ExceedsPendingAmount { amount, reserved });
            }
            book(&mut next, legs, true, true, None)?;
            book(&mut next, legs, false, false, Some(amount))?;
            check_flags(&next, legs)?;
        }
        Action::VoidPending { legs } => {
            book(&mut next, legs, true, true, None)?;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests;
