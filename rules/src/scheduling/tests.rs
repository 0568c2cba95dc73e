use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn t(s: &str) -> NaiveTime {
    parse_time(s).unwrap()
}

fn utc(s: &str) -> Instant {
    parse_instant(s).unwrap()
}

fn schedule(tz: &str, weekly: &[(u32, &str, &str)]) -> Schedule {
    Schedule {
        tz: tz.parse().unwrap(),
        weekly: weekly
            .iter()
            .map(|(d, s, e)| WeeklyHours { weekday: *d, start: t(s), end: t(e), valid_from: None, valid_until: None })
            .collect(),
        exceptions: vec![],
        slot_minutes: 30,
        align_minutes: 30,
        buffer_before_minutes: 0,
        buffer_after_minutes: 0,
        min_notice_minutes: 0,
        booking_horizon_days: 730,
        accepting_patients: true,
        active: true,
    }
}

/// Slots of one local date, as local wall-clock strings with their UTC offsets.
fn local_slots(s: &Schedule, date: &str) -> Vec<String> {
    let d = parse_date(date).unwrap();
    let from = s.tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).earliest().unwrap().with_timezone(&Utc);
    let to = s.tz.from_local_datetime(&(d + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap()).earliest().unwrap().with_timezone(&Utc);
    let now = from - Duration::days(1);
    available_slots(s, &[], now, Period::new(from, to))
        .unwrap()
        .iter()
        .map(|p| p.start.with_timezone(&s.tz).format("%H:%M%:z").to_string())
        .collect()
}

fn assert_real_minutes(s: &Schedule, date: &str, expected_slots: usize) {
    let slots = local_slots(s, date);
    assert_eq!(slots.len(), expected_slots, "{date}: {slots:?}");
}

#[test]
fn weekly_hours_give_aligned_slots_in_the_practitioners_zone() {
    let s = schedule("Africa/Lagos", &[(1, "09:00", "12:00")]);
    assert_eq!(local_slots(&s, "2026-11-30"), ["09:00+01:00", "09:30+01:00", "10:00+01:00", "10:30+01:00", "11:00+01:00", "11:30+01:00"]);
    assert!(local_slots(&s, "2026-12-01").is_empty(), "Tuesday has no hours");
}

#[test]
fn nine_to_five_stays_nine_to_five_local_on_both_london_transition_days() {
    let s = schedule("Europe/London", &[(7, "09:00", "17:00")]);
    for date in ["2027-03-28", "2026-10-25"] {
        let slots = local_slots(&s, date);
        assert_eq!(slots.len(), 16, "{date}");
        assert!(slots[0].starts_with("09:00"), "{date}: {slots:?}");
        assert!(slots[15].starts_with("16:30"), "{date}: {slots:?}");
    }
}

#[test]
fn london_spring_forward_gap_yields_no_slot() {
    // 2027-03-28: 01:00 GMT becomes 02:00 BST; 01:00–01:59 local does not exist.
    let s = schedule("Europe/London", &[(7, "00:00", "04:00")]);
    assert_eq!(local_slots(&s, "2027-03-28"), ["00:00+00:00", "00:30+00:00", "02:00+01:00", "02:30+01:00", "03:00+01:00", "03:30+01:00"]);
}

#[test]
fn london_fall_back_hour_is_neither_lost_nor_doubled() {
    // 2026-10-25: 02:00 BST becomes 01:00 GMT; 01:00–01:59 happens twice.
    let s = schedule("Europe/London", &[(7, "00:00", "03:00")]);
    assert_eq!(
        local_slots(&s, "2026-10-25"),
        ["00:00+01:00", "00:30+01:00", "01:00+01:00", "01:30+01:00", "01:00+00:00", "01:30+00:00", "02:00+00:00", "02:30+00:00"]
    );
}

#[test]
fn new_york_spring_forward_and_fall_back() {
    let s = schedule("America/New_York", &[(7, "01:00", "04:00")]);
    // 2027-03-14: 02:00 EST becomes 03:00 EDT.
    assert_eq!(local_slots(&s, "2027-03-14"), ["01:00-05:00", "01:30-05:00", "03:00-04:00", "03:30-04:00"]);
    // 2026-11-01: 02:00 EDT becomes 01:00 EST.
    assert_eq!(
        local_slots(&s, "2026-11-01"),
        ["01:00-04:00", "01:30-04:00", "01:00-05:00", "01:30-05:00", "02:00-05:00", "02:30-05:00", "03:00-05:00", "03:30-05:00"]
    );
    let nine_to_five = schedule("America/New_York", &[(7, "09:00", "17:00")]);
    assert_real_minutes(&nine_to_five, "2027-03-14", 16);
    assert_real_minutes(&nine_to_five, "2026-11-01", 16);
}

