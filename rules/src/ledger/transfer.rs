//! One transfer request, decided against what the writer read under its locks.
//!
//! The SQL writer (`private.ledger_execute`) locks the transfer the request names (the pending
//! transfer it resolves, or the transfer it reverses), then the accounts in id order, reads
//! what [`Situation`] holds and calls [`decide`]. The answer is everything it writes: the
//! transfer row, its entries and the accounts' new balances — or the refusal it raises, or
//! [`Outcome::Exists`] for a retry of a transfer already made.
//!
//! The decision, in order (the first refusal wins):
//! 1. a resolution must name a pending transfer (`LG013`);
//! 2. idempotency: a transfer with the request's id already exists → the same request returns
//!    it, a different one is `LG004` naming the fields that differ (see [`Request::canonical`]);
//! 3. a resolution needs its pending transfer open ([`pending_state`], [`may_resolve`]);
//! 4. the balances move ([`super::apply`]);
//! 5. a reversal must mirror a posted transfer, once (`LG012`).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use super::{apply, Account, Action, Leg, LedgerError, PendingState, TransferType, VoidReason};

pub type Instant = DateTime<Utc>;

/// What a caller asks for. `id` is the transfer's id and its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub description: Option<String>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Post at once; `reverses` names a posted transfer this one corrects.
    Post { kind: String, legs: Vec<Leg>, reverses: Option<String> },
    /// Reserve; `timeout_seconds` after now it expires (`None`: never).
    Reserve { kind: String, legs: Vec<Leg>, timeout_seconds: Option<i64> },
    /// Post a reservation, all of it or `amount`.
    PostPending { pending_id: String, amount: Option<i64> },
    /// Release a reservation: voided by its owner, or expired by the sweep.
    VoidPending { pending_id: String, reason: VoidReason },
}

impl Request {
    pub fn transfer_type(&self) -> TransferType {
        match self.body {
            Body::Post { .. } => TransferType::Posted,
            Body::Reserve { .. } => TransferType::Pending,
            Body::PostPending { .. } => TransferType::PostPending,
            Body::VoidPending { .. } => TransferType::VoidPending,
        }
    }

    pub fn legs(&self) -> Option<&[Leg]> {
        match &self.body {
            Body::Post { legs, .. } | Body::Reserve { legs, .. } => Some(legs),
            _ => None,
        }
    }

    pub fn pending_id(&self) -> Option<&str> {
        match &self.body {
            Body::PostPending { pending_id, .. } | Body::VoidPending { pending_id, .. } => Some(pending_id),
            _ => None,
        }
    }

    pub fn reverses(&self) -> Option<&str> {
        match &self.body {
            Body::Post { reverses, .. } => reverses.as_deref(),
            _ => None,
        }
    }

    /// The accounts the request's legs name, sorted, each once: the rows the writer locks (in
    /// this order, so concurrent writers never deadlock). A resolution names none: its
    /// accounts are its pending transfer's, which the writer reads.
    pub fn account_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.legs().unwrap_or_default().iter().map(|l| l.account_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The request in canonical form, for idempotency: two requests for one id are the same
    /// request when these fields are equal. A resolution's `amount` defaults to what its
    /// pending transfer reserved; kind and legs belong to transfers that carry them.
    pub fn canonical(&self, pending: Option<&Stored>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), self.transfer_type().as_str().into());
        put(&mut m, "description", self.description.as_deref().map(Value::from));
        match &self.body {
            Body::Post { kind, legs, reverses } => {
                m.insert("kind".into(), kind.as_str().into());
                m.insert("legs".into(), legs_json(legs));
                put(&mut m, "reverses", reverses.as_deref().map(Value::from));
            }
            Body::Reserve { kind, legs, timeout_seconds } => {
                m.insert("kind".into(), kind.as_str().into());
                m.insert("legs".into(), legs_json(legs));
                put(&mut m, "timeout_seconds", timeout_seconds.map(Value::from));
            }
            Body::PostPending { pending_id, amount } => {
                m.insert("pending_id".into(), pending_id.as_str().into());
                let reserved = pending.and_then(|p| p.legs.first()).map(|l| l.amount);
                put(&mut m, "amount", amount.or(reserved).map(Value::from));
            }
            Body::VoidPending { pending_id, .. } => {
                m.insert("pending_id".into(), pending_id.as_str().into());
            }
        }
        m
    }
}

/// A stored transfer: its `ledger_transfers` row and its entries as legs, in entry order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    pub transfer_type: TransferType,
    pub kind: String,
    pub description: Option<String>,
    pub reverses: Option<String>,
    pub pending_id: Option<String>,
    pub amount: Option<i64>,
    pub created_at: Instant,
    pub timeout_at: Option<Instant>,
    pub void_reason: Option<VoidReason>,
    pub legs: Vec<Leg>,
}

