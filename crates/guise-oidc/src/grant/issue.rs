//! Minting a user's tokens — access token, ID token, refresh token — shared by the
//! authorization-code and refresh-token grants.

use super::{TokenContext, TokenResponse};
use crate::access_token::{AccessTokenClaims, mint};
use crate::api_access::{ClientCap, NOT_AUTHORIZED, client_cap};
use crate::chain::{self, ChainStores};
use crate::error::OAuthError;
use crate::id_token::{self, IdTokenInput};
use crate::impersonation_claims::Impersonation;
use chrono::{DateTime, Utc};
use guise_core::authorization::{AccessTokenRecord, RefreshTokenRecord};
use guise_core::client::Client;
use guise_core::ids::{new_secret, new_token_id};
use guise_core::impersonation::{Refusal, impersonation_may_reach};
use guise_core::session::Session;
use guise_core::store::found;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Scopes that describe the user or the grant, not an API.
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// What a user grant carries from the code or refresh token that started it.
#[derive(Debug, Clone)]
pub struct UserGrant {
    pub user_id: String,
    pub sid: String,
    pub scope: Vec<String>,
    /// The scope the refresh family was granted (rotation keeps it, RFC 6749 §6).
    pub granted_scope: Vec<String>,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub code_hash: Option<String>,
    /// Continue this refresh family (rotation) with its fixed end, or start a new one.
    pub family: Option<(String, DateTime<Utc>)>,
    /// The single-use credential this grant claimed, confirmed after the new tokens are
    /// recorded (reuse detection that raced the issuing revokes them then).
    pub claimed: Claimed,
}

/// What a token request spent to get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// An authorization code (its hash).
    Code(String),
    /// A refresh token, rotated (its hash).
    RefreshToken(String),
}

/// SHA-256 hex of a bearer secret (codes, refresh tokens, session cookies).
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The impersonation claims a session carries (empty for ordinary sessions).
pub fn impersonation_claims(session: &Session, ctx: &TokenContext<'_>) -> Result<Map<String, Value>, OAuthError> {
    let mut claims = Map::new();
    if let Some(impersonator) = &session.impersonator_id {
        let email = found(ctx.users.user_by_id(impersonator))?.map(|user| user.email);
        Impersonation::new(impersonator, email).write_into(&mut claims);
    }
    Ok(claims)
}

