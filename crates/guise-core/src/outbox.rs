//! The outbox: what guise tells others after a change — webhooks, email notices to an
//! impersonated user, back-channel logouts — as delivery records written in the
//! transaction of the audited change, then delivered with retries and backoff. This
//! module holds the pure rules: which audit events are which notice, the retry
//! schedule, and the Standard Webhooks signature.

use crate::audit::{AuditEvent, event_type as audit_type};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The event types a webhook may subscribe to.
pub mod event {
    pub const IMPERSONATION_STARTED: &str = "impersonation.started";
    pub const IMPERSONATION_ENDED: &str = "impersonation.ended";
    pub const IMPERSONATION_REFUSED: &str = "impersonation.refused";
    pub const ACT_AS_USED: &str = "act_as.used";
    pub const USER_BLOCKED: &str = "user.blocked";
    pub const PASSWORD_CHANGED: &str = "user.password_changed";
    /// A browser session ended (the occasion of back-channel and SAML logouts).
    pub const SESSION_ENDED: &str = "session.ended";

    pub const ALL: &[&str] = &[
        IMPERSONATION_STARTED,
        IMPERSONATION_ENDED,
        IMPERSONATION_REFUSED,
        ACT_AS_USED,
        USER_BLOCKED,
        PASSWORD_CHANGED,
        SESSION_ENDED,
    ];
}

/// Details a store write adds to a user update's audit event to say what it did (so the
/// audit trail and the webhook agree).
pub const DETAIL_USER_BLOCKED: &str = "user_blocked";
pub const DETAIL_PASSWORD_CHANGED: &str = "password_changed";

/// The webhook event types an audit event is (none, one, or — a user update that
/// blocks and changes the password — two).
pub fn webhook_events(event: &AuditEvent) -> Vec<&'static str> {
    let kind = match event.event_type.as_str() {
        audit_type::IMPERSONATION_REDEEMED => Some(event::IMPERSONATION_STARTED),
        audit_type::IMPERSONATION_ENDED => Some(event::IMPERSONATION_ENDED),
        audit_type::IMPERSONATION_REFUSED => Some(event::IMPERSONATION_REFUSED),
        audit_type::ACT_AS => Some(event::ACT_AS_USED),
        _ => None,
    };
    let flagged = |key: &str| event.details.get(key).and_then(Value::as_bool) == Some(true);
    let mut kinds: Vec<&'static str> = kind.into_iter().collect();
    if flagged(DETAIL_USER_BLOCKED) {
        kinds.push(event::USER_BLOCKED);
    }
    if flagged(DETAIL_PASSWORD_CHANGED) {
        kinds.push(event::PASSWORD_CHANGED);
    }
    kinds
}

/// Whether the impersonated user gets an email about this event.
pub fn is_impersonation_notice(webhook_event: &str) -> bool {
    webhook_event == event::IMPERSONATION_STARTED || webhook_event == event::IMPERSONATION_ENDED
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    Webhook,
    Email,
    BackchannelLogout,
    SamlLogout,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Webhook => "webhook",
            DeliveryKind::Email => "email",
            DeliveryKind::BackchannelLogout => "backchannel_logout",
            DeliveryKind::SamlLogout => "saml_logout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DeliveryKind::Webhook, DeliveryKind::Email, DeliveryKind::BackchannelLogout, DeliveryKind::SamlLogout]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or for its first).
    Pending,
    Delivered,
    /// Gave up after the last attempt; a retry through the API makes it pending again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One message to one receiver, with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The message id: `webhook-id`, the logout token's `jti`; the same on every attempt.
    pub id: String,
    pub kind: DeliveryKind,
    /// The webhook id, the client id (logouts) or the user id (email).
    pub target: String,
    pub event_type: String,
    pub audit_seq: Option<i64>,
    pub payload: Value,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; the message (no secrets, no bodies) is kept as `last_error`.
    Failed(String),
}

/// The retry schedule: attempt `n` (1-based) failed, so the next waits `base · 2^(n-1)`,
/// at most six hours; after `max_attempts` attempts the delivery is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub base: Duration,
}

