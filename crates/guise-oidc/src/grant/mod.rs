//! The token endpoint: client authentication, then one handler per grant type behind
//! the `GrantHandler` trait, then the audit event for the outcome.

mod authorization_code;
mod client_credentials;
mod issue;
mod refresh_token;
pub mod token_exchange;

pub use authorization_code::AuthorizationCodeGrant;
pub use client_credentials::ClientCredentialsGrant;
pub use issue::{Claimed, OIDC_SCOPES, UserGrant, hash_secret, issue_user_tokens};
pub use refresh_token::RefreshTokenGrant;
pub use token_exchange::{ExchangeParams, TokenExchangeGrant};

use crate::OidcSettings;
use crate::client_auth::{ClientCredentials, authenticate};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::keys::KeyRing;
use chrono::{DateTime, Utc};
use guise_core::audit::{Actor, AuditEvent};
use guise_core::client::Client;
use guise_core::store::{
    AuditStore, AuthorizationCodeStore, ClientGrantStore, ClientStore, RoleStore, SessionStore, TokenStore, UserStore,
};
use serde::Serialize;
use serde_json::json;

/// A token request as parsed from the form body.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: String,
    pub credentials: Option<ClientCredentials>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    /// RFC 8693's parameters (token exchange only).
    pub exchange: ExchangeParams,
    pub source_ip: Option<String>,
}

/// The successful response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 8693 §2.2.1, for token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    /// For the audit event, not the client: the user the tokens are for…
    #[serde(skip)]
    pub subject: Option<String>,
    /// …and the impersonator behind them, if any.
    #[serde(skip)]
    pub impersonator: Option<String>,
    /// …and the machine client that minted that impersonation, if one did.
    #[serde(skip)]
    pub impersonation_minted_by: Option<String>,
    /// …or the actor a token exchange delegated to (`act.sub`).
    #[serde(skip)]
    pub actor: Option<String>,
}

/// What a handler needs from the world.
pub struct TokenContext<'a> {
    pub settings: &'a OidcSettings,
    pub keys: &'a KeyRing,
    pub clients: &'a dyn ClientStore,
    pub client_grants: &'a dyn ClientGrantStore,
    pub audit: &'a dyn AuditStore,
    pub users: &'a dyn UserStore,
    pub roles: &'a dyn RoleStore,
    pub sessions: &'a dyn SessionStore,
    pub codes: &'a dyn AuthorizationCodeStore,
    pub tokens: &'a dyn TokenStore,
    pub now: DateTime<Utc>,
}

/// The audit codes for one grant's success and failure.
#[derive(Debug, Clone, Copy)]
pub struct GrantEvents {
    pub success: &'static str,
    pub failure: &'static str,
}

/// One grant type (fosite's shape: each grant its own handler).
pub trait GrantHandler: Send + Sync {
    fn grant_type(&self) -> &'static str;
    fn events(&self) -> GrantEvents;
    /// Whether the client may use this grant at all: by default, whether its
    /// `grant_types` lists it. A refusal is `unauthorized_client` naming `refusal`.
    fn allowed(&self, client: &Client) -> Result<(), String> {
        if client.allows_grant(self.grant_type()) {
            Ok(())
        } else {
            Err(format!("Grant type '{}' not allowed for the client.", self.grant_type()))
        }
    }
    /// Issue tokens for an authenticated client allowed this grant.
    fn handle(
        &self,
        client: &Client,
        request: &TokenRequest,
        ctx: &TokenContext<'_>,
    ) -> Result<TokenResponse, OAuthError>;
}

/// The scope a token request asks for (`None` when it names none), which may narrow
/// `granted` but never widen it: `Err` names the first scope beyond it.
pub(crate) fn requested_scope(requested: Option<&str>, granted: &[String]) -> Result<Option<Vec<String>>, String> {
    let Some(requested) = requested.map(guise_core::permission::parse_scope).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    match requested.iter().find(|s| !granted.contains(s)) {
        Some(extra) => Err(extra.clone()),
        None => Ok(Some(requested)),
    }
}

/// A parameter the grant cannot go without: absent or empty is `invalid_request`.
pub(crate) fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("Missing required parameter: {name}")))
}

/// The grant handlers guise serves, in one place.
pub fn handlers() -> Vec<Box<dyn GrantHandler>> {
    vec![
        Box::new(AuthorizationCodeGrant),
        Box::new(RefreshTokenGrant),
        Box::new(ClientCredentialsGrant),
        Box::new(TokenExchangeGrant),
    ]
}

/// The longest client id echoed into the audit log for an unknown client.
const MAX_LOGGED_CLIENT_ID: usize = 64;

/// Run the token endpoint: pick the handler, authenticate, issue, audit.
pub fn exchange(
    handlers: &[Box<dyn GrantHandler>],
    request: &TokenRequest,
    ctx: &TokenContext<'_>,
) -> Result<TokenResponse, OAuthError> {
    if request.grant_type.is_empty() {
        return Err(OAuthError::invalid_request("Missing required parameter: grant_type"));
    }
    let Some(handler) = handlers.iter().find(|h| h.grant_type() == request.grant_type) else {
        return Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "Unsupported grant type: only authorization_code, refresh_token, client_credentials and urn:ietf:params:oauth:grant-type:token-exchange are accepted",
        ));
    };
    let credentials = request
        .credentials
        .as_ref()
        .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidClient, "Client authentication is required"))?;
    let outcome = authenticate(ctx.clients, credentials).and_then(|client| {
        handler.allowed(&client).map_err(|refusal| OAuthError::new(OAuthErrorCode::UnauthorizedClient, refusal))?;
        handler.handle(&client, request, ctx)
    });
    record(handler.events(), credentials.client_id(), request, &outcome, ctx)?;
    outcome
}

fn record(
    events: GrantEvents,
    client_id: &str,
    request: &TokenRequest,
    outcome: &Result<TokenResponse, OAuthError>,
    ctx: &TokenContext<'_>,
) -> Result<(), OAuthError> {
    let client_id: String = client_id.chars().take(MAX_LOGGED_CLIENT_ID).collect();
    let event = match outcome {
        Ok(response) => AuditEvent::new(events.success, ctx.now, Actor::Client(client_id.clone()), "Token issued")
            .details(
                json!({ "grant_type": request.grant_type, "audience": request.audience, "scope": response.scope }),
            ),
        Err(e) if e.code == OAuthErrorCode::ServerError => return Ok(()),
        Err(e) => AuditEvent::new(events.failure, ctx.now, Actor::Client(client_id.clone()), e.description.clone())
            .details(json!({ "grant_type": request.grant_type, "error": e.code.as_str() })),
    };
    let mut event = event.client(client_id).source_ip(request.source_ip.clone());
    if let Ok(response) = outcome {
        event.subject = response.subject.clone();
        event.on_behalf_of = response.impersonator.clone();
        if response.impersonator.is_some() {
            event.details["impersonated"] = json!(true);
            event.details["impersonation_minted_by"] = json!(response.impersonation_minted_by);
        }
        if let Some(actor) = &response.actor {
            event.on_behalf_of = Some(actor.clone());
            event.details["act"] = json!({ "sub": actor });
        }
    }
    ctx.audit.append(vec![event])?;
    Ok(())
}
