//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, or none for public clients.

use crate::error::OAuthError;
use guise_core::StoreError;
use guise_core::client::{Client, TokenEndpointAuthMethod};
use guise_core::store::ClientStore;

/// What the request presented, as parsed by the server.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientCredentials {
    Basic {
        client_id: String,
        client_secret: String,
    },
    Post {
        client_id: String,
        client_secret: String,
    },
    /// Only a `client_id` (public clients).
    Public {
        client_id: String,
    },
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (method, client_id) = match self {
            ClientCredentials::Basic { client_id, .. } => ("basic", client_id),
            ClientCredentials::Post { client_id, .. } => ("post", client_id),
            ClientCredentials::Public { client_id } => ("public", client_id),
        };
        write!(f, "ClientCredentials({method}, {client_id}, secret redacted)")
    }
}

impl ClientCredentials {
    pub fn client_id(&self) -> &str {
        match self {
            ClientCredentials::Basic { client_id, .. }
            | ClientCredentials::Post { client_id, .. }
            | ClientCredentials::Public { client_id } => client_id,
        }
    }
}

/// Authenticate the client. Basic and post are both accepted for a confidential client
/// (as Auth0 and most providers do); the secret is compared in constant time.
pub fn authenticate(clients: &dyn ClientStore, credentials: &ClientCredentials) -> Result<Client, OAuthError> {
    let client = match clients.client_by_id(credentials.client_id()) {
        Ok(client) => client,
        Err(StoreError::NotFound) => return Err(OAuthError::invalid_client()),
        Err(e) => return Err(e.into()),
    };
    match credentials {
        ClientCredentials::Basic { client_secret, .. } | ClientCredentials::Post { client_secret, .. } => {
            if client.is_confidential() && client.secret_matches(client_secret) {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client())
            }
        }
        ClientCredentials::Public { .. } => {
            if client.token_endpoint_auth_method == TokenEndpointAuthMethod::None {
                Ok(client)
            } else {
                Err(OAuthError::invalid_client())
            }
        }
    }
}
