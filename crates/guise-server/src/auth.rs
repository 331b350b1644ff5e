//! Who is calling: the bearer token of a Management API request, verified against the
//! published keys, and the request facts (source address, method, path) for audit.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use guise_core::StoreError;
use guise_core::act_as::{ActAsRefusal, TargetRef, effective_scopes, single_target};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::permission::scopes;
use guise_core::store::{AuditStore, ClientStore, RoleStore, TokenStore, UserStore};
use guise_core::user::Attribution;
use guise_oidc::access_token::{AccessTokenClaims, TokenRejection, verify};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

/// A verified caller of the Management API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified token. When acting as a user, `scope` is narrowed to the effective
    /// permissions: the intersection of the caller's and the target's.
    pub claims: AccessTokenClaims,
    pub acting_as: Option<ActingAs>,
}

/// The user a call runs as (`as_user_id`, `As-User` or `MSCRMCallerID`).
#[derive(Debug, Clone)]
pub struct ActingAs {
    pub user_id: String,
}

/// The response header that names the user a call ran as.
pub const EFFECTIVE_USER_HEADER: &str = "x-effective-user";

impl Caller {
    /// Refuse unless the (effective) token scope carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.claims.has_scope(scope) { Ok(()) } else { Err(ApiError::insufficient_scope(&[scope])) }
    }

    /// The impersonator behind a token minted in an impersonation session (`act.sub`).
    pub fn impersonator(&self) -> Option<&str> {
        self.claims.extra.get("act").and_then(|act| act.get("sub")).and_then(|sub| sub.as_str())
    }

    /// Who really acted: the machine client, the impersonator behind an impersonation
    /// session's token, or the user behind the token.
    pub fn actor(&self) -> Actor {
        match (self.claims.machine_client(), self.impersonator()) {
            (Some(client_id), _) => Actor::Client(client_id.to_owned()),
            (None, Some(impersonator)) => Actor::User(impersonator.to_owned()),
            (None, None) => Actor::User(self.claims.sub.clone()),
        }
    }

    /// The user the call runs as: the acted-as target, or the token's user.
    pub fn effective_user(&self) -> Option<&str> {
        match &self.acting_as {
            Some(acting) => Some(&acting.user_id),
            None if self.claims.machine_client().is_none() => Some(&self.claims.sub),
            None => None,
        }
    }

    /// Who a write is recorded as made by, and on whose behalf.
    pub fn attribution(&self) -> Attribution {
        let actor = self.actor().id().map(str::to_owned);
        match (&self.acting_as, self.impersonator()) {
            (Some(acting), _) => Attribution { by: Some(acting.user_id.clone()), on_behalf_by: actor },
            (None, Some(_)) => Attribution { by: Some(self.claims.sub.clone()), on_behalf_by: actor },
            (None, None) => Attribution { by: actor, on_behalf_by: None },
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("Missing authentication"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Bad HTTP authentication header format"))?;
    match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::unauthorized("Bad HTTP authentication header format")),
    }
}

fn rejection(e: TokenRejection) -> ApiError {
    ApiError::unauthorized(e.to_string())
}

/// The target named by `as_user_id` (query), `As-User` or `MSCRMCallerID` (headers).
fn act_as_spec(req: &HttpRequest) -> Result<Option<String>, ActAsRefusal> {
    let query = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "as_user_id")
        .map(|(_, v)| v.into_owned());
    let header = |name: &str| -> Result<Option<String>, ActAsRefusal> {
        match req.headers().get(name) {
            None => Ok(None),
            // Headers carry the reference percent-encoded (no form rules: `+` stays `+`).
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
                .map(|s| Some(s.into_owned()))
                .ok_or(ActAsRefusal::InvalidTarget),
        }
    };
    let (box_header, dynamics_header) = (header("as-user")?, header("mscrmcallerid")?);
    Ok(single_target([query.as_deref(), box_header.as_deref(), dynamics_header.as_deref()])?.map(str::to_owned))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let spec = act_as_spec(req);
        let meta = RequestMeta::from_request(req, state.as_ref().is_some_and(|s| s.config.trust_forwarded_for));
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&"application state missing"))?.into_inner();
            let claims = verify_token(&state, token?).await?;
            // A machine token not acting as anyone needs no database: skip the blocking pool.
            let caller = if claims.machine_client().is_some() && matches!(spec, Ok(None)) {
                Caller { claims, acting_as: None }
            } else {
                state.blocking(move |s| settle(s, claims, spec, &meta)).await?
            };
            // Remembered for the refusal audit and the effective-user header.
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })
    }
}

async fn verify_token(state: &std::sync::Arc<AppState>, token: String) -> Result<AccessTokenClaims, ApiError> {
    let audience = state.settings.management_audience();
    let check = move |state: &AppState| {
        verify(&state.keys.current(), &token, &state.settings.issuer, &audience, state.clock.now())
    };
    match check.clone()(state) {
        Ok(claims) => Ok(claims),
        Err(TokenRejection::UnknownKey) if state.keys.may_refresh_on_demand() => {
            // A key rotated on another node: reload once, then decide.
            state
                .blocking(move |s| {
                    s.keys.refresh(&s.db, s.clock.now()).map_err(|e| ApiError::internal(&e))?;
                    check(s).map_err(rejection)
                })
                .await
        }
        Err(e) => Err(rejection(e)),
    }
}

