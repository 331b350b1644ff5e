//! The read cache: what every token request reads — a client by id, a client's grant
//! on an audience — and what every CORS check reads (all clients' `web_origins`), kept
//! in memory behind the store traits, so callers are unchanged.
//!
//! Correctness first: a change to a client or a grant takes effect at the very next
//! lookup on the node that made it, on every other process on the same SQLite file, and
//! within one listener poll ([`POLL`]) on every other node on the same PostgreSQL.
//!
//! - Every entry is tagged with the *generation* it was loaded under, read **before**
//!   the row was loaded: a change that commits between the two leaves the entry tagged
//!   with a generation that is already over, so it is never served.
//! - **SQLite**: the generation is the `cache_epoch` row, which triggers on `clients`
//!   and `client_grants` move in the same transaction as the change, whoever makes it
//!   (this process, another node on the file, the `guise` CLI). Each lookup reads that
//!   one row, in-process, instead of the client or grant row and its JSON.
//! - **PostgreSQL**: the same triggers `pg_notify('guise_cache')` at commit. Each
//!   process keeps one `LISTEN` connection on a thread of its own that drains
//!   notifications every [`POLL`] and moves the in-memory generation for each batch;
//!   this process's own changes move it as soon as they commit, before the caller is
//!   answered. The cache is used only while the listener has made a round trip within
//!   the last [`LEASE`]: while it is connecting, reconnecting, or stuck on a dead
//!   connection, every lookup goes to the database, and coming back moves the
//!   generation, so nothing loaded before or during the gap is served. A notification
//!   cannot be lost without the connection that would carry it failing.
//!
//! Negative answers (no such client, no such grant) are never cached, and each map is
//! emptied when it reaches [`MAX_ENTRIES`], so lookups of invented ids grow nothing.

use crate::connection::{AnyConnection, Conn, Database};
use crate::convert::DbResult;
use crate::schema::cache_epoch;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock, Weak};
use std::time::{Duration, Instant};

/// How often the PostgreSQL listener drains its notifications: the propagation delay
/// of a change made on another node, on top of PostgreSQL delivering the notification.
pub(crate) const POLL: Duration = Duration::from_millis(5);
/// How often the listener proves its connection alive with a round trip.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// How long after its last round trip was sent the listener's knowledge counts: past
/// it, lookups bypass the cache until the listener answers again.
pub(crate) const LEASE: Duration = Duration::from_secs(1);
/// A map reaching this many entries is emptied (clients and grants are few; ids
/// from requests are not).
const MAX_ENTRIES: usize = 10_000;
const CHANNEL: &str = "guise_cache";
/// The longest the last handle on the database waits for the listener thread to end.
const STOP_WAIT: Duration = Duration::from_secs(2);

type Slot<K, V> = RwLock<HashMap<K, (u64, V)>>;

/// Where the generation comes from.
enum Source {
    Sqlite,
    Postgres { url: String, listener: Once },
}

pub(crate) struct ReadCache {
    source: Source,
    /// PostgreSQL: moved by every change this process commits and by every batch of
    /// notifications (SQLite uses the `cache_epoch` row instead).
    generation: AtomicU64,
    /// PostgreSQL: when the listener's last successful round trip was sent, in ms since
    /// `started` plus one (0: the listener is not listening).
    fresh_as_of: AtomicU64,
    started: Instant,
    pub(crate) clients: Slot<String, guise_core::client::Client>,
    pub(crate) grants: Slot<(String, String), guise_core::role::ClientGrant>,
    pub(crate) origins: Slot<(), Arc<Vec<Vec<String>>>>,
}

impl ReadCache {
    pub(crate) fn new(url: &crate::DatabaseUrl) -> Self {
        ReadCache {
            source: match url {
                crate::DatabaseUrl::Sqlite(_) => Source::Sqlite,
                crate::DatabaseUrl::Postgres(url) => Source::Postgres { url: url.clone(), listener: Once::new() },
            },
            generation: AtomicU64::new(0),
            fresh_as_of: AtomicU64::new(0),
            started: Instant::now(),
            clients: RwLock::default(),
            grants: RwLock::default(),
            origins: RwLock::default(),
        }
    }

    /// This process committed a change to a client or a grant (or may have: called on
    /// failure too): entries loaded before it are over.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// The generation lookups are served under now, or `None` to bypass the cache. On
    /// SQLite this reads the epoch on `conn` (checked out here if not yet).
    fn generation(self: &Arc<Self>, db: &Database, conn: &mut Option<Conn>) -> DbResult<Option<u64>> {
        match &self.source {
            Source::Sqlite => {
                let conn = match conn {
                    Some(conn) => conn,
                    None => conn.insert(db.conn()?),
                };
                let epoch: i64 =
                    cache_epoch::table.filter(cache_epoch::id.eq(1)).select(cache_epoch::epoch).first(&mut **conn)?;
                Ok(Some(epoch as u64))
            }
            Source::Postgres { url, listener } => {
                listener.call_once(|| spawn_listener(Arc::downgrade(self), url.clone(), &db.cache_listener));
                // The generation is read after the lease: a listener that lost its
                // connection clears the lease before it moves the generation.
                let fresh = self.fresh_as_of.load(Ordering::SeqCst);
                let generation = self.generation.load(Ordering::SeqCst);
                let within_lease = fresh != 0 && self.since_start().saturating_sub(fresh) < LEASE.as_millis() as u64;
                Ok(within_lease.then_some(generation))
            }
        }
    }
}

