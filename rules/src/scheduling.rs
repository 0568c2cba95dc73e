//! Scheduling: availability, slots and booking conflicts, in the practitioner's time zone.
//!
//! Working hours are wall-clock times in the practitioner's IANA zone, resolved to instants
//! date by date, so 09:00–17:00 stays 09:00–17:00 local on the days the clocks change. Around a
//! transition:
//! - spring forward: local times in the gap do not exist; no slot starts there. A working
//!   interval whose bound falls in the gap starts or ends where the gap ends.
//! - fall back: the repeated hour happens twice in real time and both are offered, each once
//!   (its slots are distinct instants); an interval bound in the repeated hour resolves to its
//!   first occurrence for a start and its second for an end, so no working time is lost.
//!
//! Slot starts are aligned to `align_minutes` past local midnight (default: the slot length).
//! Buffers are minimum gaps: a slot must start at least `max(buffer_before, buffer_after)`
//! after an earlier appointment ends, and end that long before a later one starts.
//! Availability is computed by generating candidate slots and keeping exactly those that
//! [`booking_conflicts`] accepts, so every offered slot is bookable.
//!
//! [`appointment`] holds the appointment life cycle (FHIR statuses, who may move what) and
//! [`booking`] who may book for whom, and how.

pub mod appointment;
pub mod booking;
pub mod consultation;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use crate::json::{invalid, Fields, InputError};
use crate::verdict::{Refusal, Verdict};

pub type Instant = DateTime<Utc>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub start: Instant,
    pub end: Instant,
}

