//! Authority containment in the browser protocols: what a request from another site may
//! make guise do. A SAML assertion's Audience is the registered entity id, never the
//! AuthnRequest's Issuer (and a request from another entity is refused); a logout that
//! nobody can vouch for ends nothing — `/oidc/logout` without an `id_token_hint` for the
//! session asks the user (CSRF-checked form), `wsignout1.0` checks `wreply` before
//! ending the session, and an SP with a `signingCert` must sign its LogoutRequests.

use crate::both_backends;
use crate::browser::{
    Browser, CALLBACK, LOGOUT_URL, Page, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, hidden, user,
    web_client,
};
use crate::helpers::{TestApp, split};
use crate::saml::{ACS, SP_ENTITY, deflate_b64, idp_certificate, posted_response, saml_client, xmlsec1_verify};
use crate::users::urlencode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::process::Command;

both_backends!(
    saml_request_issuer_must_be_the_registered_entity_id,
    saml_default_audience_is_derived_from_the_client_id,
    bare_get_logout_asks_and_only_a_csrf_checked_post_ends_the_session,
    a_valid_hint_for_the_session_logs_out_and_redirects_to_a_registered_url,
    wsignout_with_an_unregistered_wreply_keeps_the_session,
    a_signing_cert_sp_must_sign_its_logout_requests,
);

const ATTACKER_ENTITY: &str = "https://attacker.example/metadata";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
const REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";
const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

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

// --- OIDC logout ---------------------------------------------------------------------

fn login_url(app: &TestApp, client_id: &str, prompt: Option<&str>) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("state", "s1"),
    ];
    if let Some(prompt) = prompt {
        params.push(("prompt", prompt));
    }
    authorize_url(app, &params)
}

/// Log `email` in through `/authorize`; returns the ID token.
async fn login(app: &TestApp, browser: &Browser, client: &(String, String), email: &str, password: &str) -> String {
    let done = browser.login_via(app, &login_url(app, &client.0, None), email, password).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let code = callback_params(done.location.as_deref().unwrap())["code"].clone();
    let (status, body) = split(
        reqwest::Client::new()
            .post(app.url("/oauth/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id_token"].as_str().unwrap().to_owned()
}

/// Whether the browser still has a live session: `prompt=none` yields a code.
async fn session_alive(app: &TestApp, browser: &Browser, client_id: &str) -> bool {
    let page = browser.get(&login_url(app, client_id, Some("none"))).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let params = callback_params(page.location.as_deref().unwrap());
    match params.get("error").map(String::as_str) {
        None => params.contains_key("code"),
        Some("login_required") => false,
        Some(other) => panic!("unexpected error {other}"),
    }
}

fn logout_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/oidc/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/").replace("&amp;", "&").replace("&quot;", "\"").replace("&#x27;", "'")
}

/// The confirmation page: 200, a form that POSTs back, no redirect.
#[track_caller]
fn assert_confirmation(page: &Page) -> String {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("<form method=\"post\" action=\"/oidc/logout\">"), "{}", page.body);
    hidden(&page.body, "csrf")
}

