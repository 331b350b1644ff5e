//! The Management API's response bodies, as typed views of the domain records in
//! Auth0's shapes. The OpenAPI document's schemas are derived from these same types.

use super::iso;
use guise_core::audit::AuditRecord;
use guise_core::client::Client;
use guise_core::permission::Permission;
use guise_core::permission::scopes;
use guise_core::role::{ClientGrant, Role};
use guise_core::session::Session;
use guise_core::user::User;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The connection every guise user belongs to (Auth0's database connection name).
pub const CONNECTION: &str = "Username-Password-Authentication";

/// A user. Optional profile fields are left out when unset, as Auth0 does.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub email_verified: bool,
    pub blocked: bool,
    #[schema(value_type = Object)]
    pub app_metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    pub user_metadata: Map<String, Value>,
    /// RFC 3339 with milliseconds.
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub logins_count: i64,
    pub identities: Vec<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Who created the record (the acted-as user when acting on behalf of one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_by: Option<String>,
    /// Who really created it when acting on behalf of `created_by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_on_behalf_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_on_behalf_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_login: Option<String>,
}

/// Auth0's identity entry: every guise user has one, in the database connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct Identity {
    pub connection: &'static str,
    pub provider: &'static str,
    pub user_id: String,
    #[serde(rename = "isSocial")]
    pub is_social: bool,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        let identity_id =
            user.user_id.strip_prefix(guise_core::ids::USER_ID_PREFIX).unwrap_or(&user.user_id).to_owned();
        Self {
            email: user.email,
            email_verified: user.email_verified,
            blocked: user.blocked,
            app_metadata: user.app_metadata,
            user_metadata: user.user_metadata,
            created_at: iso(user.created_at),
            updated_at: iso(user.updated_at),
            logins_count: user.logins_count,
            identities: vec![Identity {
                connection: CONNECTION,
                provider: "guise",
                user_id: identity_id,
                is_social: false,
            }],
            user_id: user.user_id,
            name: user.name,
            given_name: user.given_name,
            family_name: user.family_name,
            nickname: user.nickname,
            picture: user.picture,
            external_id: user.external_id,
            username: user.username,
            created_by: user.created_by,
            modified_by: user.modified_by,
            created_on_behalf_by: user.created_on_behalf_by,
            modified_on_behalf_by: user.modified_on_behalf_by,
            last_ip: user.last_ip,
            last_login: user.last_login.map(iso),
        }
    }
}

/// A client (application). `client_secret` appears only when a secret was just made.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub description: String,
    /// `regular_web`, `spa`, `native` or `non_interactive`.
    pub app_type: &'static str,
    pub is_first_party: bool,
    pub callbacks: Vec<String>,
    pub allowed_logout_urls: Vec<String>,
    pub grant_types: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: &'static str,
    pub allow_impersonation: bool,
    pub allow_act_as: bool,
    pub allow_token_exchange: bool,
    pub initiate_login_uri: Option<String>,
    #[schema(value_type = Object)]
    pub addons: Map<String, Value>,
    #[schema(value_type = Object)]
    pub jwt_configuration: Map<String, Value>,
    pub web_origins: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub oidc_conformant: bool,
    pub logo_uri: Option<String>,
    #[schema(value_type = Object)]
    pub client_metadata: Map<String, Value>,
    /// OIDC Back-Channel Logout: where a logout token is POSTed when a session that
    /// logged into this client ends.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl ClientView {
    pub fn new(client: Client, secret: Option<String>) -> Self {
        Self {
            app_type: client.app_type.as_str(),
            token_endpoint_auth_method: client.token_endpoint_auth_method.as_str(),
            created_at: iso(client.created_at),
            updated_at: iso(client.updated_at),
            client_id: client.client_id,
            name: client.name,
            description: client.description,
            is_first_party: client.is_first_party,
            callbacks: client.callbacks,
            allowed_logout_urls: client.allowed_logout_urls,
            grant_types: client.grant_types,
            allow_impersonation: client.allow_impersonation,
            allow_act_as: client.allow_act_as,
            allow_token_exchange: client.allow_token_exchange,
            initiate_login_uri: client.initiate_login_uri,
            addons: client.addons,
            jwt_configuration: client.jwt_configuration,
            web_origins: client.web_origins,
            allowed_origins: client.allowed_origins,
            oidc_conformant: client.oidc_conformant,
            logo_uri: client.logo_uri,
            client_metadata: client.client_metadata,
            backchannel_logout_uri: client.backchannel_logout_uri,
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            client_secret: secret,
        }
    }
}

/// Which scopes of which API a client may obtain with the client-credentials grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientGrantView {
    pub id: String,
    pub client_id: String,
    pub audience: String,
    pub scope: Vec<String>,
}

impl From<ClientGrant> for ClientGrantView {
    fn from(g: ClientGrant) -> Self {
        Self { id: g.id, client_id: g.client_id, audience: g.audience, scope: g.scope }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self { id: r.id, name: r.name, description: r.description }
    }
}

