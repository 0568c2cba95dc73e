//! Webhook signatures.
//!
//! Twilio (`X-Twilio-Signature`): base64 of HMAC-SHA1, keyed with the auth token, over the
//! full URL Twilio called followed by every POST parameter sorted by name, each name
//! immediately followed by its value. Twilio's libraries accept the URL with and without the
//! scheme's default port (a proxy may add or drop `:443`), and so does this.
//!
//! SendGrid (`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`): ECDSA P-256 with SHA-256
//! over the timestamp header followed by the raw body; the signature is base64 DER, the public
//! key base64 SubjectPublicKeyInfo DER.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sha1::Sha1;

/// Twilio's signature of `url` with `params` (in any order; they are sorted here).
pub fn twilio_signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(twilio_mac(auth_token, url, params).finalize().into_bytes())
}

/// Does `signature` sign `url` (as is, or with / without its default port) and `params`?
/// Compared in constant time.
pub fn twilio_verify(auth_token: &[u8], url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else { return false };
    url_variants(url).iter().any(|candidate| twilio_mac(auth_token, candidate, params).verify_slice(&given).is_ok())
}

fn twilio_mac(auth_token: &[u8], url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// `url` itself and the same URL with the scheme's default port added (when it has no port)
/// or removed (when it has the default one).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let (scheme, rest, port) = if let Some(r) = url.strip_prefix("https://") {
        ("https://", r, "443")
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http://", r, "80")
    } else {
        return out;
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    // An IPv6 literal's colons are inside the brackets.
    let host_end = if hostport.starts_with('[') { hostport.find(']').map_or(0, |i| i + 1) } else { 0 };
    match hostport[host_end..].rfind(':').map(|i| i + host_end) {
        Some(i) if &hostport[i + 1..] == port => out.push(format!("{scheme}{userinfo}{}{tail}", &hostport[..i])),
        Some(_) => {}
        None => out.push(format!("{scheme}{userinfo}{hostport}:{port}{tail}")),
    }
    out
}

/// Parses SendGrid's base64 SPKI public key.
pub fn sendgrid_key(base64_spki: &str) -> Result<VerifyingKey, String> {
    let der = STANDARD.decode(base64_spki.trim()).map_err(|e| format!("not base64: {e}"))?;
    VerifyingKey::from_public_key_der(&der).map_err(|e| format!("not an ECDSA P-256 public key: {e}"))
}

/// Why a SendGrid event batch is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SendGridRefusal {
    Missing,
    BadSignature,
    Stale,
}

