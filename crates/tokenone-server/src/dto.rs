//! Wire types of the REST control plane: camelCase, unknown request fields rejected, ids as
//! strings, times as RFC 3339 with milliseconds.

use serde::{Deserialize, Serialize};
use tokenone_core::model::{Member, Tenant, User};
use tokenone_core::roles::ProjectRole;
use tokenone_core::services::identity::Session;
use tokenone_core::services::projects::ProjectView;
use tokenone_core::time::format_ms;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterBody {
    pub email: String,
    pub password: String,
    pub name: String,
    pub tenant_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshBody {
    pub refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AcceptInviteBody {
    pub token: String,
    pub name: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub name: String,
    pub tenant_id: String,
    pub tenant_role: String,
    pub platform_admin: bool,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        UserDto {
            id: u.id.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            tenant_id: u.tenant_id.to_string(),
            tenant_role: u.tenant_role.as_str().into(),
            platform_admin: u.platform_admin,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokensDto {
    pub access_token: String,
    pub refresh_token: String,
}

/// The login answer, exactly the seed's shape (with more fields inside `user`).
#[derive(Serialize, ToSchema)]
pub struct SessionDto {
    pub user: UserDto,
    pub tokens: TokensDto,
}

impl From<&Session> for SessionDto {
    fn from(s: &Session) -> Self {
        SessionDto {
            user: UserDto::from(&s.user),
            tokens: TokensDto {
                access_token: s.tokens.access_token.clone(),
                refresh_token: s.tokens.refresh_token.clone(),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantDto {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeDto {
    pub user: UserDto,
    pub tenant: TenantDto,
}

impl MeDto {
    pub fn new(u: &User, t: &Tenant) -> Self {
        MeDto {
            user: u.into(),
            tenant: TenantDto {
                id: t.id.to_string(),
                name: t.name.clone(),
            },
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateProjectBody {
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchProjectBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListProjectsQuery {
    /// Include archived projects.
    pub include_archived: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDto {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// `build` or `live`.
    pub stage: String,
    pub archived: bool,
    /// `hot` or `cold`.
    pub storage_tier: String,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: Option<String>,
    pub my_role: String,
}

impl From<&ProjectView> for ProjectDto {
    fn from(v: &ProjectView) -> Self {
        let p = &v.project;
        ProjectDto {
            id: p.id.to_string(),
            tenant_id: p.tenant_id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            tags: p.tags.clone(),
            stage: p.stage.as_str().into(),
            archived: p.archived,
            storage_tier: p.storage_tier.as_str().into(),
            created_at: format_ms(p.created_at),
            updated_at: format_ms(p.updated_at),
            created_by: p.created_by.map(|u| u.to_string()),
            my_role: v.my_role.as_str().into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InviteBody {
    pub email: String,
    #[schema(value_type = String, example = "developer")]
    pub role: ProjectRole,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleBody {
    #[schema(value_type = String, example = "admin")]
    pub role: ProjectRole,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDto {
    pub id: String,
    pub user_id: Option<String>,
    pub email: String,
    pub name: String,
    pub role: String,
    /// `active` or `invited`.
    pub status: String,
    pub invited_at: String,
    pub joined_at: Option<String>,
    /// Only in the answer to an invite of an unknown email: the single-use link to share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_url: Option<String>,
}

impl From<&Member> for MemberDto {
    fn from(m: &Member) -> Self {
        MemberDto {
            id: m.id.to_string(),
            user_id: m.user_id.map(|u| u.to_string()),
            email: m.email.clone(),
            name: m.name.clone(),
            role: m.role.as_str().into(),
            status: m.status.as_str().into(),
            invited_at: format_ms(m.invited_at),
            joined_at: m.joined_at.map(format_ms),
            invite_url: None,
        }
    }
}

/// The failure envelope, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: String,
    pub code: String,
}
