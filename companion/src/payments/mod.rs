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

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use tokio::sync::Notify;

use crate::config::Config;

/// What the payment routes and workers share.
pub struct Payments {
    pub paystack: paystack::Paystack,
    /// Woken when a webhook is stored, so the worker applies it without waiting for its poll.
    pub inbox_wake: Arc<Notify>,
    /// Connections that act as `service_role` for their whole session (`set role` on connect),
    /// so storing a webhook is one statement, one round trip, committed before the 200.
    pub service_db: PgPool,
}

impl Payments {
    pub fn new(config: &Config, options: PgConnectOptions) -> Self {
        let service_db = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(config.health_check_timeout)
            .after_connect(|conn, _| Box::pin(async move { conn.execute("set role service_role").await.map(|_| ()) }))
            .connect_lazy_with(options);
        Payments { paystack: paystack::Paystack::new(&config.paystack), inbox_wake: Arc::new(Notify::new()), service_db }
    }
}
