//! `/api/tokenone/projects`: create, list, get, patch.

use crate::dto::*;
use crate::error::{ApiResult, Created, Data};
use crate::extract::{ApiJson, ApiQuery, AuthUser, Developer, ProjectGuard, Viewer};
use crate::state::AppState;
use axum::extract::State;
use tokenone_core::services::projects::ProjectPatch;

#[utoipa::path(post, path = "/api/tokenone/projects", tag = "projects", security(("bearer" = [])), request_body = CreateProjectBody,
    responses((status = 201, description = "the creator becomes its owner; stage `build`", body = ProjectDto),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn create_project(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(b): ApiJson<CreateProjectBody>,
) -> ApiResult<Created<ProjectDto>> {
    let v = state
        .projects
        .create(&auth.ctx(), &auth.user, b.name, b.description, b.tags)
        .await?;
    Ok(Created(ProjectDto::from(&v)))
}

#[utoipa::path(get, path = "/api/tokenone/projects", tag = "projects", security(("bearer" = [])), params(ListProjectsQuery),
    responses((status = 200, description = "projects the caller can see", body = [ProjectDto])))]
pub async fn list_projects(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<ListProjectsQuery>,
) -> ApiResult<Data<Vec<ProjectDto>>> {
    let list = state
        .projects
        .list(&auth.user, q.include_archived.unwrap_or(false))
        .await?;
    Ok(Data(list.iter().map(ProjectDto::from).collect()))
}

#[utoipa::path(get, path = "/api/tokenone/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = ProjectDto), (status = 404, description = "no such project, or not visible to the caller", body = ErrorEnvelope)))]
pub async fn get_project(g: ProjectGuard<Viewer>) -> ApiResult<Data<ProjectDto>> {
    Ok(Data(ProjectDto::from(&g.access.view)))
}

#[utoipa::path(patch, path = "/api/tokenone/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")), request_body = PatchProjectBody,
    responses((status = 200, body = ProjectDto), (status = 403, description = "viewer", body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn patch_project(
    State(state): State<AppState>,
    g: ProjectGuard<Developer>,
    ApiJson(b): ApiJson<PatchProjectBody>,
) -> ApiResult<Data<ProjectDto>> {
    let patch = ProjectPatch {
        name: b.name,
        description: b.description,
        tags: b.tags,
    };
    let v = state.projects.patch(&g.ctx(), &g.access, patch).await?;
    Ok(Data(ProjectDto::from(&v)))
}