impl Stored {
    /// The request that made this transfer, in [`Request::canonical`] form.
    pub fn canonical(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), self.transfer_type.as_str().into());
        put(&mut m, "description", self.description.as_deref().map(Value::from));
        put(&mut m, "reverses", self.reverses.as_deref().map(Value::from));
        put(&mut m, "pending_id", self.pending_id.as_deref().map(Value::from));
        put(&mut m, "amount", self.amount.map(Value::from));
        if matches!(self.transfer_type, TransferType::Posted | TransferType::Pending) {
            m.insert("kind".into(), self.kind.as_str().into());
            m.insert("legs".into(), legs_json(&self.legs));
        }
        let timeout = self.timeout_at.and_then(|t| (t - self.created_at).num_microseconds());
        put(&mut m, "timeout_seconds", timeout.map(|us| Value::from((us + 500_000).div_euclid(1_000_000))));
        m
    }
}

fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.into(), v);
    }
}

pub fn legs_json(legs: &[Leg]) -> Value {
    Value::Array(
        legs.iter()
            .map(|l| json!({"account_id": l.account_id, "direction": l.direction.as_str(), "amount": l.amount, "currency": l.currency}))
            .collect(),
    )
}

/// The fields in which two canonical requests differ (empty: the same request), sorted.
pub fn differing_fields(existing: &Map<String, Value>, requested: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<&String> = existing.keys().chain(requested.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| existing.get(*k) != requested.get(*k)).map(|k| k.to_string()).collect()
}

/// Where `pending` stands at `now`: posted or voided once resolved (a release by the expiry
/// sweep reads as expired); expired once its timeout has passed; else pending.
pub fn pending_state(pending: &Stored, resolution: Option<&Stored>, now: Instant) -> PendingState {
    match resolution {
        Some(r) if r.transfer_type == TransferType::PostPending => PendingState::Posted,
        Some(r) if r.void_reason == Some(VoidReason::Expired) => PendingState::Expired,
        Some(_) => PendingState::Voided,
        None if pending.timeout_at.is_some_and(|t| t <= now) => PendingState::Expired,
        None => PendingState::Pending,
    }
}

/// Whether a request may resolve a pending transfer in `state` (`resolved`: a resolution is
/// stored; `expiring`: the request is the expiry sweep's release). A hold past its timeout
/// takes exactly one more resolution, the sweep's release — that is how its reserved amount
/// returns; anyone else finds it expired. The sweep releases nothing before its timeout.
pub fn may_resolve(pending_id: &str, state: PendingState, resolved: bool, expiring: bool) -> Result<(), LedgerError> {
    match state {
        PendingState::Pending if expiring => Err(LedgerError::NotYetExpired(pending_id.to_owned())),
        PendingState::Pending => Ok(()),
        PendingState::Posted => Err(LedgerError::PendingAlreadyPosted),
        PendingState::Voided => Err(LedgerError::PendingAlreadyVoided),
        PendingState::Expired if expiring && !resolved => Ok(()),
        PendingState::Expired => Err(LedgerError::PendingExpired),
    }
}

/// Sums per (account, direction), the shape two transfers are compared in for a reversal.
fn netted(legs: &[Leg], swap: bool) -> BTreeMap<(&str, super::Direction), i128> {
    let mut m = BTreeMap::new();
    for l in legs {
        let direction = if swap { l.direction.opposite() } else { l.direction };
        *m.entry((l.account_id.as_str(), direction)).or_insert(0i128) += i128::from(l.amount);
    }
    m
}

/// A reversal mirrors a posted transfer exactly (same accounts and amounts, debits and credits
/// swapped), and a transfer is reversed once.
pub fn check_reversal(id: &str, legs: &[Leg], reverses: &str, reversed: Option<&Stored>, reversed_by: Option<&Stored>) -> Result<(), LedgerError> {
    let original = reversed
        .filter(|t| t.id == reverses && t.transfer_type.posts())
        .ok_or_else(|| LedgerError::ReversedNotPosted { reverses: reverses.to_owned() })?;
    if let Some(by) = reversed_by {
        return Err(LedgerError::AlreadyReversed { reverses: reverses.to_owned(), by: by.id.clone() });
    }
    if netted(legs, false) != netted(&original.legs, true) {
        return Err(LedgerError::ReversalNotExact { id: id.to_owned(), reverses: reverses.to_owned() });
    }
    Ok(())
}

