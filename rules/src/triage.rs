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
//!
//! # Assessment of an emergency request
//! [`assess`] is the one rule behind `raise_emergency` and `assess_emergency`: from the vitals
//! and findings the requester reported (and those staff assessed, which supersede them part by
//! part) and the requester's age it computes NEWS2, ESI, the dispatch queue priority and whether
//! to page the dispatchers. A client sends observations and findings; it never sends a score,
//! a level or a priority (those fields are unknown and refused).

use chrono::Datelike;
/// Dates of birth and the current date, as `age_in_months` takes them.
pub use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use crate::json::{invalid, Fields, InputError};

/// The most a reported (or assessed) vitals or findings object may take, as compact JSON.
/// Anything larger is refused (22023) before it is read, so what is stored stays small.
pub const MAX_REPORT_BYTES: usize = 4096;

/// Refuses a JSON object larger than [`MAX_REPORT_BYTES`], naming `field`.
pub fn check_report_size(field: &str, value: &Value) -> Result<(), InputError> {
    let bytes = serde_json::to_string(value).map(|s| s.len()).unwrap_or(usize::MAX);
    if bytes > MAX_REPORT_BYTES {
        return Err(invalid(field, format!("is {bytes} bytes of JSON; at most {MAX_REPORT_BYTES} are accepted")));
    }
    Ok(())
}

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
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "A",
            Self::Confusion => "C",
            Self::Voice => "V",
            Self::Pain => "P",
            Self::Unresponsive => "U",
        }
    }

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
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        check_report_size("vitals", value)?;
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

    /// The observations as [`Vitals::from_json`] reads them (unmeasured ones left out), so
    /// `from_json(to_json(v)) == v`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        if let Some(v) = self.respiration_rate {
            put("respiration_rate", json!(v));
        }
        if let Some(v) = self.spo2 {
            put("spo2", json!(v));
        }
        if self.spo2_scale_2 {
            put("spo2_scale", json!(2));
            put("hypercapnic_respiratory_failure", json!(true));
        }
        if let Some(v) = self.supplemental_oxygen {
            put("supplemental_oxygen", json!(v));
        }
        if let Some(v) = self.systolic_bp {
            put("systolic_bp", json!(v));
        }
        if let Some(v) = self.pulse {
            put("pulse", json!(v));
        }
        if let Some(v) = self.consciousness {
            put("consciousness", json!(v.as_str()));
        }
        if let Some(v) = self.temperature {
            put("temperature", json!(v));
        }
        Value::Object(m)
    }
}

/// The vitals fields with their JSON types already read, each `None` when absent or null: what
/// a reader that walks the binary `jsonb` itself (the extension's hot path) hands to
/// [`Vitals::from_fields`] instead of building a `serde_json::Value` first.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VitalsFields<'a> {
    pub respiration_rate: Option<i64>,
    pub spo2: Option<i64>,
    pub spo2_scale: Option<i64>,
    pub hypercapnic_respiratory_failure: Option<bool>,
    pub supplemental_oxygen: Option<bool>,
    pub systolic_bp: Option<i64>,
    pub pulse: Option<i64>,
    pub consciousness: Option<&'a str>,
    pub temperature: Option<f64>,
}

