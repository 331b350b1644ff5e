//! Connecting: one pooled connection type over both backends, per-connection SQLite
//! settings (WAL, busy timeout, foreign keys), embedded migrations, and the write
//! transaction that appends audit events atomically with the change they describe.

use crate::convert::{DbError, DbResult, is_connection_lost};
use crate::event_counts::EventCounts;
use crate::group_commit::{BatchStats, GroupCommit};
use crate::schema::{audit_head, audit_log};
use diesel::connection::SimpleConnection;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use guise_core::StoreError;
use guise_core::audit::{AuditEvent, AuditRecord, chain_hash};
use guise_core::store::StoreResult;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// After a lost connection, how long checkouts are checked (`SELECT 1`) before use: the
/// other pooled connections most likely went with it (a restart, a failover, a reset).
const CHECK_AFTER_LOSS: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// How a `StoreError::Backend` begins when a connection was lost after a write may have
/// committed: the operation is not run again.
pub(crate) const COMMIT_UNKNOWN: &str = "database connection lost after a write may have committed";

thread_local! {
    /// Whether the store operation running on this thread has sent something that may
    /// have committed (set by [`CommitWatch`], read and reset by `Database::run`).
    static MAY_HAVE_COMMITTED: Cell<bool> = const { Cell::new(false) };
}

/// Watches a PostgreSQL connection's statements for the point after which a failure
/// leaves a write's outcome unknown: a top-level `COMMIT`, or a statement outside a
/// transaction that may write (anything but a read or transaction control). Before that
/// point a lost connection has committed nothing — the server rolls back an unfinished
/// transaction — and the operation may safely run again.
#[derive(Default)]
struct CommitWatch {
    /// The transaction depth, as diesel's transaction manager reports it.
    depth: u32,
}

/// Whether `sql`, run outside a transaction, cannot commit a change.
fn cannot_commit(sql: &str) -> bool {
    let word: String =
        sql.trim_start().chars().take_while(char::is_ascii_alphabetic).map(|c| c.to_ascii_uppercase()).collect();
    matches!(word.as_str(), "SELECT" | "SHOW" | "BEGIN" | "ROLLBACK" | "SET")
}

/// The first few characters a statement's `Display` writes (its SQL comes first; the
/// rest is not formatted).
struct Prefix(String);

impl std::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = 16usize.saturating_sub(self.0.len());
        self.0.extend(s.chars().take(room));
        if self.0.len() >= 16 { Err(std::fmt::Error) } else { Ok(()) }
    }
}

impl Instrumentation for CommitWatch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::BeginTransaction { depth, .. } => self.depth = depth.get(),
            InstrumentationEvent::CommitTransaction { depth, .. } => {
                if depth.get() == 1 {
                    MAY_HAVE_COMMITTED.set(true);
                }
                self.depth = depth.get() - 1;
            }
            InstrumentationEvent::RollbackTransaction { depth, .. } => self.depth = depth.get() - 1,
            InstrumentationEvent::StartQuery { query, .. } if self.depth == 0 && !MAY_HAVE_COMMITTED.get() => {
                let mut prefix = Prefix(String::with_capacity(16));
                let _ = std::fmt::write(&mut prefix, format_args!("{query}"));
                if !cannot_commit(&prefix.0) {
                    MAY_HAVE_COMMITTED.set(true);
                }
            }
            InstrumentationEvent::FinishQuery { query, error: Some(_), .. } if self.depth == 1 => {
                // A `BEGIN` that failed opened no transaction.
                let mut prefix = Prefix(String::with_capacity(16));
                let _ = std::fmt::write(&mut prefix, format_args!("{query}"));
                if prefix.0.trim_start().to_ascii_uppercase().starts_with("BEGIN") {
                    self.depth = 0;
                }
            }
            _ => {}
        }
    }
}

/// A connection to either backend; diesel dispatches each query to the right one.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub(crate) type Conn = PooledConnection<Manager>;

