//! The tenant unit tests start from (feature `testing`; the store's contract suite and
//! the tests of `guise-oidc` and `guise-flow` share it): a fixed time, the real store on
//! a temporary SQLite file, and the clients, users, roles and session most tests need.

#![allow(clippy::expect_used)]

use crate::{Database, DatabaseUrl};
use chrono::{DateTime, Duration, Utc};
use guise_core::audit::{Actor, AuditEvent, AuditRecord};
use guise_core::authorization::AuthorizationCode;
use guise_core::client::{AppType, Client, hash_client_secret};
use guise_core::page::PageRequest;
use guise_core::permission::Permission;
use guise_core::role::{ClientGrant, Role};
use guise_core::session::Session;
use guise_core::store::{AuditFilter, AuditStore, ClientGrantStore, ClientStore, RoleStore, SessionStore, UserStore};
use guise_core::user::NewUser;

/// The fixed "now" of every test: 2026-01-15T10:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_768_471_200, 0).expect("a valid timestamp")
}

pub const ISSUER: &str = "https://idp.example.com/";
/// An API (resource server) users hold permissions on.
pub const API: &str = "https://api.example.com/";
pub const CALLBACK: &str = "https://app.example.com/callback";

pub const WEB_APP: &str = "webappclient0000000000000000000A";
pub const WEB_SECRET: &str = "web-app-secret-0123456789abcdefghijklmnopqr";
pub const OTHER_APP: &str = "otherappclient00000000000000000B";
pub const OTHER_SECRET: &str = "other-app-secret-0123456789abcdefghijklmnop";
pub const M2M: &str = "machineclient0000000000000000000C";
pub const M2M_SECRET: &str = "machine-secret-0123456789abcdefghijklmnopqrs";
pub const SPA: &str = "spaclient00000000000000000000000D";

pub const ALICE: &str = "guise|a11ce0000000000000000000";
pub const ALICE_EMAIL: &str = "alice@example.com";
pub const ADMIN: &str = "guise|ad31a0000000000000000000";
pub const ADMIN_EMAIL: &str = "support@example.com";
pub const SID: &str = "sid-alice";
/// The cookie of Alice's session `SID`.
pub const ALICE_COOKIE: &str = "alice-cookie";

/// SHA-256 hex, as the store keeps bearer secrets.
pub use guise_core::client::hash_client_secret as hash_secret;
pub use tempfile::TempDir;

pub fn audit(description: &str) -> AuditEvent {
    AuditEvent::new("sapi", t0(), Actor::System, description)
}

pub fn permission(audience: &str, name: &str) -> Permission {
    Permission { resource_server_identifier: audience.into(), permission_name: name.into() }
}

pub fn client(client_id: &str, app_type: AppType, secret: Option<&str>) -> Client {
    Client {
        client_secret_hash: secret.map(hash_client_secret),
        callbacks: vec![CALLBACK.to_owned()],
        allow_impersonation: true,
        ..Client::new(client_id, format!("client {client_id}"), app_type, t0())
    }
}

pub fn new_user(user_id: &str, email: &str) -> NewUser {
    NewUser {
        email_verified: true,
        name: Some(format!("Name of {email}")),
        ..NewUser::new(user_id, email, t0() - Duration::days(30))
    }
}

/// A browser session that logged in five minutes before `t0`.
pub fn session(sid: &str, user_id: &str) -> Session {
    let login = t0() - Duration::minutes(5);
    Session {
        sid: sid.to_owned(),
        user_id: user_id.to_owned(),
        created_at: login,
        auth_time: login,
        last_seen: login,
        idle_expires_at: login + Duration::minutes(30),
        absolute_expires_at: login + Duration::hours(8),
        source_ip: Some("192.0.2.10".into()),
        user_agent: None,
        ended_at: None,
        impersonator_id: None,
        impersonation_reason: None,
        impersonation_minted_by: None,
    }
}