impl Vitals {
    /// The same checks as [`Vitals::from_json`] (ranges, scale 2 only when confirmed, ACVPU),
    /// for fields whose JSON types are right and that came from an object with no unknown field
    /// and within [`MAX_REPORT_BYTES`]: `from_fields(f)` is `from_json(json of f)` whenever that
    /// is `Ok`, and an error whenever it is not (the caller may ask `from_json` for the error's
    /// wording; the tests hold the two together).
    pub fn from_fields(f: &VitalsFields<'_>) -> Result<Self, InputError> {
        fn whole(field: &str, v: Option<i64>, min: i64, max: i64) -> Result<Option<i64>, InputError> {
            match v {
                Some(n) if !(min..=max).contains(&n) => Err(invalid(
                    &format!("vitals.{field}"),
                    format!("must be a whole number between {min} and {max}, got {n}"),
                )),
                _ => Ok(v),
            }
        }
        let scale = match f.spo2_scale {
            None => 1,
            Some(s @ 1..=2) => s,
            Some(_) => return Err(invalid("vitals.spo2_scale", "must be 1 or 2")),
        };
        if scale == 2 && f.hypercapnic_respiratory_failure != Some(true) {
            return Err(invalid(
                "vitals.spo2_scale",
                "scale 2 is only for confirmed hypercapnic respiratory failure; set hypercapnic_respiratory_failure: true",
            ));
        }
        let consciousness = match f.consciousness {
            None => None,
            Some(s) => Some(Consciousness::parse(s).ok_or_else(|| {
                invalid("vitals.consciousness", format!("must be one of 'A', 'C', 'V', 'P', 'U' (ACVPU), got {s:?}"))
            })?),
        };
        let temperature = match f.temperature {
            Some(t) if !(25.0..=45.0).contains(&t) => {
                return Err(invalid("vitals.temperature", format!("must be between 25 and 45, got {t}")))
            }
            t => t,
        };
        Ok(Vitals {
            respiration_rate: whole("respiration_rate", f.respiration_rate, 0, 120)?,
            spo2: whole("spo2", f.spo2, 0, 100)?,
            spo2_scale_2: scale == 2,
            supplemental_oxygen: f.supplemental_oxygen,
            systolic_bp: whole("systolic_bp", f.systolic_bp, 0, 300)?,
            pulse: whole("pulse", f.pulse, 0, 300)?,
            consciousness,
            temperature,
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

    /// `{total, complete, partial_total, risk, single_parameter_3, components, missing,
    /// response: {monitoring, clinical_response}}`; `total` is null when incomplete.
    pub fn to_json(&self) -> Value {
        let components: Map<String, Value> = self.components.iter().map(|(k, s)| ((*k).to_owned(), json!(s))).collect();
        let response = self.response();
        json!({
            "total": self.total(),
            "complete": self.is_complete(),
            "partial_total": self.partial_total,
            "risk": self.risk().as_str(),
            "single_parameter_3": self.single_parameter_3,
            "components": components,
            "missing": self.missing,
            "response": { "monitoring": response.monitoring, "clinical_response": response.clinical_response },
        })
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

/// B: a pain score at or above this (0–10 scale) is severe pain (ESI handbook: ≥ 7/10).
pub const SEVERE_PAIN: u8 = 7;
/// A: a measured SpO2 below this is an immediate lifesaving need (ESI handbook: SpO2 < 90 %).
pub const LIFESAVING_SPO2_BELOW: u32 = 90;
/// D: a measured SpO2 below this is a danger-zone vital sign at any age (ESI handbook: < 92 %).
pub const DANGER_ZONE_SPO2_BELOW: u32 = 92;
/// C: an emergency request with no resource estimate is assumed to need this many resources,
/// so that ESI weighs its danger-zone vitals (D) instead of calling it ESI 4 or 5 unseen.
pub const ASSUMED_RESOURCES: u32 = 2;
/// The longest list of expected resources read (there are 22 names; repeats count once).
pub const MAX_RESOURCES: usize = 32;
/// The largest `expected_resources` count read.
pub const MAX_EXPECTED_RESOURCES: i64 = 50;

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

/// Every accepted resource name, resources first, then what the handbook says is *not* one.
pub const RESOURCE_NAMES: &[&str] = &[
    "labs", "ecg", "xray", "ct", "mri", "ultrasound", "angiography", "iv_fluids", "iv_medication", "im_medication",
    "nebulised_medication", "specialty_consult", "simple_procedure", "complex_procedure", "history_and_exam",
    "point_of_care_test", "saline_lock", "oral_medication", "tetanus_immunisation", "prescription_refill",
    "simple_wound_care", "crutches_splints_slings",
];

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

/// How many resources the emergency is expected to need: named, or a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceEstimate {
    /// Validated names, each once, in the order first given.
    Named(Vec<String>),
    Count(u32),
}

impl ResourceEstimate {
    pub fn count(&self) -> u32 {
        match self {
            Self::Count(n) => *n,
            Self::Named(names) => {
                let parsed: Vec<Resource> = names.iter().filter_map(|n| parse_resource(n).ok().flatten()).collect();
                count_resources(&parsed)
            }
        }
    }
}

/// What someone observed about the person in the emergency, beyond measured vitals: the ESI
/// findings of decision points A–C. Absent findings are false.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// A: needs an immediate lifesaving intervention (or is intubated, apnoeic, pulseless, in
    /// severe respiratory distress, acutely altered or unresponsive).
    pub lifesaving_intervention: bool,
    /// B: a high-risk situation.
    pub high_risk: bool,
    /// B: new confusion, lethargy or disorientation.
    pub new_confusion: bool,
    /// B: pain 0–10; severe from [`SEVERE_PAIN`].
    pub pain_score: Option<u8>,
    /// B: severe distress other than pain.
    pub severe_distress: bool,
    /// C: expected resources; `None` when not estimated.
    pub resources: Option<ResourceEstimate>,
}

pub const FINDINGS_FIELDS: &[&str] =
    &["lifesaving_intervention", "high_risk", "new_confusion", "pain_score", "severe_distress", "resources", "expected_resources"];

impl Findings {
    /// Reads `{lifesaving_intervention, high_risk, new_confusion, pain_score (0–10),
    /// severe_distress, resources: ["labs", "xray", …] | expected_resources: n}` (at most
    /// [`MAX_REPORT_BYTES`]). A score, level or priority is an unknown field, refused.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        check_report_size("findings", value)?;
        let f = Fields::new("findings", value, FINDINGS_FIELDS)?;
        Self::from_fields(&f)
    }

    fn from_fields(f: &Fields<'_>) -> Result<Self, InputError> {
        let resources = match (f.get("resources"), f.whole("expected_resources", 0, MAX_EXPECTED_RESOURCES)?) {
            (Some(_), Some(_)) => {
                return Err(invalid(&f.name("resources"), "give resources or expected_resources, not both"))
            }
            (None, Some(n)) => Some(ResourceEstimate::Count(n as u32)),
            (Some(_), None) => {
                let items = f.array("resources")?;
                if items.len() > MAX_RESOURCES {
                    return Err(invalid(
                        &f.name("resources"),
                        format!("lists {} resources; at most {MAX_RESOURCES} are accepted", items.len()),
                    ));
                }
                let mut names: Vec<String> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let field = format!("{}[{i}]", f.name("resources"));
                    let name = item.as_str().ok_or_else(|| invalid(&field, "must be a string"))?;
                    parse_resource(name).map_err(|e| invalid(&field, e))?;
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
                Some(ResourceEstimate::Named(names))
            }
            (None, None) => None,
        };
        Ok(Findings {
            lifesaving_intervention: f.boolean("lifesaving_intervention")?.unwrap_or(false),
            high_risk: f.boolean("high_risk")?.unwrap_or(false),
            new_confusion: f.boolean("new_confusion")?.unwrap_or(false),
            pain_score: f.whole("pain_score", 0, 10)?.map(|p| p as u8),
            severe_distress: f.boolean("severe_distress")?.unwrap_or(false),
            resources,
        })
    }

    /// The findings as [`Findings::from_json`] reads them (false and absent ones left out), so
    /// `from_json(to_json(f)) == f`. This is the form stored.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("lifesaving_intervention", self.lifesaving_intervention),
            ("high_risk", self.high_risk),
            ("new_confusion", self.new_confusion),
            ("severe_distress", self.severe_distress),
        ] {
            if v {
                m.insert(k.to_owned(), Value::Bool(true));
            }
        }
        if let Some(p) = self.pain_score {
            m.insert("pain_score".into(), json!(p));
        }
        match &self.resources {
            None => {}
            Some(ResourceEstimate::Count(n)) => {
                m.insert("expected_resources".into(), json!(n));
            }
            Some(ResourceEstimate::Named(names)) => {
                m.insert("resources".into(), json!(names));
            }
        }
        Value::Object(m)
    }
}

