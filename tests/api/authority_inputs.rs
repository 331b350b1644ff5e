//! Authority containment at the inputs: SAML and WS-Fed attributes come only from fields
//! an administrator controls; client URLs a browser is sent to are https (or loopback
//! http, or a native app's private-use scheme), never `javascript:` or `data:`; bewit
//! URLs are refused beyond the longest lifetime plus the clock skew, and replay records
//! outlive `exp` by the skew.

use crate::both_backends;
use crate::browser::{Browser, CALLBACK, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, user, web_client};
use crate::helpers::{TestApp, split};
use crate::saml::posted_response;
use crate::users::urlencode;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(users_cannot_write_their_own_saml_attributes, users_cannot_write_their_own_wsfed_claims,);

// ---------------------------------------------------------------------------------------
// Item: mapped attributes read administrator-controlled fields only.

/// What the user writes about themself, and what the administrator grants.
const SELF_ROLE: &str = "admin-by-self-7731";
const GRANTED_ROLE: &str = "viewer-granted-4410";

/// A user access token for the Management API (the code flow), from `browser`, which
/// keeps the user's guise session.
async fn user_api_token(app: &TestApp, browser: &Browser) -> String {
    let (client_id, secret) = web_client(app, json!({ "name": "Self-service app" })).await;
    let audience = app.management_audience();
    let url = authorize_url(
        app,
        &[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("audience", &audience),
        ],
    );
    let done = browser.login_via(app, &url, USER_EMAIL, USER_PASSWORD).await;
    let code = callback_params(done.location.as_deref().unwrap())["code"].clone();
    let (status, tokens) = split(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The user writes `role` into their own user_metadata through `PATCH /api/v2/me`.
async fn user_claims_a_role(app: &TestApp, browser: &Browser) -> String {
    let grace = user(app).await;
    let token = user_api_token(app, browser).await;
    let (status, me) = app
        .send_as(&token, Method::PATCH, "/api/v2/me", Some(&json!({ "user_metadata": { "role": SELF_ROLE } })))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_metadata"]["role"], SELF_ROLE);
    grace["user_id"].as_str().unwrap().to_owned()
}

async fn admin_grants_a_role(app: &TestApp, user_id: &str) {
    let (status, body) = app
        .patch(&format!("/api/v2/users/{}", urlencode(user_id)), &json!({ "app_metadata": { "role": GRANTED_ROLE } }))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The text of the first AttributeValue of the attribute whose `marker` (e.g.
/// ` Name="…"`) appears in `xml`; `None` when there is no such attribute.
fn attribute_value(xml: &str, marker: &str) -> Option<String> {
    let at = xml.find(marker)? + marker.len();
    let rest = &xml[at..];
    let value_tag = rest.find("AttributeValue")?;
    let open = rest[value_tag..].find('>')? + value_tag + 1;
    let close = rest[open..].find('<')? + open;
    Some(rest[open..close].to_owned())
}

const ROLE_ATTR: &str = "https://claims.example.com/role";
const APP_ROLE_ATTR: &str = "https://claims.example.com/app_role";
const SELF_ROLE_ATTR: &str = "https://claims.example.com/self_role";

/// Mappings naming `role` bare, as `app_metadata.role` and as `user_metadata.role`.
fn role_mappings() -> Value {
    json!({
        "user_id": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
        "role": ROLE_ATTR,
        "app_metadata.role": APP_ROLE_ATTR,
        "user_metadata.role": SELF_ROLE_ATTR,
    })
}

async fn saml_assertion(app: &TestApp, browser: &Browser, client_id: &str) -> String {
    // IdP-initiated SSO on the browser's existing session.
    let page = browser.get(&app.url(&format!("/samlp/{client_id}"))).await;
    let page = browser.follow(app, page).await;
    assert_eq!(page.status, 200, "{}", page.body);
    posted_response(&page.body).0
}

async fn users_cannot_write_their_own_saml_attributes(app: TestApp) {
    let browser = Browser::new();
    let user_id = user_claims_a_role(&app, &browser).await;
    let client_id = crate::saml::saml_client(&app, json!({ "mappings": role_mappings() })).await;

    let xml = saml_assertion(&app, &browser, &client_id).await;
    let saml2 = |attr: &str| attribute_value(&xml, &format!(" Name=\"{attr}\""));
    // A bare `role` never falls back to user_metadata: the user's own words are not asserted…
    assert_eq!(saml2(ROLE_ATTR), None, "{xml}");
    assert_eq!(saml2(APP_ROLE_ATTR), None, "{xml}");
    assert_eq!(xml.matches(SELF_ROLE).count(), 1, "only under the explicit mapping: {xml}");
    // …unless a mapping names user_metadata explicitly.
    assert_eq!(saml2(SELF_ROLE_ATTR).as_deref(), Some(SELF_ROLE), "{xml}");

    // What the administrator sets in app_metadata is carried, bare or explicit.
    admin_grants_a_role(&app, &user_id).await;
    let xml = saml_assertion(&app, &browser, &client_id).await;
    let saml2 = |attr: &str| attribute_value(&xml, &format!(" Name=\"{attr}\""));
    assert_eq!(saml2(ROLE_ATTR).as_deref(), Some(GRANTED_ROLE), "{xml}");
    assert_eq!(saml2(APP_ROLE_ATTR).as_deref(), Some(GRANTED_ROLE), "{xml}");
    assert_eq!(saml2(SELF_ROLE_ATTR).as_deref(), Some(SELF_ROLE), "{xml}");

    // The default mappings carry neither metadata.
    let defaults = crate::saml::saml_client(&app, json!({})).await;
    let xml = saml_assertion(&app, &browser, &defaults).await;
    assert!(!xml.contains(SELF_ROLE) && !xml.contains(GRANTED_ROLE), "{xml}");
}

async fn wsfed_token(app: &TestApp, browser: &Browser, client_id: &str, realm: &str) -> String {
    let page = browser.get(&format!("{}?wa=wsignin1.0&wtrealm={realm}", app.url(&format!("/wsfed/{client_id}")))).await;
    let page = browser.follow(app, page).await;
    assert_eq!(page.status, 200, "{}", page.body);
    crate::wsfed::sign_in_form(&page.body).1
}

async fn wsfed_role_client(app: &TestApp, realm: &str) -> String {
    let (status, client) = app
        .post(
            "/api/v2/clients",
            &json!({
                "name": "WS-Fed roles",
                "callbacks": [crate::wsfed::REPLY],
                "grant_types": ["authorization_code"],
                "addons": { "wsfed": { "realm": realm, "mappings": role_mappings() } },
            }),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    client["client_id"].as_str().unwrap().to_owned()
}

async fn users_cannot_write_their_own_wsfed_claims(app: TestApp) {
    let browser = Browser::new();
    let user_id = user_claims_a_role(&app, &browser).await;
    let realm = "urn:roles-app";
    let client_id = wsfed_role_client(&app, realm).await;

    // SAML 1.1 splits a claim URI into AttributeNamespace and AttributeName.
    let rstr = wsfed_token(&app, &browser, &client_id, realm).await;
    let claim = |name: &str| attribute_value(&rstr, &format!(" AttributeName=\"{name}\""));
    assert_eq!(claim("role"), None, "{rstr}");
    assert_eq!(claim("app_role"), None, "{rstr}");
    assert_eq!(claim("self_role").as_deref(), Some(SELF_ROLE), "{rstr}");
    assert_eq!(rstr.matches(SELF_ROLE).count(), 1, "{rstr}");

    admin_grants_a_role(&app, &user_id).await;
    let rstr = wsfed_token(&app, &browser, &client_id, realm).await;
    let claim = |name: &str| attribute_value(&rstr, &format!(" AttributeName=\"{name}\""));
    assert_eq!(claim("role").as_deref(), Some(GRANTED_ROLE), "{rstr}");
    assert_eq!(claim("app_role").as_deref(), Some(GRANTED_ROLE), "{rstr}");
    assert_eq!(claim("self_role").as_deref(), Some(SELF_ROLE), "{rstr}");
}