/// Blocking checks after the signature: user tokens must not be revoked; acting as a
/// user is resolved, checked and audited.
fn settle(
    s: &AppState,
    mut claims: AccessTokenClaims,
    spec: Result<Option<String>, ActAsRefusal>,
    meta: &RequestMeta,
) -> Result<Caller, ApiError> {
    if claims.machine_client().is_none() {
        match s.db.access_token_record(&claims.jti) {
            Ok(record) if record.revoked_at.is_none() => {}
            Ok(_) => return Err(ApiError::unauthorized("The access token has been revoked")),
            Err(StoreError::NotFound) => return Err(ApiError::unauthorized("Unknown access token")),
            Err(e) => return Err(e.into()),
        }
        match s.db.user_by_id(&claims.sub) {
            Ok(user) if !user.blocked => {}
            Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::unauthorized("The user is blocked or gone")),
            Err(e) => return Err(e.into()),
        }
    }
    let spec = match spec {
        Ok(None) => return Ok(Caller { claims, acting_as: None }),
        Ok(Some(spec)) => Ok(spec),
        Err(refusal) => Err(refusal),
    };
    let caller = Caller { claims: claims.clone(), acting_as: None };
    let now = s.clock.now();
    let spec_for_audit: Option<String> = spec.as_ref().ok().map(|s| s.chars().take(300).collect());
    match spec.and_then(|spec| resolve_act_as(s, &claims, &spec)) {
        Ok((target, effective)) => {
            let mut event = meta.api_event(&caller, now, "API call made acting as a user").subject(target.clone());
            event.event_type = event_type::ACT_AS.to_owned();
            event.on_behalf_of = Some(target.clone());
            event.details["effective_scope"] = serde_json::json!(effective.iter().collect::<Vec<_>>());
            s.db.append(vec![event])?;
            claims.scope = effective.into_iter().collect::<Vec<_>>().join(" ");
            Ok(Caller { claims, acting_as: Some(ActingAs { user_id: target }) })
        }
        Err(refusal) => {
            let mut event = meta.api_event(&caller, now, &format!("Acting as a user refused: {refusal}"));
            event.event_type = event_type::ACT_AS_REFUSED.to_owned();
            event.details["reason"] = serde_json::json!(refusal.reason());
            event.details["target"] = serde_json::json!(spec_for_audit);
            s.db.append(vec![event])?;
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN);
            let code = match refusal.status() {
                400 => "invalid_act_as",
                404 => "inexistent_user",
                _ => "act_as_forbidden",
            };
            Err(ApiError::new(status, code, refusal.to_string()))
        }
    }
}

fn resolve_act_as(
    s: &AppState,
    claims: &AccessTokenClaims,
    spec: &str,
) -> Result<(String, BTreeSet<String>), ActAsRefusal> {
    let server = |_| ActAsRefusal::UnknownTarget;
    if claims.extra.contains_key("act") {
        return Err(ActAsRefusal::Chained);
    }
    let caller_scopes: BTreeSet<String> = claims.scopes().map(str::to_owned).collect();
    if !caller_scopes.contains(scopes::IMPERSONATE_USERS) {
        return Err(ActAsRefusal::MissingScope);
    }
    match s.db.client_by_id(&claims.azp) {
        Ok(client) if client.allow_act_as => {}
        _ => return Err(ActAsRefusal::ClientNotEnabled),
    }
    let target = match TargetRef::parse(spec).ok_or(ActAsRefusal::InvalidTarget)? {
        TargetRef::UserId(id) => s.db.user_by_id(&id),
        TargetRef::ExternalId(id) => s.db.user_by_external_id(&id),
    }
    .map_err(server)?;
    if target.blocked {
        return Err(ActAsRefusal::BlockedTarget);
    }
    let target_permissions =
        s.db.user_permission_set(&target.user_id).map_err(server)?.names_for(&s.settings.management_audience());
    let effective = effective_scopes(&caller_scopes, &target_permissions)?;
    Ok((target.user_id, effective))
}

/// Facts about the request that audit events record.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub method: String,
    pub path: String,
}

impl RequestMeta {
    pub fn from_request(req: &HttpRequest, trust_forwarded_for: bool) -> Self {
        let forwarded = trust_forwarded_for
            .then(|| req.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            // The right-most entry is the one our trusted proxy appended; the rest is
            // whatever the client sent.
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_owned());
        Self {
            source_ip: forwarded.or_else(|| req.peer_addr().map(|a| a.ip().to_string())),
            method: req.method().to_string(),
            path: req.path().to_owned(),
        }
    }

    /// A "success API operation" event by `caller` (naming the acted-as user, if any).
    pub fn api_event(&self, caller: &Caller, at: chrono::DateTime<chrono::Utc>, description: &str) -> AuditEvent {
        let mut event = AuditEvent::new(event_type::API_OPERATION, at, caller.actor(), description)
            .source_ip(self.source_ip.clone())
            .details(serde_json::json!({ "request": { "method": self.method, "path": self.path } }));
        event.client_id = Some(caller.claims.azp.clone());
        if let Some(acting) = &caller.acting_as {
            event.on_behalf_of = Some(acting.user_id.clone());
            event.details["acting_as"] = serde_json::json!(acting.user_id);
        } else if caller.impersonator().is_some() {
            event.on_behalf_of = Some(caller.claims.sub.clone());
            event.details["impersonated"] = serde_json::json!(true);
        }
        event
    }
}

impl FromRequest for RequestMeta {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.trust_forwarded_for);
        std::future::ready(Ok(Self::from_request(req, trust)))
    }
}
