//! Reading rule inputs from JSON objects field by field, with errors that name the field
//! (`vitals.spo2: must be between 0 and 100, got 101`). Unknown fields are rejected, so a
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

    pub fn whole(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, InputError> {
        let Some(n) = self.number(field, min as f64, max as f64)? else { return Ok(None) };
        if n.fract() != 0.0 {
            return Err(invalid(&self.name(field), format!("must be a whole number, got {n}")));
        }
        Ok(Some(n as i64))
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
