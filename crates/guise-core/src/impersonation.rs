//! Impersonation policy: who may become whom, for which client, over which protocol —
//! and the ticket every impersonation URL carries (bound by the bewit's MAC).

use crate::client::Client;
use crate::permission::{PermissionSet, scopes};
use crate::user::User;
use chrono::Duration;

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

/// Why an impersonation was refused. `status()` is the HTTP answer.
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
    #[error("The impersonator lacks permissions the target holds: {0}")]
    WeakerImpersonator(String),
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
    #[error("ttl must be between 1 and {0} seconds")]
    InvalidTtl(i64),
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
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::MissingScope
            | Refusal::ImpersonatorMismatch
            | Refusal::ImpersonatorNotAllowed
            | Refusal::WeakerImpersonator(_)
            | Refusal::BlockedImpersonator
            | Refusal::ChainedImpersonation
            | Refusal::ClientNotEnabled => 403,
            Refusal::UnknownTarget => 404,
            _ => 400,
        }
    }

    /// The audit reason: `forbidden` for permission refusals, `invalid_request` otherwise.
    pub fn reason(&self) -> &'static str {
        match self.status() {
            403 => "forbidden",
            404 => "unknown_user",
            _ => "invalid_request",
        }
    }
}

/// The facts a decision needs, looked up by the caller.
#[derive(Debug)]
pub struct Parties<'a> {
    pub target: &'a User,
    pub target_permissions: &'a PermissionSet,
    pub impersonator: &'a User,
    pub impersonator_permissions: &'a PermissionSet,
    /// The Management API audience, where `impersonate:users` lives.
    pub management_audience: &'a str,
    pub client: &'a Client,
}

/// Apply the rules: the impersonator may impersonate, is no weaker than the target, is
/// not the target; the target is not blocked; the client allows it.
pub fn check_parties(parties: &Parties<'_>) -> Result<(), Refusal> {
    let impersonator_scopes = parties.impersonator_permissions.names_for(parties.management_audience);
    if parties.impersonator.blocked {
        return Err(Refusal::BlockedImpersonator);
    }
    if !impersonator_scopes.contains(scopes::IMPERSONATE_USERS) {
        return Err(Refusal::ImpersonatorNotAllowed);
    }
    if parties.impersonator.user_id == parties.target.user_id {
        return Err(Refusal::SelfImpersonation);
    }
    if parties.target.blocked {
        return Err(Refusal::BlockedTarget);
    }
    let missing: Vec<String> = parties
        .impersonator_permissions
        .missing_from(parties.target_permissions)
        .map(|p| p.permission_name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Refusal::WeakerImpersonator(missing.join(", ")));
    }
    if !parties.client.allow_impersonation {
        return Err(Refusal::ClientNotEnabled);
    }
    Ok(())
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
    use crate::client::{AppType, TokenEndpointAuthMethod};
    use crate::permission::Permission;
    use chrono::Utc;

    fn user(id: &str) -> User {
        User {
            user_id: id.into(),
            email: format!("{id}@example.com"),
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
        Client {
            client_id: "c".into(),
            client_secret_hash: None,
            name: "c".into(),
            description: String::new(),
            app_type: AppType::RegularWeb,
            is_first_party: true,
            callbacks: vec![],
            allowed_logout_urls: vec![],
            grant_types: vec![],
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretPost,
            allow_impersonation: allow,
            allow_act_as: false,
            initiate_login_uri: None,
            addons: Default::default(),
            jwt_configuration: Default::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn perms(names: &[&str]) -> PermissionSet {
        PermissionSet::new(
            names.iter().map(|n| Permission { resource_server_identifier: "api".into(), permission_name: (*n).into() }),
        )
    }

    #[test]
    fn the_rules() {
        let (admin, target) = (user("admin"), user("target"));
        let strong = perms(&["impersonate:users", "read:users"]);
        let none = perms(&[]);
        let enabled = client(true);
        let ok = Parties {
            target: &target,
            target_permissions: &none,
            impersonator: &admin,
            impersonator_permissions: &strong,
            management_audience: "api",
            client: &enabled,
        };
        assert_eq!(check_parties(&ok), Ok(()));
        assert_eq!(check_parties(&Parties { target: &admin, ..ok }), Err(Refusal::SelfImpersonation));
        let stronger_target = perms(&["delete:users"]);
        assert_eq!(
            check_parties(&Parties { target_permissions: &stronger_target, ..ok }),
            Err(Refusal::WeakerImpersonator("delete:users".into()))
        );
        assert_eq!(
            check_parties(&Parties { impersonator_permissions: &none, ..ok }),
            Err(Refusal::ImpersonatorNotAllowed)
        );
        let disabled = client(false);
        assert_eq!(check_parties(&Parties { client: &disabled, ..ok }), Err(Refusal::ClientNotEnabled));
        let mut blocked = user("target");
        blocked.blocked = true;
        assert_eq!(check_parties(&Parties { target: &blocked, ..ok }), Err(Refusal::BlockedTarget));
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
            scope: None,
            state: Some("s".into()),
            nonce: None,
            redirect_uri: None,
        };
        let mut url = url::Url::parse("https://idp/x").unwrap_or_else(|_| unreachable!());
        url.query_pairs_mut().extend_pairs(ticket.to_query());
        assert_eq!(Ticket::from_query(url.query_pairs()), Some(ticket));
    }
}
