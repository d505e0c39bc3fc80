//! Projects, members and invites.

use crate::identity::{bind_user, INSERT_USER};
use crate::{db_err, rows, SqlStore};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use tokenone_core::ids::{MemberId, ProjectId, TenantId, UserId};
use tokenone_core::model::{Invite, Member, Project, User};
use tokenone_core::repo::{MemberGuard, MemberRepo, ProjectRepo};
use tokenone_core::roles::ProjectRole;
use tokenone_core::time::Millis;
use tokenone_core::validate::email_key;
use tokenone_core::{Error, Result};

const MEMBER_SELECT: &str =
    "SELECT m.*, u.name AS user_name FROM project_members m LEFT JOIN users u ON u.id = m.user_id";

fn with_role(r: &AnyRow) -> Result<(Project, Option<ProjectRole>)> {
    Ok((rows::project(r)?, rows::parse_opt(r, "member_role")?))
}

async fn insert_member(tx: &mut sqlx::Transaction<'_, sqlx::Any>, m: &Member) -> Result<()> {
    sqlx::query(
        "INSERT INTO project_members (id, project_id, user_id, email, email_key, role, status, invited_at, joined_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(m.id.to_string())
    .bind(m.project_id.to_string())
    .bind(m.user_id.map(|u| u.to_string()))
    .bind(m.email.clone())
    .bind(email_key(&m.email))
    .bind(m.role.as_str())
    .bind(m.status.as_str())
    .bind(m.invited_at)
    .bind(m.joined_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Takes the project's row lock (PostgreSQL) so membership changes of one project run one at a
/// time; SQLite's single writer already serialises them.
async fn lock_project(tx: &mut sqlx::Transaction<'_, sqlx::Any>, project: ProjectId) -> Result<()> {
    sqlx::query("UPDATE projects SET updated_at = updated_at WHERE id = $1")
        .bind(project.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn active_owners(tx: &mut sqlx::Transaction<'_, sqlx::Any>, project: ProjectId) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM project_members WHERE project_id = $1 AND role = 'owner' AND status = 'active'",
    )
    .bind(project.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    rows::get(&row, "n")
}

async fn member_role_status(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project: ProjectId,
    member: MemberId,
) -> Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT role, status FROM project_members WHERE id = $1 AND project_id = $2")
        .bind(member.to_string())
        .bind(project.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    row.map(|r| Ok((rows::get(&r, "role")?, rows::get(&r, "status")?)))
        .transpose()
}

/// The member's role changed since the caller's permission check: refuse rather than act on a
/// role the check did not see.
fn check_expected(old_role: &str, guard: MemberGuard) -> Result<()> {
    if old_role != guard.expected_role.as_str() {
        return Err(Error::conflict("the member's role changed meanwhile; reload and retry"));
    }
    Ok(())
}

#[async_trait]
impl ProjectRepo for SqlStore {
    async fn create_project(&self, p: &Project, owner: &Member) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO projects (id, tenant_id, name, description, tags, stage, archived, storage_tier, created_at, updated_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(p.id.to_string())
        .bind(p.tenant_id.to_string())
        .bind(p.name.clone())
        .bind(p.description.clone())
        .bind(serde_json::to_string(&p.tags).map_err(Error::internal)?)
        .bind(p.stage.as_str())
        .bind(p.archived as i64)
        .bind(p.storage_tier.as_str())
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.created_by.map(|u| u.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_member(&mut tx, owner).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn project_with_role(
        &self,
        tenant: TenantId,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<(Project, Option<ProjectRole>)>> {
        sqlx::query(
            "SELECT p.*, m.role AS member_role FROM projects p
             LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $3 AND m.status = 'active'
             WHERE p.id = $2 AND p.tenant_id = $1",
        )
        .bind(tenant.to_string())
        .bind(project.to_string())
        .bind(user.to_string())
        .fetch_optional(self.r())
        .await
        .map_err(db_err)?
        .map(|r| with_role(&r))
        .transpose()
    }

    async fn list_projects(
        &self,
        tenant: TenantId,
        user: UserId,
        all: bool,
        include_archived: bool,
    ) -> Result<Vec<(Project, Option<ProjectRole>)>> {
        sqlx::query(
            "SELECT p.*, m.role AS member_role FROM projects p
             LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2 AND m.status = 'active'
             WHERE p.tenant_id = $1 AND ($3 = 1 OR m.role IS NOT NULL) AND ($4 = 1 OR p.archived = 0)
             ORDER BY p.created_at, p.id",
        )
        .bind(tenant.to_string())
        .bind(user.to_string())
        .bind(all as i64)
        .bind(include_archived as i64)
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(with_role)
        .collect()
    }

    async fn update_project(&self, p: &Project) -> Result<()> {
        // Only the fields a PATCH edits: stage, archive and storage tier have their own guarded
        // updates, which a concurrent rename must not undo.
        sqlx::query("UPDATE projects SET name = $2, description = $3, tags = $4, updated_at = $5 WHERE id = $1")
            .bind(p.id.to_string())
            .bind(p.name.clone())
            .bind(p.description.clone())
            .bind(serde_json::to_string(&p.tags).map_err(Error::internal)?)
            .bind(p.updated_at)
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl MemberRepo for SqlStore {
    async fn list_members(&self, project: ProjectId) -> Result<Vec<Member>> {
        sqlx::query(&format!(
            "{MEMBER_SELECT} WHERE m.project_id = $1 ORDER BY m.invited_at, m.id"
        ))
        .bind(project.to_string())
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::member)
        .collect()
    }

    async fn member(&self, project: ProjectId, member: MemberId) -> Result<Option<Member>> {
        sqlx::query(&format!("{MEMBER_SELECT} WHERE m.project_id = $1 AND m.id = $2"))
            .bind(project.to_string())
            .bind(member.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .map(|r| rows::member(&r))
            .transpose()
    }

    async fn add_member(&self, m: &Member, invite: Option<&Invite>) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        insert_member(&mut tx, m).await?;
        if let Some(i) = invite {
            sqlx::query(
                "INSERT INTO invites (token_hash, member_id, project_id, tenant_id, email, role, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(i.token_hash.clone())
            .bind(i.member_id.to_string())
            .bind(i.project_id.to_string())
            .bind(i.tenant_id.to_string())
            .bind(i.email.clone())
            .bind(i.role.as_str())
            .bind(i.created_at)
            .bind(i.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn set_member_role(
        &self,
        project: ProjectId,
        member: MemberId,
        role: ProjectRole,
        guard: MemberGuard,
    ) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        lock_project(&mut tx, project).await?;
        let Some((old_role, status)) = member_role_status(&mut tx, project, member).await? else {
            return Err(Error::not_found("member"));
        };
        check_expected(&old_role, guard)?;
        sqlx::query("UPDATE project_members SET role = $3 WHERE id = $1 AND project_id = $2")
            .bind(member.to_string())
            .bind(project.to_string())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if old_role == "owner" && status == "active" && active_owners(&mut tx, project).await? < guard.min_owners {
            return Err(Error::conflict("a project must keep at least one owner"));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn remove_member(&self, project: ProjectId, member: MemberId, guard: MemberGuard) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        lock_project(&mut tx, project).await?;
        let Some((old_role, status)) = member_role_status(&mut tx, project, member).await? else {
            return Err(Error::not_found("member"));
        };
        check_expected(&old_role, guard)?;
        sqlx::query("DELETE FROM invites WHERE member_id = $1 AND accepted_at IS NULL")
            .bind(member.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM project_members WHERE id = $1 AND project_id = $2")
            .bind(member.to_string())
            .bind(project.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if old_role == "owner" && status == "active" && active_owners(&mut tx, project).await? < guard.min_owners {
            return Err(Error::conflict("a project must keep at least one owner"));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn invite(&self, token_hash: &str) -> Result<Option<Invite>> {
        let row = sqlx::query("SELECT * FROM invites WHERE token_hash = $1")
            .bind(token_hash.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Invite {
                token_hash: rows::get(&r, "token_hash")?,
                member_id: rows::parse(&r, "member_id")?,
                project_id: rows::parse(&r, "project_id")?,
                tenant_id: rows::parse(&r, "tenant_id")?,
                email: rows::get(&r, "email")?,
                role: rows::parse(&r, "role")?,
                created_at: rows::get(&r, "created_at")?,
                expires_at: rows::get(&r, "expires_at")?,
                accepted_at: rows::get(&r, "accepted_at")?,
            })
        })
        .transpose()
    }

    async fn accept_invite(&self, token_hash: &str, user: &User, now: Millis) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        let row = sqlx::query(
            "UPDATE invites SET accepted_at = $2 WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2 RETURNING member_id",
        )
        .bind(token_hash.to_string())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Err(Error::conflict("this invite has already been accepted or has expired"));
        };
        let member_id: String = rows::get(&row, "member_id")?;
        bind_user(sqlx::query(INSERT_USER), user)
            .execute(&mut *tx)
            .await
            .map_err(|e| match db_err(e) {
                Error::Conflict(_) => Error::conflict("an account with this email already exists"),
                e => e,
            })?;
        let updated = sqlx::query("UPDATE project_members SET user_id = $2, status = 'active', joined_at = $3 WHERE id = $1 AND status = 'invited'")
            .bind(member_id)
            .bind(user.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated != 1 {
            return Err(Error::not_found("invite"));
        }
        // The invitee is now a user of the tenant: their other pending memberships in it become
        // active, as an invite of an existing user of the tenant would have made them, and those
        // links are spent.
        let key = email_key(&user.email);
        sqlx::query(
            "UPDATE invites SET accepted_at = $3 WHERE tenant_id = $2 AND accepted_at IS NULL AND member_id IN
             (SELECT id FROM project_members WHERE email_key = $1 AND status = 'invited')",
        )
        .bind(key.clone())
        .bind(user.tenant_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE project_members SET user_id = $2, status = 'active', joined_at = $4
             WHERE email_key = $1 AND status = 'invited' AND project_id IN (SELECT id FROM projects WHERE tenant_id = $3)",
        )
        .bind(key)
        .bind(user.id.to_string())
        .bind(user.tenant_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}
