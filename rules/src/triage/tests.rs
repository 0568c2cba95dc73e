use super::*;
use serde_json::json;

fn complete() -> Vitals {
    Vitals {
        respiration_rate: Some(16),
        spo2: Some(97),
        spo2_scale_2: false,
        supplemental_oxygen: Some(false),
        systolic_bp: Some(120),
        pulse: Some(70),
        consciousness: Some(Consciousness::Alert),
        temperature: Some(37.0),
    }
}

#[test]
fn respiration_rate_bands_are_exact_at_every_boundary() {
    for (rr, s) in [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)] {
        assert_eq!(score_respiration(rr), s, "respiration {rr}");
    }
}

#[test]
fn spo2_scale_1_bands() {
    for (v, s) in [(0, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)] {
        assert_eq!(score_spo2_scale_1(v), s, "spo2 {v}");
    }
}

#[test]
fn spo2_scale_2_bands_on_air_and_on_oxygen() {
    for (v, s) in [(83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)] {
        assert_eq!(score_spo2_scale_2(v, Some(false)), Some(s), "spo2 {v} on air");
        assert_eq!(score_spo2_scale_2(v, Some(true)), Some(s), "spo2 {v} on oxygen");
        assert_eq!(score_spo2_scale_2(v, None), Some(s), "spo2 {v}: oxygen not needed below 93");
    }
    for v in [93, 94, 95, 96, 97, 100] {
        assert_eq!(score_spo2_scale_2(v, Some(false)), Some(0), "spo2 {v} on air scores 0 on scale 2");
    }
    for (v, s) in [(93, 1), (94, 1), (95, 2), (96, 2), (97, 3), (100, 3)] {
        assert_eq!(score_spo2_scale_2(v, Some(true)), Some(s), "spo2 {v} on oxygen");
    }
    assert_eq!(score_spo2_scale_2(95, None), None, "a high saturation needs the oxygen status");
}

