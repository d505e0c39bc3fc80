//! Who may do what: tenant roles, project roles and the action table of auth.md, in one place.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role in their tenant (organisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantRole {
    Owner,
    Admin,
    Member,
}

impl TenantRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantRole::Owner => "owner",
            TenantRole::Admin => "admin",
            TenantRole::Member => "member",
        }
    }
    /// Tenant owners and admins act as `owner` on every project of their tenant.
    pub fn implied_project_role(self) -> Option<ProjectRole> {
        match self {
            TenantRole::Owner | TenantRole::Admin => Some(ProjectRole::Owner),
            TenantRole::Member => None,
        }
    }
}

impl FromStr for TenantRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(TenantRole::Owner),
            "admin" => Ok(TenantRole::Admin),
            "member" => Ok(TenantRole::Member),
            other => Err(format!("unknown tenant role `{other}`")),
        }
    }
}

/// A role on one project, ranked `owner` > `admin` > `developer` > `viewer`.
/// The derived order follows the declaration order, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectRole {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl ProjectRole {
    pub const ALL: [ProjectRole; 4] = [
        ProjectRole::Viewer,
        ProjectRole::Developer,
        ProjectRole::Admin,
        ProjectRole::Owner,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Developer => "developer",
            ProjectRole::Admin => "admin",
            ProjectRole::Owner => "owner",
        }
    }
    pub fn at_least(self, min: ProjectRole) -> bool {
        self >= min
    }
}

impl fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(ProjectRole::Viewer),
            "developer" => Ok(ProjectRole::Developer),
            "admin" => Ok(ProjectRole::Admin),
            "owner" => Ok(ProjectRole::Owner),
            other => Err(format!("unknown role `{other}`")),
        }
    }
}

/// The effective project role: the higher of the explicit membership and what the tenant role
/// implies. `None` means the user may not know the project exists (404).
pub fn effective_project_role(tenant_role: TenantRole, membership: Option<ProjectRole>) -> Option<ProjectRole> {
    match (tenant_role.implied_project_role(), membership) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Every action of auth.md's role table, so a handler names the action and this file alone says
/// which role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the project, members, events, summary, picks, handoff.
    Read,
    /// Create/revoke own API keys; connect/revoke connectors; rename/describe/retag.
    Develop,
    /// Revoke anyone's keys; stage flip; archive; cold move/restore; export.
    Operate,
    /// Invite/remove members and change roles, up to `admin`.
    ManageMembers,
}

impl Action {
    pub fn min_role(self) -> ProjectRole {
        match self {
            Action::Read => ProjectRole::Viewer,
            Action::Develop => ProjectRole::Developer,
            Action::Operate | Action::ManageMembers => ProjectRole::Admin,
        }
    }
}

/// May `actor` grant `role` to someone, or take it away? Granting or removing `owner` needs an
/// owner; anything up to `admin` needs an admin.
pub fn may_manage_role(actor: ProjectRole, role: ProjectRole) -> bool {
    if role == ProjectRole::Owner {
        actor == ProjectRole::Owner
    } else {
        actor >= ProjectRole::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProjectRole::*;

    #[test]
    fn ladder_is_ordered() {
        assert!(Owner > Admin && Admin > Developer && Developer > Viewer);
        assert!(Admin.at_least(Developer));
        assert!(!Viewer.at_least(Developer));
        for r in ProjectRole::ALL {
            assert_eq!(r.as_str().parse::<ProjectRole>(), Ok(r));
        }
        assert!("root".parse::<ProjectRole>().is_err());
    }

    #[test]
    fn tenant_role_lifts_project_role() {
        assert_eq!(effective_project_role(TenantRole::Owner, None), Some(Owner));
        assert_eq!(effective_project_role(TenantRole::Admin, Some(Viewer)), Some(Owner));
        assert_eq!(
            effective_project_role(TenantRole::Member, Some(Developer)),
            Some(Developer)
        );
        assert_eq!(effective_project_role(TenantRole::Member, None), None);
    }

    #[test]
    fn action_table_matches_auth_md() {
        let table = [
            (Action::Read, [true, true, true, true]),
            (Action::Develop, [false, true, true, true]),
            (Action::Operate, [false, false, true, true]),
            (Action::ManageMembers, [false, false, true, true]),
        ];
        for (action, allowed) in table {
            for (role, ok) in ProjectRole::ALL.iter().zip(allowed) {
                assert_eq!(role.at_least(action.min_role()), ok, "{action:?} as {role}");
            }
        }
    }

    #[test]
    fn only_owners_touch_owner() {
        assert!(may_manage_role(Owner, Owner));
        assert!(!may_manage_role(Admin, Owner));
        assert!(may_manage_role(Admin, Admin));
        assert!(may_manage_role(Admin, Viewer));
        assert!(!may_manage_role(Developer, Viewer));
    }
}
