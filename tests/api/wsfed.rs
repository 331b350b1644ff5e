//! WS-Federation: sign-in end to end with the assertion verified by `xmlsec1` and the
//! RSTR checked for audience, lifetime and reply; signed metadata; sign-out; bad input
//! refused with an error page; `wsfed` and `wsfed-rms` impersonation.

use crate::both_backends;
use crate::browser::{Browser, USER_EMAIL, USER_PASSWORD, hidden, user};
use crate::helpers::{TestApp, split};
use crate::saml::{between, xmlsec1_verify};
use chrono::DateTime;
use serde_json::{Value, json};

pub const REPLY: &str = "http://127.0.0.1:9/wsfed/reply";
const REALM: &str = "urn:my-wsfed-app";
const SAML11: &str = "urn:oasis:names:tc:SAML:1.0:assertion:Assertion";

both_backends!(
    sign_in_returns_a_signed_saml11_token_to_the_reply,
    saml20_tokens_metadata_and_sign_out,
    bad_wsfed_input_gets_an_error_page,
    wsfed_and_rms_impersonation,
);

async fn wsfed_client(app: &TestApp, wsfed: Value) -> String {
    let (status, client) = app
        .post(
            "/api/v2/clients",
            &json!({
                "name": "WS-Fed app",
                "callbacks": [REPLY],
                "allowed_logout_urls": ["http://127.0.0.1:9/bye"],
                "grant_types": ["authorization_code"],
                "allow_impersonation": true,
                "addons": { "wsfed": wsfed },
            }),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    client["client_id"].as_str().unwrap().to_owned()
}

async fn certificate(app: &TestApp) -> String {
    let (_, xml) = {
        let response =
            app.http.get(app.url("/wsfed/FederationMetadata/2007-06/FederationMetadata.xml")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        ((), response.text().await.unwrap())
    };
    between(&xml, "<ds:X509Certificate>", "</ds:X509Certificate>").to_owned()
}

/// The posted sign-in form: (wa, wresult, wctx).
pub fn sign_in_form(html: &str) -> (String, String, Option<String>) {
    let unescape = |s: String| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&amp;", "&")
    };
    let wctx = html.contains("name=\"wctx\"").then(|| unescape(hidden(html, "wctx")));
    (hidden(html, "wa"), unescape(hidden(html, "wresult")), wctx)
}

async fn sign_in_returns_a_signed_saml11_token_to_the_reply(app: TestApp) {
    let grace = user(&app).await;
    let client_id = wsfed_client(&app, json!({ "realm": REALM })).await;
    let cert = certificate(&app).await;
    let url = format!("{}?wa=wsignin1.0&wtrealm={}&wctx=ctx-42", app.url(&format!("/wsfed/{client_id}")), REALM);
    let browser = Browser::new();
    let done = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains(&format!("action=\"{}\"", REPLY.replace('/', "&#x2f;"))),
        "posted to the registered reply only"
    );
    let (wa, rstr, wctx) = sign_in_form(&done.body);
    assert_eq!(wa, "wsignin1.0");
    assert_eq!(wctx.as_deref(), Some("ctx-42"));
    let token =
        format!("<saml1:Assertion {}</saml1:Assertion>", between(&rstr, "<saml1:Assertion ", "</saml1:Assertion>"));
    assert!(xmlsec1_verify(&token, &cert, SAML11), "{token}");
    assert!(!xmlsec1_verify(&token.replace(USER_EMAIL, "eve@example.com"), &cert, SAML11));
    assert!(rstr.contains(&format!("<wsa:Address>{REALM}</wsa:Address>")), "AppliesTo is the realm");
    assert!(token.contains(&format!("<saml1:Audience>{REALM}</saml1:Audience>")));
    assert!(token.contains(grace["user_id"].as_str().unwrap()));
    assert!(token.contains(
        r#"AttributeName="emailaddress" AttributeNamespace="http://schemas.xmlsoap.org/ws/2005/05/identity/claims""#
    ));
    let text_of = |tag: &str| {
        let inner = between(&rstr, &format!("<wsu:{tag}"), &format!("</wsu:{tag}>"));
        DateTime::parse_from_rfc3339(&inner[inner.find('>').unwrap() + 1..]).unwrap()
    };
    let (created, expires) = (text_of("Created"), text_of("Expires"));
    assert_eq!((expires - created).num_seconds(), 3600, "the configured lifetime");
    assert!(!app.logs_of_type("guise_wsfed_sign_in").await.is_empty());

    // The realm alone finds the client; a second sign-in reuses the session.
    let again = browser.get(&format!("{}?wa=wsignin1.0&wtrealm={REALM}", app.url("/wsfed"))).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("wresult"));
}

