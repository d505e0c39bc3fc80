//! Identity: register, login (with throttling), refresh rotation, logout, sessions, bootstrap.

use super::live::LiveConfig;
use crate::ids::{FamilyId, TenantId, TokenId, UserId};
use crate::model::{RefreshRecord, RotateOutcome, Tenant, User};
use crate::repo::Store;
use crate::roles::TenantRole;
use crate::time::now_ms;
use crate::tokens::{random_base62, Claims, JwtKeys, PasswordHasherCfg, TokenError, TokenType};
use crate::validate;
use crate::{Error, Result};
use std::sync::Arc;

/// A freshly issued access + refresh pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub access_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
}

/// What login, register, refresh and invite acceptance answer.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub tokens: TokenPair,
}

#[derive(Clone)]
pub struct IdentityService {
    store: Arc<dyn Store>,
    jwt: JwtKeys,
    cfg: LiveConfig,
    /// Verified against when the email is unknown, so both failures cost the same time.
    dummy_hash: Arc<String>,
}

pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub name: String,
    pub tenant_name: Option<String>,
    pub tenant_role: TenantRole,
    pub platform_admin: bool,
}

impl IdentityService {
    pub fn new(store: Arc<dyn Store>, jwt: JwtKeys, cfg: LiveConfig) -> Self {
        let hasher = Self::hasher_of(&cfg);
        let dummy_hash = Arc::new(hasher.hash(&random_base62(24)));
        IdentityService {
            store,
            jwt,
            cfg,
            dummy_hash,
        }
    }

