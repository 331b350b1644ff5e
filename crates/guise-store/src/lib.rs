//! guise's storage: one diesel schema served by SQLite (the embedded default) or
//! PostgreSQL, behind the store traits of `guise-core`. The only crate that knows SQL.

mod audit;
mod authorization;
mod clients;
mod connection;
mod console;
mod convert;
mod event_counts;
mod grants;
mod group_commit;
mod housekeeping;
mod impersonation;
mod keys;
mod outbox;
pub mod password;
mod read_cache;
mod roles;
mod schema;
mod sessions;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
mod tokens;
mod users;

pub use connection::{Backend, Database, DatabaseUrl, PoolUsage, has_schema};
pub use group_commit::{BATCH_SIZE_BUCKETS, BatchStats};
