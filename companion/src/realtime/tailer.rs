//! Tails `private.realtime_events` and `private.realtime_changes` in commit-safe order.
//!
//! Row ids are handed out when a row is inserted, not when its transaction commits, so "every id
//! above the last one seen" skips a transaction that commits after a later id was read. Every
//! row records its transaction id (`xid8`). The tailer remembers what its previous read's
//! snapshot could not see — the transactions in progress then (`xip`) and those at or above its
//! `xmax` — and each read takes exactly their rows that are now
//! committed (one statement, so one round trip: its rows and the `pg_current_snapshot()` it
//! returns come from the same statement snapshot):
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
use std::time::{Duration, Instant};

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

/// The read that never skips, in one statement (one round trip): `query` (built by [`query`])
/// returns the statement's own snapshot (`pg_current_snapshot()` is the snapshot the statement
/// reads with) beside the rows of the transactions the previous read could not see (`$1` xip /
/// `$2` xmax), or beside nulls when there are none; `$3` / `$4` / `$5` resume a batch, ordered
/// by xid, id, limited to `$6`; `$7` is the lowest of `$1` and `$2` ([`Cursor::floor`]). Rows are `snapshot, xid, id, …`.
async fn read<T>(
    db: &PgPool,
    cursor: &Cursor,
    query: &str,
    map: impl Fn(&sqlx::postgres::PgRow) -> Result<T, sqlx::Error>,
) -> Result<(Vec<LogRow<T>>, Cursor), sqlx::Error> {
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
        .bind(cursor.floor().to_string())
        .fetch_all(db)
        .await?;
    let now: String = match rows.first() {
        Some(r) => r.try_get(0)?,
        None => return Err(sqlx::Error::Protocol("the realtime read returned no snapshot".into())),
    };
    let mut out = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in &rows {
        let Some(id) = r.try_get::<Option<i64>, _>(2)? else { continue };
        let xid: String = r.try_get(1)?;
        last = Some((xid, id));
        out.push(LogRow { id, row: map(r)? });
    }
    let target = snap.unwrap_or(now);
    let next = match last {
        Some((xid, id)) if out.len() as i64 >= BATCH => Cursor { resume: Some((target, xid, id)), ..cursor.clone() },
        _ => seen_by(&target)?,
    };
    Ok((out, next))
}

impl Cursor {
    /// The lowest transaction id the next read can return: every unseen transaction is in
    /// `xip` or at or above `xmax`. Given to the read as a plain range (`xid >= floor`), which
    /// the xid index serves in a generic plan too; the `any(xip) or >= xmax` test alone is an
    /// `OR` that a prepared statement's generic plan answers by scanning the whole log.
    fn floor(&self) -> u64 {
        self.xip.iter().chain(std::iter::once(&self.xmax)).filter_map(|x| x.parse::<u64>().ok()).min().unwrap_or(0)
    }
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

const WHERE_UNSEEN: &str = "x.xid >= $7::text::xid8 and (x.xid = any($1::text[]::xid8[]) or x.xid >= $2::text::xid8)
   and ($3::text is null or (pg_visible_in_snapshot(x.xid, $3::text::pg_snapshot)
                             and (x.xid, x.id) > ($4::text::xid8, $5::bigint)))";

/// One statement, so the rows and the snapshot recorded for the next read are the same snapshot
/// (a statement reads with one snapshot, and `pg_current_snapshot()` returns it). The left join
/// keeps one row, the snapshot's, when nothing is unseen.
fn query(columns: &str, table: &str) -> String {
    format!(
        "select s.snap::text, x.xid::text, x.id, {columns}
           from (select pg_current_snapshot() as snap) s
           left join lateral (select x.* from {table} x where {WHERE_UNSEEN} order by x.xid, x.id limit $6) x on true
          order by x.xid, x.id"
    )
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
        id: r.try_get(2)?,
        topic: r.try_get(3)?,
        event: r.try_get(4)?,
        payload: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

fn change_row(r: &sqlx::postgres::PgRow) -> Result<Change, sqlx::Error> {
    let created_at: DateTime<Utc> = r.try_get(9)?;
    Ok(Change {
        id: r.try_get(2)?,
        schema: r.try_get(3)?,
        table: r.try_get(4)?,
        op: r.try_get(5)?,
        pk: r.try_get(6)?,
        record: r.try_get(7)?,
        columns: r.try_get(8)?,
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
    let mut woken: Option<Instant> = None;
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
        let full = match pass(&hub, &db, &mut events, &mut changes, wanted, woken.take()).await {
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
                    woken = Some(Instant::now());
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
/// Stage times for the benchmark and operators: the read (one statement), the time from the
/// wake-up (`woken`, the NOTIFY's arrival) to the rows being in hand, and each event's fan-out
/// (putting it on every joined socket's queue).
async fn pass(
    hub: &Hub,
    db: &PgPool,
    events: &mut Cursor,
    changes: &mut Cursor,
    wanted: Wanted,
    woken: Option<Instant>,
) -> Result<bool, sqlx::Error> {
    let mut full = false;
    if wanted.events {
        let started = Instant::now();
        let (rows, next) = read(db, events, &EVENTS_QUERY, event_row).await?;
        metrics::histogram!("careplane_realtime_read_seconds", "log" => "events").record(started.elapsed().as_secs_f64());
        if let (Some(w), false) = (woken, rows.is_empty()) {
            metrics::histogram!("careplane_realtime_notify_to_read_seconds").record(w.elapsed().as_secs_f64());
        }
        full |= rows.len() as i64 >= BATCH;
        for r in &rows {
            let e = &r.row;
            let fan_out = Instant::now();
            let sent = hub.fan_out(Arc::new(event_outgoing(e, false)), None);
            metrics::histogram!("careplane_realtime_fan_out_seconds").record(fan_out.elapsed().as_secs_f64());
            metrics::counter!("careplane_realtime_events_relayed_total", "kind" => "broadcast").increment(sent as u64);
            let lag = (Utc::now() - e.created_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            metrics::histogram!("careplane_realtime_commit_to_send_seconds").record(lag);
        }
        *events = next;
    }
    if wanted.changes {
        let started = Instant::now();
        let (rows, next) = read(db, changes, &CHANGES_QUERY, change_row).await?;
        metrics::histogram!("careplane_realtime_read_seconds", "log" => "changes").record(started.elapsed().as_secs_f64());
        full |= rows.len() as i64 >= BATCH;
        for r in &rows {
            let sent = changes::deliver(hub, db, &r.row).await?;
            metrics::counter!("careplane_realtime_events_relayed_total", "kind" => "postgres_changes").increment(sent as u64);
        }
        *changes = next;
    }
    Ok(full)
}
