//! Tokens shaped like Supabase's, signed with the test-only keys in `tests/fixtures/keys`, and
//! a local stand-in for the project's JWKS endpoint (`/auth/v1/.well-known/jwks.json`) that
//! counts how often it is fetched and whose keys and status a test can change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

use crate::workspace_root;

/// A key pair from `tests/fixtures/keys`: `es256-a`, `es256-b`, `es256-evil`, `rs256-a`,
/// `rs256-evil`.
pub struct TestKey {
    pub name: &'static str,
    pub algorithm: Algorithm,
    pem: Vec<u8>,
}

impl TestKey {
    pub fn load(name: &'static str) -> Self {
        let dir = workspace_root().join("tests/fixtures/keys");
        let pem = std::fs::read(dir.join(format!("{name}.pem"))).expect("fixture key");
        let algorithm = if name.starts_with("es256") { Algorithm::ES256 } else { Algorithm::RS256 };
        TestKey { name, algorithm, pem }
    }

    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.pem).expect("EC key"),
            _ => EncodingKey::from_rsa_pem(&self.pem).expect("RSA key"),
        }
    }

    /// The public key as a JWK with `kid`, as Supabase publishes it.
    pub fn jwk(&self, kid: &str) -> Value {
        let all: Value = serde_json::from_slice(
            &std::fs::read(workspace_root().join("tests/fixtures/keys/public-jwks.json")).expect("public-jwks.json"),
        )
        .unwrap();
        let mut jwk = all[self.name].clone();
        let alg = if self.algorithm == Algorithm::ES256 { "ES256" } else { "RS256" };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg);
        jwk["use"] = json!("sig");
        jwk["key_ops"] = json!(["verify"]);
        jwk["ext"] = json!(true);
        jwk
    }

    /// Signs `claims` with this key, header `{alg, typ, kid}`.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = Header { kid: Some(kid.to_owned()), typ: Some("JWT".into()), ..Header::new(self.algorithm) };
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }

    /// The public key in PEM (for the algorithm-confusion attack: HS256 keyed with it).
    pub fn public_pem(&self) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(workspace_root().join(format!("tests/fixtures/keys/{}.pem", self.name)))
            .output()
            .expect("openssl");
        out.stdout
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The claims Supabase Auth puts into a user's access token, after careplane's hook.
pub fn user_claims(iss: &str, sub: uuid::Uuid, user_role: &str) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "sub": sub,
        "email": "patient@example.test",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": uuid::Uuid::new_v4(),
        "is_anonymous": false,
        "user_role": user_role,
        "user_roles": [user_role],
    })
}

/// The claims of a project's legacy service_role key.
pub fn service_role_claims() -> Value {
    let now = now();
    json!({"iss": "supabase", "ref": "careplanetest", "role": "service_role", "iat": now, "exp": now + 3600})
}

/// `claims` with fields replaced (`Value::Null` removes the field).
pub fn with(claims: &Value, changes: &[(&str, Value)]) -> Value {
    let mut map: Map<String, Value> = claims.as_object().unwrap().clone();
    for (k, v) in changes {
        if v.is_null() {
            map.remove(*k);
        } else {
            map.insert((*k).to_owned(), v.clone());
        }
    }
    Value::Object(map)
}

pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    let header = Header { typ: Some("JWT".into()), ..Header::new(Algorithm::HS256) };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// An HS256 token whose claim set is exactly `payload` (any JSON text, e.g. a claim named twice).
pub fn sign_hs256_text(secret: &[u8], payload: &str) -> String {
    let header = Header { typ: Some("JWT".into()), ..Header::new(Algorithm::HS256) };
    let raw = serde_json::value::RawValue::from_string(payload.to_owned()).unwrap();
    jsonwebtoken::encode(&header, &raw, &EncodingKey::from_secret(secret)).unwrap()
}

/// An unsigned token: header `{"alg":"none"}` and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

/// Same token with the header's `kid` replaced (signature no longer matters for kid lookup).
pub fn sign_with_header(key: &TestKey, header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).unwrap()
}

#[derive(Default)]
struct JwksState {
    keys: Vec<Value>,
    /// Answer this status instead of the keys (to simulate an outage).
    failing: Option<u16>,
}

/// The project's JWKS endpoint, on `127.0.0.1:<port>`.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<JwksState>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let state = Arc::new(Mutex::new(JwksState { keys, failing: None }));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/auth/v1/.well-known/jwks.json", get(serve))
            .with_state((state.clone(), hits.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer { addr, state, hits }
    }

    /// Use as `SUPABASE_URL`: the JWKS lives at its well-known path.
    pub fn supabase_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The issuer a companion configured with [`JwksServer::supabase_url`] expects.
    pub fn issuer(&self) -> String {
        format!("http://{}/auth/v1", self.addr)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().keys = keys;
    }

    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().failing = status;
    }

    /// How many times the JWKS was requested.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

type Shared = (Arc<Mutex<JwksState>>, Arc<AtomicUsize>);

async fn serve(State((state, hits)): State<Shared>) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let state = state.lock().unwrap();
    match state.failing {
        Some(code) => StatusCode::from_u16(code).unwrap().into_response(),
        None => Json(json!({"keys": state.keys})).into_response(),
    }
}
