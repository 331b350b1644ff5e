//! The authority ceiling end to end: an actor may only confer, or act with, permissions
//! it holds itself, along the whole chain (token holder → named impersonator → target).
//! Machine clients minting impersonations, tokens that outlive their client or grant,
//! consent during impersonation, impersonations ended by a broken chain, and Management
//! API writes that would confer more than the caller holds.

use crate::both_backends;
use crate::browser::{
    Browser, CALLBACK, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, hidden, user, web_client,
};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, split};
use crate::impersonation::{impersonation_client, mint_body, mint_with};
use crate::oidc::decode_payload;
use crate::users::urlencode;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    // 1. A machine client minting impersonations.
    a_machine_minter_weaker_than_the_target_is_refused_and_audited,
    a_machine_minter_is_named_from_mint_to_code_exchange,
    an_impersonation_session_gets_no_management_api_token,
    a_user_token_mints_only_within_its_application_s_grant,
    // 2. Tokens do not outlive their client or grant.
    a_deleted_client_s_token_stops_working,
    a_deleted_grant_stops_its_client_s_token,
    a_narrowed_grant_narrows_live_tokens,
    // 3. Consent during impersonation.
    no_consent_is_given_or_recorded_during_impersonation,
    // 5. A broken chain ends the impersonation.
    blocking_the_impersonator_ends_the_impersonation,
    an_impersonator_losing_impersonate_users_ends_the_impersonation,
    deleting_the_impersonator_ends_the_impersonation,
    // 6. Management API writes beyond the caller's own permissions.
    roles_beyond_the_caller_s_permissions_cannot_be_assigned,
    permissions_beyond_the_caller_s_own_cannot_be_added_to_a_role,
    a_stronger_user_s_credentials_email_and_block_are_out_of_reach,
    grants_beyond_the_caller_s_permissions_cannot_be_created,
    a_stronger_client_s_secret_cannot_be_rotated,
    the_management_client_keeps_all_its_powers,
    // Found by attacking the first version.
    a_client_nobody_granted_the_management_api_cannot_harvest_admin_tokens,
    blocking_a_user_ends_their_sessions_everywhere,
    introspection_follows_the_user_s_current_standing,
    a_stronger_user_s_metadata_and_a_stronger_role_s_name_are_out_of_reach,
    an_enormous_ttl_is_a_400,
);

const STATE: &str = "authority-st";
const CEILING: &str = "The authority ceiling: the caller lacks permissions this would confer or change: ";
const OTHER_API: &str = "https://api.example.com/";
/// The role `guise init` creates, holding every Management API permission.
const ADMIN_ROLE: &str = "guise Administrator";

// ---------------------------------------------------------------------------------------
// Helpers.

/// A role named `name` holding `permissions` on `audience`; returns its id.
async fn role_on(app: &TestApp, name: &str, audience: &str, permissions: &[&str]) -> String {
    let (status, role) = app.post("/api/v2/roles", &json!({ "name": name })).await;
    assert_eq!(status, 200, "{role}");
    let id = role["id"].as_str().unwrap().to_owned();
    if !permissions.is_empty() {
        let list: Vec<Value> = permissions
            .iter()
            .map(|p| json!({ "resource_server_identifier": audience, "permission_name": p }))
            .collect();
        let (status, body) =
            app.post(&format!("/api/v2/roles/{id}/permissions"), &json!({ "permissions": list })).await;
        assert_eq!(status, 201, "{body}");
    }
    id
}

/// A role holding `permissions` on the Management API; returns its id.
async fn role(app: &TestApp, name: &str, permissions: &[&str]) -> String {
    role_on(app, name, &app.management_audience(), permissions).await
}

/// Give `user_id` the role `role_id` (as the management client).
async fn assign(app: &TestApp, user_id: &str, role_id: &str) {
    let (status, body) =
        app.post(&format!("/api/v2/users/{}/roles", urlencode(user_id)), &json!({ "roles": [role_id] })).await;
    assert_eq!(status, 204, "{body}");
}

async fn admin_role(app: &TestApp) -> String {
    let (status, list) = app.get(&format!("/api/v2/roles?name_filter={}", urlencode(ADMIN_ROLE))).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == ADMIN_ROLE)
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no {ADMIN_ROLE} role in {list}"))
        .to_owned()
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.create_user(email).await["user_id"].as_str().unwrap().to_owned()
}

/// A machine client with a Management API grant, and a token for it.
struct Machine {
    id: String,
    secret: String,
    grant_id: String,
    token: String,
}

async fn machine(app: &TestApp, name: &str, scopes: &[&str]) -> Machine {
    let (id, secret) = app.machine_client(name, scopes).await;
    let (status, grants) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    assert_eq!(status, 200, "{grants}");
    let grant_id = grants[0]["id"].as_str().unwrap().to_owned();
    let token = app.client_token(&id, &secret, None).await;
    Machine { id, secret, grant_id, token }
}

