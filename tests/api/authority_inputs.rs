//! Authority containment at the inputs: SAML and WS-Fed attributes come only from fields
//! an administrator controls; client URLs a browser is sent to are https (or loopback
//! http, or a native app's private-use scheme), never `javascript:` or `data:`; bewit
//! URLs are refused beyond the longest lifetime plus the clock skew, and replay records
//! outlive `exp` by the skew.

use crate::both_backends;
use crate::browser::{Browser, CALLBACK, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, user, web_client};
use crate::helpers::{Backend, TestApp, spawn_app_with, spawn_app_with_clock, split};
use crate::impersonation::{impersonation_client, mint_body, mint_with};
use crate::saml::posted_response;
use crate::users::urlencode;
use guise_core::bewit::MAX_CLOCK_SKEW_SECS;
use guise_core::clock::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

both_backends!(
    users_cannot_write_their_own_saml_attributes,
    users_cannot_write_their_own_wsfed_claims,
    unsafe_client_urls_are_refused_on_create_and_patch,
    safe_client_urls_are_accepted_on_create_and_patch,
    far_future_bewits_are_refused,
);

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
    // The self-service app is granted the Management API (no scope: /me needs none).
    let (status, grant) =
        app.post("/api/v2/client-grants", &json!({ "client_id": client_id, "audience": audience, "scope": [] })).await;
    assert_eq!(status, 201, "{grant}");
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

// ---------------------------------------------------------------------------------------
// Item: client URLs a browser is sent to.

const UNSAFE_URLS: &[&str] = &[
    "javascript:alert(document.domain)",
    "JAVASCRIPT:alert(1)",
    "JavaScript://app.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "urn:ietf:wg:oauth:2.0:oob",
    "http://evil.example/cb",
];

/// Each field a URL can be registered in, with the body placing `url` there.
fn url_fields(url: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("callbacks", json!({ "callbacks": [url] })),
        ("allowed_logout_urls", json!({ "allowed_logout_urls": [url] })),
        ("initiate_login_uri", json!({ "initiate_login_uri": url })),
        // A SAML SP's ACS URLs and a WS-Fed RP's reply addresses are its callbacks.
        ("callbacks", json!({ "callbacks": [url], "addons": { "samlp": {} } })),
        ("callbacks", json!({ "callbacks": [url], "addons": { "wsfed": {} } })),
        ("addons.samlp.recipient", json!({ "addons": { "samlp": { "recipient": url } } })),
        ("addons.samlp.destination", json!({ "addons": { "samlp": { "destination": url } } })),
        ("addons.samlp.logout.callback", json!({ "addons": { "samlp": { "logout": { "callback": url } } } })),
    ]
}

fn assert_refused_naming(status: u16, body: &Value, field: &str, url: &str) {
    assert_eq!(status, 400, "{field} = {url}: {body}");
    assert_eq!(body["statusCode"], 400, "{body}");
    assert_eq!(body["errorCode"], "invalid_body", "{body}");
    assert_eq!(body["error"], "Bad Request", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&format!("{field} ")), "the message names {field}: {body}");
}

async fn unsafe_client_urls_are_refused_on_create_and_patch(app: TestApp) {
    let (status, good) = app
        .post(
            "/api/v2/clients",
            &json!({ "name": "Stable", "callbacks": ["https://app.example.com/cb"], "addons": {} }),
        )
        .await;
    assert_eq!(status, 201, "{good}");
    let path = format!("/api/v2/clients/{}", good["client_id"].as_str().unwrap());

    for url in UNSAFE_URLS {
        for (field, fields) in url_fields(url) {
            let mut create = fields.clone();
            create["name"] = json!("Unsafe");
            let (status, body) = app.post("/api/v2/clients", &create).await;
            assert_refused_naming(status, &body, field, url);
            let (status, body) = app.patch(&path, &fields).await;
            assert_refused_naming(status, &body, field, url);
        }
    }
    // Nothing was created and nothing changed.
    let (_, clients) = app.get("/api/v2/clients?per_page=100").await;
    assert!(clients.as_array().unwrap().iter().all(|c| c["name"] != "Unsafe"), "{clients}");
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(unchanged["callbacks"], json!(["https://app.example.com/cb"]));
    assert_eq!(unchanged["addons"], json!({}));
    assert_eq!(unchanged["initiate_login_uri"], Value::Null);
}

async fn safe_client_urls_are_accepted_on_create_and_patch(app: TestApp) {
    let web =
        ["https://app.example.com/cb", "http://127.0.0.1:5000/cb", "http://localhost:3000/cb", "http://[::1]:8080/cb"];
    let native = ["com.example.app:/cb", "com.example.app:/oauth2redirect/example-provider"];
    let (status, client) = app.post("/api/v2/clients", &json!({ "name": "Safe" })).await;
    assert_eq!(status, 201, "{client}");
    let path = format!("/api/v2/clients/{}", client["client_id"].as_str().unwrap());
    for url in web.iter().chain(&native) {
        let private_use = native.contains(url);
        for (field, fields) in url_fields(url) {
            // Private-use schemes are for redirects to native apps; the other fields are web URLs.
            let web_only = !matches!(field, "callbacks" | "allowed_logout_urls");
            let mut create = fields.clone();
            create["name"] = json!("Safe");
            let (status, body) = app.post("/api/v2/clients", &create).await;
            let (patched, patch_body) = app.patch(&path, &fields).await;
            if private_use && web_only {
                assert_refused_naming(status, &body, field, url);
                assert_refused_naming(patched, &patch_body, field, url);
            } else {
                assert_eq!(status, 201, "{field} = {url}: {body}");
                assert_eq!(patched, 200, "{field} = {url}: {patch_body}");
            }
        }
    }
}

