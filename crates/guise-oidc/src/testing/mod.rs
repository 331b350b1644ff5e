//! Unit tests of the protocol against the real store over a temporary SQLite file: no
//! server, and time fixed by the test. (The store's own rules are tested on SQLite and
//! PostgreSQL by the contract suite in `crates/guise-store/tests/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tests_authorize;
mod tests_token;

use crate::OidcSettings;
use crate::access_token::{self, AccessTokenClaims};
use crate::client_auth::ClientCredentials;
use crate::error::OAuthError;
use crate::grant::{self, TokenContext, TokenRequest, TokenResponse, hash_secret};
use crate::keys::{KeyRing, generate_rs256};
use chrono::{DateTime, Duration, Utc};
use guise_core::audit::{Actor, AuditEvent, AuditRecord};
use guise_core::authorization::AuthorizationCode;
use guise_core::client::{AppType, Client, hash_client_secret};
use guise_core::page::PageRequest;
use guise_core::permission::Permission;
use guise_core::role::{ClientGrant, Role};
use guise_core::session::Session;
use guise_core::signing_key::SigningKey;
use guise_core::store::{
    AuditFilter, AuditStore, AuthorizationCodeStore, ClientGrantStore, ClientStore, RoleStore, SessionStore, UserStore,
};
use guise_core::user::NewUser;
use guise_store::{Database, DatabaseUrl};
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The fixed "now" of every test: 2026-01-15T10:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_768_471_200, 0).expect("a valid timestamp")
}

pub const ISSUER: &str = "https://idp.example.com/";
/// An API (resource server) users hold permissions on.
pub const API: &str = "https://api.example.com/";
pub const CALLBACK: &str = "https://app.example.com/callback";
/// RFC 7636 appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const NONCE: &str = "n-0S6_WzA2Mj";

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
pub const IMPERSONATION_SID: &str = "sid-impersonation";

/// One RSA key for every test: generating one takes a while.
fn signing_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| generate_rs256(t0()).expect("an RSA key")).clone()
}

