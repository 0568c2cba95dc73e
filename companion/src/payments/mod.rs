//! Payments with Paystack (docs/payments.md): taking a payment, the signed webhook and its
//! inbox, the worker that applies it, refunds, reconciliation and the keyless sandbox.
//!
//! Every decision is `careplane_rules::payments`, asked between the read and the write of one
//! transaction that holds the payment's row lock; the database functions only lock, read and
//! write (migrations/20261128000100_payments.sql).

pub mod http;
pub mod paystack;
pub mod sandbox;
pub mod service;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::PaystackConfig;

/// What the payment routes and workers share.
pub struct Payments {
    pub paystack: paystack::Paystack,
    /// Woken when a webhook is stored, so the worker applies it without waiting for its poll.
    pub inbox_wake: Arc<Notify>,
}

impl Payments {
    pub fn new(config: &PaystackConfig) -> Self {
        Payments { paystack: paystack::Paystack::new(config), inbox_wake: Arc::new(Notify::new()) }
    }
}
