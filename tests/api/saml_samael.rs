//! guise's SAML IdP against a second independent service provider, written in Rust:
//! [samael](https://crates.io/crates/samael) with its `xmlsec` feature (libxmlsec1).
//! samael's `ServiceProvider`, configured with guise's signed IdP metadata, makes the
//! AuthnRequests (HTTP-Redirect and HTTP-POST), and parses and validates every Response:
//! the Assertion's signature against the metadata's certificate (RSA-SHA256 only),
//! issuer, audience, `Destination` (when the Response is signed), the bearer
//! confirmation's `Recipient` and time window, the Conditions' time window and
//! `InResponseTo`. Then the test reads the
//! subject and the attributes, including the impersonation ones.

use crate::both_backends;
use crate::browser::{Browser, USER_EMAIL, USER_PASSWORD, hidden, user};
use crate::helpers::TestApp;
use crate::saml::{ACS, SP_ENTITY, idp_certificate, saml_client};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use guise_saml::settings::{ATTR_IMPERSONATED, ATTR_IMPERSONATOR_EMAIL, ATTR_IMPERSONATOR_ID, CLAIM_EMAIL};
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::{EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING};
use samael::schema::Assertion;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use serde_json::json;
use std::collections::BTreeMap;

both_backends!(
    samael_accepts_sp_initiated_redirect_binding,
    samael_accepts_sp_initiated_post_binding,
    samael_accepts_idp_initiated_sso,
    samael_accepts_samlp_impersonation,
);

/// A samael SP for `client_id`, configured from guise's metadata for it.
async fn service_provider(app: &TestApp, client_id: &str, allow_idp_initiated: bool) -> ServiceProvider {
    let (_, metadata) = idp_certificate(app, client_id).await;
    let idp_metadata: EntityDescriptor = metadata.parse().expect("samael parses guise's IdP metadata");
    ServiceProviderBuilder::default()
        .entity_id(SP_ENTITY.to_owned())
        .acs_url(ACS.to_owned())
        .idp_metadata(idp_metadata)
        .allow_idp_initiated(allow_idp_initiated)
        .allowed_signature_algorithms(vec![AllowedSignatureAlgorithm::RsaSha256])
        .build()
        .unwrap()
}

/// A certificate (base64 DER) of a key that is not guise's.
fn other_certificate() -> String {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("other.key"), dir.path().join("other.crt"));
    let output = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let pem = std::fs::read_to_string(&cert).unwrap();
    pem.lines().filter(|line| !line.starts_with("-----")).collect()
}

/// samael's verdict on the SAMLResponse of an auto-POST page.
fn parse(sp: &ServiceProvider, html: &str, request_ids: Option<&[&str]>) -> Result<Assertion, String> {
    sp.parse_base64_response(&hidden(html, "SAMLResponse"), request_ids).map_err(|e| format!("{e:?}"))
}

/// The subject's NameID and the attributes (name → values) of a validated Assertion.
fn read(assertion: &Assertion) -> (String, BTreeMap<String, Vec<String>>) {
    let name_id = assertion.subject.as_ref().and_then(|s| s.name_id.as_ref()).expect("a NameID").value.clone();
    let mut attributes = BTreeMap::new();
    for statement in assertion.attribute_statements.iter().flatten() {
        for attribute in &statement.attributes {
            let values = attribute.values.iter().map(|v| v.value.clone().unwrap_or_default()).collect();
            attributes.insert(attribute.name.clone().expect("a Name"), values);
        }
    }
    (name_id, attributes)
}

