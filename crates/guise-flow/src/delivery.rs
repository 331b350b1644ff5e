//! How the browser continues after a flow, and delivering a redeemed impersonation to
//! its client. `oauth2`: through the client's `initiate_login_uri` (OIDC third-party-
//! initiated login, so the client's own `state`, `nonce` and PKCE apply), or else Auth0's
//! direct response — a code to the callback. `samlp`: an IdP-initiated, signed Response
//! posted to the client's ACS URL. `wsfed` / `wsfed-rms`: a sign-in response posted to
//! the client's reply URL.

use crate::assertion::{self, Relying};
use crate::{FlowContext, FlowError};
use guise_core::authorization::{AuthorizationCode, PendingOidc, PendingWsfed};
use guise_core::client::Client;
use guise_core::ids::new_secret;
use guise_core::impersonation::{Protocol, Ticket};
use guise_core::permission::parse_scope;
use guise_core::session::Session;
use guise_core::user::User;
use guise_oidc::grant::hash_secret;
use guise_saml::sso::idp_initiated;

/// Where the browser goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Redirect(String),
    /// An auto-submitting form (SAML's HTTP-POST binding, WS-Federation's sign-in).
    FormPost {
        action: String,
        fields: Vec<(&'static str, String)>,
    },
}

fn unusable(e: url::ParseError) -> FlowError {
    FlowError::Misconfigured(format!("A registered URL of the client is unusable: {e}"))
}

/// Save a new authorization code for `session`'s login to `client`, for what `request`
/// asked that the token endpoint checks (redirect URI, scope, audience, nonce, PKCE).
pub fn issue_code(
    ctx: &FlowContext<'_>,
    client: &Client,
    session: &Session,
    request: &PendingOidc,
) -> Result<String, FlowError> {
    let code = new_secret();
    ctx.store.save_code(AuthorizationCode {
        code_hash: hash_secret(&code),
        client_id: client.client_id.clone(),
        user_id: session.user_id.clone(),
        sid: session.sid.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.clone(),
        audience: request.audience.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        auth_time: session.auth_time,
        created_at: ctx.now,
        expires_at: ctx.now + ctx.settings.code_lifetime,
        consumed_at: None,
    })?;
    Ok(code)
}

/// Deliver a redeemed impersonation over its ticket's protocol.
pub fn impersonation(
    ctx: &FlowContext<'_>,
    ticket: &Ticket,
    target: &User,
    client: &Client,
    session: &Session,
) -> Result<Delivery, FlowError> {
    // The URL the ticket names (checked as registered at minting), or the first callback.
    let address = || {
        ticket
            .redirect_uri
            .clone()
            .or_else(|| client.callbacks.first().cloned())
            .ok_or_else(|| FlowError::Misconfigured("The client has no callback URL".into()))
    };
    match ticket.protocol {
        Protocol::Samlp => {
            let settings = assertion::saml_settings(client)?;
            let pending = idp_initiated(&client.client_id, &settings, address()?, ticket.state.clone());
            assertion::for_login(ctx, client, Relying::Saml(&settings, &pending), session)
        }
        Protocol::Wsfed | Protocol::WsfedRms => {
            let settings = assertion::wsfed_settings(client)?;
            let pending = PendingWsfed {
                realm: settings.realm.clone(),
                reply: address()?,
                wctx: ticket.state.clone(),
                rms: ticket.protocol == Protocol::WsfedRms,
            };
            assertion::for_login(ctx, client, Relying::Wsfed(&settings, &pending), session)
        }
        _ => oauth2(ctx, ticket, target, client, session, address),
    }
}

fn oauth2(
    ctx: &FlowContext<'_>,
    ticket: &Ticket,
    target: &User,
    client: &Client,
    session: &Session,
    address: impl Fn() -> Result<String, FlowError>,
) -> Result<Delivery, FlowError> {
    let issuer = &ctx.settings.issuer;
    if let Some(initiate) = &client.initiate_login_uri {
        let mut url = url::Url::parse(initiate).map_err(unusable)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("iss", issuer).append_pair("login_hint", &target.email);
            if let Some(target_link) = &ticket.redirect_uri {
                query.append_pair("target_link_uri", target_link);
            }
        }
        return Ok(Delivery::Redirect(url.to_string()));
    }
    let redirect_uri = address()?;
    let mut url = url::Url::parse(&redirect_uri).map_err(unusable)?;
    let scope = parse_scope(ticket.scope.as_deref().unwrap_or("openid"));
    let request = PendingOidc { redirect_uri, scope, nonce: ticket.nonce.clone(), ..PendingOidc::default() };
    let code = issue_code(ctx, client, session, &request)?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = &ticket.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    Ok(Delivery::Redirect(url.to_string()))
}