#[test]
fn systolic_bands() {
    for (v, s) in [(50, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (260, 3)] {
        assert_eq!(score_systolic(v), s, "systolic {v}");
    }
}

#[test]
fn pulse_bands() {
    for (v, s) in [(30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)] {
        assert_eq!(score_pulse(v), s, "pulse {v}");
    }
}

#[test]
fn temperature_bands_and_values_between_printed_bands() {
    for (t, s) in [
        (34.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (37.5, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (41.0, 2),
    ] {
        assert_eq!(score_temperature(t), s, "temperature {t}");
    }
    // Between the chart's one-decimal bands: thresholds, never rounded down.
    assert_eq!(score_temperature(35.04), 1);
    assert_eq!(score_temperature(36.05), 0);
    assert_eq!(score_temperature(38.05), 1);
    assert_eq!(score_temperature(39.01), 2);
}

#[test]
fn temperature_37_5_scores_0_as_the_chart_says() {
    // A published FHIR implementation guide example scores 37.5 °C as 1; the RCP chart gives 0.
    assert_eq!(score_temperature(37.5), 0);
}

#[test]
fn consciousness_new_confusion_voice_pain_unresponsive_each_score_3() {
    assert_eq!(score_consciousness(Consciousness::Alert), 0);
    for c in [Consciousness::Confusion, Consciousness::Voice, Consciousness::Pain, Consciousness::Unresponsive] {
        assert_eq!(score_consciousness(c), 3);
    }
}

#[test]
fn normal_observations_total_0_and_routine_monitoring() {
    let r = news2(&complete());
    assert_eq!(r.total(), Some(0));
    assert_eq!(r.risk(), Risk::Low);
    assert_eq!(r.response().monitoring, "minimum 12-hourly");
    assert!(!r.single_parameter_3);
}

#[test]
fn response_thresholds() {
    let mut v = complete();
    v.pulse = Some(95); // 1
    assert_eq!((news2(&v).total(), news2(&v).risk()), (Some(1), Risk::Low));
    assert_eq!(news2(&v).response().monitoring, "minimum 4–6-hourly");
    v.temperature = Some(35.0); // +3: single parameter 3, total 4
    let r = news2(&v);
    assert_eq!((r.total(), r.risk(), r.single_parameter_3), (Some(4), Risk::LowMedium, true));
    assert_eq!(r.response().monitoring, "minimum 1-hourly");
    v.supplemental_oxygen = Some(true); // +2 = 6
    assert_eq!((news2(&v).total(), news2(&v).risk()), (Some(6), Risk::Medium));
    v.temperature = Some(36.5); // 1 + 2 = 3
    v.respiration_rate = Some(21); // +2 = 5, no single 3
    let r = news2(&v);
    assert_eq!((r.total(), r.risk(), r.single_parameter_3), (Some(5), Risk::Medium, false));
    v.systolic_bp = Some(101); // +1 = 6
    v.respiration_rate = Some(25); // 3 instead of 2 → 7
    let r = news2(&v);
    assert_eq!((r.total(), r.risk()), (Some(7), Risk::High));
    assert_eq!(r.response().monitoring, "continuous monitoring of vital signs");
}

#[test]
fn maximum_total_is_20() {
    let v = Vitals {
        respiration_rate: Some(30),
        spo2: Some(85),
        spo2_scale_2: false,
        supplemental_oxygen: Some(true),
        systolic_bp: Some(80),
        pulse: Some(140),
        consciousness: Some(Consciousness::Unresponsive),
        temperature: Some(34.0),
    };
    assert_eq!(news2(&v).total(), Some(20));
    assert_eq!(news2(&Vitals { temperature: Some(40.0), ..v }).total(), Some(19), "high fever scores 2, not 3");
}

#[test]
fn missing_parameters_make_an_incomplete_result_that_names_them() {
    let mut v = complete();
    v.pulse = None;
    v.temperature = None;
    let r = news2(&v);
    assert_eq!(r.total(), None);
    assert_eq!(r.missing, ["pulse", "temperature"]);
    assert_eq!(r.components[4], ("pulse", None));
}

#[test]
fn scale_2_high_saturation_without_oxygen_status_names_oxygen_as_missing() {
    let mut v = complete();
    v.spo2_scale_2 = true;
    v.spo2 = Some(95);
    v.supplemental_oxygen = None;
    let r = news2(&v);
    assert_eq!(r.missing, ["supplemental_oxygen"]);
    assert_eq!(r.components[1], ("spo2", None));
}

#[test]
fn vitals_from_json_reads_every_field() {
    let v = Vitals::from_json(&json!({
        "respiration_rate": 22, "spo2": 95, "spo2_scale": 2, "hypercapnic_respiratory_failure": true,
        "supplemental_oxygen": true, "systolic_bp": 105, "pulse": 112, "consciousness": "V", "temperature": 38.4
    }))
    .unwrap();
    let r = news2(&v);
    // rr 2, spo2 (scale 2, 95 on O2) 2, oxygen 2, sbp 1, pulse 2, V 3, temp 1
    assert_eq!(r.total(), Some(13));
}

fn err_field(value: serde_json::Value) -> String {
    match Vitals::from_json(&value) {
        Err(InputError::Invalid { field, .. }) => field,
        Ok(v) => panic!("accepted {v:?}"),
    }
}

#[test]
fn impossible_vitals_are_errors_naming_the_field() {
    assert_eq!(err_field(json!({"spo2": 101})), "vitals.spo2");
    assert_eq!(err_field(json!({"spo2": -1})), "vitals.spo2");
    assert_eq!(err_field(json!({"respiration_rate": -2})), "vitals.respiration_rate");
    assert_eq!(err_field(json!({"respiration_rate": 18.5})), "vitals.respiration_rate");
    assert_eq!(err_field(json!({"pulse": -1})), "vitals.pulse");
    assert_eq!(err_field(json!({"systolic_bp": "high"})), "vitals.systolic_bp");
    assert_eq!(err_field(json!({"temperature": 24.9})), "vitals.temperature");
    assert_eq!(err_field(json!({"temperature": 45.1})), "vitals.temperature");
    assert_eq!(err_field(json!({"consciousness": "X"})), "vitals.consciousness");
    assert_eq!(err_field(json!({"consciousness": "a"})), "vitals.consciousness");
    assert_eq!(err_field(json!({"supplemental_oxygen": "yes"})), "vitals.supplemental_oxygen");
    assert_eq!(err_field(json!({"spo2_scale": 3})), "vitals.spo2_scale");
    assert_eq!(err_field(json!({"spo2_scale": 2})), "vitals.spo2_scale", "scale 2 needs the confirmation flag");
    assert_eq!(err_field(json!({"heart_rate": 80})), "vitals.heart_rate", "unknown fields are rejected");
    assert_eq!(err_field(json!([1, 2])), "vitals");
}

#[test]
fn boundary_values_of_ranges_are_accepted() {
    assert!(Vitals::from_json(&json!({"temperature": 25.0, "spo2": 100, "respiration_rate": 0})).is_ok());
    assert!(Vitals::from_json(&json!({"temperature": 45.0, "spo2": 0})).is_ok());
    assert!(Vitals::from_json(&json!({"spo2": null})).unwrap().spo2.is_none(), "null is not measured");
}

// ESI ---------------------------------------------------------------------------------------------

fn base() -> EsiInput {
    EsiInput { resources: 2, age_months: Some(40 * 12), pulse: Some(80), respiration_rate: Some(16), spo2: Some(98), ..Default::default() }
}

#[test]
fn esi_a_lifesaving_intervention_is_level_1() {
    let r = esi(&EsiInput { lifesaving_intervention: true, high_risk: true, ..base() });
    assert_eq!(r.level, 1);
    assert_eq!(r.decision_points, ["A: requires immediate lifesaving intervention"]);
}

#[test]
fn esi_b_high_risk_confusion_severe_pain_or_distress_is_level_2() {
    assert_eq!(esi(&EsiInput { high_risk: true, ..base() }).level, 2);
    assert_eq!(esi(&EsiInput { new_confusion: true, ..base() }).level, 2);
    assert_eq!(esi(&EsiInput { severe_distress: true, ..base() }).level, 2);
    let r = esi(&EsiInput { pain_score: Some(7), resources: 0, ..base() });
    assert_eq!(r.level, 2);
    assert_eq!(r.decision_points.last().unwrap(), "B: severe pain (7/10)");
    assert_eq!(esi(&EsiInput { pain_score: Some(6), resources: 0, ..base() }).level, 5, "pain 6 is not severe");
}

#[test]
fn esi_c_resources_decide_5_4_and_3() {
    assert_eq!(esi(&EsiInput { resources: 0, ..base() }).level, 5);
    assert_eq!(esi(&EsiInput { resources: 1, ..base() }).level, 4);
    let r = esi(&EsiInput { resources: 2, ..base() });
    assert_eq!(r.level, 3);
    assert_eq!(r.decision_points.last().unwrap(), "D: no danger-zone vital signs");
}

#[test]
fn esi_resources_count_by_type_and_complex_procedure_counts_two() {
    let count = |names: &[&str]| -> u32 {
        let parsed: Vec<Resource> = names.iter().filter_map(|n| parse_resource(n).unwrap()).collect();
        count_resources(&parsed)
    };
    assert_eq!(count(&["labs", "labs"]), 1);
    assert_eq!(count(&["labs", "xray"]), 2);
    assert_eq!(count(&["oral_medication", "history_and_exam", "saline_lock"]), 0);
    assert_eq!(count(&["complex_procedure"]), 2);
    assert!(parse_resource("magic").is_err());
}

#[test]
fn esi_d_danger_zone_for_each_age_band() {
    // (age in months, pulse limit, respiration-rate limit)
    for (age, hr, rr) in [(1, 180, 50), (2, 180, 50), (3, 160, 40), (35, 160, 40), (36, 140, 30), (107, 140, 30), (108, 100, 20), (600, 100, 20)] {
        let at_limit = EsiInput { age_months: Some(age), pulse: Some(hr), respiration_rate: Some(rr), ..base() };
        assert_eq!(esi(&at_limit).level, 3, "age {age} months at the limits is not danger");
        let fast_heart = EsiInput { pulse: Some(hr + 1), ..at_limit.clone() };
        assert_eq!(esi(&fast_heart).level, 2, "age {age} months pulse {}", hr + 1);
        let fast_breathing = EsiInput { respiration_rate: Some(rr + 1), ..at_limit };
        assert_eq!(esi(&fast_breathing).level, 2, "age {age} months respiration rate {}", rr + 1);
    }
}

#[test]
fn esi_d_spo2_below_92_at_any_age() {
    assert_eq!(esi(&EsiInput { spo2: Some(91), ..base() }).level, 2);
    assert_eq!(esi(&EsiInput { spo2: Some(92), ..base() }).level, 3);
}

#[test]
fn esi_d_with_missing_vitals_says_what_was_not_assessed() {
    let r = esi(&EsiInput { pulse: None, spo2: None, ..base() });
    assert_eq!(r.level, 3);
    assert_eq!(r.not_assessed, ["spo2", "pulse"]);
}

#[test]
fn esi_from_json() {
    let i = EsiInput::from_json(&json!({"resources": ["labs", "ct", "iv_medication"], "age_years": 2.5, "pulse": 170, "respiration_rate": 30, "spo2": 97})).unwrap();
    assert_eq!((i.resources, i.age_months), (3, Some(30)));
    assert_eq!(esi(&i).level, 2, "a toddler with pulse 170 is in the danger zone");
    for (input, field) in [
        (json!({}), "esi.resources"),
        (json!({"expected_resources": 1, "resources": []}), "esi.resources"),
        (json!({"resources": ["labs", 3]}), "esi.resources[1]"),
        (json!({"resources": ["psychic"]}), "esi.resources[0]"),
        (json!({"expected_resources": -1}), "esi.expected_resources"),
        (json!({"expected_resources": 1, "pain_score": 11}), "esi.pain_score"),
        (json!({"expected_resources": 1, "age_years": -1}), "esi.age_years"),
        (json!({"expected_resources": 1, "age_years": 3, "age_months": 36}), "esi.age_years"),
        (json!({"expected_resources": 1, "pulse": 400}), "esi.pulse"),
        (json!({"expected_resources": 1, "heart_rate": 80}), "esi.heart_rate"),
        (json!({"expected_resources": 1, "respiratory_rate": 16}), "esi.respiratory_rate"),
        (json!({"expected_resources": 1, "high_risk": "yes"}), "esi.high_risk"),
        (json!({"expected_resources": 1, "mood": "bad"}), "esi.mood"),
    ] {
        match EsiInput::from_json(&input) {
            Err(InputError::Invalid { field: f, .. }) => assert_eq!(f, field, "{input}"),
            Ok(i) => panic!("accepted {input}: {i:?}"),
        }
    }
}

// Findings ----------------------------------------------------------------------------------------

fn findings(v: serde_json::Value) -> Findings {
    Findings::from_json(&v).unwrap()
}

fn findings_err(v: serde_json::Value) -> String {
    match Findings::from_json(&v) {
        Err(InputError::Invalid { field, .. }) => field,
        Ok(f) => panic!("accepted {f:?}"),
    }
}

#[test]
fn findings_read_every_field_and_store_in_one_normal_form() {
    let f = findings(json!({"lifesaving_intervention": false, "high_risk": true, "pain_score": 8,
                            "resources": ["labs", "xray", "labs", "oral_medication"]}));
    assert_eq!(f.resources, Some(ResourceEstimate::Named(vec!["labs".into(), "xray".into(), "oral_medication".into()])));
    assert_eq!(f.resources.as_ref().unwrap().count(), 2);
    assert_eq!(f.to_json(), json!({"high_risk": true, "pain_score": 8, "resources": ["labs", "xray", "oral_medication"]}));
    assert_eq!(findings(json!({"expected_resources": 3})).to_json(), json!({"expected_resources": 3}));
    assert_eq!(findings(json!({})), Findings::default());
}

#[test]
fn a_score_level_or_priority_from_the_client_is_refused() {
    for field in ["level", "esi_level", "news2", "priority", "page", "age_months", "pulse", "heart_rate"] {
        assert_eq!(findings_err(json!({ field: 1 })), format!("findings.{field}"));
    }
}

#[test]
fn findings_are_bounded_in_size_and_in_resources() {
    let many: Vec<&str> = std::iter::repeat_n("labs", MAX_RESOURCES + 1).collect();
    assert_eq!(findings_err(json!({"resources": many})), "findings.resources");
    let ok: Vec<&str> = std::iter::repeat_n("labs", MAX_RESOURCES).collect();
    assert_eq!(findings(json!({"resources": ok})).resources.unwrap().count(), 1);
    let e = Findings::from_json(&json!({"resources": ["x".repeat(MAX_REPORT_BYTES)]})).unwrap_err().to_string();
    assert_eq!(e, "findings: is 4114 bytes of JSON; at most 4096 are accepted");
    assert_eq!(findings_err(json!({"expected_resources": MAX_EXPECTED_RESOURCES + 1})), "findings.expected_resources");
    assert_eq!(findings_err(json!({"resources": ["labs"], "expected_resources": 1})), "findings.resources");
    assert_eq!(findings_err(json!({"resources": ["psychic"]})), "findings.resources[0]");
    assert_eq!(findings_err(json!({"pain_score": 11})), "findings.pain_score");
    assert_eq!(findings_err(json!("chest pain")), "findings");
}

#[test]
fn vitals_are_bounded_in_size() {
    let e = Vitals::from_json(&json!({"consciousness": "A".repeat(MAX_REPORT_BYTES)})).unwrap_err().to_string();
    assert!(e.starts_with("vitals: is "), "{e}");
}

// Age ----------------------------------------------------------------------------------------------

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[test]
fn age_in_months_counts_completed_months_like_postgres_age() {
    for (dob, today, months) in [
        ("1980-05-01", "1980-05-01", Some(0)),
        ("1980-05-01", "1980-05-31", Some(0)),
        ("1980-05-01", "1980-06-01", Some(1)),
        ("1980-05-15", "1981-05-14", Some(11)),
        ("1980-05-15", "1981-05-15", Some(12)),
        ("2024-01-31", "2024-02-29", Some(0)),
        ("2024-01-31", "2024-03-01", Some(1)),
        ("2020-02-29", "2021-02-28", Some(11)),
        ("2020-02-29", "2021-03-01", Some(12)),
        ("1900-01-02", "2026-11-26", Some(1522)),
        ("2026-11-27", "2026-11-26", None),
    ] {
        assert_eq!(age_in_months(d(dob), d(today)), months, "{dob} on {today}");
    }
}

// Assessment ---------------------------------------------------------------------------------------

fn reported(vitals: Option<serde_json::Value>, f: Option<serde_json::Value>) -> Observations {
    Observations { vitals: vitals.map(|v| Vitals::from_json(&v).unwrap()), findings: f.map(findings) }
}

const ADULT: Option<u32> = Some(40 * 12);

fn level(vitals: serde_json::Value, f: serde_json::Value) -> u8 {
    assess(&reported(Some(vitals), Some(f)), &Observations::default(), ADULT).esi.level
}

#[test]
fn the_spo2_path_below_90_is_a_lifesaving_need_and_90_is_not() {
    // Decision point A by measured SpO2, whatever the findings say.
    for (spo2, esi_level) in [(0, 1), (85, 1), (89, 1), (90, 2), (91, 2), (92, 3), (100, 3)] {
        let l = level(json!({"spo2": spo2, "pulse": 80, "respiration_rate": 16}), json!({"expected_resources": 2}));
        assert_eq!(l, esi_level, "SpO2 {spo2}");
    }
    // SpO2 90–91 is not A, but is a danger-zone vital at D (< 92).
    let r = assess(&reported(Some(json!({"spo2": 90})), None), &Observations::default(), ADULT);
    assert_eq!(r.esi.decision_points[0], "A: no immediate lifesaving intervention");
    assert!(r.esi.decision_points.last().unwrap().contains("SpO2 90 < 92"));
}

#[test]
fn acvpu_p_and_u_are_lifesaving_c_and_v_are_new_confusion() {
    for (c, esi_level) in [("A", 3), ("C", 2), ("V", 2), ("P", 1), ("U", 1)] {
        let l = level(json!({"consciousness": c, "spo2": 98, "pulse": 80, "respiration_rate": 16}), json!({}));
        assert_eq!(l, esi_level, "ACVPU {c}");
    }
    let r = assess(&reported(Some(json!({"consciousness": "V"})), None), &Observations::default(), ADULT);
    assert_eq!(r.esi.decision_points[1], "B: new confusion, lethargy or disorientation");
}

#[test]
fn no_resource_estimate_means_two_so_danger_zone_vitals_count() {
    let none = assess(&reported(Some(json!({"pulse": 101, "spo2": 98, "respiration_rate": 16})), None), &Observations::default(), ADULT);
    assert_eq!(none.esi.decision_points[2], "C: 2 resources expected");
    assert_eq!(none.esi.level, 2, "an adult pulse of 101 is in the danger zone once two resources are assumed");
    assert_eq!(level(json!({"pulse": 101}), json!({"expected_resources": 1})), 4, "one resource estimated: ESI 4");
    assert_eq!(level(json!({"pulse": 101}), json!({"resources": []})), 5, "no resources named: ESI 5");
}

#[test]
fn severe_pain_starts_at_7() {
    assert_eq!(SEVERE_PAIN, 7);
    assert_eq!(level(json!({"spo2": 98}), json!({"pain_score": 6, "expected_resources": 0})), 5);
    assert_eq!(level(json!({"spo2": 98}), json!({"pain_score": 7, "expected_resources": 0})), 2);
}

#[test]
fn the_age_decides_the_danger_zone_band() {
    let vitals = Some(json!({"pulse": 150, "respiration_rate": 35, "spo2": 98}));
    let child = assess(&reported(vitals.clone(), None), &Observations::default(), Some(24));
    assert_eq!(child.esi.level, 3, "pulse 150 and rate 35 are within limits at 2 years");
    let adult = assess(&reported(vitals.clone(), None), &Observations::default(), ADULT);
    assert_eq!(adult.esi.level, 2);
    let unknown = assess(&reported(vitals, None), &Observations::default(), None);
    assert_eq!((unknown.esi.level, unknown.esi.not_assessed.clone()), (3, vec!["age"]));
}

#[test]
fn the_page_rule_is_news2_high_or_esi_1() {
    let high = json!({"respiration_rate": 25, "spo2": 96, "supplemental_oxygen": false, "systolic_bp": 120, "pulse": 131,
                      "consciousness": "A", "temperature": 37});
    let r = assess(&reported(Some(high), Some(json!({"expected_resources": 0}))), &Observations::default(), ADULT);
    assert_eq!((r.news2.as_ref().unwrap().total(), r.esi.level, r.page), (Some(6), 5, false), "NEWS2 6 is medium: no page");
    let high7 = json!({"respiration_rate": 25, "spo2": 95, "supplemental_oxygen": false, "systolic_bp": 120, "pulse": 131,
                       "consciousness": "A", "temperature": 37});
    let r = assess(&reported(Some(high7), Some(json!({"expected_resources": 0}))), &Observations::default(), ADULT);
    assert_eq!((r.news2.as_ref().unwrap().total(), r.page), (Some(7), true), "NEWS2 7 is high: page");
    let esi1 = assess(&reported(None, Some(json!({"lifesaving_intervention": true}))), &Observations::default(), ADULT);
    assert_eq!((esi1.news2.is_none(), esi1.esi.level, esi1.page), (true, 1, true), "ESI 1 pages without observations");
    let partial = assess(&reported(Some(json!({"respiration_rate": 30, "spo2": 85, "pulse": 140})), None), &Observations::default(), ADULT);
    assert!(partial.page, "an incomplete NEWS2 whose lower bound is already 7 pages");
}

#[test]
fn staff_assessment_supersedes_the_report_part_by_part_and_says_so() {
    let report = reported(Some(json!({"consciousness": "U"})), Some(json!({"lifesaving_intervention": true})));
    let r = assess(&report, &Observations::default(), ADULT);
    assert_eq!((r.esi.level, r.vitals_source, r.findings_source), (1, Some(Source::Reported), Some(Source::Reported)));
    // A dispatcher on the phone finds the person alert, with a sprained ankle.
    let staff = reported(Some(json!({"consciousness": "A", "spo2": 98, "pulse": 80, "respiration_rate": 16})), Some(json!({"resources": ["xray"]})));
    let r = assess(&report, &staff, ADULT);
    assert_eq!((r.esi.level, r.page, r.vitals_source, r.findings_source), (4, false, Some(Source::Assessed), Some(Source::Assessed)));
    // Only vitals assessed: the reported findings still count.
    let vitals_only = Observations { vitals: staff.vitals.clone(), findings: None };
    let r = assess(&report, &vitals_only, ADULT);
    assert_eq!((r.esi.level, r.vitals_source, r.findings_source), (1, Some(Source::Assessed), Some(Source::Reported)));
    let nothing = assess(&Observations::default(), &Observations::default(), None);
    assert_eq!((nothing.vitals_source, nothing.findings_source, nothing.news2.is_none()), (None, None, true));
}

#[test]
fn the_assessment_json_names_every_output() {
    let r = assess(&reported(Some(json!({"spo2": 88})), Some(json!({"pain_score": 3}))), &Observations::default(), Some(500));
    let j = r.to_json();
    assert_eq!(j["esi"]["level"], 1);
    assert_eq!(j["news2"]["partial_total"], 3);
    assert_eq!(j["news2_total"], serde_json::Value::Null);
    assert_eq!(j["age_months"], 500);
    assert_eq!(j["page"], true);
    assert_eq!(j["priority"], 117);
    assert_eq!(j["sources"], json!({"vitals": "reported", "findings": "reported"}));
}

#[test]
fn queue_priority_boundaries() {
    assert_eq!(queue_priority(1, Some(20)), 100);
    assert_eq!(queue_priority(1, Some(0)), 120);
    assert_eq!(queue_priority(1, None), 121);
    assert_eq!(queue_priority(2, Some(20)), 200);
    assert_eq!(queue_priority(5, None), 521);
}

// Properties ---------------------------------------------------------------------------------------

use proptest::prelude::*;

fn arb_vitals() -> impl Strategy<Value = Vitals> {
    (
        proptest::option::of(0i64..=120),
        proptest::option::of(0i64..=100),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0i64..=300),
        proptest::option::of(0i64..=300),
        proptest::option::of(0usize..5),
        proptest::option::of(250i64..=450),
    )
        .prop_map(|(rr, spo2, o2, sbp, pulse, c, t)| Vitals {
            respiration_rate: rr,
            spo2,
            spo2_scale_2: false,
            supplemental_oxygen: o2,
            systolic_bp: sbp,
            pulse,
            consciousness: c.map(|i| [Consciousness::Alert, Consciousness::Confusion, Consciousness::Voice, Consciousness::Pain, Consciousness::Unresponsive][i]),
            temperature: t.map(|t| t as f64 / 10.0),
        })
}

fn arb_findings() -> impl Strategy<Value = Findings> {
    (
        any::<[bool; 4]>(),
        proptest::option::of(0u8..=10),
        proptest::option::of(prop_oneof![
            (0u32..=50).prop_map(ResourceEstimate::Count),
            proptest::sample::subsequence(RESOURCE_NAMES.to_vec(), 0..6)
                .prop_map(|v| ResourceEstimate::Named(v.into_iter().map(str::to_owned).collect())),
        ]),
    )
        .prop_map(|([a, b, c, e], pain, resources)| Findings {
            lifesaving_intervention: a,
            high_risk: b,
            new_confusion: c,
            pain_score: pain,
            severe_distress: e,
            resources,
        })
}

proptest! {
    #[test]
    fn spo2_below_90_or_p_or_u_is_always_esi_1(v in arb_vitals(), f in arb_findings(), age in proptest::option::of(0u32..1500)) {
        let r = assess(&Observations { vitals: Some(v.clone()), findings: Some(f.clone()) }, &Observations::default(), age);
        let lifesaving = f.lifesaving_intervention
            || v.spo2.is_some_and(|s| s < 90)
            || matches!(v.consciousness, Some(Consciousness::Pain | Consciousness::Unresponsive));
        prop_assert_eq!(r.esi.level == 1, lifesaving);
        prop_assert!(!lifesaving || r.page, "ESI 1 always pages");
    }

    #[test]
    fn the_page_rule_is_exactly_news2_high_or_esi_1(v in proptest::option::of(arb_vitals()), f in arb_findings()) {
        let r = assess(&Observations { vitals: v, findings: Some(f) }, &Observations::default(), ADULT);
        let high = r.news2.as_ref().is_some_and(|n| n.partial_total >= 7);
        prop_assert_eq!(r.page, high || r.esi.level == 1);
    }

    #[test]
    fn findings_and_vitals_round_trip_through_their_stored_form(v in arb_vitals(), f in arb_findings()) {
        prop_assert_eq!(Findings::from_json(&f.to_json()).unwrap(), f);
        prop_assert_eq!(Vitals::from_json(&v.to_json()).unwrap(), v);
    }

    #[test]
    fn queue_priority_orders_by_esi_then_news2_descending_then_unobserved(
        a in (1u8..=5, proptest::option::of(0u8..=20)),
        b in (1u8..=5, proptest::option::of(0u8..=20)),
    ) {
        // None sorts after every observed total within one ESI level.
        let key = |(esi, n): (u8, Option<u8>)| (esi, n.map_or(1, |_| 0), std::cmp::Reverse(n.unwrap_or(0)));
        prop_assert_eq!(queue_priority(a.0, a.1).cmp(&queue_priority(b.0, b.1)), key(a).cmp(&key(b)));
    }

    #[test]
    fn age_in_months_never_decreases_and_gains_one_per_month(
        y in 1900i32..2100, m in 1u32..=12, day in 1u32..=28, later in 0u32..2000, k in 0u32..600,
    ) {
        let dob = NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let t = dob + chrono::Days::new(u64::from(later));
        let t1 = t + chrono::Days::new(1);
        prop_assert!(age_in_months(dob, t1).unwrap() >= age_in_months(dob, t).unwrap());
        // On the same day of the month (day ≤ 28 always exists), exactly k months.
        let kth = dob.checked_add_months(chrono::Months::new(k)).unwrap();
        prop_assert_eq!(age_in_months(dob, kth), Some(k));
        if kth > dob {
            prop_assert_eq!(age_in_months(dob, kth.pred_opt().unwrap()), Some(k - 1));
        }
    }
}

/// `Vitals::from_fields` (the extension's binary-jsonb path) agrees with `Vitals::from_json`
/// on every combination of in-range, edge and out-of-range values: the same vitals when one
/// accepts, an error from both when one refuses.
#[test]
fn from_fields_agrees_with_from_json() {
    let ints = [None, Some(-1), Some(0), Some(1), Some(2), Some(3), Some(100), Some(101), Some(120), Some(121), Some(300), Some(301), Some(i64::MIN), Some(i64::MAX)];
    let bools = [None, Some(false), Some(true)];
    let texts = [None, Some("A"), Some("C"), Some("U"), Some("a"), Some(""), Some("AV")];
    let temps = [None, Some(24.99), Some(25.0), Some(35.05), Some(37.5), Some(45.0), Some(45.01), Some(-0.0)];
    let mut checked = 0;
    for (i, &rr) in ints.iter().enumerate() {
        for &scale in &[None, Some(0), Some(1), Some(2), Some(3)] {
            for &confirmed in &bools {
                for &o2 in &bools {
                    for &acvpu in &texts {
                        // The other fields rotate through their values with the outer index.
                        let f = VitalsFields {
                            respiration_rate: rr,
                            spo2: ints[(i + 3) % ints.len()],
                            spo2_scale: scale,
                            hypercapnic_respiratory_failure: confirmed,
                            supplemental_oxygen: o2,
                            systolic_bp: ints[(i + 5) % ints.len()],
                            pulse: ints[(i + 7) % ints.len()],
                            consciousness: acvpu,
                            temperature: temps[(i + checked) % temps.len()],
                        };
                        let mut m = serde_json::Map::new();
                        let mut put = |k: &str, v: Option<Value>| {
                            if let Some(v) = v {
                                m.insert(k.to_owned(), v);
                            }
                        };
                        put("respiration_rate", f.respiration_rate.map(|v| json!(v)));
                        put("spo2", f.spo2.map(|v| json!(v)));
                        put("spo2_scale", f.spo2_scale.map(|v| json!(v)));
                        put("hypercapnic_respiratory_failure", f.hypercapnic_respiratory_failure.map(|v| json!(v)));
                        put("supplemental_oxygen", f.supplemental_oxygen.map(|v| json!(v)));
                        put("systolic_bp", f.systolic_bp.map(|v| json!(v)));
                        put("pulse", f.pulse.map(|v| json!(v)));
                        put("consciousness", f.consciousness.map(|v| json!(v)));
                        put("temperature", f.temperature.map(|v| json!(v)));
                        let doc = Value::Object(m);
                        match (Vitals::from_fields(&f), Vitals::from_json(&doc)) {
                            (Ok(a), Ok(b)) => assert_eq!(a, b, "{doc}"),
                            (Err(_), Err(_)) => {}
                            (a, b) => panic!("{doc}: from_fields {a:?}, from_json {b:?}"),
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, ints.len() * 5 * 3 * 3 * texts.len());
}
