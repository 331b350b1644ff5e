//! The OpenID Basic OP conformance checks and guise's own rules, one concrete behaviour
//! at a time: single-use codes, redirect URI and client checks, `prompt`, `max_age`,
//! PKCE, client authentication, refresh rotation, login throttling, blocked users,
//! consent, CSRF, RP-initiated logout, discovery and `form_post`.
//!
//! The front channel goes through the scripted `Browser` (cookies, no automatic
//! redirects); the back channel is plain `reqwest`.

use crate::both_backends;
use crate::browser::{
    Browser, CALLBACK, LOGOUT_URL, Page, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, hidden, user,
    web_client,
};
use crate::helpers::{Backend, TestApp, spawn_app_with_clock, split};
use crate::oidc::decode_payload;
use guise_core::clock::ManualClock;
use openidconnect::PkceCodeChallenge;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

both_backends!(
    a_code_used_twice_is_refused_and_revokes_its_tokens,
    untrusted_redirects_get_an_error_page,
    prompt_none_answers_without_a_page,
    prompt_login_forces_the_login_page,
    pkce_is_s256_only_and_bound_to_the_code,
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    refresh_cannot_widen_scope_and_a_refused_request_keeps_the_token,
    refresh_with_a_narrower_scope_keeps_the_family,
    a_blocked_user_cannot_log_in,
    third_party_clients_need_consent,
    a_login_form_with_a_wrong_csrf_token_is_refused,
    rp_initiated_logout_ends_the_session,
    discovery_lists_the_endpoints_and_methods,
    form_post_delivers_the_code_in_an_auto_submitting_form,
);

both_backends!(
    using crate::helpers::own_app;
    max_age_asks_for_a_fresh_login,
    code_exchange_authenticates_the_client_and_checks_the_code,
    repeated_failures_lock_the_login,
);

const STATE: &str = "st-4711";
const OTHER_CALLBACK: &str = "http://127.0.0.1:9/elsewhere";

/// A server on a clock the test moves.
async fn app_on_manual_clock(
    backend: Backend,
    adjust: impl FnOnce(&mut guise_server::Config),
) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(backend, adjust, Arc::clone(&clock) as Arc<dyn guise_core::Clock>).await;
    (app, clock)
}

/// An authorize URL for `client_id`: the code flow to `CALLBACK` with scope
/// `openid offline_access` and `STATE`; `extra` overrides or adds parameters.
fn auth_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", "openid offline_access"),
        ("state", STATE),
    ];
    for (key, value) in extra {
        match params.iter_mut().find(|(name, _)| name == key) {
            Some(slot) => slot.1 = value,
            None => params.push((key, value)),
        }
    }
    authorize_url(app, &params)
}

/// A fresh S256 pair: (code_challenge, code_verifier).
fn pkce() -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (challenge.as_str().to_owned(), verifier.secret().to_owned())
}

/// The parameters of a redirect straight back to the client's callback.
#[track_caller]
fn at_callback(page: &Page) -> HashMap<String, String> {
    assert_eq!(page.status, 302, "expected a redirect to the callback: {}", page.body);
    let location = page.location.as_deref().expect("a Location header");
    assert!(location.starts_with(CALLBACK), "expected the callback, got {location}");
    callback_params(location)
}

/// A successful authorization response: its code, after checking `state` and `iss`.
#[track_caller]
fn code_of(app: &TestApp, page: &Page) -> String {
    let params = at_callback(page);
    assert!(!params.contains_key("error"), "unexpected error: {params:?}");
    assert_eq!(params.get("state").map(String::as_str), Some(STATE), "{params:?}");
    assert_eq!(params.get("iss"), Some(&app.issuer()), "{params:?}");
    params.get("code").expect("a code").clone()
}

/// An error authorization response: (error, state).
#[track_caller]
fn error_of(page: &Page) -> (String, Option<String>) {
    let params = at_callback(page);
    assert!(!params.contains_key("code"), "no code with an error: {params:?}");
    (params.get("error").expect("an error").clone(), params.get("state").cloned())
}

/// `/authorize` sends the browser to the login page; returns its path.
async fn login_path(browser: &Browser, url: &str) -> String {
    let start = browser.get(url).await;
    assert_eq!(start.status, 302, "authorize should redirect to login: {}", start.body);
    let location = start.location.expect("a Location header");
    assert!(location.starts_with("/login?tx="), "expected the login page, got {location}");
    location
}

/// Log in at `url` (which must show the login page) and return the code.
async fn login_for_code(app: &TestApp, browser: &Browser, url: &str) -> String {
    let done = browser.login_via(app, url, USER_EMAIL, USER_PASSWORD).await;
    code_of(app, &done)
}

