//! The SAML 2.0 IdP: signed metadata and Responses verified by an independent verifier
//! (Debian's `xmlsec1`, never `--insecure`), SP-initiated SSO over both bindings,
//! IdP-initiated SSO, bad input refused without redirects, and `samlp` impersonation.

use crate::both_backends;
use crate::browser::{Browser, USER_EMAIL, USER_PASSWORD, hidden, user};
use crate::helpers::{TestApp, split};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::Write;

pub const ACS: &str = "http://127.0.0.1:9/saml/acs";
pub const SP_ENTITY: &str = "https://sp.example/metadata";

both_backends!(
    metadata_is_signed_and_verifies,
    sp_initiated_redirect_binding_end_to_end,
    sp_initiated_post_binding_and_idp_initiated,
    bad_saml_input_is_refused_without_redirect,
    samlp_impersonation_posts_a_response_naming_both,
    single_logout_ends_the_session,
    single_logout_ends_only_the_session_it_names,
);

pub async fn saml_client(app: &TestApp, samlp: Value) -> String {
    let (status, client) = app
        .post(
            "/api/v2/clients",
            &json!({
                "name": "SAML SP",
                "app_type": "regular_web",
                "callbacks": [ACS],
                "grant_types": ["authorization_code"],
                "allow_impersonation": true,
                "addons": { "samlp": samlp },
            }),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    client["client_id"].as_str().unwrap().to_owned()
}

/// Run `xmlsec1 --verify` on `xml` with the IdP certificate from the metadata.
pub fn xmlsec1_verify(xml: &str, cert_b64: &str, node: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        cert_b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n")
    );
    std::fs::write(dir.path().join("idp.pem"), pem).unwrap();
    std::fs::write(dir.path().join("doc.xml"), xml).unwrap();
    // SAML 1.1 assertions are identified by AssertionID, everything else by ID.
    let id_attr = if node.contains("SAML:1.0") { "--id-attr:AssertionID" } else { "--id-attr:ID" };
    let output = std::process::Command::new("xmlsec1")
        .args(["--verify", id_attr, node, "--pubkey-cert-pem"])
        .arg(dir.path().join("idp.pem"))
        .arg(dir.path().join("doc.xml"))
        .output()
        .expect("xmlsec1 is installed (scripts/ensure-build-deps)");
    output.status.success()
}

/// The signed Assertion on its own (it carries its own namespace declarations).
pub fn assertion_of(xml: &str) -> String {
    format!("<saml:Assertion {}</saml:Assertion>", between(xml, "<saml:Assertion ", "</saml:Assertion>"))
}

pub fn between<'a>(xml: &'a str, start: &str, end: &str) -> &'a str {
    let from = xml.find(start).unwrap_or_else(|| panic!("{start} not in {xml}")) + start.len();
    let to = xml[from..].find(end).unwrap() + from;
    &xml[from..to]
}

/// The IdP signing certificate (base64 DER) from the client's metadata.
pub async fn idp_certificate(app: &TestApp, client_id: &str) -> (String, String) {
    let response = app.http.get(app.url(&format!("/samlp/metadata/{client_id}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/samlmetadata+xml");
    let xml = response.text().await.unwrap();
    (between(&xml, "<ds:X509Certificate>", "</ds:X509Certificate>").to_owned(), xml)
}

pub fn authn_request(id: &str, acs: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-25T00:00:00Z" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{SP_ENTITY}</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>"#
    )
}

pub fn deflate_b64(xml: &str) -> String {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes()).unwrap();
    STANDARD.encode(encoder.finish().unwrap())
}

/// The SAMLResponse (decoded XML) and RelayState of an auto-POST page.
pub fn posted_response(html: &str) -> (String, Option<String>) {
    let encoded = hidden(html, "SAMLResponse");
    let xml = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    let relay = html.contains("name=\"RelayState\"").then(|| hidden(html, "RelayState"));
    (xml, relay)
}

const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";

async fn metadata_is_signed_and_verifies(app: TestApp) {
    let client_id = saml_client(&app, json!({})).await;
    let (cert, xml) = idp_certificate(&app, &client_id).await;
    assert!(xml.contains(&format!("/samlp/{client_id}\"")), "{xml}");
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"));
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"));
    assert!(xmlsec1_verify(&xml, &cert, "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor"), "{xml}");
    let tampered = xml.replace("HTTP-POST", "HTTP-PAST");
    assert!(!xmlsec1_verify(&tampered, &cert, "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor"));
    let (status, _) = split(app.http.get(app.url("/samlp/metadata/nope")).send().await.unwrap()).await;
    assert_eq!(status, 404);
}

