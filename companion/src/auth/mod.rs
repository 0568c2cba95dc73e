//! Supabase access tokens: verification, the `AuthUser` / `ServiceRole` extractors.
//!
//! A token is accepted the way Supabase documents it (docs: auth/jwt-fields, auth/signing-keys):
//! signed with the legacy HS256 secret or one of the project's asymmetric signing keys (ES256,
//! RS256, from the JWKS, chosen by `kid`); `exp` / `nbf` checked with `JWT_LEEWAY_SECONDS` of
//! leeway; `aud` containing `authenticated` (string or array); `iss` equal to
//! `<SUPABASE_URL>/auth/v1` when `SUPABASE_URL` is set; `role` `authenticated` with a UUID
//! `sub`. `service_role` keys (`iss: "supabase"`, no `aud`, no `sub`) are recognised too, but
//! only endpoints that take the [`ServiceRole`] extractor accept them.
//!
//! Every rejection is a 401 whose error code names the reason ([`Reason`]).
//!
//! Verified tokens are remembered (by SHA-256 of the token, up to `JWT_CACHE_SIZE` of them), as
//! Envoy's `jwt_authn` does: a client sends the same access token for up to an hour, and an
//! ECDSA verification costs far more than the rest of a request. A remembered token is still
//! re-checked on every use for `exp` / `nbf`, and — for ES256/RS256 — that its key is still in
//! the (fresh) JWKS and unchanged (the JWKS generation), so expiry and key revocation take
//! effect exactly as without the cache. Refused tokens are never remembered.

pub mod jwks;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::error::AppError;
use crate::AppState;
use jwks::{Jwks, Lookup};

/// Why a token was refused. The code is the `error.code` of the 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization: Bearer …` header.
    MissingToken,
    /// Not three base64url parts, unreadable header or claims.
    Malformed,
    /// `alg: none` (an unsigned token).
    AlgNone,
    /// An algorithm careplane does not accept here: HS256 when only asymmetric keys are
    /// configured (algorithm confusion), ES256/RS256 without a JWKS, anything else at all, or
    /// a key whose type does not match the token's `alg`.
    AlgorithmNotAllowed,
    /// The `kid` is not in the project's JWKS, even after a refetch.
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    /// A claim Supabase always sets is missing or has the wrong type (`sub`, `role`, `exp`…).
    InvalidClaims,
    /// The JWKS has never been fetched successfully, so ES256/RS256 tokens cannot be checked.
    KeysUnavailable,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::Malformed => "malformed_token",
            Reason::AlgNone => "alg_none",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::UnknownKid => "unknown_kid",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "token_expired",
            Reason::NotYetValid => "token_not_yet_valid",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::InvalidClaims => "invalid_claims",
            Reason::KeysUnavailable => "signing_keys_unavailable",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    pub reason: Reason,
    pub message: String,
}

impl AuthError {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        AuthError { reason, message: message.into() }
    }

    pub fn http_status(&self) -> StatusCode {
        match self.reason {
            // Our problem, not the caller's: the token may well be valid.
            Reason::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A verified claim set, kept as the token's own JSON text, which is what `request.jwt.claims`
/// is given: one allocation however many claims (a parsed map costs a node and a string per
/// claim, and a realtime socket keeps its user's claims for as long as it is open). Read a
/// claim with [`get`](Self::get), which parses again: rare (token introspection, a realtime join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims(Arc<str>);

impl Claims {
    /// `json`: a claim set (a JSON object) as text.
    pub fn new(json: &str) -> Self {
        Claims(json.into())
    }

    /// The claim set as JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// One claim.
    pub fn get(&self, key: &str) -> Option<Value> {
        serde_json::from_str::<Map<String, Value>>(&self.0).ok()?.remove(key)
    }

    /// The same allocation as `other` (a cheap first test before comparing the text).
    pub fn ptr_eq(&self, other: &Claims) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A signed-in user, from a verified access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// `sub`: the user's id in `auth.users`.
    pub id: Uuid,
    /// `role`: the Postgres role the token acts as (always `authenticated` here).
    pub role: String,
    /// `user_role`: careplane's role claim (`patient`, `doctor`, `nurse`, `dispatcher`, `responder`, `admin`),
    /// set by `public.custom_access_token_hook`.
    pub user_role: Option<String>,
    /// `user_roles`: every careplane role the user holds.
    pub user_roles: Vec<String>,
    pub email: Option<String>,
    /// The whole verified claim set, as `request.jwt.claims` gets it.
    pub claims: Claims,
}

/// A caller holding the project's `service_role` key.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    pub claims: Claims,
}

#[derive(Debug, Clone)]
pub enum Principal {
    User(AuthUser),
    Service(ServiceCaller),
}

pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    leeway: u64,
    /// What `jsonwebtoken` checks, per algorithm, made once.
    validations: [(Algorithm, Validation); 3],
    cache: Option<VerifiedCache>,
}

