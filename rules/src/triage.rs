//! Emergency triage: NEWS2 (Royal College of Physicians, 2017) and ESI v4 (AHRQ).
//!
//! # NEWS2
//! Each parameter is scored on the chart's bands; the total is 0–20. Every band is applied as
//! a threshold on the exact value, so a value between the chart's printed bands falls in the
//! band above the last threshold it passes: temperature 38.05 °C is above 38.0 and scores 1,
//! like 38.1; 35.04 °C is above 35.0 and scores 1. (The chart is printed to one decimal; a
//! thermometer reading with more decimals is never rounded down into a lower-scoring band.)
//! Respiration rate, SpO2, systolic pressure and pulse are whole numbers.
//!
//! A missing parameter is never scored 0: the result is incomplete, names what is missing,
//! and reports the partial total as a lower bound. Impossible values are errors.
//!
//! # ESI
//! Decision points A (lifesaving intervention) → B (high risk, new confusion / lethargy /
//! disorientation, severe pain or distress) → C (expected resources) → D (danger-zone vitals
//! when two or more resources are expected). See [`EsiInput`].

use serde_json::Value;

use crate::json::{invalid, Fields};
pub use crate::json::InputError as TriageError;

// ------------------------------------------------------------------------------------------------
// NEWS2

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consciousness {
    Alert,
    /// New confusion.
    Confusion,
    Voice,
    Pain,
    Unresponsive,
}

impl Consciousness {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "A" => Self::Alert,
            "C" => Self::Confusion,
            "V" => Self::Voice,
            "P" => Self::Pain,
            "U" => Self::Unresponsive,
            _ => return None,
        })
    }
}

/// Observations for NEWS2. `None` is "not measured".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vitals {
    pub respiration_rate: Option<i64>,
    pub spo2: Option<i64>,
    /// SpO2 scale 2 is for confirmed hypercapnic respiratory failure (target 88–92 %).
    pub spo2_scale_2: bool,
    pub supplemental_oxygen: Option<bool>,
    pub systolic_bp: Option<i64>,
    pub pulse: Option<i64>,
    pub consciousness: Option<Consciousness>,
    pub temperature: Option<f64>,
}

pub const VITALS_FIELDS: &[&str] = &[
    "respiration_rate", "spo2", "spo2_scale", "hypercapnic_respiratory_failure", "supplemental_oxygen",
    "systolic_bp", "pulse", "consciousness", "temperature",
];

