//! An impersonation's chain, loaded from the stores and checked with the one rule
//! (`guise_core::impersonation::check_parties`): at minting, at redemption, and on every
//! later use of the session it opened (`/authorize`, the token endpoint, `/userinfo`). A
//! chain that no longer holds ends the session, revokes its tokens and is audited.

use crate::grant::TokenContext;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authority::{Chain, Link, LinkKind, Principal};
use guise_core::client::Client;
use guise_core::impersonation::{Parties, Refusal, check_parties, recheck_session};
use guise_core::permission::PermissionSet;
use guise_core::session::Session;
use guise_core::store::{ClientGrantStore, ClientStore, RoleStore, SessionStore, UserStore};
use guise_core::user::User;
use serde_json::json;

/// The stores a chain is read from.
#[derive(Clone, Copy)]
pub struct ChainStores<'a> {
    pub users: &'a dyn UserStore,
    pub roles: &'a dyn RoleStore,
    pub clients: &'a dyn ClientStore,
    pub client_grants: &'a dyn ClientGrantStore,
}

impl<'a> ChainStores<'a> {
    /// The chain's stores out of a token endpoint's context.
    pub fn of(ctx: &TokenContext<'a>) -> Self {
        ChainStores { users: ctx.users, roles: ctx.roles, clients: ctx.clients, client_grants: ctx.client_grants }
    }
}

/// Re-check the impersonation session a token was minted in (its record's `sid`), as
/// the token is used by its client: a session that is gone counts as ended.
pub fn recheck_token_session(
    ctx: &TokenContext<'_>,
    sid: &str,
    client_id: &str,
) -> Result<Result<(), Refusal>, StoreError> {
    let session = match ctx.sessions.session_by_sid(sid) {
        Ok(session) => session,
        Err(StoreError::NotFound) => return Ok(Err(Refusal::SessionEnded)),
        Err(e) => return Err(e),
    };
    recheck(ChainStores::of(ctx), ctx.sessions, &session, client_id, &ctx.settings.management_audience(), ctx.now)
}

/// Who holds the token that started the impersonation, in front of the impersonator.
#[derive(Debug, Clone)]
pub enum Holder<'a> {
    /// The operator at the command line: the impersonator alone.
    Nobody,
    /// A verified caller whose authority the caller computed (token scope included).
    Caller(Link),
    /// The client whose token minted the URL (a machine client, or the application a
    /// user's token was issued to): its Management API grant as it is now.
    MintingClient(&'a str),
}

/// A refusal, or a store failure (which is not a refusal).
#[derive(Debug)]
pub enum ChainError {
    Refused(Refusal),
    Store(StoreError),
}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        ChainError::Store(e)
    }
}

impl From<Refusal> for ChainError {
    fn from(r: Refusal) -> Self {
        ChainError::Refused(r)
    }
}

/// The parties of a checked impersonation.
#[derive(Debug)]
pub struct Checked {
    pub target: User,
    pub impersonator: User,
    pub client: Client,
}

/// The names of an impersonation, as they are written into what its session causes.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub target_id: &'a str,
    pub impersonator_id: &'a str,
    pub client_id: &'a str,
}

/// The parties and the chain, as loaded.
struct Loaded {
    checked: Checked,
    chain: Chain,
    target_permissions: PermissionSet,
}

impl Loaded {
    fn parties<'a>(&'a self, management_audience: &'a str) -> Parties<'a> {
        Parties {
            target: &self.checked.target,
            target_permissions: &self.target_permissions,
            impersonator: &self.checked.impersonator,
            chain: &self.chain,
            management_audience,
            client: &self.checked.client,
        }
    }
}

fn lookup<T>(result: Result<T, StoreError>, missing: Refusal) -> Result<T, ChainError> {
    match result {
        Ok(value) => Ok(value),
        Err(StoreError::NotFound) => Err(ChainError::Refused(missing)),
        Err(e) => Err(e.into()),
    }
}

