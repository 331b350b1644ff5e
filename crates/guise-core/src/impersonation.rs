//! Impersonation policy: who may become whom, for which client, over which protocol —
//! and the ticket every impersonation URL carries (bound by the bewit's MAC).

use crate::authority::{Chain, LinkKind, Shortfall};
use crate::client::Client;
use crate::permission::{PermissionSet, scopes};
use crate::refusal::RefusalKind;
use crate::session::Session;
use crate::user::User;
use chrono::{DateTime, Duration, Utc};

/// Protocols an impersonation login can be delivered over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OAuth2,
    Samlp,
    Wsfed,
    WsfedRms,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oauth2" => Protocol::OAuth2,
            "samlp" => Protocol::Samlp,
            "wsfed" => Protocol::Wsfed,
            "wsfed-rms" => Protocol::WsfedRms,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OAuth2 => "oauth2",
            Protocol::Samlp => "samlp",
            Protocol::Wsfed => "wsfed",
            Protocol::WsfedRms => "wsfed-rms",
        }
    }
}

/// Configured limits.
#[derive(Debug, Clone, Copy)]
pub struct ImpersonationPolicy {
    /// Lifetime of an impersonation URL when none is asked for.
    pub default_url_ttl: Duration,
    /// Longest lifetime a caller may ask for.
    pub max_url_ttl: Duration,
    /// Maximum lifetime of the impersonation session the URL opens.
    pub session_lifetime: Duration,
    /// Whether a reason (ticket reference) is mandatory.
    pub require_reason: bool,
}

/// Why an impersonation was refused; `kind()` says what kind of refusal it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("The token lacks the impersonate:users scope")]
    MissingScope,
    #[error("impersonator_id must name the calling user")]
    ImpersonatorMismatch,
    #[error("impersonator_id is required when a machine client mints an impersonation URL")]
    ImpersonatorRequired,
    #[error("The impersonator does not hold the impersonate:users permission")]
    ImpersonatorNotAllowed,
    /// A link of the chain (the calling client, or the impersonator) is weaker than the
    /// target: the authority ceiling.
    #[error("{} lacks permissions the target holds: {}", who(.0.kind), .0.missing_names())]
    Weaker(Shortfall),
    #[error("Users cannot impersonate themselves")]
    SelfImpersonation,
    #[error("Blocked users cannot be impersonated")]
    BlockedTarget,
    #[error("The impersonator is blocked")]
    BlockedImpersonator,
    #[error("The client is not enabled for impersonation (allow_impersonation)")]
    ClientNotEnabled,
    #[error("The callback_url is not one of the client's callbacks")]
    UnregisteredCallback,
    #[error("Unknown protocol '{0}' (oauth2, samlp, wsfed or wsfed-rms)")]
    UnknownProtocol(String),
    #[error("A reason is required for impersonation")]
    ReasonRequired,
    #[error("The reason is longer than {MAX_REASON_CHARS} characters")]
    ReasonTooLong,
    #[error("ttl must be between 1 and {0} seconds")]
    InvalidTtl(i64),
    #[error("session_ttl must be between 60 and {0} seconds")]
    InvalidSessionTtl(i64),
    #[error("An impersonation session cannot start another impersonation")]
    ChainedImpersonation,
    #[error(
        "This client can only receive impersonations through its initiate_login_uri (public and third-party clients, or clients without the authorization_code grant)"
    )]
    DirectDeliveryNotAllowed,
    #[error("The client is not configured for protocol '{0}'")]
    ProtocolNotConfigured(&'static str),
    #[error("A parameter is too long")]
    FieldTooLong,
    #[error("Only response_type=code is supported")]
    UnsupportedResponseType,
    #[error("The user does not exist")]
    UnknownTarget,
    #[error("The impersonator does not exist")]
    UnknownImpersonator,
    #[error("The client does not exist")]
    UnknownClient,
    #[error("The client that minted this impersonation no longer exists")]
    UnknownMinter,
    #[error("The impersonation session has ended")]
    SessionEnded,
    #[error(
        "Impersonation sessions cannot obtain Management API tokens; act as the user with as_user_id, As-User or MSCRMCallerID instead"
    )]
    ManagementApiAudience,
}

fn who(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::TokenHolder => "The caller",
        LinkKind::Impersonator => "The impersonator",
        LinkKind::ActedAs => "The acted-as user",
    }
}

