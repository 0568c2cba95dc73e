//! Who may book for whom, and how: `careplane.plan_booking`.
//!
//! A patient books for themselves. Booking on someone else's behalf takes either the
//! `appointments.book_for_patients` permission (admins: booked straight away) or being the
//! calendar's practitioner, currently holding the role. A practitioner's booking is made
//! straight away only for a patient who has chosen them before (an appointment the patient
//! booked or accepted — [`super::appointment::establishes_relationship`]); for anyone else it is a
//! **proposal** (FHIR `proposed`): it holds no time, opens nothing of the patient's (no profile,
//! no conversation, no email), and becomes a booking when the patient accepts it.
//!
//! The answer never depends on facts the caller may not know: permission is decided before
//! anything about the patient (whether they exist, whom they have seen), so an unknown user id
//! and a stranger's id answer the same to someone without the permission.

use serde_json::{json, Map, Value};

use super::appointment::{Participation, Status};
use super::{parse_instant, Instant};
use crate::json::{invalid, Fields, InputError};
use crate::verdict::{Refusal, Verdict};

/// What the booking RPC has read (all of it, before any answer), for the rule to decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRequest {
    /// The request carries a user (`auth.uid()`).
    pub signed_in: bool,
    /// The patient is not the caller.
    pub on_behalf: bool,
    /// The caller holds `appointments.book_for_patients`. This, `owns_calendar` and
    /// `relationship` decide only a booking on someone's behalf: the booking RPC reads them only
    /// then, and passes `false` for a patient booking for themselves.
    pub may_book_for_patients: bool,
    /// The caller is this calendar's practitioner, active and currently holding the role.
    pub owns_calendar: bool,
    pub practitioner_found: bool,
    pub patient_found: bool,
    /// The patient is this calendar's practitioner.
    pub patient_is_practitioner: bool,
    /// The patient has chosen this practitioner before.
    pub relationship: bool,
    pub practitioner_id: String,
    pub patient_id: String,
    pub starts_at: Option<Instant>,
    /// The caller's earlier booking with the same idempotency key, if any.
    pub earlier: Option<Earlier>,
}

/// An earlier booking made by the same caller with the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Earlier {
    pub practitioner_id: String,
    pub patient_id: String,
    pub starts_at: Option<Instant>,
}

/// How the booking is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The same request again: answer the earlier booking.
    Replay,
    /// Booked now: holds time, opens the consultation and its conversation.
    Book,
    /// A proposal the patient accepts or declines.
    Propose,
}