pub fn audit(description: &str) -> AuditEvent {
    AuditEvent::new("sapi", t0(), Actor::System, description)
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

pub fn post(client_id: &str, secret: &str) -> Option<ClientCredentials> {
    Some(ClientCredentials::Post { client_id: client_id.to_owned(), client_secret: secret.to_owned() })
}

pub fn basic(client_id: &str, secret: &str) -> Option<ClientCredentials> {
    Some(ClientCredentials::Basic { client_id: client_id.to_owned(), client_secret: secret.to_owned() })
}

pub fn public(client_id: &str) -> Option<ClientCredentials> {
    Some(ClientCredentials::Public { client_id: client_id.to_owned() })
}

/// A tenant: clients, users, a role, sessions, signing keys and settings.
pub struct World {
    pub store: Database,
    pub settings: OidcSettings,
    pub keys: KeyRing,
    /// Holds the database file until the world is dropped.
    _dir: tempfile::TempDir,
}

impl World {
    /// - `WEB_APP`, `OTHER_APP`: confidential regular web apps (code, refresh, client credentials);
    /// - `M2M`: a machine client with a grant on `API` for `read:things write:things`;
    /// - `SPA`: a public single-page app;
    /// - `ALICE` holds `read:things` on `API` (not `write:things`) and has session `SID`;
    /// - `ADMIN` is a support agent (`impersonate:users`, and `read:things`) with no session
    ///   of its own.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = DatabaseUrl::Sqlite(dir.path().join("guise.db"));
        let store = Database::connect(&url, 4, std::time::Duration::from_secs(10)).expect("a SQLite database");
        let world = World {
            settings: OidcSettings::new(ISSUER, Duration::hours(1)),
            keys: KeyRing::new(&[signing_key()], t0()).expect("a key ring"),
            store,
            _dir: dir,
        };
        let s = &world.store;
        for c in [
            client(WEB_APP, AppType::RegularWeb, Some(WEB_SECRET)),
            client(OTHER_APP, AppType::RegularWeb, Some(OTHER_SECRET)),
            client(M2M, AppType::NonInteractive, Some(M2M_SECRET)),
            client(SPA, AppType::Spa, None),
        ] {
            s.create_client(c, audit("client")).expect("client created");
        }
        s.create_client_grant(
            ClientGrant {
                id: "cgr_m2m_api".into(),
                client_id: M2M.into(),
                audience: API.into(),
                scope: vec!["read:things".into(), "write:things".into()],
                created_at: t0(),
            },
            audit("grant"),
        )
        .expect("client grant created");
        s.create_user(new_user(ALICE, ALICE_EMAIL), audit("alice")).expect("alice created");
        s.create_user(new_user(ADMIN, ADMIN_EMAIL), audit("admin")).expect("admin created");
        s.create_role(
            Role { id: "rol_reader".into(), name: "Reader".into(), description: String::new() },
            audit("role"),
        )
        .expect("role created");
        s.add_role_permissions(
            "rol_reader",
            &[Permission { resource_server_identifier: API.into(), permission_name: "read:things".into() }],
            audit("permissions"),
        )
        .expect("permissions added");
        s.assign_roles(ALICE, &["rol_reader".into()], audit("assign")).expect("role assigned");
        // The support agent may impersonate, and holds everything Alice holds.
        s.create_role(
            Role { id: "rol_support".into(), name: "Support".into(), description: String::new() },
            audit("role"),
        )
        .expect("role created");
        let management = world.settings.management_audience();
        s.add_role_permissions(
            "rol_support",
            &[
                Permission { resource_server_identifier: API.into(), permission_name: "read:things".into() },
                Permission { resource_server_identifier: management, permission_name: "impersonate:users".into() },
            ],
            audit("permissions"),
        )
        .expect("permissions added");
        s.assign_roles(ADMIN, &["rol_support".into()], audit("assign")).expect("role assigned");
        s.create_session(&hash_secret("alice-cookie"), session(SID, ALICE), audit("login")).expect("session");
        world
    }

    pub fn ctx(&self, now: DateTime<Utc>) -> TokenContext<'_> {
        TokenContext {
            settings: &self.settings,
            keys: &self.keys,
            clients: &self.store,
            client_grants: &self.store,
            audit: &self.store,
            users: &self.store,
            roles: &self.store,
            sessions: &self.store,
            codes: &self.store,
            tokens: &self.store,
            now,
        }
    }

    /// The token endpoint at `now`.
    pub fn exchange_at(&self, request: &TokenRequest, now: DateTime<Utc>) -> Result<TokenResponse, OAuthError> {
        grant::exchange(&grant::handlers(), request, &self.ctx(now))
    }

    pub fn exchange(&self, request: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        self.exchange_at(request, t0())
    }

    /// A code as `/authorize` would have saved it for `client_id`, with PKCE (appendix B),
    /// a nonce, and a 60 s lifetime from `t0`.
    pub fn code(&self, secret: &str, client_id: &str, sid: &str, user_id: &str, scope: &str) -> AuthorizationCode {
        AuthorizationCode {
            code_hash: hash_secret(secret),
            client_id: client_id.to_owned(),
            user_id: user_id.to_owned(),
            sid: sid.to_owned(),
            redirect_uri: CALLBACK.to_owned(),
            scope: scope.split_whitespace().map(str::to_owned).collect(),
            audience: Some(API.to_owned()),
            nonce: Some(NONCE.to_owned()),
            code_challenge: Some(CHALLENGE.to_owned()),
            auth_time: t0() - Duration::minutes(5),
            created_at: t0(),
            expires_at: t0() + self.settings.code_lifetime,
            consumed_at: None,
        }
    }

    pub fn save_code(&self, code: AuthorizationCode) {
        self.store.save_code(code).expect("code saved");
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Vec<AuditRecord> {
        let filter = AuditFilter { ascending: true, ..AuditFilter::default() };
        self.store.audit_records(&filter, PageRequest::new(None, Some(100)), true).expect("audit log").items
    }

    /// Event types appended after the setup's own events.
    pub fn token_events(&self) -> Vec<String> {
        self.audit_log().into_iter().filter(|r| r.event.event_type != "sapi").map(|r| r.event.event_type).collect()
    }

    pub fn assert_chain_verifies(&self) {
        let rows = self.audit_log().len() as u64;
        assert_eq!(self.store.verify_chain().expect("chain readable"), Ok(rows));
    }

    /// Verify an access token as a resource server for `audience` would, at `now`.
    pub fn access_claims(&self, token: &str, audience: &str, now: DateTime<Utc>) -> AccessTokenClaims {
        access_token::verify(&self.keys, token, ISSUER, audience, now).expect("a valid access token")
    }

    /// Verify an ID token's signature, issuer and audience; return its claims.
    pub fn id_claims(&self, token: &str, client_id: &str) -> Map<String, Value> {
        let header = jsonwebtoken::decode_header(token).expect("a JWT header");
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let (alg, key) = self.keys.verifier(header.kid.as_deref().expect("a kid")).expect("a published kid");
        let mut validation = jsonwebtoken::Validation::new(*alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[client_id]);
        // Expiry is checked by the tests against their fixed time, not the wall clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).expect("a valid ID token").claims
    }
}

/// A code-grant token request for `WEB_APP` with the right redirect URI and verifier.
pub fn code_request(code: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "authorization_code".into(),
        credentials: post(WEB_APP, WEB_SECRET),
        code: Some(code.to_owned()),
        redirect_uri: Some(CALLBACK.to_owned()),
        code_verifier: Some(VERIFIER.to_owned()),
        source_ip: Some("198.51.100.7".into()),
        ..TokenRequest::default()
    }
}

pub fn refresh_request(refresh_token: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "refresh_token".into(),
        credentials: post(WEB_APP, WEB_SECRET),
        refresh_token: Some(refresh_token.to_owned()),
        ..TokenRequest::default()
    }
}
