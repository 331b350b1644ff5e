//! Impersonation logins: minting a single-use bewit URL (the API and the CLI share
//! this), and redeeming it into an impersonation session delivered over the protocol
//! asked for. Every outcome, refusals included, is an audit event naming both parties.

use crate::delivery::{self, Delivery};
use crate::session::{self, Browser, Impersonated};
use crate::{FlowContext, FlowError};
use chrono::{DateTime, Duration, Utc};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authority::{Link, Principal};
use guise_core::bewit::{self, BewitError};
use guise_core::ids::new_token_id;
use guise_core::impersonation::{Protocol, Refusal, Ticket, check_reason};
use guise_core::refusal::RefusalKind;
use guise_oidc::chain::{self, ChainError, Checked, Holder, Names};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::json;

/// What a path segment escapes: everything but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A request to mint, as read from the API body or the command line.
#[derive(Debug, Clone, Default)]
pub struct MintRequest {
    pub target_user_id: String,
    pub impersonator_id: Option<String>,
    pub client_id: String,
    pub protocol: String,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub callback_url: Option<String>,
    pub reason: Option<String>,
    pub ttl: Option<i64>,
    /// How long the session the URL opens may last, at most the policy's
    /// `session_lifetime` (the default).
    pub session_ttl: Option<i64>,
}

/// Who is asking: a verified token's holder, or the operator at the command line.
#[derive(Debug, Clone)]
pub enum Minter {
    /// A verified token: a user's (the impersonator is that user) or a machine client's
    /// (`impersonator_id` names the responsible person), with the authority it holds now.
    Token(Link),
    /// A call acting as another user: it may not mint.
    ActingAs(Principal),
    /// `guise impersonate` at a shell, acting for `--impersonator`.
    Operator,
}

impl Minter {
    fn actor(&self) -> Actor {
        match self {
            Minter::Token(Link { principal, .. }) | Minter::ActingAs(principal) => match principal {
                Principal::User(id) => Actor::User(id.clone()),
                Principal::Client(id) => Actor::Client(id.clone()),
            },
            Minter::Operator => Actor::System,
        }
    }
}

const MAX_FIELD: usize = 1024;

/// A mint request's parameters, checked.
struct MintParams {
    protocol: Protocol,
    impersonator_id: String,
    ttl: Duration,
    reason: Option<String>,
}

fn validate_request(ctx: &FlowContext<'_>, minter: &Minter, req: &MintRequest) -> Result<MintParams, Refusal> {
    let protocol = Protocol::parse(&req.protocol)
        .ok_or_else(|| Refusal::UnknownProtocol(req.protocol.chars().take(32).collect()))?;
    if req.response_type.as_deref().is_some_and(|r| r != "code") {
        return Err(Refusal::UnsupportedResponseType);
    }
    let fields = [&req.scope, &req.state, &req.nonce, &req.callback_url];
    if fields.iter().any(|f| f.as_ref().is_some_and(|v| v.len() > MAX_FIELD)) {
        return Err(Refusal::FieldTooLong);
    }
    let user_token = match minter {
        Minter::ActingAs(_) => return Err(Refusal::ChainedImpersonation),
        Minter::Token(Link { principal: Principal::User(sub), .. }) => Some(sub),
        Minter::Token(_) | Minter::Operator => None,
    };
    let impersonator_id = match (user_token, &req.impersonator_id) {
        (Some(sub), None) => sub.clone(),
        (Some(sub), Some(id)) if id == sub => sub.clone(),
        (Some(_), Some(_)) => return Err(Refusal::ImpersonatorMismatch),
        (None, Some(id)) => id.clone(),
        (None, None) => return Err(Refusal::ImpersonatorRequired),
    };
    let policy = ctx.policies.impersonation;
    let reason = check_reason(req.reason.as_deref(), policy.require_reason)?;
    // `try_seconds`: a ttl beyond what a Duration holds is refused like any other, not a panic.
    let ttl = match req.ttl.map(|secs| (secs, Duration::try_seconds(secs))) {
        None => policy.default_url_ttl.min(policy.max_url_ttl),
        Some((secs, Some(ttl))) if secs >= 1 && ttl <= policy.max_url_ttl => ttl,
        Some(_) => return Err(Refusal::InvalidTtl(policy.max_url_ttl.num_seconds())),
    };
    let max_session = policy.session_lifetime.num_seconds();
    if req.session_ttl.is_some_and(|secs| !(60.min(max_session)..=max_session).contains(&secs)) {
        return Err(Refusal::InvalidSessionTtl(max_session));
    }
    Ok(MintParams { protocol, impersonator_id, ttl, reason })
}

