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

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::json::{invalid, Fields, InputError};

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
}

/// Why a booking cannot be made; the codes are part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conflict {
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
    pub fn code(self) -> &'static str {
        match self {
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

/// The longest window `available_slots` computes at once.
pub const MAX_WINDOW_DAYS: i64 = 62;

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
pub fn booking_conflicts(
    schedule: &Schedule,
    practitioner_busy: &[Period],
    patient_busy: &[Period],
    now: Instant,
    slot: Period,
) -> Vec<Conflict> {
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
    if patient_busy.iter().any(|b| b.overlaps(&slot)) {
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
    let slot_len = minutes(schedule.slot_minutes);
    let mut slots: Vec<Period> = Vec::new();
    let (first, last) = (schedule.local_date(window.start), schedule.local_date(window.end));
    for date in first.iter_days().take_while(|d| *d <= last) {
        for interval in schedule.intervals(date, true) {
            let mut t = schedule.align_up(interval.start.max(window.start));
            while t + slot_len <= interval.end.min(window.end) {
                let slot = Period::new(t, t + slot_len);
                let free = slots.last().is_none_or(|prev| prev.end <= slot.start);
                if free && booking_conflicts(schedule, practitioner_busy, &[], now, slot).is_empty() {
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
// FHIR R4 Appointment statuses

pub const APPOINTMENT_STATUSES: [&str; 10] = [
    "proposed", "pending", "booked", "arrived", "checked-in", "fulfilled", "cancelled", "noshow", "entered-in-error",
    "waitlist",
];

/// Statuses in which an appointment holds its time (exclusion constraints use the same list).
pub const ACTIVE_STATUSES: [&str; 5] = ["pending", "booked", "arrived", "checked-in", "fulfilled"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Patient,
    Practitioner,
    Admin,
}

impl Actor {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "patient" => Self::Patient,
            "practitioner" => Self::Practitioner,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("unknown appointment status {0:?}")]
    Unknown(String),
    #[error("an appointment cannot go from {from} to {to}")]
    NotAllowed { from: String, to: String },
    #[error("a {actor} may not move an appointment from {from} to {to}")]
    Forbidden { actor: &'static str, from: String, to: String },
}

/// The transition table (FHIR's typical flow, and the corrections it allows).
pub fn status_transition(from: &str, to: &str, actor: Actor) -> Result<(), StatusError> {
    for s in [from, to] {
        if !APPOINTMENT_STATUSES.contains(&s) {
            return Err(StatusError::Unknown(s.to_owned()));
        }
    }
    let allowed = matches!(
        (from, to),
        ("proposed", "pending" | "booked" | "waitlist" | "cancelled")
            | ("waitlist", "pending" | "booked" | "cancelled")
            | ("pending", "booked" | "cancelled")
            | ("booked", "arrived" | "checked-in" | "cancelled" | "noshow")
            | ("arrived", "checked-in" | "fulfilled" | "noshow" | "cancelled")
            | ("checked-in", "fulfilled")
    ) || (to == "entered-in-error" && from != "entered-in-error");
    if !allowed {
        return Err(StatusError::NotAllowed { from: from.to_owned(), to: to.to_owned() });
    }
    let permitted = match actor {
        Actor::Practitioner => true,
        Actor::Admin => matches!(to, "cancelled" | "entered-in-error"),
        // A patient cannot mark themselves arrived, seen or absent; they may cancel or accept.
        // Before the visit starts only.
        Actor::Patient => {
            (to == "cancelled" && matches!(from, "proposed" | "pending" | "booked" | "waitlist"))
                || (from == "proposed" && to == "booked")
        }
    };
    if permitted {
        Ok(())
    } else {
        let actor = match actor {
            Actor::Patient => "patient",
            Actor::Practitioner => "practitioner",
            Actor::Admin => "admin",
        };
        Err(StatusError::Forbidden { actor, from: from.to_owned(), to: to.to_owned() })
    }
}

/// FHIR invariants: start and end both or neither, required unless proposed / cancelled /
/// waitlist; a cancellation reason only when cancelled or noshow.
pub fn check_invariants(status: &str, period: Option<Period>, cancellation_reason: Option<&str>) -> Result<(), String> {
    if period.is_none() && !matches!(status, "proposed" | "cancelled" | "waitlist") {
        return Err(format!("a {status} appointment needs a start and an end"));
    }
    if cancellation_reason.is_some() && !matches!(status, "cancelled" | "noshow") {
        return Err("a cancellation reason is only for a cancelled or no-show appointment".to_owned());
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// JSON

pub const SCHEDULE_FIELDS: &[&str] = &[
    "time_zone", "weekly", "exceptions", "slot_minutes", "align_minutes", "buffer_before_minutes",
    "buffer_after_minutes", "min_notice_minutes", "booking_horizon_days",
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
    /// align_minutes, buffer_before_minutes, buffer_after_minutes, min_notice_minutes,
    /// booking_horizon_days}` — the shape of the practitioners / availability tables.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let f = Fields::new("schedule", value, SCHEDULE_FIELDS)?;
        let tz = f
            .parsed("time_zone", "an IANA time zone such as \"Africa/Lagos\"", |s| s.parse::<Tz>().ok())?
            .ok_or_else(|| invalid("schedule.time_zone", "required"))?;
        let slot_minutes = f.whole("slot_minutes", 5, 480)?.ok_or_else(|| invalid("schedule.slot_minutes", "required"))?;
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
                .parsed("kind", "\"time_off\" or \"extra_hours\"", |s| match s {
                    "time_off" => Some(ExceptionKind::TimeOff),
                    "extra_hours" => Some(ExceptionKind::ExtraHours),
                    _ => None,
                })?
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
        let align_minutes = f.whole("align_minutes", 1, 1440)?.unwrap_or(slot_minutes);
        Ok(Schedule {
            tz,
            weekly,
            exceptions,
            slot_minutes,
            align_minutes,
            buffer_before_minutes: f.whole("buffer_before_minutes", 0, 240)?.unwrap_or(0),
            buffer_after_minutes: f.whole("buffer_after_minutes", 0, 240)?.unwrap_or(0),
            min_notice_minutes: f.whole("min_notice_minutes", 0, 43_200)?.unwrap_or(0),
            booking_horizon_days: f.whole("booking_horizon_days", 1, 730)?.unwrap_or(60),
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

#[cfg(test)]
mod tests;
