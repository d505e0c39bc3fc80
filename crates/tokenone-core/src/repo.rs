//! Repository traits: what the services need from storage. The store crate implements them for
//! SQLite and PostgreSQL; rules (who may, what is allowed) stay in the services.

use crate::economics::LedgerEntry;
use crate::error::Result;
use crate::ids::{FamilyId, MemberId, ProjectId, TenantId, TokenId, UserId};
use crate::keys::{ApiKey, KeyAuth, KeyId};
use crate::model::*;
use crate::roles::ProjectRole;
use crate::time::Millis;
use async_trait::async_trait;

#[async_trait]
pub trait IdentityRepo: Send + Sync {
    async fn count_users(&self) -> Result<i64>;
    /// Creates a tenant, its wallet, and its first user. A taken email is `Conflict`.
    async fn create_tenant_with_user(&self, tenant: &Tenant, user: &User) -> Result<()>;
    async fn user_by_email(&self, email_key: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;
    async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>>;
    /// The user behind a session, or `None` when the user is gone or the session revoked.
    async fn session_user(&self, user: UserId, family: FamilyId) -> Result<Option<User>>;
    /// Starts a login session with its first refresh token.
    async fn create_session(&self, first: &RefreshRecord) -> Result<()>;
    /// Spends `old` and stores `new` atomically; a second use of `old` revokes the family.
    async fn rotate_refresh(&self, old: TokenId, new: &RefreshRecord, now: Millis) -> Result<RotateOutcome>;
    async fn revoke_family(&self, family: FamilyId, now: Millis) -> Result<()>;
    async fn record_login_failure(&self, email_key: &str, at: Millis) -> Result<()>;
    /// Failures since `since`: how many and when the oldest of them happened.
    async fn login_failures_since(&self, email_key: &str, since: Millis) -> Result<(i64, Option<Millis>)>;
    async fn clear_login_failures(&self, email_key: &str) -> Result<()>;
}

#[async_trait]
pub trait ProjectRepo: Send + Sync {
    /// Creates a project and its first (owner) member in one transaction.
    async fn create_project(&self, project: &Project, owner: &Member) -> Result<()>;
    /// A project of `tenant` and `user`'s active membership role on it, if any.
    async fn project_with_role(
        &self,
        tenant: TenantId,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<(Project, Option<ProjectRole>)>>;
    /// Projects of `tenant`: all of them when `all`, else those `user` is an active member of.
    async fn list_projects(
        &self,
        tenant: TenantId,
        user: UserId,
        all: bool,
        include_archived: bool,
    ) -> Result<Vec<(Project, Option<ProjectRole>)>>;
    async fn update_project(&self, project: &Project) -> Result<()>;
}

/// Conditions a membership change must still meet inside its transaction, or it is rolled back
/// with `Conflict`: the member still has the role the caller's permission check saw, and at least
/// `min_owners` active owners remain.
#[derive(Debug, Clone, Copy)]
pub struct MemberGuard {
    pub expected_role: ProjectRole,
    pub min_owners: i64,
}

#[async_trait]
pub trait MemberRepo: Send + Sync {
    async fn list_members(&self, project: ProjectId) -> Result<Vec<Member>>;
    async fn member(&self, project: ProjectId, member: MemberId) -> Result<Option<Member>>;
    /// Adds a member (and its invite, for an unknown email). Already a member: `Conflict`.
    async fn add_member(&self, member: &Member, invite: Option<&Invite>) -> Result<()>;
    /// Sets a role under `guard`. Serialised per project, so concurrent demotions cannot both
    /// pass the owner count.
    async fn set_member_role(
        &self,
        project: ProjectId,
        member: MemberId,
        role: ProjectRole,
        guard: MemberGuard,
    ) -> Result<()>;
    /// Removes a member (and any pending invite) under `guard`.
    async fn remove_member(&self, project: ProjectId, member: MemberId, guard: MemberGuard) -> Result<()>;
    async fn invite(&self, token_hash: &str) -> Result<Option<Invite>>;
    /// Spends the invite, creates `user` in the invite's tenant and activates the member, in one
    /// transaction. An invite already spent is `Conflict`; a taken email is `Conflict`.
    async fn accept_invite(&self, token_hash: &str, user: &User, now: Millis) -> Result<()>;
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
}

#[async_trait]
pub trait SecretRepo: Send + Sync {
    /// A sealed server secret (JWT key, API-key pepper, ledger key) by name.
    async fn server_secret(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `sealed` unless the name is taken (another replica won the race); returns what is
    /// stored afterwards.
    async fn put_server_secret(&self, name: &str, sealed: &[u8], now: Millis) -> Result<Vec<u8>>;
}

#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Stores a key with the hash of its secret.
    async fn insert_key(&self, key: &ApiKey, hash: &str) -> Result<()>;
    async fn list_keys(&self, project: ProjectId) -> Result<Vec<ApiKey>>;
    async fn key(&self, project: ProjectId, id: KeyId) -> Result<Option<ApiKey>>;
    /// Sets `revoked_at` unless already set; returns the key as it is afterwards.
    async fn revoke_key(&self, project: ProjectId, id: KeyId, now: Millis) -> Result<Option<ApiKey>>;
    /// The proxy's lookup: the key with this secret hash and its project's state.
    async fn key_auth(&self, hash: &str) -> Result<Option<KeyAuth>>;
    /// Records when keys were last used (batched by the call writer).
    async fn touch_keys(&self, used: &[(KeyId, Millis)]) -> Result<()>;
}

#[async_trait]
pub trait CallRepo: Send + Sync {
    /// Writes a batch of calls in one transaction: each call row (a call whose id exists already
    /// is skipped entirely: exactly once), its ledger postings chained and signed with
    /// `ledger_key`, the wallet and lease movements, and the daily roll-ups.
    async fn settle_calls(&self, batch: &[Settled], ledger_key: &[u8]) -> Result<()>;
    /// Newest first, for a project.
    async fn recent_calls(&self, project: ProjectId, limit: i64) -> Result<Vec<CallRecord>>;
    /// Roll-up rows of `tenant` from `from_day` (`YYYY-MM-DD`, inclusive); `tenant: None` for all.
    async fn rollups(&self, tenant: Option<TenantId>, from_day: &str) -> Result<Vec<RollupRow>>;
}

#[async_trait]
pub trait WalletRepo: Send + Sync {
    async fn wallet(&self, tenant: TenantId) -> Result<Option<WalletRow>>;
    /// Carves `amount` of the available balance (balance − leased) into `lease` of `replica`;
    /// `false` (nothing changed) when less is available.
    async fn extend_lease(
        &self,
        tenant: TenantId,
        lease: uuid::Uuid,
        replica: &str,
        amount: u64,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool>;
    /// Gives `amount` of a lease back to the available balance.
    async fn return_lease(&self, tenant: TenantId, lease: uuid::Uuid, amount: u64, now: Millis) -> Result<()>;
    /// Keeps a live replica's leases from expiring.
    async fn renew_leases(&self, replica: &str, expires_at: Millis) -> Result<()>;
    /// Releases what expired leases (crashed replicas) still hold; returns the tokens released.
    async fn sweep_leases(&self, now: Millis) -> Result<u64>;
    /// Credits a top-up with its ledger entry under its idempotency key, and stores the answer
    /// `answer(entry id, entry seq, new balance)` to replay for that key, all in one transaction.
    async fn topup(
        &self,
        req: &TopupRequest,
        ledger_key: &[u8],
        answer: &(dyn Fn(uuid::Uuid, u64, i64) -> serde_json::Value + Send + Sync),
    ) -> Result<TopupOutcome>;
    /// A page of a tenant's ledger, newest first, below `before_seq`.
    async fn ledger_page(&self, tenant: TenantId, before_seq: Option<u64>, limit: i64) -> Result<Vec<LedgerEntry>>;
    /// A tenant's whole chain in `seq` order (verification).
    async fn ledger_chain(&self, tenant: TenantId) -> Result<Vec<LedgerEntry>>;
    /// Every tenant with a wallet.
    async fn wallet_tenants(&self) -> Result<Vec<TenantId>>;
}

/// The stored smart-router switch.
#[derive(Debug, Clone)]
pub struct RouterState {
    pub mode: String,
    pub rollout_pct: u8,
    pub updated_at: Millis,
    pub updated_by: Option<String>,
    pub reason: Option<String>,
}

/// Routing figures of the last 24 hours.
#[derive(Debug, Clone, Default)]
pub struct RouterStats {
    pub calls: i64,
    pub routed_calls: i64,
    pub shadow_calls: i64,
    pub savings_tokens: i64,
    pub shadow_savings_tokens: i64,
}

#[async_trait]
pub trait RouterRepo: Send + Sync {
    async fn router_state(&self) -> Result<RouterState>;
    /// Stores the switch and bumps the `router` runtime version, in one transaction.
    async fn set_router_state(&self, state: &RouterState) -> Result<()>;
    /// Delivered calls since `since`.
    async fn router_stats(&self, since: Millis) -> Result<RouterStats>;
}

/// Connectors and the pending OAuth round trips.
#[async_trait]
pub trait ConnectorRepo: Send + Sync {
    /// Stores a connector with its sealed credential.
    async fn insert_connector(&self, c: &crate::connectors::ConnectorRecord, sealed: &[u8]) -> Result<()>;
    /// A project's connectors, oldest first; revoked ones only when asked.
    async fn list_connectors(
        &self,
        project: ProjectId,
        include_revoked: bool,
    ) -> Result<Vec<crate::connectors::ConnectorRecord>>;
    async fn connector(&self, project: ProjectId, id: uuid::Uuid)
        -> Result<Option<crate::connectors::ConnectorRecord>>;
    /// The sealed credential of an active connector.
    async fn connector_sealed(&self, project: ProjectId, id: uuid::Uuid) -> Result<Option<Vec<u8>>>;
    /// Marks an active connector revoked and destroys its ciphertext; returns it as it is
    /// afterwards (`None`: no such connector).
    async fn revoke_connector(
        &self,
        project: ProjectId,
        id: uuid::Uuid,
        now: Millis,
    ) -> Result<Option<crate::connectors::ConnectorRecord>>;
    async fn insert_oauth_state(&self, s: &crate::connectors::OAuthState) -> Result<()>;
    /// Removes and returns the state with this hash: at most one caller ever gets it.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<crate::connectors::OAuthState>>;
    /// Deletes states that expired before `now`.
    async fn purge_oauth_states(&self, now: Millis) -> Result<()>;
}

/// One sealed value at rest, wherever it lives.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    /// `connectors`, `oauth_states`, `settings` or `server_secrets`.
    pub table: &'static str,
    /// The row's primary key.
    pub key: String,
    pub blob: Vec<u8>,
}

/// What `tokenone vault rotate` needs: every sealed value, and a compare-and-swap to replace one.
#[async_trait]
pub trait VaultRepo: Send + Sync {
    async fn sealed_records(&self) -> Result<Vec<SealedRecord>>;
    /// Replaces the record's blob with `new` if it still is `record.blob`; `false` when it
    /// changed (or went) meanwhile.
    async fn replace_sealed(&self, record: &SealedRecord, new: &[u8]) -> Result<bool>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    IdentityRepo
    + ProjectRepo
    + MemberRepo
    + AuditRepo
    + SecretRepo
    + KeyRepo
    + CallRepo
    + WalletRepo
    + AdminRepo
    + RouterRepo
    + ConnectorRepo
    + VaultRepo
    + Send
    + Sync
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Reachable and migrated.
    async fn ready(&self) -> Result<()>;
    /// Open database connections (all pools).
    fn connections(&self) -> u32 {
        0
    }
}

/// Platform administration: settings, levers, runtime versions, audit log, tenants, call export.
#[async_trait]
pub trait AdminRepo: Send + Sync {
    async fn settings(&self) -> Result<Vec<crate::admin::StoredSetting>>;
    /// Upserts a setting (exactly one of `value` / `sealed`) and bumps the `settings` version, in
    /// one transaction; returns the new version.
    async fn put_setting(&self, row: &crate::admin::StoredSetting, by: UserId) -> Result<i64>;
    /// Deletes a setting and bumps the version; `None` (nothing changed) when it was not stored.
    async fn delete_setting(&self, key: &str) -> Result<Option<i64>>;
    /// Every `runtime_versions` row: (kind, version).
    async fn runtime_versions(&self) -> Result<Vec<(String, i64)>>;
    async fn levers(&self) -> Result<Vec<crate::admin::StoredLever>>;
    /// Stores a lever's new value and its history row, bumping the `levers` version, in one
    /// transaction serialised against other lever writes. The history row's `old_value` is filled
    /// in from what was stored (`default_old` when nothing was); returns the row as written.
    async fn put_lever(
        &self,
        change: &crate::admin::LeverChange,
        default_old: &str,
    ) -> Result<crate::admin::LeverChange>;
    /// A lever's history, newest first, below the history id `before`.
    async fn lever_history(
        &self,
        name: &str,
        before: Option<uuid::Uuid>,
        limit: i64,
    ) -> Result<Vec<crate::admin::LeverChange>>;
    /// Audit rows, newest first, below the id `before`, optionally of one action.
    async fn audit_page(&self, action: Option<&str>, before: Option<uuid::Uuid>, limit: i64)
        -> Result<Vec<AuditEntry>>;
    async fn tenant_figures(&self) -> Result<Vec<crate::admin::TenantFigures>>;
    /// Calls matching `filter`, newest first (by `at`, then id), strictly after the `(at, id)`
    /// position `after` of the previous page.
    async fn calls_page(
        &self,
        filter: &crate::admin::CallFilter,
        after: Option<(Millis, uuid::Uuid)>,
        limit: i64,
    ) -> Result<Vec<CallRecord>>;
}
