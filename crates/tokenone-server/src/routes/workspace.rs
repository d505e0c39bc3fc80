//! `/api/tokenone/projects/:id/{stage,archive,cold/move,cold/restore,export,handoff}`: the
//! project lifecycle of workspace.md.

use crate::dto::{ErrorEnvelope, ProjectDto};
use crate::error::{ApiResult, Data};
use crate::extract::{Admin, ApiJson, OptionalJson, ProjectGuard, Viewer};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokenone_core::model::Stage;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageBody {
    /// `build` or `live`.
    #[schema(value_type = String, example = "live")]
    pub stage: Stage,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchiveBody {
    pub archived: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExportBody {
    /// At least 12 characters; the file's key is derived from it (Argon2id).
    #[schema(value_type = String)]
    pub passphrase: tokenone_core::secret::Secret,
}

#[utoipa::path(post, path = "/api/tokenone/projects/{id}/stage", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")), request_body(content = Option<StageBody>, description = "`{stage}`, or no body to flip"),
    responses((status = 200, description = "event `stage.changed {from, to}`", body = ProjectDto),
              (status = 400, body = ErrorEnvelope), (status = 403, description = "below admin", body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
pub async fn set_stage(
    State(state): State<AppState>,
    g: ProjectGuard<Admin>,
    OptionalJson(b): OptionalJson<StageBody>,
) -> ApiResult<Data<ProjectDto>> {
    let v = state
        .workspace
        .set_stage(&g.ctx(), &g.access, b.map(|b| b.stage))
        .await?;
    Ok(Data(ProjectDto::from(&v)))
}

#[utoipa::path(post, path = "/api/tokenone/projects/{id}/archive", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")), request_body(content = Option<ArchiveBody>, description = "`{archived}`, or no body to toggle"),
    responses((status = 200, description = "event `archive.changed {archived}`; an archived project refuses proxy calls", body = ProjectDto),
              (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn set_archived(
    State(state): State<AppState>,
    g: ProjectGuard<Admin>,
    OptionalJson(b): OptionalJson<ArchiveBody>,
) -> ApiResult<Data<ProjectDto>> {
    let v = state
        .workspace
        .set_archived(&g.ctx(), &g.access, b.map(|b| b.archived))
        .await?;
    // This replica's proxy sees the change at once; the others' key caches expire within a second.
    state.key_cache.clear();
    Ok(Data(ProjectDto::from(&v)))
}

#[utoipa::path(post, path = "/api/tokenone/projects/{id}/cold/move", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, description = "`storageTier: cold`: call log and event history archived (zstd JSON lines, SHA-256 recorded); roll-ups stay", body = ProjectDto),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "already cold", body = ErrorEnvelope)))]
pub async fn cold_move(State(state): State<AppState>, g: ProjectGuard<Admin>) -> ApiResult<Data<ProjectDto>> {
    let v = state.workspace.cold_move(&g.ctx(), &g.access).await?;
    state.key_cache.clear();
    Ok(Data(ProjectDto::from(&v)))
}

#[utoipa::path(post, path = "/api/tokenone/projects/{id}/cold/restore", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, description = "`storageTier: hot`: every archived row back, checksum verified", body = ProjectDto),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "not cold, or the archive is missing or damaged (nothing changed)", body = ErrorEnvelope)))]
pub async fn cold_restore(State(state): State<AppState>, g: ProjectGuard<Admin>) -> ApiResult<Data<ProjectDto>> {
    let v = state.workspace.cold_restore(&g.ctx(), &g.access).await?;
    state.key_cache.clear();
    Ok(Data(ProjectDto::from(&v)))
}

#[utoipa::path(post, path = "/api/tokenone/projects/{id}/export", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")), request_body = ExportBody,
    responses((status = 200, description = "`application/octet-stream`, `tokenone-export-<project>-<date>.t1x`: the JSON bundle encrypted (Argon2id + chunked AES-256-GCM); decrypt with `tokenone export decrypt`", content_type = "application/octet-stream", body = String),
              (status = 400, description = "passphrase shorter than 12 characters", body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "history in cold storage", body = ErrorEnvelope)))]
pub async fn export(
    State(state): State<AppState>,
    g: ProjectGuard<Admin>,
    ApiJson(b): ApiJson<ExportBody>,
) -> ApiResult<Response> {
    let job = state
        .workspace
        .prepare_export(&g.ctx(), &g.access, b.passphrase)
        .await?;
    let disposition = format!("attachment; filename=\"{}\"", job.file_name);
    // A small channel: the producer waits for the client, so memory stays flat.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(job.run(tx));
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|r| r.map(Bytes::from));
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/api/tokenone/projects/{id}/handoff", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, description = "the handoff document (`text/markdown`), sections in a fixed order, no secrets", content_type = "text/markdown", body = String),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "history in cold storage", body = ErrorEnvelope)))]
pub async fn handoff(State(state): State<AppState>, g: ProjectGuard<Viewer>) -> ApiResult<Response> {
    let md = state.workspace.handoff(&g.access).await?;
    let mut resp = md.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    Ok(resp)
}
