use super::*;
use chrono::{NaiveTime, Timelike};
use proptest::prelude::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

const BACKOFF: Backoff = Backoff { base_ms: 1_000, max_ms: 60_000, max_attempts: 5 };

#[test]
fn twilio_invalid_number_and_sendgrid_400_are_permanent() {
    assert_eq!(classify(Some(400), Some(21211)), Disposition::Permanent);
    assert_eq!(classify(Some(400), None), Disposition::Permanent);
    assert_eq!(classify(Some(413), None), Disposition::Permanent);
}

#[test]
fn timeouts_5xx_429_and_our_credentials_are_transient() {
    assert_eq!(classify(None, None), Disposition::Transient);
    assert_eq!(classify(Some(500), None), Disposition::Transient);
    assert_eq!(classify(Some(503), None), Disposition::Transient);
    assert_eq!(classify(Some(429), Some(20429)), Disposition::Transient);
    assert_eq!(classify(Some(401), Some(20003)), Disposition::Transient);
    assert_eq!(classify(Some(202), None), Disposition::Sent);
    assert_eq!(classify(Some(201), None), Disposition::Sent);
}

#[test]
fn backoff_doubles_to_the_cap_within_jitter_bounds() {
    assert_eq!(BACKOFF.delay_ms(1, 1000), 1_000);
    assert_eq!(BACKOFF.delay_ms(1, 0), 500);
    assert_eq!(BACKOFF.delay_ms(2, 1000), 2_000);
    assert_eq!(BACKOFF.delay_ms(3, 1000), 4_000);
    assert_eq!(BACKOFF.delay_ms(30, 1000), 60_000);
    assert_eq!(BACKOFF.delay_ms(u32::MAX, 0), 30_000);
}

#[test]
fn retry_after_is_a_lower_bound_and_attempts_run_out() {
    assert_eq!(next_step(Disposition::Transient, 1, &BACKOFF, Some(7_000), 0), Step::RetryAfterMs(7_000));
    assert_eq!(next_step(Disposition::Transient, 1, &BACKOFF, Some(10), 1000), Step::RetryAfterMs(1_000));
    assert_eq!(next_step(Disposition::Transient, 1, &BACKOFF, Some(u64::MAX), 0), Step::RetryAfterMs(60_000));
    assert_eq!(next_step(Disposition::Transient, 5, &BACKOFF, None, 0), Step::Dead);
    assert_eq!(next_step(Disposition::Permanent, 1, &BACKOFF, None, 0), Step::Dead);
    assert_eq!(next_step(Disposition::Sent, 5, &BACKOFF, None, 0), Step::Sent);
}

proptest! {
    #[test]
    fn delay_stays_within_half_and_full(attempt in 1u32..80, jitter in 0u16..=1000) {
        let exp = (attempt - 1).min(40);
        let full = BACKOFF.base_ms.saturating_mul(1 << exp).min(BACKOFF.max_ms);
        let d = BACKOFF.delay_ms(attempt, jitter);
        prop_assert!(d >= full / 2 && d <= full);
    }

    #[test]
    fn quiet_hours_end_is_later_and_outside_them(
        minutes in 0i64..(60 * 24 * 400), start_h in 0u32..24, end_h in 0u32..24, tz_i in 0usize..4,
    ) {
        let tz = [chrono_tz::Africa::Lagos, chrono_tz::Europe::London, chrono_tz::America::New_York, chrono_tz::Australia::Lord_Howe][tz_i];
        let now = at("2026-01-01T00:00:00Z") + Duration::minutes(minutes);
        let quiet = QuietHours { start: hm(start_h, 0), end: hm(end_h, 0) };
        match quiet_until(now, tz, Some(quiet), false) {
            None => prop_assert!(!quiet.contains(now.with_timezone(&tz).time())),
            Some(until) => {
                prop_assert!(until > now);
                prop_assert!(until - now <= Duration::hours(26));
                prop_assert!(!quiet.contains(until.with_timezone(&tz).time()));
            }
        }
        prop_assert_eq!(quiet_until(now, tz, Some(quiet), true), None);
    }

    #[test]
    fn reminder_due_only_before_the_start(offset_now in -3000i64..3000) {
        let start = at("2026-03-10T12:00:00Z");
        let now = start + Duration::minutes(offset_now);
        let due = due_reminder(start, now, &[1440, 60]);
        if !(-1440..0).contains(&offset_now) {
            prop_assert_eq!(due, None);
        } else if offset_now >= -60 {
            prop_assert_eq!(due, Some(60));
        } else {
            prop_assert_eq!(due, Some(1440));
        }
    }
}

