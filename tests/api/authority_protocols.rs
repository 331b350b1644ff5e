//! Authority containment in the browser protocols: what a request from another site may
//! make guise do. A SAML assertion's Audience is the registered entity id, never the
//! AuthnRequest's Issuer (and a request from another entity is refused).

use crate::both_backends;
use crate::browser::{Browser, Page, USER_EMAIL, USER_PASSWORD, user};
use crate::helpers::TestApp;
use crate::saml::{ACS, SP_ENTITY, deflate_b64, idp_certificate, posted_response, saml_client, xmlsec1_verify};
use crate::users::urlencode;
use serde_json::json;

both_backends!(
    saml_request_issuer_must_be_the_registered_entity_id,
    saml_default_audience_is_derived_from_the_client_id,
);

const ATTACKER_ENTITY: &str = "https://attacker.example/metadata";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
const REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";

// --- SAML Audience -------------------------------------------------------------------

/// An AuthnRequest to `ACS` with `issuer` (none when `None`).
fn authn_request(id: &str, issuer: Option<&str>) -> String {
    let issuer = issuer.map(|i| format!("<saml:Issuer>{i}</saml:Issuer>")).unwrap_or_default();
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-25T00:00:00Z" AssertionConsumerServiceURL="{ACS}">{issuer}</samlp:AuthnRequest>"#
    )
}

fn sso_url(app: &TestApp, client_id: &str, request: &str) -> String {
    format!("{}?SAMLRequest={}", app.url(&format!("/samlp/{client_id}")), urlencode(&deflate_b64(request)))
}

/// A refused AuthnRequest: an error Response (Requester / RequestDenied) auto-POSTed to
/// the registered ACS, with no assertion in it.
#[track_caller]
fn assert_request_denied(page: &Page, request_id: &str) {
    assert_eq!(page.status, 200, "an error Response is auto-POSTed: {}", page.body);
    assert!(page.body.contains(&format!("action=\"{}\"", ACS.replace('/', "&#x2f;"))), "{}", page.body);
    let (xml, _) = posted_response(&page.body);
    assert!(xml.contains(REQUESTER) && xml.contains(REQUEST_DENIED), "{xml}");
    assert!(xml.contains(&format!(r#"InResponseTo="{request_id}""#)), "{xml}");
    assert!(!xml.contains("<saml:Assertion"), "no assertion: {xml}");
    assert!(!xml.contains(ATTACKER_ENTITY), "{xml}");
}

async fn saml_request_issuer_must_be_the_registered_entity_id(app: TestApp) {
    user(&app).await;
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let (cert, _) = idp_certificate(&app, &client_id).await;
    let browser = Browser::new();

    // Another entity's request: refused before any login, to the registered ACS.
    let evil = browser.get(&sso_url(&app, &client_id, &authn_request("_evil1", Some(ATTACKER_ENTITY)))).await;
    assert_request_denied(&evil, "_evil1");

    // The registered entity's request: an assertion for the registered audience.
    let good = sso_url(&app, &client_id, &authn_request("_good", Some(SP_ENTITY)));
    let done = browser.login_via(&app, &good, USER_EMAIL, USER_PASSWORD).await;
    let (xml, _) = posted_response(&done.body);
    assert!(xmlsec1_verify(&xml, &cert, ASSERTION), "{xml}");
    assert!(xml.contains(&format!("<saml:Audience>{SP_ENTITY}</saml:Audience>")), "{xml}");
    assert!(xml.contains(r#"InResponseTo="_good""#));

    // A live session does not change that: another Issuer, or none, gets no assertion.
    let evil = browser.get(&sso_url(&app, &client_id, &authn_request("_evil2", Some(ATTACKER_ENTITY)))).await;
    assert_request_denied(&evil, "_evil2");
    let anonymous = browser.get(&sso_url(&app, &client_id, &authn_request("_anon", None))).await;
    assert_request_denied(&anonymous, "_anon");
    // The session is still there for the real SP.
    let again = browser.get(&good.replace("_good", "_good2")).await;
    let (xml, _) = posted_response(&again.body);
    assert!(xml.contains(&format!("<saml:Audience>{SP_ENTITY}</saml:Audience>")), "{xml}");
}

async fn saml_default_audience_is_derived_from_the_client_id(app: TestApp) {
    user(&app).await;
    let client_id = saml_client(&app, json!({})).await;
    let (cert, _) = idp_certificate(&app, &client_id).await;
    let default = format!("urn:{client_id}");
    let browser = Browser::new();

    // IdP-initiated SSO: no request, the registered (default) audience.
    let start = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let done = browser.submit_login(&app, start.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let done = browser.follow(&app, done).await;
    let (xml, _) = posted_response(&done.body);
    assert!(xmlsec1_verify(&xml, &cert, ASSERTION), "{xml}");
    assert!(xml.contains(&format!("<saml:Audience>{default}</saml:Audience>")), "{xml}");

    // A request's Issuer never becomes the audience: any other entity is refused.
    for (id, issuer) in [("_other", SP_ENTITY), ("_evil", ATTACKER_ENTITY)] {
        let page = browser.get(&sso_url(&app, &client_id, &authn_request(id, Some(issuer)))).await;
        assert_request_denied(&page, id);
        assert!(!posted_response(&page.body).0.contains(issuer));
    }
    // A request from the default entity id is answered.
    let page = browser.get(&sso_url(&app, &client_id, &authn_request("_default", Some(&default)))).await;
    let (xml, _) = posted_response(&page.body);
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"), "{xml}");
    assert!(xml.contains(&format!("<saml:Audience>{default}</saml:Audience>")), "{xml}");
    assert!(xml.contains(r#"InResponseTo="_default""#));
}