#[test]
fn lagos_practitioner_seen_by_a_los_angeles_patient() {
    // Monday 09:00 in Lagos (UTC+1) is Monday 00:00 in Los Angeles (UTC-8 in November).
    let s = schedule("Africa/Lagos", &[(1, "09:00", "10:00")]);
    let la: Tz = "America/Los_Angeles".parse().unwrap();
    let la_day = |d: u32| la.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap().with_timezone(&Utc);
    let now = utc("2026-11-01T00:00:00Z");
    let sunday_in_la = available_slots(&s, &[], now, Period::new(la_day(29), la_day(30))).unwrap();
    assert!(sunday_in_la.is_empty(), "nothing on the patient's Sunday");
    let monday_in_la = available_slots(&s, &[], now, Period::new(la_day(30), la_day(30) + Duration::days(1))).unwrap();
    let seen: Vec<String> = monday_in_la.iter().map(|p| p.start.with_timezone(&la).format("%a %H:%M").to_string()).collect();
    assert_eq!(seen, ["Mon 00:00", "Mon 00:30"]);
    assert_eq!(monday_in_la[0].start, utc("2026-11-30T08:00:00Z"));
}

#[test]
fn exceptions_remove_and_add_hours() {
    let mut s = schedule("Africa/Lagos", &[(1, "09:00", "12:00")]);
    s.exceptions = vec![
        DateException { date: parse_date("2026-11-30").unwrap(), kind: ExceptionKind::TimeOff, times: Some((t("10:00"), t("11:00"))) },
        DateException { date: parse_date("2026-12-07").unwrap(), kind: ExceptionKind::TimeOff, times: None },
        DateException { date: parse_date("2026-12-05").unwrap(), kind: ExceptionKind::ExtraHours, times: Some((t("08:00"), t("09:00"))) },
    ];
    assert_eq!(local_slots(&s, "2026-11-30"), ["09:00+01:00", "09:30+01:00", "11:00+01:00", "11:30+01:00"]);
    assert!(local_slots(&s, "2026-12-07").is_empty());
    assert_eq!(local_slots(&s, "2026-12-05"), ["08:00+01:00", "08:30+01:00"], "extra hours on a Saturday");
}

#[test]
fn every_conflict_reason() {
    let mut s = schedule("Africa/Lagos", &[(1, "09:00", "12:00")]);
    s.buffer_after_minutes = 15;
    s.min_notice_minutes = 120;
    s.booking_horizon_days = 30;
    s.exceptions = vec![DateException { date: parse_date("2026-12-07").unwrap(), kind: ExceptionKind::TimeOff, times: None }];
    let now = utc("2026-11-30T07:00:00Z"); // 08:00 in Lagos
    let slot = |start: &str, mins: i64| Period::new(utc(start), utc(start) + Duration::minutes(mins));
    let busy = [slot("2026-11-30T10:00:00Z", 30)]; // 11:00–11:30 Lagos
    let check = |p: Period, patient: &[Period]| booking_conflicts(&s, &busy, Some(patient), now, p);

    assert_eq!(check(slot("2026-11-30T09:00:00Z", 30), &[]), []); // 10:00 Lagos: fine
    assert_eq!(check(slot("2026-11-30T09:10:00Z", 30), &[]), [Conflict::InvalidPeriod], "misaligned");
    assert_eq!(check(slot("2026-11-30T09:00:00Z", 45), &[]), [Conflict::InvalidPeriod], "wrong length");
    assert_eq!(check(Period::new(utc("2026-11-30T09:00:00Z"), utc("2026-11-30T09:00:00Z")), &[]), [Conflict::InvalidPeriod]);
    assert_eq!(check(slot("2026-11-30T12:00:00Z", 30), &[]), [Conflict::OutsideHours], "13:00 Lagos");
    assert_eq!(check(slot("2026-12-07T09:00:00Z", 30), &[]), [Conflict::TimeOff]);
    assert_eq!(check(slot("2026-11-30T08:00:00Z", 30), &[]), [Conflict::TooSoon], "09:00 Lagos is one hour away");
    assert_eq!(check(slot("2027-01-04T09:00:00Z", 30), &[]), [Conflict::TooFar]);
    assert_eq!(check(slot("2026-11-30T10:00:00Z", 30), &[]), [Conflict::PractitionerBusy]);
    assert_eq!(check(slot("2026-11-30T10:30:00Z", 30), &[]), [Conflict::Buffer], "starts right after, inside the 15-minute buffer");
    assert_eq!(check(slot("2026-11-30T09:30:00Z", 30), &[]), [Conflict::Buffer], "ends right before");
    assert_eq!(check(slot("2026-11-30T09:00:00Z", 30), &[slot("2026-11-30T09:15:00Z", 30)]), [Conflict::PatientBusy]);
    assert_eq!(
        check(slot("2026-11-30T06:00:00Z", 30), &[]),
        [Conflict::OutsideHours, Conflict::TooSoon],
        "every reason is reported, not only the first"
    );
}

