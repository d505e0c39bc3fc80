//! Connectors (connectors.md): the catalogue, the OAuth round trip with PKCE, database connect,
//! listing and revoking. Credentials are sealed by the vault, bound to tenant, project and
//! record; nothing here ever returns or logs one.

use super::audit;
use super::live::LiveConfig;
use super::projects::{ProjectAccess, ProjectService};
use crate::config::OAuthAppConfig;
use crate::connectors::{
    self, connector_aad, oauth_state_aad, ConnectorRecord, DatabaseProbe, DbHost, OAuthState, ProbeTarget, Provider,
    TokenExchange, PROVIDERS,
};
use crate::events::Event;
use crate::ids::{ProjectId, UserId};
use crate::model::{Actor, Ctx};
use crate::repo::Store;
use crate::roles::Action;
use crate::secret::Secret;
use crate::time::{now_ms, Millis};
use crate::vault::Vault;
use crate::{validate, Error, Result};
use serde_json::json;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A provider as the public catalogue shows it.
#[derive(Debug, Clone)]
pub struct ProviderView {
    pub provider: &'static Provider,
    pub scopes: Vec<String>,
    pub configured: bool,
}

/// The start of an OAuth round trip.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub expires_at: Millis,
}

/// What the provider sent back to the callback.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// How a callback with a valid state ended.
#[derive(Debug, Clone)]
pub enum CallbackOutcome {
    Connected {
        connector: Box<ConnectorRecord>,
        actor: UserId,
    },
    /// The provider refused (`?error=`) or the code exchange failed: nothing stored.
    Failed { project_id: ProjectId, code: String },
}

/// A database connect request.
pub struct NewDatabase {
    pub name: String,
    pub connection_string: Secret,
    pub test: bool,
}

#[derive(Clone)]
pub struct ConnectorService {
    store: Arc<dyn Store>,
    vault: Vault,
    cfg: LiveConfig,
    projects: ProjectService,
    exchange: Arc<dyn TokenExchange>,
    probe: Arc<dyn DatabaseProbe>,
}

fn bad_state() -> Error {
    Error::InvalidCode {
        code: "invalid_state",
        message: "the authorisation state is unknown, expired, already used, or not yours; start again".into(),
    }
}

/// The event a connector change publishes (workspace.md): `{connectorId, type, name}`.
pub fn connector_event(kind: &str, c: &ConnectorRecord, actor: Option<UserId>) -> Event {
    Event {
        project_id: c.project_id,
        tenant_id: c.tenant_id,
        actor_user_id: actor,
        kind: kind.to_string(),
        payload: json!({"connectorId": c.id.to_string(), "type": c.ty, "name": c.name}),
        at: now_ms(),
    }
}

