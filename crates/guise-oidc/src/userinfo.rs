//! `/userinfo` (OIDC Core §5.3): the claims a user access token's scope releases.

use crate::OidcSettings;
use crate::access_token::{AccessTokenClaims, TokenRejection, verify_any_audience};
use crate::chain;
use crate::grant::TokenContext;
use crate::impersonation_claims::Impersonation;
use crate::keys::KeyRing;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::impersonation::Refusal;
use guise_core::store::TokenStore;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserInfoError {
    /// RFC 6750 `invalid_token`.
    #[error("{0}")]
    InvalidToken(String),
    /// RFC 6750 `insufficient_scope`: the token lacks `openid`.
    #[error("The access token does not carry the openid scope")]
    InsufficientScope,
    #[error("server error")]
    Server,
}

impl From<StoreError> for UserInfoError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure at userinfo");
        UserInfoError::Server
    }
}

/// Verify a user access token and check it has not been revoked.
pub fn verify_user_token(
    keys: &KeyRing,
    settings: &OidcSettings,
    tokens: &dyn TokenStore,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessTokenClaims, UserInfoError> {
    let claims = verify_any_audience(keys, token, &settings.issuer, now)
        .map_err(|e: TokenRejection| UserInfoError::InvalidToken(e.to_string()))?;
    match tokens.access_token_record(&claims.jti) {
        Ok(record) if record.revoked_at.is_none() => Ok(claims),
        Ok(_) => Err(UserInfoError::InvalidToken("The access token has been revoked".into())),
        // Tokens without a record were not issued to a user (client credentials).
        Err(StoreError::NotFound) => {
            Err(UserInfoError::InvalidToken("The access token was not issued to a user".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The claims for a user access token. A token minted in an impersonation session is
/// honoured only while that impersonation's chain still holds.
pub fn userinfo(ctx: &TokenContext<'_>, token: &str) -> Result<Map<String, Value>, UserInfoError> {
    let claims = verify_user_token(ctx.keys, ctx.settings, ctx.tokens, token, ctx.now)?;
    if Impersonation::is_carried_by(&claims.extra) {
        let sid = ctx.tokens.access_token_record(&claims.jti)?.sid;
        match chain::recheck_token_session(ctx, &sid, &claims.azp)? {
            Ok(()) => {}
            Err(Refusal::SessionEnded) => return Err(UserInfoError::InvalidToken("The session has ended".into())),
            Err(refusal) => {
                return Err(UserInfoError::InvalidToken(format!("The impersonation has ended: {refusal}")));
            }
        }
    }
    let users = ctx.users;
    let scope: Vec<String> = claims.scopes().map(str::to_owned).collect();
    if !scope.iter().any(|s| s == "openid") {
        return Err(UserInfoError::InsufficientScope);
    }
    let user = match users.user_by_id(&claims.sub) {
        Ok(user) if user.blocked => return Err(UserInfoError::InvalidToken("The user is blocked".into())),
        Ok(user) => user,
        Err(StoreError::NotFound) => return Err(UserInfoError::InvalidToken("The user no longer exists".into())),
        Err(e) => return Err(e.into()),
    };
    let mut body = crate::id_token::user_claims(&user, &scope);
    body.insert("sub".into(), json!(user.user_id));
    if let Some(impersonation) = claims.impersonation() {
        impersonation.write_into(&mut body);
    }
    Ok(body)
}