/// Inputs to the ESI algorithm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EsiInput {
    /// A: needs an immediate lifesaving intervention.
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
    /// D: the vital signs, under the names NEWS2 uses.
    pub pulse: Option<u32>,
    pub respiration_rate: Option<u32>,
    pub spo2: Option<u32>,
}

pub const ESI_FIELDS: &[&str] = &[
    "lifesaving_intervention", "high_risk", "new_confusion", "pain_score", "severe_distress", "resources",
    "expected_resources", "age_years", "age_months", "pulse", "respiration_rate", "spo2",
];

impl EsiInput {
    /// Reads `{lifesaving_intervention, high_risk, new_confusion, pain_score (0–10),
    /// severe_distress, resources: ["labs", "xray", …] | expected_resources: n,
    /// age_years | age_months, pulse, respiration_rate, spo2}`. Absent findings are false;
    /// one of `resources` / `expected_resources` is required.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let f = Fields::new("esi", value, ESI_FIELDS)?;
        let findings = Findings::from_fields(&f)?;
        let Some(resources) = findings.resources.as_ref().map(ResourceEstimate::count) else {
            return Err(invalid("esi.resources", "required: a list of expected resources or expected_resources"));
        };
        let age_months = match (f.number("age_years", 0.0, 130.0)?, f.whole("age_months", 0, 1560)?) {
            (Some(_), Some(_)) => return Err(invalid("esi.age_years", "give age_years or age_months, not both")),
            (Some(y), None) => Some((y * 12.0).floor() as u32),
            (None, m) => m.map(|m| m as u32),
        };
        Ok(EsiInput {
            lifesaving_intervention: findings.lifesaving_intervention,
            high_risk: findings.high_risk,
            new_confusion: findings.new_confusion,
            pain_score: findings.pain_score,
            severe_distress: findings.severe_distress,
            resources,
            age_months,
            pulse: f.whole("pulse", 0, 300)?.map(|v| v as u32),
            respiration_rate: f.whole("respiration_rate", 0, 120)?.map(|v| v as u32),
            spo2: f.whole("spo2", 0, 100)?.map(|v| v as u32),
        })
    }
}

