//! `GET /api/tokenone/projects/:id/events`: the project's live events as Server-Sent Events.
//! Authentication (Bearer or the `accessToken` cookie) and the role check happen before the
//! stream starts, so a bad or expired token is a JSON 401.

use crate::dto::ErrorEnvelope;
use crate::extract::{ProjectGuard, Viewer};
use crate::hub::Watcher;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

#[utoipa::path(get, path = "/api/tokenone/projects/{id}/events", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id"),
           ("Last-Event-ID" = Option<String>, Header, description = "resume after this event: the missed events are replayed first")),
    responses((status = 200, description = "`text/event-stream`: `event: connected`, then events (`id:` per-project sequence, `event:` type, `data:` frame) and `: heartbeat <ms>` comments", content_type = "text/event-stream", body = String),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn project_events(State(state): State<AppState>, g: ProjectGuard<Viewer>, headers: HeaderMap) -> Response {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0);
    let heartbeat = Duration::from_secs(state.cfg.get().sse.heartbeat_seconds.max(1));
    let watcher = Watcher {
        user: g.auth.user.clone(),
        access_project: g.access.id(),
        projects: state.projects.clone(),
    };
    let stream = state
        .hub
        .stream(watcher, last_event_id, heartbeat, state.shutdown.clone());
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies in front (nginx) must not buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