/// What is remembered about a verified token.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    exp: i64,
    nbf: Option<i64>,
    /// `kid` and JWKS generation, for ES256/RS256 tokens.
    signing_key: Option<(String, u64)>,
}

struct VerifiedCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Verified>>,
}

impl VerifiedCache {
    fn get(&self, digest: &[u8; 32]) -> Option<Verified> {
        self.entries.lock().expect("verified cache lock").get(digest).cloned()
    }

    fn remove(&self, digest: &[u8; 32]) {
        self.entries.lock().expect("verified cache lock").remove(digest);
    }

    fn insert(&self, digest: [u8; 32], verified: Verified, now: i64) {
        let mut entries = self.entries.lock().expect("verified cache lock");
        if entries.len() >= self.capacity {
            entries.retain(|_, v| v.exp >= now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(digest, verified);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Verifier {
    pub fn new(config: &AuthConfig) -> Self {
        Verifier {
            hs256: config.jwt_secret.as_ref().map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes())),
            jwks: config
                .jwks_url
                .clone()
                .map(|url| Jwks::new(url, config.jwks_cache_ttl, config.jwks_min_refetch_interval)),
            issuer: config.expected_issuer(),
            leeway: config.leeway_seconds,
            validations: [Algorithm::HS256, Algorithm::ES256, Algorithm::RS256]
                .map(|algorithm| (algorithm, validation(algorithm, config.leeway_seconds))),
            cache: (config.verified_cache_size > 0).then(|| VerifiedCache {
                capacity: config.verified_cache_size,
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Verifies a compact JWS and returns who it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(cache) = &self.cache else {
            return self.verify_uncached(token).await.map(|v| v.principal);
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = cache.get(&digest) {
            if self.still_valid(&hit).await {
                return Ok(hit.principal);
            }
            cache.remove(&digest);
        }
        let verified = self.verify_uncached(token).await?;
        cache.insert(digest, verified.clone(), unix_now());
        Ok(verified.principal)
    }

    /// Whether a remembered verification still holds: within `exp` / `nbf` (same leeway and
    /// comparisons as jsonwebtoken), and for JWKS keys, the key still published (the JWKS is
    /// refreshed when stale, as for any token) and unchanged since.
    async fn still_valid(&self, v: &Verified) -> bool {
        let now = unix_now();
        let leeway = self.leeway as i64;
        if v.exp < now - leeway || v.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return false;
        }
        match (&v.signing_key, &self.jwks) {
            (None, _) => true,
            (Some((kid, generation)), Some(jwks)) => {
                matches!(jwks.key(kid).await, Lookup::Found(_)) && jwks.generation() == *generation
            }
            (Some(_), None) => false,
        }
    }

    /// Verifies `token` now, with every check [`verify`](Self::verify) makes, without looking
    /// it up in or adding it to the verified-token cache (for callers that keep what they
    /// verified themselves, such as a realtime socket); with its `exp`.
    pub async fn verify_fresh(&self, token: &str) -> Result<(Principal, i64), AuthError> {
        self.verify_uncached(token).await.map(|v| (v.principal, v.exp))
    }

    async fn verify_uncached(&self, token: &str) -> Result<Verified, AuthError> {
        let generation = self.jwks.as_ref().map(Jwks::generation).unwrap_or(0);
        let header = read_header(token)?;
        let alg = header.alg.as_str().unwrap_or_default();
        if alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::new(Reason::AlgNone, "unsigned tokens (alg none) are refused"));
        }
        let (algorithm, owned_key);
        let mut signing_key = None;
        let key: &DecodingKey = match alg {
            "HS256" => match (&self.hs256, &self.jwks) {
                (Some(key), _) => {
                    algorithm = Algorithm::HS256;
                    key
                }
                (None, Some(_)) => {
                    return Err(AuthError::new(
                        Reason::AlgorithmNotAllowed,
                        "HS256 tokens are not accepted: this project verifies with asymmetric signing keys only",
                    ))
                }
                (None, None) => return Err(AuthError::new(Reason::AlgorithmNotAllowed, "no HS256 secret configured")),
            },
            "ES256" | "RS256" => {
                let Some(jwks) = &self.jwks else {
                    return Err(AuthError::new(
                        Reason::AlgorithmNotAllowed,
                        format!("{alg} tokens are not accepted: no JWKS configured"),
                    ));
                };
                let Some(kid) = header.kid.as_str() else {
                    return Err(AuthError::new(Reason::UnknownKid, "the token has no kid"));
                };
                match jwks.key(kid).await {
                    Lookup::Found(k) => {
                        let wanted = if alg == "ES256" { Algorithm::ES256 } else { Algorithm::RS256 };
                        if k.algorithm != wanted {
                            return Err(AuthError::new(
                                Reason::AlgorithmNotAllowed,
                                format!("key {kid} is not an {alg} key"),
                            ));
                        }
                        algorithm = wanted;
                        owned_key = k.key;
                        signing_key = Some((kid.to_owned(), generation));
                        &owned_key
                    }
                    Lookup::Unknown => {
                        return Err(AuthError::new(Reason::UnknownKid, "the token's kid is not among the project's signing keys"))
                    }
                    Lookup::Unavailable(why) => {
                        tracing::warn!(error = %why, "cannot verify an asymmetric token: no JWKS");
                        return Err(AuthError::new(Reason::KeysUnavailable, "signing keys are unavailable; try again shortly"));
                    }
                }
            }
            _ => {
                return Err(AuthError::new(
                    Reason::AlgorithmNotAllowed,
                    "only HS256, ES256 and RS256 tokens are accepted",
                ))
            }
        };

        let validation = &self.validations.iter().find(|(a, _)| *a == algorithm).expect("a validation per algorithm").1;
        // The claims are kept as the token's own JSON text (what `request.jwt.claims` is given)
        // and only the claims read below are parsed from it: no map of every claim to build,
        // drop and serialize again.
        let data = jsonwebtoken::decode::<Box<RawValue>>(token, key, validation).map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::InvalidSignature => Reason::BadSignature,
                ErrorKind::ExpiredSignature => Reason::Expired,
                ErrorKind::ImmatureSignature => Reason::NotYetValid,
                ErrorKind::InvalidAlgorithm => Reason::AlgorithmNotAllowed,
                ErrorKind::MissingRequiredClaim(_) => Reason::InvalidClaims,
                ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => Reason::BadSignature,
                _ => Reason::Malformed,
            };
            AuthError::new(reason, message_for(reason))
        })?;
        let raw = data.claims;
        let claims = ClaimFields::read(&raw)?;
        let exp = claims.exp.as_i64();
        let nbf = claims.nbf.as_i64();
        let principal = self.principal(&claims, Claims::new(raw.get()))?;
        let exp = exp.ok_or_else(|| AuthError::new(Reason::InvalidClaims, "exp is not a whole number of seconds"))?;
        Ok(Verified { principal, exp, nbf, signing_key })
    }

