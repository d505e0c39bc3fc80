//! Projects and membership: create/list/get/patch, invites, role changes, removal, the
//! last-owner rule and invite acceptance.

use super::audit;
use super::identity::{IdentityService, NewAccount, Session};
use super::live::LiveConfig;
use crate::ids::{MemberId, ProjectId};
use crate::model::*;
use crate::repo::{MemberGuard, Store};
use crate::roles::{effective_project_role, may_manage_role, Action, ProjectRole, TenantRole};
use crate::time::now_ms;
use crate::tokens::{random_base62, sha256_hex};
use crate::validate;
use crate::{Error, Result};
use serde_json::json;
use std::sync::Arc;

/// A project as one user sees it, with their effective role.
#[derive(Debug, Clone)]
pub struct ProjectView {
    pub project: Project,
    pub my_role: ProjectRole,
}

/// An authorised handle on one project: only [`ProjectService::access`] makes these.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    pub view: ProjectView,
    pub user: User,
}

impl ProjectAccess {
    pub fn id(&self) -> ProjectId {
        self.view.project.id
    }
    pub fn role(&self) -> ProjectRole {
        self.view.my_role
    }
    /// 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<()> {
        if self.role().at_least(action.min_role()) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "this action needs the {} role or higher on the project",
                action.min_role()
            )))
        }
    }
}

pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// A member just invited; `invite_url` is present (once) for an unknown email.
pub struct Invited {
    pub member: Member,
    pub invite_url: Option<String>,
}

#[derive(Clone)]
pub struct ProjectService {
    store: Arc<dyn Store>,
    cfg: LiveConfig,
}

fn validate_fields(name: Option<&str>, description: Option<&str>, tags: Option<&[String]>) -> Result<()> {
    if let Some(n) = name {
        validate::text("name", n, 1, 100)?;
    }
    if let Some(d) = description {
        validate::text("description", d, 0, 2000)?;
    }
    if let Some(t) = tags {
        validate::tags(t)?;
    }
    Ok(())
}

impl ProjectService {
    pub fn new(store: Arc<dyn Store>, cfg: LiveConfig) -> Self {
        ProjectService { store, cfg }
    }

    /// Resolves `project` for `user`: 404 when it is another tenant's or the user may not see it.
    pub async fn access(&self, user: &User, project: ProjectId) -> Result<ProjectAccess> {
        let found = self.store.project_with_role(user.tenant_id, project, user.id).await?;
        let Some((p, membership)) = found else {
            return Err(Error::not_found("project"));
        };
        let Some(role) = effective_project_role(user.tenant_role, membership) else {
            return Err(Error::not_found("project"));
        };
        Ok(ProjectAccess {
            view: ProjectView {
                project: p,
                my_role: role,
            },
            user: user.clone(),
        })
    }

    pub async fn create(
        &self,
        ctx: &Ctx,
        user: &User,
        name: String,
        description: Option<String>,
        tags: Option<Vec<String>>,
    ) -> Result<ProjectView> {
        validate_fields(Some(&name), description.as_deref(), tags.as_deref())?;
        let now = now_ms();
        let project = Project {
            id: ProjectId::new(),
            tenant_id: user.tenant_id,
            name,
            description: description.unwrap_or_default(),
            tags: tags.unwrap_or_default(),
            stage: Stage::Build,
            archived: false,
            storage_tier: StorageTier::Hot,
            created_at: now,
            updated_at: now,
            created_by: Some(user.id),
        };
        let owner = Member {
            id: MemberId::new(),
            project_id: project.id,
            user_id: Some(user.id),
            email: user.email.clone(),
            name: user.name.clone(),
            role: ProjectRole::Owner,
            status: MemberStatus::Active,
            invited_at: now,
            joined_at: Some(now),
        };
        self.store.create_project(&project, &owner).await?;
        audit(
            &self.store,
            ctx,
            "project.created",
            format!("project:{}", project.id),
            None,
            Some(json!({"name": project.name})),
            None,
        )
        .await?;
        Ok(ProjectView {
            project,
            my_role: ProjectRole::Owner,
        })
    }

