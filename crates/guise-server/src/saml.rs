//! The IdP's SAML entity id (the signed Response for a login is
//! `guise_flow::assertion::for_login`, error Responses `FlowOutcome::saml_error`).

use crate::state::AppState;

/// The IdP's entity id (the issuer).
pub fn entity_id(s: &AppState) -> String {
    s.settings.issuer.clone()
}
