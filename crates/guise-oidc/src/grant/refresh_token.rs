//! `grant_type=refresh_token` (RFC 6749 §6, RFC 9700 §4.14): rotation on every use; a
//! reused token revokes its whole family; the family's lifetime is absolute.

use super::issue::{Claimed, UserGrant, hash_secret, issue_user_tokens};
use super::{GrantEvents, GrantHandler, TokenContext, TokenRequest, TokenResponse, requested_scope, required};
use crate::error::{OAuthError, OAuthErrorCode};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::RefreshRedemption;
use guise_core::client::Client;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
pub struct RefreshTokenGrant;

impl GrantHandler for RefreshTokenGrant {
    fn grant_type(&self) -> &'static str {
        "refresh_token"
    }

    fn events(&self) -> GrantEvents {
        GrantEvents { success: event_type::REFRESH_EXCHANGE, failure: event_type::FAILED_REFRESH_EXCHANGE }
    }

    fn handle(
        &self,
        client: &Client,
        request: &TokenRequest,
        ctx: &TokenContext<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let token = required(request.refresh_token.as_deref(), "refresh_token")?;
        let hash = hash_secret(token);
        // A token of another client, or a request asking too much, must not burn the
        // token: check before using it.
        let presented = match ctx.tokens.refresh_token(&hash) {
            Ok(record) if record.client_id == client.client_id => record,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(OAuthError::invalid_grant("Unknown or invalid refresh token"));
            }
            Err(e) => return Err(e.into()),
        };
        // A narrower scope may be asked for, never a wider one. (A spent token skips the
        // check, so that its reuse is still detected below.)
        let requested = match requested_scope(request.scope.as_deref(), &presented.scope) {
            Err(extra) if presented.used_at.is_none() => {
                return Err(OAuthError::new(OAuthErrorCode::InvalidScope, format!("Scope '{extra}' was not granted")));
            }
            Err(_) => None,
            Ok(requested) => requested,
        };
        let record = match ctx.tokens.use_refresh_token(&hash, ctx.now)? {
            RefreshRedemption::Rotated(record) => record,
            RefreshRedemption::Reused(record) => {
                ctx.audit.append(vec![
                    AuditEvent::new(
                        event_type::REFRESH_TOKEN_REUSED,
                        ctx.now,
                        Actor::Client(client.client_id.clone()),
                        "Rotated refresh token used again; its family was revoked",
                    )
                    .subject(record.user_id.clone())
                    .client(client.client_id.clone())
                    .source_ip(request.source_ip.clone())
                    .details(json!({ "family_id": record.family_id })),
                ])?;
                return Err(OAuthError::invalid_grant("Unknown or invalid refresh token"));
            }
            RefreshRedemption::Dead(_) => return Err(OAuthError::invalid_grant("Unknown or invalid refresh token")),
        };
        // Rotation kept the presented token's scope, checked above.
        let scope = requested.unwrap_or_else(|| record.scope.clone());
        issue_user_tokens(
            client,
            UserGrant {
                user_id: record.user_id,
                sid: record.sid,
                scope,
                granted_scope: record.scope,
                audience: record.audience,
                nonce: None,
                auth_time: record.auth_time,
                code_hash: record.code_hash,
                family: Some((record.family_id, record.family_expires_at)),
                claimed: Claimed::RefreshToken(hash),
            },
            ctx,
        )
    }
}
