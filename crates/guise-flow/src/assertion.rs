//! The one assertion for a login, shared by SAML and WS-Federation: look up both
//! parties, map the user's administrator-controlled fields to attributes, add the
//! impersonation attributes, cap the lifetime at an impersonation session's end, sign,
//! audit. The protocols differ only in names and envelopes ([`Relying`]).

use crate::delivery::Delivery;
use crate::{FlowContext, FlowError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::{PendingSaml, PendingWsfed};
use guise_core::client::Client;
use guise_core::session::Session;
use guise_core::user::User;
use guise_saml::response::{self, Assertion};
use guise_saml::settings::{
    ATTR_IMPERSONATED, ATTR_IMPERSONATOR_EMAIL, ATTR_IMPERSONATOR_ID, NAMEID_EMAIL, NAMEID_PERSISTENT,
    NAMEID_TRANSIENT, SamlSettings,
};
use guise_wsfed::settings::WsfedSettings;
use guise_wsfed::token::{CLAIM_IMPERSONATED, CLAIM_IMPERSONATOR_EMAIL, CLAIM_IMPERSONATOR_ID, SignIn, rms_mappings};

/// Who the assertion is for, and the request it answers.
#[derive(Debug, Clone, Copy)]
pub enum Relying<'a> {
    Saml(&'a SamlSettings, &'a PendingSaml),
    Wsfed(&'a WsfedSettings, &'a PendingWsfed),
}

/// The client's SAML settings (a client that lost them cannot be answered).
pub fn saml_settings(client: &Client) -> Result<SamlSettings, FlowError> {
    guise_saml::settings::from_addons(&client.addons)
        .ok()
        .flatten()
        .ok_or_else(|| FlowError::Misconfigured("The client has no valid SAML settings".into()))
}

/// The client's WS-Federation settings.
pub fn wsfed_settings(client: &Client) -> Result<WsfedSettings, FlowError> {
    guise_wsfed::settings::from_addons(&client.client_id, &client.addons)
        .ok()
        .flatten()
        .ok_or_else(|| FlowError::Misconfigured("The client has no valid WS-Federation settings".into()))
}

/// The SAML NameID for `format`.
fn saml_name_id(user: &User, format: &str) -> String {
    match format {
        NAMEID_EMAIL => user.email.clone(),
        NAMEID_TRANSIENT => response::new_id(),
        NAMEID_PERSISTENT => user.user_id.clone(),
        _ => user.user_id.clone(),
    }
}

/// The POST-binding fields of a base64 SAML message.
pub fn saml_post_fields(message: String, relay_state: &Option<String>) -> Vec<(&'static str, String)> {
    let mut fields = vec![("SAMLResponse", message)];
    if let Some(relay) = relay_state {
        fields.push(("RelayState", relay.clone()));
    }
    fields
}

/// The user's mapped attributes, then the impersonation attributes named by `names`
/// (impersonated, impersonator id, impersonator email).
fn attributes(
    mappings: &[(String, String)],
    user: &User,
    impersonator: Option<&User>,
    names: [&str; 3],
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = mappings
        .iter()
        .filter_map(|(field, attribute)| user.mapped_field(field).map(|v| (attribute.clone(), vec![v])))
        .collect();
    if let Some(impersonator) = impersonator {
        let [impersonated, id, email] = names;
        out.push((impersonated.to_owned(), vec!["true".to_owned()]));
        out.push((id.to_owned(), vec![impersonator.user_id.clone()]));
        out.push((email.to_owned(), vec![impersonator.email.clone()]));
    }
    out
}

