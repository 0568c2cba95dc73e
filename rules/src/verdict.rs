//! One shape for every refusal a rule makes.
//!
//! A rule that can refuse returns `Result<_, E>` where `E` implements [`Refusal`]: the
//! SQLSTATE the RPC raises (`PT409`, `PT422`, `42501`, `LG003`, …), a stable machine-readable
//! code, and the message. The extension turns it into a [`Verdict`] (JSON) and one SQL
//! function, `private.enforce(verdict)`, raises it — so every refusal reaches PostgREST the
//! same way: `{code: <sqlstate>, message, details: {"code": …, …}, hint}`.

use serde_json::{json, Map, Value};

/// A rule's refusal: which SQLSTATE, which code, what to tell the caller.
pub trait Refusal: std::fmt::Display {
    /// Five characters; `PTxyz` becomes HTTP `xyz` at PostgREST.
    fn sqlstate(&self) -> &'static str;
    /// Stable, snake_case; clients branch on it.
    fn code(&self) -> &'static str;
    /// More machine-readable facts, merged into `detail` beside `code`.
    fn detail(&self) -> Map<String, Value> {
        Map::new()
    }
    /// What the caller can do about it.
    fn hint(&self) -> Option<&'static str> {
        None
    }
}

/// `{"ok": true, …payload}` or `{"ok": false, "sqlstate", "message", "detail": {"code", …}, "hint"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict(Value);

impl Verdict {
    pub fn allow() -> Self {
        Verdict(json!({ "ok": true }))
    }

    /// Allowed, carrying the rule's result fields (`payload` must be a JSON object).
    pub fn allow_with(payload: Value) -> Self {
        let mut v = match payload {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("result".into(), other);
                m
            }
        };
        v.insert("ok".into(), Value::Bool(true));
        Verdict(Value::Object(v))
    }

    pub fn refuse(r: &dyn Refusal) -> Self {
        let mut detail = Map::new();
        detail.insert("code".into(), Value::from(r.code()));
        detail.extend(r.detail());
        let mut v = json!({ "ok": false, "sqlstate": r.sqlstate(), "message": r.to_string(), "detail": detail });
        if let Some(h) = r.hint() {
            v["hint"] = Value::from(h);
        }
        Verdict(v)
    }

    pub fn of<E: Refusal>(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Self::allow(),
            Err(e) => Self::refuse(&e),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.0["ok"] == Value::Bool(true)
    }

    pub fn into_json(self) -> Value {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Busy;
    impl std::fmt::Display for Busy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the slot is taken")
        }
    }
    impl Refusal for Busy {
        fn sqlstate(&self) -> &'static str {
            "PT409"
        }
        fn code(&self) -> &'static str {
            "practitioner_busy"
        }
        fn detail(&self) -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("reasons".into(), json!(["practitioner_busy"]));
            m
        }
        fn hint(&self) -> Option<&'static str> {
            Some("Pick a slot from available_slots().")
        }
    }

    #[test]
    fn a_refusal_carries_sqlstate_message_code_detail_and_hint() {
        let v = Verdict::refuse(&Busy).into_json();
        assert_eq!(
            v,
            json!({"ok": false, "sqlstate": "PT409", "message": "the slot is taken",
                   "detail": {"code": "practitioner_busy", "reasons": ["practitioner_busy"]},
                   "hint": "Pick a slot from available_slots()."})
        );
    }

    #[test]
    fn an_allowed_verdict_carries_its_payload() {
        assert!(Verdict::allow().is_ok());
        let v = Verdict::allow_with(json!({"news2": 3})).into_json();
        assert_eq!(v, json!({"ok": true, "news2": 3}));
        assert!(!Verdict::of(Err::<(), _>(Busy)).is_ok());
    }
}