async fn saml20_tokens_metadata_and_sign_out(app: TestApp) {
    user(&app).await;
    let client_id = wsfed_client(&app, json!({ "tokenType": "urn:oasis:names:tc:SAML:2.0:assertion" })).await;
    let cert = certificate(&app).await;
    for path in [
        "/wsfed/FederationMetadata/2007-06/FederationMetadata.xml".to_owned(),
        format!("/wsfed/{client_id}/FederationMetadata/2007-06/FederationMetadata.xml"),
    ] {
        let xml = app.http.get(app.url(&path)).send().await.unwrap().text().await.unwrap();
        assert!(xml.contains("fed:SecurityTokenServiceType"));
        assert!(xmlsec1_verify(&xml, &cert, "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor"), "{path}: {xml}");
    }
    let browser = Browser::new();
    let url = format!("{}?wa=wsignin1.0&wtrealm={client_id}", app.url(&format!("/wsfed/{client_id}")));
    let done = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    let (_, rstr, _) = sign_in_form(&done.body);
    let token = format!("<saml:Assertion {}</saml:Assertion>", between(&rstr, "<saml:Assertion ", "</saml:Assertion>"));
    assert!(xmlsec1_verify(&token, &cert, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"), "{token}");
    assert!(token.contains(&format!("<saml:Audience>{client_id}</saml:Audience>")), "realm defaults to the client id");

    // Sign-out ends the session and returns to a registered address only.
    let out = browser
        .get(&format!("{}?wa=wsignout1.0&wreply=http://127.0.0.1:9/bye", app.url(&format!("/wsfed/{client_id}"))))
        .await;
    assert_eq!((out.status, out.location.as_deref()), (302, Some("http://127.0.0.1:9/bye")));
    let after = browser.get(&url).await;
    assert_eq!(after.status, 302, "logged out: back to the login page");
    assert!(after.location.unwrap().starts_with("/login"));
    let cleanup = browser.get(&format!("{}?wa=wsignoutcleanup1.0", app.url(&format!("/wsfed/{client_id}")))).await;
    assert_eq!(cleanup.status, 200);
}

async fn bad_wsfed_input_gets_an_error_page(app: TestApp) {
    let client_id = wsfed_client(&app, json!({ "realm": REALM })).await;
    let base = app.url(&format!("/wsfed/{client_id}"));
    let browser = Browser::new();
    let cases = [
        ("unknown realm", format!("{}?wa=wsignin1.0&wtrealm=urn:nobody", app.url("/wsfed"))),
        ("mismatched realm", format!("{base}?wa=wsignin1.0&wtrealm=urn:other")),
        ("unregistered wreply", format!("{base}?wa=wsignin1.0&wreply=https://evil.example/")),
        ("unknown wa", format!("{base}?wa=wattrribute1.0")),
        ("missing wa", base.clone()),
        ("oversized wctx", format!("{base}?wa=wsignin1.0&wctx={}", "x".repeat(4000))),
        ("unknown client", format!("{}?wa=wsignin1.0", app.url("/wsfed/no-such-client"))),
        ("unregistered sign-out reply", format!("{base}?wa=wsignout1.0&wreply=https://evil.example/")),
    ];
    for (name, url) in cases {
        let page = browser.get(&url).await;
        assert!(page.status >= 400, "{name}: {} {}", page.status, page.body);
        assert!(page.location.is_none(), "{name}: never a redirect");
        assert!(!page.body.contains("wresult"), "{name}");
    }
    // An over-long parameter is refused as such before any realm is looked up.
    let long_realm = format!("{}?wa=wsignin1.0&wtrealm={}", app.url("/wsfed"), "x".repeat(4000));
    let page = browser.get(&long_realm).await;
    assert!(page.status == 400 && page.body.contains("A parameter is too long"), "{} {}", page.status, page.body);
    let (status, _) = split(
        app.http.get(app.url("/wsfed/nope/FederationMetadata/2007-06/FederationMetadata.xml")).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

async fn wsfed_and_rms_impersonation(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let client_id = wsfed_client(&app, json!({ "realm": REALM })).await;
    let cert = certificate(&app).await;
    for protocol in ["wsfed", "wsfed-rms"] {
        let response = app
            .http
            .post(app.url(&format!("/users/{}/impersonate", crate::users::urlencode(target_id))))
            .bearer_auth(&app.token)
            .json(&json!({ "protocol": protocol, "impersonator_id": app.admin_user_id, "client_id": client_id, "additionalParameters": { "state": "ctx", "reason": "WSFED-1" } }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let url = response.text().await.unwrap();
        let page = Browser::new().get(&url).await;
        assert_eq!(page.status, 200, "{protocol}: {}", page.body);
        let (_, rstr, wctx) = sign_in_form(&page.body);
        assert_eq!(wctx.as_deref(), Some("ctx"));
        let token =
            format!("<saml1:Assertion {}</saml1:Assertion>", between(&rstr, "<saml1:Assertion ", "</saml1:Assertion>"));
        assert!(xmlsec1_verify(&token, &cert, SAML11), "{protocol}: {token}");
        assert!(token.contains(r#"AttributeName="impersonated" AttributeNamespace="http://schemas.guise.dev/claims"><saml1:AttributeValue>true"#), "{token}");
        assert!(token.contains(&format!("<saml1:AttributeValue>{}</saml1:AttributeValue>", app.admin_user_id)));
        if protocol == "wsfed-rms" {
            assert!(
                token.contains(&format!(r#"nameid-format:emailAddress">{USER_EMAIL}</saml1:NameIdentifier>"#)),
                "{token}"
            );
            assert!(token.contains(r#"AttributeName="UPN" AttributeNamespace="http://schemas.xmlsoap.org/claims""#));
        } else {
            assert!(token.contains(&format!(">{target_id}</saml1:NameIdentifier>")));
        }
        let replay = Browser::new().get(&url).await;
        assert_eq!(replay.status, 401);
        let tampered = Browser::new().get(&url.replace("client_id=", "client_id=x")).await;
        assert!(tampered.body.contains("Bad mac"));
    }
}
