//! SAML error responses for the shared login flow (the signed Response for a login is
//! `guise_flow::assertion::for_login`).

use crate::state::AppState;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use guise_core::authorization::PendingSaml;
use guise_saml::response;

/// The IdP's entity id (the issuer).
pub fn entity_id(s: &AppState) -> String {
    s.settings.issuer.clone()
}

/// An unsigned error Response, base64.
pub fn error_response(s: &AppState, pending: &PendingSaml, top: &str, second: Option<&str>, message: &str) -> String {
    let xml = response::failure(
        &entity_id(s),
        &pending.acs_url,
        pending.request_id.as_deref(),
        top,
        second,
        message,
        s.clock.now(),
    );
    STANDARD.encode(xml)
}