/// The signed assertion for `session`'s login to `client`, as the form the browser
/// posts to the relying party; audited (`SAML_RESPONSE` or `WSFED_SIGN_IN`).
pub fn for_login(
    ctx: &FlowContext<'_>,
    client: &Client,
    relying: Relying<'_>,
    session: &Session,
) -> Result<Delivery, FlowError> {
    let now = ctx.now;
    let user = ctx.store.user_by_id(&session.user_id)?;
    let impersonator = match &session.impersonator_id {
        Some(id) => Some(ctx.store.user_by_id(id)?),
        None => None,
    };
    let signer = ctx.xml_signer.as_deref().ok_or_else(|| FlowError::Internal("no XML signing certificate".into()))?;
    let issuer = &ctx.settings.issuer;
    let lifetime_seconds = match relying {
        Relying::Saml(settings, _) => settings.lifetime_seconds,
        Relying::Wsfed(settings, _) => settings.lifetime_seconds,
    };
    let mut lifetime = Duration::seconds(lifetime_seconds);
    if impersonator.is_some() {
        lifetime = lifetime.min(session.absolute_expires_at - now);
    }
    let signing_failed = |e: &dyn std::fmt::Display| FlowError::Internal(format!("signing failed: {e}"));
    let (action, fields, event) = match relying {
        Relying::Saml(settings, pending) => {
            let names = [ATTR_IMPERSONATED, ATTR_IMPERSONATOR_ID, ATTR_IMPERSONATOR_EMAIL];
            let name_id = saml_name_id(&user, &pending.name_id_format);
            let xml = response::success(
                signer,
                &Assertion {
                    issuer,
                    destination: settings.destination.as_deref().unwrap_or(&pending.acs_url),
                    recipient: settings.recipient.as_deref().unwrap_or(&pending.acs_url),
                    audience: &pending.audience,
                    in_response_to: pending.request_id.as_deref(),
                    name_id: &name_id,
                    name_id_format: &pending.name_id_format,
                    session_index: &session.sid,
                    authn_instant: session.auth_time,
                    attributes: attributes(&settings.mappings, &user, impersonator.as_ref(), names),
                    now,
                    lifetime,
                    sign_response: settings.sign_response,
                },
            )
            .map_err(|e| signing_failed(&e))?;
            // The NameID is what a later LogoutRequest must name (the outbox keeps it).
            let event = AuditEvent::new(event_type::SAML_RESPONSE, now, Actor::System, "SAML response issued").details(
                serde_json::json!({
                    "acs": pending.acs_url,
                    "in_response_to": pending.request_id,
                    "sid": session.sid,
                    "name_id": name_id,
                    "name_id_format": pending.name_id_format,
                }),
            );
            let fields = saml_post_fields(STANDARD.encode(xml), &pending.relay_state);
            (pending.acs_url.clone(), fields, event)
        }
        Relying::Wsfed(settings, pending) => {
            let names = [CLAIM_IMPERSONATED, CLAIM_IMPERSONATOR_ID, CLAIM_IMPERSONATOR_EMAIL];
            let mappings = if pending.rms { rms_mappings() } else { settings.mappings.clone() };
            let name_id = if pending.rms { user.email.clone() } else { user.user_id.clone() };
            let rstr = guise_wsfed::token::request_security_token_response(
                signer,
                &SignIn {
                    issuer,
                    realm: &pending.realm,
                    name_id: &name_id,
                    email_name_id: pending.rms,
                    claims: attributes(&mappings, &user, impersonator.as_ref(), names),
                    now,
                    lifetime,
                    authn_instant: session.auth_time,
                    session_index: &session.sid,
                    token_type: settings.token_type,
                },
            )
            .map_err(|e| signing_failed(&e))?;
            let event =
                AuditEvent::new(event_type::WSFED_SIGN_IN, now, Actor::System, "WS-Federation sign-in response issued")
                    .details(serde_json::json!({
                        "realm": pending.realm, "reply": pending.reply, "rms": pending.rms, "sid": session.sid,
                    }));
            let mut fields = vec![("wa", "wsignin1.0".to_owned()), ("wresult", rstr)];
            if let Some(wctx) = &pending.wctx {
                fields.push(("wctx", wctx.clone()));
            }
            (pending.reply.clone(), fields, event)
        }
    };
    let event = event.subject(user.user_id.clone()).client(client.client_id.clone()).caused_by(session);
    ctx.store.append(vec![event])?;
    Ok(Delivery::FormPost { action, fields })
}