/// Issue tokens for `grant` to `client`.
pub fn issue_user_tokens(
    client: &Client,
    grant: UserGrant,
    ctx: &TokenContext<'_>,
) -> Result<TokenResponse, OAuthError> {
    let user = found(ctx.users.user_by_id(&grant.user_id))?
        .ok_or_else(|| OAuthError::invalid_grant("The user no longer exists"))?;
    if user.blocked {
        return Err(OAuthError::invalid_grant("The user is blocked"));
    }
    let session = found(ctx.sessions.session_by_sid(&grant.sid))?
        .ok_or_else(|| OAuthError::invalid_grant("The session no longer exists"))?;
    if session.ended_at.is_some() {
        return Err(OAuthError::invalid_grant("The session has ended"));
    }
    // An impersonation session is re-checked on every use: a broken chain ends it.
    let management_audience = ctx.settings.management_audience();
    if let Err(refusal) =
        chain::recheck(ChainStores::of(ctx), ctx.sessions, &session, &client.client_id, &management_audience, ctx.now)?
    {
        return Err(OAuthError::invalid_grant(match refusal {
            Refusal::SessionEnded => "The session has ended".to_owned(),
            broken => format!("The impersonation has ended: {broken}"),
        }));
    }
    let audience = grant.audience.clone().unwrap_or_else(|| ctx.settings.userinfo_audience());
    if session.impersonator_id.is_some() {
        impersonation_may_reach(&audience, &management_audience)
            .map_err(|refusal| OAuthError::invalid_grant(refusal.to_string()))?;
    }
    let extra = impersonation_claims(&session, ctx)?;

    // API scopes are limited to what the user holds on that API (RBAC).
    // The Management API only for clients granted it, and only what that grant allows.
    let cap = client_cap(ctx.client_grants, &client.client_id, &audience, &management_audience)?;
    if cap == ClientCap::NotAuthorized {
        return Err(OAuthError::invalid_grant(NOT_AUTHORIZED));
    }
    let held = ctx.roles.user_permission_set(&user.user_id)?.names_for(&audience);
    let scope: Vec<String> = grant
        .scope
        .iter()
        .filter(|s| OIDC_SCOPES.contains(&s.as_str()) || (held.contains(*s) && cap.allows(s)))
        .cloned()
        .collect();

    let now = ctx.now;
    // Nothing minted in an impersonation session outlives it.
    let session_left = session.absolute_expires_at - now;
    let capped = |lifetime: chrono::Duration| match &session.impersonator_id {
        Some(_) => lifetime.min(session_left),
        None => lifetime,
    };
    let lifetime = capped(ctx.settings.access_token_lifetime);
    let mut token_extra = extra.clone();
    token_extra.insert("sid".into(), json!(grant.sid));
    let claims = AccessTokenClaims {
        iss: ctx.settings.issuer.clone(),
        sub: user.user_id.clone(),
        aud: audience,
        azp: client.client_id.clone(),
        scope: scope.join(" "),
        iat: now.timestamp(),
        exp: (now + lifetime).timestamp(),
        jti: new_token_id(),
        gty: None,
        extra: token_extra,
    };
    let access_token = mint(ctx.keys, &claims).map_err(|_| OAuthError::server_error())?;

    // The family continues as long as it was granted offline_access, even when this
    // access token was asked for with a narrower scope.
    let refresh = if grant.granted_scope.iter().any(|s| s == "offline_access") && client.allows_grant("refresh_token") {
        let secret = new_secret();
        let (family_id, family_expires_at) =
            grant.family.clone().unwrap_or_else(|| (new_token_id(), now + capped(ctx.settings.refresh_token_lifetime)));
        ctx.tokens.save_refresh_token(RefreshTokenRecord {
            token_hash: hash_secret(&secret),
            family_id: family_id.clone(),
            client_id: client.client_id.clone(),
            user_id: user.user_id.clone(),
            sid: grant.sid.clone(),
            scope: grant.granted_scope.clone(),
            audience: grant.audience.clone(),
            code_hash: grant.code_hash.clone(),
            auth_time: grant.auth_time,
            created_at: now,
            family_expires_at,
            used_at: None,
            revoked_at: None,
        })?;
        Some((secret, family_id))
    } else {
        None
    };
    ctx.tokens.record_access_token(AccessTokenRecord {
        jti: claims.jti.clone(),
        client_id: client.client_id.clone(),
        user_id: user.user_id.clone(),
        sid: grant.sid.clone(),
        family_id: refresh.as_ref().map(|(_, f)| f.clone()).or_else(|| grant.family.as_ref().map(|(f, _)| f.clone())),
        code_hash: grant.code_hash.clone(),
        expires_at: now + lifetime,
        revoked_at: None,
    })?;
    // The new tokens are recorded: only now is it safe to ask whether a reuse of what
    // this request claimed was detected meanwhile (it may have missed these rows).
    // Then they are revoked, and not handed out.
    match &grant.claimed {
        Claimed::Code(hash) => {
            if !ctx.codes.confirm_code_issue(hash, now)? {
                return Err(OAuthError::invalid_grant("Invalid authorization code"));
            }
        }
        Claimed::RefreshToken(hash) => {
            if !ctx.tokens.confirm_rotation(hash, now)? {
                return Err(OAuthError::invalid_grant("Unknown or invalid refresh token"));
            }
        }
    }

    let id_token = if scope.iter().any(|s| s == "openid") {
        let alg = client.jwt_configuration.get("alg").and_then(Value::as_str).unwrap_or(crate::keys::DEFAULT_ALG);
        let input = IdTokenInput {
            user: &user,
            client_id: &client.client_id,
            scope: &scope,
            nonce: grant.nonce.as_deref(),
            auth_time: grant.auth_time,
            sid: &grant.sid,
            access_token: &access_token,
            alg,
            lifetime: capped(ctx.settings.id_token_lifetime),
            extra: &extra,
        };
        Some(id_token::mint(ctx.settings, ctx.keys, &input, now).map_err(|_| OAuthError::server_error())?)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime.num_seconds(),
        scope: scope.join(" "),
        id_token,
        refresh_token: refresh.map(|(secret, _)| secret),
        subject: Some(user.user_id),
        impersonator: session.impersonator_id,
        impersonation_minted_by: session.impersonation_minted_by,
        issued_token_type: None,
        actor: None,
    })
}
