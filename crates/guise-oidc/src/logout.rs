//! RP-initiated logout (OIDC RP-Initiated Logout 1.0): the `id_token_hint` identifies
//! the client and session; `post_logout_redirect_uri` must be registered.

use crate::keys::KeyRing;
use guise_core::client::Client;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
}

#[derive(Deserialize)]
struct HintClaims {
    aud: String,
    sub: String,
    sid: Option<String>,
}

/// Verify an ID token we issued (signature and issuer; an expired one is still a hint).
pub fn verify_id_token_hint(keys: &KeyRing, issuer: &str, token: &str) -> Option<IdTokenHint> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let (alg, key) = keys.verifier(header.kid.as_deref()?)?;
    if header.alg != *alg {
        return None;
    }
    let mut validation = jsonwebtoken::Validation::new(*alg);
    validation.set_issuer(&[issuer]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<HintClaims>(token, key, &validation).ok()?.claims;
    Some(IdTokenHint { client_id: claims.aud, sub: claims.sub, sid: claims.sid })
}

/// Whether `uri` is one of the client's allowed logout URLs (exact match).
pub fn post_logout_redirect_allowed(client: &Client, uri: &str) -> bool {
    client.allowed_logout_urls.iter().any(|allowed| allowed == uri)
}
