//! Named, bounded settings with defaults, shared by the domains that have them (dispatch,
//! consultations). The database reads an override from the custom setting `careplane.<name>`
//! (e.g. `alter database … set careplane.claim_lapse_minutes = 15`) and asks the rule for the value.

use crate::json::{invalid, InputError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub doc: &'static str,
}

/// The value of setting `name` from `table`: `value` (the text of `careplane.<name>`, when set
/// and not empty) or the default. An unknown name or a bad value is an error naming
/// `careplane.<name>`; `kind` names the table in the message ("dispatch", "consultation").
pub fn value_of(table: &[Setting], kind: &str, name: &str, value: Option<&str>) -> Result<i64, InputError> {
    let Some(s) = table.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = table.iter().map(|s| s.name).collect();
        return Err(invalid("setting", format!("unknown {kind} setting {name:?}; known: {}", known.join(", "))));
    };
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(s.default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (s.min..=s.max).contains(&n) => Ok(n),
            _ => Err(invalid(&format!("careplane.{name}"), format!("must be a whole number between {} and {}, got {v:?}", s.min, s.max))),
        },
    }
}