/// RFC 7662 introspection as `client_id` (client_secret_basic).
async fn introspect(app: &TestApp, client_id: &str, secret: &str, token: &str) -> Value {
    let (status, body) = split(
        app.http
            .post(app.url("/oauth/introspect"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn token_endpoint(app: &TestApp, client_id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    split(app.http.post(app.url("/oauth/token")).basic_auth(client_id, Some(secret)).form(form).send().await.unwrap())
        .await
}

async fn exchange(app: &TestApp, client_id: &str, secret: &str, code: &str) -> (u16, Value) {
    token_endpoint(
        app,
        client_id,
        secret,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK)],
    )
    .await
}

async fn refresh(app: &TestApp, client_id: &str, secret: &str, refresh_token: &str) -> (u16, Value) {
    token_endpoint(app, client_id, secret, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

async fn userinfo(app: &TestApp, token: &str) -> (u16, Value) {
    split(app.http.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap()).await
}

/// A 403 from the authority ceiling whose message names `missing` (exactly, when `exact`).
#[track_caller]
fn assert_ceiling(status: u16, body: &Value, missing: &str, exact: bool) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["statusCode"], 403, "{body}");
    assert_eq!(body["errorCode"], "insufficient_permissions", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    if exact {
        assert_eq!(message, format!("{CEILING}{missing}"), "{body}");
    } else {
        assert!(message.starts_with(CEILING), "{body}");
        let named: Vec<&str> = message[CEILING.len()..].split(", ").collect();
        assert!(named.contains(&missing), "{missing} is not named: {body}");
    }
}

/// `fapi` events (refused Management API calls) by the client `actor`.
async fn refused_calls_by(app: &TestApp, actor: &str) -> Vec<Value> {
    app.logs_of_type("fapi").await.into_iter().filter(|e| e["actor"]["id"] == actor).collect()
}

/// An authorize URL (code flow to `CALLBACK` with `STATE`) for `client_id`.
fn auth_url(app: &TestApp, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
        ("scope", scope),
        ("state", STATE),
    ];
    params.extend_from_slice(extra);
    authorize_url(app, &params)
}

/// The parameters of a redirect to `CALLBACK`.
#[track_caller]
fn at_callback(page: &crate::browser::Page) -> std::collections::HashMap<String, String> {
    assert_eq!(page.status, 302, "expected a redirect to the callback: {}", page.body);
    let location = page.location.as_deref().unwrap();
    assert!(location.starts_with(CALLBACK), "expected the callback, got {location}");
    callback_params(location)
}

/// An error at the callback, with the request's state and no code: (error, description).
#[track_caller]
fn error_at_callback(page: &crate::browser::Page) -> (String, String) {
    let params = at_callback(page);
    assert!(!params.contains_key("code"), "no code with an error: {params:?}");
    assert_eq!(params.get("state").map(String::as_str), Some(STATE), "{params:?}");
    (params["error"].clone(), params.get("error_description").cloned().unwrap_or_default())
}

/// A user allowed to impersonate (impersonate:users, nothing else); returns (id, role id).
async fn support_agent(app: &TestApp) -> (String, String) {
    let agent = user_id(app, "agent@example.com").await;
    let support = role(app, "Support", &["impersonate:users"]).await;
    assign(app, &agent, &support).await;
    (agent, support)
}

/// A live impersonation of Grace (an ordinary user) by `impersonator_id`, minted by the
/// management client and delivered straight to an impersonation-enabled client, with its
/// tokens (scope `openid offline_access`).
struct Impersonation {
    browser: Browser,
    client_id: String,
    secret: String,
    target_id: String,
    sid: String,
    access: String,
    refresh: String,
}

async fn impersonate(app: &TestApp, impersonator_id: &str) -> Impersonation {
    let target_id = user(app).await["user_id"].as_str().unwrap().to_owned();
    let (client_id, secret) = impersonation_client(app, json!({})).await;
    let mut body = mint_body(app, &client_id);
    body["impersonator_id"] = json!(impersonator_id);
    body["additionalParameters"]["scope"] = json!("openid offline_access");
    let (status, url) = mint_with(app, &app.token, &target_id, &body).await;
    assert_eq!(status, 200, "{url}");
    let browser = Browser::new();
    let redeemed = browser.get(&url).await;
    let code = at_callback(&redeemed)["code"].clone();
    let (status, tokens) = exchange(app, &client_id, &secret, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, info) = userinfo(app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!((status, info["sub"].as_str()), (200, Some(target_id.as_str())), "{info}");
    let (status, sessions) =
        app.get(&format!("/api/v2/impersonations?impersonator_id={}", urlencode(impersonator_id))).await;
    assert_eq!(status, 200, "{sessions}");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    Impersonation {
        browser,
        client_id,
        secret,
        sid: sessions[0]["id"].as_str().unwrap().to_owned(),
        target_id,
        access: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh: tokens["refresh_token"].as_str().expect("offline_access gives a refresh token").to_owned(),
    }
}

/// Everything an ended impersonation leaves: no live session listed, one
/// `guise_impersonation_ended` event (chain_broken) naming the parties.
async fn assert_ended_by_broken_chain(app: &TestApp, imp: &Impersonation, impersonator_id: &str) -> Value {
    let (status, sessions) = app.get("/api/v2/impersonations").await;
    assert_eq!((status, sessions), (200, json!([])));
    let ended = app.logs_of_type("guise_impersonation_ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    let event = ended[0].clone();
    assert_eq!(event["details"]["reason"], "chain_broken", "{event}");
    assert_eq!(event["details"]["sid"], imp.sid.as_str(), "{event}");
    assert_eq!(event["details"]["impersonator_id"], impersonator_id, "{event}");
    assert_eq!(event["user_id"], imp.target_id.as_str(), "{event}");
    assert_eq!(event["on_behalf_of"], impersonator_id, "{event}");
    event
}

/// The impersonation's tokens are dead everywhere.
async fn assert_tokens_dead(app: &TestApp, imp: &Impersonation) {
    let (status, body) = userinfo(app, &imp.access).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    let (status, body) = refresh(app, &imp.client_id, &imp.secret, &imp.refresh).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(introspect(app, &imp.client_id, &imp.secret, &imp.access).await, json!({ "active": false }));
    assert_eq!(introspect(app, &imp.client_id, &imp.secret, &imp.refresh).await, json!({ "active": false }));
}

// ---------------------------------------------------------------------------------------
// 1. A machine client minting impersonations.

async fn a_machine_minter_weaker_than_the_target_is_refused_and_audited(app: TestApp) {
    let minter = machine(&app, "support desk", &["impersonate:users"]).await;
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let strong = user_id(&app, "strong@example.com").await;
    let creator = role(&app, "Client creator", &["create:clients"]).await;
    assign(&app, &strong, &creator).await;

    // The admin named as impersonator holds create:clients; the client does not.
    let (status, text) = mint_with(&app, &minter.token, &strong, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 403, "{text}");
    assert!(!text.contains("bewit"), "no URL in a refusal: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["statusCode"], 403, "{body}");
    assert_eq!(body["errorCode"], "insufficient_permissions", "{body}");
    assert_eq!(body["message"], "The caller lacks permissions the target holds: create:clients", "{body}");

    let refused = app.logs_of_type("guise_impersonation_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["actor"], json!({ "type": "client", "id": minter.id }), "{}", refused[0]);
    assert_eq!(refused[0]["user_id"], strong.as_str());
    assert_eq!(refused[0]["client_id"], client_id.as_str());
    assert_eq!(refused[0]["details"]["stage"], "mint");
    assert_eq!(refused[0]["details"]["reason"], "forbidden");
    assert!(app.logs_of_type("guise_impersonation_minted").await.is_empty(), "nothing was minted");

    // The management client (holding everything) may mint for the same target.
    let (status, url) = mint_with(&app, &app.token, &strong, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{url}");
}

async fn a_machine_minter_is_named_from_mint_to_code_exchange(app: TestApp) {
    let minter = machine(&app, "support desk", &["impersonate:users"]).await;
    let (client_id, secret) = impersonation_client(&app, json!({})).await;
    let target = user(&app).await["user_id"].as_str().unwrap().to_owned();

    let (status, url) = mint_with(&app, &minter.token, &target, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "an ordinary target holds nothing the client lacks: {url}");
    assert_eq!(callback_params(&url).get("minted_by"), Some(&minter.id), "{url}");
    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0]["actor"], json!({ "type": "client", "id": minter.id }));
    assert_eq!(minted[0]["on_behalf_of"], app.admin_user_id.as_str());
    assert_eq!(minted[0]["details"]["minted_by"], minter.id.as_str());
    assert_eq!(minted[0]["details"]["token_client"], minter.id.as_str());

    let browser = Browser::new();
    let code = at_callback(&browser.get(&url).await)["code"].clone();
    let redeemed = app.logs_of_type("guise_impersonation_redeemed").await;
    assert_eq!(redeemed.len(), 1);
    assert_eq!(redeemed[0]["details"]["minted_by"], minter.id.as_str(), "{}", redeemed[0]);
    assert_eq!(redeemed[0]["actor"], json!({ "type": "user", "id": app.admin_user_id }));
    assert_eq!(redeemed[0]["user_id"], target.as_str());

    let (status, tokens) = exchange(&app, &client_id, &secret, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = decode_payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["act"], json!({ "sub": app.admin_user_id }));
    assert_eq!(claims["impersonator"]["user_id"], app.admin_user_id.as_str());
    let exchanged = app.logs_of_type("seacft").await;
    let event = exchanged
        .iter()
        .find(|e| e["client_id"] == client_id.as_str())
        .unwrap_or_else(|| panic!("no code exchange by {client_id}: {exchanged:?}"));
    assert_eq!(event["details"]["impersonation_minted_by"], minter.id.as_str(), "{event}");
    assert_eq!(event["details"]["impersonated"], true, "{event}");
    assert_eq!(event["on_behalf_of"], app.admin_user_id.as_str(), "{event}");
    assert_eq!(event["user_id"], target.as_str(), "{event}");
}

/// A user's Management API token holds the user's permissions capped by the grant of the
/// application it was issued to. Minting with it, that grant must cover the target too;
/// the URL names the application, whose grant is re-checked when the URL is used.
async fn a_user_token_mints_only_within_its_application_s_grant(app: TestApp) {
    let audience = app.management_audience();
    let (desk_id, desk_secret) = web_client(&app, json!({ "name": "Support desk" })).await;
    let scope = ["impersonate:users", "read:users"];
    let (status, grant) =
        app.post("/api/v2/client-grants", &json!({ "client_id": desk_id, "audience": audience, "scope": scope })).await;
    assert_eq!(status, 201, "{grant}");
    // The administrator, who holds everything, signs in to the support desk.
    let url = auth_url(&app, &desk_id, "openid impersonate:users read:users", &[("audience", &audience)]);
    let page = Browser::new().login_via(&app, &url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let code = at_callback(&page)["code"].clone();
    let (status, tokens) = exchange(&app, &desk_id, &desk_secret, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let strong = user_id(&app, "strong@example.com").await;
    let creator = role(&app, "Client creator", &["create:clients"]).await;
    assign(&app, &strong, &creator).await;
    // The administrator holds create:clients; their token, capped by the desk's grant, does not.
    let (status, text) = mint_with(&app, &token, &strong, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 403, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["message"], "The caller lacks permissions the target holds: create:clients", "{body}");
    assert!(app.logs_of_type("guise_impersonation_minted").await.is_empty(), "nothing was minted");

    // An ordinary target: minted, and the URL names the support desk.
    let target = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let (status, url) = mint_with(&app, &token, &target, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{url}");
    assert_eq!(callback_params(&url).get("minted_by"), Some(&desk_id), "{url}");
    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted[0]["actor"], json!({ "type": "user", "id": app.admin_user_id }), "{}", minted[0]);
    assert_eq!(minted[0]["details"]["minted_by"], desk_id.as_str(), "{}", minted[0]);

    // The desk loses impersonate:users before the URL is used: it opens nothing.
    let (status, narrowed) = app
        .patch(&format!("/api/v2/client-grants/{}", grant["id"].as_str().unwrap()), &json!({ "scope": ["read:users"] }))
        .await;
    assert_eq!(status, 200, "{narrowed}");
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location.is_none(), "no redirect to the application");
    let refused = app.logs_of_type("guise_impersonation_refused").await;
    assert!(refused.iter().any(|e| e["details"]["stage"] == "redeem"), "{refused:?}");
    assert!(app.logs_of_type("guise_impersonation_redeemed").await.is_empty());
}

async fn an_impersonation_session_gets_no_management_api_token(app: TestApp) {
    let minter = machine(&app, "support desk", &["impersonate:users"]).await;
    let (client_id, secret) = impersonation_client(&app, json!({})).await;
    let target = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let (status, url) = mint_with(&app, &minter.token, &target, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{url}");
    let browser = Browser::new();
    let code = at_callback(&browser.get(&url).await)["code"].clone();
    let (status, tokens) = exchange(&app, &client_id, &secret, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();

    // /authorize for the Management API in the impersonation session: an error, no code.
    let audience = app.management_audience();
    let page = browser.get(&auth_url(&app, &client_id, "openid", &[("audience", &audience)])).await;
    let (error, description) = error_at_callback(&page);
    assert_eq!(error, "access_denied");
    assert!(description.contains("Management API"), "{description}");

    // The session itself goes on for its own audience.
    let page = browser.get(&auth_url(&app, &client_id, "openid", &[])).await;
    assert!(at_callback(&page).contains_key("code"), "{page:?}");

    // The impersonation's token (userinfo audience, carrying `act`) opens no Management
    // API route: 401, the audience differs (and `act` is refused there besides).
    assert!(decode_payload(access).get("act").is_some());
    let (status, body) = app.send_as(access, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["statusCode"], 401, "{body}");
    let (status, text) = mint_with(&app, access, &target, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 401, "{text}");
    let (status, body) = app.send_as(access, Method::GET, "/api/v2/me", None).await;
    assert_eq!(status, 401, "{body}");
    // Each attempt is audited naming the impersonator, acting for the user.
    let attempts: Vec<Value> = app
        .logs_of_type("guise_impersonation_refused")
        .await
        .into_iter()
        .filter(|e| e["details"]["stage"] == "api")
        .collect();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for attempt in &attempts {
        assert_eq!(attempt["actor"]["id"], app.admin_user_id.as_str(), "{attempt}");
        assert_eq!(attempt["on_behalf_of"], target.as_str(), "{attempt}");
        assert_eq!(attempt["user_id"], target.as_str(), "{attempt}");
    }

    // Logging out of the impersonation ends it, named as such.
    let page = browser.get(&app.url("/oidc/logout")).await;
    assert_eq!(page.status, 200, "a confirmation page: {}", page.body);
    let csrf = hidden(&page.body, "csrf");
    let done = browser.post(&app.url("/oidc/logout"), &[("csrf", csrf.as_str())]).await;
    assert!(done.status == 200 || done.status == 302, "{}", done.body);
    let ended = app.logs_of_type("guise_impersonation_ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["actor"]["id"], app.admin_user_id.as_str());
    assert_eq!(ended[0]["user_id"], target.as_str());
    assert_eq!(ended[0]["details"]["reason"], "logout");
}

// ---------------------------------------------------------------------------------------
// 2. Tokens do not outlive their client or grant.

async fn a_deleted_client_s_token_stops_working(app: TestApp) {
    let worker = machine(&app, "worker", &["read:users", "impersonate:users"]).await;
    let (introspector, introspector_secret) = web_client(&app, json!({ "name": "Introspector" })).await;
    let (impersonation_client_id, _) = impersonation_client(&app, json!({})).await;
    let target = user(&app).await["user_id"].as_str().unwrap().to_owned();

    let (status, body) = app.send_as(&worker.token, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 200, "{body}");
    let active = introspect(&app, &introspector, &introspector_secret, &worker.token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], worker.id.as_str(), "{active}");

    let (status, body) = app.delete(&format!("/api/v2/clients/{}", worker.id)).await;
    assert_eq!(status, 204, "{body}");

    let (status, body) = app.send_as(&worker.token, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 401, "the token outlived its client: {body}");
    assert_eq!(body["statusCode"], 401, "{body}");
    let (status, text) = mint_with(&app, &worker.token, &target, &mint_body(&app, &impersonation_client_id)).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(introspect(&app, &introspector, &introspector_secret, &worker.token).await, json!({ "active": false }));
    assert!(app.logs_of_type("guise_impersonation_minted").await.is_empty());
    assert!(app.logs_of_type("guise_impersonation_refused").await.is_empty(), "the call never got that far");
}

async fn a_deleted_grant_stops_its_client_s_token(app: TestApp) {
    let worker = machine(&app, "worker", &["read:users"]).await;
    let (introspector, introspector_secret) = web_client(&app, json!({ "name": "Introspector" })).await;
    let (status, _) = app.send_as(&worker.token, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 200);

    let (status, body) = app.delete(&format!("/api/v2/client-grants/{}", worker.grant_id)).await;
    assert_eq!(status, 204, "{body}");

    let (status, body) = app.send_as(&worker.token, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 401, "the token outlived its grant: {body}");
    assert_eq!(introspect(&app, &introspector, &introspector_secret, &worker.token).await, json!({ "active": false }));
    // And no new token is issued either.
    let (status, body) =
        token_endpoint(&app, &worker.id, &worker.secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("access_denied")), "{body}");
}

async fn a_narrowed_grant_narrows_live_tokens(app: TestApp) {
    let worker = machine(&app, "worker", &["read:users", "read:clients"]).await;
    let (introspector, introspector_secret) = web_client(&app, json!({ "name": "Introspector" })).await;
    let (status, body) = app.send_as(&worker.token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(status, 200, "{body}");

    let (status, patched) =
        app.patch(&format!("/api/v2/client-grants/{}", worker.grant_id), &json!({ "scope": ["read:users"] })).await;
    assert_eq!(status, 200, "{patched}");

    // The token still lists read:clients, but the grant no longer covers it.
    let listed = decode_payload(&worker.token)["scope"].as_str().unwrap().to_owned();
    assert!(listed.split(' ').any(|s| s == "read:clients"), "{listed}");
    let (status, body) = app.send_as(&worker.token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(status, 403, "a scope removed from the grant still works: {body}");
    assert_eq!(body["errorCode"], "insufficient_scope", "{body}");
    let (status, body) = app.send_as(&worker.token, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 200, "{body}");

    let introspected = introspect(&app, &introspector, &introspector_secret, &worker.token).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["scope"], "read:users", "{introspected}");
    assert_eq!(refused_calls_by(&app, &worker.id).await.len(), 1, "the refused call is audited");
}

// ---------------------------------------------------------------------------------------
// 3. Consent during impersonation.

async fn no_consent_is_given_or_recorded_during_impersonation(app: TestApp) {
    let target = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let (third_party, _) =
        web_client(&app, json!({ "name": "Third party", "is_first_party": false, "allow_impersonation": true })).await;
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let url = auth_url(&app, &third_party, "openid profile", &[]);

    // Two requests for the third party, started with no session.
    let browser = Browser::new();
    let mut txs = Vec::new();
    for _ in 0..2 {
        let start = browser.get(&url).await;
        assert_eq!(start.status, 302, "{}", start.body);
        let location = start.location.unwrap();
        txs.push(location.strip_prefix("/login?tx=").unwrap_or_else(|| panic!("{location}")).to_owned());
    }
    // The second one's form token (the login page sets the CSRF cookie for it).
    let login = browser.get(&app.url(&format!("/login?tx={}", txs[1]))).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let csrf = hidden(&login.body, "csrf");

    // The same browser becomes an impersonation of the user.
    let (status, mint) = mint_with(&app, &app.token, &target, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{mint}");
    at_callback(&browser.get(&mint).await);

    // No consent page: the client is told consent is required.
    let page = browser.get(&app.url(&format!("/consent?tx={}", txs[0]))).await;
    assert!(!page.body.contains("name=\"decision\""), "a consent page rendered: {}", page.body);
    let (error, description) = error_at_callback(&page);
    assert_eq!(error, "consent_required", "{description}");
    assert_eq!(description, "Consent cannot be given during impersonation");

    // Posting an allow anyway gives no code and records nothing.
    let posted = browser
        .post(&app.url("/consent"), &[("tx", txs[1].as_str()), ("csrf", csrf.as_str()), ("decision", "allow")])
        .await;
    let (error, description) = error_at_callback(&posted);
    assert_eq!(error, "consent_required", "{description}");
    // Nor does /authorize in the impersonation session skip the consent.
    let direct = browser.get(&url).await;
    let (error, description) = error_at_callback(&direct);
    assert_eq!(error, "consent_required", "{description}");
    // A third party that does not accept impersonation refuses the session outright.
    let (closed, _) = web_client(&app, json!({ "name": "Closed third party", "is_first_party": false })).await;
    let refused = browser.get(&auth_url(&app, &closed, "openid profile", &[])).await;
    let (error, description) = error_at_callback(&refused);
    assert_eq!(error, "access_denied", "{description}");
    assert!(!refused.body.contains("name=\"decision\""), "{}", refused.body);

    assert!(app.logs_of_type("scoa").await.is_empty(), "consent was recorded during impersonation");
    assert!(
        app.logs_of_type("seacft").await.iter().all(|e| e["client_id"] != third_party.as_str()),
        "the third party exchanged a code"
    );

    // The user's own next login still asks for consent.
    let own = Browser::new();
    let after_login = own.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(after_login.status, 302, "{}", after_login.body);
    let location = after_login.location.unwrap();
    assert!(location.starts_with("/consent?tx="), "the consent given during impersonation was kept: {location}");
    let consent = own.get(&app.url(&location)).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Third party"), "{}", consent.body);
}

// ---------------------------------------------------------------------------------------
// 5. A broken chain ends the impersonation.

async fn blocking_the_impersonator_ends_the_impersonation(app: TestApp) {
    let (agent, _) = support_agent(&app).await;
    let imp = impersonate(&app, &agent).await;

    let (status, body) = app.patch(&format!("/api/v2/users/{}", urlencode(&agent)), &json!({ "blocked": true })).await;
    assert_eq!(status, 200, "{body}");

    // The first use after the block: /authorize in the impersonation session answers
    // the client with an error, not a code.
    let page = imp.browser.get(&auth_url(&app, &imp.client_id, "openid", &[])).await;
    let (error, description) = error_at_callback(&page);
    assert_eq!(error, "access_denied", "{description}");
    assert!(description.contains("The impersonation has ended"), "{description}");
    let event = assert_ended_by_broken_chain(&app, &imp, &agent).await;
    assert!(event["details"]["refusal"].as_str().unwrap_or_default().contains("blocked"), "{event}");
    assert_tokens_dead(&app, &imp).await;

    // The session is gone: the next /authorize asks for a login.
    let page = imp.browser.get(&auth_url(&app, &imp.client_id, "openid", &[])).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(page.location.as_deref().unwrap().starts_with("/login?tx="), "{page:?}");
    assert_eq!(app.logs_of_type("guise_impersonation_ended").await.len(), 1, "ended once");
}

async fn an_impersonator_losing_impersonate_users_ends_the_impersonation(app: TestApp) {
    let (agent, support) = support_agent(&app).await;
    let imp = impersonate(&app, &agent).await;

    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/api/v2/users/{}/roles", urlencode(&agent)),
            Some(&json!({ "roles": [support] })),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // The first use here is /userinfo.
    let (status, body) = userinfo(&app, &imp.access).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    let event = assert_ended_by_broken_chain(&app, &imp, &agent).await;
    assert!(event["details"]["refusal"].as_str().unwrap_or_default().contains("impersonate:users"), "{event}");
    assert_tokens_dead(&app, &imp).await;
    let page = imp.browser.get(&auth_url(&app, &imp.client_id, "openid", &[])).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(page.location.as_deref().unwrap().starts_with("/login?tx="), "no code: {page:?}");
}

async fn deleting_the_impersonator_ends_the_impersonation(app: TestApp) {
    let (agent, _) = support_agent(&app).await;
    let imp = impersonate(&app, &agent).await;

    let (status, body) = app.delete(&format!("/api/v2/users/{}", urlencode(&agent))).await;
    assert_eq!(status, 204, "{body}");

    // The first use here is the refresh grant.
    let (status, body) = refresh(&app, &imp.client_id, &imp.secret, &imp.refresh).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_ended_by_broken_chain(&app, &imp, &agent).await;
    assert_tokens_dead(&app, &imp).await;
    let page = imp.browser.get(&auth_url(&app, &imp.client_id, "openid", &[])).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(page.location.as_deref().unwrap().starts_with("/login?tx="), "no code: {page:?}");
}

// ---------------------------------------------------------------------------------------
// 6. Management API writes beyond the caller's own permissions.

async fn roles_beyond_the_caller_s_permissions_cannot_be_assigned(app: TestApp) {
    let weak = machine(&app, "role clerk", &["update:users", "update:roles", "read:roles", "read:users"]).await;
    let administrator = admin_role(&app).await;
    let deleter = role(&app, "Deleter", &["delete:users"]).await;
    let reader = role(&app, "Reader", &["read:users"]).await;
    let target = user_id(&app, "target@example.com").await;
    let user_roles = format!("/api/v2/users/{}/roles", urlencode(&target));

    let (status, body) =
        app.send_as(&weak.token, Method::POST, &user_roles, Some(&json!({ "roles": [administrator] }))).await;
    assert_ceiling(status, &body, "delete:users", false);
    let (status, body) =
        app.send_as(&weak.token, Method::POST, &user_roles, Some(&json!({ "roles": [deleter] }))).await;
    assert_ceiling(status, &body, "delete:users", true);
    let (status, body) = app
        .send_as(
            &weak.token,
            Method::POST,
            &format!("/api/v2/roles/{deleter}/users"),
            Some(&json!({ "users": [target] })),
        )
        .await;
    assert_ceiling(status, &body, "delete:users", true);
    let (status, body) = app
        .send_as(
            &weak.token,
            Method::POST,
            &format!("/api/v2/roles/{administrator}/users"),
            Some(&json!({ "users": [target] })),
        )
        .await;
    assert_ceiling(status, &body, "create:clients", false);

    let (_, roles) = app.get(&user_roles).await;
    assert_eq!(roles, json!([]), "a refused assignment assigned a role");
    let (_, holders) = app.get(&format!("/api/v2/roles/{deleter}/users")).await;
    assert_eq!(holders, json!([]));
    let refused = refused_calls_by(&app, &weak.id).await;
    assert_eq!(refused.len(), 4, "each refusal is audited: {refused:?}");
    assert!(refused.iter().all(|e| e["details"]["status"] == 403), "{refused:?}");

    // What the client holds itself, it may confer.
    let (status, body) = app.send_as(&weak.token, Method::POST, &user_roles, Some(&json!({ "roles": [reader] }))).await;
    assert_eq!(status, 204, "{body}");
    // A Management API token speaks for the Management API only: permissions on another
    // API are not measured against it, so a role holding only those may be assigned by
    // any client with update:users and update:roles (whoever controls that API decides).
    let invoices = role_on(&app, "Invoices", OTHER_API, &["read:invoices"]).await;
    let (status, body) =
        app.send_as(&weak.token, Method::POST, &user_roles, Some(&json!({ "roles": [invoices] }))).await;
    assert_eq!(status, 204, "{body}");
    let (status, permissions) = app.get(&format!("/api/v2/users/{}/permissions", urlencode(&target))).await;
    assert_eq!(status, 200, "{permissions}");
    let held: Vec<(String, String)> = permissions
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["resource_server_identifier"].as_str().unwrap().to_owned(),
                p["permission_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(held.contains(&(OTHER_API.to_owned(), "read:invoices".to_owned())), "{permissions}");
    assert!(held.contains(&(app.management_audience(), "read:users".to_owned())), "{permissions}");
    assert!(!held.iter().any(|(_, p)| p == "delete:users"), "{permissions}");
}

async fn permissions_beyond_the_caller_s_own_cannot_be_added_to_a_role(app: TestApp) {
    let weak = machine(&app, "role editor", &["update:roles", "read:roles"]).await;
    let empty = role(&app, "Empty", &[]).await;
    let path = format!("/api/v2/roles/{empty}/permissions");
    let permission =
        |name: &str| json!({ "resource_server_identifier": app.management_audience(), "permission_name": name });

    let (status, body) = app
        .send_as(&weak.token, Method::POST, &path, Some(&json!({ "permissions": [permission("delete:users")] })))
        .await;
    assert_ceiling(status, &body, "delete:users", true);
    let (_, held) = app.get(&path).await;
    assert_eq!(held, json!([]), "a refused request added a permission");
    assert_eq!(refused_calls_by(&app, &weak.id).await.len(), 1);

    // Its own permissions it may add; then the role is as strong as the client, no more.
    let (status, body) = app
        .send_as(&weak.token, Method::POST, &path, Some(&json!({ "permissions": [permission("read:roles")] })))
        .await;
    assert_eq!(status, 201, "{body}");
    // Another API's permission is not the Management API token's to measure.
    let other = json!({ "resource_server_identifier": OTHER_API, "permission_name": "read:invoices" });
    let (status, body) = app.send_as(&weak.token, Method::POST, &path, Some(&json!({ "permissions": [other] }))).await;
    assert_eq!(status, 201, "{body}");
    let (_, held) = app.get(&path).await;
    assert_eq!(held.as_array().map(Vec::len), Some(2), "{held}");

    // A role already stronger than the client cannot be edited by it at all.
    let strong = role(&app, "Strong", &["delete:users"]).await;
    let (status, body) = app
        .send_as(
            &weak.token,
            Method::POST,
            &format!("/api/v2/roles/{strong}/permissions"),
            Some(&json!({ "permissions": [permission("read:roles")] })),
        )
        .await;
    assert_ceiling(status, &body, "delete:users", true);
}

async fn a_stronger_user_s_credentials_email_and_block_are_out_of_reach(app: TestApp) {
    let weak = machine(&app, "profile desk", &["update:users", "update:roles", "read:roles", "read:users"]).await;
    let admin = format!("/api/v2/users/{}", urlencode(&app.admin_user_id));

    for change in [
        json!({ "password": "a brand new password 123" }),
        json!({ "email": "attacker@example.com" }),
        json!({ "blocked": true }),
        json!({ "username": "attacker" }),
    ] {
        let (status, body) = app.send_as(&weak.token, Method::PATCH, &admin, Some(&change)).await;
        assert_ceiling(status, &body, "delete:users", false);
    }
    let (status, body) = app.send_as(&weak.token, Method::PATCH, &admin, Some(&json!({ "name": "x" }))).await;
    assert_eq!(status, 200, "a profile field is not authority: {body}");
    assert_eq!(body["name"], "x");

    let (_, unchanged) = app.get(&admin).await;
    assert_eq!(unchanged["email"], ADMIN_EMAIL, "{unchanged}");
    assert_eq!(unchanged["blocked"], false, "{unchanged}");
    assert!(unchanged.get("username").is_none(), "{unchanged}");
    assert_eq!(refused_calls_by(&app, &weak.id).await.len(), 4);
    // The admin's password is unchanged: the admin still logs in with it.
    let (web, _) = web_client(&app, json!({})).await;
    let done = Browser::new().login_via(&app, &auth_url(&app, &web, "openid", &[]), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(at_callback(&done).contains_key("code"), "{done:?}");

    // The same password change for an ordinary user is allowed.
    let grace = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let new_password = "a brand new password 123";
    let (status, body) = app
        .send_as(
            &weak.token,
            Method::PATCH,
            &format!("/api/v2/users/{}", urlencode(&grace)),
            Some(&json!({ "password": new_password })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = Browser::new().login_via(&app, &auth_url(&app, &web, "openid", &[]), USER_EMAIL, new_password).await;
    assert!(at_callback(&done).contains_key("code"), "the new password works: {done:?}");
}

async fn grants_beyond_the_caller_s_permissions_cannot_be_created(app: TestApp) {
    let granter = machine(&app, "granter", &["create:client_grants", "read:client_grants"]).await;
    let (status, other) = app.post("/api/v2/clients", &json!({ "name": "other", "app_type": "non_interactive" })).await;
    assert_eq!(status, 201, "{other}");
    let other = other["client_id"].as_str().unwrap().to_owned();

    for client in [&granter.id, &other] {
        let (status, body) = app
            .send_as(
                &granter.token,
                Method::POST,
                "/api/v2/client-grants",
                Some(&json!({ "client_id": client, "audience": app.management_audience(), "scope": ["delete:users"] })),
            )
            .await;
        assert_ceiling(status, &body, "delete:users", true);
    }
    let (_, grants) = app.get(&format!("/api/v2/client-grants?client_id={other}")).await;
    assert_eq!(grants, json!([]), "a refused grant was created");
    let (_, grants) = app.get(&format!("/api/v2/client-grants?client_id={}", granter.id)).await;
    assert_eq!(grants[0]["scope"], json!(["create:client_grants", "read:client_grants"]), "{grants}");
    assert_eq!(refused_calls_by(&app, &granter.id).await.len(), 2);
    // The client's own token still cannot reach delete:users.
    let (status, body) = token_endpoint(
        &app,
        &granter.id,
        &granter.secret,
        &[("grant_type", "client_credentials"), ("scope", "delete:users")],
    )
    .await;
    assert!(matches!(status, 400 | 403), "{status} {body}");
    assert_eq!(body["error"], "invalid_scope", "{body}");
    assert!(body.get("access_token").is_none(), "{body}");

    // What it holds, it may grant.
    let (status, body) = app
        .send_as(
            &granter.token,
            Method::POST,
            "/api/v2/client-grants",
            Some(
                &json!({ "client_id": other, "audience": app.management_audience(), "scope": ["read:client_grants"] }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn a_stronger_client_s_secret_cannot_be_rotated(app: TestApp) {
    let rotator = machine(&app, "rotator", &["update:clients", "read:clients"]).await;
    let (status, body) = app
        .send_as(
            &rotator.token,
            Method::POST,
            &format!("/api/v2/clients/{}/rotate-secret", app.management_client_id),
            Some(&json!({})),
        )
        .await;
    assert_ceiling(status, &body, "delete:users", false);
    assert!(body.get("client_secret").is_none(), "{body}");
    assert_eq!(refused_calls_by(&app, &rotator.id).await.len(), 1);
    // The management client's secret still works.
    app.client_token(&app.management_client_id, &app.management_client_secret, None).await;

    // A client with no grants is no stronger than the rotator.
    let (web, old_secret) = web_client(&app, json!({})).await;
    let (status, rotated) = app
        .send_as(&rotator.token, Method::POST, &format!("/api/v2/clients/{web}/rotate-secret"), Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["client_secret"].as_str(), Some(old_secret.as_str()));
}

async fn the_management_client_keeps_all_its_powers(app: TestApp) {
    let administrator = admin_role(&app).await;
    let target = user_id(&app, "new-admin@example.com").await;
    assign(&app, &target, &administrator).await;
    let (_, roles) = app.get(&format!("/api/v2/users/{}/roles", urlencode(&target))).await;
    assert_eq!(roles[0]["id"], administrator.as_str(), "{roles}");

    let role_id = role(&app, "Anything", &["delete:users", "create:client_grants"]).await;
    let other = json!({ "resource_server_identifier": OTHER_API, "permission_name": "read:invoices" });
    let (status, body) =
        app.post(&format!("/api/v2/roles/{role_id}/permissions"), &json!({ "permissions": [other] })).await;
    assert_eq!(status, 201, "{body}");
    let (_, held) = app.get(&format!("/api/v2/roles/{role_id}/permissions")).await;
    assert_eq!(held.as_array().map(Vec::len), Some(3), "{held}");

    let strong = machine(&app, "strong", &["delete:users", "update:clients", "create:client_grants"]).await;
    let (status, body) = app.patch(&format!("/api/v2/users/{}", urlencode(&target)), &json!({ "blocked": true })).await;
    assert_eq!(status, 200, "the management client may block an administrator: {body}");
    let (status, rotated) = app.post(&format!("/api/v2/clients/{}/rotate-secret", strong.id), &json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, strong.secret);
    app.client_token(&strong.id, new_secret, None).await;
    let (status, body) = app
        .post(
            "/api/v2/client-grants",
            &json!({ "client_id": web_client(&app, json!({})).await.0, "audience": OTHER_API, "scope": ["read:invoices"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(refused_calls_by(&app, &app.management_client_id).await.is_empty(), "nothing was refused");
}

// ---------------------------------------------------------------------------------------
// Found by attacking the first version.

/// A caller that may only create clients makes a first-party client and lures an
/// administrator through it: without a client grant on the Management API the client
/// obtains no Management API token, silently or otherwise.
async fn a_client_nobody_granted_the_management_api_cannot_harvest_admin_tokens(app: TestApp) {
    let maker = machine(&app, "client maker", &["create:clients"]).await;
    let (status, created) = app
        .send_as(
            &maker.token,
            Method::POST,
            "/api/v2/clients",
            Some(&json!({
                "name": "Harvester",
                "app_type": "regular_web",
                "callbacks": [CALLBACK],
                "grant_types": ["authorization_code"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let audience = app.management_audience();
    let url = auth_url(&app, &client_id, "openid read:users delete:users", &[("audience", &audience)]);
    let browser = Browser::new();
    // Refused before anyone is asked to log in…
    let (error, description) = error_at_callback(&browser.get(&url).await);
    assert_eq!(error, "access_denied");
    assert!(description.contains("not authorized for the Management API"), "{description}");
    // …and silently, in the administrator's own session: the same.
    let done = browser.login_via(&app, &auth_url(&app, &client_id, "openid", &[]), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(at_callback(&done).contains_key("code"));
    let page = browser.get(&auth_url(&app, &client_id, "openid", &[("audience", &audience), ("prompt", "none")])).await;
    assert_eq!(error_at_callback(&page).0, "access_denied");

    // Granted the Management API (by someone who holds what it grants), the client's user
    // tokens carry only what both the user and the grant hold.
    let (status, grant) = app
        .post(
            "/api/v2/client-grants",
            &json!({ "client_id": client_id, "audience": audience, "scope": ["read:users"] }),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let page =
        browser.get(&auth_url(&app, &client_id, "openid read:users delete:users", &[("audience", &audience)])).await;
    let code = at_callback(&page)["code"].clone();
    let (status, tokens) = exchange(&app, &client_id, &secret, &code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid read:users", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.send_as(access, Method::GET, "/api/v2/users", None).await.0, 200);
    // Removing the grant stops the user tokens issued through it.
    let (status, _) = app.delete(&format!("/api/v2/client-grants/{}", grant["id"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    let (status, body) = app.send_as(access, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 401, "{body}");
}

/// Blocking is the emergency stop: the user's sessions end and their tokens die at once,
/// so SSO gives them nothing more over any protocol.
async fn blocking_a_user_ends_their_sessions_everywhere(app: TestApp) {
    let grace = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let (client_id, secret) = web_client(&app, json!({})).await;
    let (introspector, introspector_secret) = web_client(&app, json!({ "name": "Introspector" })).await;
    let browser = Browser::new();
    let done = browser
        .login_via(&app, &auth_url(&app, &client_id, "openid offline_access", &[]), USER_EMAIL, USER_PASSWORD)
        .await;
    let code = at_callback(&done)["code"].clone();
    let (status, tokens) = exchange(&app, &client_id, &secret, &code).await;
    assert_eq!(status, 200, "{tokens}");

    let (status, body) = app.patch(&format!("/api/v2/users/{}", urlencode(&grace)), &json!({ "blocked": true })).await;
    assert_eq!(status, 200, "{body}");

    let page = browser.get(&auth_url(&app, &client_id, "openid", &[("prompt", "none")])).await;
    assert_eq!(error_at_callback(&page).0, "login_required", "the SSO session ended");
    let (status, body) = refresh(&app, &client_id, &secret, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.0, 401);
    assert_eq!(introspect(&app, &introspector, &introspector_secret, access).await, json!({ "active": false }));
}

/// Introspection answers for a user's token as the user stands now: narrowed when a role
/// is removed, inactive when the user is blocked or deleted.
async fn introspection_follows_the_user_s_current_standing(app: TestApp) {
    let grace = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let refunds = role_on(&app, "Refunds", OTHER_API, &["refund:orders"]).await;
    assign(&app, &grace, &refunds).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let (introspector, introspector_secret) = web_client(&app, json!({ "name": "Introspector" })).await;
    let browser = Browser::new();
    let url = auth_url(&app, &client_id, "openid refund:orders", &[("audience", OTHER_API)]);
    let done = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    let (status, tokens) = exchange(&app, &client_id, &secret, &at_callback(&done)["code"]).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let before = introspect(&app, &introspector, &introspector_secret, access).await;
    assert_eq!((before["active"].as_bool(), before["scope"].as_str()), (Some(true), Some("openid refund:orders")));

    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v2/users/{}/roles", urlencode(&grace)),
            Some(&json!({ "roles": [refunds] })),
        )
        .await;
    assert_eq!(status, 204);
    let after = introspect(&app, &introspector, &introspector_secret, access).await;
    assert_eq!((after["active"].as_bool(), after["scope"].as_str()), (Some(true), Some("openid")), "{after}");

    let (status, _) = app.delete(&format!("/api/v2/users/{}", urlencode(&grace))).await;
    assert_eq!(status, 204);
    assert_eq!(introspect(&app, &introspector, &introspector_secret, access).await, json!({ "active": false }));
}

async fn a_stronger_user_s_metadata_and_a_stronger_role_s_name_are_out_of_reach(app: TestApp) {
    let helpdesk = machine(&app, "helpdesk", &["read:users", "update:users", "read:roles", "update:roles"]).await;
    let admin = app.admin_user_id.clone();
    for patch in [
        json!({ "app_metadata": { "role": "nobody" } }),
        json!({ "external_id": "sis-admin" }),
        json!({ "email_verified": false }),
    ] {
        let (status, body) = app
            .send_as(&helpdesk.token, Method::PATCH, &format!("/api/v2/users/{}", urlencode(&admin)), Some(&patch))
            .await;
        assert_ceiling(status, &body, "delete:users", false);
    }
    let (status, roles) = app.get("/api/v2/roles").await;
    assert_eq!(status, 200);
    let admin_role =
        roles.as_array().unwrap().iter().find(|r| r["name"] == ADMIN_ROLE).unwrap()["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .send_as(
            &helpdesk.token,
            Method::PATCH,
            &format!("/api/v2/roles/{admin_role}"),
            Some(&json!({ "name": "Guests" })),
        )
        .await;
    assert_ceiling(status, &body, "delete:users", false);
}

/// A `ttl` beyond any duration is refused like any other bad `ttl`, not a panic.
async fn an_enormous_ttl_is_a_400(app: TestApp) {
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let target = user(&app).await["user_id"].as_str().unwrap().to_owned();
    let mut body = mint_body(&app, &client_id);
    body["ttl"] = json!(i64::MAX);
    let (status, text) = mint_with(&app, &app.token, &target, &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ttl must be between 1 and"), "{text}");
}