async fn bare_get_logout_asks_and_only_a_csrf_checked_post_ends_the_session(app: TestApp) {
    user(&app).await;
    let client = web_client(&app, json!({})).await;
    let browser = Browser::new();
    login(&app, &browser, &client, USER_EMAIL, USER_PASSWORD).await;

    // A bare GET (a link or an image on any site) only asks.
    let page = browser.get(&app.url("/oidc/logout")).await;
    assert_confirmation(&page);
    assert!(session_alive(&app, &browser, &client.0).await, "a bare GET must not end the session");

    // A POST without the form's token asks again; a wrong token is refused.
    let no_token = browser.post(&app.url("/oidc/logout"), &[]).await;
    assert_confirmation(&no_token);
    assert!(session_alive(&app, &browser, &client.0).await);
    // (The cookie holds the page's token: a form value that differs from it is refused.)
    let forged = browser.post(&app.url("/oidc/logout"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.location.is_none());
    assert!(session_alive(&app, &browser, &client.0).await);
    assert!(app.logs_of_type("slo").await.is_empty(), "nothing was logged out");

    // The confirmation form carries the (validated) redirect and state through.
    let page = browser
        .get(&logout_url(
            &app,
            &[("client_id", &client.0), ("post_logout_redirect_uri", LOGOUT_URL), ("state", "bye-1")],
        ))
        .await;
    let csrf = assert_confirmation(&page);
    assert!(session_alive(&app, &browser, &client.0).await);
    let fields = ["client_id", "post_logout_redirect_uri", "state"].map(|name| unescape(&hidden(&page.body, name)));
    let done = browser
        .post(
            &app.url("/oidc/logout"),
            &[
                ("csrf", &csrf),
                ("client_id", &fields[0]),
                ("post_logout_redirect_uri", &fields[1]),
                ("state", &fields[2]),
            ],
        )
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(format!("{LOGOUT_URL}?state=bye-1").as_str()));
    assert!(!session_alive(&app, &browser, &client.0).await, "the confirmed logout ended the session");
    let logouts = app.logs_of_type("slo").await;
    assert_eq!(logouts.len(), 1, "{logouts:?}");
    assert_eq!(logouts[0]["client_id"], client.0.as_str());

    // A bare confirmation (no client) ends the session and shows the logged-out page.
    login(&app, &browser, &client, USER_EMAIL, USER_PASSWORD).await;
    let csrf = assert_confirmation(&browser.get(&app.url("/oidc/logout")).await);
    let done = browser.post(&app.url("/oidc/logout"), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("You are logged out"), "{}", done.body);
    assert!(!session_alive(&app, &browser, &client.0).await);
}

async fn a_valid_hint_for_the_session_logs_out_and_redirects_to_a_registered_url(app: TestApp) {
    user(&app).await;
    let mallory = "mallory@example.com";
    app.create_user(mallory).await;
    let client = web_client(&app, json!({})).await;
    let browser = Browser::new();
    let id_token = login(&app, &browser, &client, USER_EMAIL, USER_PASSWORD).await;
    let other = Browser::new();
    let mallory_token = login(&app, &other, &client, mallory, "long enough password").await;

    // Another session's ID token (valid, ours) does not vouch for this session.
    let page = browser
        .get(&logout_url(
            &app,
            &[("id_token_hint", &mallory_token), ("post_logout_redirect_uri", LOGOUT_URL), ("state", "x")],
        ))
        .await;
    assert_confirmation(&page);
    assert!(session_alive(&app, &browser, &client.0).await);
    // A forged hint, and an unregistered redirect, are refused with the session kept.
    for params in [
        [("id_token_hint", "not.a.jwt"), ("post_logout_redirect_uri", LOGOUT_URL)],
        [("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", "https://evil.example/")],
    ] {
        let page = browser.get(&logout_url(&app, &params)).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.location.is_none());
    }
    assert!(session_alive(&app, &browser, &client.0).await);

    // This session's own hint: logged out at once, to the registered URL with the state.
    let done = browser
        .get(&logout_url(
            &app,
            &[("id_token_hint", &id_token), ("post_logout_redirect_uri", LOGOUT_URL), ("state", "xyz")],
        ))
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(format!("{LOGOUT_URL}?state=xyz").as_str()));
    assert!(!session_alive(&app, &browser, &client.0).await);
    assert!(session_alive(&app, &other, &client.0).await, "the other user's session is untouched");
}

// --- WS-Federation sign-out ----------------------------------------------------------

const WSFED_REPLY: &str = "http://127.0.0.1:9/wsfed/reply";
const WSFED_BYE: &str = "http://127.0.0.1:9/bye";

