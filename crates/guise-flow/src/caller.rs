//! The caller of a Management API call, settled: a verified bearer token checked against
//! what its holder (a machine client's current grant, a user's current permissions and
//! standing) holds now, tokens from impersonation sessions refused, and acting as a user
//! resolved, checked and audited. The outcome is a [`Caller`] whose `chain` every
//! authority check of the call asks.

use crate::{FlowContext, FlowError};
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::act_as::{ActAsRefusal, TargetRef, effective_scopes};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authority::{Chain, Link, LinkKind, Principal};
use guise_core::impersonation::Refusal;
use guise_core::permission::{PermissionSet, scopes};
use guise_core::refusal::RefusalKind;
use guise_core::user::Attribution;
use guise_oidc::OidcSettings;
use guise_oidc::access_token::{AccessTokenClaims, TokenRejection, verify, verify_any_audience};
use guise_oidc::api_access::{ClientCap, NOT_AUTHORIZED, client_cap};
use guise_oidc::keys::KeyRing;
use std::collections::BTreeSet;

/// A settled caller of the Management API.
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

impl Caller {
    /// The authority ceiling on a Management API call: refused (naming what is missing)
    /// unless every link of the call's chain holds all of `needed` — the permissions
    /// conferred, or held by the user, role, grant or client changed.
    pub fn require_cover(&self, needed: &PermissionSet) -> Result<(), FlowError> {
        self.chain.covers(needed).map_err(|short| {
            let who = if short.kind == LinkKind::ActedAs { "the user acted as" } else { "the caller" };
            FlowError::refused(
                RefusalKind::Forbidden,
                format!(
                    "The authority ceiling: {who} lacks permissions this would confer or change: {}",
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

/// Facts about the request that audit events record.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub source_ip: Option<String>,
    pub method: String,
    pub path: String,
}

impl RequestFacts {
    /// A "success API operation" event by `caller` (naming the acted-as user, if any).
    pub fn api_event(&self, caller: &Caller, at: DateTime<Utc>, description: &str) -> AuditEvent {
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

/// A bearer token's claims when guise signed it for the Management API — or, minted in
/// an impersonation session, for any audience: [`settle`] refuses those and audits the
/// attempt naming the impersonator.
pub fn verify_bearer(
    keys: &KeyRing,
    token: &str,
    settings: &OidcSettings,
    now: DateTime<Utc>,
) -> Result<AccessTokenClaims, TokenRejection> {
    match verify(keys, token, &settings.issuer, &settings.management_audience(), now) {
        Err(TokenRejection::WrongAudience) => match verify_any_audience(keys, token, &settings.issuer, now) {
            Ok(claims) if claims.impersonation().is_some() => Ok(claims),
            _ => Err(TokenRejection::WrongAudience),
        },
        verified => verified,
    }
}

fn unauthenticated(message: &str) -> FlowError {
    FlowError::refused(RefusalKind::Unauthenticated, message)
}

/// The token holder as it stands now: a machine client must still exist and hold a
/// grant for this API; a user's token must not be revoked, and its user must still exist
/// unblocked. Its authority is what the token says *and* what the holder still holds.
fn token_holder(ctx: &FlowContext<'_>, claims: &AccessTokenClaims, audience: &str) -> Result<Link, FlowError> {
    let store = ctx.store;
    let token_scope = PermissionSet::on(audience, claims.scopes());
    let (principal, holds) = match claims.machine_client() {
        Some(client_id) => {
            // One lookup: a deleted client's grants are deleted with it.
            let holds = store.granted_on(client_id, audience)?;
            if holds.is_empty() {
                return Err(unauthenticated("The client no longer exists or holds no grant for this API"));
            }
            (Principal::Client(client_id.to_owned()), holds)
        }
        None => {
            match store.access_token_record(&claims.jti) {
                Ok(record) if record.revoked_at.is_none() => {}
                Ok(_) => return Err(unauthenticated("The access token has been revoked")),
                Err(StoreError::NotFound) => return Err(unauthenticated("Unknown access token")),
                Err(e) => return Err(e.into()),
            }
            match store.user_by_id(&claims.sub) {
                Ok(user) if !user.blocked => {}
                Ok(_) | Err(StoreError::NotFound) => return Err(unauthenticated("The user is blocked or gone")),
                Err(e) => return Err(e.into()),
            }
            // A user token is capped by its client's grant on the Management API, too (a
            // deleted client has none: its grants went with it).
            let held = store.user_permission_set(&claims.sub)?;
            let holds = match client_cap(store, &claims.azp, audience, audience)? {
                ClientCap::NotAuthorized => return Err(unauthenticated(NOT_AUTHORIZED)),
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

/// Settle a verified token into the call's [`Caller`]: the token holder as it stands now
/// (see `token_holder`); tokens minted in an impersonation session are refused and
/// audited; acting as the user `act_as` names is resolved, checked and audited, and the
/// call then runs with the intersection of both parties' permissions. `act_as` is the
/// target named by the request (or why its spellings are refused).
pub fn settle(
    ctx: &FlowContext<'_>,
    mut claims: AccessTokenClaims,
    act_as: Result<Option<String>, ActAsRefusal>,
    request: &RequestFacts,
) -> Result<Caller, FlowError> {
    let audience = ctx.settings.management_audience();
    if let Some(impersonation) = claims.impersonation() {
        // Issued before this rule: impersonation sessions do not obtain Management API
        // tokens. The attempt is audited naming the impersonator, acting for the user.
        let refusal = Refusal::ManagementApiAudience.to_string();
        let impersonator = impersonation.impersonator.user_id;
        let mut event = AuditEvent::new(
            event_type::IMPERSONATION_REFUSED,
            ctx.now,
            Actor::User(impersonator.clone()),
            format!("Impersonation refused: {refusal}"),
        )
        .subject(claims.sub.clone())
        .client(claims.azp.clone())
        .source_ip(request.source_ip.clone())
        .details(serde_json::json!({
            "stage": "api",
            "reason": "forbidden",
            "impersonator_id": impersonator,
            "request": { "method": request.method, "path": request.path },
        }));
        event.on_behalf_of = Some(claims.sub.clone());
        ctx.store.append(vec![event])?;
        return Err(unauthenticated(&refusal));
    }
    let holder = token_holder(ctx, &claims, &audience)?;
    claims.scope = narrowed_scope(&claims, &holder.holds.names_for(&audience));
    let caller = Caller { claims, acting_as: None, chain: Chain::of(holder) };
    let spec = match act_as {
        Ok(None) => return Ok(caller),
        Ok(Some(spec)) => Ok(spec),
        Err(refusal) => Err(refusal),
    };
    let spec_for_audit: Option<String> = spec.as_ref().ok().map(|s| s.chars().take(300).collect());
    match spec.and_then(|spec| resolve_act_as(ctx, &caller.claims, &spec)) {
        Ok(resolved) => {
            let mut event =
                request.api_event(&caller, ctx.now, "API call made acting as a user").subject(resolved.user_id.clone());
            event.event_type = event_type::ACT_AS.to_owned();
            event.on_behalf_of = Some(resolved.user_id.clone());
            event.details["effective_scope"] = serde_json::json!(resolved.effective.iter().collect::<Vec<_>>());
            ctx.store.append(vec![event])?;
            let Caller { mut claims, chain, .. } = caller;
            claims.scope = narrowed_scope(&claims, &resolved.effective);
            let target = Principal::User(resolved.user_id.clone());
            let acted_as = Link::on_audience(LinkKind::ActedAs, target, &audience, &resolved.permissions);
            Ok(Caller { claims, acting_as: Some(ActingAs { user_id: resolved.user_id }), chain: chain.then(acted_as) })
        }
        Err(refusal) => {
            let mut event = request.api_event(&caller, ctx.now, &format!("Acting as a user refused: {refusal}"));
            event.event_type = event_type::ACT_AS_REFUSED.to_owned();
            event.details["reason"] = serde_json::json!(refusal.reason());
            event.details["target"] = serde_json::json!(spec_for_audit);
            ctx.store.append(vec![event])?;
            Err(FlowError::ActAsRefused(refusal))
        }
    }
}

/// The user a call acts as, what they hold, and what the call may do as them.
struct ActedAs {
    user_id: String,
    permissions: PermissionSet,
    effective: BTreeSet<String>,
}

fn resolve_act_as(ctx: &FlowContext<'_>, claims: &AccessTokenClaims, spec: &str) -> Result<ActedAs, ActAsRefusal> {
    let unknown = |_| ActAsRefusal::UnknownTarget;
    let caller_scopes: BTreeSet<String> = claims.scopes().map(str::to_owned).collect();
    if !caller_scopes.contains(scopes::IMPERSONATE_USERS) {
        return Err(ActAsRefusal::MissingScope);
    }
    match ctx.store.client_by_id(&claims.azp) {
        Ok(client) if client.allow_act_as => {}
        _ => return Err(ActAsRefusal::ClientNotEnabled),
    }
    let target = match TargetRef::parse(spec).ok_or(ActAsRefusal::InvalidTarget)? {
        TargetRef::UserId(id) => ctx.store.user_by_id(&id),
        TargetRef::ExternalId(id) => ctx.store.user_by_external_id(&id),
    }
    .map_err(unknown)?;
    if target.blocked {
        return Err(ActAsRefusal::BlockedTarget);
    }
    let permissions = ctx.store.user_permission_set(&target.user_id).map_err(unknown)?;
    let effective = effective_scopes(&caller_scopes, &permissions.names_for(&ctx.settings.management_audience()))?;
    Ok(ActedAs { user_id: target.user_id, permissions, effective })
}