#[test]
fn slots_skip_busy_time_and_its_buffer() {
    let mut s = schedule("Africa/Lagos", &[(1, "09:00", "12:00")]);
    s.buffer_after_minutes = 15;
    let busy = [Period::new(utc("2026-11-30T09:00:00Z"), utc("2026-11-30T09:30:00Z"))]; // 10:00–10:30
    let now = utc("2026-11-01T00:00:00Z");
    let slots = available_slots(&s, &busy, now, Period::new(utc("2026-11-30T00:00:00Z"), utc("2026-12-01T00:00:00Z"))).unwrap();
    let starts: Vec<String> = slots.iter().map(|p| p.start.with_timezone(&s.tz).format("%H:%M").to_string()).collect();
    assert_eq!(starts, ["09:00", "11:00", "11:30"]);
}

#[test]
fn window_limits() {
    let s = schedule("UTC", &[(1, "09:00", "10:00")]);
    let now = utc("2026-11-01T00:00:00Z");
    assert!(available_slots(&s, &[], now, Period::new(utc("2026-12-01T00:00:00Z"), utc("2026-11-01T00:00:00Z"))).is_err());
    assert!(available_slots(&s, &[], now, Period::new(utc("2026-01-01T00:00:00Z"), utc("2026-12-01T00:00:00Z"))).is_err());
}

#[test]
fn not_accepting_patients_has_its_own_reason_not_outside_hours() {
    let mut s = schedule("Africa/Lagos", &[(1, "09:00", "12:00")]);
    let now = utc("2026-11-01T00:00:00Z");
    let slot = Period::new(utc("2026-11-30T09:00:00Z"), utc("2026-11-30T09:30:00Z"));
    s.accepting_patients = false;
    assert_eq!(booking_conflicts(&s, &[], None, now, slot), [Conflict::NotAcceptingPatients]);
    let outside = Period::new(utc("2026-11-30T15:00:00Z"), utc("2026-11-30T15:30:00Z"));
    assert_eq!(booking_conflicts(&s, &[], None, now, outside), [Conflict::NotAcceptingPatients], "the only reason given");
    assert!(available_slots(&s, &[], now, Period::new(utc("2026-11-30T00:00:00Z"), utc("2026-12-01T00:00:00Z"))).unwrap().is_empty());
    s.active = false;
    assert_eq!(booking_conflicts(&s, &[], None, now, slot), [Conflict::PractitionerInactive]);
}

#[test]
fn patient_busy_is_only_answered_when_the_patients_calendar_is_consulted() {
    let s = schedule("Africa/Lagos", &[(1, "09:00", "12:00")]);
    let now = utc("2026-11-01T00:00:00Z");
    let slot = Period::new(utc("2026-11-30T09:00:00Z"), utc("2026-11-30T09:30:00Z"));
    let patient = [slot];
    assert_eq!(booking_conflicts(&s, &[], Some(&patient), now, slot), [Conflict::PatientBusy]);
    assert_eq!(booking_conflicts(&s, &[], None, now, slot), []);
    let query = |status: &str| {
        ConflictQuery::from_json(&json!({
            "schedule": {"time_zone": "Africa/Lagos", "slot_minutes": 30, "min_notice_minutes": 0,
                         "weekly": [{"weekday": 1, "start_time": "09:00", "end_time": "12:00"}]},
            "status": status,
            "practitioner_busy": [],
            "patient_busy": [{"start": "2026-11-30T09:00:00Z", "end": "2026-11-30T09:30:00Z"}],
            "now": "2026-11-01T00:00:00Z", "start": "2026-11-30T09:00:00Z", "end": "2026-11-30T09:30:00Z"
        }))
        .unwrap()
        .conflicts()
    };
    assert_eq!(query("booked"), [Conflict::PatientBusy]);
    assert_eq!(query("proposed"), [], "a proposal holds no time and learns nothing of the patient's calendar");
}

