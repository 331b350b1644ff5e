//! Who is calling: the bearer token of a Management API request, verified against the
//! published keys, and the request facts (source address, method, path) for audit.

use crate::error::{ApiError, status_of};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use guise_core::StoreError;
use guise_core::act_as::{ActAsRefusal, TargetRef, effective_scopes, single_target};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authority::{Chain, Link, LinkKind, Principal};
use guise_core::impersonation::Refusal;
use guise_core::permission::PermissionSet;
use guise_core::permission::scopes;
use guise_core::refusal::RefusalKind;
use guise_core::store::{AuditStore, ClientGrantStore, ClientStore, RoleStore, TokenStore, UserStore};
use guise_core::user::Attribution;
use guise_oidc::access_token::{AccessTokenClaims, TokenRejection, verify, verify_any_audience};
use guise_oidc::api_access::{ClientCap, NOT_AUTHORIZED, client_cap};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

/// A verified caller of the Management API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified token. Its `scope` is narrowed to the effective permissions: what the
    /// token holder still holds now (a client's current grant, a user's current
    /// permissions) and, when acting as a user, what that user holds too.
    pub claims: AccessTokenClaims,
    pub acting_as: Option<ActingAs>,
    /// Everyone the call's authority rests on: the token holder, then the acted-as user.
    pub chain: Chain,
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

    /// The authority ceiling on a Management API call: refuse (403, naming what is
    /// missing) unless every link of the call's chain holds all of `needed` — the
    /// permissions conferred, or held by the user, role, grant or client changed.
    pub fn require_cover(&self, needed: &PermissionSet) -> Result<(), ApiError> {
        self.chain.covers(needed).map_err(|short| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_permissions",
                format!(
                    "The authority ceiling: {} lacks permissions this would confer or change: {}",
                    match short.kind {
                        LinkKind::ActedAs => "the user acted as",
                        _ => "the caller",
                    },
                    short.missing_names()
                ),
            )
        })
    }

    /// The token holder, with what it holds now (for minting impersonations).
    pub fn holder(&self) -> Option<&Link> {
        self.chain.links().first()
    }

    /// Who really acted: the machine client, or the user behind the token.
    pub fn actor(&self) -> Actor {
        match self.claims.machine_client() {
            Some(client_id) => Actor::Client(client_id.to_owned()),
            None => Actor::User(self.claims.sub.clone()),
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
        match &self.acting_as {
            Some(acting) => Attribution { by: Some(acting.user_id.clone()), on_behalf_by: actor },
            None => Attribution { by: actor, on_behalf_by: None },
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
            let caller = state.blocking(move |s| settle(s, claims, spec, &meta)).await?;
            // Remembered for the refusal audit and the effective-user header.
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })
    }
}

async fn verify_token(state: &std::sync::Arc<AppState>, token: String) -> Result<AccessTokenClaims, ApiError> {
    let audience = state.settings.management_audience();
    let token_for_audit = token.clone();
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
        Err(TokenRejection::WrongAudience) => {
            // A token from an impersonation session, for whatever audience, is handed to
            // `settle`, which refuses it *and audits the attempt* naming the impersonator.
            match verify_any_audience(
                &state.keys.current(),
                &token_for_audit,
                &state.settings.issuer,
                state.clock.now(),
            ) {
                Ok(claims) if claims.impersonation().is_some() => Ok(claims),
                _ => Err(rejection(TokenRejection::WrongAudience)),
            }
        }
        Err(e) => Err(rejection(e)),
    }
}

fn unauthorized_store(e: StoreError, gone: &str) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::unauthorized(gone),
        e => e.into(),
    }
}

/// The token holder as it stands now: a machine client must still exist and hold a
/// grant for this API; a user's token must not be revoked, and its user must still exist
/// unblocked. Its authority is what the token says *and* what the holder still holds.
fn token_holder(s: &AppState, claims: &AccessTokenClaims, audience: &str) -> Result<Link, ApiError> {
    let token_scope = PermissionSet::on(audience, claims.scopes());
    let (principal, holds) = match claims.machine_client() {
        Some(client_id) => {
            // One lookup: a deleted client's grants are deleted with it.
            let holds = s.db.granted_on(client_id, audience)?;
            if holds.is_empty() {
                return Err(ApiError::unauthorized("The client no longer exists or holds no grant for this API"));
            }
            (Principal::Client(client_id.to_owned()), holds)
        }
        None => {
            match s.db.access_token_record(&claims.jti) {
                Ok(record) if record.revoked_at.is_none() => {}
                Ok(_) => return Err(ApiError::unauthorized("The access token has been revoked")),
                Err(e) => return Err(unauthorized_store(e, "Unknown access token")),
            }
            match s.db.user_by_id(&claims.sub) {
                Ok(user) if !user.blocked => {}
                Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::unauthorized("The user is blocked or gone")),
                Err(e) => return Err(e.into()),
            }
            // A user token is capped by its client's grant on the Management API, too (a
            // deleted client has none: its grants went with it).
            let held = s.db.user_permission_set(&claims.sub)?;
            let holds = match client_cap(&s.db, &claims.azp, audience, audience)? {
                ClientCap::NotAuthorized => return Err(ApiError::unauthorized(NOT_AUTHORIZED)),
                ClientCap::Granted(scopes) => held.intersection(&PermissionSet::on(audience, scopes)),
                ClientCap::Unlimited => held,
            };
            (Principal::User(claims.sub.clone()), holds)
        }
    };
    Ok(Link::on_audience(LinkKind::TokenHolder, principal, audience, &holds.intersection(&token_scope)))
}