async fn sp_initiated_redirect_binding_end_to_end(app: TestApp) {
    let grace = user(&app).await;
    // The SP's entity id is registered: a request's Issuer must name it.
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let (cert, _) = idp_certificate(&app, &client_id).await;
    let url = format!(
        "{}?SAMLRequest={}&RelayState=back-to-page-7",
        app.url(&format!("/samlp/{client_id}")),
        crate::users::urlencode(&deflate_b64(&authn_request("_req_redirect", ACS)))
    );
    let browser = Browser::new();
    let done = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(done.status, 200, "the Response is auto-POSTed: {}", done.body);
    assert!(done.body.contains(&format!("action=\"{}\"", ACS.replace('/', "&#x2f;"))), "{}", done.body);
    let (xml, relay) = posted_response(&done.body);
    assert_eq!(relay.as_deref(), Some("back-to-page-7"));
    assert!(xmlsec1_verify(&xml, &cert, ASSERTION), "{xml}");
    assert!(xml.contains(r#"InResponseTo="_req_redirect""#));
    assert!(xml.contains(&format!(r#"Destination="{ACS}""#)));
    assert!(xml.contains(&format!("<saml:Audience>{SP_ENTITY}</saml:Audience>")));
    assert!(xml.contains(&format!(">{USER_EMAIL}</saml:NameID>")), "emailAddress NameID as requested");
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"));
    assert!(xml.contains(grace["user_id"].as_str().unwrap()));
    assert!(!xml.contains("urn:guise:impersonated"), "an ordinary login carries no impersonation");
    // Tampering with the assertion breaks the signature.
    let tampered = xml.replace(USER_EMAIL, "eve@example.com");
    assert!(!xmlsec1_verify(&tampered, &cert, ASSERTION));
    assert!(!app.logs_of_type("guise_saml_response").await.is_empty());
}

async fn sp_initiated_post_binding_and_idp_initiated(app: TestApp) {
    user(&app).await;
    let client_id = saml_client(&app, json!({ "signResponse": true, "audience": SP_ENTITY })).await;
    let (cert, _) = idp_certificate(&app, &client_id).await;
    let browser = Browser::new();
    // Log in once through the POST binding…
    let start = browser
        .post(
            &app.url(&format!("/samlp/{client_id}")),
            &[("SAMLRequest", &STANDARD.encode(authn_request("_req_post", ACS))), ("RelayState", "r1")],
        )
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let login = start.location.unwrap();
    let done = browser.submit_login(&app, &login, USER_EMAIL, USER_PASSWORD).await;
    let done = browser.follow(&app, done).await;
    let (xml, _) = posted_response(&done.body);
    assert!(xmlsec1_verify(&assertion_of(&xml), &cert, ASSERTION), "{xml}");
    assert!(
        xmlsec1_verify(&xml, &cert, "urn:oasis:names:tc:SAML:2.0:protocol:Response"),
        "signResponse signs the Response too"
    );
    assert!(xml.contains(&format!("<saml:Audience>{SP_ENTITY}</saml:Audience>")));
    // …then IdP-initiated SSO reuses the session: no login page, no InResponseTo.
    let idp = browser.get(&app.url(&format!("/samlp/{client_id}?RelayState=home"))).await;
    assert_eq!(idp.status, 200, "{}", idp.body);
    let (xml, relay) = posted_response(&idp.body);
    assert_eq!(relay.as_deref(), Some("home"));
    assert!(xmlsec1_verify(&assertion_of(&xml), &cert, ASSERTION));
    assert!(!xml.contains("InResponseTo"));
}

async fn bad_saml_input_is_refused_without_redirect(app: TestApp) {
    let client_id = saml_client(&app, json!({ "audience": SP_ENTITY })).await;
    let sso = app.url(&format!("/samlp/{client_id}"));
    let browser = Browser::new();
    let get = |query: String| {
        let url = format!("{sso}?{query}");
        let browser = &browser;
        async move { browser.get(&url).await }
    };
    let xxe = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a">&e;</samlp:AuthnRequest>"#;
    let cases = [
        ("bad base64", "SAMLRequest=%25%25%25".to_owned()),
        ("bad deflate", format!("SAMLRequest={}", crate::users::urlencode(&STANDARD.encode("not deflate")))),
        ("XML with a DOCTYPE", format!("SAMLRequest={}", crate::users::urlencode(&deflate_b64(xxe)))),
        ("oversized", format!("SAMLRequest={}", "A".repeat(40 * 1024))),
        (
            "unregistered ACS",
            format!(
                "SAMLRequest={}",
                crate::users::urlencode(&deflate_b64(&authn_request("_x", "https://evil.example/acs")))
            ),
        ),
    ];
    for (name, query) in cases {
        let page = get(query).await;
        assert!(page.status >= 400, "{name}: {} {}", page.status, page.body);
        assert!(page.location.is_none(), "{name}: never a redirect");
        assert!(!page.body.contains("SAMLResponse"), "{name}: never a response to an untrusted ACS");
    }
    let unknown = browser.get(&app.url("/samlp/no-such-client")).await;
    assert!(unknown.status >= 400 && unknown.location.is_none());

    // An unknown NameID format is a SAML error, delivered to the registered ACS.
    let request = authn_request("_fmt", ACS).replace("nameid-format:emailAddress", "nameid-format:kerberos");
    let page = get(format!("SAMLRequest={}", crate::users::urlencode(&deflate_b64(&request)))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (xml, _) = posted_response(&page.body);
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"), "{xml}");
    assert!(!xml.contains("<saml:Assertion"));
}

async fn samlp_impersonation_posts_a_response_naming_both(app: TestApp) {
    let target = user(&app).await;
    let client_id = saml_client(&app, json!({})).await;
    let (cert, _) = idp_certificate(&app, &client_id).await;
    let mint = |body: Value| {
        let request =
            app.http
                .post(app.url(&format!(
                    "/users/{}/impersonate",
                    crate::users::urlencode(target["user_id"].as_str().unwrap())
                )))
                .bearer_auth(&app.token)
                .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, url) = mint(json!({
        "protocol": "samlp",
        "impersonator_id": app.admin_user_id,
        "client_id": client_id,
        "reason": "SUPPORT-9",
        "additionalParameters": { "state": "relay-me" },
    }))
    .await;
    assert_eq!(status, 200, "{url}");
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (xml, relay) = posted_response(&page.body);
    assert_eq!(relay.as_deref(), Some("relay-me"));
    assert!(xmlsec1_verify(&xml, &cert, ASSERTION), "{xml}");
    assert!(!xml.contains("InResponseTo"), "an IdP-initiated response");
    assert!(xml.contains(target["user_id"].as_str().unwrap()), "the target is the subject");
    assert!(xml.contains(r#"<saml:Attribute Name="urn:guise:impersonated" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri"><saml:AttributeValue>true</saml:AttributeValue>"#), "{xml}");
    assert!(xml.contains(&format!("<saml:AttributeValue>{}</saml:AttributeValue>", app.admin_user_id)));
    assert!(xml.contains("<saml:AttributeValue>admin@example.com</saml:AttributeValue>"));

    // Replayed and tampered URLs are refused with no assertion.
    let replay = Browser::new().get(&url).await;
    assert_eq!(replay.status, 401);
    assert!(!replay.body.contains("SAMLResponse"));
    let tampered = Browser::new().get(&url.replace("protocol=samlp", "protocol=oauth2")).await;
    assert_eq!(tampered.status, 401);
    assert!(tampered.body.contains("Bad mac"));

    // A client without SAML settings cannot receive a samlp impersonation.
    let (plain, _) = crate::browser::web_client(&app, json!({ "allow_impersonation": true })).await;
    let (status, body) =
        mint(json!({ "protocol": "samlp", "impersonator_id": app.admin_user_id, "client_id": plain })).await;
    assert_eq!(status, 400, "{body}");
    let issued = app.logs_of_type("guise_saml_response").await;
    assert_eq!(issued[0]["on_behalf_of"], app.admin_user_id.as_str());
}

/// A SAML client with a registered logout callback (`addons.samlp.logout.callback`),
/// `samlp` addon settings merged from `samlp`, and a browser signed in to it over
/// IdP-initiated SSO; returns the client, the browser and the posted SAMLResponse.
pub async fn signed_in_with_slo(app: &TestApp, callback: &str, samlp: Value) -> (String, Browser, String) {
    user(app).await;
    let mut settings = json!({ "logout": { "callback": callback } });
    for (k, v) in samlp.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let client_id = saml_client(app, settings).await;
    // Like every redirect, the logout callback must be a registered URL of the client.
    let (status, _) =
        app.patch(&format!("/api/v2/clients/{client_id}"), &json!({ "allowed_logout_urls": [callback] })).await;
    assert_eq!(status, 200);
    let browser = Browser::new();
    let start = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let done = browser.submit_login(app, start.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let posted = browser.follow(app, done).await;
    assert_eq!(posted.status, 200);
    let (xml, _) = posted_response(&posted.body);
    (client_id, browser, xml)
}

async fn single_logout_ends_the_session(app: TestApp) {
    let callback = "http://127.0.0.1:9/saml/slo";
    let (client_id, browser, _) = signed_in_with_slo(&app, callback, json!({})).await;

    let logout_request = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_logout1" Version="2.0" IssueInstant="2026-11-25T00:00:00Z"><saml:Issuer>{SP_ENTITY}</saml:Issuer><saml:NameID>x</saml:NameID></samlp:LogoutRequest>"#
    );
    let url = format!(
        "{}?SAMLRequest={}&RelayState=bye",
        app.url(&format!("/samlp/{client_id}/logout")),
        crate::users::urlencode(&deflate_b64(&logout_request))
    );
    let out = browser.get(&url).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let location = url::Url::parse(out.location.as_deref().unwrap()).unwrap();
    assert!(location.as_str().starts_with(callback));
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["RelayState"], "bye");
    let compressed = STANDARD.decode(&pairs["SAMLResponse"]).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut flate2::read::DeflateDecoder::new(compressed.as_slice()), &mut xml).unwrap();
    assert!(xml.contains(r#"InResponseTo="_logout1""#) && xml.contains("status:Success"), "{xml}");

    // The guise session is over: IdP-initiated SSO asks for a login again.
    let again = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    assert_eq!(again.status, 302);
    assert!(again.location.unwrap().starts_with("/login"));
    assert!(!app.logs_of_type("slo").await.is_empty());
}

/// A LogoutRequest with `SessionIndex` values is for those sessions (SAML core
/// §3.7.3.2): one naming nobody's session here leaves the browser's alone, and one naming
/// the same user's earlier session (they signed in again since) logs the browser out.
async fn single_logout_ends_only_the_session_it_names(app: TestApp) {
    let callback = "http://127.0.0.1:9/saml/slo";
    let (client_id, browser, xml) = signed_in_with_slo(&app, callback, json!({ "audience": SP_ENTITY })).await;
    let session_index =
        |xml: &str| xml.split("SessionIndex=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let first = session_index(&xml);
    let logout = |id: &str, session_index: &str| {
        let request = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-11-25T00:00:00Z"><saml:Issuer>{SP_ENTITY}</saml:Issuer><saml:NameID>{USER_EMAIL}</saml:NameID><samlp:SessionIndex>{session_index}</samlp:SessionIndex></samlp:LogoutRequest>"#
        );
        let encoded = crate::users::urlencode(&deflate_b64(&request));
        format!("{}?SAMLRequest={encoded}", app.url(&format!("/samlp/{client_id}/logout")))
    };
    // A session that is not here: answered to the callback, and this session stays.
    let other = browser.get(&logout("_logout_other", "not-a-session-here")).await;
    assert_eq!(other.status, 302, "{}", other.body);
    assert!(other.location.as_deref().unwrap().starts_with(callback));
    let still = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    assert_eq!(still.status, 200, "still signed in: {:?}", still.location);
    assert!(app.logs_of_type("slo").await.is_empty(), "nothing ended");

    // The user signs in again (ForceAuthn): a new session in this browser.
    let forced = authn_request("_req_forced", ACS).replace(r#"Version="2.0""#, r#"Version="2.0" ForceAuthn="true""#);
    let url = format!(
        "{}?SAMLRequest={}",
        app.url(&format!("/samlp/{client_id}")),
        crate::users::urlencode(&deflate_b64(&forced))
    );
    let again = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(again.status, 200, "{}", again.body);
    let second = session_index(&posted_response(&again.body).0);
    assert_ne!(first, second, "a forced login opens a new session");

    // The SP logs out of the first sign-in: the same user, so the browser is logged out.
    let out = browser.get(&logout("_logout_first", &first)).await;
    assert_eq!(out.status, 302, "{}", out.body);
    assert!(out.location.as_deref().unwrap().starts_with(callback));
    let after = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    assert_eq!(after.status, 302);
    assert!(after.location.unwrap().starts_with("/login"));
    assert!(!app.logs_of_type("slo").await.is_empty());
}
