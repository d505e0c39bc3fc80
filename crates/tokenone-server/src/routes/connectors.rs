//! `/api/connectors/*` (connectors.md): the public provider catalogue, the OAuth round trip
//! (authorize, then the provider's redirect to the public callback), database connect, list and
//! revoke. Credentials are sealed by the core service; no answer ever carries one.

use crate::dto::ErrorEnvelope;
use crate::error::{failure, ApiError, ApiResult, Created, Data};
use crate::extract::{parse_id, session_token, ApiJson, AuthUser, Developer, ProjectGuard, Viewer};
use crate::state::AppState;
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokenone_core::connectors::{ConnectorRecord, TokenExchange};
use tokenone_core::ids::ProjectId;
use tokenone_core::secret::Secret;
use tokenone_core::services::connectors::{
    connector_event, CallbackOutcome, CallbackParams, ConnectorService, NewDatabase,
};
use tokenone_core::time::format_ms;
use utoipa::{IntoParams, ToSchema};

/// The code exchange over HTTP: a form POST with a 10 s timeout, no redirects followed (the
/// shared client follows none), at most 64 KiB read back.
pub struct HttpTokenExchange(pub reqwest::Client);

#[async_trait]
impl TokenExchange for HttpTokenExchange {
    async fn exchange(&self, token_url: &str, form: &[(&str, &str)]) -> Option<Vec<u8>> {
        let resp = self
            .0
            .post(token_url)
            .header(header::ACCEPT, "application/json")
            .form(form)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        if resp.content_length().is_some_and(|n| n > 64 * 1024) {
            return None;
        }
        let body = resp.bytes().await.ok()?;
        (body.len() <= 64 * 1024).then(|| body.to_vec())
    }
}

/// A provider of the public catalogue.
#[derive(Serialize, ToSchema)]
pub struct ProviderDto {
    #[serde(rename = "type")]
    pub ty: String,
    pub name: String,
    /// `git`, `issue`, `docs`, `chat` or `database`.
    pub category: String,
    /// `oauth2` or `connection_string`.
    pub auth: String,
    pub scopes: Vec<String>,
    /// Whether the operator has set this OAuth app's client id and secret (always true for
    /// databases).
    pub configured: bool,
}

/// A connector's metadata: never a token, password or connection string.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorDto {
    pub id: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub category: String,
    pub name: String,
    /// e.g. `postgres://app@db.example.com:5432/sales` (no password, no parameters).
    pub display: String,
    /// `active` or `revoked`.
    pub status: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub created_by: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&ConnectorRecord> for ConnectorDto {
    fn from(c: &ConnectorRecord) -> Self {
        ConnectorDto {
            id: c.id.to_string(),
            project_id: c.project_id.to_string(),
            ty: c.ty.clone(),
            category: c.category.clone(),
            name: c.name.clone(),
            display: c.display.clone(),
            status: c.status.clone(),
            scopes: c.scopes.clone(),
            created_at: format_ms(c.created_at),
            created_by: c.created_by.map(|u| u.to_string()),
            last_used_at: c.last_used_at.map(format_ms),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizeBody {
    pub project_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeAnswer {
    /// The provider's authorisation URL to send the browser to.
    pub url: String,
    /// Random, single-use, bound to the caller, the project, the provider and a PKCE verifier.
    pub state: String,
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseConnectBody {
    pub project_id: String,
    /// 1..=100 characters.
    pub name: String,
    /// `postgres://`, `postgresql://`, `mysql://` or `mariadb://`; stored sealed, never shown.
    #[schema(value_type = String, example = "postgres://app:password@db.example.com:5432/sales")]
    pub connection_string: Secret,
    /// Connect (5 s timeout) and run `SELECT 1` before storing.
    #[serde(default)]
    pub test: bool,
}

/// What the provider sends back. Not strict: providers add parameters of their own.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the user refused or it failed (`access_denied`, ...).
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/connectors/_public/providers", tag = "connectors",
    responses((status = 200, description = "every built-in provider; public, no authentication", body = [ProviderDto])))]
pub async fn providers(State(state): State<AppState>) -> Data<Vec<ProviderDto>> {
    Data(
        state
            .connectors
            .providers()
            .into_iter()
            .map(|v| ProviderDto {
                ty: v.provider.ty.into(),
                name: v.provider.name.into(),
                category: v.provider.category.into(),
                auth: v.provider.auth.into(),
                scopes: v.scopes,
                configured: v.configured,
            })
            .collect(),
    )
}

#[utoipa::path(post, path = "/api/connectors/{type}/authorize", tag = "connectors", security(("bearer" = [])),
    params(("type" = String, Path, description = "an OAuth connector type, e.g. `github`")), request_body = AuthorizeBody,
    responses((status = 200, body = AuthorizeAnswer),
              (status = 400, description = "`connector_unconfigured`: the operator has not set the app's client id and secret", body = ErrorEnvelope),
              (status = 403, description = "below developer", body = ErrorEnvelope),
              (status = 404, description = "unknown type, or a project the caller may not see", body = ErrorEnvelope)))]
pub async fn authorize(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(ty): Path<String>,
    ApiJson(b): ApiJson<AuthorizeBody>,
) -> ApiResult<Data<AuthorizeAnswer>> {
    ConnectorService::oauth_provider(&ty)?;
    let project: ProjectId = parse_id(&b.project_id, "project")?;
    let access = state.projects.access(&auth.user, project).await?;
    let a = state.connectors.authorize(&access, &ty).await?;
    Ok(Data(AuthorizeAnswer {
        url: a.url,
        state: a.state,
        expires_at: format_ms(a.expires_at),
    }))
}

fn wants_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("application/json"))
}

