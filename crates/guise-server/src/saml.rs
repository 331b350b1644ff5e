//! SAML delivery for the shared login flow: per-client settings, the signed Response for
//! a session (with impersonation attributes), and SAML error responses.

use crate::state::AppState;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::PendingSaml;
use guise_core::client::Client;
use guise_core::session::Session;
use guise_core::store::{AuditStore, UserStore};
use guise_core::user::User;
use guise_saml::response::{self, Assertion};
use guise_saml::settings::{
    ATTR_IMPERSONATED, ATTR_IMPERSONATOR_EMAIL, ATTR_IMPERSONATOR_ID, NAMEID_EMAIL, NAMEID_PERSISTENT,
    NAMEID_TRANSIENT, SamlSettings,
};

/// The IdP's entity id (the issuer).
pub fn entity_id(s: &AppState) -> String {
    s.settings.issuer.clone()
}

/// The NameID for `format`.
fn name_id(user: &User, format: &str) -> String {
    match format {
        NAMEID_EMAIL => user.email.clone(),
        NAMEID_TRANSIENT => response::new_id(),
        NAMEID_PERSISTENT => user.user_id.clone(),
        _ => user.user_id.clone(),
    }
}

/// Attributes for `user` by the client's mappings, plus the impersonation attributes.
pub fn attributes(settings: &SamlSettings, user: &User, impersonator: Option<&User>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = settings
        .mappings
        .iter()
        .filter_map(|(user_field, attribute)| user.mapped_field(user_field).map(|v| (attribute.clone(), vec![v])))
        .collect();
    if let Some(impersonator) = impersonator {
        out.push((ATTR_IMPERSONATED.to_owned(), vec!["true".to_owned()]));
        out.push((ATTR_IMPERSONATOR_ID.to_owned(), vec![impersonator.user_id.clone()]));
        out.push((ATTR_IMPERSONATOR_EMAIL.to_owned(), vec![impersonator.email.clone()]));
    }
    out
}

/// A signed Response for `session`, base64 for the POST binding; audited.
pub fn signed_response(
    s: &AppState,
    client: &Client,
    settings: &SamlSettings,
    pending: &PendingSaml,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let user = s.db.user_by_id(&session.user_id)?;
    let impersonator = match &session.impersonator_id {
        Some(id) => Some(s.db.user_by_id(id)?),
        None => None,
    };
    let signer = s.keys.saml_signer().ok_or_else(|| StoreError::Backend("no SAML signing certificate".into()))?;
    let issuer = entity_id(s);
    let recipient = settings.recipient.clone().unwrap_or_else(|| pending.acs_url.clone());
    let mut lifetime = Duration::seconds(settings.lifetime_seconds);
    if session.impersonator_id.is_some() {
        lifetime = lifetime.min(session.absolute_expires_at - now);
    }
    let name_id = name_id(&user, &pending.name_id_format);
    let xml = response::success(
        &signer,
        &Assertion {
            issuer: &issuer,
            destination: settings.destination.as_deref().unwrap_or(&pending.acs_url),
            recipient: &recipient,
            audience: &pending.audience,
            in_response_to: pending.request_id.as_deref(),
            name_id: &name_id,
            name_id_format: &pending.name_id_format,
            session_index: &session.sid,
            authn_instant: session.auth_time,
            attributes: attributes(settings, &user, impersonator.as_ref()),
            now,
            lifetime,
            sign_response: settings.sign_response,
        },
    )
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    let event = AuditEvent::new(event_type::SAML_RESPONSE, now, Actor::System, "SAML response issued")
        .subject(user.user_id.clone())
        .client(client.client_id.clone())
        .details(
            // The NameID is what a later LogoutRequest must name (the outbox keeps it).
            serde_json::json!({
                "acs": pending.acs_url,
                "in_response_to": pending.request_id,
                "sid": session.sid,
                "name_id": name_id,
                "name_id_format": pending.name_id_format,
            }),
        )
        .caused_by(session);
    s.db.append(vec![event])?;
    Ok(STANDARD.encode(xml))
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

/// The POST-binding fields for a base64 message.
pub fn post_fields(message: String, relay_state: &Option<String>) -> Vec<(&'static str, String)> {
    let mut fields = vec![("SAMLResponse", message)];
    if let Some(relay) = relay_state {
        fields.push(("RelayState", relay.clone()));
    }
    fields
}
