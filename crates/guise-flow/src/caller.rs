//! The caller of a Management API call, settled: a verified token measured by what its
//! holder holds now, impersonation-session tokens refused, acting as a user resolved,
//! checked and audited — a [`Caller`] whose `chain` every authority check of the call asks.

use crate::impersonation::{Minter, refusal_event};
use crate::{FlowContext, FlowError};
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::act_as::{ActAsRefusal, TargetRef, effective_scopes};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authority::{Chain, Link, LinkKind, Principal};
use guise_core::impersonation::Refusal;
use guise_core::permission::{PermissionSet, scopes};
use guise_core::refusal::RefusalKind;
use guise_core::store::found;
use guise_core::user::Attribution;
use guise_oidc::OidcSettings;
use guise_oidc::access_token::{AccessTokenClaims, TokenRejection, verify, verify_any_audience};
use guise_oidc::api_access::{ClientCap, NOT_AUTHORIZED, client_cap};
use guise_oidc::keys::KeyRing;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A settled caller of the Management API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified token, its `scope` narrowed to what the token holder still holds now
    /// and, when acting as a user, what that user holds too.
    pub claims: AccessTokenClaims,
    /// The user the call runs as (`as_user_id`, `As-User` or `MSCRMCallerID`).
    pub acting_as: Option<String>,
    /// Everyone the call's authority rests on: the token holder, then the acted-as user.
    pub chain: Chain,
}

impl Caller {
    /// The authority ceiling: refused, naming what is missing, unless every link of the
    /// chain holds all of `needed` (what a write confers, or what the thing changed holds).
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

    /// Who mints the impersonation this call asks for: the token holder with what it holds
    /// now — or, acting as someone (which may not mint), only who it is.
    pub fn minter(&self) -> Option<Minter> {
        let holder = self.chain.links().first()?;
        Some(if self.acting_as.is_some() {
            Minter::ActingAs(holder.principal.clone())
        } else {
            Minter::Token(holder.clone())
        })
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
            Some(user_id) => Some(user_id),
            None if self.claims.machine_client().is_none() => Some(&self.claims.sub),
            None => None,
        }
    }

    /// Who a write is recorded as made by, and on whose behalf.
    pub fn attribution(&self) -> Attribution {
        let actor = self.actor().id().map(str::to_owned);
        match &self.acting_as {
            Some(user_id) => Attribution { by: Some(user_id.clone()), on_behalf_by: actor },
            None => Attribution { by: actor, on_behalf_by: None },
        }
    }
}

/// Facts about the request that audit events record.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub source_ip: Option<String>,
    pub method: String,
    pub path: String,
}

impl RequestFacts {
    /// The request line, as events record it under `request`.
    fn line(&self) -> Value {
        json!({ "method": self.method, "path": self.path })
    }

    /// A "success API operation" event by `caller` (naming the acted-as user, if any).
    pub fn api_event(&self, caller: &Caller, at: DateTime<Utc>, description: &str) -> AuditEvent {
        let mut event = AuditEvent::new(event_type::API_OPERATION, at, caller.actor(), description)
            .source_ip(self.source_ip.clone())
            .details(json!({ "request": self.line() }));
        event.client_id = Some(caller.claims.azp.clone());
        if let Some(user_id) = &caller.acting_as {
            event.on_behalf_of = Some(user_id.clone());
            event.details["acting_as"] = json!(user_id);
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
            if found(store.user_by_id(&claims.sub))?.is_none_or(|user| user.blocked) {
                return Err(unauthenticated("The user is blocked or gone"));
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

/// Settle a verified token into the call's [`Caller`]: the token holder as it stands now;
/// impersonation-session tokens refused and audited; the user `act_as` names (or why its
/// spellings are refused) resolved, checked and audited, running with the intersection.
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
        let mut event = refusal_event(ctx.now, Actor::User(impersonator.clone()), "api", "forbidden", &refusal)
            .subject(claims.sub.clone())
            .client(claims.azp.clone())
            .source_ip(request.source_ip.clone());
        event.details["impersonator_id"] = json!(impersonator);
        event.details["request"] = request.line();
        event.on_behalf_of = Some(claims.sub.clone());
        ctx.store.append(vec![event])?;
        return Err(unauthenticated(&refusal));
    }
    let holder = token_holder(ctx, &claims, &audience)?;
    claims.scope = narrowed_scope(&claims, &holder.holds.names_for(&audience));
    let caller = Caller { claims, acting_as: None, chain: Chain::of(holder) };
    let Some(spec) = act_as.transpose() else { return Ok(caller) };
    let spec_for_audit: Option<String> = spec.as_ref().ok().map(|s| s.chars().take(300).collect());
    match spec.and_then(|spec| resolve_act_as(ctx, &caller.claims, &spec)) {
        Ok((target, permissions, effective)) => {
            let mut event =
                request.api_event(&caller, ctx.now, "API call made acting as a user").subject(target.clone());
            event.event_type = event_type::ACT_AS.to_owned();
            event.on_behalf_of = Some(target.clone());
            event.details["effective_scope"] = json!(effective.iter().collect::<Vec<_>>());
            ctx.store.append(vec![event])?;
            let Caller { mut claims, chain, .. } = caller;
            claims.scope = narrowed_scope(&claims, &effective);
            let acted_as =
                Link::on_audience(LinkKind::ActedAs, Principal::User(target.clone()), &audience, &permissions);
            Ok(Caller { claims, acting_as: Some(target), chain: chain.then(acted_as) })
        }
        Err(refusal) => {
            let mut event = request.api_event(&caller, ctx.now, &format!("Acting as a user refused: {refusal}"));
            event.event_type = event_type::ACT_AS_REFUSED.to_owned();
            event.details["reason"] = json!(refusal.reason());
            event.details["target"] = json!(spec_for_audit);
            ctx.store.append(vec![event])?;
            Err(FlowError::ActAsRefused(refusal))
        }
    }
}

/// The user `spec` names, what they hold, and what the call may do as them.
fn resolve_act_as(
    ctx: &FlowContext<'_>,
    claims: &AccessTokenClaims,
    spec: &str,
) -> Result<(String, PermissionSet, BTreeSet<String>), ActAsRefusal> {
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
    Ok((target.user_id, permissions, effective))
}