/// Verifies the signature over `timestamp ++ body`, and with `max_age_secs`, that the
/// timestamp is within that many seconds of `now_secs`.
pub fn sendgrid_verify(
    key: &VerifyingKey,
    signature_b64: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    max_age_secs: Option<u64>,
    now_secs: i64,
) -> Result<(), SendGridRefusal> {
    let (Some(signature_b64), Some(timestamp)) = (signature_b64, timestamp) else {
        return Err(SendGridRefusal::Missing);
    };
    let der = STANDARD.decode(signature_b64.trim()).map_err(|_| SendGridRefusal::BadSignature)?;
    let signature = Signature::from_der(&der).map_err(|_| SendGridRefusal::BadSignature)?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    key.verify(&message, &signature).map_err(|_| SendGridRefusal::BadSignature)?;
    if let Some(max_age) = max_age_secs {
        let signed_at: i64 = timestamp.trim().parse().map_err(|_| SendGridRefusal::Stale)?;
        if now_secs.abs_diff(signed_at) > max_age {
            return Err(SendGridRefusal::Stale);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    /// Twilio's own example (its security documentation and helper libraries).
    fn twilio_params() -> Vec<(String, String)> {
        vec![
            p("To", "+18005551212"),
            p("CallSid", "CA1234567890ABCDE"),
            p("Caller", "+14158675309"),
            p("Digits", "1234"),
            p("From", "+14158675309"),
        ]
    }
    const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const TWILIO_SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    #[test]
    fn twilio_published_vector() {
        assert_eq!(twilio_signature(b"12345", TWILIO_URL, &twilio_params()), TWILIO_SIGNATURE);
        assert!(twilio_verify(b"12345", TWILIO_URL, &twilio_params(), TWILIO_SIGNATURE));
    }

    #[test]
    fn twilio_accepts_the_url_with_or_without_the_default_port_only() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(twilio_verify(b"12345", with_port, &twilio_params(), TWILIO_SIGNATURE));
        let signed_with_port = twilio_signature(b"12345", with_port, &twilio_params());
        assert!(twilio_verify(b"12345", TWILIO_URL, &twilio_params(), &signed_with_port));
        assert!(!twilio_verify(b"12345", "https://mycompany.com:8443/myapp.php?foo=1&bar=2", &twilio_params(), TWILIO_SIGNATURE));
        assert_eq!(url_variants("http://h/x"), vec!["http://h/x".to_owned(), "http://h:80/x".to_owned()]);
        assert_eq!(url_variants("http://[::1]:80/x"), vec!["http://[::1]:80/x".to_owned(), "http://[::1]/x".to_owned()]);
    }

    #[test]
    fn twilio_refuses_a_changed_parameter_token_or_url() {
        let mut params = twilio_params();
        params[3].1 = "1235".into();
        assert!(!twilio_verify(b"12345", TWILIO_URL, &params, TWILIO_SIGNATURE));
        assert!(!twilio_verify(b"12346", TWILIO_URL, &twilio_params(), TWILIO_SIGNATURE));
        assert!(!twilio_verify(b"12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &twilio_params(), TWILIO_SIGNATURE));
        assert!(!twilio_verify(b"12345", TWILIO_URL, &twilio_params(), "not base64!"));
    }

    const SG_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SG_TIMESTAMP: &str = "1588788367";
    const SG_PAYLOAD: &str = r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    const SG_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";

    #[test]
    fn sendgrid_published_vector_verifies_and_one_changed_byte_fails() {
        let key = sendgrid_key(SG_KEY).unwrap();
        let ok = sendgrid_verify(&key, Some(SG_SIGNATURE), Some(SG_TIMESTAMP), SG_PAYLOAD.as_bytes(), None, 0);
        assert_eq!(ok, Ok(()));
        let mut body = SG_PAYLOAD.as_bytes().to_vec();
        body[10] ^= 1;
        assert_eq!(
            sendgrid_verify(&key, Some(SG_SIGNATURE), Some(SG_TIMESTAMP), &body, None, 0),
            Err(SendGridRefusal::BadSignature)
        );
        assert_eq!(
            sendgrid_verify(&key, Some(SG_SIGNATURE), Some("1588788368"), SG_PAYLOAD.as_bytes(), None, 0),
            Err(SendGridRefusal::BadSignature)
        );
        let mut sig = STANDARD.decode(SG_SIGNATURE).unwrap();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        assert_eq!(
            sendgrid_verify(&key, Some(&STANDARD.encode(sig)), Some(SG_TIMESTAMP), SG_PAYLOAD.as_bytes(), None, 0),
            Err(SendGridRefusal::BadSignature)
        );
        assert_eq!(sendgrid_verify(&key, None, Some(SG_TIMESTAMP), b"", None, 0), Err(SendGridRefusal::Missing));
    }

    #[test]
    fn sendgrid_replay_window() {
        let key = sendgrid_key(SG_KEY).unwrap();
        let signed = 1_588_788_367;
        let check = |now| sendgrid_verify(&key, Some(SG_SIGNATURE), Some(SG_TIMESTAMP), SG_PAYLOAD.as_bytes(), Some(600), now);
        assert_eq!(check(signed + 600), Ok(()));
        assert_eq!(check(signed + 601), Err(SendGridRefusal::Stale));
        assert_eq!(check(signed - 601), Err(SendGridRefusal::Stale));
    }
}
