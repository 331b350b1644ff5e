//! Back-channel logout deliveries (OIDC Back-Channel Logout 1.0 §2.5): the signed
//! logout token POSTed as the `logout_token` form field to the client's registered
//! `backchannel_logout_uri`, read when the attempt is made (a client that removed it, or
//! was deleted, is not told).

use super::{blocking, http_outcome};
use crate::state::AppState;
use guise_core::outbox::Delivery;
use guise_core::store::ClientStore;
use guise_oidc::backchannel::{EndedSession, logout_token};
use serde_json::Value;
use std::sync::Arc;

pub async fn backchannel(state: &Arc<AppState>, http: &reqwest::Client, delivery: &Delivery) -> Result<(), String> {
    let text = |key: &str| delivery.payload.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(sub), Some(sid)) = (text("sub"), text("sid")) else {
        return Err("the delivery names no session".to_owned());
    };
    let client_id = delivery.target.clone();
    let jti = delivery.id.clone();
    let (uri, token) = blocking(state, move |s| {
        let client = s.db.client_by_id(&client_id).map_err(|_| "the client no longer exists".to_owned())?;
        let uri = client.backchannel_logout_uri.clone().ok_or("the client no longer has a backchannel_logout_uri")?;
        let ended = EndedSession { sub: &sub, sid: &sid, jti: &jti };
        let token = logout_token(&s.settings, &s.keys.current(), &client, &ended, s.clock.now())
            .map_err(|_| "no key to sign the logout token with".to_owned())?;
        Ok((uri, token))
    })
    .await?;
    let sent = http.post(uri).form(&[("logout_token", token)]).send().await;
    http_outcome(sent)
}
