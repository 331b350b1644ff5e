//! The authority ceiling on Management API writes: what a write would confer, or the
//! power held by the user, role, grant or client it changes, looked up and checked
//! against the caller's chain (`Caller::require_cover`). Unknown ids pass here, so the
//! write itself answers its usual `404`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use guise_core::StoreError;
use guise_core::page::{MAX_PER_PAGE, PageRequest};
use guise_core::permission::PermissionSet;
use guise_core::store::{ClientGrantStore, RoleStore};

fn found(result: Result<PermissionSet, StoreError>) -> Result<PermissionSet, ApiError> {
    match result {
        Ok(set) => Ok(set),
        Err(StoreError::NotFound) => Ok(PermissionSet::default()),
        Err(e) => Err(e.into()),
    }
}

/// Every permission a role holds.
fn role_permissions(s: &AppState, role_id: &str) -> Result<PermissionSet, StoreError> {
    let mut held = PermissionSet::default();
    let mut page = PageRequest::new(Some(0), Some(MAX_PER_PAGE));
    loop {
        let found = s.db.role_permissions(role_id, page)?;
        let last = i64::try_from(found.items.len()).map_or(true, |n| n < page.limit());
        held = held.union(&PermissionSet::new(found.items));
        if last {
            return Ok(held);
        }
        page.page += 1;
    }
}

/// Changing a user's credentials, email, blocked flag or existence, or their roles:
/// the caller must hold what the user holds.
pub fn user(s: &AppState, caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    caller.require_cover(&found(s.db.user_permission_set(user_id))?)
}

/// Assigning, unassigning, editing or deleting roles: the caller must hold what they hold.
pub fn roles<'a>(
    s: &AppState,
    caller: &Caller,
    role_ids: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    let mut needed = PermissionSet::default();
    for id in role_ids {
        needed = needed.union(&found(role_permissions(s, id))?);
    }
    caller.require_cover(&needed)
}

/// Changing a client (its settings, its secret, its existence): the caller must hold
/// what the client's Management API grant gives it (a Management API caller answers for
/// that API only, so grants on other APIs are not compared).
pub fn client(s: &AppState, caller: &Caller, client_id: &str) -> Result<(), ApiError> {
    caller.require_cover(&s.db.granted_on(client_id, &s.settings.management_audience())?)
}

/// Editing or deleting a client grant: the caller must hold what it grants now.
pub fn grant(s: &AppState, caller: &Caller, grant_id: &str) -> Result<(), ApiError> {
    let held = match s.db.client_grant_by_id(grant_id) {
        Ok(grant) => PermissionSet::on(&grant.audience, grant.scope),
        Err(StoreError::NotFound) => PermissionSet::default(),
        Err(e) => return Err(e.into()),
    };
    caller.require_cover(&held)
}
