//! The support console's sessions: who signed in at `/console`, when they last
//! authenticated (for step-up), and their Management API token, sealed so that only the
//! browser holding the cookie can open it.

use chrono::{DateTime, Utc};

/// One signed-in console browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 hex of the cookie value (the cookie itself is never stored).
    pub id_hash: String,
    pub user_id: String,
    /// How the agent is shown (their email).
    pub label: String,
    /// The agent's access token, sealed under a key derived from the cookie value.
    pub sealed_token: String,
    /// When the agent last entered their password (the ID token's `auth_time`).
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The access token's expiry: the session ends with it.
    pub expires_at: DateTime<Utc>,
}
