//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): a trusted
//! back end exchanges a token naming a user (or, for the most trusted, the user's id)
//! for an access token for that user — *impersonation* — or, with an `actor_token`, for
//! one that says who acts for the user in `act` — *delegation*, allowed only where the
//! user's `may_act` names the actor.
//!
//! The authority ceiling applies: the client opts in (the grant type in its
//! `grant_types`), holds `impersonate:users` through its Management API grant, and must
//! cover the user's Management API permissions; the scope can only narrow what the user
//! (and the presented token) holds; and no Management API token is issued — acting on
//! that API as a user is what `as_user_id`, `As-User` and `MSCRMCallerID` are for.

use super::{GrantEvents, GrantHandler, TokenContext, TokenRequest, TokenResponse};
use crate::access_token::{AccessTokenClaims, mint, verify_any_audience};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::impersonation_claims::Impersonation;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::event_type;
use guise_core::authority::{Chain, Link, LinkKind, Principal};
use guise_core::authorization::AccessTokenRecord;
use guise_core::client::Client;
use guise_core::ids::new_token_id;
use guise_core::permission::scopes;
use guise_core::user::User;
use serde_json::{Map, Value, json};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// guise's own subject type: the user's id, for trusted back ends that hold no token.
pub const USER_ID_TYPE: &str = "urn:guise:params:oauth:token-type:user_id";

/// The parameters of RFC 8693 §2.1 beyond the common ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeParams {
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct TokenExchangeGrant;

/// Who the exchanged token will be about, and what the presented token allowed.
struct Subject {
    user: User,
    /// The scope of a presented access token for `audience`, which the new one may only narrow.
    token_scope: Option<(String, Vec<String>)>,
    /// The presented token's expiry: the new token does not outlive it.
    token_exp: Option<i64>,
}

fn invalid_request(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidRequest, description)
}

impl GrantHandler for TokenExchangeGrant {
    fn grant_type(&self) -> &'static str {
        GRANT_TYPE
    }

    fn events(&self) -> GrantEvents {
        GrantEvents { success: event_type::TOKEN_EXCHANGE, failure: event_type::FAILED_TOKEN_EXCHANGE }
    }

    /// A client exchanges tokens only when `allow_token_exchange` says so (listing the
    /// grant type in `grant_types` alone, as Auth0's custom token exchange does, is not
    /// enough: it is the switch an administrator turns on deliberately).
    fn allowed(&self, client: &Client) -> Result<(), String> {
        if client.allow_token_exchange {
            Ok(())
        } else {
            Err("The client is not enabled for token exchange (allow_token_exchange)".to_owned())
        }
    }

    fn handle(
        &self,
        client: &Client,
        request: &TokenRequest,
        ctx: &TokenContext<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.is_confidential() {
            return Err(OAuthError::new(OAuthErrorCode::UnauthorizedClient, "Public clients cannot exchange tokens"));
        }
        let management = ctx.settings.management_audience();
        let client_holds = ctx.client_grants.granted_on(&client.client_id, &management)?;
        if !client_holds.names_for(&management).contains(scopes::IMPERSONATE_USERS) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "Token exchange requires the impersonate:users scope in the client's Management API grant",
            ));
        }
        let params = &request.exchange;
        match params.requested_token_type.as_deref() {
            None | Some(ACCESS_TOKEN_TYPE) | Some(JWT_TOKEN_TYPE) => {}
            Some(other) => return Err(invalid_request(format!("Unsupported requested_token_type '{other}'"))),
        }
        let audience = target_audience(request, params, ctx)?;
        if audience == management {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                "Token exchange does not issue Management API tokens; act as the user with as_user_id, As-User or MSCRMCallerID",
            ));
        }
        let subject = subject(client, params, ctx)?;
        let act = actor(params, &subject.user, ctx)?;

        // The authority ceiling: the client must hold what the user holds on the
        // Management API (a token speaks for its audience; the client's is that API).
        let user_holds = ctx.roles.user_permission_set(&subject.user.user_id)?;
        let chain = Chain::of(Link::on_audience(
            LinkKind::TokenHolder,
            Principal::Client(client.client_id.clone()),
            &management,
            &client_holds,
        ));
        if let Err(short) = chain.covers(&user_holds.only(&management)) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidGrant,
                format!("The client lacks permissions the user holds: {}", short.missing_names()),
            ));
        }

        // The scope only narrows: what the user holds on the audience, within what the
        // presented token carried for it.
        let mut allowed: Vec<String> = user_holds.names_for(&audience).into_iter().collect();
        if let Some((token_audience, token_scope)) = &subject.token_scope
            && *token_audience == audience
        {
            allowed.retain(|s| token_scope.contains(s));
        }
        let scope = match super::requested_scope(request.scope.as_deref(), &allowed) {
            Ok(requested) => requested.unwrap_or(allowed),
            Err(extra) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidScope,
                    format!("Scope '{extra}' is beyond what the user holds for \"{audience}\""),
                ));
            }
        };

        let now = ctx.now;
        let mut exp = (now + ctx.settings.access_token_lifetime).timestamp();
        if let Some(token_exp) = subject.token_exp {
            exp = exp.min(token_exp);
        }
        let mut extra = Map::new();
        if let Some(act) = &act {
            extra.insert("act".into(), act.clone());
        }
        if let Some(may_act) = subject.user.app_metadata.get("may_act") {
            extra.insert("may_act".into(), may_act.clone());
        }
        let claims = AccessTokenClaims {
            iss: ctx.settings.issuer.clone(),
            sub: subject.user.user_id.clone(),
            aud: audience,
            azp: client.client_id.clone(),
            scope: scope.join(" "),
            iat: now.timestamp(),
            exp,
            jti: new_token_id(),
            gty: Some("token-exchange".to_owned()),
            extra,
        };
        let access_token = mint(ctx.keys, &claims).map_err(|_| OAuthError::server_error())?;
        // Recorded like every user token, so revocation and introspection know it; it
        // belongs to no browser session.
        ctx.tokens.record_access_token(AccessTokenRecord {
            jti: claims.jti.clone(),
            client_id: client.client_id.clone(),
            user_id: subject.user.user_id.clone(),
            sid: String::new(),
            family_id: None,
            code_hash: None,
            expires_at: DateTime::<Utc>::from_timestamp(exp, 0).unwrap_or(now),
            revoked_at: None,
        })?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: exp - now.timestamp(),
            scope: claims.scope,
            id_token: None,
            refresh_token: None,
            subject: Some(subject.user.user_id),
            impersonator: None,
            impersonation_minted_by: None,
            issued_token_type: Some(ACCESS_TOKEN_TYPE),
            actor: act.as_ref().and_then(|a| a.get("sub")).and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// `audience` (a logical name) or `resource` (an absolute URI, RFC 8707): one target.