impl Database {
    /// `key` from `slot` when cached under the current generation; otherwise loaded by
    /// `load` (on a pooled connection) and cached under the generation read before it.
    pub(crate) fn cached<K: Eq + Hash + Clone, V: Clone>(
        &self,
        slot: impl Fn(&ReadCache) -> &Slot<K, V>,
        key: &K,
        load: impl FnOnce(&mut AnyConnection) -> DbResult<V>,
    ) -> DbResult<V> {
        let cache = self.read_cache();
        let mut conn = None;
        let generation = cache.generation(self, &mut conn)?;
        let map = slot(cache);
        if let Some(generation) = generation
            && let Ok(entries) = map.read()
            && let Some((tag, value)) = entries.get(key)
            && *tag == generation
        {
            return Ok(value.clone());
        }
        let conn = match &mut conn {
            Some(conn) => conn,
            None => conn.insert(self.conn()?),
        };
        let value = load(conn)?;
        if let Some(generation) = generation
            && let Ok(mut entries) = map.write()
        {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key.clone(), (generation, value.clone()));
        }
        Ok(value)
    }

    /// Run a change to clients or grants; whatever its outcome, this process's cached
    /// entries are over once it returns.
    pub(crate) fn changing_cached<T>(&self, change: impl FnOnce() -> T) -> T {
        let outcome = change();
        self.read_cache().changed();
        outcome
    }
}

/// The PostgreSQL listener's thread, held by every handle on the database. When the
/// last handle goes, the thread is told to stop and waited for: a process must not exit
/// while that thread is inside libpq and TLS, because OpenSSL's exit handlers free what
/// it uses (a `guise` CLI command on PostgreSQL over TLS segfaulted at exit about once
/// in fifteen runs).
#[derive(Default)]
pub(crate) struct ListenerGuard {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            // Bounded: a connect to an unreachable server may block for long.
            let deadline = Instant::now() + STOP_WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// The PostgreSQL listener: one connection, `LISTEN guise_cache`, notifications drained
/// every [`POLL`], a round trip every [`HEARTBEAT`]. Ends when the cache is dropped or
/// `guard` stops it.
fn spawn_listener(cache: Weak<ReadCache>, url: String, guard: &ListenerGuard) {
    let stop = Arc::clone(&guard.stop);
    let spawned = std::thread::Builder::new().name("guise-cache-listener".into()).spawn(move || {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen(&cache, &url, &stop) {
                Listened::CacheGone => return,
                Listened::Failed(error) => {
                    if let Some(cache) = cache.upgrade() {
                        cache.fresh_as_of.store(0, Ordering::SeqCst);
                        cache.changed();
                    }
                    tracing::warn!(error = %error, "read cache listener lost its connection; bypassing the cache until it is back");
                }
            }
            // Sleep in short steps, to end promptly once the cache is gone.
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if cache.strong_count() == 0 || stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(POLL.max(Duration::from_millis(20)));
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    match spawned {
        Ok(thread) => *guard.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread),
        // No listener: the lease never starts, so every lookup reads the database.
        Err(e) => tracing::error!(error = %e, "cannot start the read cache listener; the cache stays bypassed"),
    }
}

enum Listened {
    CacheGone,
    Failed(String),
}

fn listen(cache: &Weak<ReadCache>, url: &str, stop: &AtomicBool) -> Listened {
    let mut conn = match diesel::PgConnection::establish(url) {
        Ok(conn) => conn,
        Err(e) => return Listened::Failed(e.to_string()),
    };
    let Some(strong) = cache.upgrade() else {
        return Listened::CacheGone;
    };
    let sent = strong.since_start();
    if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")) {
        return Listened::Failed(e.to_string());
    }
    // Listening from here on: whatever changed before is over.
    strong.changed();
    strong.fresh_as_of.store(sent, Ordering::SeqCst);
    drop(strong);
    let mut last_heartbeat = Instant::now();
    loop {
        let Some(cache) = cache.upgrade().filter(|_| !stop.load(Ordering::SeqCst)) else {
            return Listened::CacheGone;
        };
        if let Err(e) = drain(&mut conn, &cache) {
            return Listened::Failed(e);
        }
        if last_heartbeat.elapsed() >= HEARTBEAT {
            // Notifications committed before this round trip was sent arrive before its
            // answer, and are drained before the lease is renewed.
            let sent = cache.since_start();
            if let Err(e) = conn.batch_execute("SELECT 1") {
                return Listened::Failed(e.to_string());
            }
            if let Err(e) = drain(&mut conn, &cache) {
                return Listened::Failed(e);
            }
            cache.fresh_as_of.store(sent, Ordering::SeqCst);
            last_heartbeat = Instant::now();
        }
        drop(cache);
        std::thread::sleep(POLL);
    }
}

/// Take every notification that has arrived; any at all moves the generation.
fn drain(conn: &mut diesel::PgConnection, cache: &ReadCache) -> Result<(), String> {
    let mut heard = false;
    for notification in conn.notifications_iter() {
        notification.map_err(|e| e.to_string())?;
        heard = true;
    }
    if heard {
        cache.changed();
    }
    Ok(())
}
