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
        Err(TriageError::Invalid { field, .. }) => field,
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
    EsiInput { resources: 2, age_months: Some(40 * 12), heart_rate: Some(80), respiratory_rate: Some(16), spo2: Some(98), ..Default::default() }
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
    // (age in months, heart-rate limit, respiratory-rate limit)
    for (age, hr, rr) in [(1, 180, 50), (2, 180, 50), (3, 160, 40), (35, 160, 40), (36, 140, 30), (107, 140, 30), (108, 100, 20), (600, 100, 20)] {
        let at_limit = EsiInput { age_months: Some(age), heart_rate: Some(hr), respiratory_rate: Some(rr), ..base() };
        assert_eq!(esi(&at_limit).level, 3, "age {age} months at the limits is not danger");
        let fast_heart = EsiInput { heart_rate: Some(hr + 1), ..at_limit.clone() };
        assert_eq!(esi(&fast_heart).level, 2, "age {age} months heart rate {}", hr + 1);
        let fast_breathing = EsiInput { respiratory_rate: Some(rr + 1), ..at_limit };
        assert_eq!(esi(&fast_breathing).level, 2, "age {age} months respiratory rate {}", rr + 1);
    }
}

#[test]
fn esi_d_spo2_below_92_at_any_age() {
    assert_eq!(esi(&EsiInput { spo2: Some(91), ..base() }).level, 2);
    assert_eq!(esi(&EsiInput { spo2: Some(92), ..base() }).level, 3);
}

#[test]
fn esi_d_with_missing_vitals_says_what_was_not_assessed() {
    let r = esi(&EsiInput { heart_rate: None, spo2: None, ..base() });
    assert_eq!(r.level, 3);
    assert_eq!(r.not_assessed, ["spo2", "heart_rate"]);
}

#[test]
fn esi_from_json() {
    let i = EsiInput::from_json(&json!({"resources": ["labs", "ct", "iv_medication"], "age_years": 2.5, "heart_rate": 170, "respiratory_rate": 30, "spo2": 97})).unwrap();
    assert_eq!((i.resources, i.age_months), (3, Some(30)));
    assert_eq!(esi(&i).level, 2, "a toddler with heart rate 170 is in the danger zone");
    for (input, field) in [
        (json!({}), "esi.resources"),
        (json!({"expected_resources": 1, "resources": []}), "esi.resources"),
        (json!({"resources": ["labs", 3]}), "esi.resources[1]"),
        (json!({"resources": ["psychic"]}), "esi.resources[0]"),
        (json!({"expected_resources": -1}), "esi.expected_resources"),
        (json!({"expected_resources": 1, "pain_score": 11}), "esi.pain_score"),
        (json!({"expected_resources": 1, "age_years": -1}), "esi.age_years"),
        (json!({"expected_resources": 1, "age_years": 3, "age_months": 36}), "esi.age_years"),
        (json!({"expected_resources": 1, "heart_rate": 400}), "esi.heart_rate"),
        (json!({"expected_resources": 1, "high_risk": "yes"}), "esi.high_risk"),
        (json!({"expected_resources": 1, "mood": "bad"}), "esi.mood"),
    ] {
        match EsiInput::from_json(&input) {
            Err(TriageError::Invalid { field: f, .. }) => assert_eq!(f, field, "{input}"),
            Ok(i) => panic!("accepted {input}: {i:?}"),
        }
    }
}
