//! Browser sessions at guise (the SSO session behind the session cookie), and the
//! lifetimes that end them.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Public session id: the ID token's `sid`, safe to show.
    pub sid: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    /// When the user last authenticated (ID token `auth_time`).
    pub auth_time: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Set when this session is an impersonation: who is really behind it.
    pub impersonator_id: Option<String>,
    pub impersonation_reason: Option<String>,
    /// The machine client whose token minted the impersonation, when one did: named in
    /// every event the session causes, and part of the chain re-checked on every use.
    pub impersonation_minted_by: Option<String>,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionLifetimes {
    /// Ended after this long without activity.
    pub idle: Duration,
    /// Ended this long after login whatever the activity.
    pub absolute: Duration,
}

impl Session {
    /// Whether the session may still be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }

    /// Seconds since authentication, for `max_age` checks.
    pub fn age_of_authentication(&self, now: DateTime<Utc>) -> Duration {
        now - self.auth_time
    }

    /// The new idle expiry after activity at `now`, never beyond the absolute expiry.
    pub fn extended_idle_expiry(&self, now: DateTime<Utc>, lifetimes: SessionLifetimes) -> DateTime<Utc> {
        (now + lifetimes.idle).min(self.absolute_expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_lifetimes_end_a_session() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let lifetimes = SessionLifetimes { idle: Duration::minutes(30), absolute: Duration::hours(8) };
        let session = Session {
            sid: "s".into(),
            user_id: "u".into(),
            created_at: t0,
            auth_time: t0,
            last_seen: t0,
            idle_expires_at: t0 + lifetimes.idle,
            absolute_expires_at: t0 + lifetimes.absolute,
            source_ip: None,
            user_agent: None,
            ended_at: None,
            impersonator_id: None,
            impersonation_reason: None,
            impersonation_minted_by: None,
        };
        assert!(session.is_live(t0 + Duration::minutes(29)));
        assert!(!session.is_live(t0 + Duration::minutes(31)));
        let late = t0 + Duration::hours(7) + Duration::minutes(50);
        assert_eq!(session.extended_idle_expiry(late, lifetimes), session.absolute_expires_at);
    }
}
