//! The Phoenix channel frames Supabase Realtime speaks, in both serializer versions
//! (`vsn=1.0.0`: JSON objects; `vsn=2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]`
//! and binary user broadcasts), as `@supabase/realtime-js` 2.119 encodes and decodes them
//! (`lib/serializer.js`).

use axum::body::Bytes;
use tungstenite::Utf8Bytes;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    V1,
    V2,
}

impl Vsn {
    /// The `vsn` query parameter; absent means 1.0.0, as Phoenix assumes.
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("1.0.0") => Ok(Vsn::V1),
            Some("2.0.0") => Ok(Vsn::V2),
            Some(other) => Err(format!("unsupported vsn {other:?}: this server speaks 1.0.0 and 2.0.0")),
        }
    }
}

/// One Phoenix message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub join_ref: Option<String>,
    pub reference: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// A user broadcast's body: JSON, or raw bytes (binary frames only, `vsn=2.0.0`).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Raw(Bytes),
}

/// A frame ready for the socket. Both kinds are reference-counted bytes: a frame encoded once
/// for a topic is cloned onto every joined socket without copying it.
#[derive(Debug, Clone)]
pub enum Wire {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Wire {
    pub fn len(&self) -> usize {
        match self {
            Wire::Text(s) => s.len(),
            Wire::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const KIND_USER_BROADCAST_PUSH: u8 = 3;
const KIND_USER_BROADCAST: u8 = 4;
const ENCODING_RAW: u8 = 0;
const ENCODING_JSON: u8 = 1;

fn opt_string(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err("join_ref and ref must be strings or null".into()),
    }
}

/// A text frame from the client.
pub fn decode_text(vsn: Vsn, text: &str) -> Result<Message, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let (join_ref, reference, topic, event, payload) = match (vsn, value) {
        (Vsn::V2, Value::Array(mut parts)) if parts.len() == 5 => {
            let payload = parts.pop().unwrap_or(Value::Null);
            let event = parts.pop().unwrap_or(Value::Null);
            let topic = parts.pop().unwrap_or(Value::Null);
            let reference = parts.pop().unwrap_or(Value::Null);
            let join_ref = parts.pop().unwrap_or(Value::Null);
            (join_ref, reference, topic, event, payload)
        }
        (Vsn::V2, _) => return Err("vsn 2.0.0 text frames are arrays [join_ref, ref, topic, event, payload]".into()),
        (Vsn::V1, Value::Object(mut o)) => (
            o.remove("join_ref").unwrap_or(Value::Null),
            o.remove("ref").unwrap_or(Value::Null),
            o.remove("topic").unwrap_or(Value::Null),
            o.remove("event").unwrap_or(Value::Null),
            o.remove("payload").unwrap_or(Value::Null),
        ),
        (Vsn::V1, _) => return Err("vsn 1.0.0 frames are objects {join_ref, ref, topic, event, payload}".into()),
    };
    let (Value::String(topic), Value::String(event)) = (topic, event) else {
        return Err("topic and event must be strings".into());
    };
    Ok(Message { join_ref: opt_string(&join_ref)?, reference: opt_string(&reference)?, topic, event, payload })
}

/// A decoded binary user broadcast push (kind 3).
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastPush {
    pub join_ref: Option<String>,
    pub reference: Option<String>,
    pub topic: String,
    pub event: String,
    pub meta: Option<Value>,
    pub body: Body,
}

/// A binary frame from the client: only kind 3 (user broadcast push) exists.
pub fn decode_binary(frame: &[u8]) -> Result<BroadcastPush, String> {
    let header = frame.get(..7).ok_or("binary frame shorter than its header")?;
    if header[0] != KIND_USER_BROADCAST_PUSH {
        return Err(format!("unknown binary frame kind {}", header[0]));
    }
    let lens = [header[1], header[2], header[3], header[4], header[5]].map(usize::from);
    let encoding = header[6];
    let mut offset = 7;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let part = frame.get(offset..offset + n).ok_or("binary frame shorter than its lengths say")?;
        offset += n;
        Ok(part)
    };
    let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "binary frame strings must be UTF-8".to_owned());
    let join_ref = utf8(take(lens[0])?)?;
    let reference = utf8(take(lens[1])?)?;
    let topic = utf8(take(lens[2])?)?;
    let event = utf8(take(lens[3])?)?;
    let meta = take(lens[4])?;
    let meta = if meta.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(meta).map_err(|e| format!("binary frame metadata is not JSON: {e}"))?)
    };
    let rest = &frame[offset..];
    let body = match encoding {
        ENCODING_JSON => Body::Json(serde_json::from_slice(rest).map_err(|e| format!("broadcast payload is not JSON: {e}"))?),
        ENCODING_RAW => Body::Raw(Bytes::copy_from_slice(rest)),
        other => return Err(format!("unknown payload encoding {other}")),
    };
    let none_if_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(BroadcastPush { join_ref: none_if_empty(join_ref), reference: none_if_empty(reference), topic, event, meta, body })
}

/// Encodes a message for a client speaking `vsn`.
pub fn encode(vsn: Vsn, m: &Message) -> Wire {
    let text = match vsn {
        Vsn::V2 => json!([m.join_ref, m.reference, m.topic, m.event, m.payload]).to_string(),
        Vsn::V1 => {
            json!({"join_ref": m.join_ref, "ref": m.reference, "topic": m.topic, "event": m.event, "payload": m.payload})
                .to_string()
        }
    };
    Wire::Text(text.into())
}

