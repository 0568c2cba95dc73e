//! Development tokens: `careplane-companion token --sub <uuid> --role patient`.
//!
//! The token has the shape of a Supabase access token after careplane's
//! `custom_access_token_hook` (`user_role`, `user_roles`), signed HS256 with
//! `SUPABASE_JWT_SECRET`. It can only be minted with that secret, so it is exactly as
//! trustworthy as anything else holding the secret.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::AuthConfig;

/// Issuer written into development tokens when `SUPABASE_URL` is unset: the API URL of the
/// Supabase CLI's local stack.
pub const LOCAL_ISSUER: &str = "http://127.0.0.1:54321/auth/v1";

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(
        "SUPABASE_JWT_SECRET is not set: development tokens are signed HS256 with it. \
         Set it to the same secret the companion runs with (under `make run`: \
         scripts/dev.sh token --sub <uuid> --role <role> does this for you)"
    )]
    NoSecret,
    #[error("could not sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

pub struct DevToken<'a> {
    pub sub: Uuid,
    pub user_role: &'a str,
    pub email: Option<&'a str>,
    pub ttl_seconds: u64,
}

/// The claims of a development token, issued now.
pub fn dev_claims(config: &AuthConfig, t: &DevToken<'_>) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    json!({
        "iss": config.expected_issuer().unwrap_or_else(|| LOCAL_ISSUER.to_owned()),
        "aud": "authenticated",
        "sub": t.sub,
        "role": "authenticated",
        "iat": now,
        "exp": now + t.ttl_seconds,
        "email": t.email.unwrap_or_default(),
        "phone": "",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": Uuid::new_v4(),
        "is_anonymous": false,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "user_role": t.user_role,
        "user_roles": [t.user_role],
    })
}

/// Signs a development token with the HS256 secret; refuses without one.
pub fn mint(config: &AuthConfig, t: &DevToken<'_>) -> Result<String, MintError> {
    let secret = config.jwt_secret.as_ref().ok_or(MintError::NoSecret)?;
    let header = Header { typ: Some("JWT".into()), ..Header::new(jsonwebtoken::Algorithm::HS256) };
    let key = EncodingKey::from_secret(secret.expose_secret().as_bytes());
    Ok(jsonwebtoken::encode(&header, &dev_claims(config, t), &key)?)
}