/// Opens connections of the backend the URL's scheme names. (diesel's
/// `ConnectionManager<AnyConnection>` tries each backend in turn: a PostgreSQL URL whose
/// server is down fell through to SQLite, which opened a file of that name, and the
/// error said only "Invalid connection url for multiconnection".)
#[derive(Debug)]
pub(crate) struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url).map(|mut conn| {
                // A PostgreSQL connection can be lost mid-operation: note what may have
                // committed, so `Database::run` never runs such a write twice.
                conn.set_instrumentation(CommitWatch::default());
                AnyConnection::Postgresql(conn)
            }),
            DatabaseUrl::Sqlite(path) => {
                diesel::SqliteConnection::establish(&path.to_string_lossy()).map(AnyConnection::Sqlite)
            }
        }
        .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || R2D2Connection::is_broken(conn)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed `GUISE_DATABASE_URL`: `sqlite://PATH` or `postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(StoreError::Backend("sqlite URL names no file".into()));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        Err(StoreError::Backend("database URL must start with sqlite:// or postgres://".into()))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

#[derive(Debug)]
struct SqliteSettings;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Sqlite(conn) = conn {
            // busy_timeout first: every later statement may wait for another writer.
            conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The database: a connection pool plus which backend it speaks.
#[derive(Clone)]
pub struct Database {
    pool: Pool<Manager>,
    backend: Backend,
    /// Since when no connection could be had (Unix ms; 0: connections are being had).
    unavailable_since: Arc<AtomicI64>,
    /// A SQLite database's file and its inode when opened: readiness notices the file
    /// vanishing or being replaced under a running node.
    sqlite_file: Option<(PathBuf, Option<u64>)>,
    /// When a connection was last found lost (Unix ms; 0: never).
    lost_at: Arc<AtomicI64>,
    /// Whether impersonation notices are emailed (`outbox.rs`).
    pub(crate) mail_notices: Arc<std::sync::atomic::AtomicBool>,
    /// Audit appends waiting to share a transaction.
    group: Arc<GroupCommit>,
    /// Callers waiting for a pooled connection right now.
    waiting: Arc<AtomicI64>,
    /// Audit events committed by this process, per type.
    event_counts: Arc<EventCounts>,
    /// Cached clients and grants (`read_cache.rs`).
    read_cache: Arc<crate::read_cache::ReadCache>,
    /// Stops and waits for the read cache's PostgreSQL listener when the last handle goes.
    pub(crate) cache_listener: Arc<crate::read_cache::ListenerGuard>,
}

/// The pool's occupancy at one instant (for `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    pub max: u32,
    pub open: u32,
    pub in_use: u32,
    pub waiting: i64,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("backend", &self.backend).finish()
    }
}

/// The inode of a file (Unix), to notice it replaced.
fn file_id(path: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| m.ino())
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| 0)
    }
}

/// Whether `url` names a database that holds guise's schema (its migrations table). A
/// SQLite file that does not exist does not, and is not created here. Fails when the
/// database cannot be reached.
pub fn has_schema(url: &DatabaseUrl) -> StoreResult<bool> {
    let probe = "SELECT 1 FROM __diesel_schema_migrations LIMIT 1";
    let missing = |e: &diesel::result::Error| {
        let message = e.to_string().to_lowercase();
        message.contains("no such table") || message.contains("does not exist")
    };
    let outcome = match url {
        DatabaseUrl::Sqlite(path) => {
            if !path.exists() {
                return Ok(false);
            }
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|e| StoreError::Backend(format!("cannot open database: {e}")))?;
            conn.batch_execute(probe)
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = diesel::PgConnection::establish(url)
                .map_err(|e| StoreError::Backend(format!("cannot open database: {e}")))?;
            conn.batch_execute(probe)
        }
    };
    match outcome {
        Ok(()) => Ok(true),
        Err(e) if missing(&e) => Ok(false),
        Err(e) => Err(StoreError::Backend(e.to_string())),
    }
}

