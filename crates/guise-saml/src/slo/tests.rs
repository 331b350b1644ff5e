//! Unit tests of the single logout rules, without a server.

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
    LogoutRequest { id: "_l1".into(), issuer: Some(issuer.into()), issue_instant: Some(at), session_indexes: vec![] }
}

#[test]
fn a_request_naming_sessions_ends_only_those() {
    let bare = CheckedLogout { request: None, replay: None };
    assert!(is_for_session(&bare, "s1"), "a bare logout is for the browser's session");
    let mut request = logout_request("urn:c1", now());
    let unnamed = CheckedLogout { request: Some(request.clone()), replay: None };
    assert!(is_for_session(&unnamed, "s1"), "no SessionIndex: the browser's session");
    request.session_indexes = vec!["s0".into(), "s1".into()];
    let named = CheckedLogout { request: Some(request), replay: None };
    assert!(is_for_session(&named, "s1"));
    assert!(!is_for_session(&named, "s2"), "another session stays");
}

#[test]
fn session_indexes_are_read_from_the_request() {
    let xml = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l2" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>urn:c1</saml:Issuer><saml:NameID>@NOT_USED@</saml:NameID><samlp:SessionIndex> s1 </samlp:SessionIndex><samlp:SessionIndex>s2</samlp:SessionIndex><samlp:SessionIndex> </samlp:SessionIndex><samlp:SessionIndex/></samlp:LogoutRequest>"#;
    let parsed = request::parse_logout_request(xml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.session_indexes, vec!["s1".to_owned(), "s2".to_owned()]);
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
    let encoded = crate::request::encode_redirect(&xml);
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
