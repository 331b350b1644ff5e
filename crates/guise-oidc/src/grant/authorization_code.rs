//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636): single-use codes bound to
//! client, redirect URI and PKCE verifier; a replayed code revokes what it issued.

use super::issue::{Claimed, UserGrant, hash_secret, issue_user_tokens};
use super::{GrantEvents, GrantHandler, TokenContext, TokenRequest, TokenResponse, required};
use crate::error::OAuthError;
use crate::pkce;
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::CodeRedemption;
use guise_core::client::Client;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
pub struct AuthorizationCodeGrant;

impl GrantHandler for AuthorizationCodeGrant {
    fn grant_type(&self) -> &'static str {
        "authorization_code"
    }

    fn events(&self) -> GrantEvents {
        GrantEvents { success: event_type::CODE_EXCHANGE, failure: event_type::FAILED_CODE_EXCHANGE }
    }

    fn handle(
        &self,
        client: &Client,
        request: &TokenRequest,
        ctx: &TokenContext<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let code = required(request.code.as_deref(), "code")?;
        let code_hash = hash_secret(code);
        let code = match ctx.codes.consume_code(&code_hash, ctx.now) {
            Ok(CodeRedemption::Redeemed(code)) => code,
            Ok(CodeRedemption::Replayed(code)) => {
                ctx.audit.append(vec![
                    AuditEvent::new(
                        event_type::CODE_REPLAYED,
                        ctx.now,
                        Actor::Client(client.client_id.clone()),
                        "Authorization code used twice; tokens issued from it revoked",
                    )
                    .subject(code.user_id.clone())
                    .client(client.client_id.clone())
                    .source_ip(request.source_ip.clone())
                    .details(json!({ "sid": code.sid })),
                ])?;
                return Err(OAuthError::invalid_grant("Invalid authorization code"));
            }
            Err(StoreError::NotFound) => return Err(OAuthError::invalid_grant("Invalid authorization code")),
            Err(e) => return Err(e.into()),
        };
        if code.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        }
        if code.expires_at <= ctx.now {
            return Err(OAuthError::invalid_grant("Authorization code has expired"));
        }
        if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
        }
        match (&code.code_challenge, request.code_verifier.as_deref()) {
            (Some(challenge), Some(verifier)) => {
                if !pkce::verify_s256(verifier, challenge) {
                    return Err(OAuthError::invalid_grant("Failed to verify code_verifier"));
                }
            }
            (Some(_), None) => return Err(OAuthError::invalid_grant("Missing required parameter: code_verifier")),
            // A verifier for a request that sent no challenge: a downgrade attempt.
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier sent but the authorization request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        issue_user_tokens(
            client,
            UserGrant {
                user_id: code.user_id,
                sid: code.sid,
                granted_scope: code.scope.clone(),
                scope: code.scope,
                audience: code.audience,
                nonce: code.nonce,
                auth_time: code.auth_time,
                claimed: Claimed::Code(code.code_hash.clone()),
                code_hash: Some(code.code_hash),
                family: None,
            },
            ctx,
        )
    }
}
