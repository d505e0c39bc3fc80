//! Reading typed values out of rows, and the row → domain mappings shared by the repositories.

use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;
use tokenone_core::model::{Member, MemberStatus, Project, Stage, StorageTier, Tenant, User};
use tokenone_core::{Error, Result};

pub(crate) fn get<T>(row: &AnyRow, col: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(col)
        .map_err(|e| Error::internal(anyhow::anyhow!("column {col}: {e}")))
}

/// Parses a stored text column into a domain type (ids, roles, enums).
pub(crate) fn parse<T: FromStr>(row: &AnyRow, col: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let s: String = get(row, col)?;
    s.parse::<T>()
        .map_err(|e| Error::internal(anyhow::anyhow!("column {col}: {e}")))
}

pub(crate) fn parse_opt<T: FromStr>(row: &AnyRow, col: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let s: Option<String> = get(row, col)?;
    s.map(|s| {
        s.parse::<T>()
            .map_err(|e| Error::internal(anyhow::anyhow!("column {col}: {e}")))
    })
    .transpose()
}

pub(crate) fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: parse(row, "id")?,
        tenant_id: parse(row, "tenant_id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        tenant_role: parse(row, "tenant_role")?,
        platform_admin: get::<i64>(row, "platform_admin")? != 0,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn tenant(row: &AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: parse(row, "id")?,
        name: get(row, "name")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn project(row: &AnyRow) -> Result<Project> {
    let tags: String = get(row, "tags")?;
    let stage: String = get(row, "stage")?;
    let tier: String = get(row, "storage_tier")?;
    Ok(Project {
        id: parse(row, "id")?,
        tenant_id: parse(row, "tenant_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        tags: serde_json::from_str(&tags).map_err(Error::internal)?,
        stage: Stage::parse(&stage).ok_or_else(|| Error::internal(anyhow::anyhow!("bad stage {stage}")))?,
        archived: get::<i64>(row, "archived")? != 0,
        storage_tier: StorageTier::parse(&tier).ok_or_else(|| Error::internal(anyhow::anyhow!("bad tier {tier}")))?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        created_by: parse_opt(row, "created_by")?,
    })
}

pub(crate) fn member(row: &AnyRow) -> Result<Member> {
    let status: String = get(row, "status")?;
    Ok(Member {
        id: parse(row, "id")?,
        project_id: parse(row, "project_id")?,
        user_id: parse_opt(row, "user_id")?,
        email: get(row, "email")?,
        name: get::<Option<String>>(row, "user_name")?.unwrap_or_default(),
        role: parse(row, "role")?,
        status: if status == "active" {
            MemberStatus::Active
        } else {
            MemberStatus::Invited
        },
        invited_at: get(row, "invited_at")?,
        joined_at: get(row, "joined_at")?,
    })
}
