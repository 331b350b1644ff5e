//! The delivery worker: claims one due outbox delivery at a time (the store leases it,
//! so no other node attempts it meanwhile), delivers it — a signed webhook, an email
//! notice, a back-channel logout token, a SAML LogoutRequest — and records the outcome,
//! retrying with exponential backoff until the configured number of attempts.

mod email;
mod logout;
mod webhook;

use crate::state::AppState;
use guise_core::outbox::{AttemptOutcome, Delivery, DeliveryKind, RetryPolicy};
use guise_core::store::{OutboxStore, SessionStore};
use std::sync::Arc;
use std::time::Duration;

pub use email::Mailer;

/// Expired sessions ended per sweep (the next sweep takes the rest).
const SWEEP_BATCH: i64 = 200;

/// What the worker needs besides the application state.
pub struct Worker {
    state: Arc<AppState>,
    http: reqwest::Client,
    mailer: Option<Mailer>,
}

impl Worker {
    pub fn new(state: Arc<AppState>) -> Result<Self, String> {
        let timeout = Duration::from_millis(state.config.outbox_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            // A receiver answers; it does not send guise elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent("guise-outbox")
            .build()
            .map_err(|e| format!("cannot build the delivery HTTP client: {e}"))?;
        let mailer = Mailer::from_config(&state.config)?;
        Ok(Self { state, http, mailer })
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.state.config.outbox_max_attempts.max(1),
            base: chrono::Duration::seconds(self.state.config.outbox_backoff_secs.max(1)),
        }
    }

    /// Deliver until nothing is due; returns how many attempts were made.
    pub async fn drain(&self) -> usize {
        let mut attempts = 0;
        loop {
            let s = Arc::clone(&self.state);
            let lease = chrono::Duration::milliseconds(
                i64::try_from(s.config.outbox_timeout_ms).unwrap_or(i64::MAX / 4).saturating_mul(3),
            ) + chrono::Duration::seconds(30);
            let claimed = tokio::task::spawn_blocking(move || {
                let now = s.clock.now();
                s.db.claim_delivery(now, now + lease)
            })
            .await;
            let delivery = match claimed {
                Ok(Ok(Some(delivery))) => delivery,
                Ok(Ok(None)) => return attempts,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "claiming an outbox delivery failed");
                    return attempts;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the outbox claim task failed");
                    return attempts;
                }
            };
            attempts += 1;
            let outcome = self.attempt(&delivery).await;
            if let AttemptOutcome::Failed(error) = &outcome {
                tracing::info!(id = %delivery.id, kind = delivery.kind.as_str(), attempt = delivery.attempts, error = %error, "delivery attempt failed");
            }
            let s = Arc::clone(&self.state);
            let policy = self.retry_policy();
            let recorded = tokio::task::spawn_blocking(move || {
                let now = s.clock.now();
                let retry_at = match outcome {
                    AttemptOutcome::Delivered => None,
                    AttemptOutcome::Failed(_) => policy.next_attempt(delivery.attempts, now),
                };
                s.db.record_attempt(&delivery.id, &outcome, retry_at, now)
            })
            .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::warn!("recording an outbox attempt failed; its lease will expire and it is retried");
                return attempts;
            }
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> AttemptOutcome {
        let result = match delivery.kind {
            DeliveryKind::Webhook => webhook::deliver(&self.state, &self.http, delivery).await,
            DeliveryKind::Email => match &self.mailer {
                Some(mailer) => mailer.deliver(&self.state, delivery).await,
                None => Err("email is not configured (smtp_host)".to_owned()),
            },
            DeliveryKind::BackchannelLogout => logout::backchannel(&self.state, &self.http, delivery).await,
            DeliveryKind::SamlLogout => logout::saml(&self.state, &self.http, delivery).await,
        };
        match result {
            Ok(()) => AttemptOutcome::Delivered,
            Err(error) => AttemptOutcome::Failed(error),
        }
    }

    /// End the sessions that expired and have someone to tell (the store writes their
    /// events and deliveries).
    pub async fn sweep_expired_sessions(&self) {
        let s = Arc::clone(&self.state);
        let ended = tokio::task::spawn_blocking(move || s.db.end_expired_sessions(s.clock.now(), SWEEP_BATCH)).await;
        match ended {
            Ok(Ok(n)) if n > 0 => tracing::debug!(sessions = n, "expired sessions ended"),
            Ok(Err(e)) => tracing::warn!(error = %e, "ending expired sessions failed"),
            _ => {}
        }
    }

    /// Poll for due deliveries (and sweep expired sessions) until the task is aborted.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.state.config.outbox_poll_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(Duration::from_secs(self.state.config.session_sweep_secs.max(1)));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = sweep.tick() => self.sweep_expired_sessions().await,
            }
            self.drain().await;
        }
    }
}

/// Run `work` on the blocking pool, as a delivery's error string.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&AppState) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let s = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&s)).await.map_err(|e| format!("task failed: {e}"))?
}

/// The error of a failed HTTP attempt, without the body (it may echo anything).
pub(crate) fn http_outcome(result: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    match result {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
        Err(e) if e.is_timeout() => Err("timed out".to_owned()),
        Err(e) if e.is_connect() => Err("could not connect".to_owned()),
        Err(_) => Err("the request failed".to_owned()),
    }
}
