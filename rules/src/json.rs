//! Reading rule inputs from JSON objects field by field, with errors that name the field
//! (`vitals.spo2: must be a whole number between 0 and 100, got 101`). Unknown fields are rejected, so a
//! misspelt field is an error rather than a silently missing value.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

pub fn invalid(field: &str, reason: impl Into<String>) -> InputError {
    InputError::Invalid { field: field.to_owned(), reason: reason.into() }
}

/// 2^53: every integer below it in magnitude is exact in `f64`.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

fn out_of_range(field: &str, min: i64, max: i64, got: impl std::fmt::Display) -> InputError {
    invalid(field, format!("must be a whole number between {min} and {max}, got {got}"))
}

/// The largest JSON document a rule reads, as text.
pub const MAX_BYTES: usize = 256 * 1024;
/// The deepest nesting a rule reads: rule inputs are a few levels deep.
pub const MAX_DEPTH: usize = 32;

/// Parses a JSON document that arrives from outside (a `jsonb` argument), refusing what no
/// rule input needs: more than [`MAX_BYTES`], deeper than [`MAX_DEPTH`], numbers out of range
/// (`1e400`). The error is the reason, for the caller to prefix with the argument's name.
pub fn decode_bounded(text: &str) -> Result<Value, String> {
    if text.len() > MAX_BYTES {
        return Err(format!("is {} bytes of JSON; at most {MAX_BYTES} are accepted", text.len()));
    }
    // serde_json stops at 128 levels with an error (never a stack overflow); MAX_DEPTH is lower.
    let value: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON careplane can read: {e}"))?;
    if depth(&value) > MAX_DEPTH {
        return Err(format!("is nested more than {MAX_DEPTH} levels deep"));
    }
    Ok(value)
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub struct Fields<'a> {
    prefix: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(prefix: impl Into<String>, value: &'a Value, known: &[&str]) -> Result<Self, InputError> {
        let prefix = prefix.into();
        let map = value.as_object().ok_or_else(|| invalid(&prefix, "must be a JSON object"))?;
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(&format!("{prefix}.{unknown}"), format!("unknown field; expected one of {}", known.join(", "))));
        }
        Ok(Fields { prefix, map })
    }

    pub fn name(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }

    /// The value, `None` when absent or null.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn require(&self, field: &str) -> Result<&'a Value, InputError> {
        self.get(field).ok_or_else(|| invalid(&self.name(field), "required"))
    }

    pub fn number(&self, field: &str, min: f64, max: f64) -> Result<Option<f64>, InputError> {
        let Some(v) = self.get(field) else { return Ok(None) };
        let n = v.as_f64().ok_or_else(|| invalid(&self.name(field), format!("must be a number, got {v}")))?;
        if !(min..=max).contains(&n) {
            return Err(invalid(&self.name(field), format!("must be between {min} and {max}, got {n}")));
        }
        Ok(Some(n))
    }

    /// A whole number in `min..=max`, read as an integer: `9007199254740993` stays exact and
    /// `9223372036854775808` is out of range, never rounded through `f64`. A number written with
    /// a fraction part (`12.0`) is accepted only where `f64` holds it exactly (below 2^53).
    pub fn whole(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, InputError> {
        let Some(v) = self.get(field) else { return Ok(None) };
        let name = || self.name(field);
        let n = match v {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                (None, _) if n.is_u64() => return Err(out_of_range(&name(), min, max, n)),
                (None, Some(f)) if f.fract() != 0.0 => {
                    return Err(invalid(&name(), format!("must be a whole number, got {n}")))
                }
                (None, Some(f)) if f.abs() < EXACT_F64 => f as i64,
                (None, _) => return Err(out_of_range(&name(), min, max, n)),
            },
            other => return Err(invalid(&name(), format!("must be a whole number, got {other}"))),
        };
        if !(min..=max).contains(&n) {
            return Err(out_of_range(&name(), min, max, n));
        }
        Ok(Some(n))
    }

    pub fn boolean(&self, field: &str) -> Result<Option<bool>, InputError> {
        self.get(field)
            .map(|v| v.as_bool().ok_or_else(|| invalid(&self.name(field), format!("must be true or false, got {v}"))))
            .transpose()
    }

    pub fn text(&self, field: &str) -> Result<Option<&'a str>, InputError> {
        self.get(field)
            .map(|v| v.as_str().ok_or_else(|| invalid(&self.name(field), format!("must be a string, got {v}"))))
            .transpose()
    }

    /// A string parsed by `parse`, whose error explains the expected shape.
    pub fn parsed<T>(&self, field: &str, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, InputError> {
        match self.text(field)? {
            None => Ok(None),
            Some(s) => parse(s).map(Some).ok_or_else(|| invalid(&self.name(field), format!("must be {expected}, got {s:?}"))),
        }
    }

    pub fn array(&self, field: &str) -> Result<&'a [Value], InputError> {
        match self.get(field) {
            None => Ok(&[]),
            Some(v) => v.as_array().map(Vec::as_slice).ok_or_else(|| invalid(&self.name(field), "must be an array")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole(v: Value, min: i64, max: i64) -> Result<Option<i64>, InputError> {
        let doc = json!({ "n": v });
        Fields::new("x", &doc, &["n"])?.whole("n", min, max)
    }

    #[test]
    fn hostile_json_is_an_error_not_a_panic() {
        assert!(decode_bounded("1e400").unwrap_err().starts_with("is not JSON careplane can read"));
        assert!(decode_bounded("-1e400").is_err());
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(decode_bounded(&deep).unwrap_err(), "is nested more than 32 levels deep");
        let deeper = format!("{}1{}", "{\"a\":".repeat(500), "}".repeat(500));
        assert!(decode_bounded(&deeper).is_err());
        let big = format!("\"{}\"", "x".repeat(MAX_BYTES));
        assert!(decode_bounded(&big).unwrap_err().contains("at most"));
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(decode_bounded(&ok).is_ok());
    }

    #[test]
    fn whole_numbers_past_2_pow_53_stay_exact() {
        let doc: Value = serde_json::from_str(r#"{"n": 9007199254740993}"#).unwrap();
        let f = Fields::new("x", &doc, &["n"]).unwrap();
        assert_eq!(f.whole("n", 0, i64::MAX).unwrap(), Some(9_007_199_254_740_993));
    }

    #[test]
    fn the_bigint_limit_is_accepted_and_one_past_it_refused() {
        let max: Value = serde_json::from_str("9223372036854775807").unwrap();
        assert_eq!(whole(max, 0, i64::MAX).unwrap(), Some(i64::MAX));
        let past: Value = serde_json::from_str("9223372036854775808").unwrap();
        let err = whole(past, 0, i64::MAX).unwrap_err().to_string();
        assert!(err.starts_with("x.n: must be a whole number between 0 and 9223372036854775807, got 9223372036854775808"), "{err}");
        let min: Value = serde_json::from_str("-9223372036854775808").unwrap();
        assert_eq!(whole(min, i64::MIN, 0).unwrap(), Some(i64::MIN));
    }

    #[test]
    fn fractions_floats_past_2_pow_53_and_non_numbers_are_refused() {
        assert_eq!(whole(json!(12.0), 0, 100).unwrap(), Some(12));
        assert!(whole(json!(12.5), 0, 100).unwrap_err().to_string().contains("whole number, got 12.5"));
        // 2^53 + 1 written with a fraction part has already been rounded by the parser.
        let rounded: Value = serde_json::from_str("9007199254740993.0").unwrap();
        assert!(whole(rounded, 0, i64::MAX).is_err());
        assert!(whole(json!(1e300), 0, i64::MAX).is_err());
        assert!(whole(json!("12"), 0, 100).unwrap_err().to_string().contains("whole number, got \"12\""));
        assert!(whole(json!(101), 0, 100).is_err());
    }
}