/// What samael must refuse in the same Response: another request's id, another audience,
/// another ACS (Recipient, or Destination if the Response is signed), another
/// certificate, an expired message, a clock a day behind, a changed signed byte.
fn refusals(app_sp: &ServiceProvider, html: &str, request_ids: Option<&[&str]>, response_signed: bool) {
    if request_ids.is_some() {
        let refused = parse(app_sp, html, Some(&["_some_other_request"])).unwrap_err();
        assert!(refused.contains("InResponseToInvalid"), "a Response to another request: {refused}");
    }
    let mut other_audience = app_sp.clone();
    other_audience.entity_id = Some("https://other-sp.example/metadata".to_owned());
    let refused = parse(&other_audience, html, request_ids).unwrap_err();
    assert!(refused.contains("AudienceRestriction"), "{refused}");
    let mut other_acs = app_sp.clone();
    other_acs.acs_url = Some("http://127.0.0.1:9/other/acs".to_owned());
    let refused = parse(&other_acs, html, request_ids).unwrap_err();
    // samael reads only what a verified signature covers: the Response's Destination
    // when the Response is signed, else the signed Assertion's Recipient.
    let expected = if response_signed { "DestinationValidationError" } else { "AssertionRecipientMismatch" };
    assert!(refused.contains(expected), "{refused}");
    // An SP that pinned another certificate refuses the Response.
    let mut other_key = app_sp.clone();
    let metadata = other_key.idp_metadata.to_string().unwrap();
    let theirs = crate::saml::between(&metadata, "X509Certificate>", "</").to_owned();
    let other = other_certificate();
    assert!(theirs.len() > 100 && other != theirs);
    other_key.idp_metadata = metadata.replace(&theirs, &other).parse().unwrap();
    let refused = parse(&other_key, html, request_ids).unwrap_err();
    assert!(refused.contains("FailedToValidateSignature"), "{refused}");
    // The Response was issued a moment ago; an SP allowing no delay at all sees it expired.
    let mut impatient = app_sp.clone();
    impatient.max_issue_delay = chrono::Duration::seconds(-1);
    let refused = parse(&impatient, html, request_ids).unwrap_err();
    assert!(refused.contains("Expired"), "{refused}");
    // An SP whose clock is a day behind sees the Conditions' NotBefore in the future.
    let mut behind = app_sp.clone();
    behind.max_clock_skew = chrono::Duration::hours(-24);
    let refused = parse(&behind, html, request_ids).unwrap_err();
    assert!(refused.contains("AssertionConditionExpiredBefore"), "{refused}");
    // One signed byte changed: the e-mail address in the signed Assertion.
    let xml = String::from_utf8(STANDARD.decode(hidden(html, "SAMLResponse")).unwrap()).unwrap();
    assert!(xml.contains(USER_EMAIL) || xml.contains("admin@example.com"), "{xml}");
    let tampered = xml.replace("@example.com", "@example.org");
    let refused = app_sp.parse_xml_response(&tampered, request_ids).map_err(|e| format!("{e:?}")).unwrap_err();
    assert!(refused.contains("FailedToValidateSignature"), "{refused}");
}

