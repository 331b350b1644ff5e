//! Permissions and scopes: the Management API's scope names and the set arithmetic
//! (containment, what one set lacks of another) that impersonation relies on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The Management API's scopes, in Auth0's names.
pub mod scopes {
    pub const READ_USERS: &str = "read:users";
    pub const CREATE_USERS: &str = "create:users";
    pub const UPDATE_USERS: &str = "update:users";
    pub const DELETE_USERS: &str = "delete:users";
    pub const READ_CLIENTS: &str = "read:clients";
    pub const CREATE_CLIENTS: &str = "create:clients";
    pub const UPDATE_CLIENTS: &str = "update:clients";
    pub const DELETE_CLIENTS: &str = "delete:clients";
    pub const READ_CLIENT_GRANTS: &str = "read:client_grants";
    pub const CREATE_CLIENT_GRANTS: &str = "create:client_grants";
    pub const UPDATE_CLIENT_GRANTS: &str = "update:client_grants";
    pub const DELETE_CLIENT_GRANTS: &str = "delete:client_grants";
    pub const READ_ROLES: &str = "read:roles";
    pub const CREATE_ROLES: &str = "create:roles";
    pub const UPDATE_ROLES: &str = "update:roles";
    pub const DELETE_ROLES: &str = "delete:roles";
    pub const READ_LOGS: &str = "read:logs";
    /// "Become other users": impersonation logins and acting on behalf of a user.
    pub const IMPERSONATE_USERS: &str = "impersonate:users";
    /// Everyone's impersonations (without it, an impersonator sees only their own).
    pub const READ_IMPERSONATIONS: &str = "read:impersonations";
    /// Webhook subscriptions and their deliveries (guise's own; Auth0 has log streams).
    pub const READ_WEBHOOKS: &str = "read:webhooks";
    pub const CREATE_WEBHOOKS: &str = "create:webhooks";
    pub const UPDATE_WEBHOOKS: &str = "update:webhooks";
    pub const DELETE_WEBHOOKS: &str = "delete:webhooks";

    /// Every Management API scope, in a stable order.
    pub const ALL: &[&str] = &[
        READ_USERS,
        CREATE_USERS,
        UPDATE_USERS,
        DELETE_USERS,
        READ_CLIENTS,
        CREATE_CLIENTS,
        UPDATE_CLIENTS,
        DELETE_CLIENTS,
        READ_CLIENT_GRANTS,
        CREATE_CLIENT_GRANTS,
        UPDATE_CLIENT_GRANTS,
        DELETE_CLIENT_GRANTS,
        READ_ROLES,
        CREATE_ROLES,
        UPDATE_ROLES,
        DELETE_ROLES,
        READ_LOGS,
        IMPERSONATE_USERS,
        READ_IMPERSONATIONS,
        READ_WEBHOOKS,
        CREATE_WEBHOOKS,
        UPDATE_WEBHOOKS,
        DELETE_WEBHOOKS,
    ];

    /// A human description of a scope, as Auth0's API settings show them.
    pub fn description(scope: &str) -> &'static str {
        match scope {
            READ_USERS => "Read users",
            CREATE_USERS => "Create users",
            UPDATE_USERS => "Update users",
            DELETE_USERS => "Delete users",
            READ_CLIENTS => "Read applications",
            CREATE_CLIENTS => "Create applications",
            UPDATE_CLIENTS => "Update applications",
            DELETE_CLIENTS => "Delete applications",
            READ_CLIENT_GRANTS => "Read client grants",
            CREATE_CLIENT_GRANTS => "Create client grants",
            UPDATE_CLIENT_GRANTS => "Update client grants",
            DELETE_CLIENT_GRANTS => "Delete client grants",
            READ_ROLES => "Read roles",
            CREATE_ROLES => "Create roles",
            UPDATE_ROLES => "Update roles",
            DELETE_ROLES => "Delete roles",
            READ_LOGS => "Read logs",
            IMPERSONATE_USERS => "Become other users",
            READ_IMPERSONATIONS => "Read everyone's impersonations",
            READ_WEBHOOKS => "Read webhooks and their deliveries",
            CREATE_WEBHOOKS => "Create webhooks",
            UPDATE_WEBHOOKS => "Update webhooks and retry their deliveries",
            DELETE_WEBHOOKS => "Delete webhooks",
            _ => "",
        }
    }
}

/// One permission: a scope name on one API (resource server) audience.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Permission {
    pub resource_server_identifier: String,
    pub permission_name: String,
}

/// A set of permissions with the operations the impersonation rules need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    pub fn new(permissions: impl IntoIterator<Item = Permission>) -> Self {
        Self(permissions.into_iter().collect())
    }

    /// Whether this set holds every permission of `other` (no escalation).
    pub fn is_superset(&self, other: &PermissionSet) -> bool {
        self.0.is_superset(&other.0)
    }

    /// Permissions of `other` that this set lacks.
    pub fn missing_from<'a>(&'a self, other: &'a PermissionSet) -> impl Iterator<Item = &'a Permission> {
        other.0.difference(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The permissions both sets hold.
    pub fn intersection(&self, other: &PermissionSet) -> PermissionSet {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    /// Both sets together.
    pub fn union(&self, other: &PermissionSet) -> PermissionSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// The permissions on one audience.
    pub fn only(&self, audience: &str) -> PermissionSet {
        Self(self.0.iter().filter(|p| p.resource_server_identifier == audience).cloned().collect())
    }

    /// Permission names on one audience as a set.
    pub fn on(audience: &str, names: impl IntoIterator<Item = impl Into<String>>) -> PermissionSet {
        Self(
            names
                .into_iter()
                .map(|n| Permission { resource_server_identifier: audience.to_owned(), permission_name: n.into() })
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    /// The permission names this set holds on one audience.
    pub fn names_for(&self, audience: &str) -> BTreeSet<String> {
        self.0.iter().filter(|p| p.resource_server_identifier == audience).map(|p| p.permission_name.clone()).collect()
    }
}

/// Split an OAuth2 `scope` string into its distinct names, keeping their order.
pub fn parse_scope(scope: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    scope.split_ascii_whitespace().filter(|s| seen.insert(*s)).map(str::to_owned).collect()
}

/// Whether a scope name is a syntactically valid OAuth2 scope token (RFC 6749 §3.3).
pub fn is_valid_scope_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(name: &str) -> Permission {
        Permission { resource_server_identifier: "api".into(), permission_name: name.into() }
    }

    #[test]
    fn superset_and_missing() {
        let admin = PermissionSet::new([perm("a"), perm("b")]);
        let helper = PermissionSet::new([perm("a")]);
        assert!(admin.is_superset(&helper));
        assert!(!helper.is_superset(&admin));
        assert_eq!(helper.missing_from(&admin).collect::<Vec<_>>(), vec![&perm("b")]);
    }

    #[test]
    fn scope_parsing_dedups_and_validates() {
        assert_eq!(parse_scope(" read:users  read:users create:users"), vec!["read:users", "create:users"]);
        assert!(is_valid_scope_token("read:users"));
        assert!(!is_valid_scope_token("bad\"quote"));
        assert!(!is_valid_scope_token(""));
    }
}
