//! API key management: create (secret shown once), list, revoke — with the role rules of auth.md
//! (own keys: developer+; anyone's: admin+).

use super::audit;
use super::projects::ProjectAccess;
use crate::keys::{generate_secret, hash_secret, parse_cidr, ApiKey, KeyId, KeyMode, RateOverrides, SHAPES};
use crate::model::Ctx;
use crate::repo::Store;
use crate::roles::Action;
use crate::time::{now_ms, Millis};
use crate::{validate, Error, Result};
use serde_json::json;
use std::sync::Arc;

pub struct NewKey {
    pub name: String,
    pub mode: KeyMode,
    pub scopes: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<RateOverrides>,
    pub ip_allowlist: Option<Vec<String>>,
    pub expires_at: Option<Millis>,
}

#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    pepper: Arc<Vec<u8>>,
}

impl KeyService {
    pub fn new(store: Arc<dyn Store>, pepper: Vec<u8>) -> Self {
        KeyService {
            store,
            pepper: Arc::new(pepper),
        }
    }

    /// The stored form of a presented secret.
    pub fn hash(&self, secret: &str) -> String {
        hash_secret(&self.pepper, secret)
    }

    /// Creates a key; returns it with its secret, which is never shown again.
    pub async fn create(&self, ctx: &Ctx, access: &ProjectAccess, new: NewKey) -> Result<(ApiKey, String)> {
        access.require(Action::Develop)?;
        validate::text("name", &new.name, 1, 100)?;
        let scopes = match new.scopes {
            None => SHAPES.iter().map(|s| s.to_string()).collect(),
            Some(s) => {
                if s.is_empty() {
                    return Err(Error::invalid(
                        "`scopes` must name at least one of openai, anthropic, gemini",
                    ));
                }
                let mut out: Vec<String> = Vec::new();
                for x in s {
                    if !SHAPES.contains(&x.as_str()) {
                        return Err(Error::invalid(format!(
                            "unknown scope `{}`; use openai, anthropic or gemini",
                            x.chars().take(40).collect::<String>()
                        )));
                    }
                    if !out.contains(&x) {
                        out.push(x);
                    }
                }
                out
            }
        };
        let rates = new.rate_limit_per_minute.unwrap_or_default();
        for v in [rates.openai, rates.anthropic, rates.gemini].into_iter().flatten() {
            if v == 0 || v > 1_000_000 {
                return Err(Error::invalid("`rateLimitPerMinute` values must be 1 to 1000000"));
            }
        }
        let ips = new.ip_allowlist.unwrap_or_default();
        if ips.len() > 100 {
            return Err(Error::invalid("at most 100 `ipAllowlist` entries"));
        }
        let mut nets = Vec::with_capacity(ips.len());
        for s in &ips {
            nets.push(parse_cidr(s).ok_or_else(|| {
                Error::invalid(format!(
                    "`{}` is not a CIDR or IP address",
                    s.chars().take(60).collect::<String>()
                ))
            })?);
        }
        let now = now_ms();
        if let Some(e) = new.expires_at {
            if e <= now {
                return Err(Error::invalid("`expiresAt` must be in the future"));
            }
        }
        let secret = generate_secret(new.mode);
        let key = ApiKey {
            id: uuid::Uuid::now_v7(),
            project_id: access.id(),
            tenant_id: access.user.tenant_id,
            name: new.name,
            mode: new.mode,
            prefix: secret.chars().take(12).collect(),
            last4: secret.chars().skip(secret.len() - 4).collect(),
            scopes,
            rate_limit_per_minute: rates,
            ip_allowlist: nets,
            created_at: now,
            created_by: Some(access.user.id),
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        self.store.insert_key(&key, &self.hash(&secret)).await?;
        audit(
            &self.store,
            ctx,
            "key.created",
            format!("project:{}/key:{}", key.project_id, key.id),
            None,
            Some(json!({"name": key.name, "mode": key.mode.as_str(), "prefix": key.prefix})),
            None,
        )
        .await?;
        Ok((key, secret))
    }

    pub async fn list(&self, access: &ProjectAccess) -> Result<Vec<ApiKey>> {
        access.require(Action::Read)?;
        self.store.list_keys(access.id()).await
    }

    /// Revokes a key: its creator needs developer+, anyone else admin+. Revoking a revoked key
    /// answers it unchanged.
    pub async fn revoke(&self, ctx: &Ctx, access: &ProjectAccess, id: KeyId) -> Result<ApiKey> {
        access.require(Action::Develop)?;
        let key = self
            .store
            .key(access.id(), id)
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        if key.created_by != Some(access.user.id) {
            access.require(Action::Operate)?;
        }
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let key = self
            .store
            .revoke_key(access.id(), id, now_ms())
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        audit(
            &self.store,
            ctx,
            "key.revoked",
            format!("project:{}/key:{}", key.project_id, key.id),
            None,
            Some(json!({"prefix": key.prefix})),
            None,
        )
        .await?;
        Ok(key)
    }
}
