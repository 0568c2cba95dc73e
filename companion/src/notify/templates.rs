//! Message templates: `companion/templates/notify/<locale>/<name>.j2` (minijinja), compiled into
//! the binary. Each file has three blocks: `sms`, `subject` and `email` (plain text).
//!
//! The outbox's template names map onto files: `appointment_booked` → `appointment_booked`, any
//! other appointment status without a file of its own → `appointment_status`. The recipient's
//! locale picks the directory (`fr-CA` → `fr`), falling back to `en`.
//!
//! What may appear: SMS carries the clinic, the time and a link — never a reason for the visit,
//! a diagnosis or vitals (the context handed to templates has none to give).

use minijinja::Environment;
use serde::Serialize;

macro_rules! templates {
    ($($locale:literal / $name:literal),* $(,)?) => {
        &[$((concat!($locale, "/", $name), include_str!(concat!("../../templates/notify/", $locale, "/", $name, ".j2")))),*]
    };
}

const SOURCES: &[(&str, &str)] = templates![
    "en" / "appointment_booked",
    "en" / "appointment_proposed",
    "en" / "appointment_declined",
    "en" / "appointment_rescheduled",
    "en" / "appointment_cancelled",
    "en" / "appointment_status",
    "en" / "appointment_reminder",
    "en" / "payment_receipt",
    "en" / "emergency_high_risk",
    "en" / "emergency_assigned",
    "fr" / "appointment_booked",
    "fr" / "appointment_rescheduled",
    "fr" / "appointment_cancelled",
    "fr" / "appointment_reminder",
    "fr" / "payment_receipt",
];

/// What a template may use. Built by the worker from ids, looked up at render time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    pub clinic: String,
    /// The appointment's start in the recipient's time zone, e.g. `2026-03-10 13:00 WAT`.
    pub when: Option<String>,
    /// The practitioner's display name (email only; SMS templates do not use it).
    pub practitioner: Option<String>,
    /// The appointment status in words (`checked in`), for `appointment_status`.
    pub status: Option<String>,
    /// A formatted amount, e.g. `NGN 15000.00`.
    pub amount: Option<String>,
    pub reference: Option<String>,
    pub link: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Sms { body: String },
    Email { subject: String, text: String },
}

pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        for (name, source) in SOURCES {
            env.add_template(name, source).expect("the notification templates compile");
        }
        Templates { env }
    }

    /// The file for an outbox template name, if there is one.
    pub fn file_for(&self, template: &str) -> Option<&'static str> {
        SOURCES
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("en/"))
            .find(|n| *n == template)
            .or_else(|| template.strip_prefix("appointment_").map(|_| "appointment_status"))
    }

    /// Renders `template` for `channel` (`sms` or `email`) in `locale` (or English).
    pub fn render(&self, template: &str, channel: &str, locale: Option<&str>, ctx: &Context) -> Result<Rendered, String> {
        let file = self.file_for(template).ok_or_else(|| format!("no template for {template:?}"))?;
        let language = locale.and_then(|l| l.split('-').next()).unwrap_or("en").to_ascii_lowercase();
        let name = [format!("{language}/{file}"), format!("en/{file}")]
            .into_iter()
            .find(|n| self.env.get_template(n).is_ok())
            .ok_or_else(|| format!("no template file for {template:?}"))?;
        let tmpl = self.env.get_template(&name).map_err(|e| e.to_string())?;
        let mut captured = tmpl.render_captured(ctx).map_err(|e| format!("{name}: {e}"))?;
        let mut block = |b: &str| {
            captured
                .with_state_mut(|state| state.render_block(b))
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("{name} {b}: {e}"))
        };
        match channel {
            "sms" => Ok(Rendered::Sms { body: block("sms")? }),
            "email" => Ok(Rendered::Email { subject: block("subject")?, text: block("email")? }),
            other => Err(format!("no channel {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            clinic: "careplane".into(),
            when: Some("2026-03-10 13:00 WAT".into()),
            practitioner: Some("Dr Ada".into()),
            link: "https://app.example/appointments/1".into(),
            ..Context::default()
        }
    }

    #[test]
    fn every_template_renders_both_channels_in_english() {
        let t = Templates::new();
        for (name, _) in SOURCES {
            let (_, file) = name.split_once('/').unwrap();
            for channel in ["sms", "email"] {
                let mut c = ctx();
                c.amount = Some("NGN 15000.00".into());
                c.status = Some("checked in".into());
                let r = t.render(file, channel, None, &c).unwrap();
                match r {
                    Rendered::Sms { body } => assert!(body.contains("careplane") && body.len() <= 320, "{file}: {body}"),
                    Rendered::Email { subject, text } => assert!(!subject.is_empty() && text.contains("careplane")),
                }
            }
        }
    }

    #[test]
    fn sms_carries_clinic_time_and_link_but_not_the_practitioner() {
        let t = Templates::new();
        let Rendered::Sms { body } = t.render("appointment_booked", "sms", None, &ctx()).unwrap() else { panic!() };
        assert!(body.contains("2026-03-10 13:00 WAT") && body.contains("https://app.example/appointments/1"));
        assert!(!body.contains("Dr Ada"));
    }

    #[test]
    fn locale_picks_the_language_and_falls_back_to_english() {
        let t = Templates::new();
        let Rendered::Email { subject, .. } = t.render("appointment_cancelled", "email", Some("fr-CA"), &ctx()).unwrap() else {
            panic!()
        };
        assert!(subject.starts_with("Consultation annulée"));
        let Rendered::Sms { body } = t.render("appointment_proposed", "sms", Some("fr"), &ctx()).unwrap() else { panic!() };
        assert!(body.contains("proposed"));
        assert_eq!(t.file_for("appointment_checked-in"), Some("appointment_status"));
        assert!(t.render("welcome", "sms", None, &ctx()).is_err());
    }
}