impl Database {
    /// Open a pool and apply pending migrations. For SQLite the file's directory is
    /// created if missing.
    pub fn connect(url: &DatabaseUrl, max_connections: u32, acquire_timeout: Duration) -> StoreResult<Self> {
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let manager = Manager { url: url.clone() };
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            // Also the longest a request waits for a connection while the database is
            // unreachable before it is answered 503.
            .connection_timeout(acquire_timeout.max(Duration::from_millis(1)))
            // No `SELECT 1` before every checkout: a broken connection shows as an error
            // on use and r2d2 drops it (has_broken); the ping cost three round trips per token.
            .test_on_check_out(false)
            .connection_customizer(Box::new(SqliteSettings))
            .build(manager)
            .map_err(|e| StoreError::Backend(format!("cannot open database: {e}")))?;
        let db = Database {
            pool,
            backend: url.backend(),
            lost_at: Arc::new(AtomicI64::new(0)),
            mail_notices: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            group: Arc::new(GroupCommit::default()),
            waiting: Arc::new(AtomicI64::new(0)),
            event_counts: Arc::new(EventCounts::default()),
            read_cache: Arc::new(crate::read_cache::ReadCache::new(url)),
            cache_listener: Arc::default(),
            unavailable_since: Arc::new(AtomicI64::new(0)),
            sqlite_file: match url {
                DatabaseUrl::Sqlite(path) => Some((path.clone(), file_id(path))),
                DatabaseUrl::Postgres(_) => None,
            },
        };
        if db.backend == Backend::Sqlite {
            // WAL persists in the file; set once, so readers never block the writer.
            let mut conn = db.conn().map_err(|e| e.0)?;
            conn.batch_execute("PRAGMA journal_mode = WAL").map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        db.migrate()?;
        Ok(db)
    }

    fn checkout(&self) -> DbResult<Conn> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let got = self.pool.get();
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match got {
            Ok(conn) => {
                self.unavailable_since.store(0, Ordering::Relaxed);
                Ok(conn)
            }
            Err(e) => {
                let now = chrono::Utc::now().timestamp_millis();
                let _ = self.unavailable_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                Err(DbError(StoreError::Backend(format!("no database connection: {e}"))))
            }
        }
    }

    pub(crate) fn read_cache(&self) -> &Arc<crate::read_cache::ReadCache> {
        &self.read_cache
    }

