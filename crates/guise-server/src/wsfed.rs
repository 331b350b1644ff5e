//! WS-Federation delivery for the shared login flow: the sign-in response (an RSTR with a
//! signed assertion, claims by the client's mappings, impersonation claims) posted to a
//! registered reply address.

use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::PendingWsfed;
use guise_core::client::Client;
use guise_core::session::Session;
use guise_core::store::{AuditStore, UserStore};
use guise_wsfed::settings::WsfedSettings;
use guise_wsfed::token::{CLAIM_IMPERSONATED, CLAIM_IMPERSONATOR_EMAIL, CLAIM_IMPERSONATOR_ID, SignIn, rms_mappings};

/// The sign-in response's form fields (`wa`, `wresult`, `wctx`); audited.
pub fn sign_in_fields(
    s: &AppState,
    client: &Client,
    settings: &WsfedSettings,
    pending: &PendingWsfed,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    let user = s.db.user_by_id(&session.user_id)?;
    let impersonator = match &session.impersonator_id {
        Some(id) => Some(s.db.user_by_id(id)?),
        None => None,
    };
    let signer = s.keys.saml_signer().ok_or_else(|| StoreError::Backend("no signing certificate".into()))?;
    let mappings = if pending.rms { rms_mappings() } else { settings.mappings.clone() };
    let mut claims: Vec<(String, Vec<String>)> =
        mappings.iter().filter_map(|(f, claim)| user.mapped_field(f).map(|v| (claim.clone(), vec![v]))).collect();
    if let Some(impersonator) = &impersonator {
        claims.push((CLAIM_IMPERSONATED.to_owned(), vec!["true".into()]));
        claims.push((CLAIM_IMPERSONATOR_ID.to_owned(), vec![impersonator.user_id.clone()]));
        claims.push((CLAIM_IMPERSONATOR_EMAIL.to_owned(), vec![impersonator.email.clone()]));
    }
    let mut lifetime = Duration::seconds(settings.lifetime_seconds);
    if session.impersonator_id.is_some() {
        lifetime = lifetime.min(session.absolute_expires_at - now);
    }
    let issuer = crate::saml::entity_id(s);
    let name_id = if pending.rms { user.email.clone() } else { user.user_id.clone() };
    let rstr = guise_wsfed::token::request_security_token_response(
        &signer,
        &SignIn {
            issuer: &issuer,
            realm: &pending.realm,
            name_id: &name_id,
            email_name_id: pending.rms,
            claims,
            now,
            lifetime,
            authn_instant: session.auth_time,
            session_index: &session.sid,
            token_type: settings.token_type,
        },
    )
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    let event = AuditEvent::new(
        event_type::WSFED_SIGN_IN,
        now,
        Actor::System,
        "WS-Federation sign-in response issued",
    )
    .subject(user.user_id.clone())
    .client(client.client_id.clone())
    .details(
        serde_json::json!({ "realm": pending.realm, "reply": pending.reply, "rms": pending.rms, "sid": session.sid }),
    )
    .caused_by(session);
    s.db.append(vec![event])?;
    let mut fields = vec![("wa", "wsignin1.0".to_owned()), ("wresult", rstr)];
    if let Some(wctx) = &pending.wctx {
        fields.push(("wctx", wctx.clone()));
    }
    Ok(fields)
}