/// A code for `client_id`, unconsumed, for `API`, living 60 s from `t0`.
pub fn code(secret: &str, client_id: &str, sid: &str, user_id: &str, scope: &str) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: hash_secret(secret),
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        sid: sid.to_owned(),
        redirect_uri: CALLBACK.to_owned(),
        scope: scope.split_whitespace().map(str::to_owned).collect(),
        audience: Some(API.to_owned()),
        nonce: None,
        code_challenge: None,
        auth_time: t0() - Duration::minutes(5),
        created_at: t0(),
        expires_at: t0() + Duration::seconds(60),
        consumed_at: None,
    }
}

/// A fresh database on a SQLite file in a temporary directory, which lives as long as
/// the returned directory.
pub fn temporary_database() -> (Database, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = DatabaseUrl::Sqlite(dir.path().join("guise.db"));
    let db = Database::connect(&url, 4, std::time::Duration::from_secs(10)).expect("a SQLite database");
    (db, dir)
}

/// `WEB_APP`, `OTHER_APP`: confidential web apps; `M2M`: a machine client with a grant
/// on `API` for `read:things write:things`; `SPA`: a public app.
pub fn add_clients(s: &Database) {
    for c in [
        client(WEB_APP, AppType::RegularWeb, Some(WEB_SECRET)),
        client(OTHER_APP, AppType::RegularWeb, Some(OTHER_SECRET)),
        client(M2M, AppType::NonInteractive, Some(M2M_SECRET)),
        client(SPA, AppType::Spa, None),
    ] {
        s.create_client(c, audit("client")).expect("client created");
    }
    let grant = ClientGrant {
        id: "cgr_m2m_api".into(),
        client_id: M2M.into(),
        audience: API.into(),
        scope: vec!["read:things".into(), "write:things".into()],
        created_at: t0(),
    };
    s.create_client_grant(grant, audit("grant")).expect("client grant created");
}

/// A role `id` holding `permissions`, given to `user_id`.
pub fn add_role(s: &Database, id: &str, name: &str, permissions: &[Permission], user_id: &str) {
    let role = Role { id: id.into(), name: name.into(), description: String::new() };
    s.create_role(role, audit("role")).expect("role created");
    s.add_role_permissions(id, permissions, audit("permissions")).expect("permissions added");
    s.assign_roles(user_id, &[id.into()], audit("assign")).expect("role assigned");
}

/// `ALICE` holds `read:things` on `API` through the role `rol_reader` and has session
/// `SID` (cookie `ALICE_COOKIE`); `ADMIN` exists.
pub fn add_alice_and_admin(s: &Database) {
    s.create_user(new_user(ALICE, ALICE_EMAIL), audit("alice")).expect("alice created");
    s.create_user(new_user(ADMIN, ADMIN_EMAIL), audit("admin")).expect("admin created");
    add_role(s, "rol_reader", "Reader", &[permission(API, "read:things")], ALICE);
    s.create_session(&hash_secret(ALICE_COOKIE), session(SID, ALICE), audit("login")).expect("session");
}

/// `ADMIN` becomes a support agent: `impersonate:users` on the Management API
/// (`management`), and `read:things`, everything Alice holds (role `rol_support`).
pub fn make_admin_support(s: &Database, management: &str) {
    let held = [permission(API, "read:things"), permission(management, "impersonate:users")];
    add_role(s, "rol_support", "Support", &held, ADMIN);
}

/// The audit log, oldest first.
pub fn audit_log(s: &Database) -> Vec<AuditRecord> {
    let filter = AuditFilter { ascending: true, ..AuditFilter::default() };
    s.audit_records(&filter, PageRequest::new(None, Some(100)), true).expect("audit log").items
}

/// The audit chain verifies over every row.
pub fn assert_chain_verifies(s: &Database) {
    let rows = u64::try_from(audit_log(s).len()).expect("a row count");
    assert_eq!(s.verify_chain().expect("chain readable"), Ok(rows));
}