impl Refusal {
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::MissingScope
            | Refusal::ImpersonatorMismatch
            | Refusal::ImpersonatorNotAllowed
            | Refusal::Weaker(_)
            | Refusal::UnknownMinter
            | Refusal::SessionEnded
            | Refusal::ManagementApiAudience
            | Refusal::BlockedImpersonator
            | Refusal::ChainedImpersonation
            | Refusal::ClientNotEnabled => RefusalKind::Forbidden,
            Refusal::UnknownTarget => RefusalKind::UnknownUser,
            _ => RefusalKind::Invalid,
        }
    }

    /// The audit reason: `forbidden` for permission refusals, `invalid_request` otherwise.
    pub fn reason(&self) -> &'static str {
        self.kind().reason()
    }
}

/// The longest reason an impersonation may carry, in characters: free text (a ticket
/// reference, a sentence), carried in the URL, the session, every event and notice.
pub const MAX_REASON_CHARS: usize = 500;

/// The reason an impersonation will carry: trimmed, `None` when blank; refused when
/// blank but `required` (the `impersonation_require_reason` policy) or too long.
pub fn check_reason(reason: Option<&str>, required: bool) -> Result<Option<String>, Refusal> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    match reason {
        None if required => Err(Refusal::ReasonRequired),
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(Refusal::ReasonTooLong),
        other => Ok(other.map(str::to_owned)),
    }
}

/// The facts a decision needs, looked up by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    pub target: &'a User,
    pub target_permissions: &'a PermissionSet,
    pub impersonator: &'a User,
    /// Everyone whose authority the impersonation rests on: the machine client that
    /// minted it (when one did), then the impersonator.
    pub chain: &'a Chain,
    /// The Management API audience, where `impersonate:users` lives.
    pub management_audience: &'a str,
    pub client: &'a Client,
}

/// Apply the rules: every link of the chain may impersonate and is no weaker than the
/// target (an impersonation login confers the target's full powers, so the chain must
/// hold a superset of them); nobody impersonates themselves; neither party is blocked;
/// the client allows it.
pub fn check_parties(parties: &Parties<'_>) -> Result<(), Refusal> {
    if parties.impersonator.blocked {
        return Err(Refusal::BlockedImpersonator);
    }
    let become_users = PermissionSet::on(parties.management_audience, [scopes::IMPERSONATE_USERS]);
    if let Err(short) = parties.chain.covers(&become_users) {
        return Err(match short.kind {
            LinkKind::Impersonator => Refusal::ImpersonatorNotAllowed,
            _ => Refusal::MissingScope,
        });
    }
    if parties.impersonator.user_id == parties.target.user_id {
        return Err(Refusal::SelfImpersonation);
    }
    if parties.target.blocked {
        return Err(Refusal::BlockedTarget);
    }
    parties.chain.covers(parties.target_permissions).map_err(Refusal::Weaker)?;
    if !parties.client.allow_impersonation {
        return Err(Refusal::ClientNotEnabled);
    }
    Ok(())
}

/// Whether an impersonation session may still be used at `now`: it is live, and the
/// chain that opened it still holds (re-checked on every use — a blocked impersonator
/// or a lost permission ends it).
pub fn recheck_session(session: &Session, parties: &Parties<'_>, now: DateTime<Utc>) -> Result<(), Refusal> {
    if !session.is_live(now) {
        return Err(Refusal::SessionEnded);
    }
    check_parties(parties)
}

/// Which APIs an impersonation session may obtain tokens for: any but the Management
/// API. Acting on the API as a user is what `as_user_id`, `As-User` and `MSCRMCallerID`
/// are for, and they run with the intersection of both parties' permissions.
pub fn impersonation_may_reach(audience: &str, management_audience: &str) -> Result<(), Refusal> {
    if audience == management_audience { Err(Refusal::ManagementApiAudience) } else { Ok(()) }
}

/// What an impersonation URL carries. Every field is in the URL's query, so the bewit's
/// MAC covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub user_id: String,
    pub impersonator_id: String,
    pub client_id: String,
    pub protocol: Protocol,
    /// Unique per URL: the replay store's key.
    pub jti: String,
    /// Lifetime of the session the URL opens, in seconds.
    pub session_ttl: i64,
    pub reason: Option<String>,
    /// The client whose token minted the URL (a machine client, or the application a
    /// user's token was issued to); none for `guise impersonate`. Part of the chain.
    pub minted_by: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub redirect_uri: Option<String>,
}