async fn wsignout_with_an_unregistered_wreply_keeps_the_session(app: TestApp) {
    user(&app).await;
    let (status, wsfed) = app
        .post(
            "/api/v2/clients",
            &json!({
                "name": "WS-Fed app",
                "callbacks": [WSFED_REPLY],
                "allowed_logout_urls": [WSFED_BYE],
                "grant_types": ["authorization_code"],
                "addons": { "wsfed": {} },
            }),
        )
        .await;
    assert_eq!(status, 201, "{wsfed}");
    let wsfed_id = wsfed["client_id"].as_str().unwrap().to_owned();
    let client = web_client(&app, json!({})).await;
    let base = app.url(&format!("/wsfed/{wsfed_id}"));
    let browser = Browser::new();
    let signed_in = browser.login_via(&app, &format!("{base}?wa=wsignin1.0"), USER_EMAIL, USER_PASSWORD).await;
    assert!(signed_in.body.contains("wresult"), "{}", signed_in.body);

    for wa in ["wsignout1.0", "wsignoutcleanup1.0"] {
        let refused = browser.get(&format!("{base}?wa={wa}&wreply={}", urlencode("https://evil.example/"))).await;
        assert_eq!(refused.status, 400, "{wa}: {}", refused.body);
        assert!(refused.location.is_none(), "{wa}: never a redirect");
        // The session is still usable, by OIDC and by WS-Fed.
        assert!(session_alive(&app, &browser, &client.0).await, "{wa}: the session survives");
        let again = browser.get(&format!("{base}?wa=wsignin1.0")).await;
        assert!(again.status == 200 && again.body.contains("wresult"), "{wa}: {}", again.body);
    }
    assert!(app.logs_of_type("slo").await.is_empty());

    let out = browser.get(&format!("{base}?wa=wsignout1.0&wreply={}", urlencode(WSFED_BYE))).await;
    assert_eq!((out.status, out.location.as_deref()), (302, Some(WSFED_BYE)));
    assert!(!session_alive(&app, &browser, &client.0).await);
}

// --- SAML single logout --------------------------------------------------------------

