//! The authority ceiling on Management API writes: what a write would confer, or the
//! power held by the user, role, grant or client it changes, looked up and checked
//! against the caller's chain (`Caller::require_cover`). Unknown ids pass here, so the
//! write itself answers its usual "not found".

use crate::caller::Caller;
use crate::{FlowContext, FlowError};
use guise_core::StoreError;
use guise_core::page::every_page;
use guise_core::permission::PermissionSet;
use guise_core::store::found;

/// Every permission a role holds.
fn role_permissions(ctx: &FlowContext<'_>, role_id: &str) -> Result<PermissionSet, StoreError> {
    every_page(|page| ctx.store.role_permissions(role_id, page)).map(PermissionSet::new)
}

/// Changing a user's credentials, email, blocked flag or existence, or their roles:
/// the caller must hold what the user holds.
pub fn user(ctx: &FlowContext<'_>, caller: &Caller, user_id: &str) -> Result<(), FlowError> {
    caller.require_cover(&found(ctx.store.user_permission_set(user_id))?.unwrap_or_default())
}

/// Assigning, unassigning, editing or deleting roles: the caller must hold what they hold.
pub fn roles<'a>(
    ctx: &FlowContext<'_>,
    caller: &Caller,
    role_ids: impl IntoIterator<Item = &'a String>,
) -> Result<(), FlowError> {
    let mut needed = PermissionSet::default();
    for id in role_ids {
        needed = needed.union(&found(role_permissions(ctx, id))?.unwrap_or_default());
    }
    caller.require_cover(&needed)
}

/// Changing a client (its settings, its secret, its existence): the caller must hold
/// what the client's Management API grant gives it (a Management API caller answers for
/// that API only, so grants on other APIs are not compared).
pub fn client(ctx: &FlowContext<'_>, caller: &Caller, client_id: &str) -> Result<(), FlowError> {
    caller.require_cover(&ctx.store.granted_on(client_id, &ctx.settings.management_audience())?)
}

/// Editing or deleting a client grant: the caller must hold what it grants now.
pub fn grant(ctx: &FlowContext<'_>, caller: &Caller, grant_id: &str) -> Result<(), FlowError> {
    let grant = ctx.store.client_grant_by_id(grant_id).map(|grant| PermissionSet::on(&grant.audience, grant.scope));
    caller.require_cover(&found(grant)?.unwrap_or_default())
}
