//! guise's SAML IdP against an independent, strict service provider: python3-saml in
//! strict mode (tests/saml/sp.py, installed by scripts/ensure-test-tools) accepts
//! SP-initiated Redirect and POST flows, IdP-initiated SSO, signed requests and `samlp`
//! impersonation.

use crate::both_backends;
use crate::browser::{Browser, USER_EMAIL, USER_PASSWORD, hidden, user};
use crate::helpers::TestApp;
use crate::saml::{ACS, SP_ENTITY, idp_certificate, saml_client};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

both_backends!(
    strict_sp_accepts_redirect_and_post_flows,
    strict_sp_accepts_idp_initiated_and_impersonation,
    signed_redirect_requests_are_checked,
);

/// The virtualenv's python with python3-saml (installed once per test run).
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let output = Command::new("bash")
            .arg(format!("{root}/scripts/ensure-test-tools"))
            .output()
            .expect("ensure-test-tools runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).lines().last().expect("a python path").trim().to_owned()
    })
}

/// Run `sp.py <command>` with `input` on stdin.
fn sp(command: &str, input: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/saml/sp.py");
    let mut child = Command::new(python())
        .args([script, command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sp.py starts");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "sp.py {command}: {} {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

async fn settings(app: &TestApp, client_id: &str) -> Value {
    let (_, metadata) = idp_certificate(app, client_id).await;
    json!({ "idp_metadata_xml": metadata, "sp_entity_id": SP_ENTITY, "acs_url": ACS })
}

fn validate(settings: &Value, html: &str, request_id: Option<&str>) -> Value {
    let mut input = settings.clone();
    input["saml_response"] = json!(hidden(html, "SAMLResponse"));
    input["request_id"] = json!(request_id);
    input["current_url"] = json!(ACS);
    sp("validate-response", &input)
}

async fn strict_sp_accepts_redirect_and_post_flows(app: TestApp) {
    let grace = user(&app).await;
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let settings = settings(&app, &client_id).await;
    let metadata =
        sp("check-metadata", &json!({ "idp_metadata_xml": settings["idp_metadata_xml"], "require_signed": true }));
    assert_eq!(metadata["ok"], true, "{metadata}");

    // HTTP-Redirect.
    let mut input = settings.clone();
    input["binding"] = json!("redirect");
    input["relay_state"] = json!("after-login");
    let request = sp("authn-request", &input);
    assert_eq!(request["ok"], true, "{request}");
    let browser = Browser::new();
    let done = browser.login_via(&app, request["url"].as_str().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let verdict = validate(&settings, &done.body, request["request_id"].as_str());
    assert_eq!(verdict["ok"], true, "strict python3-saml refused: {verdict}");
    assert_eq!(verdict["nameid"], grace["user_id"]);
    let attributes = verdict["attributes"].as_object().unwrap();
    assert_eq!(attributes["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"], json!([USER_EMAIL]));
    assert_eq!(hidden(&done.body, "RelayState"), "after-login");

    // HTTP-POST, with the session from the first login.
    let mut input = settings.clone();
    input["binding"] = json!("post");
    let request = sp("authn-request", &input);
    let page = browser
        .post(request["sso_url"].as_str().unwrap(), &[("SAMLRequest", request["SAMLRequest"].as_str().unwrap())])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let verdict = validate(&settings, &page.body, request["request_id"].as_str());
    assert_eq!(verdict["ok"], true, "{verdict}");

    // The SP notices a Response that answers another request.
    let wrong = validate(&settings, &page.body, Some("_some_other_request"));
    assert_eq!(wrong["ok"], false);
}

async fn strict_sp_accepts_idp_initiated_and_impersonation(app: TestApp) {
    let target = user(&app).await;
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let settings = settings(&app, &client_id).await;
    let browser = Browser::new();
    let start = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let done = browser.submit_login(&app, start.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let done = browser.follow(&app, done).await;
    let verdict = validate(&settings, &done.body, None);
    assert_eq!(verdict["ok"], true, "IdP-initiated: {verdict}");

    let response = app
        .http
        .post(app.url(&format!("/users/{}/impersonate", crate::users::urlencode(target["user_id"].as_str().unwrap()))))
        .bearer_auth(&app.token)
        .json(&json!({ "protocol": "samlp", "impersonator_id": app.admin_user_id, "client_id": client_id, "reason": "SAML-2" }))
        .send()
        .await
        .unwrap();
    let url = response.text().await.unwrap();
    let page = Browser::new().get(&url).await;
    let verdict = validate(&settings, &page.body, None);
    assert_eq!(verdict["ok"], true, "impersonation: {verdict}");
    assert_eq!(verdict["nameid"], target["user_id"], "the target is the subject");
    let attributes = verdict["attributes"].as_object().unwrap();
    assert_eq!(attributes["urn:guise:impersonated"], json!(["true"]));
    assert_eq!(attributes["urn:guise:impersonator:user_id"], json!([app.admin_user_id]));
    assert_eq!(attributes["urn:guise:impersonator:email"], json!(["admin@example.com"]));
}

async fn signed_redirect_requests_are_checked(app: TestApp) {
    user(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("sp.key"), dir.path().join("sp.crt"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sp.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    let (key_pem, cert_pem) = (std::fs::read_to_string(&key).unwrap(), std::fs::read_to_string(&cert).unwrap());
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY, "signingCert": cert_pem })).await;
    let mut input = settings(&app, &client_id).await;
    input["binding"] = json!("redirect");
    input["authn_requests_signed"] = json!(true);
    input["sp_cert_pem"] = json!(cert_pem);
    input["sp_key_pem"] = json!(key_pem);
    let request = sp("authn-request", &input);
    let url = request["url"].as_str().unwrap().to_owned();
    assert!(url.contains("Signature="), "{url}");

    let browser = Browser::new();
    let done = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(validate(&input, &done.body, request["request_id"].as_str())["ok"], true);

    // A wrong or missing signature is refused with an error page, never a redirect.
    let unsigned = url.split("&SigAlg=").next().unwrap().to_owned();
    let signature = url.split("Signature=").nth(1).unwrap().to_owned();
    // One character of the signature changed (to another one: replacing an `A` by an `A`
    // would forge nothing).
    let changed = if &signature[10..11] == "A" { "B" } else { "A" };
    let forged = url.replace(&signature, &format!("{}{changed}{}", &signature[..10], &signature[11..]));
    for bad in [unsigned, forged] {
        let page = Browser::new().get(&bad).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.location.is_none() && !page.body.contains("SAMLResponse"));
    }
}
