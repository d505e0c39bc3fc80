//! `/api/tokenone/summary` and `/api/tokenone/projects/:id/recent-upstream-picks`.

use crate::dto::ErrorEnvelope;
use crate::error::{ApiResult, Data};
use crate::extract::{parse_id, ApiQuery, AuthUser, ProjectGuard, Viewer};
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tokenone_core::ids::ProjectId;
use tokenone_core::services::summary::Totals;
use tokenone_core::time::format_ms;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// 1..=365, default 30.
    pub days: Option<u32>,
    /// One of the caller's projects; default all visible ones.
    pub project_id: Option<String>,
    /// `live` (default) or `dev`.
    pub mode: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayDto {
    pub date: String,
    pub calls: String,
    pub burn_tokens: String,
    pub savings_tokens: String,
    pub pass_back_tokens: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDto {
    pub requested_model: String,
    pub delivered_model: String,
    pub calls: String,
    pub burn_tokens: String,
    pub savings_tokens: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDto {
    pub from: String,
    pub to: String,
    pub days: u32,
    pub calls: String,
    pub input_tokens: String,
    pub output_tokens: String,
    pub burn_tokens: String,
    pub savings_tokens: String,
    pub pass_back_tokens: String,
    pub net_tokens: String,
    pub uncollected_tokens: String,
    pub by_day: Vec<DayDto>,
    pub by_model: Vec<ModelDto>,
}

#[utoipa::path(get, path = "/api/tokenone/summary", tag = "wallet", security(("bearer" = [])), params(SummaryQuery),
    responses((status = 200, description = "burn / savings roll-up of the caller's visible projects", body = SummaryDto),
              (status = 400, body = ErrorEnvelope), (status = 404, description = "projectId not visible", body = ErrorEnvelope)))]
pub async fn summary(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> ApiResult<Data<SummaryDto>> {
    let project: Option<ProjectId> = match q.project_id.as_deref() {
        None | Some("") => None,
        Some(p) => Some(parse_id(p, "project")?),
    };
    let mode = q.mode.unwrap_or_else(|| "live".into());
    let s = state
        .summary
        .summary(&auth.user, q.days.unwrap_or(30), project, &mode)
        .await?;
    let t: &Totals = &s.totals;
    Ok(Data(SummaryDto {
        from: s.from.clone(),
        to: s.to.clone(),
        days: s.days,
        calls: t.calls.to_string(),
        input_tokens: t.input_tokens.to_string(),
        output_tokens: t.output_tokens.to_string(),
        burn_tokens: t.burn_tokens.to_string(),
        savings_tokens: t.savings_tokens.to_string(),
        pass_back_tokens: t.pass_back_tokens.to_string(),
        net_tokens: (t.burn_tokens - t.pass_back_tokens).to_string(),
        uncollected_tokens: t.uncollected_tokens.to_string(),
        by_day: s
            .by_day
            .iter()
            .map(|(d, t)| DayDto {
                date: d.clone(),
                calls: t.calls.to_string(),
                burn_tokens: t.burn_tokens.to_string(),
                savings_tokens: t.savings_tokens.to_string(),
                pass_back_tokens: t.pass_back_tokens.to_string(),
            })
            .collect(),
        by_model: s
            .by_model
            .iter()
            .map(|((req, del), t)| ModelDto {
                requested_model: req.clone(),
                delivered_model: del.clone(),
                calls: t.calls.to_string(),
                burn_tokens: t.burn_tokens.to_string(),
                savings_tokens: t.savings_tokens.to_string(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PicksQuery {
    /// 1..=100, default 20.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PickDto {
    pub call_id: String,
    pub at: String,
    pub mode: String,
    pub shape: String,
    pub requested_model: String,
    pub requested_tier: Option<String>,
    pub needed_tier: Option<String>,
    pub delivered_model: Option<String>,
    pub provider: Option<String>,
    pub tier: Option<String>,
    pub routed: bool,
    pub fallback_used: bool,
    pub reasons: Vec<String>,
    pub shadow_pick: Option<String>,
    pub latency_ms: i64,
    pub status: u16,
    pub savings_tokens: String,
}

#[utoipa::path(get, path = "/api/tokenone/projects/{id}/recent-upstream-picks", tag = "wallet", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id"), PicksQuery),
    responses((status = 200, description = "newest first", body = [PickDto]), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "history in cold storage", body = ErrorEnvelope)))]
pub async fn recent_picks(
    State(state): State<AppState>,
    g: ProjectGuard<Viewer>,
    ApiQuery(q): ApiQuery<PicksQuery>,
) -> ApiResult<Data<Vec<PickDto>>> {
    let calls = state.summary.recent_picks(&g.access, q.limit.unwrap_or(20)).await?;
    Ok(Data(
        calls
            .into_iter()
            .map(|c| PickDto {
                call_id: c.id.to_string(),
                at: format_ms(c.at),
                mode: c.mode,
                shape: c.shape,
                requested_model: c.requested_model,
                requested_tier: c.requested_tier,
                needed_tier: c.needed_tier,
                delivered_model: c.delivered_model,
                provider: c.provider,
                tier: c.tier,
                routed: c.routed,
                fallback_used: c.fallback_used,
                reasons: c.reasons,
                shadow_pick: c.shadow_pick,
                latency_ms: c.latency_ms,
                status: c.status,
                savings_tokens: c.savings_tokens.to_string(),
            })
            .collect(),
    ))
}