/// Danger-zone pulse and respiration rate limits (exceeding either is danger) for an age.
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

impl Esi {
    pub fn to_json(&self) -> Value {
        json!({ "level": self.level, "decision_points": self.decision_points, "not_assessed": self.not_assessed })
    }
}

pub fn esi(input: &EsiInput) -> Esi {
    let mut points = Vec::new();
    if input.lifesaving_intervention {
        points.push("A: requires immediate lifesaving intervention".to_owned());
        return Esi { level: 1, decision_points: points, not_assessed: vec![] };
    }
    points.push("A: no immediate lifesaving intervention".to_owned());
    let severe_pain = input.pain_score.is_some_and(|p| p >= SEVERE_PAIN);
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
        if s < DANGER_ZONE_SPO2_BELOW {
            danger.push(format!("SpO2 {s} < {DANGER_ZONE_SPO2_BELOW}"));
        }
    } else {
        not_assessed.push("spo2");
    }
    match input.age_months {
        Some(age) => {
            let (band, pulse_max, rr_max) = danger_zone_limits(age);
            match input.pulse {
                Some(p) if p > pulse_max => danger.push(format!("pulse {p} > {pulse_max} for age {band}")),
                Some(_) => {}
                None => not_assessed.push("pulse"),
            }
            match input.respiration_rate {
                Some(rr) if rr > rr_max => danger.push(format!("respiration rate {rr} > {rr_max} for age {band}")),
                Some(_) => {}
                None => not_assessed.push("respiration_rate"),
            }
        }
        None => {
            if input.pulse.is_some() || input.respiration_rate.is_some() {
                not_assessed.push("age");
            } else {
                not_assessed.extend(["pulse", "respiration_rate"]);
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

// ------------------------------------------------------------------------------------------------
// Assessment of an emergency request

/// Completed months of age on `today`, as Postgres's `age()` counts them: a month is complete
/// on the same day of the month (or, when the month is shorter, not before the next month).
/// `None` when the date of birth is after `today`: an unknown age, never a refused emergency.
pub fn age_in_months(date_of_birth: NaiveDate, today: NaiveDate) -> Option<u32> {
    if date_of_birth > today {
        return None;
    }
    let months = (today.year() - date_of_birth.year()) * 12 + today.month() as i32 - date_of_birth.month() as i32
        - i32::from(today.day() < date_of_birth.day());
    u32::try_from(months).ok()
}

/// The ESI input for an emergency request: the findings, with the measured vitals and the age
/// deciding what they can. ACVPU P or U, or SpO2 below [`LIFESAVING_SPO2_BELOW`], is decision
/// point A; C or V is new confusion (B); no resource estimate is [`ASSUMED_RESOURCES`] (C).
pub fn esi_input(vitals: Option<&Vitals>, findings: Option<&Findings>, age_months: Option<u32>) -> EsiInput {
    let none = Findings::default();
    let f = findings.unwrap_or(&none);
    let consciousness = vitals.and_then(|v| v.consciousness);
    let spo2 = vitals.and_then(|v| v.spo2).map(|s| s as u32);
    EsiInput {
        lifesaving_intervention: f.lifesaving_intervention
            || matches!(consciousness, Some(Consciousness::Pain | Consciousness::Unresponsive))
            || spo2.is_some_and(|s| s < LIFESAVING_SPO2_BELOW),
        high_risk: f.high_risk,
        new_confusion: f.new_confusion || matches!(consciousness, Some(Consciousness::Confusion | Consciousness::Voice)),
        pain_score: f.pain_score,
        severe_distress: f.severe_distress,
        resources: f.resources.as_ref().map_or(ASSUMED_RESOURCES, ResourceEstimate::count),
        age_months,
        pulse: vitals.and_then(|v| v.pulse).map(|p| p as u32),
        respiration_rate: vitals.and_then(|v| v.respiration_rate).map(|r| r as u32),
        spo2,
    }
}

/// Whether an assessment pages the on-call dispatchers: NEWS2 risk high (for incomplete
/// observations, the lower bound already high) or ESI 1.
pub fn should_page(news2: Option<&News2>, esi: &Esi) -> bool {
    news2.is_some_and(|n| n.risk() == Risk::High) || esi.level == 1
}

/// Position in the dispatch queue, lower first: ESI level first, then NEWS2 (its total, or the
/// lower bound when incomplete) highest first, requests without observations after those with
/// them. The queue breaks ties by waiting time. `ESI × 100 + (20 − NEWS2)`, or `ESI × 100 + 21`
/// without observations: 100–521.
pub fn queue_priority(esi_level: u8, news2_partial_total: Option<u8>) -> i16 {
    i16::from(esi_level) * 100 + news2_partial_total.map_or(21, |t| 20 - i16::from(t.min(20)))
}

/// Who a part of the assessment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The person who raised the emergency.
    Reported,
    /// A dispatcher or the assigned responder.
    Assessed,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Assessed => "assessed",
        }
    }
}