pub(crate) fn refusal_event(now: DateTime<Utc>, actor: Actor, stage: &str, reason: &str, message: &str) -> AuditEvent {
    AuditEvent::new(event_type::IMPERSONATION_REFUSED, now, actor, format!("Impersonation refused: {message}"))
        .details(json!({ "stage": stage, "reason": reason }))
}

/// Mint an impersonation URL, auditing the outcome. `scope_granted`: whether the
/// caller's token carries `impersonate:users` (a refusal for its lack is audited too).
pub fn mint(
    ctx: &FlowContext<'_>,
    minter: Minter,
    scope_granted: bool,
    req: MintRequest,
    source_ip: Option<String>,
    token_client: Option<String>,
) -> Result<String, FlowError> {
    let now = ctx.now;
    let outcome = match scope_granted {
        true => mint_unaudited(ctx, &minter, &req, token_client.as_deref()),
        false => Err(Refusal::MissingScope.into()),
    };
    let mut event = match &outcome {
        Ok((url, ticket, exp)) => {
            AuditEvent::new(event_type::IMPERSONATION_MINTED, now, minter.actor(), "Impersonation URL minted").details(
                json!({
                    "impersonator_id": ticket.impersonator_id,
                    "protocol": ticket.protocol.as_str(),
                    "jti": ticket.jti,
                    "expires_at": exp.to_rfc3339(),
                    "reason": ticket.reason,
                    "minted_by": ticket.minted_by,
                    "url_length": url.len(),
                }),
            )
        }
        Err(FlowError::Refused { kind, message }) => {
            let mut e = refusal_event(now, minter.actor(), "mint", kind.reason(), message);
            e.details["impersonator_id"] = json!(req.impersonator_id);
            e
        }
        Err(_) => return outcome.map(|(url, _, _)| url),
    };
    event.subject = Some(req.target_user_id.chars().take(128).collect());
    event.client_id = Some(req.client_id.chars().take(128).collect());
    event.on_behalf_of = match &outcome {
        Ok((_, ticket, _)) => Some(ticket.impersonator_id.clone()),
        Err(_) => None,
    };
    event.source_ip = source_ip;
    // The application whose token asked (for a user's token, the app the user signed in
    // to): the event's client_id is the application the URL logs in to.
    event.details["token_client"] = json!(token_client);
    ctx.store.append(vec![event])?;
    outcome.map(|(url, _, _)| url)
}

