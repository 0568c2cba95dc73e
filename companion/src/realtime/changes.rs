//! `postgres_changes`: bindings as the client sends them in `phx_join`, their ids, Supabase's
//! filters (`eq`, `neq`, `in`), and delivery of a captured row change to the subscribers that may
//! select the row under row-level security — asked in the database as each of them, in one
//! call per change whatever the number of subscribers.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::hub::{self, Hub, Outgoing};
use super::protocol::{self, Wire};

/// The tables whose changes are captured (`private.capture_change`).
pub const CAPTURED: &[(&str, &str)] =
    &[("public", "messages"), ("public", "notifications"), ("public", "appointments"), ("public", "emergency_requests")];

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    Neq(String),
    In(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    column: String,
    op: Op,
}

/// One `postgres_changes` binding of a channel.
#[derive(Debug, Clone)]
pub struct Binding {
    /// As the client sent it; echoed in the join reply with `id` added.
    pub raw: Value,
    pub id: u32,
    event: String,
    schema: String,
    table: Option<String>,
    filter: Option<Filter>,
}

impl Binding {
    /// Parses one binding of `config.postgres_changes`.
    pub fn parse(raw: &Value) -> Result<Binding, String> {
        let o = raw.as_object().ok_or("each postgres_changes binding is an object")?;
        let text = |k: &str| o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let event = text("event").ok_or("postgres_changes: event is required (*, INSERT, UPDATE or DELETE)")?;
        if !["*", "INSERT", "UPDATE", "DELETE"].contains(&event.as_str()) {
            return Err(format!("postgres_changes: event {event:?} is not *, INSERT, UPDATE or DELETE"));
        }
        let schema = text("schema").ok_or("postgres_changes: schema is required")?;
        let table = text("table").filter(|t| t != "*");
        let covered = CAPTURED.iter().any(|(s, t)| (schema == "*" || schema == *s) && table.as_deref().is_none_or(|x| x == *t));
        if !covered {
            let names: Vec<String> = CAPTURED.iter().map(|(s, t)| format!("{s}.{t}")).collect();
            return Err(format!(
                "postgres_changes: {schema}.{} is not published (published: {})",
                table.as_deref().unwrap_or("*"),
                names.join(", ")
            ));
        }
        let filter = match text("filter") {
            Some(f) => Some(parse_filter(&f)?),
            None => None,
        };
        let mut h = Sha256::new();
        h.update(format!("{event}\0{schema}\0{}\0{}", table.as_deref().unwrap_or(""), text("filter").unwrap_or_default()));
        let digest = h.finalize();
        let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
        Ok(Binding { raw: raw.clone(), id, event, schema, table, filter })
    }

    /// The binding as the join reply carries it.
    pub fn reply(&self) -> Value {
        let mut v = self.raw.clone();
        v["id"] = json!(self.id);
        v
    }

    pub fn covers_table(&self, schema: &str, table: &str) -> bool {
        (self.schema == "*" || self.schema == schema) && self.table.as_deref().is_none_or(|t| t == table)
    }

    /// Does a change of `op` with these records match this binding?
    fn matches(&self, schema: &str, table: &str, op: &str, row: &Value) -> bool {
        if !self.covers_table(schema, table) || (self.event != "*" && self.event != op) {
            return false;
        }
        let Some(f) = &self.filter else { return true };
        let Some(value) = row.get(&f.column) else { return false };
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Null => "null".into(),
            other => other.to_string(),
        };
        match &f.op {
            Op::Eq(v) => value == *v,
            Op::Neq(v) => value != *v,
            Op::In(vs) => vs.contains(&value),
        }
    }
}

/// `column=eq.value`, `column=neq.value`, `column=in.(a,b,"c d")` (Supabase's syntax).
fn parse_filter(f: &str) -> Result<Filter, String> {
    let bad = || format!("postgres_changes: filter {f:?} is not column=eq.value, column=neq.value or column=in.(a,b)");
    let (column, rest) = f.split_once('=').ok_or_else(bad)?;
    let (op, value) = rest.split_once('.').ok_or_else(bad)?;
    if column.is_empty() || !column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad());
    }
    let op = match op {
        "eq" => Op::Eq(value.to_owned()),
        "neq" => Op::Neq(value.to_owned()),
        "in" => {
            let inner = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')).ok_or_else(bad)?;
            Op::In(inner.split(',').map(|v| v.trim().trim_matches('"').to_owned()).collect())
        }
        _ => return Err(bad()),
    };
    Ok(Filter { column: column.to_owned(), op })
}

