//! The project's signing keys (ES256 / RS256), fetched from its JWKS and cached.
//!
//! - Keys are found by `kid` and trusted for at most `JWKS_CACHE_TTL_SECONDS` (≤ 10 minutes,
//!   Supabase's own edge cache time) before the set is fetched again.
//! - A `kid` the cache does not know triggers a refetch (a key was just rotated in), but at
//!   most one fetch per `JWKS_MIN_REFETCH_INTERVAL_MS`, whatever the number of bogus kids.
//!   Concurrent misses share one fetch.
//! - When a refresh fails, the keys already held keep serving, with a warning, until a later
//!   refresh succeeds. With no keys ever fetched, tokens cannot be checked (503).
//! - The *generation* counts refreshes that removed or changed a key; the verified-token cache
//!   drops entries from an older generation, so a revoked key stops working at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// How long one JWKS request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct SigningKey {
    pub algorithm: Algorithm,
    pub key: Arc<DecodingKey>,
    /// The JWK as published, to notice a key changed under the same kid.
    jwk: Arc<serde_json::Value>,
}

pub enum Lookup {
    Found(SigningKey),
    /// The JWKS (fresh, or as fresh as the refetch limit allows) has no key with this kid.
    Unknown,
    /// No JWKS has ever been fetched successfully.
    Unavailable(String),
}

struct Cache {
    keys: HashMap<String, SigningKey>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last attempted, successful or not.
    attempted_at: Option<Instant>,
    last_error: Option<String>,
}

pub struct Jwks {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    min_refetch_interval: Duration,
    cache: RwLock<Cache>,
    /// Single flight: one fetch at a time; waiters re-check the cache afterwards.
    fetching: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

#[derive(Deserialize)]
struct JwkSetRaw {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    pub fn new(url: String, ttl: Duration, min_refetch_interval: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("careplane-companion/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client with static settings");
        Jwks {
            url,
            client,
            ttl,
            min_refetch_interval,
            cache: RwLock::new(Cache { keys: HashMap::new(), fetched_at: None, attempted_at: None, last_error: None }),
            fetching: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// Bumped whenever a refresh removes or changes a key.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The key for `kid`, fetching the JWKS when the cache is stale or does not know `kid`.
    pub async fn key(&self, kid: &str) -> Lookup {
        let (found, stale, may_refetch) = self.peek(kid);
        match (found, stale) {
            (Some(key), false) => return Lookup::Found(key),
            // Stale: refresh if allowed, else keep serving what we have.
            (Some(key), true) if !may_refetch => return Lookup::Found(key),
            (None, _) if !may_refetch => return self.miss(),
            _ => {}
        }
        self.refresh(kid).await;
        let (found, _, _) = self.peek(kid);
        match found {
            Some(key) => Lookup::Found(key),
            None => self.miss(),
        }
    }

    fn miss(&self) -> Lookup {
        let cache = self.cache.read().expect("jwks cache lock");
        if cache.fetched_at.is_none() {
            Lookup::Unavailable(cache.last_error.clone().unwrap_or_else(|| "JWKS not fetched yet".into()))
        } else {
            Lookup::Unknown
        }
    }

    /// (key, whether the cache is stale, whether a fetch is allowed now).
    fn peek(&self, kid: &str) -> (Option<SigningKey>, bool, bool) {
        let cache = self.cache.read().expect("jwks cache lock");
        let now = Instant::now();
        let stale = cache.fetched_at.is_none_or(|t| now.duration_since(t) >= self.ttl);
        let may_refetch = cache.attempted_at.is_none_or(|t| now.duration_since(t) >= self.min_refetch_interval);
        (cache.keys.get(kid).cloned(), stale, may_refetch)
    }

    async fn refresh(&self, kid: &str) {
        let _guard = self.fetching.lock().await;
        // Someone else may have fetched while we waited.
        {
            let cache = self.cache.read().expect("jwks cache lock");
            if let Some(t) = cache.attempted_at {
                let fresh_enough = t.elapsed() < self.min_refetch_interval;
                if fresh_enough {
                    return;
                }
            }
            if cache.keys.contains_key(kid) && cache.fetched_at.is_some_and(|t| t.elapsed() < self.ttl) {
                return;
            }
        }
        let attempt = Instant::now();
        let result = self.fetch().await;
        let mut cache = self.cache.write().expect("jwks cache lock");
        cache.attempted_at = Some(attempt);
        match result {
            Ok(keys) => {
                metrics::counter!("careplane_jwks_fetches_total", "outcome" => "ok").increment(1);
                tracing::info!(keys = keys.len(), "fetched JWKS");
                let revoked = cache.keys.iter().any(|(kid, old)| keys.get(kid).is_none_or(|new| new.jwk != old.jwk));
                if revoked {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                }
                cache.keys = keys;
                cache.fetched_at = Some(attempt);
                cache.last_error = None;
            }
            Err(error) => {
                metrics::counter!("careplane_jwks_fetches_total", "outcome" => "error").increment(1);
                if cache.fetched_at.is_some() {
                    tracing::warn!(%error, keys = cache.keys.len(), "JWKS refresh failed; serving the cached keys (stale)");
                } else {
                    tracing::warn!(%error, "JWKS fetch failed; no signing keys available");
                }
                cache.last_error = Some(error);
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, SigningKey>, String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| format!("JWKS request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS answered HTTP {}", response.status().as_u16()));
        }
        let set: JwkSetRaw = response.json().await.map_err(|e| format!("JWKS is not a JWK set: {e}"))?;
        let mut keys = HashMap::new();
        for raw in set.keys {
            match signing_key(raw) {
                Ok(Some((kid, key))) => {
                    keys.insert(kid, key);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping a JWKS key"),
            }
        }
        Ok(keys)
    }
}

/// A usable ES256 / RS256 verification key from one JWK, `None` for keys careplane does not
/// verify with (encryption keys, other algorithms, symmetric keys).
fn signing_key(raw: serde_json::Value) -> Result<Option<(String, SigningKey)>, String> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("unreadable JWK: {e}"))?;
    let Some(kid) = jwk.common.key_id.clone() else { return Ok(None) };
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        _ => return Ok(None),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("kid {kid}: {e}"))?;
    Ok(Some((kid, SigningKey { algorithm, key: Arc::new(key), jwk: Arc::new(raw) })))
}