    /// How many pooled connections are open, in use, and how many callers wait for one.
    pub fn pool_usage(&self) -> PoolUsage {
        let state = self.pool.state();
        PoolUsage {
            max: self.pool.max_size(),
            open: state.connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// Audit events this process committed, per event type, sorted by type.
    pub fn audit_event_counts(&self) -> Vec<(String, u64)> {
        self.event_counts.snapshot()
    }

    /// The audit group commit's batches so far: sizes and head-lock hold times.
    pub fn audit_batch_stats(&self) -> &BatchStats {
        &self.group.stats
    }

    /// Append `events` through the group commit: they share one transaction (one take
    /// of the head lock, one commit) with whatever other appends are waiting, and this
    /// returns once that transaction has committed.
    pub(crate) fn append_grouped(&self, events: Vec<AuditEvent>) -> StoreResult<Vec<AuditRecord>> {
        self.group.append(events, |batch| {
            let mut held = Duration::ZERO;
            let outcome = self.run(|| {
                let mut conn = self.conn()?;
                let mut locked_at = None;
                let records = conn.transaction(|conn| {
                    lock_audit_head(conn)?;
                    locked_at = Some(Instant::now());
                    let records = append_events(conn, batch.clone())?;
                    // The outbox hears of appended events as of any other.
                    crate::outbox::enqueue_for_records(conn, &records, self.mail_notices())?;
                    Ok::<_, DbError>(records)
                })?;
                held = locked_at.map(|t| t.elapsed()).unwrap_or_default();
                self.event_counts.committed(&records);
                Ok(records)
            });
            (outcome, held)
        })
    }

    /// Whether the last attempt to get a connection failed (the database is down or
    /// unreachable): the server answers `503` with `Retry-After` then.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable_since.load(Ordering::Relaxed) != 0
    }

    /// A pooled connection. Normally unchecked (a ping per checkout cost three round
    /// trips per token); for [`CHECK_AFTER_LOSS`] after a connection was found lost,
    /// each is checked with `SELECT 1` first, and a dead one is dropped (diesel marks it
    /// broken, r2d2 discards it) for the next.
    pub(crate) fn conn(&self) -> DbResult<Conn> {
        let lost_at = self.lost_at.load(Ordering::Relaxed);
        if lost_at == 0 || chrono::Utc::now().timestamp_millis() - lost_at > CHECK_AFTER_LOSS.num_milliseconds() {
            return self.checkout();
        }
        for _ in 0..=self.pool.max_size() {
            let mut conn = self.checkout()?;
            if conn.batch_execute("SELECT 1").is_ok() {
                return Ok(conn);
            }
        }
        self.checkout()
    }

    /// Run a store operation written with `?` over diesel errors. An operation that
    /// failed because its connection was lost — the database restarted, failed over, or
    /// the network reset idle connections — runs once more on a checked connection, so
    /// no request sees a dead pooled connection, **unless it may have committed
    /// something**: a `COMMIT` was sent, or a write outside a transaction (see
    /// [`CommitWatch`]). Its outcome is then unknown — the server may have committed
    /// before the connection went — and running it again could do it twice (a second
    /// audit event, a second delivery), so it fails instead.
    pub(crate) fn run<T>(&self, mut operation: impl FnMut() -> DbResult<T>) -> StoreResult<T> {
        let attempt = |operation: &mut dyn FnMut() -> DbResult<T>| {
            let outer = MAY_HAVE_COMMITTED.replace(false);
            let result = operation();
            let committed = MAY_HAVE_COMMITTED.replace(outer || MAY_HAVE_COMMITTED.get());
            (result, committed)
        };
        match attempt(&mut operation) {
            (Err(DbError(e)), may_have_committed) if is_connection_lost(&e) => {
                self.lost_at.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                if may_have_committed {
                    tracing::error!(error = %e, "database connection lost while a write may have committed; not retried");
                    return Err(StoreError::Backend(format!("{COMMIT_UNKNOWN}: {e}")));
                }
                tracing::warn!(error = %e, "database connection lost; retrying on a checked connection");
                attempt(&mut operation).0.map_err(|e| e.0)
            }
            (other, _) => other.map_err(|e| e.0),
        }
    }

    /// Apply pending migrations; on PostgreSQL under an advisory lock, so nodes starting
    /// together do not race.
    pub fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.conn().map_err(|e| e.0)?;
        let result = match &mut *conn {
            AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(drop),
            AnyConnection::Postgresql(c) => {
                c.batch_execute("SELECT pg_advisory_lock(7411)").map_err(|e| StoreError::Backend(e.to_string()))?;
                let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(drop);
                c.batch_execute("SELECT pg_advisory_unlock(7411)").map_err(|e| StoreError::Backend(e.to_string()))?;
                result
            }
        };
        result.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))
    }

    /// Whether this node can serve (for `/readyz`): a SQLite file is still the one it
    /// opened, and the store takes a write — the audit head's row is locked and
    /// updated to itself in a transaction that is rolled back (a read-only replica, a
    /// full disk or a read-only file fail here, not on the next login).
    pub fn ready(&self) -> Result<(), String> {
        if let Some((path, opened)) = &self.sqlite_file {
            let now = file_id(path);
            if !path.exists() {
                return Err(format!("the database file {} is gone", path.display()));
            }
            if opened.is_some() && now != *opened {
                return Err(format!("the database file {} was replaced", path.display()));
            }
        }
        let mut conn = self.conn().map_err(|e| e.0.to_string())?;
        let outcome = conn.transaction::<(), diesel::result::Error, _>(|conn| {
            diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
                .set(audit_head::last_seq.eq(audit_head::last_seq))
                .execute(conn)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        match outcome {
            Err(diesel::result::Error::RollbackTransaction) => Ok(()),
            Err(e) => Err(format!("the database takes no writes: {e}")),
            Ok(()) => Ok(()),
        }
    }

    /// Run `change` in a transaction that first takes the audit chain's head row (the
    /// write lock that serialises appends), then appends `events` after it.
    pub(crate) fn write<T>(
        &self,
        events: Vec<AuditEvent>,
        change: impl FnOnce(&mut AnyConnection) -> DbResult<T>,
    ) -> DbResult<(T, Vec<AuditRecord>)> {
        self.write_deciding(|conn| Ok((change(conn)?, events)))
    }

    /// Like [`Database::write`], for changes that decide inside the transaction which
    /// events (if any) describe them.
    pub(crate) fn write_deciding<T>(
        &self,
        change: impl FnOnce(&mut AnyConnection) -> DbResult<(T, Vec<AuditEvent>)>,
    ) -> DbResult<(T, Vec<AuditRecord>)> {
        let mut conn = self.conn()?;
        let (value, records) = conn.transaction(|conn| {
            lock_audit_head(conn)?;
            let (value, events) = change(conn)?;
            let records = append_events(conn, events)?;
            // The outbox: deliveries these events cause commit or roll back with them.
            crate::outbox::enqueue_for_records(conn, &records, self.mail_notices())?;
            Ok::<_, DbError>((value, records))
        })?;
        self.event_counts.committed(&records);
        Ok((value, records))
    }
}

fn lock_audit_head(conn: &mut AnyConnection) -> DbResult<()> {
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::last_seq.eq(audit_head::last_seq))
        .execute(conn)?;
    Ok(())
}

