//! Back-channel logout deliveries (OIDC Back-Channel Logout 1.0 §2.5): the signed
//! logout token POSTed as the `logout_token` form field to the client's registered
//! `backchannel_logout_uri`, read when the attempt is made (a client that removed it, or
//! was deleted, is not told); and SAML logouts, a signed LogoutRequest over SOAP.

use super::{blocking, http_outcome};
use crate::state::AppState;
use guise_core::outbox::Delivery;
use guise_core::store::ClientStore;
use guise_oidc::backchannel::{EndedSession, logout_token};
use guise_saml::response::{LogoutSubject, logout_request_soap};
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

/// SAML single logout over the SOAP binding (SAML bindings §3.2): a signed
/// LogoutRequest naming the NameID and SessionIndex the session's assertion carried,
/// POSTed to the client's registered `addons.samlp.logout.callback` (read now, as for
/// back-channel logout: a client that turned `slo_enabled` off since is not sent it). A `2xx` answer counts as delivered; the LogoutResponse in it is
/// not examined.
pub async fn saml(state: &Arc<AppState>, http: &reqwest::Client, delivery: &Delivery) -> Result<(), String> {
    let text = |key: &str| delivery.payload.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(sid), Some(name_id), Some(format)) = (text("sid"), text("name_id"), text("name_id_format")) else {
        return Err("the delivery names no SAML session".to_owned());
    };
    let client_id = delivery.target.clone();
    let (uri, envelope) = blocking(state, move |s| {
        let client = s.db.client_by_id(&client_id).map_err(|_| "the client no longer exists".to_owned())?;
        let settings = guise_saml::settings::from_addons(&client.addons)
            .ok()
            .flatten()
            .ok_or("the client no longer has SAML settings")?;
        let uri = match (settings.logout_request_url(), &settings.logout_callback) {
            (Some(uri), _) => uri.to_owned(),
            (None, Some(_)) => return Err("single logout is off for the client (slo_enabled: false)".to_owned()),
            (None, None) => return Err("the client no longer has a SAML logout URL".to_owned()),
        };
        let signer = s.keys.saml_signer().ok_or("no SAML signing certificate")?;
        let subject = LogoutSubject { name_id: &name_id, name_id_format: &format, session_index: &sid };
        let envelope = logout_request_soap(&signer, &s.settings.issuer, &uri, &subject, s.clock.now())
            .map_err(|e| format!("signing the LogoutRequest failed: {e}"))?;
        Ok((uri, envelope))
    })
    .await?;
    let sent = http
        .post(uri)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "http://www.oasis-open.org/committees/security")
        .body(envelope)
        .send()
        .await;
    http_outcome(sent)
}
