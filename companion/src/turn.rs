//! TURN credentials in coturn's REST scheme ("TURN REST API", `use-auth-secret` in coturn):
//! `username = <expiry unix time>:<user id>`, `credential = base64(HMAC-SHA1(secret, username))`.
//! coturn recomputes the credential from the username with the same shared secret
//! (`static-auth-secret`) and refuses it once the expiry has passed, so nothing is stored.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha1::Sha1;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::{parse, ConfigError};

/// `TURN_URLS`, `TURN_SECRET`, `TURN_TTL_SECONDS`.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// `TURN_URLS`: comma-separated `stun:` / `stuns:` / `turn:` / `turns:` URLs, e.g.
    /// `stun:turn.example.com:3478,turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349`.
    pub urls: Vec<String>,
    /// `TURN_SECRET`: coturn's `static-auth-secret`; required when a `turn:`/`turns:` URL is set.
    pub secret: Option<SecretString>,
    /// `TURN_TTL_SECONDS`: how long issued credentials are valid (60–86400, default 3600).
    pub ttl: Duration,
}

impl TurnConfig {
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut urls = Vec::new();
        for url in lookup("TURN_URLS").unwrap_or_default().split(',').map(str::trim).filter(|u| !u.is_empty()) {
            if !["stun:", "stuns:", "turn:", "turns:"].iter().any(|s| url.starts_with(s)) || url.contains(char::is_whitespace) {
                return Err(ConfigError {
                    name: "TURN_URLS",
                    reason: format!("{url:?}: expected a stun:, stuns:, turn: or turns: URL"),
                });
            }
            urls.push(url.to_owned());
        }
        let secret = lookup("TURN_SECRET").filter(|s| !s.is_empty());
        if secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError { name: "TURN_SECRET", reason: "must be at least 16 bytes".into() });
        }
        if secret.is_none() && urls.iter().any(|u| is_relay(u)) {
            return Err(ConfigError { name: "TURN_SECRET", reason: "required when TURN_URLS has a turn: or turns: URL".into() });
        }
        let ttl: u64 = parse("TURN_TTL_SECONDS", &lookup("TURN_TTL_SECONDS").filter(|v| !v.is_empty()).unwrap_or_else(|| "3600".into()))?;
        if !(60..=86_400).contains(&ttl) {
            return Err(ConfigError { name: "TURN_TTL_SECONDS", reason: "must be between 60 and 86400".into() });
        }
        Ok(TurnConfig { urls, secret: secret.map(SecretString::from), ttl: Duration::from_secs(ttl) })
    }

    pub fn is_configured(&self) -> bool {
        !self.urls.is_empty()
    }
}

fn is_relay(url: &str) -> bool {
    url.starts_with("turn:") || url.starts_with("turns:")
}

/// One entry of `RTCConfiguration.iceServers`, ready to hand to `new RTCPeerConnection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The servers for one user: STUN URLs as they are, TURN URLs with credentials valid until
/// `now_unix + ttl`.
pub fn ice_servers(config: &TurnConfig, user: Uuid, now_unix: u64) -> Vec<IceServer> {
    let (relay, stun): (Vec<String>, Vec<String>) = config.urls.iter().cloned().partition(|u| is_relay(u));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer { urls: stun, username: None, credential: None });
    }
    if let (false, Some(secret)) = (relay.is_empty(), &config.secret) {
        let (username, credential) = credentials(secret.expose_secret().as_bytes(), user, now_unix + config.ttl.as_secs());
        servers.push(IceServer { urls: relay, username: Some(username), credential: Some(credential) });
    }
    servers
}

/// `(username, credential)` for `user`, valid until `expires_unix`.
pub fn credentials(secret: &[u8], user: Uuid, expires_unix: u64) -> (String, String) {
    let username = format!("{expires_unix}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn credentials_follow_coturns_rest_scheme() {
        // Cross-checked with: printf '%s' '1700000000:0b5f7c9e-3a6d-4e8f-9c1b-2d4e6f8a0b1c' | openssl dgst -sha1 -hmac 'north-sea-secret-1' -binary | base64
        let user = Uuid::parse_str("0b5f7c9e-3a6d-4e8f-9c1b-2d4e6f8a0b1c").unwrap();
        let (username, credential) = credentials(b"north-sea-secret-1", user, 1_700_000_000);
        assert_eq!(username, "1700000000:0b5f7c9e-3a6d-4e8f-9c1b-2d4e6f8a0b1c");
        assert_eq!(credential, "ny/4soox4kF65+oFQtXktsMqXhs=");
    }

    #[test]
    fn stun_urls_carry_no_credentials_and_turn_urls_expire_after_the_ttl() {
        let config = TurnConfig::from_lookup(&lookup(&[
            ("TURN_URLS", "stun:turn.example.com:3478, turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349"),
            ("TURN_SECRET", "north-sea-secret-1"),
            ("TURN_TTL_SECONDS", "600"),
        ]))
        .unwrap();
        let user = Uuid::nil();
        let servers = ice_servers(&config, user, 1_000);
        assert_eq!(servers[0], IceServer { urls: vec!["stun:turn.example.com:3478".into()], username: None, credential: None });
        assert_eq!(servers[1].urls, vec!["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]);
        assert_eq!(servers[1].username.as_deref(), Some("1600:00000000-0000-0000-0000-000000000000"));
        assert_eq!(servers[1].credential, Some(credentials(b"north-sea-secret-1", user, 1_600).1));
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let err = |pairs: &[(&str, &str)]| TurnConfig::from_lookup(&lookup(pairs)).unwrap_err().to_string();
        assert!(err(&[("TURN_URLS", "http://turn.example.com")]).contains("TURN_URLS"));
        assert!(err(&[("TURN_URLS", "turn:turn.example.com")]).contains("TURN_SECRET is invalid: required"));
        assert!(err(&[("TURN_URLS", "turn:t"), ("TURN_SECRET", "short")]).contains("at least 16 bytes"));
        assert!(err(&[("TURN_TTL_SECONDS", "5")]).contains("between 60 and 86400"));
        assert!(!TurnConfig::from_lookup(&lookup(&[])).unwrap().is_configured());
    }
}
