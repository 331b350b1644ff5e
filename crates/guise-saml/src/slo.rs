//! An SP's single logout over HTTP-Redirect. A client with a `signingCert` must send a
//! signed LogoutRequest naming its entity id, recent, and used once (the caller redeems
//! [`CheckedLogout::replay`]); otherwise nothing ends. The LogoutResponse goes only to a
//! registered `logout.callback`. Refusals are error pages.

use crate::request::{self, LogoutRequest, RequestError};
use crate::settings::SamlSettings;
use crate::sso::SamlParams;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use guise_core::bewit::MAX_CLOCK_SKEW_SECS;
use guise_core::client::Client;
use std::io::Write;

/// How old a signed LogoutRequest may be (its ID is remembered as long, plus the skew).
pub const LOGOUT_REQUEST_WINDOW_MINUTES: i64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutRefusal {
    #[error("This client requires a signed LogoutRequest")]
    Unsigned,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("The LogoutRequest's Issuer is not this client's registered entity id")]
    WrongIssuer,
    #[error("The LogoutRequest is not recent (IssueInstant)")]
    NotRecent,
    #[error("This LogoutRequest was already used")]
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLogout {
    pub request: Option<LogoutRequest>,
    /// For a signed request: the key that marks it used, and until when it must be kept.
    pub replay: Option<(String, DateTime<Utc>)>,
}

/// Check a logout for `client_id`; `raw_query` is what a signature covers.
pub fn check_logout(
    client_id: &str,
    settings: &SamlSettings,
    params: &SamlParams,
    raw_query: &str,
    now: DateTime<Utc>,
) -> Result<CheckedLogout, LogoutRefusal> {
    let Some(cert) = &settings.signing_cert else {
        let request = params.saml_request.as_deref().map(parse).transpose()?;
        return Ok(CheckedLogout { request, replay: None });
    };
    let encoded = params.saml_request.as_deref().ok_or(LogoutRefusal::Unsigned)?;
    request::verify_redirect_signature(raw_query, cert)?;
    let request = parse(encoded)?;
    if !settings.issuer_matches(client_id, request.issuer.as_deref()) {
        return Err(LogoutRefusal::WrongIssuer);
    }
    let window = Duration::minutes(LOGOUT_REQUEST_WINDOW_MINUTES);
    let skew = Duration::seconds(MAX_CLOCK_SKEW_SECS);
    if !request.issue_instant.is_some_and(|at| at > now - window && at < now + skew) {
        return Err(LogoutRefusal::NotRecent);
    }
    let replay = Some((format!("samlp-logout:{client_id}:{}", request.id), now + window + skew));
    Ok(CheckedLogout { request: Some(request), replay })
}

fn parse(encoded: &str) -> Result<LogoutRequest, RequestError> {
    request::parse_logout_request(&request::decode_redirect(encoded)?)
}

