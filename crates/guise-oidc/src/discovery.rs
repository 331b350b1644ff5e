//! The OpenID Provider metadata document (`/.well-known/openid-configuration`), listing
//! only what guise actually serves.

use crate::OidcSettings;
use serde_json::{Value, json};

pub fn document(settings: &OidcSettings, grant_types: &[&str]) -> Value {
    json!({
        "issuer": settings.issuer,
        "jwks_uri": settings.endpoint("/.well-known/jwks.json"),
        "token_endpoint": settings.endpoint("/oauth/token"),
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}
