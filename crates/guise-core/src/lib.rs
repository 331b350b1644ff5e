//! guise's domain: identifiers, users, clients, permissions, the audit hash chain, the
//! clock and the narrow store traits the protocol crates depend on. No I/O lives here.

pub mod act_as;
pub mod audit;
pub mod audit_query;
pub mod authority;
pub mod authorization;
pub mod bewit;
pub mod client;
pub mod clock;
pub mod console;
pub mod ids;
pub mod impersonation;
pub mod outbox;
pub mod page;
pub mod permission;
pub mod refusal;
pub mod role;
pub mod session;
pub mod signing_key;
pub mod store;
pub mod throttle;
pub mod user;
pub mod user_query;

pub use clock::{Clock, SystemClock};
pub use store::StoreError;