impl Plan {
    pub fn json(self) -> Value {
        match self {
            Plan::Replay => json!({ "replay": true }),
            Plan::Book => json!({
                "replay": false, "status": Status::Booked.code(), "participation": Participation::Accepted.code(),
                "opens_consultation": true, "change": "booked",
            }),
            Plan::Propose => json!({
                "replay": false, "status": Status::Proposed.code(), "participation": Participation::NeedsAction.code(),
                "opens_consultation": false, "change": "proposed",
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    #[error("sign in to book a consultation")]
    SignInRequired,
    #[error("booking for another patient needs the appointments.book_for_patients permission, or your own calendar")]
    NotPermitted,
    #[error("starts_at is required")]
    StartsAtRequired,
    #[error("no such practitioner")]
    PractitionerNotFound,
    #[error("no such patient")]
    PatientNotFound,
    #[error("a practitioner cannot book a consultation with themselves")]
    WithThemselves,
    #[error("the idempotency key was used for a different booking")]
    IdempotencyKeyReused,
}

impl Refusal for BookingError {
    fn sqlstate(&self) -> &'static str {
        match self {
            BookingError::SignInRequired | BookingError::NotPermitted => "42501",
            BookingError::StartsAtRequired | BookingError::WithThemselves => "22023",
            BookingError::PractitionerNotFound | BookingError::PatientNotFound => "PT404",
            BookingError::IdempotencyKeyReused => "PT409",
        }
    }
    fn code(&self) -> &'static str {
        match self {
            BookingError::SignInRequired => "sign_in_required",
            BookingError::NotPermitted => "forbidden",
            BookingError::StartsAtRequired => "invalid_parameter",
            BookingError::PractitionerNotFound => "practitioner_not_found",
            BookingError::PatientNotFound => "patient_not_found",
            BookingError::WithThemselves => "self_booking",
            BookingError::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }
    fn detail(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            BookingError::StartsAtRequired => {
                m.insert("field".into(), json!("starts_at"));
            }
            BookingError::IdempotencyKeyReused => {
                m.insert("reasons".into(), json!(["idempotency_key_reused"]));
            }
            _ => {}
        }
        m
    }
    fn hint(&self) -> Option<&'static str> {
        match self {
            BookingError::IdempotencyKeyReused => Some("Use a new idempotency key for a new booking."),
            BookingError::NotPermitted => Some("Book for yourself, or as the practitioner, into your own calendar."),
            _ => None,
        }
    }
}

/// The decision, in this order: signed in; permission to book for this patient; the request is
/// complete; the practitioner and the patient exist; not with oneself; a replay or a reused
/// idempotency key; then booked or proposed.
pub fn plan(r: &BookingRequest) -> Result<Plan, BookingError> {
    if !r.signed_in {
        return Err(BookingError::SignInRequired);
    }
    if r.on_behalf && !r.may_book_for_patients && !r.owns_calendar {
        return Err(BookingError::NotPermitted);
    }
    let Some(starts_at) = r.starts_at else { return Err(BookingError::StartsAtRequired) };
    if !r.practitioner_found {
        return Err(BookingError::PractitionerNotFound);
    }
    if !r.patient_found {
        return Err(BookingError::PatientNotFound);
    }
    if r.patient_is_practitioner {
        return Err(BookingError::WithThemselves);
    }
    if let Some(e) = &r.earlier {
        let same = e.practitioner_id == r.practitioner_id && e.patient_id == r.patient_id && e.starts_at == Some(starts_at);
        return if same { Ok(Plan::Replay) } else { Err(BookingError::IdempotencyKeyReused) };
    }
    if !r.on_behalf || r.may_book_for_patients || r.relationship {
        Ok(Plan::Book)
    } else {
        Ok(Plan::Propose)
    }
}

pub const REQUEST_FIELDS: &[&str] = &[
    "signed_in", "on_behalf", "may_book_for_patients", "owns_calendar", "practitioner_found", "patient_found",
    "patient_is_practitioner", "relationship", "practitioner_id", "patient_id", "starts_at", "earlier",
];

fn flag(f: &Fields<'_>, field: &str) -> Result<bool, InputError> {
    f.boolean(field)?.ok_or_else(|| invalid(&f.name(field), "required"))
}

fn id(f: &Fields<'_>, field: &str) -> Result<String, InputError> {
    Ok(f.text(field)?.unwrap_or_default().to_owned())
}

impl BookingRequest {
    /// `{signed_in, on_behalf, may_book_for_patients, owns_calendar, practitioner_found,
    /// patient_found, patient_is_practitioner, relationship (booleans), practitioner_id,
    /// patient_id, starts_at, earlier: {practitioner_id, patient_id, starts_at} | null}`.
    pub fn from_json(value: &Value) -> Result<Self, InputError> {
        let f = Fields::new("input", value, REQUEST_FIELDS)?;
        let earlier = match f.get("earlier") {
            None => None,
            Some(v) => {
                let e = Fields::new("input.earlier", v, &["practitioner_id", "patient_id", "starts_at"])?;
                Some(Earlier {
                    practitioner_id: id(&e, "practitioner_id")?,
                    patient_id: id(&e, "patient_id")?,
                    starts_at: e.parsed("starts_at", "an RFC 3339 timestamp", parse_instant)?,
                })
            }
        };
        Ok(BookingRequest {
            signed_in: flag(&f, "signed_in")?,
            on_behalf: flag(&f, "on_behalf")?,
            may_book_for_patients: flag(&f, "may_book_for_patients")?,
            owns_calendar: flag(&f, "owns_calendar")?,
            practitioner_found: flag(&f, "practitioner_found")?,
            patient_found: flag(&f, "patient_found")?,
            patient_is_practitioner: flag(&f, "patient_is_practitioner")?,
            relationship: flag(&f, "relationship")?,
            practitioner_id: id(&f, "practitioner_id")?,
            patient_id: id(&f, "patient_id")?,
            starts_at: f.parsed("starts_at", "an RFC 3339 timestamp", parse_instant)?,
            earlier,
        })
    }
}

/// `careplane.plan_booking(jsonb)`: `{"ok": true, replay, status, participation,
/// opens_consultation, change}` or the refusal.
pub fn plan_verdict(value: &Value) -> Result<Verdict, InputError> {
    let r = BookingRequest::from_json(value)?;
    Ok(match plan(&r) {
        Ok(p) => Verdict::allow_with(p.json()),
        Err(e) => Verdict::refuse(&e),
    })
}

#[cfg(test)]
mod tests;