fn mint_unaudited(
    ctx: &FlowContext<'_>,
    minter: &Minter,
    req: &MintRequest,
    token_client: Option<&str>,
) -> Result<(String, Ticket, DateTime<Utc>), FlowError> {
    let MintParams { protocol, impersonator_id, ttl, reason } = validate_request(ctx, minter, req)?;
    // The token is a link of its own, holding what it carries now: a machine client's
    // grant, or a user's permissions capped by the grant of the application the token
    // was issued to. The caller's own authority must cover the target, not only the
    // impersonator's.
    let holder = match minter {
        Minter::Token(link) => Holder::Caller(link.clone()),
        Minter::ActingAs(_) | Minter::Operator => Holder::Nobody,
    };
    let names = Names { target_id: &req.target_user_id, impersonator_id: &impersonator_id, client_id: &req.client_id };
    let client = chain::check(ctx.chain_stores(), holder, names, &ctx.settings.management_audience())?.client;
    if let Some(callback) = &req.callback_url
        && !client.is_registered_callback(callback)
    {
        return Err(Refusal::UnregisteredCallback.into());
    }
    if matches!(protocol, Protocol::Wsfed | Protocol::WsfedRms) {
        if !matches!(guise_wsfed::settings::from_addons(&client.client_id, &client.addons), Ok(Some(_))) {
            return Err(Refusal::ProtocolNotConfigured("wsfed").into());
        }
        if client.callbacks.is_empty() {
            return Err(Refusal::UnregisteredCallback.into());
        }
    } else if protocol == Protocol::Samlp {
        if !matches!(guise_saml::settings::from_addons(&client.addons), Ok(Some(_))) {
            return Err(Refusal::ProtocolNotConfigured("samlp").into());
        }
        if client.callbacks.is_empty() {
            return Err(Refusal::UnregisteredCallback.into());
        }
    } else if client.initiate_login_uri.is_none() {
        // The direct response hands a code over without PKCE or consent: only for
        // confidential first-party clients that use the code grant.
        if client.callbacks.is_empty() {
            return Err(Refusal::UnregisteredCallback.into());
        }
        if !client.is_confidential() || !client.is_first_party || !client.allows_grant("authorization_code") {
            return Err(Refusal::DirectDeliveryNotAllowed.into());
        }
    }
    let ticket = Ticket {
        user_id: req.target_user_id.clone(),
        impersonator_id,
        client_id: client.client_id,
        protocol,
        jti: new_token_id(),
        session_ttl: req.session_ttl.unwrap_or_else(|| ctx.policies.impersonation.session_lifetime.num_seconds()),
        reason,
        // The application whose token minted the URL (a machine client, or the one a
        // user's token was issued to): its grant is re-checked at redemption and on every
        // use of the session.
        minted_by: matches!(minter, Minter::Token(_)).then(|| token_client.map(str::to_owned)).flatten(),
        scope: req.scope.clone(),
        state: req.state.clone(),
        nonce: req.nonce.clone(),
        redirect_uri: req.callback_url.clone(),
    };
    let key = crate::bewit_keys::signing_key(ctx)?;
    // Auth0's shape: the URL is a GET of the impersonator's own impersonation path.
    let path = format!("/users/{}/impersonate", utf8_percent_encode(&ticket.impersonator_id, PATH_SEGMENT));
    let mut url = url::Url::parse(&ctx.settings.endpoint(&path)).map_err(|e| FlowError::Internal(e.to_string()))?;
    url.query_pairs_mut().extend_pairs(ticket.to_query());
    let exp = ctx.now + ttl;
    let signed =
        bewit::sign_url(&key, url, exp.timestamp(), "").ok_or_else(|| FlowError::Internal("signing failed".into()))?;
    Ok((signed.to_string(), ticket, exp))
}

/// What a redemption produced: a session (its cookie's secret) and where the browser goes.
#[derive(Debug)]
pub struct Redeemed {
    pub cookie: String,
    pub delivery: Delivery,
}