/// What the writer read under its locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Situation {
    /// The locked accounts: every account the request's legs (or its pending transfer's) name.
    pub accounts: BTreeMap<String, Account>,
    /// The transfer the request's `pending_id` names, if it exists.
    pub pending: Option<Stored>,
    /// The transfer that already resolved it, if any.
    pub pending_resolution: Option<Stored>,
    /// A stored transfer with the request's id, if any.
    pub existing: Option<Stored>,
    /// The transfer the request's `reverses` names, if it exists.
    pub reversed: Option<Stored>,
    /// The transfer that already reversed it, if any.
    pub reversed_by: Option<Stored>,
    pub now: Instant,
}

/// The transfer row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    pub id: String,
    pub transfer_type: TransferType,
    pub kind: String,
    pub description: Option<String>,
    pub reverses: Option<String>,
    pub pending_id: Option<String>,
    pub amount: Option<i64>,
    pub timeout_at: Option<Instant>,
    pub void_reason: Option<VoidReason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The same request was already made: answer the stored transfer, write nothing.
    Exists,
    /// Insert `transfer` and `entries` (in order), and store the accounts' new balances
    /// (`accounts` holds those that changed).
    Created { transfer: NewTransfer, entries: Vec<Leg>, accounts: BTreeMap<String, Account> },
}

/// The whole decision for `request` (see the module documentation for the order).
pub fn decide(request: &Request, s: &Situation) -> Result<Outcome, LedgerError> {
    let pending = match request.pending_id() {
        Some(id) => Some(
            s.pending
                .as_ref()
                .filter(|p| p.id == id && p.transfer_type == TransferType::Pending)
                .ok_or_else(|| LedgerError::NoSuchPending(id.to_owned()))?,
        ),
        None => None,
    };

    if let Some(existing) = &s.existing {
        let fields = differing_fields(&existing.canonical(), &request.canonical(pending));
        return if fields.is_empty() {
            Ok(Outcome::Exists)
        } else {
            Err(LedgerError::ExistsWithDifferent { id: request.id.clone(), fields })
        };
    }

    let mut transfer = NewTransfer {
        id: request.id.clone(),
        transfer_type: request.transfer_type(),
        kind: String::new(),
        description: request.description.clone(),
        reverses: None,
        pending_id: None,
        amount: None,
        timeout_at: None,
        void_reason: None,
    };
    let (action, entries) = match (&request.body, pending) {
        (Body::Post { kind, legs, reverses }, _) => {
            transfer.kind = kind.clone();
            transfer.reverses = reverses.clone();
            (Action::Post(legs.clone()), legs.clone())
        }
        (Body::Reserve { kind, legs, timeout_seconds }, _) => {
            transfer.kind = kind.clone();
            // A timeout is at most i32::MAX seconds (68 years): the sum stays in range.
            transfer.timeout_at = timeout_seconds.map(|secs| s.now.checked_add_signed(TimeDelta::seconds(secs)).unwrap_or(DateTime::<Utc>::MAX_UTC));
            (Action::Reserve(legs.clone()), legs.clone())
        }
        (Body::PostPending { amount, .. }, Some(p)) => {
            let state = pending_state(p, s.pending_resolution.as_ref(), s.now);
            may_resolve(&p.id, state, s.pending_resolution.is_some(), false)?;
            let posted = amount.unwrap_or_else(|| p.legs.first().map_or(0, |l| l.amount));
            transfer.kind = p.kind.clone();
            transfer.pending_id = Some(p.id.clone());
            transfer.amount = Some(posted);
            let entries = p.legs.iter().map(|l| Leg { amount: posted, ..l.clone() }).collect();
            (Action::PostPending { legs: p.legs.clone(), amount: *amount }, entries)
        }
        (Body::VoidPending { reason, .. }, Some(p)) => {
            let state = pending_state(p, s.pending_resolution.as_ref(), s.now);
            may_resolve(&p.id, state, s.pending_resolution.is_some(), *reason == VoidReason::Expired)?;
            transfer.kind = p.kind.clone();
            transfer.pending_id = Some(p.id.clone());
            transfer.void_reason = Some(*reason);
            (Action::VoidPending { legs: p.legs.clone() }, Vec::new())
        }
        (Body::PostPending { pending_id, .. } | Body::VoidPending { pending_id, .. }, None) => {
            return Err(LedgerError::NoSuchPending(pending_id.clone()))
        }
    };

    let after = apply(&s.accounts, &action)?;

    if let (Some(reverses), Some(legs)) = (request.reverses(), request.legs()) {
        check_reversal(&request.id, legs, reverses, s.reversed.as_ref(), s.reversed_by.as_ref())?;
    }

    let accounts = after.into_iter().filter(|(id, a)| s.accounts.get(id) != Some(a)).collect();
    Ok(Outcome::Created { transfer, entries, accounts })
}
