//! Tails `private.realtime_events` and `private.realtime_changes` in commit-safe order.
//!
//! Row ids are handed out when a row is inserted, not when its transaction commits, so "every id
//! above the last one seen" skips a transaction that commits after a later id was read. Every
//! row records its transaction id (`xid8`). The tailer remembers what its previous read's
//! snapshot could not see — the transactions in progress then (`xip`) and those at or above its
//! `xmax` — and each read (one repeatable-read snapshot) takes exactly their rows that are now
//! committed:
//!
//! ```text
//! (xid = any(previous xip) or xid >= previous xmax)   ordered by xid, id
//! ```
//!
//! so a transaction that commits late, whatever its ids, is read on the first read after its
//! commit, and nothing is read twice. The read's cost depends only on what committed since the
//! previous one, not on long transactions elsewhere in the cluster (which would hold back an
//! `xmin` watermark). Transactions that commit between two reads are delivered in
//! transaction-id order (without `track_commit_timestamp` Postgres records no order among them);
//! across reads, delivery follows commit order. Wake-ups come from `NOTIFY careplane_realtime`
//! (sent by Postgres at commit), with a periodic read as the fallback when a notification is
//! lost (e.g. while the listener reconnects).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};

use super::changes::{self, Change};
use super::hub::{Hub, Outgoing};
use super::protocol::Body;

/// How many rows one read takes at most.
const BATCH: i64 = 1000;

/// What the previous read saw: the transactions not yet committed then are exactly those in
/// its snapshot's in-progress list (`xip`) or at or above its `xmax`. Only their rows can still
/// be undelivered, so that is all the next read looks at, whatever else runs in the cluster.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    xmax: String,
    xip: Vec<String>,
    /// A read that hit BATCH stopped inside its snapshot: `(snapshot, xid, id)` to resume from;
    /// the reads that finish it take only what that snapshot saw, after `(xid, id)`.
    resume: Option<(String, String, i64)>,
}

/// One row of the log as read by the tailer.
pub struct LogRow<T> {
    pub id: i64,
    pub row: T,
}

/// The read that never skips: `query` must select `xid::text, id, …` from a table with `xid
/// xid8` where `$1` (xip) / `$2` (xmax) select the transactions the previous read could not
/// see, `$3` / `$4` / `$5` resume a batch, ordered by xid, id, limited to `$6`.
async fn read<T>(
    db: &PgPool,
    cursor: &Cursor,
    query: &str,
    map: impl Fn(&sqlx::postgres::PgRow) -> Result<T, sqlx::Error>,
) -> Result<(Vec<LogRow<T>>, Cursor), sqlx::Error> {
    let mut tx = db.begin().await?;
    // One snapshot for the rows and what is recorded of it.
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let now: String = sqlx::query_scalar("select pg_current_snapshot()::text").fetch_one(&mut *tx).await?;
    let (snap, after_xid, after_id) = match &cursor.resume {
        Some((snap, xid, id)) => (Some(snap.clone()), Some(xid.clone()), Some(*id)),
        None => (None, None, None),
    };
    let rows = sqlx::query(query)
        .bind(&cursor.xip)
        .bind(&cursor.xmax)
        .bind(&snap)
        .bind(&after_xid)
        .bind(after_id)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in &rows {
        let xid: String = r.try_get(0)?;
        let id: i64 = r.try_get(1)?;
        last = Some((xid, id));
        out.push(LogRow { id, row: map(r)? });
    }
    let target = snap.unwrap_or(now);
    let next = match last {
        Some((xid, id)) if rows.len() as i64 >= BATCH => Cursor { resume: Some((target, xid, id)), ..cursor.clone() },
        _ => seen_by(&target)?,
    };
    Ok((out, next))
}

/// The cursor after a read that took everything `snapshot` (`xmin:xmax:xip,…`) saw.
fn seen_by(snapshot: &str) -> Result<Cursor, sqlx::Error> {
    let bad = || sqlx::Error::Protocol(format!("unexpected pg_snapshot {snapshot:?}"));
    let mut parts = snapshot.split(':');
    let (_xmin, xmax, xip) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().unwrap_or(""));
    xmax.parse::<u64>().map_err(|_| bad())?;
    let xip: Vec<String> = xip.split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect();
    Ok(Cursor { xmax: xmax.to_owned(), xip, resume: None })
}

const WHERE_UNSEEN: &str = "(x.xid = any($1::text[]::xid8[]) or x.xid >= $2::text::xid8)
   and ($3::text is null or (pg_visible_in_snapshot(x.xid, $3::text::pg_snapshot)
                             and (x.xid, x.id) > ($4::text::xid8, $5::bigint)))";

fn query(columns: &str, table: &str) -> String {
    format!("select x.xid::text, x.id, {columns} from {table} x where {WHERE_UNSEEN} order by x.xid, x.id limit $6")
}

static EVENTS_QUERY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| query("x.topic, x.event, x.payload, x.created_at", "private.realtime_events"));
static CHANGES_QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    query("x.schema_name, x.table_name, x.op, x.pk, x.record, x.columns, x.created_at", "private.realtime_changes")
});

/// An event of `private.realtime_events`.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub topic: String,
    pub event: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