/// The token's scope narrowed to what `effective` holds on the Management API (scopes
/// that are not Management API permissions, such as `openid`, pass unchanged).
fn narrowed_scope(claims: &AccessTokenClaims, effective: &BTreeSet<String>) -> String {
    claims
        .scopes()
        .filter(|name| !scopes::ALL.contains(name) || effective.contains(*name))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Blocking checks after the signature: the token holder as it stands now (see
/// `token_holder`); tokens minted in an impersonation session are refused; acting as a
/// user is resolved, checked and audited.
fn settle(
    s: &AppState,
    mut claims: AccessTokenClaims,
    spec: Result<Option<String>, ActAsRefusal>,
    meta: &RequestMeta,
) -> Result<Caller, ApiError> {
    let audience = s.settings.management_audience();
    if let Some(impersonation) = claims.impersonation() {
        // Issued before this rule: impersonation sessions do not obtain Management API
        // tokens. The attempt is audited naming the impersonator, acting for the user.
        let refusal = Refusal::ManagementApiAudience.to_string();
        let impersonator = impersonation.impersonator.user_id;
        let mut event = AuditEvent::new(
            event_type::IMPERSONATION_REFUSED,
            s.clock.now(),
            Actor::User(impersonator.clone()),
            format!("Impersonation refused: {refusal}"),
        )
        .subject(claims.sub.clone())
        .client(claims.azp.clone())
        .source_ip(meta.source_ip.clone())
        .details(serde_json::json!({
            "stage": "api",
            "reason": "forbidden",
            "impersonator_id": impersonator,
            "request": { "method": meta.method, "path": meta.path },
        }));
        event.on_behalf_of = Some(claims.sub.clone());
        s.db.append(vec![event])?;
        return Err(ApiError::unauthorized(refusal));
    }
    let holder = token_holder(s, &claims, &audience)?;
    claims.scope = narrowed_scope(&claims, &holder.holds.names_for(&audience));
    let chain = Chain::of(holder);
    let spec = match spec {
        Ok(None) => return Ok(Caller { claims, acting_as: None, chain }),
        Ok(Some(spec)) => Ok(spec),
        Err(refusal) => Err(refusal),
    };
    let caller = Caller { claims: claims.clone(), acting_as: None, chain: chain.clone() };
    let now = s.clock.now();
    let spec_for_audit: Option<String> = spec.as_ref().ok().map(|s| s.chars().take(300).collect());
    match spec.and_then(|spec| resolve_act_as(s, &claims, &spec)) {
        Ok((target, target_permissions, effective)) => {
            let mut event = meta.api_event(&caller, now, "API call made acting as a user").subject(target.clone());
            event.event_type = event_type::ACT_AS.to_owned();
            event.on_behalf_of = Some(target.clone());
            event.details["effective_scope"] = serde_json::json!(effective.iter().collect::<Vec<_>>());
            s.db.append(vec![event])?;
            claims.scope = narrowed_scope(&claims, &effective);
            let acted_as =
                Link::on_audience(LinkKind::ActedAs, Principal::User(target.clone()), &audience, &target_permissions);
            Ok(Caller { claims, acting_as: Some(ActingAs { user_id: target }), chain: chain.then(acted_as) })
        }
        Err(refusal) => {
            let mut event = meta.api_event(&caller, now, &format!("Acting as a user refused: {refusal}"));
            event.event_type = event_type::ACT_AS_REFUSED.to_owned();
            event.details["reason"] = serde_json::json!(refusal.reason());
            event.details["target"] = serde_json::json!(spec_for_audit);
            s.db.append(vec![event])?;
            let code = match refusal.kind() {
                RefusalKind::Invalid => "invalid_act_as",
                RefusalKind::UnknownUser => "inexistent_user",
                RefusalKind::Forbidden | RefusalKind::Unauthenticated => "act_as_forbidden",
            };
            Err(ApiError::new(status_of(refusal.kind()), code, refusal.to_string()))
        }
    }
}

fn resolve_act_as(
    s: &AppState,
    claims: &AccessTokenClaims,
    spec: &str,
) -> Result<(String, PermissionSet, BTreeSet<String>), ActAsRefusal> {
    let server = |_| ActAsRefusal::UnknownTarget;
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
    let target_permissions = s.db.user_permission_set(&target.user_id).map_err(server)?;
    let effective = effective_scopes(&caller_scopes, &target_permissions.names_for(&s.settings.management_audience()))?;
    Ok((target.user_id, target_permissions, effective))
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