impl Period {
    pub fn new(start: Instant, end: Instant) -> Self {
        Period { start, end }
    }
    pub fn overlaps(&self, other: &Period) -> bool {
        self.start < other.end && other.start < self.end
    }
    pub fn contains(&self, other: &Period) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyHours {
    /// ISO 8601 weekday: 1 = Monday … 7 = Sunday.
    pub weekday: u32,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    TimeOff,
    ExtraHours,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateException {
    pub date: NaiveDate,
    pub kind: ExceptionKind,
    /// `None`: the whole day (time off only).
    pub times: Option<(NaiveTime, NaiveTime)>,
}

impl ExceptionKind {
    /// The values of `availability_exceptions.kind`.
    pub const ALL: [ExceptionKind; 2] = [ExceptionKind::TimeOff, ExceptionKind::ExtraHours];

    pub fn code(self) -> &'static str {
        match self {
            ExceptionKind::TimeOff => "time_off",
            ExceptionKind::ExtraHours => "extra_hours",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub tz: Tz,
    pub weekly: Vec<WeeklyHours>,
    pub exceptions: Vec<DateException>,
    pub slot_minutes: i64,
    pub align_minutes: i64,
    pub buffer_before_minutes: i64,
    pub buffer_after_minutes: i64,
    pub min_notice_minutes: i64,
    pub booking_horizon_days: i64,
    /// The practitioner takes new bookings (and moves of existing ones).
    pub accepting_patients: bool,
    /// The practitioner currently holds their role (revoking it makes them inactive).
    pub active: bool,
}

// ------------------------------------------------------------------------------------------------
// Settings

/// A scheduling setting a practitioner chooses (a column of `public.practitioners`), with its
/// inclusive bounds and default. The table's check constraints and defaults call
/// `careplane.is_valid_schedule_setting` / `careplane.schedule_setting_default`, so these are the
/// only bounds: what the table stores, the rules accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
    /// `None`: no default (required, or derived: the alignment defaults to the slot length).
    pub default: Option<i64>,
}

impl Setting {
    pub fn admits(&self, value: i64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    fn read(&self, f: &Fields<'_>) -> Result<Option<i64>, InputError> {
        f.whole(self.name, self.min, self.max)
    }
}

pub const SLOT_MINUTES: Setting = Setting { name: "slot_minutes", min: 5, max: 480, default: Some(30) };
/// Slot starts fall on multiples of this many minutes past local midnight (default: the slot
/// length). At most four hours: a coarser grid would leave most working days without a slot.
pub const SLOT_ALIGNMENT_MINUTES: Setting = Setting { name: "slot_alignment_minutes", min: 5, max: 240, default: None };
pub const BUFFER_BEFORE_MINUTES: Setting = Setting { name: "buffer_before_minutes", min: 0, max: 240, default: Some(0) };
pub const BUFFER_AFTER_MINUTES: Setting = Setting { name: "buffer_after_minutes", min: 0, max: 240, default: Some(0) };
pub const MIN_NOTICE_MINUTES: Setting = Setting { name: "min_notice_minutes", min: 0, max: 43_200, default: Some(60) };
pub const BOOKING_HORIZON_DAYS: Setting = Setting { name: "booking_horizon_days", min: 1, max: 730, default: Some(60) };

pub const SETTINGS: [Setting; 6] =
    [SLOT_MINUTES, SLOT_ALIGNMENT_MINUTES, BUFFER_BEFORE_MINUTES, BUFFER_AFTER_MINUTES, MIN_NOTICE_MINUTES, BOOKING_HORIZON_DAYS];

pub fn setting(name: &str) -> Result<Setting, InputError> {
    SETTINGS.into_iter().find(|s| s.name == name).ok_or_else(|| {
        invalid("setting", format!("unknown scheduling setting {name:?}; expected one of {}", setting_names()))
    })
}

fn setting_names() -> String {
    SETTINGS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// How far either side of a requested slot (or an `available_slots` window) the RPCs read busy
/// time: the largest buffer plus the longest slot (12 hours). Only busy time within a buffer of
/// the slot (or of the window, whose slots lie inside it) can stand in the way, so anything
/// further out is never read — it was a whole day, twice what a booking in a full calendar
/// needs to read. A test holds it to at least the largest buffer plus the longest slot.
pub const BUSY_WINDOW_MINUTES: i64 = max_setting(BUFFER_BEFORE_MINUTES, BUFFER_AFTER_MINUTES) + SLOT_MINUTES.max;

const fn max_setting(a: Setting, b: Setting) -> i64 {
    if a.max > b.max { a.max } else { b.max }
}

/// The longest window `available_slots` computes at once.
pub const MAX_WINDOW_DAYS: i64 = 62;

/// Every scheduling limit, by name: `{settings: {name: {min, max, default}}, busy_window_minutes,
/// max_window_days}` (the contract in docs/scheduling.md).
pub fn limits_json() -> Value {
    let settings: Map<String, Value> = SETTINGS
        .iter()
        .map(|s| (s.name.to_owned(), json!({ "min": s.min, "max": s.max, "default": s.default })))
        .collect();
    json!({ "settings": settings, "busy_window_minutes": BUSY_WINDOW_MINUTES, "max_window_days": MAX_WINDOW_DAYS })
}

/// An IANA time zone name the rules can compute with: `UTC`, or `Area/Location` (`Africa/Lagos`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+1`) known to chrono-tz. Not an abbreviation (`WAT`),
/// a POSIX rule (`EST5EDT`, `UTC+1`), or a path into the zone directory (`posix/Africa/Lagos`,
/// `right/UTC`) that Postgres would accept and the rules could not read.
pub fn is_valid_time_zone(name: &str) -> bool {
    let shaped = name == "UTC"
        || (name.contains('/')
            && !name.starts_with("posix/")
            && !name.starts_with("right/")
            && name.split('/').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
            })
            && name.split('/').next().is_some_and(|area| area.chars().all(|c| c.is_ascii_alphabetic())));
    shaped && name.parse::<Tz>().is_ok()
}

// ------------------------------------------------------------------------------------------------
// Conflicts

/// Why a booking cannot be made; the codes are part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conflict {
    PractitionerInactive,
    NotAcceptingPatients,
    InvalidPeriod,
    OutsideHours,
    TimeOff,
    TooSoon,
    TooFar,
    PractitionerBusy,
    Buffer,
    PatientBusy,
}

impl Conflict {
    pub const ALL: [Conflict; 10] = [
        Conflict::PractitionerInactive,
        Conflict::NotAcceptingPatients,
        Conflict::InvalidPeriod,
        Conflict::OutsideHours,
        Conflict::TimeOff,
        Conflict::TooSoon,
        Conflict::TooFar,
        Conflict::PractitionerBusy,
        Conflict::Buffer,
        Conflict::PatientBusy,
    ];

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Conflict::PractitionerInactive => "practitioner_inactive",
            Conflict::NotAcceptingPatients => "not_accepting_patients",
            Conflict::InvalidPeriod => "invalid_period",
            Conflict::OutsideHours => "outside_hours",
            Conflict::TimeOff => "time_off",
            Conflict::TooSoon => "too_soon",
            Conflict::TooFar => "too_far",
            Conflict::PractitionerBusy => "practitioner_busy",
            Conflict::Buffer => "buffer",
            Conflict::PatientBusy => "patient_busy",
        }
    }
}

