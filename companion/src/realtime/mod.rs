//! The realtime relay: `GET /realtime/v1/websocket`, speaking Supabase Realtime's protocol as
//! `@supabase/realtime-js` 2.119 does (see docs/realtime.md).
//!
//! - [`tailer`] reads `private.realtime_events` / `private.realtime_changes` in commit-safe
//!   order (transaction-id watermarks) and hands events to the [`hub`];
//! - [`socket`] runs one websocket (joins authorised in the database as the user, replay,
//!   presence, client broadcasts, token expiry) over [`ws`], the websocket transport that lets
//!   the hub write a frame to a parked socket without waking its task;
//! - [`cluster`] shares presence and client broadcasts between instances through Redis;
//! - [`changes`] serves `postgres_changes` with the subscriber's row-level security.

pub mod changes;
pub mod cluster;
pub mod hub;
pub mod protocol;
pub mod socket;
pub mod tailer;
pub mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::config::RealtimeConfig;
use crate::error::AppError;
use crate::AppState;

pub struct Realtime {
    pub config: RealtimeConfig,
    pub hub: Arc<hub::Hub>,
    pub cluster: Option<Arc<cluster::Cluster>>,
    shutting_down: AtomicBool,
    /// Every open socket, so that shutdown can close each with 1001 (through the socket's own
    /// kill switch: a socket task waits on one `Notify` only).
    open: Arc<Mutex<HashMap<hub::ConnId, Arc<hub::SocketHandle>>>>,
}

/// Counts an open socket while alive.
pub struct OpenGuard(Arc<Mutex<HashMap<hub::ConnId, Arc<hub::SocketHandle>>>>, hub::ConnId);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.lock().expect("open sockets lock").remove(&self.1);
        metrics::gauge!("careplane_realtime_connections").decrement(1.0);
    }
}

/// Close code and reason for every socket when the server stops.
pub const SHUTTING_DOWN: (u16, &str) = (1001, "server shutting down");

impl Realtime {
    pub fn new(config: RealtimeConfig, redis: Arc<crate::redis_conn::Redis>) -> Self {
        let cluster = Some(Arc::new(cluster::Cluster::new(redis, config.redis_prefix.clone(), config.presence_ttl)));
        Realtime {
            config,
            hub: Arc::new(hub::Hub::default()),
            cluster,
            shutting_down: AtomicBool::new(false),
            open: Arc::default(),
        }
    }

    /// Registers an open socket (until the guard drops). A socket registered after
    /// [`shutdown`](Self::shutdown) began sees [`shutting_down`](Self::shutting_down).
    fn open(&self, socket: &Arc<hub::SocketHandle>) -> OpenGuard {
        self.open.lock().expect("open sockets lock").insert(socket.id, socket.clone());
        metrics::gauge!("careplane_realtime_connections").increment(1.0);
        OpenGuard(self.open.clone(), socket.id)
    }

    /// Sockets open now.
    pub fn open_sockets(&self) -> usize {
        self.open.lock().expect("open sockets lock").len()
    }

    /// The server is closing every socket and accepts no new one.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Starts the tailer, the presence heartbeat, the Redis bus and the retention job.
    pub fn spawn_workers(&self, db: sqlx::PgPool) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(tailer::run(self.hub.clone(), db.clone(), self.config.poll_interval))];
        if let Some(c) = &self.cluster {
            tasks.push(tokio::spawn(c.clone().heartbeat()));
            tasks.push(tokio::spawn(c.clone().subscribe(self.hub.clone())));
        }
        if let Some(every) = self.config.prune_interval {
            tasks.push(tokio::spawn(prune(db, self.config.replay_retention, every)));
        }
        tasks
    }

    /// Closes every socket with 1001 and waits (up to `grace`) until they are closed; this
    /// instance's presence leaves with them.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for socket in self.open.lock().expect("open sockets lock").values() {
            socket.fire(SHUTTING_DOWN.0, SHUTTING_DOWN.1);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.open_sockets() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(c) = &self.cluster {
            c.depart().await;
        }
    }
}

/// Removes events and changes older than the retention window, every `every`.
async fn prune(db: sqlx::PgPool, retention: Duration, every: Duration) {
    loop {
        match sqlx::query_scalar::<_, i64>("select private.prune_realtime(make_interval(secs => $1))")
            .bind(retention.as_secs_f64())
            .fetch_one(&db)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(removed = n, "realtime: pruned events past retention"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "realtime: prune failed"),
        }
        tokio::time::sleep(every).await;
    }
}

#[derive(Deserialize)]
pub struct SocketParams {
    apikey: Option<String>,
    vsn: Option<String>,
}

/// `GET /realtime/v1/websocket?apikey=…&vsn=2.0.0`
pub async fn websocket(State(state): State<AppState>, Query(params): Query<SocketParams>, upgrade: ws::Upgrade) -> Response {
    let vsn = match protocol::Vsn::parse(params.vsn.as_deref()) {
        Ok(v) => v,
        Err(e) => return AppError::status(StatusCode::BAD_REQUEST, "unsupported_vsn", e).into_response(),
    };
    let rt = state.realtime.clone();
    if rt.shutting_down() {
        return AppError::status(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down; reconnect").into_response();
    }
    let apikey = match params.apikey.as_deref() {
        Some(token) if !token.is_empty() => Some(socket::ApiKey::verify(&state, token).await),
        _ => None,
    };
    upgrade.on_upgrade(move |io| socket::serve(io, state, rt, vsn, apikey))
}