#[test]
fn quiet_hours_wrapping_midnight_end_the_next_morning_in_the_recipients_zone() {
    let quiet = Some(QuietHours { start: hm(22, 0), end: hm(7, 0) });
    // 23:30 in Lagos (UTC+1) is 22:30 UTC: waits until 07:00 Lagos, 06:00 UTC.
    let until = quiet_until(at("2026-05-01T22:30:00Z"), chrono_tz::Africa::Lagos, quiet, false).unwrap();
    assert_eq!(until, at("2026-05-02T06:00:00Z"));
    // 03:00 Lagos: the same morning.
    let until = quiet_until(at("2026-05-02T02:00:00Z"), chrono_tz::Africa::Lagos, quiet, false).unwrap();
    assert_eq!(until, at("2026-05-02T06:00:00Z"));
    // 12:00 Lagos: no wait, and emergencies never wait.
    assert_eq!(quiet_until(at("2026-05-02T11:00:00Z"), chrono_tz::Africa::Lagos, quiet, false), None);
    assert_eq!(quiet_until(at("2026-05-01T22:30:00Z"), chrono_tz::Africa::Lagos, quiet, true), None);
    assert_eq!(quiet_until(at("2026-05-01T22:30:00Z"), chrono_tz::Africa::Lagos, None, false), None);
}

#[test]
fn quiet_hours_ending_in_a_skipped_hour_end_at_the_first_real_minute() {
    // New York springs forward 2026-03-08 02:00 → 03:00; quiet hours ending 02:30 end at 03:00 EDT.
    let quiet = Some(QuietHours { start: hm(1, 0), end: hm(2, 30) });
    let until = quiet_until(at("2026-03-08T06:30:00Z"), chrono_tz::America::New_York, quiet, false).unwrap();
    assert_eq!(until, at("2026-03-08T07:00:00Z"));
    assert_eq!(until.with_timezone(&chrono_tz::America::New_York).hour(), 3);
}

#[test]
fn a_late_booking_gets_only_the_nearest_reminder() {
    let start = at("2026-03-10T12:00:00Z");
    assert_eq!(due_reminder(start, start - Duration::minutes(30), &[1440, 60]), Some(60));
    assert_eq!(due_reminder(start, start - Duration::hours(23), &[1440, 60]), Some(1440));
    assert_eq!(due_reminder(start, start - Duration::hours(25), &[1440, 60]), None);
    assert_eq!(due_reminder(start, start, &[1440, 60]), None);
}

#[test]
fn replies_are_read_as_people_type_them() {
    assert_eq!(parse_command(" c "), SmsCommand::Confirm);
    assert_eq!(parse_command("x."), SmsCommand::Cancel);
    assert_eq!(parse_command("Stop"), SmsCommand::Stop);
    // CANCEL is Twilio's opt-out keyword: it stops texts, it never cancels an appointment.
    assert_eq!(parse_command("cancel"), SmsCommand::Stop);
    assert_eq!(parse_command("START"), SmsCommand::Start);
    assert_eq!(parse_command("help"), SmsCommand::Help);
    assert_eq!(parse_command("see you then"), SmsCommand::Unknown);
}

#[test]
fn callbacks_only_move_a_message_forward() {
    use DeliveryStatus::*;
    assert_eq!(Sent.after_callback(Delivered), Some(Delivered));
    assert_eq!(Sending.after_callback(Delivered), Some(Delivered));
    assert_eq!(Sent.after_callback(Failed), Some(Failed));
    assert_eq!(Dead.after_callback(Delivered), Some(Delivered));
    assert_eq!(Delivered.after_callback(Failed), None);
    assert_eq!(Failed.after_callback(Delivered), None);
    assert_eq!(Sent.after_callback(Sent), None);
    assert_eq!(Skipped.after_callback(Delivered), None);
    for s in DeliveryStatus::ALL {
        assert_eq!(DeliveryStatus::parse(s.code()), Some(s));
    }
}

#[test]
fn provider_reports_map_to_delivery_statuses() {
    assert_eq!(twilio_report("delivered"), Some(DeliveryStatus::Delivered));
    assert_eq!(twilio_report("undelivered"), Some(DeliveryStatus::Failed));
    assert_eq!(twilio_report("sent"), None);
    assert_eq!(sendgrid_event("bounce"), (Some(DeliveryStatus::Failed), true));
    assert_eq!(sendgrid_event("spamreport"), (None, true));
    assert_eq!(sendgrid_event("open"), (None, false));
}

#[test]
fn unknown_outcomes_resend_email_and_emergencies_and_hold_other_sms() {
    assert_eq!(on_unknown_outcome(Channel::Email, false), UnknownOutcome::Resend);
    assert_eq!(on_unknown_outcome(Channel::Sms, true), UnknownOutcome::Resend);
    assert_eq!(on_unknown_outcome(Channel::Sms, false), UnknownOutcome::Hold);
    assert!(is_urgent("emergency_high_risk"));
    assert!(!is_urgent("appointment_reminder"));
}

#[test]
fn masked_recipients_reach_no_one() {
    assert_eq!(mask_recipient("+2348031234567"), "+234********67");
    assert_eq!(mask_recipient("ada@example.com"), "a***@example.com");
    assert_eq!(mask_recipient("+1234"), "*****");
}
