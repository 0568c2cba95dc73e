//! Tails `private.realtime_events` and `private.realtime_changes` in commit-safe order.
//!
//! Row ids are handed out when a row is inserted, not when its transaction commits, so "every id
//! above the last one seen" skips a transaction that commits after a later id was read. The
//! tailer instead remembers a transaction-id watermark `W` — the `xmin` of its last complete
//! read's snapshot: every transaction below it has ended and none can start below it — plus,
//! for the transactions at or above `W` it has already read, how far (`max id`). Each read takes
//! everything committed that is not yet delivered:
//!
//! ```text
//! xid >= W and id > delivered[xid] (0 when absent)   ordered by xid, id
//! ```
//!
//! so a transaction that commits late, whatever its ids, is read on the first read after its
//! commit; nothing is read twice. Transactions that commit between two reads are delivered in
//! transaction-id order (without `track_commit_timestamp` Postgres records no order among them);
//! across reads, delivery follows commit order. Wake-ups come from `NOTIFY careplane_realtime`
//! (sent by Postgres at commit), with a periodic read as the fallback when a notification is
//! lost (e.g. while the listener reconnects).

use std::collections::BTreeMap;
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

/// The watermark and what was delivered at or above it.
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    /// Transactions below this have all ended (as text: xid8 is 64-bit unsigned).
    watermark: u64,
    /// Transactions at or above the watermark already read, with the highest id read of each.
    delivered: BTreeMap<u64, i64>,
}

/// One row of the log as read by the tailer.
pub struct LogRow<T> {
    pub xid: u64,
    pub id: i64,
    pub row: T,
}

/// The read that never skips: `query` must select `xid::text, id, …` from a table with `xid
/// xid8`, filtered by `$1` (watermark), `$2` (xids) and `$3` (max ids), ordered by xid, id,
/// limited to `$4`.
async fn read<T>(
    db: &PgPool,
    cursor: &Cursor,
    query: &str,
    map: impl Fn(&sqlx::postgres::PgRow) -> Result<T, sqlx::Error>,
) -> Result<(Vec<LogRow<T>>, Cursor), sqlx::Error> {
    let mut tx = db.begin().await?;
    // One snapshot for the watermark and the rows.
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let xmin: String = sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text").fetch_one(&mut *tx).await?;
    let xids: Vec<String> = cursor.delivered.keys().map(u64::to_string).collect();
    let ids: Vec<i64> = cursor.delivered.values().copied().collect();
    let rows = sqlx::query(query)
        .bind(cursor.watermark.to_string())
        .bind(&xids)
        .bind(&ids)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut next = cursor.clone();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let xid: String = r.try_get(0)?;
        let xid: u64 = xid.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let id: i64 = r.try_get(1)?;
        let slot = next.delivered.entry(xid).or_insert(0);
        *slot = (*slot).max(id);
        out.push(LogRow { xid, id, row: map(r)? });
    }
    // A full batch may have stopped inside the snapshot: the watermark moves only after a read
    // that took everything committed.
    if (rows.len() as i64) < BATCH {
        let xmin: u64 = xmin.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        next.watermark = xmin;
        next.delivered = next.delivered.split_off(&xmin);
    }
    Ok((out, next))
}

const EVENTS_QUERY: &str = "
select e.xid::text, e.id, e.topic, e.event, e.payload, e.created_at
  from private.realtime_events e
 where e.xid >= $1::text::xid8
   and e.id > coalesce((select d.max_id from unnest($2::text[], $3::bigint[]) d(x, max_id) where d.x::xid8 = e.xid), 0)
 order by e.xid, e.id
 limit $4";

const CHANGES_QUERY: &str = "
select c.xid::text, c.id, c.schema_name, c.table_name, c.op, c.pk, c.record, c.columns, c.created_at
  from private.realtime_changes c
 where c.xid >= $1::text::xid8
   and c.id > coalesce((select d.max_id from unnest($2::text[], $3::bigint[]) d(x, max_id) where d.x::xid8 = c.xid), 0)
 order by c.xid, c.id
 limit $4";

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
    read(db, cursor, EVENTS_QUERY, event_row).await
}

/// The broadcast a log event becomes: `event` = its name, its id in `meta`.
pub fn event_outgoing(e: &Event, replayed: bool) -> Outgoing {
    let meta = if replayed { json!({"id": e.id.to_string(), "replayed": true}) } else { json!({"id": e.id.to_string()}) };
    Outgoing::broadcast(&e.topic, &e.event, Some(meta), Body::Json(e.payload.clone()), Some(e.id))
}

/// Starts at "now": what is already committed is not sent (clients that missed it replay).
/// The watermark is the current snapshot's xmin; transactions at or above it that have
/// committed are marked read up to their highest id (one indexed query, whatever the log's size).
async fn start_cursor(db: &PgPool, table: &str) -> Result<Cursor, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let xmin: String = sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text").fetch_one(&mut *tx).await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as(&format!("select xid::text, max(id) from {table} where xid >= $1::text::xid8 group by xid"))
            .bind(&xmin)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let parse = |x: &str| x.parse::<u64>().map_err(|e| sqlx::Error::Decode(Box::new(e)));
    let mut cursor = Cursor { watermark: parse(&xmin)?, delivered: BTreeMap::new() };
    for (xid, max_id) in rows {
        cursor.delivered.insert(parse(&xid)?, max_id);
    }
    Ok(cursor)
}

/// The cursor a new tailer starts from (exposed for tests and the bench).
pub async fn start_events_cursor(db: &PgPool) -> Result<Cursor, sqlx::Error> {
    start_cursor(db, "private.realtime_events").await
}

async fn catch_up(db: &PgPool) -> Result<(Cursor, Cursor), sqlx::Error> {
    Ok((start_cursor(db, "private.realtime_events").await?, start_cursor(db, "private.realtime_changes").await?))
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
        let (rows, next) = read(db, events, EVENTS_QUERY, event_row).await?;
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
        let (rows, next) = read(db, changes, CHANGES_QUERY, change_row).await?;
        full |= rows.len() as i64 >= BATCH;
        for r in &rows {
            let sent = changes::deliver(hub, db, &r.row).await?;
            metrics::counter!("careplane_realtime_events_relayed_total", "kind" => "postgres_changes").increment(sent as u64);
        }
        *changes = next;
    }
    Ok(full)
}
