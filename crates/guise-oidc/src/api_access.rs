//! Which clients may obtain *user* tokens for the Management API. A user token is a chain
//! too — the client it is issued to, then the user — so a client obtains Management API
//! user tokens only when an administrator granted it the Management API (a client grant
//! on that audience, made under the authority ceiling), and a token carries only what
//! the user and that grant both hold. A client nobody granted the Management API cannot
//! be turned into a way of harvesting administrators' powers.

use guise_core::StoreError;
use guise_core::store::ClientGrantStore;
use std::collections::BTreeSet;

/// What a client's grant lets a user token for `audience` carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCap {
    /// Not the Management API: the user's own permissions decide (RBAC).
    Unlimited,
    /// The Management API: at most these scopes.
    Granted(BTreeSet<String>),
    /// The Management API, and the client holds no grant for it.
    NotAuthorized,
}

impl ClientCap {
    /// Whether the cap lets `scope` through.
    pub fn allows(&self, scope: &str) -> bool {
        match self {
            ClientCap::Unlimited => true,
            ClientCap::Granted(scopes) => scopes.contains(scope),
            ClientCap::NotAuthorized => false,
        }
    }
}

/// The message a refusal for `ClientCap::NotAuthorized` carries.
pub const NOT_AUTHORIZED: &str =
    "This application is not authorized for the Management API (it needs a client grant on that audience)";

pub fn client_cap(
    client_grants: &dyn ClientGrantStore,
    client_id: &str,
    audience: &str,
    management_audience: &str,
) -> Result<ClientCap, StoreError> {
    if audience != management_audience {
        return Ok(ClientCap::Unlimited);
    }
    match client_grants.client_grant(client_id, audience) {
        Ok(grant) => Ok(ClientCap::Granted(grant.scope.into_iter().collect())),
        Err(StoreError::NotFound) => Ok(ClientCap::NotAuthorized),
        Err(e) => Err(e),
    }
}
