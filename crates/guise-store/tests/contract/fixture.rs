//! A tenant on a fresh database — a SQLite file in a temporary directory, or a new
//! PostgreSQL database on `GUISE_TEST_POSTGRES_URL`, dropped afterwards — with the rows
//! the contract tests start from, and the raw access a tamperer would have.

use chrono::{DateTime, Duration, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use guise_core::audit::{Actor, AuditEvent, AuditRecord};
use guise_core::authorization::AuthorizationCode;
use guise_core::client::{AppType, Client, hash_client_secret};
use guise_core::page::PageRequest;
use guise_core::permission::Permission;
use guise_core::role::{ClientGrant, Role};
use guise_core::session::Session;
use guise_core::store::{AuditFilter, AuditStore, ClientGrantStore, ClientStore, RoleStore, SessionStore, UserStore};
use guise_core::user::NewUser;
use guise_store::{Backend, Database, DatabaseUrl};
use sha2::{Digest, Sha256};

/// The fixed "now" of every test: 2026-01-15T10:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_768_471_200, 0).expect("a valid timestamp")
}

pub const API: &str = "https://api.example.com/";
pub const CALLBACK: &str = "https://app.example.com/callback";
pub const WEB_APP: &str = "webappclient0000000000000000000A";
pub const WEB_SECRET: &str = "web-app-secret-0123456789abcdefghijklmnopqr";
pub const OTHER_APP: &str = "otherappclient00000000000000000B";
pub const M2M: &str = "machineclient0000000000000000000C";
pub const SPA: &str = "spaclient00000000000000000000000D";
pub const ALICE: &str = "guise|a11ce0000000000000000000";
pub const ADMIN: &str = "guise|ad31a0000000000000000000";
pub const SID: &str = "sid-alice";

/// SHA-256 hex, as the store keeps bearer secrets.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
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

/// A code for `client_id`, saved unconsumed, living 60 s from `t0`.
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

fn postgres_admin_url() -> String {
    std::env::var("GUISE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Where the tenant's database lives; dropping it removes the database.
enum Place {
    Sqlite { _dir: tempfile::TempDir, path: std::path::PathBuf },
    Postgres { name: String, url: String },
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Place::Postgres { name, .. } = self
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
        }
    }
}

/// A database under test and the tenant in it.
pub struct Tenant {
    pub db: Database,
    place: Place,
}

impl Tenant {
    /// A fresh, empty database (schema only).
    pub fn empty(backend: Backend) -> Self {
        let place = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let path = dir.path().join("guise.db");
                Place::Sqlite { _dir: dir, path }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("guise_contract_{}", guise_core::ids::new_key_id());
                let mut conn =
                    PgConnection::establish(&admin).expect("PostgreSQL must answer at GUISE_TEST_POSTGRES_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create database");
                let base = admin.rsplit_once('/').map(|(base, _)| base.to_owned()).unwrap_or(admin);
                Place::Postgres { url: format!("{base}/{name}"), name }
            }
        };
        let url = match &place {
            Place::Sqlite { path, .. } => DatabaseUrl::Sqlite(path.clone()),
            Place::Postgres { url, .. } => DatabaseUrl::Postgres(url.clone()),
        };
        let db =
            Database::connect(&url, 4, std::time::Duration::from_secs(10)).expect("the database opens and migrates");
        Tenant { db, place }
    }

    /// A second pool on the same database, as another node would open it (its own
    /// connections, its own audit group commit).
    pub fn second_node(&self) -> Database {
        let url = match &self.place {
            Place::Sqlite { path, .. } => DatabaseUrl::Sqlite(path.clone()),
            Place::Postgres { url, .. } => DatabaseUrl::Postgres(url.clone()),
        };
        Database::connect(&url, 4, std::time::Duration::from_secs(10)).expect("a second node opens the database")
    }

    /// - `WEB_APP`, `OTHER_APP`: confidential web apps; `M2M`: a machine client with a
    ///   grant on `API` for `read:things write:things`; `SPA`: a public app;
    /// - `ALICE` holds `read:things` on `API` through the role `Reader` and has session
    ///   `SID` (cookie `alice-cookie`); `ADMIN` exists.
    pub fn new(backend: Backend) -> Self {
        let tenant = Self::empty(backend);
        let s = &tenant.db;
        for c in [
            client(WEB_APP, AppType::RegularWeb, Some(WEB_SECRET)),
            client(OTHER_APP, AppType::RegularWeb, Some("other-secret")),
            client(M2M, AppType::NonInteractive, Some("m2m-secret")),
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
        s.create_user(new_user(ALICE, "alice@example.com"), audit("alice")).expect("alice created");
        s.create_user(new_user(ADMIN, "support@example.com"), audit("admin")).expect("admin created");
        let reader = Role { id: "rol_reader".into(), name: "Reader".into(), description: String::new() };
        s.create_role(reader, audit("role")).expect("role created");
        let read = Permission { resource_server_identifier: API.into(), permission_name: "read:things".into() };
        s.add_role_permissions("rol_reader", &[read], audit("permissions")).expect("permissions added");
        s.assign_roles(ALICE, &["rol_reader".into()], audit("assign")).expect("role assigned");
        s.create_session(&hash_secret("alice-cookie"), session(SID, ALICE), audit("login")).expect("session");
        tenant
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Vec<AuditRecord> {
        let filter = AuditFilter { ascending: true, ..AuditFilter::default() };
        self.db.audit_records(&filter, PageRequest::new(None, Some(100)), true).expect("audit log").items
    }

    pub fn assert_chain_verifies(&self) {
        let rows = u64::try_from(self.audit_log().len()).expect("a row count");
        assert_eq!(self.db.verify_chain().expect("chain readable"), Ok(rows));
    }

    /// Run SQL behind the store's back, as someone with database access could.
    pub fn tamper(&self, sql: &str) {
        let result = match &self.place {
            Place::Sqlite { path, .. } => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy()).expect("a raw connection");
                diesel::sql_query(sql).execute(&mut conn)
            }
            Place::Postgres { url, .. } => {
                let mut conn = PgConnection::establish(url).expect("a raw connection");
                diesel::sql_query(sql).execute(&mut conn)
            }
        };
        result.expect("the tampering statement runs");
    }
}