impl RetryPolicy {
    /// When to try again after `attempts` failed attempts, or `None` to give up.
    pub fn next_attempt(&self, attempts: i32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
        let wait = self.base.checked_mul(1 << exponent).unwrap_or(Duration::hours(6)).min(Duration::hours(6));
        Some(now + wait)
    }
}

/// A webhook subscription. Its `Debug` output redacts the secret.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// `whsec_<base64>`; shown once, at creation.
    pub secret: String,
    /// The event types it receives; empty: all of them.
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &standard_webhooks::REDACTED)
            .field("event_types", &self.event_types)
            .field("description", &self.description)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl Webhook {
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }
}

#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

impl WebhookPatch {
    pub fn apply_to(self, webhook: &mut Webhook) {
        if let Some(url) = self.url {
            webhook.url = url;
        }
        if let Some(types) = self.event_types {
            webhook.event_types = types;
        }
        if let Some(description) = self.description {
            webhook.description = description;
        }
        if let Some(enabled) = self.enabled {
            webhook.enabled = enabled;
        }
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub target: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub kind: Option<DeliveryKind>,
}

/// Standard Webhooks (<https://www.standardwebhooks.com/>): secrets and signatures.
pub mod standard_webhooks {
    use super::*;

    pub const SECRET_PREFIX: &str = "whsec_";
    /// What `Debug` output shows in place of a secret.
    pub const REDACTED: &str = "[redacted]";

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("a webhook secret is whsec_ followed by base64 of 24 to 64 bytes")]
    pub struct BadSecret;

    /// A new secret: 32 random bytes.
    pub fn new_secret() -> String {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The key bytes of a `whsec_` secret.
    pub fn key(secret: &str) -> Result<Vec<u8>, BadSecret> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
        let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(BadSecret);
        }
        Ok(key)
    }

    /// `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Result<String, BadSecret> {
        let key = key(secret)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
        mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
        Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;

    #[test]
    fn the_standard_webhooks_example_signature() -> Result<(), standard_webhooks::BadSecret> {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signature = standard_webhooks::sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)?;
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(standard_webhooks::sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "").is_err());
        assert!(standard_webhooks::key(&standard_webhooks::new_secret()).is_ok());
        Ok(())
    }

    #[test]
    fn debug_output_never_shows_a_webhook_secret() {
        let secret = standard_webhooks::new_secret();
        let hook = Webhook {
            id: "wh_1".into(),
            url: "https://hooks.example.com/".into(),
            secret: secret.clone(),
            event_types: vec![event::USER_BLOCKED.into()],
            description: String::new(),
            enabled: true,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let shown = format!("{hook:?} {hook:#?}");
        assert!(!shown.contains(&secret) && !shown.contains(standard_webhooks::SECRET_PREFIX), "{shown}");
        assert!(shown.contains("[redacted]") && shown.contains("wh_1"), "{shown}");
    }

    #[test]
    fn retries_back_off_exponentially_and_give_up() {
        let policy = RetryPolicy { max_attempts: 4, base: Duration::seconds(5) };
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(policy.next_attempt(1, now), Some(now + Duration::seconds(5)));
        assert_eq!(policy.next_attempt(2, now), Some(now + Duration::seconds(10)));
        assert_eq!(policy.next_attempt(3, now), Some(now + Duration::seconds(20)));
        assert_eq!(policy.next_attempt(4, now), None);
        let long = RetryPolicy { max_attempts: 100, base: Duration::seconds(5) };
        assert_eq!(long.next_attempt(40, now), Some(now + Duration::hours(6)));
    }

    #[test]
    fn audit_events_map_to_webhook_events() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let started = AuditEvent::new(audit_type::IMPERSONATION_REDEEMED, at, Actor::System, "x");
        assert_eq!(webhook_events(&started), vec![event::IMPERSONATION_STARTED]);
        let update = AuditEvent::new(audit_type::API_OPERATION, at, Actor::System, "x")
            .details(serde_json::json!({ DETAIL_USER_BLOCKED: true, DETAIL_PASSWORD_CHANGED: true }));
        assert_eq!(webhook_events(&update), vec![event::USER_BLOCKED, event::PASSWORD_CHANGED]);
        assert!(webhook_events(&AuditEvent::new(audit_type::LOGIN, at, Actor::System, "x")).is_empty());
    }
}
