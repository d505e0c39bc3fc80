//! `/api/projects/:id/members`: list, invite, change role, remove.

use crate::dto::*;
use crate::error::{ApiResult, Created, Data};
use crate::extract::{parse_id, Admin, ApiJson, ProjectGuard, Viewer};
use crate::state::AppState;
use axum::extract::{Path, State};
use tokenone_core::events::{kinds, Event};
use tokenone_core::ids::MemberId;
use tokenone_core::model::Member;

/// `member.invited` / `member.removed` to the project's watchers.
fn member_event<R: crate::extract::MinRole>(state: &AppState, g: &ProjectGuard<R>, kind: &str, m: &Member) {
    let p = &g.access.view.project;
    state.events.publish(Event::now(
        p.id,
        p.tenant_id,
        Some(g.auth.user.id),
        kind,
        serde_json::json!({"memberId": m.id, "email": m.email, "role": m.role.as_str()}),
    ));
}

#[utoipa::path(get, path = "/api/projects/{id}/members", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = [MemberDto]), (status = 404, body = ErrorEnvelope)))]
pub async fn list_members(State(state): State<AppState>, g: ProjectGuard<Viewer>) -> ApiResult<Data<Vec<MemberDto>>> {
    let list = state.projects.members(&g.access).await?;
    Ok(Data(list.iter().map(MemberDto::from).collect()))
}

#[utoipa::path(post, path = "/api/projects/{id}/members", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")), request_body = InviteBody,
    responses((status = 201, description = "member added (`active`) or invited (`invited`, with a single-use `inviteUrl`)", body = MemberDto),
              (status = 403, body = ErrorEnvelope), (status = 409, description = "already a member, or the email belongs to another tenant", body = ErrorEnvelope)))]
pub async fn invite_member(
    State(state): State<AppState>,
    g: ProjectGuard<Admin>,
    ApiJson(b): ApiJson<InviteBody>,
) -> ApiResult<Created<MemberDto>> {
    let invited = state.projects.invite(&g.ctx(), &g.access, b.email, b.role).await?;
    member_event(&state, &g, kinds::MEMBER_INVITED, &invited.member);
    let mut dto = MemberDto::from(&invited.member);
    dto.invite_url = invited.invite_url;
    Ok(Created(dto))
}

#[utoipa::path(patch, path = "/api/projects/{id}/members/{memberId}/role", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id"), ("memberId" = String, Path, description = "member id")), request_body = RoleBody,
    responses((status = 200, body = MemberDto), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "would demote the last owner", body = ErrorEnvelope)))]
pub async fn change_role(
    State(state): State<AppState>,
    g: ProjectGuard<Admin>,
    Path(path): Path<(String, String)>,
    ApiJson(b): ApiJson<RoleBody>,
) -> ApiResult<Data<MemberDto>> {
    let member: MemberId = parse_id(&path.1, "member")?;
    let m = state.projects.change_role(&g.ctx(), &g.access, member, b.role).await?;
    Ok(Data(MemberDto::from(&m)))
}

#[utoipa::path(delete, path = "/api/projects/{id}/members/{memberId}", tag = "members", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id"), ("memberId" = String, Path, description = "member id")),
    responses((status = 200, description = "the removed member", body = MemberDto), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "would remove the last owner", body = ErrorEnvelope)))]
pub async fn remove_member(
    State(state): State<AppState>,
    g: ProjectGuard<Admin>,
    Path(path): Path<(String, String)>,
) -> ApiResult<Data<MemberDto>> {
    let member: MemberId = parse_id(&path.1, "member")?;
    let m = state.projects.remove(&g.ctx(), &g.access, member).await?;
    member_event(&state, &g, kinds::MEMBER_REMOVED, &m);
    Ok(Data(MemberDto::from(&m)))
}