/// Verify the URL (MAC, expiry, single use), re-check the rules, open the session and
/// deliver over the ticket's protocol. A refusal is audited with its precise reason and
/// returned as `FlowError::Refused` with the text for the browser.
pub fn redeem(
    ctx: &FlowContext<'_>,
    path_and_query: &str,
    source_ip: Option<String>,
    user_agent: Option<String>,
) -> Result<Redeemed, FlowError> {
    let now = ctx.now;
    let refuse = |reason: &str, message: String, ticket: Option<&Ticket>, kind: RefusalKind| -> FlowError {
        let mut event = refusal_event(now, Actor::System, "redeem", reason, &message).source_ip(source_ip.clone());
        if let Some(t) = ticket {
            event.actor = Actor::User(t.impersonator_id.clone());
            event.subject = Some(t.user_id.clone());
            event.client_id = Some(t.client_id.clone());
            event.details["jti"] = json!(t.jti);
            event.details["minted_by"] = json!(t.minted_by);
        }
        match ctx.store.append(vec![event]) {
            Ok(_) => FlowError::Refused { kind, message },
            Err(e) => e.into(),
        }
    };
    let Ok(url) = url::Url::parse(&format!("{}{path_and_query}", ctx.settings.base_url())) else {
        return Err(refuse("malformed", BewitError::Malformed.to_string(), None, RefusalKind::Invalid));
    };
    let key_id =
        bewit::key_id(&url).map_err(|e| refuse(e.reason(), e.to_string(), None, RefusalKind::Unauthenticated))?;
    let Some(key) = crate::bewit_keys::verification_key(ctx, &key_id)? else {
        return Err(refuse("unknown_key", BewitError::UnknownKey.to_string(), None, RefusalKind::Unauthenticated));
    };
    // The longest lifetime a URL may have been minted with: anything further ahead (plus
    // the clock skew between nodes) was not minted under this configuration.
    let max_lifetime = ctx.policies.impersonation.max_url_ttl.num_seconds();
    let verified = bewit::verify(&url, &key, now.timestamp(), max_lifetime).map_err(|e| {
        // Only a MAC-verified URL's contents may be trusted, so name nobody on a bad mac.
        let mac_verified = matches!(e, BewitError::Expired | BewitError::TooFarAhead);
        let ticket = mac_verified.then(|| Ticket::from_query(url.query_pairs())).flatten();
        refuse(e.reason(), e.to_string(), ticket.as_ref(), RefusalKind::Unauthenticated)
    })?;
    let Some(ticket) = Ticket::from_query(url.query_pairs().filter(|(k, _)| k != "bewit")) else {
        return Err(refuse("malformed", BewitError::Malformed.to_string(), None, RefusalKind::Invalid));
    };
    // The MAC covers the path, so this only fails for a URL guise did not mint; checked
    // all the same, before the URL is spent.
    let segments: Vec<&str> = url.path_segments().map(Iterator::collect).unwrap_or_default();
    if let ["users", id, "impersonate"] = segments.as_slice()
        && percent_decode_str(id).decode_utf8_lossy() != ticket.impersonator_id
    {
        let message = "The URL names another impersonator".into();
        return Err(refuse("impersonator_mismatch", message, None, RefusalKind::Invalid));
    }
    let expires = DateTime::from_timestamp(verified.exp, 0).unwrap_or(now);
    if !ctx.store.redeem_once(&ticket.jti, now, expires)? {
        return Err(refuse("replayed", "Bewit already used".into(), Some(&ticket), RefusalKind::Unauthenticated));
    }
    let holder = match &ticket.minted_by {
        Some(client_id) => Holder::MintingClient(client_id),
        None => Holder::Nobody,
    };
    let names =
        Names { target_id: &ticket.user_id, impersonator_id: &ticket.impersonator_id, client_id: &ticket.client_id };
    let Checked { target, impersonator, client } =
        match chain::check(ctx.chain_stores(), holder, names, &ctx.settings.management_audience()) {
            Ok(checked) => checked,
            Err(ChainError::Refused(r)) => {
                return Err(refuse(r.reason(), r.to_string(), Some(&ticket), RefusalKind::Forbidden));
            }
            Err(ChainError::Store(e)) => return Err(e.into()),
        };

    let max_lifetime = ctx.policies.impersonation.session_lifetime.num_seconds().max(60);
    let impersonated = Impersonated {
        impersonator_id: impersonator.user_id.clone(),
        reason: ticket.reason.clone(),
        minted_by: ticket.minted_by.clone(),
        lifetime: Duration::seconds(ticket.session_ttl.clamp(60, max_lifetime)),
    };
    let browser = Browser { source_ip: source_ip.clone(), user_agent };
    let (cookie, session) = session::open(ctx, &target.user_id, browser, Some(impersonated), |session| {
        let mut event = AuditEvent::new(
            event_type::IMPERSONATION_REDEEMED,
            now,
            Actor::User(impersonator.user_id.clone()),
            "Impersonation session opened",
        )
        .subject(target.user_id.clone())
        .client(client.client_id.clone())
        .source_ip(source_ip)
        .details(json!({
            "sid": session.sid,
            "jti": ticket.jti,
            "reason": ticket.reason,
            "protocol": ticket.protocol.as_str(),
            "minted_by": ticket.minted_by,
        }));
        event.on_behalf_of = Some(impersonator.user_id.clone());
        event
    })?;
    let delivery = delivery::impersonation(ctx, &ticket, &target, &client, &session)?;
    Ok(Redeemed { cookie, delivery })
}