    pub async fn list(&self, user: &User, include_archived: bool) -> Result<Vec<ProjectView>> {
        let all = user.tenant_role.implied_project_role().is_some();
        let rows = self
            .store
            .list_projects(user.tenant_id, user.id, all, include_archived)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, m)| {
                effective_project_role(user.tenant_role, m).map(|r| ProjectView { project: p, my_role: r })
            })
            .collect())
    }

    pub async fn patch(&self, ctx: &Ctx, access: &ProjectAccess, patch: ProjectPatch) -> Result<ProjectView> {
        access.require(Action::Develop)?;
        validate_fields(
            patch.name.as_deref(),
            patch.description.as_deref(),
            patch.tags.as_deref(),
        )?;
        let mut p = access.view.project.clone();
        let old = json!({"name": p.name, "description": p.description, "tags": p.tags});
        if let Some(n) = patch.name {
            p.name = n;
        }
        if let Some(d) = patch.description {
            p.description = d;
        }
        if let Some(t) = patch.tags {
            p.tags = t;
        }
        p.updated_at = now_ms();
        self.store.update_project(&p).await?;
        let new = json!({"name": p.name, "description": p.description, "tags": p.tags});
        audit(
            &self.store,
            ctx,
            "project.updated",
            format!("project:{}", p.id),
            Some(old),
            Some(new),
            None,
        )
        .await?;
        Ok(ProjectView {
            project: p,
            my_role: access.role(),
        })
    }

    pub async fn members(&self, access: &ProjectAccess) -> Result<Vec<Member>> {
        access.require(Action::Read)?;
        self.store.list_members(access.id()).await
    }

    async fn member_of(&self, access: &ProjectAccess, member: MemberId) -> Result<Member> {
        self.store
            .member(access.id(), member)
            .await?
            .ok_or_else(|| Error::not_found("member"))
    }

    /// `POST /projects/:id/members`.
    pub async fn invite(&self, ctx: &Ctx, access: &ProjectAccess, email: String, role: ProjectRole) -> Result<Invited> {
        access.require(Action::ManageMembers)?;
        validate::email(&email)?;
        if !may_manage_role(access.role(), role) {
            return Err(Error::forbidden("only an owner may grant the owner role"));
        }
        let key = validate::email_key(&email);
        let now = now_ms();
        let existing = self.store.user_by_email(&key).await?;
        let (member, invite, token) = match existing {
            Some(u) if u.tenant_id != access.user.tenant_id => {
                return Err(Error::conflict(
                    "this email belongs to an account of another organisation",
                ));
            }
            Some(u) => (
                Member {
                    id: MemberId::new(),
                    project_id: access.id(),
                    user_id: Some(u.id),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    role,
                    status: MemberStatus::Active,
                    invited_at: now,
                    joined_at: Some(now),
                },
                None,
                None,
            ),
            None => {
                let member = Member {
                    id: MemberId::new(),
                    project_id: access.id(),
                    user_id: None,
                    email: email.clone(),
                    name: String::new(),
                    role,
                    status: MemberStatus::Invited,
                    invited_at: now,
                    joined_at: None,
                };
                let token = random_base62(40);
                let invite = Invite {
                    token_hash: sha256_hex(&token),
                    member_id: member.id,
                    project_id: access.id(),
                    tenant_id: access.user.tenant_id,
                    email: email.clone(),
                    role,
                    created_at: now,
                    expires_at: now + self.cfg.get().auth.invite_ttl_seconds as i64 * 1000,
                    accepted_at: None,
                };
                (member, Some(invite), Some(token))
            }
        };
        self.store
            .add_member(&member, invite.as_ref())
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => Error::conflict("this email is already a member of the project"),
                e => e,
            })?;
        audit(
            &self.store,
            ctx,
            "member.invited",
            format!("project:{}/member:{}", access.id(), member.id),
            None,
            Some(json!({"email": member.email, "role": role.as_str(), "status": member.status.as_str()})),
            None,
        )
        .await?;
        let invite_url = token.map(|t| format!("{}/invites/accept?token={t}", self.cfg.get().public_url()));
        Ok(Invited { member, invite_url })
    }

    /// `PATCH /projects/:id/members/:memberId/role`.
    pub async fn change_role(
        &self,
        ctx: &Ctx,
        access: &ProjectAccess,
        member: MemberId,
        role: ProjectRole,
    ) -> Result<Member> {
        access.require(Action::ManageMembers)?;
        let current = self.member_of(access, member).await?;
        if !may_manage_role(access.role(), role) || !may_manage_role(access.role(), current.role) {
            return Err(Error::forbidden("only an owner may grant or take away the owner role"));
        }
        if current.role != role {
            self.store
                .set_member_role(
                    access.id(),
                    member,
                    role,
                    MemberGuard {
                        expected_role: current.role,
                        min_owners: 1,
                    },
                )
                .await?;
            audit(
                &self.store,
                ctx,
                "member.role_changed",
                format!("project:{}/member:{}", access.id(), member),
                Some(json!({"role": current.role.as_str()})),
                Some(json!({"role": role.as_str()})),
                None,
            )
            .await?;
        }
        self.member_of(access, member).await
    }

    /// `DELETE /projects/:id/members/:memberId`.
    pub async fn remove(&self, ctx: &Ctx, access: &ProjectAccess, member: MemberId) -> Result<Member> {
        access.require(Action::ManageMembers)?;
        let current = self.member_of(access, member).await?;
        if !may_manage_role(access.role(), current.role) {
            return Err(Error::forbidden("only an owner may remove an owner"));
        }
        self.store
            .remove_member(
                access.id(),
                member,
                MemberGuard {
                    expected_role: current.role,
                    min_owners: 1,
                },
            )
            .await?;
        audit(
            &self.store,
            ctx,
            "member.removed",
            format!("project:{}/member:{}", access.id(), member),
            Some(json!({"email": current.email, "role": current.role.as_str()})),
            None,
            None,
        )
        .await?;
        Ok(current)
    }

    /// `POST /invites/accept`: the invitee becomes a user of the tenant (tenant role `member`).
    pub async fn accept_invite(
        &self,
        identity: &IdentityService,
        token: &str,
        name: String,
        password: String,
    ) -> Result<Session> {
        let hash = sha256_hex(token);
        let invite = self.store.invite(&hash).await?;
        let invite = match invite {
            Some(i) if i.accepted_at.is_some() => return Err(Error::conflict("this invite has already been accepted")),
            Some(i) if i.expires_at <= now_ms() => return Err(Error::invalid("this invite has expired")),
            Some(i) => i,
            None => return Err(Error::not_found("invite")),
        };
        let acct = NewAccount {
            email: invite.email.clone(),
            password,
            name,
            tenant_name: None,
            tenant_role: TenantRole::Member,
            platform_admin: false,
        };
        let user = identity.new_user(&acct, invite.tenant_id).await?;
        self.store.accept_invite(&hash, &user, now_ms()).await?;
        identity.start_session(user).await
    }
}