impl Vitals {
    /// Reads `{respiration_rate, spo2, spo2_scale (1|2, default 1), hypercapnic_respiratory_failure,
    /// supplemental_oxygen, systolic_bp, pulse, consciousness ('A'|'C'|'V'|'P'|'U'), temperature}`.
    /// Scale 2 requires `hypercapnic_respiratory_failure: true` (a clinician's confirmation).
    pub fn from_json(value: &Value) -> Result<Self, TriageError> {
        let f = Fields::new("vitals", value, VITALS_FIELDS)?;
        let scale = f.whole("spo2_scale", 1, 2).map_err(|_| invalid("vitals.spo2_scale", "must be 1 or 2"))?.unwrap_or(1);
        let confirmed = f.boolean("hypercapnic_respiratory_failure")?.unwrap_or(false);
        if scale == 2 && !confirmed {
            return Err(invalid(
                "vitals.spo2_scale",
                "scale 2 is only for confirmed hypercapnic respiratory failure; set hypercapnic_respiratory_failure: true",
            ));
        }
        let consciousness = match f.text("consciousness")? {
            None => None,
            Some(s) => Some(Consciousness::parse(s).ok_or_else(|| {
                invalid("vitals.consciousness", format!("must be one of 'A', 'C', 'V', 'P', 'U' (ACVPU), got {s:?}"))
            })?),
        };
        Ok(Vitals {
            respiration_rate: f.whole("respiration_rate", 0, 120)?,
            spo2: f.whole("spo2", 0, 100)?,
            spo2_scale_2: scale == 2,
            supplemental_oxygen: f.boolean("supplemental_oxygen")?,
            systolic_bp: f.whole("systolic_bp", 0, 300)?,
            pulse: f.whole("pulse", 0, 300)?,
            consciousness,
            temperature: f.number("temperature", 25.0, 45.0)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    Low,
    LowMedium,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::LowMedium => "low-medium",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// Monitoring frequency and clinical response (NEWS2 chart 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub monitoring: &'static str,
    pub clinical_response: &'static str,
}

pub fn response(total: u8, single_parameter_3: bool) -> Response {
    match (total, single_parameter_3) {
        (7.., _) => Response {
            monitoring: "continuous monitoring of vital signs",
            clinical_response: "registered nurse to immediately inform the medical team caring for the patient (at least \
                specialist registrar level); emergency assessment by a team with critical-care competencies, including \
                advanced airway management; consider transfer to a level 2 or 3 care facility",
        },
        (5..=6, _) => Response {
            monitoring: "minimum 1-hourly",
            clinical_response: "registered nurse to immediately inform the medical team caring for the patient; urgent \
                assessment by a clinician or team with core competencies in the care of acutely ill patients; clinical \
                care in an environment with monitoring facilities",
        },
        (_, true) => Response {
            monitoring: "minimum 1-hourly",
            clinical_response: "registered nurse to inform the medical team caring for the patient, who will review and \
                decide whether escalation of care is necessary",
        },
        (1..=4, false) => Response {
            monitoring: "minimum 4–6-hourly",
            clinical_response: "inform registered nurse, who must assess the patient and decide whether increased \
                frequency of monitoring and/or escalation of care is required",
        },
        (0, false) => Response { monitoring: "minimum 12-hourly", clinical_response: "continue routine NEWS2 monitoring" },
    }
}

fn risk(total: u8, single_parameter_3: bool) -> Risk {
    match total {
        7.. => Risk::High,
        5..=6 => Risk::Medium,
        _ if single_parameter_3 => Risk::LowMedium,
        _ => Risk::Low,
    }
}

/// Scored parameters, in chart order.
pub const NEWS2_PARAMETERS: [&str; 7] =
    ["respiration_rate", "spo2", "supplemental_oxygen", "systolic_bp", "pulse", "consciousness", "temperature"];

#[derive(Debug, Clone, PartialEq)]
pub struct News2 {
    /// Sub-score per parameter (chart order); `None` when it could not be scored.
    pub components: [(&'static str, Option<u8>); 7],
    /// Parameters that are needed and missing, e.g. `["pulse"]`.
    pub missing: Vec<&'static str>,
    /// Sum of the scored parameters: the total when complete, a lower bound otherwise.
    pub partial_total: u8,
    pub single_parameter_3: bool,
}

impl News2 {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
    /// The total (0–20), only when every parameter was scored.
    pub fn total(&self) -> Option<u8> {
        self.is_complete().then_some(self.partial_total)
    }
    /// The clinical risk; for an incomplete result, the least it can be.
    pub fn risk(&self) -> Risk {
        risk(self.partial_total, self.single_parameter_3)
    }
    pub fn response(&self) -> Response {
        response(self.partial_total, self.single_parameter_3)
    }
}

pub fn score_respiration(rr: i64) -> u8 {
    match rr {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

pub fn score_spo2_scale_1(spo2: i64) -> u8 {
    match spo2 {
        ..=91 => 3,
        92..=93 => 2,
        94..=95 => 1,
        _ => 0,
    }
}

/// Scale 2: high saturations score only on oxygen. `None` when oxygen status is needed and unknown.
pub fn score_spo2_scale_2(spo2: i64, on_oxygen: Option<bool>) -> Option<u8> {
    Some(match spo2 {
        ..=83 => 3,
        84..=85 => 2,
        86..=87 => 1,
        88..=92 => 0,
        _ => match on_oxygen? {
            false => 0,
            true => match spo2 {
                93..=94 => 1,
                95..=96 => 2,
                _ => 3,
            },
        },
    })
}

pub fn score_systolic(sbp: i64) -> u8 {
    match sbp {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

pub fn score_pulse(pulse: i64) -> u8 {
    match pulse {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

pub fn score_temperature(t: f64) -> u8 {
    if t <= 35.0 {
        3
    } else if t <= 36.0 {
        1
    } else if t <= 38.0 {
        0
    } else if t <= 39.0 {
        1
    } else {
        2
    }
}

pub fn score_consciousness(c: Consciousness) -> u8 {
    if c == Consciousness::Alert {
        0
    } else {
        3
    }
}

pub fn news2(v: &Vitals) -> News2 {
    let spo2 = match (v.spo2, v.spo2_scale_2) {
        (None, _) => None,
        (Some(s), false) => Some(score_spo2_scale_1(s)),
        (Some(s), true) => score_spo2_scale_2(s, v.supplemental_oxygen),
    };
    let components = [
        ("respiration_rate", v.respiration_rate.map(score_respiration)),
        ("spo2", spo2),
        ("supplemental_oxygen", v.supplemental_oxygen.map(|o| if o { 2 } else { 0 })),
        ("systolic_bp", v.systolic_bp.map(score_systolic)),
        ("pulse", v.pulse.map(score_pulse)),
        ("consciousness", v.consciousness.map(score_consciousness)),
        ("temperature", v.temperature.map(score_temperature)),
    ];
    let mut missing: Vec<&'static str> = components.iter().filter(|(_, s)| s.is_none()).map(|(n, _)| *n).collect();
    // On scale 2 a high SpO2 with unknown oxygen is unscored because oxygen is missing, not SpO2.
    if v.spo2.is_some() && spo2.is_none() {
        missing.retain(|m| *m != "spo2");
    }
    News2 {
        components,
        partial_total: components.iter().filter_map(|(_, s)| *s).sum(),
        single_parameter_3: components.iter().any(|(_, s)| *s == Some(3)),
        missing,
    }
}

// ------------------------------------------------------------------------------------------------
// ESI v4

/// A resource the ED is expected to use (ESI handbook). Types count once each; a complex
/// procedure counts 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Labs,
    EcgXray,
    AdvancedImaging,
    IvFluids,
    ParenteralMedication,
    SpecialtyConsult,
    SimpleProcedure,
    ComplexProcedure,
}

/// Accepted resource names, and the things the handbook says are *not* resources.
pub fn parse_resource(name: &str) -> Result<Option<Resource>, String> {
    use Resource::*;
    Ok(Some(match name {
        "labs" => Labs,
        "ecg" | "xray" => EcgXray,
        "ct" | "mri" | "ultrasound" | "angiography" => AdvancedImaging,
        "iv_fluids" => IvFluids,
        "iv_medication" | "im_medication" | "nebulised_medication" => ParenteralMedication,
        "specialty_consult" => SpecialtyConsult,
        "simple_procedure" => SimpleProcedure,
        "complex_procedure" => ComplexProcedure,
        "history_and_exam" | "point_of_care_test" | "saline_lock" | "oral_medication" | "tetanus_immunisation"
        | "prescription_refill" | "simple_wound_care" | "crutches_splints_slings" => return Ok(None),
        other => return Err(format!("unknown resource {other:?}")),
    }))
}

pub fn count_resources(resources: &[Resource]) -> u32 {
    let mut distinct = resources.to_vec();
    distinct.sort();
    distinct.dedup();
    distinct.iter().map(|r| if *r == Resource::ComplexProcedure { 2 } else { 1 }).sum()
}

/// Inputs to the ESI algorithm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EsiInput {
    /// A: needs an immediate lifesaving intervention (or is intubated, apnoeic, pulseless, in
    /// severe respiratory distress, SpO2 < 90, acutely altered or unresponsive).
    pub lifesaving_intervention: bool,
    /// B: a high-risk situation.
    pub high_risk: bool,
    /// B: new confusion, lethargy or disorientation.
    pub new_confusion: bool,
    /// B: pain 0–10.
    pub pain_score: Option<u8>,
    /// B: severe distress other than pain.
    pub severe_distress: bool,
    /// C: expected resources (count by type).
    pub resources: u32,
    /// D: age in months (danger-zone band).
    pub age_months: Option<u32>,
    pub heart_rate: Option<u32>,
    pub respiratory_rate: Option<u32>,
    pub spo2: Option<u32>,
}

pub const ESI_FIELDS: &[&str] = &[
    "lifesaving_intervention", "high_risk", "new_confusion", "pain_score", "severe_distress", "resources",
    "expected_resources", "age_years", "age_months", "heart_rate", "respiratory_rate", "spo2",
];

impl EsiInput {
    /// Reads `{lifesaving_intervention, high_risk, new_confusion, pain_score (0–10),
    /// severe_distress, resources: ["labs", "xray", …] | expected_resources: n,
    /// age_years | age_months, heart_rate, respiratory_rate, spo2}`. Absent findings are false;
    /// one of `resources` / `expected_resources` is required.
    pub fn from_json(value: &Value) -> Result<Self, TriageError> {
        let f = Fields::new("esi", value, ESI_FIELDS)?;
        let resources = match (f.get("resources"), f.whole("expected_resources", 0, 50)?) {
            (Some(_), Some(_)) => return Err(invalid("esi.resources", "give resources or expected_resources, not both")),
            (None, Some(n)) => n as u32,
            (Some(list), None) => {
                let items = list.as_array().ok_or_else(|| invalid("esi.resources", "must be an array of resource names"))?;
                let mut parsed = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let field = format!("esi.resources[{i}]");
                    let name = item.as_str().ok_or_else(|| invalid(&field, "must be a string"))?;
                    if let Some(r) = parse_resource(name).map_err(|e| invalid(&field, e))? {
                        parsed.push(r);
                    }
                }
                count_resources(&parsed)
            }
            (None, None) => return Err(invalid("esi.resources", "required: a list of expected resources or expected_resources")),
        };
        let age_months = match (f.number("age_years", 0.0, 130.0)?, f.whole("age_months", 0, 1560)?) {
            (Some(_), Some(_)) => return Err(invalid("esi.age_years", "give age_years or age_months, not both")),
            (Some(y), None) => Some((y * 12.0).floor() as u32),
            (None, m) => m.map(|m| m as u32),
        };
        Ok(EsiInput {
            lifesaving_intervention: f.boolean("lifesaving_intervention")?.unwrap_or(false),
            high_risk: f.boolean("high_risk")?.unwrap_or(false),
            new_confusion: f.boolean("new_confusion")?.unwrap_or(false),
            pain_score: f.whole("pain_score", 0, 10)?.map(|p| p as u8),
            severe_distress: f.boolean("severe_distress")?.unwrap_or(false),
            resources,
            age_months,
            heart_rate: f.whole("heart_rate", 0, 300)?.map(|v| v as u32),
            respiratory_rate: f.whole("respiratory_rate", 0, 120)?.map(|v| v as u32),
            spo2: f.whole("spo2", 0, 100)?.map(|v| v as u32),
        })
    }
}

/// Danger-zone heart and respiratory rate limits (exceeding either is danger) for an age.
/// Bands: under 3 months; 3 months to under 3 years; 3 to 8 years (completed years); over 8.
pub fn danger_zone_limits(age_months: u32) -> (&'static str, u32, u32) {
    match age_months {
        0..=2 => ("<3 months", 180, 50),
        3..=35 => ("3 months-3 years", 160, 40),
        36..=107 => ("3-8 years", 140, 30),
        _ => (">8 years", 100, 20),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Esi {
    pub level: u8,
    /// The decision points that produced the level, e.g. `["A: no", "B: severe pain (8/10)"]`.
    pub decision_points: Vec<String>,
    /// Inputs that would have been needed to assess danger-zone vitals fully.
    pub not_assessed: Vec<&'static str>,
}

pub fn esi(input: &EsiInput) -> Esi {
    let mut points = Vec::new();
    if input.lifesaving_intervention {
        points.push("A: requires immediate lifesaving intervention".to_owned());
        return Esi { level: 1, decision_points: points, not_assessed: vec![] };
    }
    points.push("A: no immediate lifesaving intervention".to_owned());
    let severe_pain = input.pain_score.is_some_and(|p| p >= 7);
    let b: Vec<String> = [
        input.high_risk.then(|| "high-risk situation".to_owned()),
        input.new_confusion.then(|| "new confusion, lethargy or disorientation".to_owned()),
        severe_pain.then(|| format!("severe pain ({}/10)", input.pain_score.unwrap_or_default())),
        input.severe_distress.then(|| "severe distress".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !b.is_empty() {
        points.push(format!("B: {}", b.join(", ")));
        return Esi { level: 2, decision_points: points, not_assessed: vec![] };
    }
    points.push("B: not high risk".to_owned());
    match input.resources {
        0 => {
            points.push("C: no resources expected".to_owned());
            return Esi { level: 5, decision_points: points, not_assessed: vec![] };
        }
        1 => {
            points.push("C: one resource expected".to_owned());
            return Esi { level: 4, decision_points: points, not_assessed: vec![] };
        }
        n => points.push(format!("C: {n} resources expected")),
    }
    let mut danger = Vec::new();
    let mut not_assessed = Vec::new();
    if let Some(s) = input.spo2 {
        if s < 92 {
            danger.push(format!("SpO2 {s} < 92"));
        }
    } else {
        not_assessed.push("spo2");
    }
    match input.age_months {
        Some(age) => {
            let (band, hr_max, rr_max) = danger_zone_limits(age);
            match input.heart_rate {
                Some(hr) if hr > hr_max => danger.push(format!("heart rate {hr} > {hr_max} for age {band}")),
                Some(_) => {}
                None => not_assessed.push("heart_rate"),
            }
            match input.respiratory_rate {
                Some(rr) if rr > rr_max => danger.push(format!("respiratory rate {rr} > {rr_max} for age {band}")),
                Some(_) => {}
                None => not_assessed.push("respiratory_rate"),
            }
        }
        None => {
            if input.heart_rate.is_some() || input.respiratory_rate.is_some() {
                not_assessed.push("age");
            } else {
                not_assessed.extend(["heart_rate", "respiratory_rate"]);
            }
        }
    }
    if danger.is_empty() {
        points.push("D: no danger-zone vital signs".to_owned());
        Esi { level: 3, decision_points: points, not_assessed }
    } else {
        points.push(format!("D: danger-zone vital signs ({})", danger.join(", ")));
        Esi { level: 2, decision_points: points, not_assessed }
    }
}

#[cfg(test)]
mod tests;