impl ConnectorService {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Vault,
        cfg: LiveConfig,
        projects: ProjectService,
        exchange: Arc<dyn TokenExchange>,
        probe: Arc<dyn DatabaseProbe>,
    ) -> Self {
        ConnectorService {
            store,
            vault,
            cfg,
            projects,
            exchange,
            probe,
        }
    }

    fn app(&self, ty: &str) -> Option<OAuthAppConfig> {
        self.cfg.get().connectors.apps.get(ty).cloned()
    }

    fn configured(app: &OAuthAppConfig) -> bool {
        !app.client_id.is_empty()
            && !app.client_secret.is_empty()
            && !app.authorize_url.is_empty()
            && !app.token_url.is_empty()
    }

    /// `GET /connectors/_public/providers`.
    pub fn providers(&self) -> Vec<ProviderView> {
        PROVIDERS
            .iter()
            .map(|p| match (p.is_oauth(), self.app(p.ty)) {
                (true, Some(app)) => ProviderView {
                    provider: p,
                    scopes: app.scopes.split_whitespace().map(str::to_string).collect(),
                    configured: Self::configured(&app),
                },
                (true, None) => ProviderView {
                    provider: p,
                    scopes: Vec::new(),
                    configured: false,
                },
                (false, _) => ProviderView {
                    provider: p,
                    scopes: Vec::new(),
                    configured: true,
                },
            })
            .collect()
    }

    /// The OAuth provider of this type; 404 for a type that is not one.
    pub fn oauth_provider(ty: &str) -> Result<&'static Provider> {
        connectors::provider(ty)
            .filter(|p| p.is_oauth())
            .ok_or_else(|| Error::not_found("OAuth connector type"))
    }

    fn redirect_uri(&self, ty: &str) -> String {
        format!("{}/api/connectors/oauth/{ty}/callback", self.cfg.get().public_url())
    }

    /// `POST /connectors/:type/authorize`: a fresh state bound to the caller, the project, the
    /// provider and a PKCE verifier (stored sealed, never returned).
    pub async fn authorize(&self, access: &ProjectAccess, ty: &str) -> Result<Authorization> {
        let provider = Self::oauth_provider(ty)?;
        access.require(Action::Develop)?;
        let app = self
            .app(provider.ty)
            .filter(Self::configured)
            .ok_or_else(|| Error::InvalidCode {
                code: "connector_unconfigured",
                message: format!(
                    "the {} OAuth app is not configured: an operator sets connectors.{}.client_id and client_secret",
                    provider.name, provider.ty
                ),
            })?;
        let now = now_ms();
        let ttl_ms = (self.cfg.get().connectors.oauth_state_ttl_seconds as i64).saturating_mul(1000);
        let _ = self.store.purge_oauth_states(now).await;
        let state = connectors::random_urlsafe(32);
        let verifier = Zeroizing::new(connectors::random_urlsafe(32));
        let mut record = OAuthState {
            state_hash: connectors::state_hash(&state),
            provider: provider.ty.to_string(),
            tenant_id: access.user.tenant_id,
            project_id: access.id(),
            user_id: access.user.id,
            sealed_verifier: Vec::new(),
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        };
        record.sealed_verifier = self.vault.seal(&oauth_state_aad(&record), verifier.as_bytes());
        self.store.insert_oauth_state(&record).await?;
        let url = connectors::authorize_url(
            &app.authorize_url,
            &app.client_id,
            &self.redirect_uri(provider.ty),
            &app.scopes,
            &state,
            &connectors::pkce_challenge(&verifier),
        )?;
        Ok(Authorization {
            url,
            state,
            expires_at: record.expires_at,
        })
    }

    /// `GET /connectors/oauth/:provider/callback`. The state authenticates the request;
    /// `session_user` is the user of a session the request also carries, if any. Every refusal
    /// (unknown, expired, reused, other provider, other user) is 400 and stores nothing; the
    /// state is spent by the first attempt whatever its outcome.
    pub async fn callback(
        &self,
        provider_ty: &str,
        params: CallbackParams,
        session_user: Option<UserId>,
        request_id: Option<String>,
    ) -> Result<CallbackOutcome> {
        let provider = Self::oauth_provider(provider_ty)?;
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .ok_or_else(|| Error::invalid("`state` is required"))?;
        if params.error.is_none() && params.code.as_deref().is_none_or(str::is_empty) {
            return Err(Error::invalid("`code` is required"));
        }
        let Some(pending) = self.store.take_oauth_state(&connectors::state_hash(state)).await? else {
            return Err(bad_state());
        };
        if pending.expires_at <= now_ms()
            || pending.provider != provider.ty
            || session_user.is_some_and(|u| u != pending.user_id)
        {
            return Err(bad_state());
        }
        // The user must still exist and still be allowed to connect on that project.
        let user = self
            .store
            .user_by_id(pending.user_id)
            .await?
            .filter(|u| u.tenant_id == pending.tenant_id)
            .ok_or_else(bad_state)?;
        let access = self
            .projects
            .access(&user, pending.project_id)
            .await
            .map_err(|_| bad_state())?;
        access.require(Action::Develop)?;
        if let Some(err) = &params.error {
            return Ok(CallbackOutcome::Failed {
                project_id: pending.project_id,
                code: connectors::safe_error_code(err),
            });
        }
        let verifier = self
            .vault
            .open(&oauth_state_aad(&pending), &pending.sealed_verifier)
            .map_err(|_| bad_state())?;
        let verifier = String::from_utf8_lossy(&verifier).into_owned();
        let verifier = Zeroizing::new(verifier);
        let Some(app) = self.app(provider.ty).filter(Self::configured) else {
            return Ok(CallbackOutcome::Failed {
                project_id: pending.project_id,
                code: "connector_unconfigured".into(),
            });
        };
        let code = params.code.unwrap_or_default();
        let redirect_uri = self.redirect_uri(provider.ty);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose()),
            ("code_verifier", verifier.as_str()),
        ];
        let answer = self.exchange.exchange(&app.token_url, &form).await;
        let parsed = answer.as_deref().and_then(connectors::parse_token_response);
        let Some(connectors::TokenAnswer {
            fields: token,
            scopes: granted,
        }) = parsed
        else {
            tracing::warn!(provider = provider.ty, "OAuth code exchange failed");
            return Ok(CallbackOutcome::Failed {
                project_id: pending.project_id,
                code: "exchange_failed".into(),
            });
        };
        let scopes = granted.unwrap_or_else(|| app.scopes.split_whitespace().map(str::to_string).collect());
        let record = ConnectorRecord {
            id: uuid::Uuid::now_v7(),
            tenant_id: pending.tenant_id,
            project_id: pending.project_id,
            ty: provider.ty.to_string(),
            category: provider.category.to_string(),
            name: provider.name.to_string(),
            display: provider.name.to_string(),
            status: "active".into(),
            scopes,
            created_at: now_ms(),
            created_by: Some(user.id),
            last_used_at: None,
            revoked_at: None,
        };
        let plain = Zeroizing::new(serde_json::to_vec(&token).map_err(Error::internal)?);
        let sealed = self
            .vault
            .seal(&connector_aad(record.tenant_id, record.project_id, record.id), &plain);
        self.store.insert_connector(&record, &sealed).await?;
        let ctx = Ctx {
            actor: Actor {
                id: user.id,
                email: user.email.clone(),
            },
            request_id,
        };
        self.audit_connected(&ctx, &record).await?;
        Ok(CallbackOutcome::Connected {
            connector: Box::new(record),
            actor: user.id,
        })
    }

    async fn audit_connected(&self, ctx: &Ctx, c: &ConnectorRecord) -> Result<()> {
        audit(
            &self.store,
            ctx,
            "connector.connected",
            format!("project:{}/connector:{}", c.project_id, c.id),
            None,
            Some(json!({"type": c.ty, "name": c.name, "display": c.display})),
            None,
        )
        .await
    }

    /// `POST /connectors/database/connect`: every refusal happens before any connection; the
    /// optional test connects to the checked address only and fails generically.
    pub async fn connect_database(
        &self,
        ctx: &Ctx,
        access: &ProjectAccess,
        new: NewDatabase,
    ) -> Result<ConnectorRecord> {
        access.require(Action::Develop)?;
        validate::text("name", &new.name, 1, 100)?;
        let conn = connectors::parse_connection_string(new.connection_string.expose())?;
        let allow_private = self.cfg.get().connectors.allow_private_networks;
        let addrs = connectors::resolve_allowed(&conn.host, conn.port, allow_private).await?;
        if new.test {
            // Connect to the address just checked, unless TLS must verify the host name (then
            // the certificate ties the connection to the name).
            let host = match (&conn.host, conn.ssl_mode.as_deref()) {
                (DbHost::Name(n), Some("verify-full" | "verify_identity" | "verify-identity")) => n.clone(),
                _ => addrs
                    .first()
                    .map(|a| a.ip().to_string())
                    .ok_or_else(|| Error::invalid("the host does not resolve"))?,
            };
            let target = ProbeTarget {
                kind: conn.kind,
                host,
                port: conn.port,
                user: conn.user.clone(),
                password: conn.password.clone(),
                database: conn.database.clone(),
                ssl_mode: conn.ssl_mode.clone(),
            };
            if !self.probe.probe(&target).await {
                return Err(Error::InvalidCode {
                    code: "connector_test_failed",
                    message: "could not connect to the database with these settings".into(),
                });
            }
        }
        let ty = conn.kind.connector_type();
        let provider = connectors::provider(ty).ok_or_else(|| Error::internal(anyhow::anyhow!("no provider {ty}")))?;
        let record = ConnectorRecord {
            id: uuid::Uuid::now_v7(),
            tenant_id: access.user.tenant_id,
            project_id: access.id(),
            ty: ty.to_string(),
            category: provider.category.to_string(),
            name: new.name,
            display: conn.display(),
            status: "active".into(),
            scopes: Vec::new(),
            created_at: now_ms(),
            created_by: Some(access.user.id),
            last_used_at: None,
            revoked_at: None,
        };
        let sealed = self.vault.seal(
            &connector_aad(record.tenant_id, record.project_id, record.id),
            new.connection_string.expose().as_bytes(),
        );
        self.store.insert_connector(&record, &sealed).await?;
        self.audit_connected(ctx, &record).await?;
        Ok(record)
    }

    /// `GET /connectors/:projectId`: the active connectors.
    pub async fn list(&self, access: &ProjectAccess) -> Result<Vec<ConnectorRecord>> {
        access.require(Action::Read)?;
        self.store.list_connectors(access.id(), false).await
    }

    /// `DELETE /connectors/:projectId/:id`: revokes and destroys the ciphertext. Returns the
    /// connector and whether this call revoked it (an already revoked one is answered as is).
    pub async fn revoke(&self, ctx: &Ctx, access: &ProjectAccess, id: uuid::Uuid) -> Result<(ConnectorRecord, bool)> {
        access.require(Action::Develop)?;
        let found = self
            .store
            .connector(access.id(), id)
            .await?
            .ok_or_else(|| Error::not_found("connector"))?;
        if found.status != "active" {
            return Ok((found, false));
        }
        let c = self
            .store
            .revoke_connector(access.id(), id, now_ms())
            .await?
            .ok_or_else(|| Error::not_found("connector"))?;
        audit(
            &self.store,
            ctx,
            "connector.revoked",
            format!("project:{}/connector:{}", c.project_id, c.id),
            None,
            Some(json!({"type": c.ty, "name": c.name})),
            None,
        )
        .await?;
        Ok((c, true))
    }

    /// The plaintext credential of an active connector (the token response as JSON, or the
    /// connection string), for the code that uses it. Never put it in an answer or a log.
    pub async fn open_credential(&self, project: ProjectId, id: uuid::Uuid) -> Result<Zeroizing<Vec<u8>>> {
        let c = self
            .store
            .connector(project, id)
            .await?
            .ok_or_else(|| Error::not_found("connector"))?;
        let sealed = self
            .store
            .connector_sealed(project, id)
            .await?
            .ok_or_else(|| Error::not_found("connector"))?;
        self.vault
            .open(&connector_aad(c.tenant_id, c.project_id, c.id), &sealed)
            .map_err(|e| Error::internal(anyhow::anyhow!("connector credential does not open: {e}")))
    }
}