/// `allow_insecure_http_urls` (development only) accepts http for any host, and nothing
/// else: the scheme rules still hold.
async fn insecure_http_setting(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.allow_insecure_http_urls = true).await;
    let (status, body) = app
        .post(
            "/api/v2/clients",
            &json!({
                "name": "Dev",
                "callbacks": ["http://dev.example/cb"],
                "initiate_login_uri": "http://dev.example/login",
                "addons": { "samlp": { "recipient": "http://dev.example/acs" } },
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for url in ["javascript:alert(1)", "data:,x", "file:///etc/passwd"] {
        let (status, body) = app.post("/api/v2/clients", &json!({ "name": "x", "callbacks": [url] })).await;
        assert_refused_naming(status, &body, "callbacks", url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_http_setting_sqlite() {
    insecure_http_setting(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_http_setting_postgres() {
    insecure_http_setting(Backend::Postgres).await
}

// ---------------------------------------------------------------------------------------
// Item: bewit replay window under clock skew.

async fn bewit_signing_key(app: &TestApp) -> guise_core::bewit::BewitKey {
    let state = Arc::clone(&app.state);
    tokio::task::spawn_blocking(move || guise_flow::bewit_keys::signing_key(&state.flow())).await.unwrap().unwrap()
}

/// `url` signed again with `key` for a different `exp` (the bewit is the last parameter).
fn resign(url: &str, key: &guise_core::bewit::BewitKey, exp: i64) -> String {
    let (unsigned, _) = url.rsplit_once("&bewit=").unwrap();
    guise_core::bewit::sign_url(key, url::Url::parse(unsigned).unwrap(), exp, "").unwrap().to_string()
}

async fn far_future_bewits_are_refused(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let (status, url) = mint_with(&app, &app.token, target_id, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{url}");
    let key = bewit_signing_key(&app).await;
    let now = app.state.clock.now().timestamp();
    let max = app.state.config.impersonation_max_url_ttl_secs;

    // Validly signed (as by a leaked key, or a node configured for longer lifetimes), but
    // living longer than any URL guise mints: refused, naming the parties (the MAC holds).
    for exp in [now + max + MAX_CLOCK_SKEW_SECS + 60, now + 365 * 86_400, i64::MAX] {
        let far = resign(&url, &key, exp);
        let page = Browser::new().get(&far).await;
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("Access expiry too far in the future"), "{}", page.body);
        assert!(page.location.is_none());
        let refused = app.logs_of_type("guise_impersonation_refused").await;
        assert_eq!(refused[0]["details"]["reason"], "exp_too_far_ahead", "{}", refused[0]);
        assert_eq!(refused[0]["details"]["stage"], "redeem");
        assert_eq!(refused[0]["user_id"], target_id);
    }
    assert!(app.logs_of_type("guise_impersonation_redeemed").await.is_empty());

    // The same ticket within the window (a minting node's clock ahead by the full skew)
    // is accepted: the refusal was for the expiry alone.
    let within = resign(&url, &key, now + max + MAX_CLOCK_SKEW_SECS);
    let page = Browser::new().get(&within).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(page.location.unwrap().starts_with(CALLBACK));
}

/// A replay record survives past `exp` within the maximum skew: a node whose clock is
/// behind still finds it after another node (clock ahead) has purged expired records.
async fn replay_records_outlive_exp_by_the_skew(backend: Backend) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(backend, |_| {}, clock.clone()).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let mut body = mint_body(&app, &client_id);
    body["ttl"] = json!(30);

    let (_, first) = mint_with(&app, &app.token, target_id, &body).await;
    assert_eq!(Browser::new().get(&first).await.status, 302);

    // 2 minutes past the first URL's exp (within the skew), by this node's clock: the
    // URL is expired here, and redeeming another URL runs the purge.
    let ahead = chrono::Duration::seconds(30 + 120);
    assert!(ahead.num_seconds() < 30 + MAX_CLOCK_SKEW_SECS);
    clock.advance(ahead);
    let expired = Browser::new().get(&first).await;
    assert_eq!(expired.status, 401);
    assert!(expired.body.contains("Access expired"), "{}", expired.body);
    let (_, second) = mint_with(&app, &app.token, target_id, &body).await;
    assert_eq!(Browser::new().get(&second).await.status, 302);

    // A node whose clock is 150 s behind still holds the first URL unexpired: the replay
    // record must still be there.
    clock.advance(-ahead);
    let replay = Browser::new().get(&first).await;
    assert_eq!(replay.status, 401, "the replay was accepted: {:?}", replay.location);
    assert!(replay.body.contains("Bewit already used"), "{}", replay.body);
    let refused = app.logs_of_type("guise_impersonation_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "replayed");
    assert_eq!(app.logs_of_type("guise_impersonation_redeemed").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_records_outlive_exp_by_the_skew_sqlite() {
    replay_records_outlive_exp_by_the_skew(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_records_outlive_exp_by_the_skew_postgres() {
    replay_records_outlive_exp_by_the_skew(Backend::Postgres).await
}