fn target_audience(
    request: &TokenRequest,
    params: &ExchangeParams,
    ctx: &TokenContext<'_>,
) -> Result<String, OAuthError> {
    match (&request.audience, &params.resource) {
        (Some(a), Some(r)) if a != r => {
            Err(OAuthError::new(OAuthErrorCode::InvalidTarget, "audience and resource name different targets"))
        }
        (Some(a), _) | (None, Some(a)) => Ok(a.clone()),
        (None, None) => Ok(ctx.settings.userinfo_audience()),
    }
}

fn live_user(user_id: &str, ctx: &TokenContext<'_>) -> Result<User, OAuthError> {
    match ctx.users.user_by_id(user_id) {
        Ok(user) if !user.blocked => Ok(user),
        Ok(_) => Err(OAuthError::invalid_grant("The user is blocked")),
        Err(StoreError::NotFound) => Err(OAuthError::invalid_grant("The user does not exist")),
        Err(e) => Err(e.into()),
    }
}

/// A user access token guise issued that is still good: verified, unexpired, on record
/// and unrevoked, not a machine's and not from an impersonation session.
fn user_access_token(token: &str, what: &str, ctx: &TokenContext<'_>) -> Result<AccessTokenClaims, OAuthError> {
    let claims = verify_any_audience(ctx.keys, token, &ctx.settings.issuer, ctx.now)
        .map_err(|e| invalid_request(format!("The {what} is not valid: {e}")))?;
    if claims.machine_client().is_none() {
        match ctx.tokens.access_token_record(&claims.jti) {
            Ok(record) if record.revoked_at.is_none() => {}
            Ok(_) => return Err(invalid_request(format!("The {what} has been revoked"))),
            Err(StoreError::NotFound) => return Err(invalid_request(format!("The {what} is not valid"))),
            Err(e) => return Err(e.into()),
        }
    }
    if Impersonation::is_carried_by(&claims.extra) {
        return Err(invalid_request(format!("A token from an impersonation session cannot be the {what}")));
    }
    Ok(claims)
}