/// With a live session and nothing to ask, `/authorize` answers with a code at once.
async fn code_without_login(app: &TestApp, browser: &Browser, url: &str) -> String {
    let page = browser.get(url).await;
    code_of(app, &page)
}

/// The answer to a login POST, with the cookies it sets.
struct LoginReply {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl LoginReply {
    /// The session cookie's value, if this reply sets a (non-empty) one.
    fn session_cookie(&self) -> Option<String> {
        self.set_cookies
            .iter()
            .filter_map(|c| c.strip_prefix("guise_session="))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
            .find(|value| !value.is_empty())
    }

    fn as_page(&self) -> Page {
        Page { status: self.status, location: self.location.clone(), body: self.body.clone() }
    }
}

/// Load the login page at `path` and post the form (with its own CSRF token unless
/// `csrf` replaces it).
async fn post_login(
    app: &TestApp,
    browser: &Browser,
    path: &str,
    email: &str,
    password: &str,
    csrf: Option<&str>,
) -> LoginReply {
    let login = browser.get(&app.url(path)).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let tx = hidden(&login.body, "tx");
    let csrf = csrf.map_or_else(|| hidden(&login.body, "csrf"), str::to_owned);
    let response = browser
        .http
        .post(app.url("/login"))
        .form(&[("tx", tx.as_str()), ("csrf", csrf.as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let set_cookies = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    LoginReply { status, location, set_cookies, body: response.text().await.unwrap() }
}

/// The message in a login page's error box.
#[track_caller]
fn login_error(body: &str) -> String {
    let marker = "<p class=\"error\" role=\"alert\">";
    let start = body.find(marker).unwrap_or_else(|| panic!("no error message on the page: {body}")) + marker.len();
    let end = body[start..].find("</p>").unwrap() + start;
    body[start..end].to_owned()
}

/// A login that failed: the page again with `message`, no redirect, no session.
#[track_caller]
fn assert_login_refused(reply: &LoginReply, status: u16, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert!(reply.location.is_none(), "a failed login must not redirect: {:?}", reply.location);
    assert_eq!(reply.session_cookie(), None, "a failed login must not set a session cookie");
    assert!(reply.body.contains("action=\"/login\""), "the login form again: {}", reply.body);
    assert_eq!(login_error(&reply.body), message);
}

/// guise's HTML error page: no redirect to anyone.
#[track_caller]
fn assert_error_page(page: &Page, status: u16, error: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.location.is_none(), "an error page must not redirect: {:?}", page.location);
    assert!(page.body.to_ascii_lowercase().starts_with("<!doctype html>"), "{}", page.body);
    assert!(page.body.contains(error), "{}", page.body);
}

#[derive(Debug, Clone, Copy)]
enum ClientAuth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    Public(&'a str),
}

/// `POST /oauth/token` with `form` and the client's authentication.
async fn token_request(app: &TestApp, auth: ClientAuth<'_>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    let mut request = reqwest::Client::new().post(app.url("/oauth/token"));
    match auth {
        ClientAuth::Basic(id, secret) => request = request.basic_auth(id, Some(secret)),
        ClientAuth::Post(id, secret) => form.extend([("client_id", id), ("client_secret", secret)]),
        ClientAuth::Public(id) => form.push(("client_id", id)),
    }
    split(request.form(&form).send().await.unwrap()).await
}

/// Exchange `code` (redirect URI `CALLBACK`).
async fn exchange(app: &TestApp, auth: ClientAuth<'_>, code: &str, verifier: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK)];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    token_request(app, auth, &form).await
}

async fn refresh(app: &TestApp, auth: ClientAuth<'_>, token: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token_request(app, auth, &form).await
}

/// Tokens from a successful token response: (access, refresh, id token).
#[track_caller]
fn tokens(response: &(u16, Value)) -> (String, Option<String>, Option<String>) {
    let (status, body) = response;
    assert_eq!(*status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let text = |key: &str| body[key].as_str().map(str::to_owned);
    (text("access_token").expect("an access token"), text("refresh_token"), text("id_token"))
}

#[track_caller]
fn assert_oauth_error(response: &(u16, Value), status: u16, error: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(response.1["error"], error, "{}", response.1);
    assert!(response.1.get("access_token").is_none(), "{}", response.1);
}

/// RFC 7662 introspection as `client_id` (client_secret_basic).
async fn introspect(app: &TestApp, client_id: &str, secret: &str, token: &str) -> Value {
    let response = reqwest::Client::new()
        .post(app.url("/oauth/introspect"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Undo the template engine's HTML escaping of attribute values.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

// 1. ---------------------------------------------------------------------------------

async fn a_code_used_twice_is_refused_and_revokes_its_tokens(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let auth = ClientAuth::Basic(&client_id, &secret);
    let (challenge, verifier) = pkce();
    let url = auth_url(&app, &client_id, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]);
    let code = login_for_code(&app, &Browser::new(), &url).await;

    let first = exchange(&app, auth, &code, Some(&verifier)).await;
    let (access, refresh_token, id_token) = tokens(&first);
    let refresh_token = refresh_token.expect("offline_access gives a refresh token");
    assert!(id_token.is_some(), "openid gives an ID token");
    assert_eq!(first.1["scope"], "openid offline_access");
    assert_eq!(introspect(&app, &client_id, &secret, &access).await["active"], true);

    let second = exchange(&app, auth, &code, Some(&verifier)).await;
    assert_oauth_error(&second, 400, "invalid_grant");

    assert_eq!(
        introspect(&app, &client_id, &secret, &access).await["active"],
        false,
        "a replayed code revokes the access token it issued"
    );
    assert_oauth_error(&refresh(&app, auth, &refresh_token, None).await, 400, "invalid_grant");
    let replayed = app.logs_of_type("guise_code_replayed").await;
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(replayed[0]["client_id"], client_id.as_str());
}

// 2. ---------------------------------------------------------------------------------

async fn untrusted_redirects_get_an_error_page(app: TestApp) {
    user(&app).await;
    let (client_id, _) = web_client(&app, json!({})).await;
    let browser = Browser::new();

    let unregistered = browser.get(&auth_url(&app, &client_id, &[("redirect_uri", OTHER_CALLBACK)])).await;
    assert_error_page(&unregistered, 400, "invalid_request");
    let with_query = format!("{CALLBACK}?next=1");
    let not_exact = browser.get(&auth_url(&app, &client_id, &[("redirect_uri", &with_query)])).await;
    assert_error_page(&not_exact, 400, "invalid_request");

    let unknown_client = browser.get(&auth_url(&app, "no-such-client", &[])).await;
    assert_error_page(&unknown_client, 400, "invalid_request");

    let missing = browser
        .get(&authorize_url(
            &app,
            &[("response_type", "code"), ("client_id", &client_id), ("scope", "openid"), ("state", STATE)],
        ))
        .await;
    assert_error_page(&missing, 400, "invalid_request");

    // The same with a live session: still no redirect.
    login_for_code(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    let unregistered = browser.get(&auth_url(&app, &client_id, &[("redirect_uri", OTHER_CALLBACK)])).await;
    assert_error_page(&unregistered, 400, "invalid_request");
}

// 3. ---------------------------------------------------------------------------------

async fn prompt_none_answers_without_a_page(app: TestApp) {
    user(&app).await;
    let (client_id, _) = web_client(&app, json!({})).await;
    let browser = Browser::new();

    let logged_out = browser.get(&auth_url(&app, &client_id, &[("prompt", "none")])).await;
    let (error, state) = error_of(&logged_out);
    assert_eq!(error, "login_required");
    assert_eq!(state.as_deref(), Some(STATE));
    assert_eq!(at_callback(&logged_out)["iss"], app.issuer());

    login_for_code(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    let silent = browser.get(&auth_url(&app, &client_id, &[("prompt", "none")])).await;
    code_of(&app, &silent);

    // Logged in, but consent is missing for a third-party client: consent_required.
    let (third_party, _) = web_client(&app, json!({ "is_first_party": false })).await;
    let (error, state) = error_of(&browser.get(&auth_url(&app, &third_party, &[("prompt", "none")])).await);
    assert_eq!(error, "consent_required");
    assert_eq!(state.as_deref(), Some(STATE));
}

// 4. ---------------------------------------------------------------------------------

async fn max_age_asks_for_a_fresh_login(backend: Backend) {
    let (app, clock) = app_on_manual_clock(backend, |_| {}).await;
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let auth = ClientAuth::Basic(&client_id, &secret);
    let browser = Browser::new();

    let code = login_for_code(&app, &browser, &auth_url(&app, &client_id, &[("nonce", "n-1")])).await;
    let (_, _, id_token) = tokens(&exchange(&app, auth, &code, None).await);
    let first = decode_payload(&id_token.expect("an ID token"));
    let first_auth_time = first["auth_time"].as_i64().expect("auth_time");

    clock.advance(chrono::Duration::minutes(10));

    // A login 600 s ago is recent enough for max_age=3600…
    let code = code_without_login(&app, &browser, &auth_url(&app, &client_id, &[("max_age", "3600")])).await;
    let (_, _, id_token) = tokens(&exchange(&app, auth, &code, None).await);
    assert_eq!(decode_payload(&id_token.unwrap())["auth_time"], first_auth_time);

    // …but not for max_age=60: the login page again.
    let path = login_path(&browser, &auth_url(&app, &client_id, &[("max_age", "60"), ("nonce", "n-2")])).await;
    let reply = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, None).await;
    let code = code_of(&app, &reply.as_page());
    let (_, _, id_token) = tokens(&exchange(&app, auth, &code, None).await);
    let second = decode_payload(&id_token.expect("an ID token"));
    assert_eq!(second["auth_time"].as_i64(), Some(first_auth_time + 600), "{second}");
    assert_eq!(second["nonce"], "n-2");
}

async fn prompt_login_forces_the_login_page(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let browser = Browser::new();
    login_for_code(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    // The session is fresh and would give a code at once…
    code_without_login(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    // …but prompt=login asks for the password again, and then issues the code.
    let code = login_for_code(&app, &browser, &auth_url(&app, &client_id, &[("prompt", "login")])).await;
    tokens(&exchange(&app, ClientAuth::Basic(&client_id, &secret), &code, None).await);
    assert_eq!(app.logs_of_type("s").await.len(), 2, "two logins");
    // max_age=0 is prompt=login (OIDC Core §3.1.2.1).
    let code = login_for_code(&app, &browser, &auth_url(&app, &client_id, &[("max_age", "0")])).await;
    tokens(&exchange(&app, ClientAuth::Basic(&client_id, &secret), &code, None).await);
    assert_eq!(app.logs_of_type("s").await.len(), 3, "three logins");
}

// 5. ---------------------------------------------------------------------------------

async fn pkce_is_s256_only_and_bound_to_the_code(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let auth = ClientAuth::Basic(&client_id, &secret);
    let (public_id, public_secret) =
        web_client(&app, json!({ "name": "SPA", "app_type": "spa", "token_endpoint_auth_method": "none" })).await;
    assert!(public_secret.is_empty(), "a public client has no secret");
    let browser = Browser::new();
    let (challenge, verifier) = pkce();
    let with_pkce = |client: &str, challenge: &str| {
        auth_url(&app, client, &[("code_challenge", challenge), ("code_challenge_method", "S256")])
    };

    // S256 works (and logs the browser in for the rest).
    let code = login_for_code(&app, &browser, &with_pkce(&client_id, &challenge)).await;
    tokens(&exchange(&app, auth, &code, Some(&verifier)).await);

    // Refused at /authorize, told to the (registered) callback.
    let plain = auth_url(&app, &client_id, &[("code_challenge", &verifier), ("code_challenge_method", "plain")]);
    assert_eq!(error_of(&browser.get(&plain).await), ("invalid_request".to_owned(), Some(STATE.to_owned())));
    let no_method = auth_url(&app, &client_id, &[("code_challenge", &challenge)]);
    assert_eq!(error_of(&browser.get(&no_method).await).0, "invalid_request");
    let public_without_pkce = auth_url(&app, &public_id, &[]);
    assert_eq!(error_of(&browser.get(&public_without_pkce).await).0, "invalid_request");

    // Wrong verifier.
    let code = code_without_login(&app, &browser, &with_pkce(&client_id, &challenge)).await;
    let (_, other_verifier) = pkce();
    assert_oauth_error(&exchange(&app, auth, &code, Some(&other_verifier)).await, 400, "invalid_grant");
    // Missing verifier when a challenge was sent.
    let code = code_without_login(&app, &browser, &with_pkce(&client_id, &challenge)).await;
    assert_oauth_error(&exchange(&app, auth, &code, None).await, 400, "invalid_grant");
    // Downgrade: a verifier for a code issued without a challenge.
    let code = code_without_login(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    assert_oauth_error(&exchange(&app, auth, &code, Some(&verifier)).await, 400, "invalid_grant");

    // The public client: PKCE and only its client_id.
    let (challenge, verifier) = pkce();
    let code = code_without_login(&app, &browser, &with_pkce(&public_id, &challenge)).await;
    let (access, _, id_token) = tokens(&exchange(&app, ClientAuth::Public(&public_id), &code, Some(&verifier)).await);
    assert!(!access.is_empty());
    assert_eq!(decode_payload(&id_token.expect("an ID token"))["aud"], public_id.as_str());
    // A public client without its verifier gets nothing either.
    let (challenge, _) = pkce();
    let code = code_without_login(&app, &browser, &with_pkce(&public_id, &challenge)).await;
    assert_oauth_error(&exchange(&app, ClientAuth::Public(&public_id), &code, None).await, 400, "invalid_grant");
}

// 6. ---------------------------------------------------------------------------------

async fn code_exchange_authenticates_the_client_and_checks_the_code(backend: Backend) {
    let (app, clock) = app_on_manual_clock(backend, |_| {}).await;
    user(&app).await;
    let (a_id, a_secret) = web_client(&app, json!({})).await;
    let (b_id, b_secret) = web_client(&app, json!({ "name": "Other app" })).await;
    let browser = Browser::new();
    let url = auth_url(&app, &a_id, &[]);

    // client_secret_basic and client_secret_post.
    let code = login_for_code(&app, &browser, &url).await;
    tokens(&exchange(&app, ClientAuth::Basic(&a_id, &a_secret), &code, None).await);
    let code = code_without_login(&app, &browser, &url).await;
    tokens(&exchange(&app, ClientAuth::Post(&a_id, &a_secret), &code, None).await);

    // A wrong secret is invalid_client, and does not burn the code.
    let code = code_without_login(&app, &browser, &url).await;
    assert_oauth_error(&exchange(&app, ClientAuth::Basic(&a_id, "wrong"), &code, None).await, 401, "invalid_client");
    assert_oauth_error(&exchange(&app, ClientAuth::Post(&a_id, "wrong"), &code, None).await, 401, "invalid_client");
    tokens(&exchange(&app, ClientAuth::Basic(&a_id, &a_secret), &code, None).await);

    // A's code presented by B.
    let code = code_without_login(&app, &browser, &url).await;
    assert_oauth_error(&exchange(&app, ClientAuth::Basic(&b_id, &b_secret), &code, None).await, 400, "invalid_grant");

    // Another redirect_uri than the authorization request's.
    let code = code_without_login(&app, &browser, &url).await;
    let wrong_redirect = token_request(
        &app,
        ClientAuth::Basic(&a_id, &a_secret),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", OTHER_CALLBACK)],
    )
    .await;
    assert_oauth_error(&wrong_redirect, 400, "invalid_grant");
    let no_redirect = token_request(
        &app,
        ClientAuth::Basic(&a_id, &a_secret),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_oauth_error(&no_redirect, 400, "invalid_grant");

    // An expired code (codes live 60 s).
    let code = code_without_login(&app, &browser, &url).await;
    clock.advance(chrono::Duration::minutes(2));
    assert_oauth_error(&exchange(&app, ClientAuth::Basic(&a_id, &a_secret), &code, None).await, 400, "invalid_grant");
}

// 7. ---------------------------------------------------------------------------------

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(app: TestApp) {
    user(&app).await;
    let (a_id, a_secret) = web_client(&app, json!({})).await;
    let (b_id, b_secret) = web_client(&app, json!({ "name": "Other app" })).await;
    let a = ClientAuth::Basic(&a_id, &a_secret);
    let b = ClientAuth::Basic(&b_id, &b_secret);
    let browser = Browser::new();
    let url = auth_url(&app, &a_id, &[]);

    let code = login_for_code(&app, &browser, &url).await;
    let (_, original, _) = tokens(&exchange(&app, a, &code, None).await);
    let original = original.expect("a refresh token");

    let (rotated_access, rotated, id_token) = tokens(&refresh(&app, a, &original, None).await);
    let rotated = rotated.expect("rotation issues a new refresh token");
    assert_ne!(rotated, original);
    assert!(id_token.is_some(), "openid is kept on refresh");
    assert_eq!(introspect(&app, &a_id, &a_secret, &rotated_access).await["active"], true);

    // The old one again: refused, and the whole family goes with it.
    assert_oauth_error(&refresh(&app, a, &original, None).await, 400, "invalid_grant");
    assert_oauth_error(&refresh(&app, a, &rotated, None).await, 400, "invalid_grant");
    assert_eq!(introspect(&app, &a_id, &a_secret, &rotated.clone()).await["active"], false);
    assert_eq!(
        introspect(&app, &a_id, &a_secret, &rotated_access).await["active"],
        false,
        "the family's access tokens are revoked too"
    );
    let reused = app.logs_of_type("guise_refresh_reused").await;
    assert_eq!(reused.len(), 1, "{reused:?}");
    assert_eq!(reused[0]["client_id"], a_id.as_str());

    // A's refresh token presented by B: refused, and A's token still works.
    let code = code_without_login(&app, &browser, &url).await;
    let (_, a_token, _) = tokens(&exchange(&app, a, &code, None).await);
    let a_token = a_token.unwrap();
    assert_oauth_error(&refresh(&app, b, &a_token, None).await, 400, "invalid_grant");
    let (_, next, _) = tokens(&refresh(&app, a, &a_token, None).await);
    assert!(next.is_some());
}

async fn refresh_cannot_widen_scope_and_a_refused_request_keeps_the_token(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let auth = ClientAuth::Basic(&client_id, &secret);
    let browser = Browser::new();
    let code = login_for_code(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    let (_, token, _) = tokens(&exchange(&app, auth, &code, None).await);
    let token = token.unwrap();

    let wider = refresh(&app, auth, &token, Some("email")).await;
    assert_oauth_error(&wider, 400, "invalid_scope");

    // A refused request must not consume the token (as for a token of another client):
    // the client can still refresh with the scope it was granted, and it is no reuse.
    let retry = refresh(&app, auth, &token, None).await;
    assert_eq!(retry.0, 200, "the refused scope request burnt the refresh token: {}", retry.1);
    let (access, next, _) = tokens(&retry);
    assert_eq!(retry.1["scope"], "openid offline_access");
    assert!(!access.is_empty());
    assert!(app.logs_of_type("guise_refresh_reused").await.is_empty(), "a refused request is not a reuse");

    // A wider scope is refused for the rotated token too.
    let next = next.expect("a rotated refresh token");
    assert_oauth_error(&refresh(&app, auth, &next, Some("openid email")).await, 400, "invalid_scope");
}

async fn refresh_with_a_narrower_scope_keeps_the_family(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let auth = ClientAuth::Basic(&client_id, &secret);
    let browser = Browser::new();
    let code = login_for_code(&app, &browser, &auth_url(&app, &client_id, &[])).await;
    let (_, token, _) = tokens(&exchange(&app, auth, &code, None).await);

    // A narrower access token: the old refresh token is spent, so rotation must hand out
    // a new one (RFC 9700 §4.14.2), still with the scope the family was granted.
    let narrower = refresh(&app, auth, &token.unwrap(), Some("openid")).await;
    let (_, next, id_token) = tokens(&narrower);
    assert_eq!(narrower.1["scope"], "openid", "{}", narrower.1);
    assert!(id_token.is_some());
    let next = next.unwrap_or_else(|| {
        panic!("narrowing the scope ended the refresh family: no refresh_token with scope {}", narrower.1["scope"])
    });
    let full = refresh(&app, auth, &next, None).await;
    tokens(&full);
    assert_eq!(full.1["scope"], "openid offline_access", "{}", full.1);
}

// 8. ---------------------------------------------------------------------------------

async fn repeated_failures_lock_the_login(backend: Backend) {
    let (app, clock) = app_on_manual_clock(backend, |c| c.login_max_failures = 3).await;
    let grace = user(&app).await;
    let (client_id, _) = web_client(&app, json!({})).await;
    let url = auth_url(&app, &client_id, &[]);
    let browser = Browser::new();

    let path = login_path(&browser, &url).await;
    for _ in 0..3 {
        let reply = post_login(&app, &browser, &path, USER_EMAIL, "not the password", None).await;
        assert_login_refused(&reply, 401, "Wrong email or password.");
    }
    let locked = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, None).await;
    assert_login_refused(&locked, 429, "Too many failed attempts. Try again later.");
    login_path(&browser, &url).await; // still no session

    let account_locked = app.logs_of_type("limit_wc").await;
    assert_eq!(account_locked.len(), 1, "{account_locked:?}");
    assert_eq!(account_locked[0]["user_id"], grace["user_id"]);
    assert!(!app.logs_of_type("limit_mu").await.is_empty(), "the address is locked too");
    let failures = app.logs_of_type("f").await;
    assert_eq!(failures.len(), 4, "three wrong passwords and one refusal while locked: {failures:?}");

    // After the lockout, the right password works.
    clock.advance(chrono::Duration::seconds(901));
    let path = login_path(&browser, &url).await;
    let reply = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, None).await;
    assert!(reply.session_cookie().is_some(), "a session after a successful login");
    code_of(&app, &reply.as_page());

    // An unknown email gets the very same answer as a wrong password.
    let stranger = Browser::new();
    let path = login_path(&stranger, &url).await;
    let unknown = post_login(&app, &stranger, &path, "nobody@example.com", USER_PASSWORD, None).await;
    assert_login_refused(&unknown, 401, "Wrong email or password.");
    let wrong = post_login(&app, &stranger, &path, USER_EMAIL, "not the password", None).await;
    assert_login_refused(&wrong, 401, "Wrong email or password.");
}

// 9. ---------------------------------------------------------------------------------

async fn a_blocked_user_cannot_log_in(app: TestApp) {
    let grace = user(&app).await;
    let user_id = grace["user_id"].as_str().unwrap();
    let (client_id, _) = web_client(&app, json!({})).await;
    let (status, patched) = app.patch(&format!("/api/v2/users/{user_id}"), &json!({ "blocked": true })).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["blocked"], true);

    let browser = Browser::new();
    let url = auth_url(&app, &client_id, &[]);
    let path = login_path(&browser, &url).await;
    let reply = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, None).await;
    assert_login_refused(&reply, 401, "Wrong email or password.");
    login_path(&browser, &url).await;

    let blocked = app.logs_of_type("fu").await;
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["user_id"], user_id);
    assert!(app.logs_of_type("s").await.is_empty(), "no successful login");
}

// 10. --------------------------------------------------------------------------------

/// The consent page behind a redirect to it: (tx, csrf, body).
async fn consent_page(app: &TestApp, browser: &Browser, page: &Page) -> (String, String, String) {
    assert_eq!(page.status, 302, "{}", page.body);
    let location = page.location.as_deref().unwrap();
    assert!(location.starts_with("/consent?tx="), "expected the consent page, got {location}");
    let consent = browser.get(&app.url(location)).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    (hidden(&consent.body, "tx"), hidden(&consent.body, "csrf"), consent.body)
}

async fn third_party_clients_need_consent(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({ "is_first_party": false, "name": "Third party" })).await;
    let url = auth_url(&app, &client_id, &[("scope", "openid profile")]);
    let browser = Browser::new();

    // After login: consent, listing the scopes. Deny.
    let after_login = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    let (tx, csrf, body) = consent_page(&app, &browser, &after_login).await;
    assert!(body.contains("Third party"), "{body}");
    assert!(body.contains("<li>openid</li>") && body.contains("<li>profile</li>"), "{body}");
    let forged = browser.post(&app.url("/consent"), &[("tx", &tx), ("csrf", "forged"), ("decision", "allow")]).await;
    assert_error_page(&forged, 403, "invalid_request");
    let denied = browser.post(&app.url("/consent"), &[("tx", &tx), ("csrf", &csrf), ("decision", "deny")]).await;
    assert_eq!(error_of(&denied), ("access_denied".to_owned(), Some(STATE.to_owned())));
    assert!(app.logs_of_type("scoa").await.is_empty());

    // Again: consent again (nothing was stored). Allow.
    let (tx, csrf, _) = consent_page(&app, &browser, &browser.get(&url).await).await;
    let allowed = browser.post(&app.url("/consent"), &[("tx", &tx), ("csrf", &csrf), ("decision", "allow")]).await;
    let code = code_of(&app, &allowed);
    tokens(&exchange(&app, ClientAuth::Basic(&client_id, &secret), &code, None).await);
    assert_eq!(app.logs_of_type("scoa").await.len(), 1);

    // A third time: remembered, no consent page.
    code_without_login(&app, &browser, &url).await;
    // prompt=consent asks again; so does a scope not consented to.
    let forced = browser.get(&auth_url(&app, &client_id, &[("scope", "openid profile"), ("prompt", "consent")])).await;
    consent_page(&app, &browser, &forced).await;
    let wider = browser.get(&auth_url(&app, &client_id, &[("scope", "openid profile email")])).await;
    consent_page(&app, &browser, &wider).await;
}

async fn a_login_form_with_a_wrong_csrf_token_is_refused(app: TestApp) {
    user(&app).await;
    let (client_id, _) = web_client(&app, json!({})).await;
    let url = auth_url(&app, &client_id, &[]);
    let browser = Browser::new();
    let path = login_path(&browser, &url).await;

    let forged = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, Some("forged")).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.location.is_none());
    assert_eq!(forged.session_cookie(), None);
    assert_error_page(&forged.as_page(), 403, "invalid_request");
    login_path(&browser, &url).await; // no session
    assert!(app.logs_of_type("s").await.is_empty(), "no login happened");

    // The same request with its real token still logs in.
    let reply = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, None).await;
    code_of(&app, &reply.as_page());
}

// 11. --------------------------------------------------------------------------------

async fn rp_initiated_logout_ends_the_session(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let url = auth_url(&app, &client_id, &[]);
    let browser = Browser::new();
    let path = login_path(&browser, &url).await;
    let reply = post_login(&app, &browser, &path, USER_EMAIL, USER_PASSWORD, None).await;
    let session_cookie = reply.session_cookie().expect("a session cookie");
    let code = code_of(&app, &reply.as_page());
    let (access, _, id_token) = tokens(&exchange(&app, ClientAuth::Basic(&client_id, &secret), &code, None).await);
    let id_token = id_token.expect("an ID token");
    let logout = |params: &[(&str, &str)]| {
        let mut url = url::Url::parse(&app.url("/oidc/logout")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    };

    // Refused: an unregistered post_logout_redirect_uri, a forged hint. No redirect,
    // and the session survives.
    let unregistered = browser
        .get(&logout(&[("id_token_hint", &id_token), ("post_logout_redirect_uri", OTHER_CALLBACK), ("state", "xyz")]))
        .await;
    assert_error_page(&unregistered, 400, "invalid_request");
    let garbage = browser
        .get(&logout(&[("id_token_hint", "not.a.jwt"), ("post_logout_redirect_uri", LOGOUT_URL), ("state", "xyz")]))
        .await;
    assert_error_page(&garbage, 400, "invalid_request");
    code_without_login(&app, &browser, &auth_url(&app, &client_id, &[("prompt", "none")])).await;

    let done = browser
        .get(&logout(&[("id_token_hint", &id_token), ("post_logout_redirect_uri", LOGOUT_URL), ("state", "xyz")]))
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(format!("{LOGOUT_URL}?state=xyz").as_str()));

    // The session is over: in this browser, and for anyone replaying its cookie.
    login_path(&browser, &url).await;
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let replayed = replay.get(&url).header("cookie", format!("guise_session={session_cookie}")).send().await.unwrap();
    assert_eq!(replayed.status(), 302);
    let location = replayed.headers().get("location").unwrap().to_str().unwrap();
    assert!(location.starts_with("/login?tx="), "the old session cookie must not work: {location}");
    assert_eq!(
        introspect(&app, &client_id, &secret, &access).await["active"],
        false,
        "tokens of the ended session are revoked"
    );
    let logouts = app.logs_of_type("slo").await;
    assert_eq!(logouts.len(), 1, "{logouts:?}");
    assert_eq!(logouts[0]["client_id"], client_id.as_str());
}

// 12. --------------------------------------------------------------------------------

async fn discovery_lists_the_endpoints_and_methods(app: TestApp) {
    let response = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["issuer"], app.issuer());
    for (key, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("end_session_endpoint", "/oidc/logout"),
    ] {
        assert_eq!(doc[key], app.url(path), "{key}");
    }
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let modes = doc["response_modes_supported"].as_array().unwrap();
    assert!(modes.contains(&json!("form_post")), "{doc}");
}

// 13. --------------------------------------------------------------------------------

/// The action and hidden fields of a `form_post` page.
#[track_caller]
fn form_post_fields(page: &Page) -> (String, HashMap<String, String>) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.location.is_none());
    assert!(page.body.contains("document.forms[0].submit()"), "auto-submitting: {}", page.body);
    assert!(page.body.contains("method=\"post\""), "{}", page.body);
    let marker = "action=\"";
    let start = page.body.find(marker).expect("a form action") + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    let action = unescape(&page.body[start..end]);
    let fields = ["code", "state", "iss", "error"]
        .iter()
        .filter(|name| page.body.contains(&format!("name=\"{name}\"")))
        .map(|name| ((*name).to_owned(), unescape(&hidden(&page.body, name))))
        .collect();
    (action, fields)
}

async fn form_post_delivers_the_code_in_an_auto_submitting_form(app: TestApp) {
    user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let browser = Browser::new();
    let url = auth_url(&app, &client_id, &[("response_mode", "form_post")]);

    // An error is posted back the same way.
    let refused = browser.get(&auth_url(&app, &client_id, &[("response_mode", "form_post"), ("prompt", "none")])).await;
    let (action, fields) = form_post_fields(&refused);
    assert_eq!(action, CALLBACK);
    assert_eq!(fields.get("error").map(String::as_str), Some("login_required"));
    assert!(!fields.contains_key("code"));

    let page = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    let (action, fields) = form_post_fields(&page);
    assert_eq!(action, CALLBACK);
    assert_eq!(fields.get("state").map(String::as_str), Some(STATE));
    assert_eq!(fields.get("iss"), Some(&app.issuer()));
    assert!(!fields.contains_key("error"));
    let code = fields.get("code").expect("a code field");
    tokens(&exchange(&app, ClientAuth::Basic(&client_id, &secret), code, None).await);
}
