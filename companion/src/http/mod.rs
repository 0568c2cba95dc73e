//! HTTP routes, one module per resource, and the middleware every route gets.

pub mod files;
pub mod consultations;
pub mod conversations;
pub mod health;
pub mod introspect;
pub mod me;
pub mod ping;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, MatchedPath};
use axum::http::{header, HeaderName, Method, Request, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, map_response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::{CorsOrigins, HttpConfig};
use crate::error::{envelope_errors, panic_response, AppError};
use crate::payments::http as payments;
use crate::{metrics, ratelimit, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "careplane-companion",
        description = "careplane's companion service beside Supabase. Every answer except `/health`, \
                       `/health/detailed`, `/metrics` and `/openapi.json` uses the envelope \
                       `{success, data, meta}` / `{success: false, error: {code, message, details}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Supabase access tokens"),
        (name = "consultations", description = "video consultations: the waiting room, the call's moves, STUN/TURN for the call"),
        (name = "conversations", description = "chat: a conversation's messages"),
        (name = "operations", description = "health, metrics, this document"),
        (name = "files", description = "medical files: presigned upload and download URLs"),
        (name = "payments", description = "Paystack payments, refunds and the signed webhook"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some("A Supabase access token (HS256, ES256 or RS256)".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// A JSON number that is a whole number, as JSON Schema's `integer` reads it: `1024` and
/// `1024.0` alike (a fraction part only where `f64` holds the number exactly, below 2^53).
/// For request fields documented as `integer`.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::Deserialize;
    let n = serde_json::Number::deserialize(deserializer)?;
    const EXACT_F64: f64 = 9_007_199_254_740_992.0;
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Ok(i),
        (None, Some(f)) if !n.is_u64() && f.fract() == 0.0 && f.abs() < EXACT_F64 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!("must be a whole number, got {n}"))),
    }
}

/// [`whole_number`] for an optional field (absent or `null`: `None`).
pub(crate) fn optional_whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] i64);
    Ok(<Option<Whole> as serde::Deserialize>::deserialize(deserializer)?.map(|w| w.0))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document of every endpoint", content_type = "application/json"))
)]
pub async fn openapi_json(Extension(doc): Extension<Arc<OpenApiDoc>>) -> axum::Json<OpenApiDoc> {
    axum::Json((*doc).clone())
}

/// Every route with its OpenAPI description; `/v1` routes are rate limited.
pub fn router(state: AppState) -> (Router<AppState>, OpenApiDoc) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(me::me))
        .routes(routes!(ping::ping))
        .routes(routes!(ping::auth_ping))
        .routes(routes!(introspect::introspect))
        .routes(routes!(files::upload_url))
        .routes(routes!(files::download_url))
        .routes(routes!(files::complete))
        .routes(routes!(payments::create))
        .routes(routes!(payments::show))
        .routes(routes!(payments::refund))
        .routes(routes!(consultations::ice_servers_for))
        .routes(routes!(consultations::get_one))
        .routes(routes!(consultations::join))
        .routes(routes!(consultations::admit))
        .routes(routes!(consultations::end))
        .routes(routes!(conversations::history, conversations::send))
        .route_layer(from_fn_with_state(state.clone(), ratelimit::limit));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::detailed))
        .routes(routes!(metrics::render))
        .routes(routes!(openapi_json))
        .routes(routes!(payments::webhook))
        .route("/sandbox/paystack/checkout/{reference}", get(payments::sandbox_page).post(payments::sandbox_decide))
        .merge(v1)
        .merge(OpenApiRouter::from(crate::notify::http::routes(&state)))
        .split_for_parts()
}

/// The middleware every route gets, outermost first: request id (set, then echoed back),
/// a tracing span with request id and matched route (no URI, headers or bodies: no PHI or
/// secrets in logs), CORS, compression, the error envelope for errors the layers below
/// produce themselves, metrics, the request timeout, the body limit, panics as 500.
pub fn with_layers(router: Router, http: &HttpConfig) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<axum::body::Body>| {
            let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %request.method(), route, request_id)
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros));
    let cors = CorsLayer::new()
        .allow_origin(match &http.cors_allowed_origins {
            CorsOrigins::Any => AllowOrigin::from(Any),
            CorsOrigins::List(list) => AllowOrigin::list(list.iter().filter_map(|o| o.parse().ok())),
        })
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("apikey"),
            HeaderName::from_static("x-client-info"),
            request_id.clone(),
        ])
        .expose_headers([request_id.clone(), header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600));
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, http.request_timeout))
        .layer(from_fn(metrics::track))
        .layer(map_response(envelope_errors))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let (router, doc) = router(state.clone());
    let http = state.config.http.clone();
    let mut router = router.route("/realtime/v1/websocket", axum::routing::get(crate::realtime::websocket));
    if let Some(dir) = &state.config.examples_dir {
        // Development only (EXAMPLES_DIR): the example pages, same origin as the API and the relay.
        router = router.nest_service("/examples", tower_http::services::ServeDir::new(dir));
    }
    let router = router
        .fallback(|| async { AppError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(Extension(Arc::new(doc)))
        .with_state(state);
    with_layers(router, &http)
}
