//! Domain records as services and repositories exchange them (not the wire DTOs).

use crate::ids::{AuditId, FamilyId, MemberId, ProjectId, TenantId, TokenId, UserId};
use crate::roles::{ProjectRole, TenantRole};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: Millis,
}

#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub tenant_role: TenantRole,
    pub platform_admin: bool,
    pub created_at: Millis,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("tenant_role", &self.tenant_role)
            .field("platform_admin", &self.platform_admin)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub id: TokenId,
    pub family_id: FamilyId,
    pub user_id: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// What happened when a refresh token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// It was fresh; it is now spent and the new one stored.
    Rotated,
    /// It had been used before: theft. Its family is now revoked.
    Reused,
    /// Unknown, expired or its family revoked.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Build,
    Live,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Live => "live",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "build" => Some(Stage::Build),
            "live" => Some(Stage::Live),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageTier {
    Hot,
    Cold,
}

impl StorageTier {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageTier::Hot => "hot",
            StorageTier::Cold => "cold",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hot" => Some(StorageTier::Hot),
            "cold" => Some(StorageTier::Cold),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub stage: Stage,
    pub archived: bool,
    pub storage_tier: StorageTier,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub created_by: Option<UserId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Active,
    Invited,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Invited => "invited",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: MemberId,
    pub project_id: ProjectId,
    pub user_id: Option<UserId>,
    pub email: String,
    /// The user's name; empty for an invite not yet accepted.
    pub name: String,
    pub role: ProjectRole,
    pub status: MemberStatus,
    pub invited_at: Millis,
    pub joined_at: Option<Millis>,
}

/// A pending invite; only the SHA-256 of its token is stored.
#[derive(Debug, Clone)]
pub struct Invite {
    pub token_hash: String,
    pub member_id: MemberId,
    pub project_id: ProjectId,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: ProjectRole,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub accepted_at: Option<Millis>,
}

/// Who did something, for audit rows and events.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: UserId,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: AuditId,
    pub at: Millis,
    pub actor: Option<Actor>,
    pub action: String,
    pub target: String,
    pub old_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

/// The context a service call runs in: who asks, and the request id for audit and logs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub request_id: Option<String>,
}

/// One proxy call as the call log keeps it (written exactly once, keyed by the call id).
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub id: uuid::Uuid,
    pub at: Millis,
    pub tenant_id: String,
    pub project_id: String,
    pub key_id: String,
    /// `live` or `dev`.
    pub mode: String,
    /// The client's shape: `openai`, `anthropic`, `gemini`.
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
    pub stream: bool,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub usage_estimated: bool,
    pub burn_tokens: i64,
    pub savings_tokens: i64,
    pub pass_back_tokens: i64,
    pub uncollected_tokens: i64,
    /// In shadow mode: what routing would have saved on this natively delivered call.
    pub shadow_savings_tokens: i64,
    pub latency_ms: i64,
    /// The HTTP status the client got.
    pub status: u16,
    pub error_code: Option<String>,
}

impl CallRecord {
    /// The call delivered an answer: what the roll-ups (summary) and the router's figures count.
    /// The store's SQL filters say the same (`delivered_model IS NOT NULL AND status < 400`).
    pub fn delivered(&self) -> bool {
        self.status < 400 && self.delivered_model.is_some()
    }
}

/// A tenant's live wallet as stored.
#[derive(Debug, Clone)]
pub struct WalletRow {
    pub tenant_id: crate::ids::TenantId,
    pub balance_tokens: i64,
    /// Carved out into replicas' leases for calls in flight; `<= balance_tokens`.
    pub leased_tokens: i64,
    pub updated_at: Millis,
}

/// The money side of a settled live call: what to post and which lease paid.
#[derive(Debug, Clone)]
pub struct LiveSettlement {
    pub lease_id: uuid::Uuid,
    /// Burn, pass-back and uncollected postings (zero amounts left out).
    pub postings: Vec<crate::economics::Posting>,
    /// Taken from the wallet (burn minus uncollected).
    pub debited: u64,
    /// Given back to the wallet (pass-back).
    pub credited: u64,
}

/// A call ready to be written: its record and, for a live call that delivered, its money.
#[derive(Debug, Clone)]
pub struct Settled {
    pub record: CallRecord,
    pub money: Option<LiveSettlement>,
}

/// A top-up as the store applies it, with its idempotency key.
#[derive(Debug, Clone)]
pub struct TopupRequest {
    pub tenant_id: crate::ids::TenantId,
    pub amount_tokens: u64,
    pub idempotency_key: String,
    /// SHA-256 of the canonical request: the same key with another body is a conflict.
    pub request_hash: String,
    pub memo: String,
    pub at: Millis,
}

#[derive(Debug, Clone)]
pub enum TopupOutcome {
    /// Credited now: the answer (also stored for replays).
    Applied(serde_json::Value),
    /// The key was used before with the same body: the stored answer.
    Replayed(serde_json::Value),
    /// The key was used before with another body.
    KeyReused,
}

/// One row of the daily roll-up (per tenant, project, day, mode, requested and delivered model).
#[derive(Debug, Clone, Default)]
pub struct RollupRow {
    pub project_id: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub mode: String,
    pub requested_model: String,
    pub delivered_model: String,
    pub calls: i64,
    pub routed_calls: i64,
    pub shadow_calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub burn_tokens: i64,
    pub savings_tokens: i64,
    pub shadow_savings_tokens: i64,
    pub pass_back_tokens: i64,
    pub uncollected_tokens: i64,
}