/// A fresh SP key pair: (key PEM path, certificate PEM).
fn sp_key_pair(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let (key, cert) = (dir.join("sp.key"), dir.join("sp.crt"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sp.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (scripts/ensure-test-tools)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (key, std::fs::read_to_string(&cert).unwrap())
}

/// RSA-SHA256 signature of `data` with the PEM key at `key`, base64.
fn sign(key: &std::path::Path, data: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data");
    std::fs::write(&input, data).unwrap();
    let output = Command::new("openssl").args(["dgst", "-sha256", "-sign"]).arg(key).arg(&input).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    STANDARD.encode(output.stdout)
}

fn logout_request(id: &str) -> String {
    logout_request_from(id, SP_ENTITY, chrono::Utc::now())
}

fn logout_request_from(id: &str, issuer: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{at}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID>x</saml:NameID></samlp:LogoutRequest>"#
    )
}

/// Whether IdP-initiated SSO answers at once (a live session) rather than asking to log in.
async fn saml_session_alive(app: &TestApp, browser: &Browser, client_id: &str) -> bool {
    let page = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    match page.status {
        200 => {
            assert!(page.body.contains("SAMLResponse"), "{}", page.body);
            true
        }
        302 => {
            assert!(page.location.as_deref().unwrap().starts_with("/login"), "{:?}", page.location);
            false
        }
        other => panic!("unexpected {other}: {}", page.body),
    }
}

async fn a_signing_cert_sp_must_sign_its_logout_requests(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert_pem) = sp_key_pair(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (other_key, _) = sp_key_pair(other_dir.path());
    let callback = "http://127.0.0.1:9/saml/slo";
    let settings = json!({ "audience": SP_ENTITY, "signingCert": cert_pem });
    let (client_id, browser, _) = crate::saml::signed_in_with_slo(&app, callback, settings).await;
    assert!(saml_session_alive(&app, &browser, &client_id).await);

    let endpoint = app.url(&format!("/samlp/{client_id}/logout"));
    let signed_of = |xml: &str, relay: &str| {
        format!(
            "SAMLRequest={}&RelayState={}&SigAlg={}",
            urlencode(&deflate_b64(xml)),
            urlencode(relay),
            urlencode(RSA_SHA256)
        )
    };
    let signed_part = |relay: &str| signed_of(&logout_request("_lo1"), relay);
    // Validly signed, yet not this SP's, not recent: refused too.
    let foreign = signed_of(&logout_request_from("_lo2", "urn:another-sp", chrono::Utc::now()), "bye");
    let stale =
        signed_of(&logout_request_from("_lo3", SP_ENTITY, chrono::Utc::now() - chrono::Duration::hours(1)), "bye");
    let query = signed_part("bye");
    let good_signature = sign(&key, &query);
    let refused: Vec<(&str, String)> = vec![
        ("no request at all", endpoint.clone()),
        (
            "unsigned",
            format!("{endpoint}?SAMLRequest={}&RelayState=bye", urlencode(&deflate_b64(&logout_request("_lo1")))),
        ),
        ("signed by another key", format!("{endpoint}?{query}&Signature={}", urlencode(&sign(&other_key, &query)))),
        (
            "signature of another message",
            format!("{endpoint}?{}&Signature={}", signed_part("elsewhere"), urlencode(&good_signature)),
        ),
        ("another SP's Issuer", format!("{endpoint}?{foreign}&Signature={}", urlencode(&sign(&key, &foreign)))),
        ("an old IssueInstant", format!("{endpoint}?{stale}&Signature={}", urlencode(&sign(&key, &stale)))),
    ];
    for (name, url) in refused {
        let page = browser.get(&url).await;
        assert_eq!(page.status, 400, "{name}: {}", page.body);
        assert!(page.location.is_none(), "{name}: never a redirect");
        assert!(!page.body.contains("SAMLResponse"), "{name}");
        assert!(saml_session_alive(&app, &browser, &client_id).await, "{name}: the session survives");
    }
    assert!(app.logs_of_type("slo").await.is_empty());

    // Properly signed: the session ends and the LogoutResponse goes to the callback.
    let out = browser.get(&format!("{endpoint}?{query}&Signature={}", urlencode(&good_signature))).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let location = out.location.unwrap();
    assert!(location.starts_with(callback), "{location}");
    assert_eq!(callback_params(&location)["RelayState"], "bye");
    assert!(!saml_session_alive(&app, &browser, &client_id).await);
    assert_eq!(app.logs_of_type("slo").await.len(), 1);

    // The same signed request again, against a new session: used once, refused now.
    let start = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let done = browser.submit_login(&app, start.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    let posted = browser.follow(&app, done).await;
    assert_eq!(posted.status, 200);
    let replay = browser.get(&format!("{endpoint}?{query}&Signature={}", urlencode(&good_signature))).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert!(saml_session_alive(&app, &browser, &client_id).await, "a replayed LogoutRequest ends nothing");

    // Signed and naming this session (SessionIndex), but arriving in another browser
    // where the same user signed in as well: both sessions of that user end.
    let (xml, _) = crate::saml::posted_response(&posted.body);
    let sid = xml.split("SessionIndex=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let other = Browser::new();
    let start = other.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let done = other.submit_login(&app, start.location.as_deref().unwrap(), USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(other.follow(&app, done).await.status, 200);
    let named = logout_request("_lo4").replace(
        "</samlp:LogoutRequest>",
        &format!("<samlp:SessionIndex>{sid}</samlp:SessionIndex></samlp:LogoutRequest>"),
    );
    let query = signed_of(&named, "bye");
    let out = other.get(&format!("{endpoint}?{query}&Signature={}", urlencode(&sign(&key, &query)))).await;
    assert_eq!(out.status, 302, "{}", out.body);
    assert!(!saml_session_alive(&app, &other, &client_id).await, "the browser's own session ended");
    assert!(!saml_session_alive(&app, &browser, &client_id).await, "the named session ended");
}