async fn samael_accepts_sp_initiated_redirect_binding(app: TestApp) {
    let grace = user(&app).await;
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let sp = service_provider(&app, &client_id, false).await;
    let sso = sp.sso_binding_location(HTTP_REDIRECT_BINDING).expect("a Redirect SSO endpoint in the metadata");
    assert_eq!(sso, app.url(&format!("/samlp/{client_id}")));
    let request = sp.make_authentication_request(&sso).unwrap();
    let url = request.redirect("after-login").unwrap().unwrap();

    let browser = Browser::new();
    let done = browser.login_via(&app, url.as_str(), USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(hidden(&done.body, "RelayState"), "after-login");
    let ids = [request.id.as_str()];
    let assertion = parse(&sp, &done.body, Some(&ids)).unwrap_or_else(|e| panic!("samael refused: {e}"));
    let (name_id, attributes) = read(&assertion);
    assert_eq!(name_id, grace["user_id"].as_str().unwrap());
    assert_eq!(attributes[CLAIM_EMAIL], [USER_EMAIL]);
    let confirmation = &assertion.subject.as_ref().unwrap().subject_confirmations.as_ref().unwrap()[0];
    let data = confirmation.subject_confirmation_data.as_ref().unwrap();
    assert_eq!(data.in_response_to.as_deref(), Some(request.id.as_str()));
    assert_eq!(data.recipient.as_deref(), Some(ACS));
    refusals(&sp, &done.body, Some(&ids), false);
}

async fn samael_accepts_sp_initiated_post_binding(app: TestApp) {
    let grace = user(&app).await;
    // This client has the Response signed too: two signatures, both verified.
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY, "signResponse": true })).await;
    let sp = service_provider(&app, &client_id, false).await;
    let sso = sp.sso_binding_location(HTTP_POST_BINDING).expect("a POST SSO endpoint in the metadata");
    let request = sp.make_authentication_request(&sso).unwrap();
    // samael renders the auto-POST form; the browser posts what it carries.
    let form = request.post("post-state").unwrap().unwrap();
    assert!(form.contains(&format!("action=\"{sso}\"")), "{form}");
    let encoded = STANDARD.encode(request.to_string().unwrap());
    assert!(form.contains(&encoded));

    let browser = Browser::new();
    let login = browser.post(&sso, &[("SAMLRequest", &encoded), ("RelayState", "post-state")]).await;
    let done = browser.submit_login(&app, login.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let done = browser.follow(&app, done).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(hidden(&done.body, "RelayState"), "post-state");
    let ids = [request.id.as_str()];
    let assertion = parse(&sp, &done.body, Some(&ids)).unwrap_or_else(|e| panic!("samael refused: {e}"));
    let (name_id, attributes) = read(&assertion);
    assert_eq!(name_id, grace["user_id"].as_str().unwrap());
    assert_eq!(attributes[CLAIM_EMAIL], [USER_EMAIL]);

    // With the session, a second POST request is answered at once.
    let again = sp.make_authentication_request(&sso).unwrap();
    let page = browser.post(&sso, &[("SAMLRequest", &STANDARD.encode(again.to_string().unwrap()))]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(parse(&sp, &page.body, Some(&[again.id.as_str()])).is_ok());
    assert!(parse(&sp, &page.body, Some(&ids)).is_err(), "it answers the second request, not the first");
    refusals(&sp, &page.body, Some(&[again.id.as_str()]), true);
}

async fn samael_accepts_idp_initiated_sso(app: TestApp) {
    let grace = user(&app).await;
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let browser = Browser::new();
    let start = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let done = browser.submit_login(&app, start.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let done = browser.follow(&app, done).await;
    assert_eq!(done.status, 200, "{}", done.body);

    // An SP that accepts only answers to its own requests refuses an unsolicited Response.
    let strict = service_provider(&app, &client_id, false).await;
    let refused = parse(&strict, &done.body, None).unwrap_err();
    assert!(refused.contains("InResponseTo"), "{refused}");
    let sp = service_provider(&app, &client_id, true).await;
    let assertion = parse(&sp, &done.body, None).unwrap_or_else(|e| panic!("samael refused: {e}"));
    let (name_id, attributes) = read(&assertion);
    assert_eq!(name_id, grace["user_id"].as_str().unwrap());
    assert_eq!(attributes[CLAIM_EMAIL], [USER_EMAIL]);
    let confirmation = &assertion.subject.as_ref().unwrap().subject_confirmations.as_ref().unwrap()[0];
    assert_eq!(confirmation.subject_confirmation_data.as_ref().unwrap().in_response_to, None, "unsolicited");
    refusals(&sp, &done.body, None, false);
}

async fn samael_accepts_samlp_impersonation(app: TestApp) {
    let target = user(&app).await;
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let response = app
        .http
        .post(app.url(&format!("/users/{}/impersonate", crate::users::urlencode(target["user_id"].as_str().unwrap()))))
        .bearer_auth(&app.token)
        .json(&json!({ "protocol": "samlp", "impersonator_id": app.admin_user_id, "client_id": client_id, "reason": "SAML-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let url = response.text().await.unwrap();
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);

    let sp = service_provider(&app, &client_id, true).await;
    let assertion = parse(&sp, &page.body, None).unwrap_or_else(|e| panic!("samael refused: {e}"));
    let (name_id, attributes) = read(&assertion);
    assert_eq!(name_id, target["user_id"].as_str().unwrap(), "the target is the subject");
    assert_eq!(attributes[CLAIM_EMAIL], [USER_EMAIL]);
    assert_eq!(attributes[ATTR_IMPERSONATED], ["true"]);
    assert_eq!(attributes[ATTR_IMPERSONATOR_ID], [app.admin_user_id.as_str()]);
    assert_eq!(attributes[ATTR_IMPERSONATOR_EMAIL], ["admin@example.com"]);
    refusals(&sp, &page.body, None, false);
}
