//! `grant_type=client_credentials` (RFC 6749 §4.4): a machine's own token for an API it
//! holds a client grant on.

use super::{GrantEvents, GrantHandler, TokenContext, TokenRequest, TokenResponse, requested_scope};
use crate::access_token::{AccessTokenClaims, mint};
use crate::error::{OAuthError, OAuthErrorCode};
use guise_core::StoreError;
use guise_core::audit::event_type;
use guise_core::client::Client;
use guise_core::ids::new_token_id;

#[derive(Debug, Clone, Copy)]
pub struct ClientCredentialsGrant;

impl GrantHandler for ClientCredentialsGrant {
    fn grant_type(&self) -> &'static str {
        "client_credentials"
    }

    fn events(&self) -> GrantEvents {
        GrantEvents {
            success: event_type::CLIENT_CREDENTIALS_EXCHANGE,
            failure: event_type::FAILED_CLIENT_CREDENTIALS_EXCHANGE,
        }
    }

    fn handle(
        &self,
        client: &Client,
        request: &TokenRequest,
        ctx: &TokenContext<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.is_confidential() {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "Public clients cannot use the client_credentials grant",
            ));
        }
        let audience = request.audience.clone().unwrap_or_else(|| ctx.settings.management_audience());
        let grant = match ctx.client_grants.client_grant(&client.client_id, &audience) {
            Ok(grant) => grant,
            Err(StoreError::NotFound) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::AccessDenied,
                    format!(
                        "Client is not authorized to access \"{audience}\". You need to create a client grant associated to this API."
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let scopes = match requested_scope(request.scope.as_deref(), &grant.scope) {
            Ok(requested) => requested.unwrap_or_else(|| grant.scope.clone()),
            Err(extra) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!("Scope '{extra}' is not granted to this client for \"{audience}\""),
                ));
            }
        };
        let lifetime = ctx.settings.access_token_lifetime;
        let claims = AccessTokenClaims {
            iss: ctx.settings.issuer.clone(),
            sub: format!("{}@clients", client.client_id),
            aud: audience,
            azp: client.client_id.clone(),
            scope: scopes.join(" "),
            iat: ctx.now.timestamp(),
            exp: (ctx.now + lifetime).timestamp(),
            jti: new_token_id(),
            gty: Some("client-credentials".to_owned()),
            extra: Default::default(),
        };
        let access_token = mint(ctx.keys, &claims).map_err(|_| OAuthError::server_error())?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.num_seconds(),
            scope: claims.scope,
            id_token: None,
            refresh_token: None,
            subject: None,
            impersonator: None,
            impersonation_minted_by: None,
            issued_token_type: None,
            actor: None,
        })
    }
}
