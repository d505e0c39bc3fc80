//! `/api/admin/smart-router-flip`: the switch and its status.

use crate::dto::ErrorEnvelope;
use crate::error::{ApiResult, Data};
use crate::extract::{ApiJson, PlatformAdmin};
use crate::runtime;
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use tokenone_core::admin::ROUTER_KIND;
use tokenone_core::repo::RouterState;
use tokenone_core::routing::RouterMode;
use tokenone_core::time::format_ms;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Last24h {
    pub calls: String,
    pub routed_calls: String,
    pub shadow_calls: String,
    pub savings_tokens: String,
    /// What routing would have saved on calls delivered natively (shadow mode).
    pub shadow_savings_tokens: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterStatus {
    /// `off`, `shadow` or `on`.
    pub mode: String,
    pub rollout_pct: u8,
    pub updated_at: String,
    pub updated_by: Option<String>,
    pub reason: Option<String>,
    pub last24h: Last24h,
}

/// The status of `s` (the stored switch) with the last day's figures, read once here.
async fn status_of(state: &AppState, s: RouterState) -> ApiResult<RouterStatus> {
    let st = state.router_service.stats_24h().await?;
    Ok(RouterStatus {
        mode: RouterMode::from_str(&s.mode).unwrap_or_default().as_str().into(),
        rollout_pct: s.rollout_pct,
        updated_at: format_ms(s.updated_at),
        updated_by: s.updated_by,
        reason: s.reason,
        last24h: Last24h {
            calls: st.calls.to_string(),
            routed_calls: st.routed_calls.to_string(),
            shadow_calls: st.shadow_calls.to_string(),
            savings_tokens: st.savings_tokens.to_string(),
            shadow_savings_tokens: st.shadow_savings_tokens.to_string(),
        },
    })
}

#[utoipa::path(get, path = "/api/admin/smart-router-flip/status", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = RouterStatus), (status = 403, body = ErrorEnvelope)))]
pub async fn status(State(state): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Data<RouterStatus>> {
    let (_, _, s) = state.router_service.current().await?;
    Ok(Data(status_of(&state, s).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FlipBody {
    /// `off`, `shadow` or `on`.
    pub mode: String,
    /// 0..=100, default 100.
    pub rollout_pct: Option<i64>,
    /// At least 3 characters.
    pub reason: String,
}

#[utoipa::path(post, path = "/api/admin/smart-router-flip", tag = "admin", security(("bearer" = [])), request_body = FlipBody,
    responses((status = 200, description = "the status after the flip; effective on every replica within a second", body = RouterStatus),
              (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn flip(
    State(state): State<AppState>,
    admin: PlatformAdmin,
    ApiJson(b): ApiJson<FlipBody>,
) -> ApiResult<Data<RouterStatus>> {
    let s = state
        .router_service
        .flip(&admin.0.ctx(), &b.mode, b.rollout_pct, &b.reason)
        .await?;
    // In force here at once, on the other replicas through Redis or their version poll.
    runtime::changed(&state, ROUTER_KIND).await;
    Ok(Data(status_of(&state, s).await?))
}