#[test]
fn conflicts_are_one_verdict_with_code_and_reasons() {
    let v = conflicts_verdict(vec![Conflict::OutsideHours, Conflict::TooSoon]).into_json();
    assert_eq!(
        v,
        json!({"ok": false, "sqlstate": "PT409", "message": "the appointment cannot be booked: outside_hours, too_soon",
               "detail": {"code": "booking_conflict", "reasons": ["outside_hours", "too_soon"]},
               "hint": "Pick a slot from available_slots()."})
    );
    assert!(conflicts_verdict(vec![]).is_ok());
    for c in Conflict::ALL {
        assert_eq!(Conflict::parse(c.code()), Some(c));
    }
}

#[test]
fn settings_have_one_set_of_bounds() {
    assert_eq!(setting("slot_alignment_minutes").unwrap(), SLOT_ALIGNMENT_MINUTES);
    assert!(setting("align_minutes").is_err());
    assert!(SLOT_ALIGNMENT_MINUTES.admits(5) && SLOT_ALIGNMENT_MINUTES.admits(240));
    assert!(!SLOT_ALIGNMENT_MINUTES.admits(4) && !SLOT_ALIGNMENT_MINUTES.admits(241));
    let with = |k: &str, v: i64| {
        let mut j = json!({"time_zone": "UTC", "slot_minutes": 30});
        j[k] = json!(v);
        Schedule::from_json(&j)
    };
    for s in SETTINGS {
        assert!(with(s.name, s.min).is_ok(), "{} accepts its minimum", s.name);
        assert!(with(s.name, s.max).is_ok(), "{} accepts its maximum", s.name);
        assert!(with(s.name, s.min - 1).is_err(), "{} refuses below", s.name);
        assert!(with(s.name, s.max + 1).is_err(), "{} refuses above", s.name);
        if let Some(d) = s.default {
            assert!(s.admits(d), "{}'s default is within its bounds", s.name);
        }
    }
    let defaults = Schedule::from_json(&json!({"time_zone": "UTC", "slot_minutes": 20})).unwrap();
    assert_eq!(
        (defaults.align_minutes, defaults.min_notice_minutes, defaults.booking_horizon_days, defaults.accepting_patients),
        (20, 60, 60, true)
    );
    assert_eq!(limits_json()["settings"]["slot_alignment_minutes"], json!({"min": 5, "max": 240, "default": null}));
}

#[test]
fn busy_window_covers_the_largest_buffer() {
    assert!(BUSY_WINDOW_MINUTES >= BUFFER_BEFORE_MINUTES.max.max(BUFFER_AFTER_MINUTES.max) + SLOT_MINUTES.max);
}

#[test]
fn time_zones_are_exactly_those_the_rules_can_read() {
    for ok in ["UTC", "Africa/Lagos", "America/Argentina/Buenos_Aires", "Etc/GMT+1", "America/Port-au-Prince", "US/Pacific"] {
        assert!(is_valid_time_zone(ok), "{ok}");
    }
    for bad in ["posix/Africa/Lagos", "right/UTC", "WAT", "EST5EDT", "UTC+1", "GMT", "africa/lagos", "Africa/Lagos/", "/Africa/Lagos",
                "Mars/Base", "Africa//Lagos", "", "Africa/Lagos\0", "../Africa/Lagos"] {
        assert!(!is_valid_time_zone(bad), "{bad:?}");
    }
    let posix = Schedule::from_json(&json!({"time_zone": "posix/Africa/Lagos", "slot_minutes": 30}));
    assert!(posix.is_err(), "the schedule reads the same zones");
}