/// The refusal of a booking (or a move) that conflicts: `PT409`, detail
/// `{"code": "booking_conflict", "reasons": [codes…]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl std::fmt::Display for Conflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes: Vec<&str> = self.0.iter().map(|c| c.code()).collect();
        write!(f, "the appointment cannot be booked: {}", codes.join(", "))
    }
}

impl Refusal for Conflicts {
    fn sqlstate(&self) -> &'static str {
        "PT409"
    }
    fn code(&self) -> &'static str {
        "booking_conflict"
    }
    fn detail(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("reasons".into(), json!(self.0.iter().map(|c| c.code()).collect::<Vec<_>>()));
        m
    }
    fn hint(&self) -> Option<&'static str> {
        if self.0.iter().all(|c| matches!(c, Conflict::PractitionerInactive | Conflict::NotAcceptingPatients)) {
            Some("The practitioner is not taking bookings; choose another practitioner.")
        } else {
            Some("Pick a slot from available_slots().")
        }
    }
}

/// The verdict on booking (or moving an appointment to) a slot: allowed, or [`Conflicts`].
pub fn conflicts_verdict(conflicts: Vec<Conflict>) -> Verdict {
    if conflicts.is_empty() {
        Verdict::allow()
    } else {
        Verdict::refuse(&Conflicts(conflicts))
    }
}

fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}

impl Schedule {
    /// Local working intervals of one date: weekly hours valid that day, minus time off, plus
    /// extra hours; sorted and merged. With `apply_time_off = false`, time off is ignored (to
    /// tell `time_off` from `outside_hours`).
    fn local_intervals(&self, date: NaiveDate, apply_time_off: bool) -> Vec<(NaiveTime, NaiveTime)> {
        let mut base: Vec<(NaiveTime, NaiveTime)> = self
            .weekly
            .iter()
            .filter(|w| w.weekday == date.weekday().number_from_monday())
            .filter(|w| w.valid_from.is_none_or(|f| f <= date) && w.valid_until.is_none_or(|u| date <= u))
            .map(|w| (w.start, w.end))
            .collect();
        for e in self.exceptions.iter().filter(|e| e.date == date) {
            match (e.kind, e.times) {
                (ExceptionKind::ExtraHours, Some(t)) => base.push(t),
                (ExceptionKind::ExtraHours, None) => {}
                (ExceptionKind::TimeOff, _) if !apply_time_off => {}
                (ExceptionKind::TimeOff, None) => base.clear(),
                (ExceptionKind::TimeOff, Some((off_s, off_e))) => {
                    base = base
                        .into_iter()
                        .flat_map(|(s, e)| {
                            let mut parts = Vec::new();
                            if s < off_s {
                                parts.push((s, e.min(off_s)));
                            }
                            if off_e < e {
                                parts.push((s.max(off_e), e));
                            }
                            if off_e <= s || e <= off_s {
                                parts = vec![(s, e)];
                            }
                            parts
                        })
                        .collect();
                }
            }
        }
        merge(base)
    }

    /// Working intervals of one local date as instants.
    fn intervals(&self, date: NaiveDate, apply_time_off: bool) -> Vec<Period> {
        self.local_intervals(date, apply_time_off)
            .into_iter()
            .map(|(s, e)| Period::new(self.resolve(date.and_time(s), true), self.resolve(date.and_time(e), false)))
            .filter(|p| p.start < p.end)
            .collect()
    }