/// A permission; on a user's list, `sources` names the roles it comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionView {
    pub permission_name: String,
    pub description: &'static str,
    pub resource_server_identifier: String,
    pub resource_server_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<PermissionSource>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionSource {
    pub source_id: String,
    pub source_name: String,
    /// Always `ROLE`.
    pub source_type: &'static str,
}

impl PermissionView {
    pub fn new(p: Permission) -> Self {
        Self {
            description: scopes::description(&p.permission_name),
            permission_name: p.permission_name,
            resource_server_name: p.resource_server_identifier.clone(),
            resource_server_identifier: p.resource_server_identifier,
            sources: None,
        }
    }

    pub fn with_sources(p: Permission, roles: Vec<Role>) -> Self {
        let sources = roles
            .into_iter()
            .map(|r| PermissionSource { source_id: r.id, source_name: r.name, source_type: "ROLE" })
            .collect();
        Self { sources: Some(sources), ..Self::new(p) }
    }
}

/// A user as a role's member list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleUserView {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub picture: Option<String>,
}

impl From<User> for RoleUserView {
    fn from(u: User) -> Self {
        Self { user_id: u.user_id, email: u.email, name: u.name, picture: u.picture }
    }
}

/// An audit-log event, with its place in the hash chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogView {
    pub log_id: String,
    #[schema(format = DateTime)]
    pub date: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: String,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// The subject: whom the event is about.
    pub user_id: Option<String>,
    pub actor: LogActor,
    pub on_behalf_of: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
    pub hash: String,
}

/// Who acted: `user`, `client` or `system`, and its id.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogActor {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: Option<String>,
}

impl From<AuditRecord> for LogView {
    fn from(record: AuditRecord) -> Self {
        let log_id = record.log_id();
        let e = record.event;
        Self {
            log_id,
            date: iso(e.occurred_at),
            actor: LogActor { kind: e.actor.kind(), id: e.actor.id().map(str::to_owned) },
            event_type: e.event_type,
            description: e.description,
            client_id: e.client_id,
            ip: e.source_ip,
            user_id: e.subject,
            on_behalf_of: e.on_behalf_of,
            details: e.details,
            hash: record.hash,
        }
    }
}

/// An entry of `GET /impersonations`: a live impersonation session, or (with
/// `kind=act_as`) one use of acting on behalf of a user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ImpersonationEntry {
    Session(ImpersonationView),
    ActAs(ActAsUseView),
}

/// A live impersonation session.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpersonationView {
    /// Always `session`.
    pub kind: &'static str,
    pub id: String,
    pub user_id: String,
    pub impersonator_id: Option<String>,
    pub reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub ip: Option<String>,
}

impl From<Session> for ImpersonationView {
    fn from(s: Session) -> Self {
        Self {
            kind: "session",
            id: s.sid,
            user_id: s.user_id,
            impersonator_id: s.impersonator_id,
            reason: s.impersonation_reason,
            created_at: iso(s.created_at),
            expires_at: iso(s.absolute_expires_at),
            ip: s.source_ip,
        }
    }
}

/// One Management API call made acting on behalf of a user (`as_user_id`, `As-User`,
/// `MSCRMCallerID`), from its `guise_act_as` audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActAsUseView {
    /// Always `act_as`.
    pub kind: &'static str,
    /// The audit event's log id.
    pub id: String,
    #[schema(format = DateTime)]
    pub date: String,
    /// Who acted: the user or client whose token made the call.
    pub impersonator_id: Option<String>,
    /// `user` or `client`.
    pub impersonator_type: &'static str,
    /// The user acted as.
    pub user_id: Option<String>,
    /// The application whose token made the call.
    pub client_id: Option<String>,
    /// The route called, e.g. `PATCH /api/v2/users/…`.
    pub route: String,
    pub ip: Option<String>,
}

impl From<AuditRecord> for ActAsUseView {
    fn from(record: AuditRecord) -> Self {
        let id = record.log_id();
        let e = record.event;
        let request = &e.details["request"];
        let route = format!(
            "{} {}",
            request["method"].as_str().unwrap_or_default(),
            request["path"].as_str().unwrap_or_default()
        );
        Self {
            kind: "act_as",
            id,
            date: iso(e.occurred_at),
            impersonator_id: e.actor.id().map(str::to_owned),
            impersonator_type: e.actor.kind(),
            user_id: e.on_behalf_of,
            client_id: e.client_id,
            route,
            ip: e.source_ip,
        }
    }
}

/// One of the caller's own live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_seen: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub impersonated: bool,
    pub impersonator_id: Option<String>,
    /// Why, for an impersonation session.
    pub reason: Option<String>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.sid,
            created_at: iso(s.created_at),
            last_seen: iso(s.last_seen),
            expires_at: iso(s.absolute_expires_at.min(s.idle_expires_at)),
            ip: s.source_ip,
            user_agent: s.user_agent,
            impersonated: s.impersonator_id.is_some(),
            impersonator_id: s.impersonator_id,
            reason: s.impersonation_reason,
        }
    }
}