    fn principal(&self, claims: &ClaimFields, text: Claims) -> Result<Principal, AuthError> {
        let role = claims
            .role
            .as_str()
            .ok_or_else(|| AuthError::new(Reason::InvalidClaims, "the token has no role"))?
            .to_owned();
        let iss = claims.iss.as_str();
        if role == "service_role" {
            // The project's service_role key: iss "supabase", no aud, no sub.
            let issuer_ok = iss == Some("supabase") || (iss.is_some() && iss.map(str::to_owned) == self.issuer);
            if !issuer_ok {
                return Err(AuthError::new(Reason::WrongIssuer, message_for(Reason::WrongIssuer)));
            }
            return Ok(Principal::Service(ServiceCaller { claims: text }));
        }
        let audience_ok = match &claims.aud {
            Value::String(aud) => aud == "authenticated",
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some("authenticated")),
            _ => false,
        };
        if !audience_ok {
            return Err(AuthError::new(Reason::WrongAudience, message_for(Reason::WrongAudience)));
        }
        if let Some(expected) = &self.issuer {
            if iss != Some(expected.as_str()) {
                return Err(AuthError::new(Reason::WrongIssuer, message_for(Reason::WrongIssuer)));
            }
        }
        if role != "authenticated" {
            return Err(AuthError::new(Reason::InvalidClaims, "the token's role is not authenticated"));
        }
        let id = claims
            .sub
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| AuthError::new(Reason::InvalidClaims, "the token's sub is not a user id"))?;
        let user_role = match &claims.user_role {
            Value::Null => None,
            Value::String(r) => Some(r.clone()),
            _ => return Err(AuthError::new(Reason::InvalidClaims, "user_role is not a string")),
        };
        let user_roles = match &claims.user_roles {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| AuthError::new(Reason::InvalidClaims, "user_roles is not a list of strings"))?,
            _ => return Err(AuthError::new(Reason::InvalidClaims, "user_roles is not a list of strings")),
        };
        let email = claims.email.as_str().filter(|e| !e.is_empty()).map(str::to_owned);
        Ok(Principal::User(AuthUser { id, role, user_role, user_roles, email, claims: text }))
    }
}