#[test]
fn schedule_json_errors_name_the_field() {
    let err = |v: Value| match Schedule::from_json(&v) {
        Err(InputError::Invalid { field, .. }) => field,
        Ok(_) => panic!("accepted {v}"),
    };
    assert_eq!(err(json!({"slot_minutes": 30})), "schedule.time_zone");
    assert_eq!(err(json!({"time_zone": "Mars/Base", "slot_minutes": 30})), "schedule.time_zone");
    assert_eq!(err(json!({"time_zone": "UTC"})), "schedule.slot_minutes");
    assert_eq!(err(json!({"time_zone": "UTC", "slot_minutes": 30, "weekly": [{"weekday": 8, "start_time": "09:00", "end_time": "10:00"}]})), "schedule.weekly[0].weekday");
    assert_eq!(err(json!({"time_zone": "UTC", "slot_minutes": 30, "weekly": [{"weekday": 1, "start_time": "10:00", "end_time": "09:00"}]})), "schedule.weekly[0].end_time");
    assert_eq!(err(json!({"time_zone": "UTC", "slot_minutes": 30, "exceptions": [{"on_date": "2026-13-01", "kind": "time_off"}]})), "schedule.exceptions[0].on_date");
    let ok = Schedule::from_json(&json!({
        "time_zone": "Africa/Lagos", "slot_minutes": 20, "buffer_after_minutes": 5,
        "weekly": [{"weekday": 1, "start_time": "09:00:00", "end_time": "17:00:00", "valid_from": null, "valid_until": "2027-12-31"}],
        "exceptions": [{"on_date": "2026-12-25", "kind": "time_off", "start_time": null, "end_time": null}]
    }))
    .unwrap();
    assert_eq!((ok.align_minutes, ok.weekly.len(), ok.exceptions.len()), (20, 1, 1));
    assert_eq!(err(json!({"time_zone": "UTC", "slot_minutes": 30, "slot_alignment_minutes": 1})), "schedule.slot_alignment_minutes");
    assert_eq!(err(json!({"time_zone": "UTC", "slot_minutes": 30, "accepting_patients": "no"})), "schedule.accepting_patients");
}

// Properties -------------------------------------------------------------------------------------

const ZONES: [&str; 6] = ["Europe/London", "America/New_York", "Africa/Lagos", "America/Los_Angeles", "Australia/Lord_Howe", "Asia/Kolkata"];

fn arb_schedule() -> impl Strategy<Value = Schedule> {
    (
        0..ZONES.len(),
        prop::collection::vec((1u32..=7, 0u32..46, 1u32..24), 1..6),
        prop::sample::select(vec![10i64, 15, 20, 30, 45, 60]),
        prop::sample::select(vec![None, Some(5i64), Some(15), Some(30)]),
        0i64..30,
        0i64..30,
    )
        .prop_map(|(z, weekly, slot, align, before, after)| {
            let weekly = weekly
                .into_iter()
                .map(|(d, start_half_hours, len_half_hours)| {
                    let start = NaiveTime::from_hms_opt(0, 0, 0).unwrap() + Duration::minutes(i64::from(start_half_hours) * 30);
                    let end_min = (i64::from(start_half_hours + len_half_hours) * 30).min(23 * 60 + 59);
                    WeeklyHours { weekday: d, start, end: NaiveTime::from_hms_opt(0, 0, 0).unwrap() + Duration::minutes(end_min), valid_from: None, valid_until: None }
                })
                .filter(|w| w.start < w.end)
                .collect();
            Schedule {
                tz: ZONES[z].parse().unwrap(),
                weekly,
                exceptions: vec![],
                slot_minutes: slot,
                align_minutes: align.unwrap_or(slot),
                buffer_before_minutes: before,
                buffer_after_minutes: after,
                min_notice_minutes: 0,
                booking_horizon_days: 730,
                accepting_patients: true,
                active: true,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn returned_slots_never_overlap_and_every_one_is_bookable(
        s in arb_schedule(),
        // Windows around both 2026/27 transition seasons.
        start_day in prop::sample::select(vec![
            "2026-10-23T00:00:00Z", "2026-10-30T00:00:00Z", "2027-03-12T00:00:00Z", "2027-03-26T00:00:00Z", "2027-04-02T00:00:00Z",
        ]),
        busy_offsets in prop::collection::vec((0i64..(7 * 24 * 4), 1i64..8), 0..6),
    ) {
        let from = utc(start_day);
        let to = from + Duration::days(7);
        let busy: Vec<Period> = busy_offsets
            .iter()
            .map(|(q, len)| Period::new(from + Duration::minutes(q * 15), from + Duration::minutes(q * 15 + len * 15)))
            .collect();
        let now = from - Duration::days(1);
        let slots = available_slots(&s, &busy, now, Period::new(from, to)).unwrap();
        for pair in slots.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "overlap or disorder: {:?}", pair);
        }
        for slot in &slots {
            prop_assert!(from <= slot.start && slot.end <= to);
            prop_assert_eq!(slot.end - slot.start, Duration::minutes(s.slot_minutes));
            prop_assert!(s.tz.from_local_datetime(&slot.start.with_timezone(&s.tz).naive_local()).single().is_some()
                || s.tz.from_local_datetime(&slot.start.with_timezone(&s.tz).naive_local()).earliest().is_some());
            let conflicts = booking_conflicts(&s, &busy, None, now, *slot);
            prop_assert!(conflicts.is_empty(), "offered {:?} but booking says {:?}", slot, conflicts);
        }
    }
}
