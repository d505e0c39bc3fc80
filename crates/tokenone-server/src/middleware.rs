//! Cross-cutting layers: request ids, the access log and request metrics, and the envelope for
//! axum's own 404/405 answers under `/api`.

use crate::error::failure;
use crate::extract::RequestId;
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// An incoming id is kept when it is sane: 1..=128 of `[A-Za-z0-9._:-]`.
fn sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Assigns the request id, runs the request in a span carrying it, logs one line per request
/// (method, route template, status, latency — never the query string, which may hold a key) and
/// counts it.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    span.in_scope(|| {
        tracing::info!(method = %method, route = %route, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request");
    });
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    resp
}

/// axum answers a known path with a wrong method by itself (405, empty body); under `/api` that
/// answer gets the envelope too.
pub async fn envelope_405(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if is_api && resp.status() == StatusCode::METHOD_NOT_ALLOWED && resp.headers().get(header::CONTENT_TYPE).is_none() {
        let allow = resp.headers().get(header::ALLOW).cloned();
        let mut r = failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        );
        if let Some(a) = allow {
            r.headers_mut().insert(header::ALLOW, a);
        }
        return r;
    }
    resp
}

/// Unknown routes: the envelope under `/api`, a plain 404 elsewhere.
pub async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api") {
        failure(StatusCode::NOT_FOUND, "not_found", "no such route")
    } else {
        let mut r = Response::new(axum::body::Body::from("not found"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    }
}