/// Vitals and findings from one source; either may be absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    pub vitals: Option<Vitals>,
    pub findings: Option<Findings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// NEWS2 of the vitals used; `None` without vitals.
    pub news2: Option<News2>,
    pub esi: Esi,
    pub age_months: Option<u32>,
    /// See [`should_page`].
    pub page: bool,
    /// See [`queue_priority`].
    pub priority: i16,
    /// Where the vitals and the findings used came from (`None`: nobody gave any).
    pub vitals_source: Option<Source>,
    pub findings_source: Option<Source>,
}

impl Assessment {
    /// What the extension returns and the RPCs store.
    pub fn to_json(&self) -> Value {
        json!({
            "news2": self.news2.as_ref().map(News2::to_json),
            "news2_total": self.news2.as_ref().and_then(News2::total),
            "esi": self.esi.to_json(),
            "age_months": self.age_months,
            "page": self.page,
            "priority": self.priority,
            "sources": {
                "vitals": self.vitals_source.map(Source::as_str),
                "findings": self.findings_source.map(Source::as_str),
            },
        })
    }
}

/// Triage of an emergency request. Staff's assessed vitals replace the reported vitals, and
/// staff's findings the reported findings (each part as a whole, so a dispatcher can overrule a
/// requester's report); what was not assessed is taken as reported.
pub fn assess(reported: &Observations, assessed: &Observations, age_months: Option<u32>) -> Assessment {
    fn pick<'a, T>(assessed: Option<&'a T>, reported: Option<&'a T>) -> (Option<&'a T>, Option<Source>) {
        match (assessed, reported) {
            (Some(a), _) => (Some(a), Some(Source::Assessed)),
            (None, Some(r)) => (Some(r), Some(Source::Reported)),
            (None, None) => (None, None),
        }
    }
    let (vitals, vitals_source) = pick(assessed.vitals.as_ref(), reported.vitals.as_ref());
    let (findings, findings_source) = pick(assessed.findings.as_ref(), reported.findings.as_ref());
    let news2 = vitals.map(news2);
    let esi = esi(&esi_input(vitals, findings, age_months));
    Assessment {
        page: should_page(news2.as_ref(), &esi),
        priority: queue_priority(esi.level, news2.as_ref().map(|n| n.partial_total)),
        news2,
        esi,
        age_months,
        vitals_source,
        findings_source,
    }
}

#[cfg(test)]
mod tests;