/// The LogoutResponse (DEFLATE, base64, with `RelayState`) to the client's
/// `logout.callback` for a LogoutRequest, if the callback is a registered URL.
pub fn response_url(
    issuer: &str,
    client: &Client,
    settings: &SamlSettings,
    checked: &CheckedLogout,
    relay_state: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, url::ParseError> {
    let callback = settings.logout_callback.as_ref().filter(|c| client.accepts_sign_out_reply(c));
    let (Some(request), Some(callback)) = (&checked.request, callback) else { return Ok(None) };
    let xml = crate::response::logout_response(issuer, callback, &request.id, now);
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = encoder.write_all(xml.as_bytes());
    let mut url = url::Url::parse(callback)?;
    url.query_pairs_mut().append_pair("SAMLResponse", &STANDARD.encode(encoder.finish().unwrap_or_default()));
    if let Some(relay) = relay_state {
        url.query_pairs_mut().append_pair("RelayState", relay);
    }
    Ok(Some(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::from_addons;
    use guise_core::client::AppType;
    use serde_json::json;

    const SLO: &str = "https://sp.example/slo";

    fn settings(samlp: serde_json::Value) -> SamlSettings {
        let addons = json!({ "samlp": samlp }).as_object().cloned().unwrap_or_default();
        from_addons(&addons).ok().flatten().unwrap_or_else(|| panic!("settings"))
    }

    fn now() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn logout_request(issuer: &str, at: DateTime<Utc>) -> LogoutRequest {
        LogoutRequest { id: "_l1".into(), issuer: Some(issuer.into()), issue_instant: Some(at) }
    }

    #[test]
    fn a_signing_sp_must_send_a_signed_request() {
        let signing = settings(json!({ "signingCert": "-----BEGIN CERTIFICATE-----" }));
        let bare = SamlParams::default();
        assert_eq!(check_logout("c1", &signing, &bare, "", now()), Err(LogoutRefusal::Unsigned));
        let unsigned = SamlParams { saml_request: Some("x".into()), relay_state: None };
        let refused = check_logout("c1", &signing, &unsigned, "SAMLRequest=x", now());
        assert_eq!(refused, Err(LogoutRefusal::Request(RequestError::SignatureMissing)));
        // Without a signingCert a bare logout is allowed, and nothing is remembered.
        let plain = check_logout("c1", &settings(json!({})), &bare, "", now());
        assert_eq!(plain, Ok(CheckedLogout { request: None, replay: None }));
    }

    /// A signed HTTP-Redirect logout from `issuer` issued at `at`, and the SP's settings.
    fn signed(issuer: &str, at: DateTime<Utc>) -> (SamlParams, String, SamlSettings) {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap_or_else(|e| panic!("{e}"));
        let (der, pem) = crate::cert::self_signed(&key, "sp.example", 7).unwrap_or_else(|e| panic!("{e}"));
        let signer = crate::dsig::SamlSigner::new(&key, &der).unwrap_or_else(|e| panic!("{e}"));
        let xml = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l1" IssueInstant="{}"><saml:Issuer>{issuer}</saml:Issuer></samlp:LogoutRequest>"#,
            at.to_rfc3339()
        );
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = encoder.write_all(xml.as_bytes());
        let encoded = STANDARD.encode(encoder.finish().unwrap_or_default());
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let signed = format!("SAMLRequest={}&SigAlg={}", enc(&encoded), enc(crate::dsig::RSA_SHA256));
        let signature = signer.sign_bytes(signed.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let query = format!("{signed}&Signature={}", enc(&signature));
        (SamlParams { saml_request: Some(encoded), relay_state: None }, query, settings(json!({ "signingCert": pem })))
    }

    #[test]
    fn a_signed_request_names_the_entity_is_recent_and_has_a_replay_key() {
        let (params, query, sp) = signed("urn:c1", now() - Duration::minutes(1));
        let checked = check_logout("c1", &sp, &params, &query, now()).unwrap_or_else(|e| panic!("{e}"));
        let (key, until) = checked.replay.unwrap_or_default();
        assert_eq!(key, "samlp-logout:c1:_l1");
        assert!(until > now() + Duration::minutes(LOGOUT_REQUEST_WINDOW_MINUTES));
        let tampered = query.replace("SAMLRequest=", "SAMLRequest=A");
        let refused = check_logout("c1", &sp, &params, &tampered, now());
        assert_eq!(refused, Err(LogoutRefusal::Request(RequestError::SignatureInvalid)));
        let (params, query, sp) = signed("https://evil.example/", now());
        assert_eq!(check_logout("c1", &sp, &params, &query, now()), Err(LogoutRefusal::WrongIssuer));
        for at in [now() - Duration::minutes(LOGOUT_REQUEST_WINDOW_MINUTES + 1), now() + Duration::hours(1)] {
            let (params, query, sp) = signed("urn:c1", at);
            assert_eq!(check_logout("c1", &sp, &params, &query, now()), Err(LogoutRefusal::NotRecent));
        }
    }

    #[test]
    fn the_response_goes_only_to_a_registered_callback() {
        let mut client = Client::new("c1", "SP", AppType::RegularWeb, now());
        let sp = settings(json!({ "logout": { "callback": SLO } }));
        let checked = CheckedLogout { request: Some(logout_request("urn:c1", now())), replay: None };
        let url = |client: &Client| response_url("https://idp/", client, &sp, &checked, Some("rs"), now());
        assert_eq!(url(&client), Ok(None), "an unregistered callback is never redirected to");
        client.allowed_logout_urls = vec![SLO.into()];
        let answer = url(&client).ok().flatten().unwrap_or_default();
        assert!(answer.starts_with(&format!("{SLO}?SAMLResponse=")) && answer.ends_with("&RelayState=rs"), "{answer}");
        let without_request = CheckedLogout { request: None, replay: None };
        assert_eq!(response_url("https://idp/", &client, &sp, &without_request, None, now()), Ok(None));
    }
}
