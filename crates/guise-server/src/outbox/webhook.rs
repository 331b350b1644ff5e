//! Webhook deliveries, signed as Standard Webhooks prescribes: `webhook-id` (the
//! message id, the same on every attempt), `webhook-timestamp` (seconds, per attempt)
//! and `webhook-signature` (`v1,` base64 HMAC-SHA256 over `id.timestamp.body`).

use super::{blocking, http_outcome};
use crate::state::AppState;
use guise_core::outbox::{Delivery, standard_webhooks};
use guise_core::store::WebhookStore;
use std::sync::Arc;

pub async fn deliver(state: &Arc<AppState>, http: &reqwest::Client, delivery: &Delivery) -> Result<(), String> {
    let id = delivery.target.clone();
    let hook =
        blocking(state, move |s| s.db.webhook(&id).map_err(|_| "the webhook no longer exists".to_owned())).await?;
    if !hook.enabled {
        return Err("the webhook is disabled".to_owned());
    }
    let body = delivery.payload.to_string();
    let timestamp = state.clock.now().timestamp();
    let signature = standard_webhooks::sign(&hook.secret, &delivery.id, timestamp, &body)
        .map_err(|_| "the webhook's secret is unusable".to_owned())?;
    let sent = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    http_outcome(sent)
}