    fn hasher_of(cfg: &LiveConfig) -> PasswordHasherCfg {
        let c = cfg.get();
        PasswordHasherCfg {
            memory_kib: c.auth.argon2_memory_kib,
            iterations: c.auth.argon2_iterations,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Hashes off the async runtime: Argon2id takes tens of milliseconds by design.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let hasher = Self::hasher_of(&self.cfg);
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(Error::internal)
    }

    async fn verify_password(&self, password: String, phc: String) -> Result<bool> {
        let hasher = Self::hasher_of(&self.cfg);
        tokio::task::spawn_blocking(move || hasher.verify(&password, &phc))
            .await
            .map_err(Error::internal)
    }

    pub fn validate_account(email: &str, password: &str, name: &str) -> Result<()> {
        validate::email(email)?;
        validate::password(password)?;
        validate::text("name", name, 1, 100)
    }

    /// Builds a user record (password hashed) for a new account in `tenant`.
    pub async fn new_user(&self, acct: &NewAccount, tenant: TenantId) -> Result<User> {
        Self::validate_account(&acct.email, &acct.password, &acct.name)?;
        Ok(User {
            id: UserId::new(),
            tenant_id: tenant,
            email: acct.email.clone(),
            name: acct.name.clone(),
            password_hash: self.hash_password(acct.password.clone()).await?,
            tenant_role: acct.tenant_role,
            platform_admin: acct.platform_admin,
            created_at: now_ms(),
        })
    }

    /// Creates a tenant with `acct` as its first user (owner), without checking the signup switch
    /// (the CLI and the bootstrap use this).
    pub async fn create_account(&self, acct: NewAccount) -> Result<User> {
        let tenant_name = acct
            .tenant_name
            .clone()
            .unwrap_or_else(|| format!("{}'s organisation", acct.name));
        validate::text("tenantName", &tenant_name, 1, 100)?;
        let tenant = Tenant {
            id: TenantId::new(),
            name: tenant_name,
            created_at: now_ms(),
        };
        let user = self.new_user(&acct, tenant.id).await?;
        self.store
            .create_tenant_with_user(&tenant, &user)
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => Error::conflict("an account with this email already exists"),
                e => e,
            })?;
        Ok(user)
    }

    /// `POST /auth/register`: a new tenant owned by this user, while signup is enabled.
    pub async fn register(
        &self,
        email: String,
        password: String,
        name: String,
        tenant_name: Option<String>,
    ) -> Result<Session> {
        if !self.cfg.get().auth.signup_enabled {
            return Err(Error::forbidden("sign-up is disabled on this installation"));
        }
        Self::validate_account(&email, &password, &name)?;
        if let Some(t) = &tenant_name {
            validate::text("tenantName", t, 1, 100)?;
        }
        let user = self
            .create_account(NewAccount {
                email,
                password,
                name,
                tenant_name,
                tenant_role: TenantRole::Owner,
                platform_admin: false,
            })
            .await?;
        self.start_session(user).await
    }

    /// `POST /auth/login`. Wrong email and wrong password are the same 401.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session> {
        let cfg = self.cfg.get();
        let key = validate::email_key(email);
        let now = now_ms();
        let window_ms = cfg.auth.login_window_seconds as i64 * 1000;
        let (failures, oldest) = self.store.login_failures_since(&key, now - window_ms).await?;
        if failures >= cfg.auth.login_max_failures as i64 {
            let until = oldest.unwrap_or(now) + window_ms;
            let retry = ((until - now).max(1000) + 999) / 1000;
            return Err(Error::RateLimited {
                message: "too many failed logins for this account; try again later".into(),
                retry_after_secs: retry as u64,
            });
        }
        let user = self.store.user_by_email(&key).await?;
        let phc = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| (*self.dummy_hash).clone());
        let ok = self.verify_password(password.to_string(), phc).await? && user.is_some();
        match user {
            Some(user) if ok => {
                self.store.clear_login_failures(&key).await?;
                self.start_session(user).await
            }
            _ => {
                self.store.record_login_failure(&key, now).await?;
                Err(Error::unauthenticated("invalid email or password"))
            }
        }
    }

    fn pair(&self, user: &User, family: FamilyId, refresh_id: TokenId) -> (TokenPair, RefreshRecord) {
        let cfg = self.cfg.get();
        let now = chrono::Utc::now().timestamp();
        let access_ttl = cfg.auth.access_ttl_seconds;
        let refresh_ttl = cfg.auth.refresh_ttl_seconds;
        let access = Claims {
            sub: user.id,
            tid: user.tenant_id,
            typ: TokenType::Access,
            iat: now,
            exp: now + access_ttl as i64,
            jti: TokenId::new(),
            fam: family,
        };
        let refresh = Claims {
            typ: TokenType::Refresh,
            exp: now + refresh_ttl as i64,
            jti: refresh_id,
            ..access.clone()
        };
        let record = RefreshRecord {
            id: refresh_id,
            family_id: family,
            user_id: user.id,
            created_at: now * 1000,
            expires_at: refresh.exp * 1000,
        };
        (
            TokenPair {
                access_token: self.jwt.issue(&access),
                refresh_token: self.jwt.issue(&refresh),
                access_ttl_seconds: access_ttl,
                refresh_ttl_seconds: refresh_ttl,
            },
            record,
        )
    }

    /// A new login session (a new refresh-token family) for `user`.
    pub async fn start_session(&self, user: User) -> Result<Session> {
        let (tokens, record) = self.pair(&user, FamilyId::new(), TokenId::new());
        self.store.create_session(&record).await?;
        Ok(Session { user, tokens })
    }

    fn refresh_claims(&self, token: &str) -> Result<Claims> {
        self.jwt.verify(token, TokenType::Refresh).map_err(|e| match e {
            TokenError::Expired => Error::unauthenticated("refresh token has expired"),
            TokenError::WrongType => Error::unauthenticated("not a refresh token"),
            TokenError::Invalid => Error::unauthenticated("invalid refresh token"),
        })
    }

    /// `POST /auth/refresh`: one use per refresh token; a reused one revokes its whole family.
    pub async fn refresh(&self, token: &str) -> Result<Session> {
        let claims = self.refresh_claims(token)?;
        let user = self
            .store
            .session_user(claims.sub, claims.fam)
            .await?
            .ok_or_else(|| Error::unauthenticated("session has been revoked"))?;
        let (tokens, record) = self.pair(&user, claims.fam, TokenId::new());
        match self.store.rotate_refresh(claims.jti, &record, now_ms()).await? {
            RotateOutcome::Rotated => Ok(Session { user, tokens }),
            RotateOutcome::Reused => {
                tracing::warn!(user_id = %user.id, "refresh token reused; session family revoked");
                Err(Error::unauthenticated(
                    "refresh token was already used; session revoked",
                ))
            }
            RotateOutcome::Invalid => Err(Error::unauthenticated("invalid refresh token")),
        }
    }

    /// `POST /auth/logout`: revokes the token's whole family (its access tokens stop working too).
    pub async fn logout(&self, refresh_token: Option<&str>) -> Result<()> {
        let Some(token) = refresh_token else { return Ok(()) };
        match self.jwt.verify(token, TokenType::Refresh) {
            Ok(c) => self.store.revoke_family(c.fam, now_ms()).await,
            // An expired refresh token's session is dead already: nothing to revoke.
            Err(TokenError::Expired) => Ok(()),
            Err(_) => Err(Error::unauthenticated("invalid refresh token")),
        }
    }

    /// Resolves an access token to its user, re-read from the database (so role and
    /// platform-admin changes apply at once, and a revoked session is refused).
    pub async fn authenticate(&self, access_token: &str) -> Result<User> {
        let claims = self.jwt.verify(access_token, TokenType::Access).map_err(|e| match e {
            TokenError::Expired => Error::unauthenticated("access token has expired"),
            TokenError::WrongType => Error::unauthenticated("not an access token"),
            TokenError::Invalid => Error::unauthenticated("invalid access token"),
        })?;
        self.store
            .session_user(claims.sub, claims.fam)
            .await?
            .ok_or_else(|| Error::unauthenticated("session has been revoked"))
    }

    pub async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        self.store.tenant(id).await?.ok_or_else(|| Error::not_found("tenant"))
    }

    /// On an empty database: the platform admin and its tenant. Returns the generated password
    /// when none was configured (to be printed once).
    pub async fn bootstrap_admin(&self) -> Result<Option<(String, Option<String>)>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let cfg = self.cfg.get();
        let email = if cfg.admin.email.is_empty() {
            "admin@localhost".to_string()
        } else {
            cfg.admin.email.clone()
        };
        let (password, generated) = if cfg.admin.password.is_empty() {
            let p = random_base62(24);
            (p.clone(), Some(p))
        } else {
            (cfg.admin.password.expose().to_string(), None)
        };
        // `admin@localhost` has no dotted domain; the bootstrap account is exempt from the
        // email rule that applies to accounts created through the API.
        let acct = NewAccount {
            email: email.clone(),
            password,
            name: "Platform admin".into(),
            tenant_name: Some("Platform".into()),
            tenant_role: TenantRole::Owner,
            platform_admin: true,
        };
        validate::password(&acct.password)?;
        let tenant = Tenant {
            id: TenantId::new(),
            name: "Platform".into(),
            created_at: now_ms(),
        };
        let user = User {
            id: UserId::new(),
            tenant_id: tenant.id,
            email: acct.email.clone(),
            name: acct.name.clone(),
            password_hash: self.hash_password(acct.password.clone()).await?,
            tenant_role: TenantRole::Owner,
            platform_admin: true,
            created_at: now_ms(),
        };
        match self.store.create_tenant_with_user(&tenant, &user).await {
            Ok(()) => Ok(Some((email, generated))),
            // Another replica bootstrapped at the same moment.
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