    /// A local wall-clock time as an instant: the first occurrence of a repeated time for a
    /// start (`earliest`), the second for an end; a time in a gap becomes the end of the gap.
    fn resolve(&self, local: NaiveDateTime, earliest: bool) -> Instant {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => if earliest { a } else { b }.with_timezone(&Utc),
            LocalResult::None => {
                // Gaps are whole minutes long and at most a few hours.
                (1..=24 * 60)
                    .find_map(|m| self.tz.from_local_datetime(&(local + minutes(m))).earliest())
                    .expect("a time zone gap ends within a day")
                    .with_timezone(&Utc)
            }
        }
    }

    fn local_minute_of_day(&self, t: Instant) -> i64 {
        let l = t.with_timezone(&self.tz);
        i64::from(l.hour()) * 60 + i64::from(l.minute())
    }

    fn is_aligned(&self, t: Instant) -> bool {
        t.timestamp_subsec_nanos() == 0 && t.second() == 0 && self.local_minute_of_day(t) % self.align_minutes == 0
    }

    /// The first aligned instant at or after `t`.
    fn align_up(&self, t: Instant) -> Instant {
        let mut t = t;
        if t.second() != 0 || t.timestamp_subsec_nanos() != 0 {
            t = t.with_nanosecond(0).expect("zero nanoseconds") + Duration::seconds(60 - i64::from(t.second()));
        }
        // Each step lands on an aligned local minute unless a transition moves the clock under
        // us; a few steps always suffice.
        for _ in 0..8 {
            let rem = self.local_minute_of_day(t) % self.align_minutes;
            if rem == 0 {
                return t;
            }
            t += minutes(self.align_minutes - rem);
        }
        t
    }

    fn local_date(&self, t: Instant) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }
}