/// Append events at the head of the chain; the caller holds the head lock.
pub(crate) fn append_events(conn: &mut AnyConnection, events: Vec<AuditEvent>) -> DbResult<Vec<AuditRecord>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, mut prev_hash): (i64, String) = audit_head::table
        .filter(audit_head::id.eq(1))
        .select((audit_head::last_seq, audit_head::last_hash))
        .first(conn)?;
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let details_text = event.details.to_string();
        let hash = chain_hash(seq, &event, &details_text, &prev_hash);
        let prev_hash = std::mem::replace(&mut prev_hash, hash.clone());
        records.push(AuditRecord { seq, event, details_text, prev_hash, hash });
    }
    // On PostgreSQL one multi-row INSERT per batch: under the head lock every statement
    // is a round trip, so the rows go in one. (SQLite runs in-process: a row at a time
    // costs no round trip; diesel's multi-backend connection has no batch insert.)
    let rows: Vec<_> = records
        .iter()
        .map(|r| {
            (
                audit_log::seq.eq(r.seq),
                audit_log::event_type.eq(&r.event.event_type),
                audit_log::occurred_at.eq(r.event.occurred_at.timestamp_millis()),
                audit_log::actor_type.eq(r.event.actor.kind()),
                audit_log::actor_id.eq(r.event.actor.id()),
                audit_log::on_behalf_of.eq(&r.event.on_behalf_of),
                audit_log::subject_id.eq(&r.event.subject),
                audit_log::client_id.eq(&r.event.client_id),
                audit_log::source_ip.eq(&r.event.source_ip),
                audit_log::description.eq(&r.event.description),
                audit_log::details.eq(&r.details_text),
                audit_log::prev_hash.eq(&r.prev_hash),
                audit_log::hash.eq(&r.hash),
            )
        })
        .collect();
    match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::insert_into(audit_log::table).values(rows).execute(pg)?;
        }
        AnyConnection::Sqlite(lite) => {
            for row in rows {
                diesel::insert_into(audit_log::table).values(row).execute(lite)?;
            }
        }
    }
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set((audit_head::last_seq.eq(seq), audit_head::last_hash.eq(&prev_hash)))
        .execute(conn)?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use diesel::sql_types::Integer;

    /// The bundled SQLite keeps a cached statement across rebinds (`.cargo/config.toml`
    /// builds it with `SQLITE_ENABLE_QPSG`; without it every `.first()` — `LIMIT ?` —
    /// was parsed and planned again on each use).
    #[test]
    fn sqlite_keeps_its_statements() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("g.db").display())).unwrap();
        let db = Database::connect(&url, 16, Duration::from_secs(5)).unwrap();
        let qpsg: i32 = diesel::select(diesel::dsl::sql::<Integer>("sqlite_compileoption_used('ENABLE_QPSG')"))
            .get_result(&mut *db.conn().unwrap())
            .unwrap();
        assert_eq!(qpsg, 1, "the bundled SQLite is built without SQLITE_ENABLE_QPSG");
    }
}