fn load(
    stores: ChainStores<'_>,
    holder: Holder<'_>,
    names: Names<'_>,
    management_audience: &str,
) -> Result<Loaded, ChainError> {
    let target = lookup(stores.users.user_by_id(names.target_id), Refusal::UnknownTarget)?;
    let impersonator = lookup(stores.users.user_by_id(names.impersonator_id), Refusal::UnknownImpersonator)?;
    let client = lookup(stores.clients.client_by_id(names.client_id), Refusal::UnknownClient)?;
    let target_permissions = stores.roles.user_permission_set(&target.user_id)?;
    let person = Link::new(
        LinkKind::Impersonator,
        Principal::User(impersonator.user_id.clone()),
        stores.roles.user_permission_set(&impersonator.user_id)?,
    );
    let chain = match holder {
        Holder::Nobody => Chain::of(person),
        Holder::Caller(link) => Chain::of(link).then(person),
        Holder::MintingClient(client_id) => {
            lookup(stores.clients.client_by_id(client_id), Refusal::UnknownMinter)?;
            let holds = stores.client_grants.granted_on(client_id, management_audience)?;
            let principal = Principal::Client(client_id.to_owned());
            Chain::of(Link::on_audience(LinkKind::TokenHolder, principal, management_audience, &holds)).then(person)
        }
    };
    Ok(Loaded { checked: Checked { target, impersonator, client }, chain, target_permissions })
}

/// Load the parties and the chain and apply the rules (minting and redemption).
pub fn check(
    stores: ChainStores<'_>,
    holder: Holder<'_>,
    names: Names<'_>,
    management_audience: &str,
) -> Result<Checked, ChainError> {
    let loaded = load(stores, holder, names, management_audience)?;
    check_parties(&loaded.parties(management_audience))?;
    Ok(loaded.checked)
}

/// Re-check an impersonation session as it is used for `client_id` at `now`. Ordinary
/// sessions pass. When the chain no longer holds, the session is ended (its tokens
/// revoked) with a `guise_impersonation_ended` event, and the refusal is returned.
pub fn recheck(
    stores: ChainStores<'_>,
    sessions: &dyn SessionStore,
    session: &Session,
    client_id: &str,
    management_audience: &str,
    now: DateTime<Utc>,
) -> Result<Result<(), Refusal>, StoreError> {
    let Some(impersonator_id) = session.impersonator_id.as_deref() else { return Ok(Ok(())) };
    let holder = match session.impersonation_minted_by.as_deref() {
        Some(minter) => Holder::MintingClient(minter),
        None => Holder::Nobody,
    };
    let names = Names { target_id: &session.user_id, impersonator_id, client_id };
    let refusal = match load(stores, holder, names, management_audience) {
        Ok(loaded) => match recheck_session(session, &loaded.parties(management_audience), now) {
            Ok(()) => return Ok(Ok(())),
            Err(refusal) => refusal,
        },
        Err(ChainError::Refused(refusal)) => refusal,
        Err(ChainError::Store(e)) => return Err(e),
    };
    // A client that does not (or no longer) exist or accept impersonation refuses this use
    // without ending the session; anything else means the chain itself is broken.
    let chain_broken = !matches!(refusal, Refusal::SessionEnded | Refusal::ClientNotEnabled | Refusal::UnknownClient);
    if session.ended_at.is_none() && chain_broken {
        let mut event = AuditEvent::new(
            event_type::IMPERSONATION_ENDED,
            now,
            Actor::System,
            format!("Impersonation session ended: {refusal}"),
        )
        .subject(session.user_id.clone())
        .client(client_id.to_owned())
        .details(json!({
            "sid": session.sid,
            "reason": "chain_broken",
            "refusal": refusal.to_string(),
            "impersonator_id": impersonator_id,
            "minted_by": session.impersonation_minted_by,
        }));
        event.on_behalf_of = Some(impersonator_id.to_owned());
        match sessions.end_session(&session.sid, now, event) {
            // Another request ended it first.
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Err(refusal))
}
