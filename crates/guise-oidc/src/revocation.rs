//! Token revocation (RFC 7009) and introspection (RFC 7662).

use crate::OidcSettings;
use crate::access_token::verify_any_audience;
use crate::api_access::{ClientCap, client_cap};
use crate::chain;
use crate::grant::OIDC_SCOPES;
use crate::grant::TokenContext;
use crate::grant::hash_secret;
use crate::impersonation_claims::Impersonation;
use crate::keys::KeyRing;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::client::Client;
use guise_core::store::{TokenStore, found};
use serde_json::{Value, json};

/// Revoke `token` if it belongs to `client`. Unknown tokens are not an error (§2.2).
/// Returns whether something was revoked.
pub fn revoke(
    keys: &KeyRing,
    settings: &OidcSettings,
    tokens: &dyn TokenStore,
    client: &Client,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    match tokens.refresh_token(&hash_secret(token)) {
        Ok(record) if record.client_id == client.client_id => {
            tokens.revoke_refresh_family(&record.family_id, now)?;
            return Ok(true);
        }
        Ok(_) => return Ok(false),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    // Access tokens: accept expired ones too, revoking is harmless.
    let claims = match verify_any_audience(keys, token, &settings.issuer, DateTime::<Utc>::MIN_UTC) {
        Ok(claims) if claims.azp == client.client_id => claims,
        _ => return Ok(false),
    };
    if found(tokens.access_token_record(&claims.jti))?.is_none() {
        return Ok(false);
    }
    tokens.revoke_access_token(&claims.jti, now)?;
    Ok(true)
}

/// Introspect `token` for an authenticated client: refresh tokens of that client, and
/// access tokens (any audience) that verify, have not expired and were not revoked, and
/// whose authority still stands — a machine token's client must still exist and hold a
/// grant for the token's audience (the scope shown is what that grant still covers); a
/// user token's client must still exist; an impersonation's chain must still hold.
pub fn introspect(ctx: &TokenContext<'_>, client: &Client, token: &str) -> Result<Value, StoreError> {
    let (keys, settings, tokens, now) = (ctx.keys, ctx.settings, ctx.tokens, ctx.now);
    let inactive = json!({ "active": false });
    match tokens.refresh_token(&hash_secret(token)) {
        Ok(r) => {
            let active = r.client_id == client.client_id
                && r.used_at.is_none()
                && r.revoked_at.is_none()
                && r.family_expires_at > now;
            if !active {
                return Ok(inactive);
            }
            return Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": r.client_id,
                "sub": r.user_id,
                "scope": r.scope.join(" "),
                "exp": r.family_expires_at.timestamp(),
                "iat": r.created_at.timestamp(),
                "iss": settings.issuer,
            }));
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let Ok(claims) = verify_any_audience(keys, token, &settings.issuer, now) else { return Ok(inactive) };
    let record = found(tokens.access_token_record(&claims.jti))?;
    if record.as_ref().is_some_and(|r| r.revoked_at.is_some())
        || found(ctx.clients.client_by_id(&claims.azp))?.is_none()
    {
        return Ok(inactive);
    }
    let mut claims = claims;
    if claims.machine_client().is_some() {
        let held = ctx.client_grants.granted_on(&claims.azp, &claims.aud)?.names_for(&claims.aud);
        if held.is_empty() {
            return Ok(inactive);
        }
        claims.scope = claims.scopes().filter(|s| held.contains(*s)).collect::<Vec<_>>().join(" ");
    } else {
        // A user's token: issued on record, to a user who still exists unblocked; its API
        // scopes narrowed to what the user (and, for the Management API, the client's
        // grant) still holds.
        if record.is_none() {
            return Ok(inactive);
        }
        if found(ctx.users.user_by_id(&claims.sub))?.is_none_or(|user| user.blocked) {
            return Ok(inactive);
        }
        let held = ctx.roles.user_permission_set(&claims.sub)?.names_for(&claims.aud);
        let cap = client_cap(ctx.client_grants, &claims.azp, &claims.aud, &settings.management_audience())?;
        if cap == ClientCap::NotAuthorized {
            return Ok(inactive);
        }
        claims.scope = claims
            .scopes()
            .filter(|s| OIDC_SCOPES.contains(s) || (held.contains(*s) && cap.allows(s)))
            .collect::<Vec<_>>()
            .join(" ");
    }
    if let Some(record) = record.filter(|_| Impersonation::is_carried_by(&claims.extra))
        && chain::recheck_token_session(ctx, &record.sid, &claims.azp)?.is_err()
    {
        return Ok(inactive);
    }
    let mut body = json!({
        "active": true,
        "token_type": "access_token",
        "client_id": claims.azp,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "scope": claims.scope,
        "exp": claims.exp,
        "iat": claims.iat,
        "jti": claims.jti,
    });
    if let (Some(impersonation), Some(body)) = (claims.impersonation(), body.as_object_mut()) {
        impersonation.write_into(body);
    }
    Ok(body)
}
