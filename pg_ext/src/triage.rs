//! Triage: `careplane.assess(...)` (the one rule behind raising and assessing an emergency
//! request), the calculators `careplane.news2(jsonb)` and `careplane.esi(jsonb)`, and
//! `careplane.distance_km(...)`.

use careplane_rules::json::{invalid, InputError};
use careplane_rules::triage::{self, Findings, Observations, Vitals};
use careplane_rules::geo;
use pgrx::datum::Date;
use pgrx::prelude::*;
use crate::jsonb::Jsonb;
use serde_json::Value;

use crate::errors::invalid_parameter;
use crate::json_arg::JsonArg;

const VITALS_HINT: &str = "vitals: respiration_rate, spo2, spo2_scale (1|2), hypercapnic_respiratory_failure, \
     supplemental_oxygen, systolic_bp, pulse, consciousness ('A','C','V','P','U'), temperature";
const FINDINGS_HINT: &str = "findings: lifesaving_intervention, high_risk, new_confusion, pain_score (0-10), \
     severe_distress, resources (names) | expected_resources (a count); at most 4096 bytes";

/// NEWS2 of a set of observations.
///
/// Out: `{total, complete, partial_total, risk, single_parameter_3, components, missing, response}`.
/// `total` is null and `missing` names the parameters when the observations are incomplete;
/// `risk` and `response` are then the least they can be (from `partial_total`).
#[pg_extern(immutable, strict, parallel_safe)]
fn news2(vitals: JsonArg) -> Jsonb {
    let v = vitals.value("vitals").and_then(Vitals::from_json).unwrap_or_else(|e| invalid_parameter(&e, VITALS_HINT));
    Jsonb(triage::news2(&v).to_json())
}

/// The NEWS2 total of a set of observations (0–20), null when they are incomplete: the same
/// rule and the same 22023 errors as `news2`, without building its jsonb answer — for scoring
/// many stored rows (bench/news2: most of `news2`'s time is building that answer).
#[pg_extern(immutable, strict, parallel_safe)]
fn news2_total(vitals: JsonArg) -> Option<i32> {
    let v = vitals.value("vitals").and_then(Vitals::from_json).unwrap_or_else(|e| invalid_parameter(&e, VITALS_HINT));
    triage::news2(&v).total().map(i32::from)
}

/// ESI v4 level. In: see `careplane_rules::triage::EsiInput::from_json`. Out:
/// `{level, decision_points, not_assessed}`.
#[pg_extern(immutable, strict, parallel_safe)]
fn esi(input: JsonArg) -> Jsonb {
    let i = input.value("esi").and_then(triage::EsiInput::from_json).unwrap_or_else(|e| {
        invalid_parameter(
            &e,
            "esi: lifesaving_intervention, high_risk, new_confusion, pain_score, severe_distress, \
             resources | expected_resources, age_years | age_months, pulse, respiration_rate, spo2",
        )
    });
    Jsonb(triage::esi(&i).to_json())
}

fn observations(vitals: &Option<JsonArg>, findings: &Option<JsonArg>) -> Observations {
    let vitals = vitals
        .as_ref()
        .map(|v| v.value("vitals").and_then(Vitals::from_json))
        .transpose()
        .unwrap_or_else(|e| invalid_parameter(&e, VITALS_HINT));
    let findings = findings
        .as_ref()
        .map(|f| f.value("findings").and_then(Findings::from_json))
        .transpose()
        .unwrap_or_else(|e| invalid_parameter(&e, FINDINGS_HINT));
    Observations { vitals, findings }
}

/// `{vitals, findings}` in their stored form; an absent part is left out (so `-> 'vitals'` is
/// SQL null).
fn observations_json(o: &Observations) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(v) = &o.vitals {
        m.insert("vitals".into(), v.to_json());
    }
    if let Some(f) = &o.findings {
        m.insert("findings".into(), f.to_json());
    }
    Value::Object(m)
}

fn naive(field: &str, d: Date) -> Result<triage::NaiveDate, InputError> {
    if !d.is_finite() {
        return Err(invalid(field, "must be a finite date"));
    }
    triage::NaiveDate::from_ymd_opt(d.year(), u32::from(d.month()), u32::from(d.day()))
        .ok_or_else(|| invalid(field, "is outside the supported range"))
}

/// Triage of an emergency request (`careplane_rules::triage::assess`): the vitals and findings
/// the requester reported, those staff assessed (which supersede them, each part as a whole;
/// null when none), the requester's date of birth (null when unknown) and today's date.
///
/// Out: `{news2 (null without vitals), news2_total, esi: {level, decision_points, not_assessed},
/// age_months, page, priority, sources: {vitals, findings}, reported: {vitals?, findings?},
/// assessed: {vitals?, findings?}}`, where `reported` and `assessed` are the inputs in their
/// stored form (a part not given is left out). Bad input is 22023 naming the field (`vitals.spo2`, `findings.resources[2]`,
/// `findings` when larger than 4096 bytes).
#[pg_extern(immutable, parallel_safe)]
fn assess(
    vitals: Option<JsonArg>,
    findings: Option<JsonArg>,
    assessed_vitals: Option<JsonArg>,
    assessed_findings: Option<JsonArg>,
    date_of_birth: Option<Date>,
    today: Option<Date>,
) -> Jsonb {
    let reported = observations(&vitals, &findings);
    let assessed = observations(&assessed_vitals, &assessed_findings);
    let hint = "date_of_birth: the requester's (null when unknown); today: the current date";
    let today = today
        .ok_or_else(|| invalid("today", "required"))
        .and_then(|d| naive("today", d))
        .unwrap_or_else(|e| invalid_parameter(&e, hint));
    let age_months = date_of_birth
        .map(|d| naive("date_of_birth", d))
        .transpose()
        .unwrap_or_else(|e| invalid_parameter(&e, hint))
        .and_then(|dob| triage::age_in_months(dob, today));
    let mut out = triage::assess(&reported, &assessed, age_months).to_json();
    out["reported"] = observations_json(&reported);
    out["assessed"] = observations_json(&assessed);
    Jsonb(out)
}

/// Great-circle (haversine) distance in km between two points in degrees.
#[pg_extern(immutable, strict, parallel_safe)]
fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    geo::distance_km(lat1, lon1, lat2, lon2)
        .unwrap_or_else(|e| invalid_parameter(&e, "latitudes are -90..90 and longitudes -180..180 degrees"))
}
