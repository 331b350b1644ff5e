//! A tenant on a fresh database — a SQLite file in a temporary directory, or a new
//! PostgreSQL database on `GUISE_TEST_POSTGRES_URL`, dropped afterwards — with the rows
//! the contract tests start from, and the raw access a tamperer would have.

use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use guise_core::audit::AuditRecord;
pub use guise_store::testing::{
    ADMIN, ALICE, API, M2M, OTHER_APP, SID, SPA, WEB_APP, WEB_SECRET, audit, client, code, hash_secret, new_user,
    session, t0,
};
use guise_store::testing::{add_alice_and_admin, add_clients, audit_log};
use guise_store::{Backend, Database, DatabaseUrl};

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

    /// The tenant of `guise_store::testing`: `add_clients` and `add_alice_and_admin`.
    pub fn new(backend: Backend) -> Self {
        let tenant = Self::empty(backend);
        add_clients(&tenant.db);
        add_alice_and_admin(&tenant.db);
        tenant
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Vec<AuditRecord> {
        audit_log(&self.db)
    }

    pub fn assert_chain_verifies(&self) {
        guise_store::testing::assert_chain_verifies(&self.db);
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
