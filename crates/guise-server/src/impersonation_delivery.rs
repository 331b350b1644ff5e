//! Delivering a redeemed impersonation to the client. `oauth2`: through the client's
//! `initiate_login_uri` (OIDC third-party-initiated login, so the client's own `state`,
//! `nonce` and PKCE apply), or else Auth0's direct response — a code to the callback.
//! `samlp`: an IdP-initiated, signed Response posted to the client's ACS URL.
//! `wsfed` / `wsfed-rms`: a sign-in response posted to the client's reply URL.

use crate::state::AppState;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::authorization::AuthorizationCode;
use guise_core::client::Client;
use guise_core::ids::new_secret;
use guise_core::impersonation::Ticket;
use guise_core::permission::parse_scope;
use guise_core::session::Session;
use guise_core::store::AuthorizationCodeStore;
use guise_core::user::User;
use guise_oidc::grant::hash_secret;

fn bad_url(e: url::ParseError) -> StoreError {
    StoreError::Backend(format!("registered URL unusable: {e}"))
}

/// Where to send the browser after an `oauth2` impersonation is redeemed.
pub fn oauth2(
    s: &AppState,
    ticket: &Ticket,
    target: &User,
    client: &Client,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    if let Some(initiate) = &client.initiate_login_uri {
        let mut url = url::Url::parse(initiate).map_err(bad_url)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("iss", &s.settings.issuer).append_pair("login_hint", &target.email);
            if let Some(target_link) = &ticket.redirect_uri {
                query.append_pair("target_link_uri", target_link);
            }
        }
        return Ok(url.to_string());
    }
    let redirect_uri = match ticket.redirect_uri.clone().or_else(|| client.callbacks.first().cloned()) {
        Some(uri) => uri,
        None => return Err(StoreError::Backend("client has no callback".into())),
    };
    let code = new_secret();
    s.db.save_code(AuthorizationCode {
        code_hash: hash_secret(&code),
        client_id: client.client_id.clone(),
        user_id: target.user_id.clone(),
        sid: session.sid.clone(),
        redirect_uri: redirect_uri.clone(),
        scope: parse_scope(ticket.scope.as_deref().unwrap_or("openid")),
        audience: None,
        nonce: ticket.nonce.clone(),
        code_challenge: None,
        auth_time: session.auth_time,
        created_at: now,
        expires_at: now + s.settings.code_lifetime,
        consumed_at: None,
    })?;
    let mut url = url::Url::parse(&redirect_uri).map_err(bad_url)?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = &ticket.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &s.settings.issuer);
    }
    Ok(url.to_string())
}

/// The IdP-initiated SAML Response for an impersonation, carrying the impersonation
/// attributes (the session names the impersonator).
pub fn samlp(
    s: &AppState,
    ticket: &Ticket,
    client: &Client,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<crate::impersonation::Delivery, StoreError> {
    let settings = guise_saml::settings::from_addons(&client.addons)
        .ok()
        .flatten()
        .ok_or_else(|| StoreError::Backend("client lost its SAML settings".into()))?;
    let acs_url = match ticket.redirect_uri.clone().or_else(|| client.callbacks.first().cloned()) {
        Some(acs) => acs,
        None => return Err(StoreError::Backend("client has no ACS URL".into())),
    };
    let pending = guise_core::authorization::PendingSaml {
        request_id: None,
        acs_url: acs_url.clone(),
        audience: settings.entity_id(&client.client_id),
        relay_state: ticket.state.clone(),
        name_id_format: settings.name_id_format.clone(),
    };
    let message = crate::saml::signed_response(s, client, &settings, &pending, session, now)?;
    Ok(crate::impersonation::Delivery::FormPost {
        action: acs_url,
        fields: crate::saml::post_fields(message, &pending.relay_state),
    })
}

/// The WS-Federation sign-in response for an impersonation (`wsfed-rms` shapes it for
/// Rights Management clients).
pub fn wsfed(
    s: &AppState,
    ticket: &Ticket,
    client: &Client,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<crate::impersonation::Delivery, StoreError> {
    let settings = guise_wsfed::settings::from_addons(&client.client_id, &client.addons)
        .ok()
        .flatten()
        .ok_or_else(|| StoreError::Backend("client lost its WS-Federation settings".into()))?;
    let reply = match ticket.redirect_uri.clone().or_else(|| client.callbacks.first().cloned()) {
        Some(reply) => reply,
        None => return Err(StoreError::Backend("client has no reply URL".into())),
    };
    let pending = guise_core::authorization::PendingWsfed {
        realm: settings.realm.clone(),
        reply: reply.clone(),
        wctx: ticket.state.clone(),
        rms: ticket.protocol == guise_core::impersonation::Protocol::WsfedRms,
    };
    let fields = crate::wsfed::sign_in_fields(s, client, &settings, &pending, session, now)?;
    Ok(crate::impersonation::Delivery::FormPost { action: reply, fields })
}