impl Ticket {
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("user_id", self.user_id.clone()),
            ("impersonator_id", self.impersonator_id.clone()),
            ("client_id", self.client_id.clone()),
            ("protocol", self.protocol.as_str().to_owned()),
            ("jti", self.jti.clone()),
            ("session_ttl", self.session_ttl.to_string()),
        ];
        for (key, value) in [
            ("reason", &self.reason),
            ("minted_by", &self.minted_by),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("redirect_uri", &self.redirect_uri),
        ] {
            if let Some(v) = value {
                pairs.push((key, v.clone()));
            }
        }
        pairs
    }

    /// Read a ticket back from (already MAC-verified) query pairs.
    pub fn from_query<'a>(
        pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> Option<Self> {
        let mut map = std::collections::HashMap::new();
        for (k, v) in pairs {
            map.insert(k.into_owned(), v.into_owned());
        }
        Some(Ticket {
            user_id: map.remove("user_id")?,
            impersonator_id: map.remove("impersonator_id")?,
            client_id: map.remove("client_id")?,
            protocol: Protocol::parse(&map.remove("protocol")?)?,
            jti: map.remove("jti")?,
            session_ttl: map.remove("session_ttl")?.parse().ok()?,
            reason: map.remove("reason"),
            minted_by: map.remove("minted_by"),
            scope: map.remove("scope"),
            state: map.remove("state"),
            nonce: map.remove("nonce"),
            redirect_uri: map.remove("redirect_uri"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::{Link, Principal};
    use crate::client::AppType;
    use crate::permission::Permission;
    use chrono::Utc;

    #[test]
    fn a_reason_is_trimmed_required_by_policy_and_at_most_500_characters() {
        assert_eq!(check_reason(Some("  TICKET-1 "), true), Ok(Some("TICKET-1".into())));
        assert_eq!(check_reason(Some("   "), false), Ok(None));
        assert_eq!(check_reason(None, false), Ok(None));
        assert_eq!(check_reason(None, true), Err(Refusal::ReasonRequired));
        assert_eq!(check_reason(Some("\t"), true), Err(Refusal::ReasonRequired));
        let longest = "é".repeat(MAX_REASON_CHARS);
        assert_eq!(check_reason(Some(&longest), true), Ok(Some(longest.clone())), "characters, not bytes");
        assert_eq!(check_reason(Some(&format!("{longest}x")), true), Err(Refusal::ReasonTooLong));
    }

    fn user(id: &str) -> User {
        User {
            user_id: id.into(),
            email: format!("{id}@example.com"),
            username: None,
            email_verified: true,
            name: None,
            given_name: None,
            family_name: None,
            nickname: None,
            picture: None,
            blocked: false,
            app_metadata: Default::default(),
            user_metadata: Default::default(),
            external_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            created_by: None,
            modified_by: None,
            created_on_behalf_by: None,
            modified_on_behalf_by: None,
            last_login: None,
            last_ip: None,
            logins_count: 0,
            has_password: true,
        }
    }

    fn client(allow: bool) -> Client {
        Client { allow_impersonation: allow, ..Client::new("c", "c", AppType::RegularWeb, Utc::now()) }
    }

    fn perms(names: &[&str]) -> PermissionSet {
        PermissionSet::new(
            names.iter().map(|n| Permission { resource_server_identifier: "api".into(), permission_name: (*n).into() }),
        )
    }

    fn chain_of(holder: Option<&PermissionSet>, impersonator: &PermissionSet) -> Chain {
        let person = Link::new(LinkKind::Impersonator, Principal::User("admin".into()), impersonator.clone());
        match holder {
            Some(holds) => {
                Chain::of(Link::new(LinkKind::TokenHolder, Principal::Client("m2m".into()), holds.clone())).then(person)
            }
            None => Chain::of(person),
        }
    }

    /// `impersonator` impersonating `target` through `client`, on the audience "api".
    fn parties<'a>(
        target: &'a User,
        target_permissions: &'a PermissionSet,
        impersonator: &'a User,
        chain: &'a Chain,
        client: &'a Client,
    ) -> Parties<'a> {
        Parties { target, target_permissions, impersonator, chain, management_audience: "api", client }
    }

    #[test]
    fn the_rules() {
        let (admin, target) = (user("admin"), user("target"));
        let strong = perms(&["impersonate:users", "read:users"]);
        let none = perms(&[]);
        let enabled = client(true);
        let chain = chain_of(None, &strong);
        let ok = parties(&target, &none, &admin, &chain, &enabled);
        assert_eq!(check_parties(&ok), Ok(()));
        assert_eq!(check_parties(&Parties { target: &admin, ..ok }), Err(Refusal::SelfImpersonation));
        let stronger_target = perms(&["delete:users"]);
        let refusal = check_parties(&Parties { target_permissions: &stronger_target, ..ok });
        assert_eq!(
            refusal.as_ref().map_err(ToString::to_string),
            Err("The impersonator lacks permissions the target holds: delete:users".to_owned())
        );
        let powerless = chain_of(None, &none);
        assert_eq!(check_parties(&Parties { chain: &powerless, ..ok }), Err(Refusal::ImpersonatorNotAllowed));
        let disabled = client(false);
        assert_eq!(check_parties(&Parties { client: &disabled, ..ok }), Err(Refusal::ClientNotEnabled));
        let mut blocked = user("target");
        blocked.blocked = true;
        assert_eq!(check_parties(&Parties { target: &blocked, ..ok }), Err(Refusal::BlockedTarget));
        assert_eq!(check_parties(&Parties { impersonator: &blocked, ..ok }), Err(Refusal::BlockedImpersonator));
    }

    #[test]
    fn a_weak_minting_client_cannot_borrow_a_strong_impersonator() {
        let (admin, target) = (user("admin"), user("target"));
        let everything = perms(&["impersonate:users", "read:users", "create:clients"]);
        let only_impersonate = perms(&["impersonate:users"]);
        let target_holds = perms(&["create:clients"]);
        let enabled = client(true);
        let chain = chain_of(Some(&only_impersonate), &everything);
        let parties = parties(&target, &target_holds, &admin, &chain, &enabled);
        let refusal = check_parties(&parties);
        assert_eq!(
            refusal.as_ref().map_err(ToString::to_string),
            Err("The caller lacks permissions the target holds: create:clients".to_owned())
        );
        let no_scope = chain_of(Some(&none_set()), &everything);
        assert_eq!(check_parties(&Parties { chain: &no_scope, ..parties }), Err(Refusal::MissingScope));
    }

    fn none_set() -> PermissionSet {
        perms(&[])
    }

    #[test]
    fn a_session_is_rechecked_against_the_clock_and_the_chain() {
        let (admin, target) = (user("admin"), user("target"));
        let strong = perms(&["impersonate:users"]);
        let none = perms(&[]);
        let enabled = client(true);
        let chain = chain_of(None, &strong);
        let parties = parties(&target, &none, &admin, &chain, &enabled);
        let t0 = Utc::now();
        let session = Session {
            sid: "s".into(),
            user_id: "target".into(),
            created_at: t0,
            auth_time: t0,
            last_seen: t0,
            idle_expires_at: t0 + Duration::minutes(10),
            absolute_expires_at: t0 + Duration::minutes(10),
            source_ip: None,
            user_agent: None,
            ended_at: None,
            impersonator_id: Some("admin".into()),
            impersonation_reason: None,
            impersonation_minted_by: None,
        };
        assert_eq!(recheck_session(&session, &parties, t0), Ok(()));
        assert_eq!(recheck_session(&session, &parties, t0 + Duration::minutes(11)), Err(Refusal::SessionEnded));
        let mut blocked = user("admin");
        blocked.blocked = true;
        assert_eq!(
            recheck_session(&session, &Parties { impersonator: &blocked, ..parties }, t0),
            Err(Refusal::BlockedImpersonator)
        );
    }

    #[test]
    fn tickets_round_trip_through_a_query() {
        let ticket = Ticket {
            user_id: "guise|a".into(),
            impersonator_id: "guise|b".into(),
            client_id: "c".into(),
            protocol: Protocol::OAuth2,
            jti: "j".into(),
            session_ttl: 3600,
            reason: Some("TICKET-1".into()),
            minted_by: Some("m2m".into()),
            scope: None,
            state: Some("s".into()),
            nonce: None,
            redirect_uri: None,
        };
        let mut url = url::Url::parse("https://idp/x").unwrap_or_else(|_| unreachable!());
        url.query_pairs_mut().extend_pairs(ticket.to_query());
        assert_eq!(Ticket::from_query(url.query_pairs()), Some(ticket));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        /// Any redemption query is a ticket or none, never a panic.
        #[test]
        fn any_query_is_a_ticket_or_none(pairs in proptest::collection::vec(
            ("(user_id|impersonator_id|client_id|protocol|jti|session_ttl|reason|minted_by|scope|state|nonce|redirect_uri|[a-z]{1,4})", ".{0,30}"),
            0..14,
        )) {
            let mut url = url::Url::parse("https://idp/x").unwrap_or_else(|_| unreachable!());
            url.query_pairs_mut().extend_pairs(pairs);
            let _ = Ticket::from_query(url.query_pairs());
        }
    }
}