#[derive(serde::Deserialize)]
struct IdTokenClaims {
    sub: String,
    aud: String,
}

fn subject(client: &Client, params: &ExchangeParams, ctx: &TokenContext<'_>) -> Result<Subject, OAuthError> {
    let token = params.subject_token.as_deref().filter(|t| !t.is_empty());
    let (Some(token), Some(kind)) = (token, params.subject_token_type.as_deref()) else {
        return Err(invalid_request("subject_token and subject_token_type are required"));
    };
    match kind {
        ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE => {
            let claims = user_access_token(token, "subject_token", ctx)?;
            if claims.machine_client().is_some() {
                return Err(invalid_request("The subject_token was issued to a machine, not a user"));
            }
            Ok(Subject {
                user: live_user(&claims.sub, ctx)?,
                token_scope: Some((claims.aud.clone(), claims.scopes().map(str::to_owned).collect())),
                token_exp: Some(claims.exp),
            })
        }
        ID_TOKEN_TYPE => {
            let header =
                jsonwebtoken::decode_header(token).map_err(|_| invalid_request("The subject_token is not a JWT"))?;
            let kid = header.kid.ok_or_else(|| invalid_request("The subject_token names no key"))?;
            let (alg, key) =
                ctx.keys.verifier(&kid).ok_or_else(|| invalid_request("The subject_token names an unknown key"))?;
            if header.alg != *alg {
                return Err(invalid_request("The subject_token is not valid"));
            }
            let mut validation = jsonwebtoken::Validation::new(*alg);
            validation.set_issuer(&[ctx.settings.issuer.as_str()]);
            validation.validate_aud = false;
            validation.validate_exp = false;
            validation.required_spec_claims.clear();
            let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
                .map_err(|_| invalid_request("The subject_token is not valid"))?;
            let exp = data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
            if exp <= ctx.now.timestamp() {
                return Err(invalid_request("The subject_token has expired"));
            }
            let claims: IdTokenClaims = serde_json::from_value(Value::Object(data.claims))
                .map_err(|_| invalid_request("The subject_token is not an ID token"))?;
            // An ID token is evidence for the client it was issued to only.
            if claims.aud != client.client_id {
                return Err(invalid_request("The subject_token was issued to another client"));
            }
            Ok(Subject { user: live_user(&claims.sub, ctx)?, token_scope: None, token_exp: Some(exp) })
        }
        USER_ID_TYPE => Ok(Subject { user: live_user(token, ctx)?, token_scope: None, token_exp: None }),
        other => Err(invalid_request(format!("Unsupported subject_token_type '{other}'"))),
    }
}

/// Whether `may_act` (RFC 8693 §4.4: `{"sub": …}`, or a list of such) names `actor`.
fn may_act_names(may_act: &Value, actor: &str) -> bool {
    match may_act {
        Value::Object(o) => o.get("sub").and_then(Value::as_str) == Some(actor),
        Value::Array(list) => list.iter().any(|m| may_act_names(m, actor)),
        Value::String(s) => s == actor,
        _ => false,
    }
}

/// The `act` claim of a delegation, nesting the actor token's own `act` (RFC 8693 §4.1).
fn actor(params: &ExchangeParams, user: &User, ctx: &TokenContext<'_>) -> Result<Option<Value>, OAuthError> {
    let Some(token) = params.actor_token.as_deref().filter(|t| !t.is_empty()) else {
        if params.actor_token_type.is_some() {
            return Err(invalid_request("actor_token_type without actor_token"));
        }
        return Ok(None);
    };
    match params.actor_token_type.as_deref() {
        Some(ACCESS_TOKEN_TYPE) | Some(JWT_TOKEN_TYPE) => {}
        Some(other) => return Err(invalid_request(format!("Unsupported actor_token_type '{other}'"))),
        None => return Err(invalid_request("actor_token_type is required with actor_token")),
    }
    let claims = user_access_token(token, "actor_token", ctx)?;
    let permitted = user.app_metadata.get("may_act").is_some_and(|may_act| may_act_names(may_act, &claims.sub));
    if !permitted {
        return Err(OAuthError::invalid_grant(format!(
            "The user's may_act does not name the actor '{}'",
            claims.sub.chars().take(128).collect::<String>()
        )));
    }
    let mut act = json!({ "sub": claims.sub });
    if let Some(prior) = claims.extra.get("act") {
        act["act"] = prior.clone();
    }
    Ok(Some(act))
}
