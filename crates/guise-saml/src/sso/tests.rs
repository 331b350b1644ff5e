//! Unit tests of the single sign-on rules, without a server.

use super::*;
use crate::response::STATUS_REQUEST_DENIED;
use crate::settings::{NAMEID_EMAIL, from_addons};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use guise_core::client::AppType;
use serde_json::json;

const ACS: &str = "https://sp.example/acs";
const OTHER_ACS: &str = "https://sp.example/other";

fn client(callbacks: &[&str]) -> Client {
    let mut client = Client::new("c1", "SP", AppType::RegularWeb, chrono::DateTime::UNIX_EPOCH);
    client.callbacks = callbacks.iter().map(|c| (*c).to_owned()).collect();
    client
}

fn settings(samlp: serde_json::Value) -> SamlSettings {
    let addons = json!({ "samlp": samlp }).as_object().cloned().unwrap_or_default();
    from_addons(&addons).ok().flatten().unwrap_or_else(|| panic!("settings"))
}

/// A POST-binding AuthnRequest from the registered entity (`urn:c1`) asking for `acs`.
fn posted(acs: &str, issuer: &str, extra: &str) -> SamlParams {
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" AssertionConsumerServiceURL="{acs}"{extra}><saml:Issuer>{issuer}</saml:Issuer></samlp:AuthnRequest>"#
    );
    SamlParams { saml_request: Some(STANDARD.encode(xml)), relay_state: Some("rs".into()) }
}

fn saml(result: Result<PendingAuthorization, SsoRefusal>) -> (Vec<String>, PendingSaml) {
    match result {
        Ok(PendingAuthorization { prompt, protocol: PendingProtocol::Saml(saml), .. }) => (prompt, saml),
        other => panic!("expected a pending SAML login, got {other:?}"),
    }
}

#[test]
fn an_unregistered_acs_is_an_error_page_never_a_response_to_it() {
    let refused = pending_sso(&client(&[ACS]), &settings(json!({})), &posted(OTHER_ACS, "urn:c1", ""), &Binding::Post);
    assert_eq!(
        refused,
        Err(SsoRefusal::Page("The AssertionConsumerServiceURL is not registered for this client".into()))
    );
    // IdP-initiated SSO for a client without callbacks has no ACS either.
    let none = pending_sso(&client(&[]), &settings(json!({})), &SamlParams::default(), &Binding::Post);
    assert!(matches!(none, Err(SsoRefusal::Page(_))), "{none:?}");
    // Undecodable requests, an overlong RelayState and unsigned POSTs to a signing SP are pages too.
    let garbage = SamlParams { saml_request: Some("%%%".into()), relay_state: None };
    assert!(matches!(
        pending_sso(&client(&[ACS]), &settings(json!({})), &garbage, &Binding::Post),
        Err(SsoRefusal::Page(_))
    ));
    let long = SamlParams { relay_state: Some("r".repeat(MAX_RELAY_STATE + 1)), ..posted(ACS, "urn:c1", "") };
    assert!(matches!(
        pending_sso(&client(&[ACS]), &settings(json!({})), &long, &Binding::Post),
        Err(SsoRefusal::Page(_))
    ));
    let signing = settings(json!({ "signingCert": "-----BEGIN CERTIFICATE-----" }));
    let unsigned = pending_sso(&client(&[ACS]), &signing, &posted(ACS, "urn:c1", ""), &Binding::Post);
    assert!(matches!(unsigned, Err(SsoRefusal::Page(_))), "{unsigned:?}");
    let redirect = Binding::Redirect("SAMLRequest=x".into());
    assert!(matches!(
        pending_sso(&client(&[ACS]), &signing, &posted(ACS, "urn:c1", ""), &redirect),
        Err(SsoRefusal::Page(_))
    ));
}

#[test]
fn a_bad_request_to_a_registered_acs_is_a_saml_error_to_that_acs() {
    let sp = client(&[OTHER_ACS, ACS]);
    let foreign = pending_sso(&sp, &settings(json!({})), &posted(ACS, "https://evil.example/", ""), &Binding::Post);
    match foreign {
        Err(SsoRefusal::ToAcs { pending, status, .. }) => {
            assert_eq!((pending.acs_url.as_str(), status), (ACS, STATUS_REQUEST_DENIED));
            assert_eq!((pending.request_id.as_deref(), pending.relay_state.as_deref()), (Some("_r1"), Some("rs")));
        }
        other => panic!("expected a SAML error to the ACS, got {other:?}"),
    }
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r2" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>urn:c1</saml:Issuer><samlp:NameIDPolicy Format="urn:bogus"/></samlp:AuthnRequest>"#
    );
    let params = SamlParams { saml_request: Some(STANDARD.encode(xml)), relay_state: None };
    match pending_sso(&sp, &settings(json!({})), &params, &Binding::Post) {
        Err(SsoRefusal::ToAcs { pending, status, .. }) => {
            assert_eq!((pending.acs_url.as_str(), status), (ACS, STATUS_INVALID_NAMEID_POLICY));
        }
        other => panic!("expected a SAML error to the ACS, got {other:?}"),
    }
}

#[test]
fn a_good_request_becomes_a_pending_login_on_the_registration() {
    let email = settings(json!({ "nameIdentifierFormat": NAMEID_EMAIL, "audience": "urn:c1" }));
    let (prompt, pending) = saml(pending_sso(&client(&[ACS]), &email, &posted(ACS, "urn:c1", ""), &Binding::Post));
    assert!(prompt.is_empty());
    assert_eq!((pending.acs_url.as_str(), pending.audience.as_str()), (ACS, "urn:c1"));
    assert_eq!(pending.name_id_format, NAMEID_EMAIL, "unspecified in the request: the registered format");
    let forced = posted(ACS, "urn:c1", r#" ForceAuthn="true""#);
    assert_eq!(saml(pending_sso(&client(&[ACS]), &email, &forced, &Binding::Post)).0, ["login"]);
    let passive = posted(ACS, "urn:c1", r#" IsPassive="true" ForceAuthn="true""#);
    assert_eq!(saml(pending_sso(&client(&[ACS]), &email, &passive, &Binding::Post)).0, ["none"]);
    // IdP-initiated: the first registered ACS, no request id.
    let idp = SamlParams { saml_request: None, relay_state: Some("rs".into()) };
    let (_, pending) = saml(pending_sso(&client(&[OTHER_ACS, ACS]), &email, &idp, &Binding::Post));
    assert_eq!((pending.acs_url.as_str(), pending.request_id), (OTHER_ACS, None));
}