/// The claims the verifier reads, from a verified token's claim set (a JSON object); every other
/// claim is skipped unparsed. An absent claim reads as `null`, which every check treats as
/// absent. A claim named twice is refused (a map would silently keep the last).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ClaimFields {
    role: Value,
    iss: Value,
    aud: Value,
    sub: Value,
    user_role: Value,
    user_roles: Value,
    email: Value,
    exp: Value,
    nbf: Value,
}

impl ClaimFields {
    fn read(raw: &RawValue) -> Result<Self, AuthError> {
        let invalid = || AuthError::new(Reason::InvalidClaims, message_for(Reason::InvalidClaims));
        if !raw.get().trim_start().starts_with('{') {
            return Err(invalid());
        }
        serde_json::from_str(raw.get()).map_err(|_| invalid())
    }
}

fn message_for(reason: Reason) -> &'static str {
    match reason {
        Reason::MissingToken => "an Authorization: Bearer <access token> header is required",
        Reason::Malformed => "the token is not a well-formed JWT",
        Reason::AlgNone => "unsigned tokens (alg none) are refused",
        Reason::AlgorithmNotAllowed => "the token's algorithm is not accepted",
        Reason::UnknownKid => "the token's kid is not among the project's signing keys",
        Reason::BadSignature => "the token's signature does not verify",
        Reason::Expired => "the token has expired",
        Reason::NotYetValid => "the token is not valid yet (nbf)",
        Reason::WrongAudience => "the token's audience is not authenticated",
        Reason::WrongIssuer => "the token was not issued by this project's Supabase Auth",
        Reason::InvalidClaims => "the token's claims are not those of a Supabase access token",
        Reason::KeysUnavailable => "signing keys are unavailable; try again shortly",
    }
}

/// What `jsonwebtoken` checks of a token signed with `algorithm`: the signature, `exp` (required)
/// and `nbf` within `leeway` seconds. Audience and issuer are checked by the verifier, where
/// service_role keys differ from user tokens.
fn validation(algorithm: Algorithm, leeway: u64) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = leeway;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
    validation
}

/// The JOSE header of a compact JWS, without trusting anything in it yet.
/// Only `alg` and `kid` are read (absent reads as `null`); the rest is skipped unparsed.
fn read_header(token: &str) -> Result<JoseHeader, AuthError> {
    let malformed = || AuthError::new(Reason::Malformed, message_for(Reason::Malformed));
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return Err(malformed());
    }
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct JoseHeader {
    alg: Value,
    kid: Value,
}

/// The bearer token of a request, if any. `Ok(None)`: no Authorization header at all.
pub fn bearer(parts: &axum::http::HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = parts.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| AuthError::new(Reason::Malformed, message_for(Reason::Malformed)))?;
    let mut it = value.splitn(2, ' ');
    match (it.next(), it.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::new(Reason::Malformed, "the Authorization header is not Bearer <token>")),
    }
}

/// The outcome of checking a request's token, computed once per request (by the rate-limit
/// middleware, which needs the user id) and stored in the request's extensions.
#[derive(Clone)]
pub struct Authenticated(pub Result<Principal, AuthError>);

/// Verifies the request's token, or reuses the outcome an earlier layer stored.
pub async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Principal, AuthError> {
    if let Some(Authenticated(outcome)) = parts.extensions.get::<Authenticated>() {
        return outcome.clone();
    }
    let outcome = match bearer(&parts.headers) {
        Ok(Some(token)) => state.verifier.verify(token).await,
        Ok(None) => Err(AuthError::new(Reason::MissingToken, message_for(Reason::MissingToken))),
        Err(e) => Err(e),
    };
    parts.extensions.insert(Authenticated(outcome.clone()));
    outcome
}

/// Counts a refusal (only where an endpoint actually required the token).
fn refused(e: AuthError) -> AppError {
    metrics::counter!("careplane_auth_rejections_total", "reason" => e.reason.code()).increment(1);
    AppError::Auth(e)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await.map_err(refused)? {
            Principal::User(user) => Ok(user),
            Principal::Service(_) => Err(AppError::forbidden(
                "user_token_required",
                "this endpoint acts for a signed-in user; service_role tokens are not accepted",
            )),
        }
    }
}

impl FromRequestParts<AppState> for ServiceRole {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await.map_err(refused)? {
            Principal::Service(caller) => Ok(ServiceRole(caller)),
            Principal::User(_) => Err(AppError::forbidden(
                "service_role_required",
                "this endpoint is for the project's service_role key only",
            )),
        }
    }
}

/// Extractor for endpoints that only the service role may call.
pub struct ServiceRole(pub ServiceCaller);
