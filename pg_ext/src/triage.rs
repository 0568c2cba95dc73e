//! `careplane.news2(jsonb)`, `careplane.esi(jsonb)`, `careplane.distance_km(...)`.

use careplane_rules::json::invalid;
use careplane_rules::{geo, triage};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use crate::errors::invalid_parameter;
use crate::json_arg::JsonArg;

const NEWS2_HINT: &str = "vitals: respiration_rate, spo2, spo2_scale (1|2), hypercapnic_respiratory_failure, \
     supplemental_oxygen, systolic_bp, pulse, consciousness ('A','C','V','P','U'), temperature";

/// NEWS2 of a set of observations.
///
/// Out: `{total, complete, partial_total, risk, single_parameter_3, components, missing, response}`.
/// `total` is null and `missing` names the parameters when the observations are incomplete;
/// `risk` and `response` are then the least they can be (from `partial_total`).
#[pg_extern(immutable, strict, parallel_safe)]
fn news2(vitals: JsonArg) -> JsonB {
    let v = vitals.value("vitals").and_then(triage::Vitals::from_json).unwrap_or_else(|e| invalid_parameter(&e, NEWS2_HINT));
    JsonB(news2_json(&triage::news2(&v)))
}

pub(crate) fn news2_json(r: &triage::News2) -> Value {
    let components: Map<String, Value> = r.components.iter().map(|(k, s)| ((*k).to_owned(), json!(s))).collect();
    let response = r.response();
    json!({
        "total": r.total(),
        "complete": r.is_complete(),
        "partial_total": r.partial_total,
        "risk": r.risk().as_str(),
        "single_parameter_3": r.single_parameter_3,
        "components": components,
        "missing": r.missing,
        "response": { "monitoring": response.monitoring, "clinical_response": response.clinical_response },
    })
}

/// ESI v4 level. In: see `careplane_rules::triage::EsiInput::from_json`. Out:
/// `{level, decision_points, not_assessed}`.
#[pg_extern(immutable, strict, parallel_safe)]
fn esi(input: JsonArg) -> JsonB {
    let i = input.value("esi").and_then(triage::EsiInput::from_json).unwrap_or_else(|e| {
        invalid_parameter(
            &e,
            "esi: lifesaving_intervention, high_risk, new_confusion, pain_score, severe_distress, \
             resources | expected_resources, age_years | age_months, heart_rate, respiratory_rate, spo2",
        )
    });
    let r = triage::esi(&i);
    JsonB(json!({ "level": r.level, "decision_points": r.decision_points, "not_assessed": r.not_assessed }))
}

/// Great-circle (haversine) distance in km between two points in degrees.
#[pg_extern(immutable, strict, parallel_safe)]
fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    geo::distance_km(lat1, lon1, lat2, lon2)
        .unwrap_or_else(|e| invalid_parameter(&e, "latitudes are -90..90 and longitudes -180..180 degrees"))
}

/// Checks a status move of an emergency request for an actor (`requester`, `dispatcher`,
/// `assigned_responder`). Returns `{"allowed": true}` or `{"allowed": false, "reason":
/// "not_allowed" | "forbidden", "message": …}`: the RPC raises PT422 for a move the life cycle
/// does not have and 42501 for one this actor may not make. Unknown statuses or actors are 22023.
#[pg_extern(immutable, strict, parallel_safe)]
fn emergency_transition(from: &str, to: &str, actor: &str) -> JsonB {
    use careplane_rules::dispatch::{transition, Actor, Status, TransitionError};
    let parse = |field: &'static str, s: &str| {
        Status::parse(s).unwrap_or_else(|| {
            invalid_parameter(&invalid(field, format!("unknown status {s:?}")), "statuses: open, assigned, en_route, on_scene, resolved, cancelled")
        })
    };
    let (from, to) = (parse("status", from), parse("status", to));
    let actor = Actor::parse(actor)
        .unwrap_or_else(|| invalid_parameter(&invalid("actor", format!("unknown actor {actor:?}")), "actors: requester, dispatcher, assigned_responder"));
    JsonB(match transition(from, to, actor) {
        Ok(()) => json!({ "allowed": true }),
        Err(e @ TransitionError::NotAllowed { .. }) => json!({ "allowed": false, "reason": "not_allowed", "message": e.to_string() }),
        Err(e @ TransitionError::Forbidden { .. }) => json!({ "allowed": false, "reason": "forbidden", "message": e.to_string() }),
    })
}