fn merge(mut v: Vec<(NaiveTime, NaiveTime)>) -> Vec<(NaiveTime, NaiveTime)> {
    v.retain(|(s, e)| s < e);
    v.sort();
    let mut out: Vec<(NaiveTime, NaiveTime)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Everything that stands in the way of booking `slot`; empty when it can be booked.
///
/// A practitioner who is inactive or not accepting patients takes nothing, and that is the only
/// reason given. `patient_busy` is `None` when the patient's calendar is not to be consulted
/// (see [`ConflictQuery`]): the answer then never says `patient_busy`.
pub fn booking_conflicts(
    schedule: &Schedule,
    practitioner_busy: &[Period],
    patient_busy: Option<&[Period]>,
    now: Instant,
    slot: Period,
) -> Vec<Conflict> {
    if !schedule.active {
        return vec![Conflict::PractitionerInactive];
    }
    if !schedule.accepting_patients {
        return vec![Conflict::NotAcceptingPatients];
    }
    if slot.end <= slot.start || slot.end - slot.start != minutes(schedule.slot_minutes) || !schedule.is_aligned(slot.start)
    {
        return vec![Conflict::InvalidPeriod];
    }
    let mut out = Vec::new();
    let date = schedule.local_date(slot.start);
    if !schedule.intervals(date, true).iter().any(|i| i.contains(&slot)) {
        if schedule.intervals(date, false).iter().any(|i| i.contains(&slot)) {
            out.push(Conflict::TimeOff);
        } else {
            out.push(Conflict::OutsideHours);
        }
    }
    if slot.start < now + minutes(schedule.min_notice_minutes) {
        out.push(Conflict::TooSoon);
    }
    if slot.start > now + Duration::days(schedule.booking_horizon_days) {
        out.push(Conflict::TooFar);
    }
    let gap = minutes(schedule.buffer_before_minutes.max(schedule.buffer_after_minutes));
    if practitioner_busy.iter().any(|b| b.overlaps(&slot)) {
        out.push(Conflict::PractitionerBusy);
    } else if practitioner_busy.iter().any(|b| b.overlaps(&Period::new(slot.start - gap, slot.end + gap))) {
        out.push(Conflict::Buffer);
    }
    if patient_busy.is_some_and(|busy| busy.iter().any(|b| b.overlaps(&slot))) {
        out.push(Conflict::PatientBusy);
    }
    out
}

/// Bookable slots that lie within `window`, in time order, none overlapping.
pub fn available_slots(
    schedule: &Schedule,
    practitioner_busy: &[Period],
    now: Instant,
    window: Period,
) -> Result<Vec<Period>, InputError> {
    if window.end <= window.start {
        return Err(invalid("to", "must be after from"));
    }
    if window.end - window.start > Duration::days(MAX_WINDOW_DAYS) {
        return Err(invalid("to", format!("the window is at most {MAX_WINDOW_DAYS} days")));
    }
    if !schedule.active || !schedule.accepting_patients {
        return Ok(Vec::new());
    }
    let slot_len = minutes(schedule.slot_minutes);
    let mut slots: Vec<Period> = Vec::new();
    let (first, last) = (schedule.local_date(window.start), schedule.local_date(window.end));
    for date in first.iter_days().take_while(|d| *d <= last) {
        for interval in schedule.intervals(date, true) {
            let mut t = schedule.align_up(interval.start.max(window.start));
            while t + slot_len <= interval.end.min(window.end) {
                let slot = Period::new(t, t + slot_len);
                let free = slots.last().is_none_or(|prev| prev.end <= slot.start);
                if free && booking_conflicts(schedule, practitioner_busy, None, now, slot).is_empty() {
                    slots.push(slot);
                    t = schedule.align_up(slot.end);
                } else {
                    t = schedule.align_up(t + minutes(1));
                }
            }
        }
    }
    Ok(slots)
}

// ------------------------------------------------------------------------------------------------
// JSON

pub const SCHEDULE_FIELDS: &[&str] = &[
    "time_zone", "weekly", "exceptions", "slot_minutes", "slot_alignment_minutes", "buffer_before_minutes",
    "buffer_after_minutes", "min_notice_minutes", "booking_horizon_days", "accepting_patients", "active",
];

fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S").or_else(|_| NaiveTime::parse_from_str(s, "%H:%M")).ok()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

pub fn parse_instant(s: &str) -> Option<Instant> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

impl Schedule {
    /// `{time_zone, weekly: [{weekday, start_time, end_time, valid_from, valid_until}],
    /// exceptions: [{on_date, kind: time_off|extra_hours, start_time, end_time}], slot_minutes,
    /// slot_alignment_minutes, buffer_before_minutes, buffer_after_minutes, min_notice_minutes,
    /// booking_horizon_days, accepting_patients, active}` — the shape of the practitioners /
    /// availability tables. Absent settings take their [`SETTINGS`] default; absent flags are true.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let f = Fields::new("schedule", value, SCHEDULE_FIELDS)?;
        let tz = f
            .parsed("time_zone", "an IANA time zone such as \"Africa/Lagos\"", |s| {
                is_valid_time_zone(s).then(|| s.parse::<Tz>().ok()).flatten()
            })?
            .ok_or_else(|| invalid("schedule.time_zone", "required"))?;
        let slot_minutes = SLOT_MINUTES.read(&f)?.ok_or_else(|| invalid("schedule.slot_minutes", "required"))?;
        let mut weekly = Vec::new();
        for (i, w) in f.array("weekly")?.iter().enumerate() {
            let w = Fields::new(format!("schedule.weekly[{i}]"), w, &["weekday", "start_time", "end_time", "valid_from", "valid_until", "id", "practitioner_id", "created_at"])?;
            let start = w.parsed("start_time", "a time HH:MM[:SS]", parse_time)?.ok_or_else(|| invalid(&w.name("start_time"), "required"))?;
            let end = w.parsed("end_time", "a time HH:MM[:SS]", parse_time)?.ok_or_else(|| invalid(&w.name("end_time"), "required"))?;
            if start >= end {
                return Err(invalid(&w.name("end_time"), "must be after start_time"));
            }
            weekly.push(WeeklyHours {
                weekday: w.whole("weekday", 1, 7)?.ok_or_else(|| invalid(&w.name("weekday"), "required"))? as u32,
                start,
                end,
                valid_from: w.parsed("valid_from", "a date YYYY-MM-DD", parse_date)?,
                valid_until: w.parsed("valid_until", "a date YYYY-MM-DD", parse_date)?,
            });
        }
        let mut exceptions = Vec::new();
        for (i, e) in f.array("exceptions")?.iter().enumerate() {
            let e = Fields::new(format!("schedule.exceptions[{i}]"), e, &["on_date", "kind", "start_time", "end_time", "id", "practitioner_id", "created_at"])?;
            let kind = e
                .parsed("kind", "\"time_off\" or \"extra_hours\"", ExceptionKind::parse)?
                .ok_or_else(|| invalid(&e.name("kind"), "required"))?;
            let times = match (e.parsed("start_time", "a time", parse_time)?, e.parsed("end_time", "a time", parse_time)?) {
                (Some(s), Some(t)) if s < t => Some((s, t)),
                (None, None) if kind == ExceptionKind::TimeOff => None,
                _ => return Err(invalid(&e.name("end_time"), "start_time and end_time: both (start before end), or neither for a whole day off")),
            };
            exceptions.push(DateException {
                date: e.parsed("on_date", "a date YYYY-MM-DD", parse_date)?.ok_or_else(|| invalid(&e.name("on_date"), "required"))?,
                kind,
                times,
            });
        }
        let with_default = |s: Setting| -> Result<i64, InputError> {
            Ok(s.read(&f)?.or(s.default).expect("every optional setting has a default"))
        };
        Ok(Schedule {
            tz,
            weekly,
            exceptions,
            slot_minutes,
            align_minutes: SLOT_ALIGNMENT_MINUTES.read(&f)?.unwrap_or(slot_minutes),
            buffer_before_minutes: with_default(BUFFER_BEFORE_MINUTES)?,
            buffer_after_minutes: with_default(BUFFER_AFTER_MINUTES)?,
            min_notice_minutes: with_default(MIN_NOTICE_MINUTES)?,
            booking_horizon_days: with_default(BOOKING_HORIZON_DAYS)?,
            accepting_patients: f.boolean("accepting_patients")?.unwrap_or(true),
            active: f.boolean("active")?.unwrap_or(true),
        })
    }
}

