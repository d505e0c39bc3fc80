//! `/api/tokenone/projects/:id/keys`: create (secret shown once), list, revoke.

use crate::dto::ErrorEnvelope;
use crate::error::{ApiResult, Created, Data};
use crate::extract::{parse_id, ApiJson, Developer, ProjectGuard, Viewer};
use crate::state::AppState;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use tokenone_core::keys::{ApiKey, KeyId, KeyMode, RateOverrides};
use tokenone_core::services::keys::NewKey;
use tokenone_core::time::{format_ms, serde_ms};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKeyBody {
    /// 1..=100 characters.
    pub name: String,
    #[schema(value_type = String, example = "dev")]
    pub mode: KeyMode,
    /// Default: all three shapes.
    pub scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>, example = json!({"openai": 30}))]
    pub rate_limit_per_minute: Option<RateOverrides>,
    /// CIDR blocks (or single addresses) allowed to use the key; empty: any.
    pub ip_allowlist: Option<Vec<String>>,
    #[serde(default, with = "serde_ms::option")]
    #[schema(value_type = Option<String>, example = "2027-01-01T00:00:00.000Z")]
    pub expires_at: Option<i64>,
}

/// A key's metadata; never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub mode: String,
    /// The first 12 characters of the secret.
    pub prefix: String,
    pub last4: String,
    pub scopes: Vec<String>,
    #[schema(value_type = Object)]
    pub rate_limit_per_minute: RateOverrides,
    pub ip_allowlist: Vec<String>,
    pub created_at: String,
    pub created_by: Option<String>,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyInfo {
    fn from(k: &ApiKey) -> Self {
        KeyInfo {
            id: k.id.to_string(),
            project_id: k.project_id.to_string(),
            name: k.name.clone(),
            mode: k.mode.as_str().into(),
            prefix: k.prefix.clone(),
            last4: k.last4.clone(),
            scopes: k.scopes.clone(),
            rate_limit_per_minute: k.rate_limit_per_minute.clone(),
            ip_allowlist: k.ip_allowlist.iter().map(|n| n.to_string()).collect(),
            created_at: format_ms(k.created_at),
            created_by: k.created_by.map(|u| u.to_string()),
            last_used_at: k.last_used_at.map(format_ms),
            expires_at: k.expires_at.map(format_ms),
            revoked_at: k.revoked_at.map(format_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: KeyInfo,
    /// `to_live_...` / `to_dev_...`: shown only in this answer.
    pub secret: String,
}

#[utoipa::path(post, path = "/api/tokenone/projects/{id}/keys", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")), request_body = CreateKeyBody,
    responses((status = 201, description = "the secret is shown only here", body = CreatedKey),
              (status = 400, body = ErrorEnvelope), (status = 403, description = "viewer", body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn create_key(
    State(state): State<AppState>,
    g: ProjectGuard<Developer>,
    ApiJson(b): ApiJson<CreateKeyBody>,
) -> ApiResult<Created<CreatedKey>> {
    let new = NewKey {
        name: b.name,
        mode: b.mode,
        scopes: b.scopes,
        rate_limit_per_minute: b.rate_limit_per_minute,
        ip_allowlist: b.ip_allowlist,
        expires_at: b.expires_at,
    };
    let (key, secret) = state.keys.create(&g.ctx(), &g.access, new).await?;
    Ok(Created(CreatedKey {
        key: KeyInfo::from(&key),
        secret,
    }))
}

#[utoipa::path(get, path = "/api/tokenone/projects/{id}/keys", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id")),
    responses((status = 200, body = [KeyInfo]), (status = 404, body = ErrorEnvelope)))]
pub async fn list_keys(State(state): State<AppState>, g: ProjectGuard<Viewer>) -> ApiResult<Data<Vec<KeyInfo>>> {
    let keys = state.keys.list(&g.access).await?;
    Ok(Data(keys.iter().map(KeyInfo::from).collect()))
}

#[utoipa::path(delete, path = "/api/tokenone/projects/{id}/keys/{keyId}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id"), ("keyId" = String, Path, description = "key id")),
    responses((status = 200, description = "the key with `revokedAt` set; refused by the proxy on every replica within one second", body = KeyInfo),
              (status = 403, description = "someone else's key, below admin", body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    g: ProjectGuard<Developer>,
    Path(path): Path<(String, String)>,
) -> ApiResult<Data<KeyInfo>> {
    let id: KeyId = parse_id(&path.1, "key")?;
    let key = state.keys.revoke(&g.ctx(), &g.access, id).await?;
    state.key_cache.invalidate_key(id);
    Ok(Data(KeyInfo::from(&key)))
}