/// A row change read from `private.realtime_changes`.
#[derive(Debug, Clone)]
pub struct Change {
    pub id: i64,
    pub schema: String,
    pub table: String,
    pub op: String,
    pub pk: Value,
    pub record: Option<Value>,
    pub columns: Value,
    pub commit_timestamp: String,
}

/// Sends `change` to every subscriber whose binding matches and who may select the row now.
/// Returns how many sockets received it.
pub async fn deliver(hub: &Hub, db: &PgPool, change: &Change) -> Result<usize, sqlx::Error> {
    let row = change.record.as_ref().unwrap_or(&change.pk);
    let mut candidates = Vec::new();
    for (topic, member) in hub.change_subscribers(&change.schema, &change.table) {
        let ids: Vec<u32> = member
            .bindings
            .iter()
            .filter(|b| b.matches(&change.schema, &change.table, &change.op, row))
            .map(|b| b.id)
            .collect();
        if !ids.is_empty() {
            candidates.push((topic, member, ids));
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    // A delete carries only the primary key and the row is gone: there is nothing left to
    // check, as in Supabase Realtime. Everything else is checked as each distinct user.
    let visible: Option<Vec<bool>> = if change.op == "DELETE" {
        None
    } else {
        let mut users: Vec<&str> = Vec::new();
        let mut index: HashMap<uuid::Uuid, usize> = HashMap::new();
        let mut of_candidate = Vec::with_capacity(candidates.len());
        for (_, m, _) in &candidates {
            let i = *index.entry(m.user.id).or_insert_with(|| {
                users.push(m.user.claims.json());
                users.len() - 1
            });
            of_candidate.push(i);
        }
        // The claim sets as they are kept (JSON text), joined into one array.
        let users_json = format!("[{}]", users.join(","));
        let allowed: Vec<i32> = sqlx::query_scalar("select private.realtime_visible_to($1, $2, $3, $4::jsonb)")
            .bind(&change.schema)
            .bind(&change.table)
            .bind(&change.pk)
            .bind(&users_json)
            .fetch_all(db)
            .await?;
        let mut ok = vec![false; users.len()];
        for i in allowed {
            if let Some(slot) = ok.get_mut(i as usize) {
                *slot = true;
            }
        }
        Some(of_candidate.into_iter().map(|i| ok[i]).collect())
    };
    let old_record = (change.op != "INSERT").then(|| change.pk.clone());
    let mut data = json!({
        "schema": change.schema, "table": change.table, "type": change.op,
        "commit_timestamp": change.commit_timestamp, "columns": change.columns, "errors": null,
    });
    if let Some(record) = &change.record {
        data["record"] = record.clone();
    }
    if let Some(old) = old_record {
        data["old_record"] = old;
    }
    let mut sent = 0;
    for (n, (topic, member, ids)) in candidates.into_iter().enumerate() {
        if visible.as_ref().is_some_and(|v| !v[n]) {
            continue;
        }
        let wire: Wire = protocol::push(
            member.vsn,
            None,
            &format!("realtime:{topic}"),
            "postgres_changes",
            json!({"ids": ids, "data": data}),
        );
        let out = Arc::new(Outgoing::encoded(topic, &wire));
        if hub::offer(&member.socket, out, member.vsn) {
            sent += 1;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_parse_match_and_keep_stable_ids() {
        let raw = json!({"event": "INSERT", "schema": "public", "table": "messages", "filter": "conversation_id=eq.abc"});
        let b = Binding::parse(&raw).unwrap();
        assert_eq!(b.id, Binding::parse(&raw).unwrap().id);
        assert_eq!(b.reply()["id"], json!(b.id));
        assert!(b.matches("public", "messages", "INSERT", &json!({"conversation_id": "abc"})));
        assert!(!b.matches("public", "messages", "INSERT", &json!({"conversation_id": "abd"})));
        assert!(!b.matches("public", "messages", "UPDATE", &json!({"conversation_id": "abc"})));
        let any = Binding::parse(&json!({"event": "*", "schema": "public", "table": "appointments", "filter": "status=in.(booked,\"cancelled\")"})).unwrap();
        assert!(any.matches("public", "appointments", "UPDATE", &json!({"status": "cancelled"})));
        assert!(!any.matches("public", "appointments", "UPDATE", &json!({"status": "fulfilled"})));
        assert!(Binding::parse(&json!({"event": "*", "schema": "public", "table": "profiles"})).is_err());
        assert!(Binding::parse(&json!({"event": "*", "schema": "public", "table": "messages", "filter": "a=like.x"})).is_err());
        assert!(Binding::parse(&json!({"event": "TRUNCATE", "schema": "public"})).is_err());
        assert!(Binding::parse(&json!({"event": "*", "schema": "public"})).is_ok());
    }
}
