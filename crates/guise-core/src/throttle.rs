//! Login throttling: failures counted per account and per source address in a window;
//! past the limit, a temporary lockout. Pure policy; the store keeps the counters.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures allowed within `window` before locking out.
    pub max_failures: i64,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self { max_failures: 5, window: Duration::minutes(15), lockout: Duration::minutes(15) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleCounter {
    pub key: String,
    pub failures: i64,
    pub window_started_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

impl ThrottleCounter {
    pub fn fresh(key: &str, now: DateTime<Utc>) -> Self {
        Self { key: key.to_owned(), failures: 0, window_started_at: now, locked_until: None }
    }

    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Count one more failure at `now`; returns whether this failure started a lockout.
    pub fn record_failure(&mut self, now: DateTime<Utc>, policy: &ThrottlePolicy) -> bool {
        if now - self.window_started_at > policy.window || self.locked_until.is_some_and(|u| now >= u) {
            self.failures = 0;
            self.window_started_at = now;
            self.locked_until = None;
        }
        self.failures += 1;
        if self.failures >= policy.max_failures && !self.is_locked(now) {
            self.locked_until = Some(now + policy.lockout);
            return true;
        }
        false
    }
}

/// Throttle key for an account (by normalised email, so unknown accounts are throttled
/// the same way and reveal nothing).
pub fn account_key(email: &str) -> String {
    format!("account:{}", crate::user::normalize_email(email))
}

pub fn address_key(ip: &str) -> String {
    format!("ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_then_unlocks() {
        let policy = ThrottlePolicy { max_failures: 3, window: Duration::minutes(10), lockout: Duration::minutes(5) };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut counter = ThrottleCounter::fresh("account:a", t0);
        assert!(!counter.record_failure(t0, &policy));
        assert!(!counter.record_failure(t0, &policy));
        assert!(counter.record_failure(t0, &policy));
        assert!(counter.is_locked(t0 + Duration::minutes(4)));
        assert!(!counter.is_locked(t0 + Duration::minutes(6)));
        // After the lockout, counting starts again.
        assert!(!counter.record_failure(t0 + Duration::minutes(6), &policy));
        assert_eq!(counter.failures, 1);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let policy = ThrottlePolicy { max_failures: 2, window: Duration::minutes(1), lockout: Duration::minutes(5) };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut counter = ThrottleCounter::fresh("ip:1", t0);
        counter.record_failure(t0, &policy);
        assert!(!counter.record_failure(t0 + Duration::minutes(2), &policy));
        assert!(!counter.is_locked(t0 + Duration::minutes(2)));
    }
}