/// A server broadcast to every client on `topic` (the client's full topic, `realtime:<name>`).
/// `vsn=2.0.0` gets the binary user-broadcast frame (kind 4), as Supabase Realtime sends it;
/// `vsn=1.0.0` the JSON message (raw bodies cannot be carried there: `None`).
pub fn encode_broadcast(vsn: Vsn, topic: &str, event: &str, meta: Option<&Value>, body: &Body) -> Option<Wire> {
    match vsn {
        Vsn::V2 => {
            let meta_text = meta.map(Value::to_string).unwrap_or_default();
            let (encoding, payload) = match body {
                Body::Json(v) => (ENCODING_JSON, Bytes::from(v.to_string())),
                Body::Raw(b) => (ENCODING_RAW, b.clone()),
            };
            let (t, e, m) = (topic.as_bytes(), event.as_bytes(), meta_text.as_bytes());
            if t.len() > 255 || e.len() > 255 || m.len() > 255 {
                // Too long for the binary header: the JSON frame carries anything.
                let Body::Json(_) = body else { return None };
                return encode_broadcast_json(vsn, topic, event, meta, body);
            }
            let mut out = Vec::with_capacity(5 + t.len() + e.len() + m.len() + payload.len());
            out.extend_from_slice(&[KIND_USER_BROADCAST, t.len() as u8, e.len() as u8, m.len() as u8, encoding]);
            out.extend_from_slice(t);
            out.extend_from_slice(e);
            out.extend_from_slice(m);
            out.extend_from_slice(&payload);
            Some(Wire::Binary(out.into()))
        }
        Vsn::V1 => encode_broadcast_json(vsn, topic, event, meta, body),
    }
}

fn encode_broadcast_json(vsn: Vsn, topic: &str, event: &str, meta: Option<&Value>, body: &Body) -> Option<Wire> {
    let Body::Json(payload) = body else { return None };
    let mut inner = json!({"type": "broadcast", "event": event, "payload": payload});
    if let Some(meta) = meta {
        inner["meta"] = meta.clone();
    }
    Some(encode(vsn, &Message { join_ref: None, reference: None, topic: topic.to_owned(), event: "broadcast".into(), payload: inner }))
}

/// `phx_reply` to a client message.
pub fn reply(vsn: Vsn, to: &Message, status: &str, response: Value) -> Wire {
    encode(
        vsn,
        &Message {
            join_ref: to.join_ref.clone(),
            reference: to.reference.clone(),
            topic: to.topic.clone(),
            event: "phx_reply".into(),
            payload: json!({"status": status, "response": response}),
        },
    )
}

/// A server push on a channel (`presence_state`, `system`, `phx_close`, …). Fan-out frames
/// carry `join_ref` null; frames that end a channel carry its `join_ref` so the client knows
/// which join they end.
pub fn push(vsn: Vsn, join_ref: Option<&str>, topic: &str, event: &str, payload: Value) -> Wire {
    encode(
        vsn,
        &Message { join_ref: join_ref.map(str::to_owned), reference: None, topic: topic.to_owned(), event: event.into(), payload },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_array_frames_round_trip() {
        let m = decode_text(Vsn::V2, r#"["1","2","realtime:dispatch","phx_join",{"config":{}}]"#).unwrap();
        assert_eq!(m.join_ref.as_deref(), Some("1"));
        assert_eq!(m.reference.as_deref(), Some("2"));
        assert_eq!(m.topic, "realtime:dispatch");
        let Wire::Text(t) = encode(Vsn::V2, &m) else { panic!() };
        assert_eq!(decode_text(Vsn::V2, &t).unwrap(), m);
    }

    #[test]
    fn v1_object_frames_round_trip() {
        let m = decode_text(Vsn::V1, r#"{"join_ref":null,"ref":"7","topic":"phoenix","event":"heartbeat","payload":{}}"#).unwrap();
        assert_eq!(m.join_ref, None);
        let Wire::Text(t) = encode(Vsn::V1, &m) else { panic!() };
        assert_eq!(decode_text(Vsn::V1, &t).unwrap(), m);
        assert!(decode_text(Vsn::V1, "[1,2,3,4,5]").is_err());
        assert!(decode_text(Vsn::V2, r#"{"topic":"x"}"#).is_err());
    }

    /// The bytes realtime-js 2.119 writes for `channel.send({type:'broadcast', event:'typing', payload:{a:1}})`.
    #[test]
    fn binary_user_broadcast_push_as_realtime_js_encodes_it() {
        let mut frame = vec![3, 1, 1, 10, 6, 0, 1];
        frame.extend_from_slice(b"12realtime:xtyping");
        frame.extend_from_slice(br#"{"a":1}"#);
        let p = decode_binary(&frame).unwrap();
        assert_eq!(p.join_ref.as_deref(), Some("1"));
        assert_eq!(p.reference.as_deref(), Some("2"));
        assert_eq!(p.topic, "realtime:x");
        assert_eq!(p.event, "typing");
        assert_eq!(p.body, Body::Json(json!({"a": 1})));
        assert!(decode_binary(&frame[..12]).is_err());
        assert!(decode_binary(&[9, 0, 0, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn binary_user_broadcast_is_what_realtime_js_decodes() {
        let meta = json!({"id": "5"});
        let Some(Wire::Binary(b)) = encode_broadcast(Vsn::V2, "realtime:t", "ev", Some(&meta), &Body::Json(json!({"k": true})))
        else {
            panic!()
        };
        let meta_len = meta.to_string().len();
        assert_eq!(&b[..5], &[4, 10, 2, meta_len as u8, 1]);
        assert_eq!(&b[5..15], b"realtime:t");
        assert_eq!(&b[15..17], b"ev");
        let payload: Value = serde_json::from_slice(&b[17 + meta_len..]).unwrap();
        assert_eq!(payload, json!({"k": true}));
        assert!(encode_broadcast(Vsn::V1, "realtime:t", "ev", None, &Body::Raw(Bytes::from_static(b"x"))).is_none());
    }
}