/// `[{"start": rfc3339, "end": rfc3339}, …]`
pub fn periods_from_json(field: &str, value: Option<&Value>) -> Result<Vec<Period>, InputError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = value.as_array().ok_or_else(|| invalid(field, "must be an array of {start, end}"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = Fields::new(format!("{field}[{i}]"), item, &["start", "end"])?;
            let start = p.parsed("start", "an RFC 3339 timestamp", parse_instant)?.ok_or_else(|| invalid(&p.name("start"), "required"))?;
            let end = p.parsed("end", "an RFC 3339 timestamp", parse_instant)?.ok_or_else(|| invalid(&p.name("end"), "required"))?;
            Ok(Period::new(start, end))
        })
        .collect()
}

pub fn period_json(p: &Period) -> Value {
    json!({ "slot_start": p.start.to_rfc3339(), "slot_end": p.end.to_rfc3339() })
}

pub const CONFLICT_QUERY_FIELDS: &[&str] = &["schedule", "status", "practitioner_busy", "patient_busy", "now", "start", "end"];

/// What `careplane.booking_conflicts` is asked: can `[start, end)` be booked into an appointment
/// that will have `status`?
///
/// The patient's calendar is consulted only when that status holds time
/// ([`appointment::holds_time`]): a proposal holds none, so proposing tells the practitioner
/// nothing about the patient's other appointments; the patient's acceptance (status `booked`)
/// is checked against it, and the patient may learn their own calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictQuery {
    pub schedule: Schedule,
    pub practitioner_busy: Vec<Period>,
    pub patient_busy: Option<Vec<Period>>,
    pub now: Instant,
    pub slot: Period,
}

impl ConflictQuery {
    /// `{schedule, status, practitioner_busy: [{start, end}], patient_busy, now, start, end}`.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let f = Fields::new("input", value, CONFLICT_QUERY_FIELDS)?;
        let status = f
            .parsed("status", "an appointment status", appointment::Status::parse)?
            .ok_or_else(|| invalid("input.status", "required"))?;
        let patient_busy = periods_from_json("input.patient_busy", f.get("patient_busy"))?;
        Ok(ConflictQuery {
            schedule: Schedule::from_json(f.require("schedule")?)?,
            practitioner_busy: periods_from_json("input.practitioner_busy", f.get("practitioner_busy"))?,
            patient_busy: appointment::holds_time(status).then_some(patient_busy),
            now: required_instant(&f, "now")?,
            slot: Period::new(required_instant(&f, "start")?, required_instant(&f, "end")?),
        })
    }

    pub fn conflicts(&self) -> Vec<Conflict> {
        booking_conflicts(&self.schedule, &self.practitioner_busy, self.patient_busy.as_deref(), self.now, self.slot)
    }
}

pub fn required_instant(f: &Fields<'_>, field: &str) -> Result<Instant, InputError> {
    f.parsed(field, "an RFC 3339 timestamp", parse_instant)?.ok_or_else(|| invalid(&f.name(field), "required"))
}

#[cfg(test)]
mod tests;
