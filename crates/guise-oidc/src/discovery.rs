//! The OpenID Provider metadata document (`/.well-known/openid-configuration`), listing
//! only what guise actually serves.

use crate::OidcSettings;
use serde_json::{Value, json};

pub fn document(settings: &OidcSettings, grant_types: &[&str]) -> Value {
    json!({
        "issuer": settings.issuer,
        "authorization_endpoint": settings.endpoint("/authorize"),
        "token_endpoint": settings.endpoint("/oauth/token"),
        "userinfo_endpoint": settings.endpoint("/userinfo"),
        "jwks_uri": settings.endpoint("/.well-known/jwks.json"),
        "revocation_endpoint": settings.endpoint("/oauth/revoke"),
        "introspection_endpoint": settings.endpoint("/oauth/introspect"),
        "end_session_endpoint": settings.endpoint("/oidc/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "grant_types_supported": grant_types,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ([
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "sid",
            "name", "given_name", "family_name", "nickname", "picture", "updated_at", "email", "email_verified",
        ]
        .into_iter()
        .chain(crate::impersonation_claims::CLAIM_NAMES)
        .collect::<Vec<_>>()),
        "id_token_signing_alg_values_supported": crate::keys::SUPPORTED_ALGS,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    })
}