fn event_row(r: &sqlx::postgres::PgRow) -> Result<Event, sqlx::Error> {
    Ok(Event {
        id: r.try_get(1)?,
        topic: r.try_get(2)?,
        event: r.try_get(3)?,
        payload: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

fn change_row(r: &sqlx::postgres::PgRow) -> Result<Change, sqlx::Error> {
    let created_at: DateTime<Utc> = r.try_get(8)?;
    Ok(Change {
        id: r.try_get(1)?,
        schema: r.try_get(2)?,
        table: r.try_get(3)?,
        op: r.try_get(4)?,
        pk: r.try_get(5)?,
        record: r.try_get(6)?,
        columns: r.try_get(7)?,
        commit_timestamp: created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

/// Reads the events log from `cursor`, in commit-safe order (exposed for tests and the bench).
pub async fn read_events(db: &PgPool, cursor: &Cursor) -> Result<(Vec<LogRow<Event>>, Cursor), sqlx::Error> {
    read(db, cursor, &EVENTS_QUERY, event_row).await
}

/// The broadcast a log event becomes: `event` = its name, its id in `meta`.
pub fn event_outgoing(e: &Event, replayed: bool) -> Outgoing {
    let meta = if replayed { json!({"id": e.id.to_string(), "replayed": true}) } else { json!({"id": e.id.to_string()}) };
    Outgoing::broadcast(&e.topic, &e.event, Some(meta), Body::Json(e.payload.clone()), Some(e.id))
}

/// Starts at "now": what is already committed is not sent (clients that missed it replay).
async fn start_cursor(db: &PgPool) -> Result<Cursor, sqlx::Error> {
    let now: String = sqlx::query_scalar("select pg_current_snapshot()::text").fetch_one(db).await?;
    seen_by(&now)
}

/// The cursor a new tailer starts from (exposed for tests and the bench).
pub async fn start_events_cursor(db: &PgPool) -> Result<Cursor, sqlx::Error> {
    start_cursor(db).await
}

async fn catch_up(db: &PgPool) -> Result<(Cursor, Cursor), sqlx::Error> {
    let start = start_cursor(db).await?;
    Ok((start.clone(), start))
}

/// The tailer loop: runs until the task is aborted. Survives database outages (retries with a
/// pause; the cursor is kept, so nothing committed meanwhile is skipped).
pub async fn run(hub: Arc<Hub>, db: PgPool, poll: Duration) {
    let (mut events, mut changes) = loop {
        match catch_up(&db).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "realtime tailer: cannot read the log yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut listener: Option<PgListener> = None;
    // Which logs to read next: both at first, after a timeout and after a reconnect.
    let mut wanted = Wanted { events: true, changes: true };
    loop {
        if listener.is_none() {
            match PgListener::connect_with(&db).await {
                Ok(mut l) => match l.listen("careplane_realtime").await {
                    Ok(()) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, "realtime tailer: LISTEN failed; polling"),
                },
                Err(e) => tracing::warn!(error = %e, "realtime tailer: no listener connection; polling"),
            }
            wanted = Wanted { events: true, changes: true };
        }
        let full = match pass(&hub, &db, &mut events, &mut changes, wanted).await {
            Ok(full) => full,
            Err(e) => {
                tracing::warn!(error = %e, "realtime tailer: read failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                wanted = Wanted { events: true, changes: true };
                continue;
            }
        };
        if full {
            wanted = Wanted { events: true, changes: true };
            continue;
        }
        wanted = Wanted { events: false, changes: false };
        match listener.as_mut() {
            Some(l) => match tokio::time::timeout(poll, l.recv()).await {
                Ok(Ok(first)) => {
                    // One read serves every commit notified so far.
                    wanted.note(first.payload());
                    while let Some(n) = l.next_buffered() {
                        wanted.note(n.payload());
                    }
                }
                Err(_) => wanted = Wanted { events: true, changes: true },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "realtime tailer: listener lost; reconnecting");
                    listener = None;
                }
            },
            None => {
                tokio::time::sleep(poll).await;
                wanted = Wanted { events: true, changes: true };
            }
        }
    }
}

/// Which logs a pass reads (the NOTIFY payload names the table written).
#[derive(Clone, Copy)]
struct Wanted {
    events: bool,
    changes: bool,
}

impl Wanted {
    fn note(&mut self, table: &str) {
        match table {
            "realtime_events" => self.events = true,
            "realtime_changes" => self.changes = true,
            _ => *self = Wanted { events: true, changes: true },
        }
    }
}

/// One read of the wanted logs and their delivery; `true` when a batch was full (read again now).
async fn pass(hub: &Hub, db: &PgPool, events: &mut Cursor, changes: &mut Cursor, wanted: Wanted) -> Result<bool, sqlx::Error> {
    let mut full = false;
    if wanted.events {
        let (rows, next) = read(db, events, &EVENTS_QUERY, event_row).await?;
        full |= rows.len() as i64 >= BATCH;
        for r in &rows {
            let e = &r.row;
            let sent = hub.fan_out(Arc::new(event_outgoing(e, false)), None);
            metrics::counter!("careplane_realtime_events_relayed_total", "kind" => "broadcast").increment(sent as u64);
            let lag = (Utc::now() - e.created_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            metrics::histogram!("careplane_realtime_commit_to_send_seconds").record(lag);
        }
        *events = next;
    }
    if wanted.changes {
        let (rows, next) = read(db, changes, &CHANGES_QUERY, change_row).await?;
        full |= rows.len() as i64 >= BATCH;
        for r in &rows {
            let sent = changes::deliver(hub, db, &r.row).await?;
            metrics::counter!("careplane_realtime_events_relayed_total", "kind" => "postgres_changes").increment(sent as u64);
        }
        *changes = next;
    }
    Ok(full)
}
