//! Helpers shared by `guise init` and the CLI for machine clients of the Management API.

use crate::error::ApiError;
use crate::state::AppState;
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::client::Client;
use guise_core::ids::new_client_grant_id;
use guise_core::permission::scopes;
use guise_core::role::ClientGrant;
use guise_core::store::{ClientGrantStore, ClientStore};

/// Find a client by exact name.
pub fn find_client_by_name(db: &dyn ClientStore, name: &str) -> Result<Option<Client>, ApiError> {
    Ok(db.all_clients()?.into_iter().find(|c| c.name == name))
}

/// Grant `client_id` every Management API scope (creating or widening its grant).
pub fn ensure_management_grant(
    state: &AppState,
    client_id: &str,
    audience: &str,
    audit: AuditEvent,
) -> Result<ClientGrant, ApiError> {
    let all: Vec<String> = scopes::ALL.iter().map(|s| (*s).to_owned()).collect();
    match state.db.client_grant(client_id, audience) {
        Ok(grant) if grant.scope == all => Ok(grant),
        Ok(grant) => Ok(state.db.update_client_grant_scope(&grant.id, all, audit)?),
        Err(StoreError::NotFound) => Ok(state.db.create_client_grant(
            ClientGrant {
                id: new_client_grant_id(),
                client_id: client_id.to_owned(),
                audience: audience.to_owned(),
                scope: all,
                created_at: state.clock.now(),
            },
            audit,
        )?),
        Err(e) => Err(e.into()),
    }
}
