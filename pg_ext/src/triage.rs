//! Triage: `careplane.assess(...)` (the one rule behind raising and assessing an emergency
//! request), the calculators `careplane.news2(jsonb)` and `careplane.esi(jsonb)`, and
//! `careplane.distance_km(...)`.

use careplane_rules::json::{invalid, InputError};
use careplane_rules::triage::{self, Findings, Observations, Vitals, VitalsFields};
use careplane_rules::geo;
use pgrx::datum::Date;
use pgrx::prelude::*;
use crate::binary::{self, Scalar};
use crate::jsonb::{Jsonb, JsonbDatumResult};
use serde_json::Value;

use crate::errors::invalid_parameter;
use crate::json_arg::{JsonArg, JsonbDatum};

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
fn news2(vitals: JsonbDatum) -> JsonbDatumResult {
    let result = triage::news2(&read_vitals(&vitals));
    let datum = news2_jsonb(&result);
    // Debug builds (the test suite's) check the document against the rules' own JSON form,
    // byte for byte as stored.
    if cfg!(debug_assertions) {
        let general = Jsonb(result.to_json()).to_datum();
        let bytes = |d: pg_sys::Datum| unsafe {
            let p = d.cast_mut_ptr::<pg_sys::varlena>();
            std::slice::from_raw_parts(p.cast::<u8>(), pgrx::varlena::varsize_any(p)).to_vec()
        };
        assert_eq!(bytes(datum), bytes(general), "news2's direct jsonb differs from News2::to_json");
    }
    JsonbDatumResult(datum)
}

/// The NEWS2 total of a set of observations (0–20), null when they are incomplete: the same
/// rule and the same 22023 errors as `news2`, without building its jsonb answer — for scoring
/// many stored rows.
#[pg_extern(immutable, strict, parallel_safe)]
fn news2_total(vitals: JsonbDatum) -> Option<i32> {
    triage::news2(&read_vitals(&vitals)).total().map(i32::from)
}

/// The vitals argument: read straight from its binary form when it is the plain object the
/// product stores (crate::binary), otherwise — or when it is refused — the general way, which
/// gives the error its usual wording (22023 naming the field).
fn read_vitals(arg: &JsonbDatum) -> Vitals {
    if let Some(v) = vitals_direct(arg.container()).and_then(|f| Vitals::from_fields(&f).ok()) {
        return v;
    }
    arg.value("vitals").and_then(|v| Vitals::from_json(&v)).unwrap_or_else(|e| invalid_parameter(&e, VITALS_HINT))
}

/// The fields of a vitals object whose members are all known and of the type read (null
/// counts as absent); `None` for anything else, which the general reader then decides. The
/// object's compact JSON is then far below `MAX_REPORT_BYTES` (nine short keys with scalar
/// values), so the size check holds; a stored object larger than that is left to the general
/// reader too.
fn vitals_direct(container: &[u8]) -> Option<VitalsFields<'_>> {
    if container.len() > triage::MAX_REPORT_BYTES {
        return None;
    }
    let mut f = VitalsFields::default();
    binary::members(container, |key, value| {
        let whole = |v: &mut Option<i64>| match value {
            Scalar::Null => Some(()),
            Scalar::Numeric(n) => {
                *v = Some(binary::numeric_i64(n)?);
                Some(())
            }
            _ => None,
        };
        let flag = |v: &mut Option<bool>| match value {
            Scalar::Null => Some(()),
            Scalar::Bool(b) => {
                *v = Some(b);
                Some(())
            }
            _ => None,
        };
        match key {
            b"respiration_rate" => whole(&mut f.respiration_rate),
            b"spo2" => whole(&mut f.spo2),
            b"spo2_scale" => whole(&mut f.spo2_scale),
            b"hypercapnic_respiratory_failure" => flag(&mut f.hypercapnic_respiratory_failure),
            b"supplemental_oxygen" => flag(&mut f.supplemental_oxygen),
            b"systolic_bp" => whole(&mut f.systolic_bp),
            b"pulse" => whole(&mut f.pulse),
            b"consciousness" => match value {
                Scalar::Null => Some(()),
                Scalar::String(s) => {
                    f.consciousness = Some(std::str::from_utf8(s).ok()?);
                    Some(())
                }
                _ => None,
            },
            b"temperature" => match value {
                Scalar::Null => Some(()),
                Scalar::Numeric(n) => {
                    f.temperature = Some(binary::numeric_f64(n)?);
                    Some(())
                }
                _ => None,
            },
            _ => None,
        }
    })?;
    Some(f)
}

/// `News2::to_json`'s document, built as a `jsonb` tree in key order and encoded in one call.
fn news2_jsonb(r: &triage::News2) -> pg_sys::Datum {
    let score = |s: Option<u8>| s.map_or_else(binary::null, binary::small_int);
    let mut components = r.components.map(|(name, s)| binary::pair(name, score(s)));
    let mut missing: Vec<pg_sys::JsonbValue> = r.missing.iter().map(|&m| binary::text(m)).collect();
    let response = r.response();
    let mut response_pairs = [
        binary::pair("monitoring", binary::text(response.monitoring)),
        binary::pair("clinical_response", binary::text(response.clinical_response)),
    ];
    let mut top = [
        binary::pair("total", score(r.total())),
        binary::pair("complete", binary::boolean(r.is_complete())),
        binary::pair("partial_total", binary::small_int(r.partial_total)),
        binary::pair("risk", binary::text(r.risk().as_str())),
        binary::pair("single_parameter_3", binary::boolean(r.single_parameter_3)),
        binary::pair("components", binary::object(&mut components)),
        binary::pair("missing", binary::array(&mut missing)),
        binary::pair("response", binary::object(&mut response_pairs)),
    ];
    let mut root = binary::object(&mut top);
    binary::encode(&mut root)
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