fn redirect(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => ApiError(tokenone_core::Error::internal(anyhow::anyhow!(
            "unrepresentable redirect"
        )))
        .into_response(),
    }
}

#[utoipa::path(get, path = "/api/connectors/oauth/{provider}/callback", tag = "connectors",
    params(("provider" = String, Path, description = "the connector type the state was issued for"), CallbackQuery),
    responses((status = 302, description = "to `<public url>/projects/<projectId>/integrations?connected=<type>` (or `?error=<code>`); public: the state authenticates the request"),
              (status = 200, description = "with `Accept: application/json`", body = ConnectorDto),
              (status = 400, description = "unknown, expired, reused or foreign state; a session of another user; with `Accept: application/json` also a provider error or a failed exchange", body = ErrorEnvelope)))]
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
    parts: Parts,
) -> Response {
    let Ok(Query(q)) = query else {
        return ApiError::invalid("malformed query string").into_response();
    };
    // The state authenticates; a session the request also carries must be the same user's.
    let session_user = match session_token(&parts) {
        Some(t) => state.identity.authenticate(&t).await.ok().map(|u| u.id),
        None => None,
    };
    let params = CallbackParams {
        code: q.code,
        state: q.state,
        error: q.error,
    };
    let request_id = crate::extract::request_id(&parts);
    let json = wants_json(&parts);
    let outcome = match state
        .connectors
        .callback(&provider, params, session_user, request_id)
        .await
    {
        Ok(o) => o,
        Err(e) => return ApiError(e).into_response(),
    };
    let base = state.cfg.get().public_url();
    match outcome {
        CallbackOutcome::Connected { connector, actor } => {
            state
                .events
                .publish(connector_event("connector.connected", &connector, Some(actor)));
            if json {
                Data(ConnectorDto::from(connector.as_ref())).into_response()
            } else {
                redirect(&format!(
                    "{base}/projects/{}/integrations?connected={}",
                    connector.project_id, connector.ty
                ))
            }
        }
        CallbackOutcome::Failed { project_id, code } => {
            if json {
                failure(
                    StatusCode::BAD_REQUEST,
                    "connector_authorization_failed",
                    &format!("the connection was not made: {code}"),
                )
            } else {
                redirect(&format!("{base}/projects/{project_id}/integrations?error={code}"))
            }
        }
    }
}

#[utoipa::path(post, path = "/api/connectors/database/connect", tag = "connectors", security(("bearer" = [])),
    request_body = DatabaseConnectBody,
    responses((status = 201, body = ConnectorDto),
              (status = 400, description = "bad scheme or shape (`invalid_request`); file/socket parameters, local or metadata hosts (`connector_refused`); a failed test (`connector_test_failed`, generic)", body = ErrorEnvelope),
              (status = 403, description = "below developer", body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
pub async fn connect_database(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(b): ApiJson<DatabaseConnectBody>,
) -> ApiResult<Created<ConnectorDto>> {
    let project: ProjectId = parse_id(&b.project_id, "project")?;
    let access = state.projects.access(&auth.user, project).await?;
    let new = NewDatabase {
        name: b.name,
        connection_string: b.connection_string,
        test: b.test,
    };
    let c = state.connectors.connect_database(&auth.ctx(), &access, new).await?;
    state
        .events
        .publish(connector_event("connector.connected", &c, Some(auth.user.id)));
    Ok(Created(ConnectorDto::from(&c)))
}

#[utoipa::path(get, path = "/api/connectors/{projectId}", tag = "connectors", security(("bearer" = [])),
    params(("projectId" = String, Path, description = "project id")),
    responses((status = 200, description = "the active connectors", body = [ConnectorDto]), (status = 404, body = ErrorEnvelope)))]
pub async fn list_connectors(
    State(state): State<AppState>,
    g: ProjectGuard<Viewer>,
) -> ApiResult<Data<Vec<ConnectorDto>>> {
    let list = state.connectors.list(&g.access).await?;
    Ok(Data(list.iter().map(ConnectorDto::from).collect()))
}

#[utoipa::path(delete, path = "/api/connectors/{projectId}/{credentialId}", tag = "connectors", security(("bearer" = [])),
    params(("projectId" = String, Path, description = "project id"), ("credentialId" = String, Path, description = "connector id")),
    responses((status = 200, description = "the connector, `revoked`; its ciphertext destroyed", body = ConnectorDto),
              (status = 403, description = "below developer", body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_connector(
    State(state): State<AppState>,
    g: ProjectGuard<Developer>,
    Path(path): Path<(String, String)>,
) -> ApiResult<Data<ConnectorDto>> {
    let id: uuid::Uuid = parse_id(&path.1, "connector")?;
    let (c, changed) = state.connectors.revoke(&g.ctx(), &g.access, id).await?;
    if changed {
        state
            .events
            .publish(connector_event("connector.disconnected", &c, Some(g.auth.user.id)));
    }
    Ok(Data(ConnectorDto::from(&c)))
}
