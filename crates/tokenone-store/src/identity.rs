//! Users, tenants, login sessions (refresh-token families) and login throttling rows.

use crate::{db_err, rows, SqlStore};
use async_trait::async_trait;
use tokenone_core::ids::{FamilyId, TenantId, TokenId, UserId};
use tokenone_core::model::{RefreshRecord, RotateOutcome, Tenant, User};
use tokenone_core::repo::IdentityRepo;
use tokenone_core::time::Millis;
use tokenone_core::validate::email_key;
use tokenone_core::Result;

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, tenant_id, email, email_key, name, password_hash, tenant_role, platform_admin, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";

pub(crate) fn bind_user<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    u: &User,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(u.id.to_string())
        .bind(u.tenant_id.to_string())
        .bind(u.email.clone())
        .bind(email_key(&u.email))
        .bind(u.name.clone())
        .bind(u.password_hash.clone())
        .bind(u.tenant_role.as_str())
        .bind(u.platform_admin as i64)
        .bind(u.created_at)
}

#[async_trait]
impl IdentityRepo for SqlStore {
    async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.w())
            .await
            .map_err(db_err)?;
        rows::get(&row, "n")
    }

    async fn create_tenant_with_user(&self, tenant: &Tenant, user: &User) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id.to_string())
            .bind(tenant.name.clone())
            .bind(tenant.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        bind_user(sqlx::query(INSERT_USER), user)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("INSERT INTO wallets (tenant_id, updated_at) VALUES ($1, $2)")
            .bind(tenant.id.to_string())
            .bind(tenant.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn user_by_email(&self, key: &str) -> Result<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE email_key = $1")
            .bind(key.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .map(|r| rows::tenant(&r))
            .transpose()
    }

    async fn session_user(&self, user: UserId, family: FamilyId) -> Result<Option<User>> {
        sqlx::query(
            "SELECT u.* FROM users u JOIN auth_families f ON f.user_id = u.id
             WHERE u.id = $1 AND f.id = $2 AND f.revoked_at IS NULL",
        )
        .bind(user.to_string())
        .bind(family.to_string())
        .fetch_optional(self.r())
        .await
        .map_err(db_err)?
        .map(|r| rows::user(&r))
        .transpose()
    }

    async fn create_session(&self, first: &RefreshRecord) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        sqlx::query("INSERT INTO auth_families (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(first.family_id.to_string())
            .bind(first.user_id.to_string())
            .bind(first.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_refresh(&mut tx, first).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn rotate_refresh(&self, old: TokenId, new: &RefreshRecord, now: Millis) -> Result<RotateOutcome> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        // The conditional update is the race arbiter: of concurrent presentations of one token,
        // exactly one sees `used_at IS NULL` (PostgreSQL re-checks it after the row lock).
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2
             WHERE id = $1 AND used_at IS NULL AND expires_at > $2
               AND family_id IN (SELECT id FROM auth_families WHERE revoked_at IS NULL)",
        )
        .bind(old.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if spent == 1 {
            insert_refresh(&mut tx, new).await?;
            tx.commit().await.map_err(db_err)?;
            return Ok(RotateOutcome::Rotated);
        }
        let row = sqlx::query("SELECT family_id, used_at FROM refresh_tokens WHERE id = $1")
            .bind(old.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let outcome = match row {
            Some(r) if rows::get::<Option<i64>>(&r, "used_at")?.is_some() => {
                let fam: String = rows::get(&r, "family_id")?;
                sqlx::query("UPDATE auth_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(fam)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                RotateOutcome::Reused
            }
            _ => RotateOutcome::Invalid,
        };
        tx.commit().await.map_err(db_err)?;
        Ok(outcome)
    }

    async fn revoke_family(&self, family: FamilyId, now: Millis) -> Result<()> {
        sqlx::query("UPDATE auth_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(family.to_string())
            .bind(now)
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn record_login_failure(&self, key: &str, at: Millis) -> Result<()> {
        sqlx::query("INSERT INTO login_failures (id, email_key, at) VALUES ($1, $2, $3)")
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(key.to_string())
            .bind(at)
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn login_failures_since(&self, key: &str, since: Millis) -> Result<(i64, Option<Millis>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE email_key = $1 AND at >= $2",
        )
        .bind(key.to_string())
        .bind(since)
        .fetch_one(self.r())
        .await
        .map_err(db_err)?;
        Ok((rows::get(&row, "n")?, rows::get(&row, "oldest")?))
    }

    async fn clear_login_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE email_key = $1")
            .bind(key.to_string())
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

async fn insert_refresh(tx: &mut sqlx::Transaction<'_, sqlx::Any>, r: &RefreshRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(r.id.to_string())
    .bind(r.family_id.to_string())
    .bind(r.user_id.to_string())
    .bind(r.created_at)
    .bind(r.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
