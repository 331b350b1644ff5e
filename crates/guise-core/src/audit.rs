//! The audit log: events naming both parties of every security-relevant act, and the
//! SHA-256 hash chain that makes an edited or deleted row detectable.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Event type codes. Auth0's codes where Auth0 has one, `guise_*` otherwise.
pub mod event_type {
    /// Success API operation (every Management API write).
    pub const API_OPERATION: &str = "sapi";
    /// Failed API operation (refused for scope or permission).
    pub const FAILED_API_OPERATION: &str = "fapi";
    /// Success exchange: client credentials for access token.
    pub const CLIENT_CREDENTIALS_EXCHANGE: &str = "seccft";
    /// Failed exchange: client credentials for access token.
    pub const FAILED_CLIENT_CREDENTIALS_EXCHANGE: &str = "feccft";
    /// Success exchange: authorization code for access token.
    pub const CODE_EXCHANGE: &str = "seacft";
    /// Failed exchange: authorization code for access token.
    pub const FAILED_CODE_EXCHANGE: &str = "feacft";
    /// Success exchange: refresh token for access token.
    pub const REFRESH_EXCHANGE: &str = "sertft";
    /// Failed exchange: refresh token for access token.
    pub const FAILED_REFRESH_EXCHANGE: &str = "fertft";
    /// An authorization code was presented twice; its tokens were revoked.
    pub const CODE_REPLAYED: &str = "guise_code_replayed";
    /// A rotated refresh token was presented again; its family was revoked.
    pub const REFRESH_TOKEN_REUSED: &str = "guise_refresh_reused";
    /// Success login.
    pub const LOGIN: &str = "s";
    /// Failed login.
    pub const FAILED_LOGIN: &str = "f";
    /// Failed login: blocked user.
    pub const BLOCKED_USER_LOGIN: &str = "fu";
    /// Account locked for too many failed logins.
    pub const ACCOUNT_LOCKED: &str = "limit_wc";
    /// Source address locked for too many failed logins.
    pub const ADDRESS_LOCKED: &str = "limit_mu";
    /// Success consent.
    pub const CONSENT: &str = "scoa";
    /// Success logout.
    pub const LOGOUT: &str = "slo";
    /// Success revocation.
    pub const REVOCATION: &str = "srrt";
    /// A session that expired was ended by the sweep, so the applications it logged
    /// into are logged out (impersonation sessions end with `IMPERSONATION_ENDED`).
    pub const SESSION_EXPIRED: &str = "guise_session_expired";
    /// An impersonation URL was minted.
    pub const IMPERSONATION_MINTED: &str = "guise_impersonation_minted";
    /// An impersonation URL was redeemed and its session opened.
    pub const IMPERSONATION_REDEEMED: &str = "guise_impersonation_redeemed";
    /// Minting or redeeming was refused (the reason is in the details).
    pub const IMPERSONATION_REFUSED: &str = "guise_impersonation_refused";
    /// An impersonation session was ended early.
    pub const IMPERSONATION_ENDED: &str = "guise_impersonation_ended";
    /// RFC 8693 token exchange: a token issued for a user to a trusted back end.
    pub const TOKEN_EXCHANGE: &str = "guise_token_exchange";
    /// A token exchange refused.
    pub const FAILED_TOKEN_EXCHANGE: &str = "guise_token_exchange_failed";
    /// An API call made acting as another user.
    pub const ACT_AS: &str = "guise_act_as";
    /// Acting as another user was refused (the reason is in the details).
    pub const ACT_AS_REFUSED: &str = "guise_act_as_refused";
    /// A signed SAML Response was issued to a service provider.
    pub const SAML_RESPONSE: &str = "guise_saml_response";
    /// A WS-Federation sign-in response was issued.
    pub const WSFED_SIGN_IN: &str = "guise_wsfed_sign_in";
    /// The bewit key was rotated.
    pub const BEWIT_KEY_ROTATED: &str = "guise_bewit_key_rotated";
    /// Signing key rotated.
    pub const SIGNING_KEY_ROTATED: &str = "guise_key_rotated";
    /// `guise init` created the first admin and management client.
    pub const TENANT_INITIALISED: &str = "guise_init";
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    Client(String),
    /// The operator at the command line.
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Client(_) => "client",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User(id) | Actor::Client(id) => Some(id),
            Actor::System => None,
        }
    }

    pub fn from_parts(kind: &str, id: Option<String>) -> Self {
        match (kind, id) {
            ("user", Some(id)) => Actor::User(id),
            ("client", Some(id)) => Actor::Client(id),
            _ => Actor::System,
        }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    /// When the actor acted on someone's behalf (acting as a user, or a machine client
    /// minting for the person responsible): that person.
    pub on_behalf_of: Option<String>,
    /// The user the event is about.
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub source_ip: Option<String>,
    pub description: String,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(event_type: &str, occurred_at: DateTime<Utc>, actor: Actor, description: impl Into<String>) -> Self {
        Self {
            event_type: event_type.to_owned(),
            occurred_at,
            actor,
            on_behalf_of: None,
            subject: None,
            client_id: None,
            source_ip: None,
            description: description.into(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn subject(mut self, user_id: impl Into<String>) -> Self {
        self.subject = Some(user_id.into());
        self
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Name who really acted in an event an impersonation session caused: the
    /// impersonator (`on_behalf_of`), the client whose token minted the impersonation
    /// (if a token did), and why it was opened. Ordinary sessions leave the event as it is.
    pub fn caused_by(mut self, session: &crate::session::Session) -> Self {
        if let Some(impersonator) = &session.impersonator_id {
            self.on_behalf_of = Some(impersonator.clone());
            if !self.details.is_object() {
                self.details = serde_json::json!({});
            }
            self.details["impersonated"] = serde_json::json!(true);
            self.details["impersonation_minted_by"] = serde_json::json!(session.impersonation_minted_by);
            self.details["impersonation_reason"] = serde_json::json!(session.impersonation_reason);
        }
        self
    }

    pub fn source_ip(mut self, ip: Option<String>) -> Self {
        self.source_ip = ip;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub event: AuditEvent,
    /// The details exactly as stored (the hash covers this text).
    pub details_text: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The public id of the record: its sequence number, zero-padded so ids sort.
    pub fn log_id(&self) -> String {
        format_log_id(self.seq)
    }
}

pub fn format_log_id(seq: i64) -> String {
    format!("{seq:020}")
}

/// The hash before the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one row: SHA-256 over the previous hash and every stored field, encoded
/// as a JSON array so that no field boundary is ambiguous.
pub fn chain_hash(seq: i64, event: &AuditEvent, details_text: &str, prev_hash: &str) -> String {
    let canonical = serde_json::json!([
        seq,
        event.event_type,
        event.occurred_at.timestamp_millis(),
        event.actor.kind(),
        event.actor.id(),
        event.on_behalf_of,
        event.subject,
        event.client_id,
        event.source_ip,
        event.description,
        details_text,
        prev_hash,
    ]);
    Sha256::digest(canonical.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a chain first stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("audit row {seq} does not match its hash (edited)")]
    HashMismatch { seq: i64 },
    #[error("audit row {seq} does not follow the row before it (row removed or reordered)")]
    BrokenLink { seq: i64 },
}

/// Incrementally verifies rows given in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_prev: String,
    last_seq: i64,
    pub rows: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_prev: GENESIS_HASH.to_owned(), last_seq: 0, rows: 0 }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        if record.prev_hash != self.expected_prev || record.seq != self.last_seq + 1 {
            return Err(ChainBreak::BrokenLink { seq: record.seq });
        }
        if chain_hash(record.seq, &record.event, &record.details_text, &record.prev_hash) != record.hash {
            return Err(ChainBreak::HashMismatch { seq: record.seq });
        }
        self.expected_prev.clone_from(&record.hash);
        self.last_seq = record.seq;
        self.rows += 1;
        Ok(())
    }

    /// The verified head: the last row's hash, to compare with the stored chain head.
    pub fn head(&self) -> (i64, &str) {
        (self.last_seq, &self.expected_prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(seq: i64, prev: &str, description: &str) -> AuditRecord {
        let event = AuditEvent::new(
            event_type::API_OPERATION,
            Utc.timestamp_millis_opt(1_700_000_000_000 + seq).single().unwrap_or_default(),
            Actor::Client("c".into()),
            description,
        );
        let hash = chain_hash(seq, &event, "{}", prev);
        AuditRecord { seq, event, details_text: "{}".into(), prev_hash: prev.into(), hash }
    }

    #[test]
    fn a_good_chain_verifies_and_an_edit_is_named() {
        let first = record(1, GENESIS_HASH, "one");
        let second = record(2, &first.hash, "two");
        let third = record(3, &second.hash, "three");
        let mut verifier = ChainVerifier::default();
        for r in [&first, &second, &third] {
            assert_eq!(verifier.check(r), Ok(()));
        }

        let mut edited = second.clone();
        edited.event.description = "tampered".into();
        let mut verifier = ChainVerifier::default();
        assert_eq!(verifier.check(&first), Ok(()));
        assert_eq!(verifier.check(&edited), Err(ChainBreak::HashMismatch { seq: 2 }));

        let mut verifier = ChainVerifier::default();
        assert_eq!(verifier.check(&first), Ok(()));
        assert_eq!(verifier.check(&third), Err(ChainBreak::BrokenLink { seq: 3 }));
    }
}
