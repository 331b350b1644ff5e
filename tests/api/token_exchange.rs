//! RFC 8693 token exchange at `/oauth/token`, driven as a back end would: impersonation
//! (a token for a user), delegation (`act`, only where the user's `may_act` allows it),
//! scope narrowing, targets, and the authority ceiling.

use crate::both_backends;
use crate::helpers::{TestApp, split};
use crate::oidc::decode_payload;
use crate::users::urlencode;
use serde_json::{Value, json};

both_backends!(
    impersonation_issues_a_token_for_the_user_and_names_the_client,
    scope_only_narrows_and_targets_are_checked,
    only_trusted_clients_exchange_and_never_beyond_their_authority,
    delegation_needs_may_act_and_nests_act,
    subject_tokens_are_verified,
);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const USER_ID: &str = "urn:guise:params:oauth:token-type:user_id";
const SHOP: &str = "https://shop.example.com/";

/// A machine client that may exchange tokens (`allow_token_exchange`, and
/// `impersonate:users` in its Management API grant).
async fn back_end(app: &TestApp, name: &str, scopes: &[&str]) -> (String, String) {
    let (id, secret) = app.machine_client(name, scopes).await;
    let (status, body) = app.patch(&format!("/api/v2/clients/{id}"), &json!({ "allow_token_exchange": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allow_token_exchange"], true);
    (id, secret)
}

/// Grace, holding `read:orders` on the shop API.
async fn grace(app: &TestApp) -> String {
    let user = app.create_user("grace@example.com").await;
    let id = user["user_id"].as_str().unwrap().to_owned();
    let (status, role) = app.post("/api/v2/roles", &json!({ "name": "Shopper" })).await;
    assert_eq!(status, 200, "{role}");
    let role_id = role["id"].as_str().unwrap();
    let permissions =
        json!({ "permissions": [{ "resource_server_identifier": SHOP, "permission_name": "read:orders" }] });
    assert_eq!(app.post(&format!("/api/v2/roles/{role_id}/permissions"), &permissions).await.0, 201);
    let roles = json!({ "roles": [role_id] });
    assert_eq!(app.post(&format!("/api/v2/users/{}/roles", urlencode(&id)), &roles).await.0, 204);
    id
}

async fn exchange(app: &TestApp, client: &(String, String), form: &[(&str, &str)]) -> (u16, Value) {
    let mut body = vec![("grant_type", GRANT)];
    body.extend_from_slice(form);
    split(
        app.http.post(app.url("/oauth/token")).basic_auth(&client.0, Some(&client.1)).form(&body).send().await.unwrap(),
    )
    .await
}

#[track_caller]
fn assert_error(result: &(u16, Value), error: &str) {
    assert_eq!((result.0, result.1["error"].as_str()), (400, Some(error)), "{}", result.1);
}

async fn impersonation_issues_a_token_for_the_user_and_names_the_client(app: TestApp) {
    let client = back_end(&app, "orders back end", &["impersonate:users"]).await;
    let user = grace(&app).await;
    let (status, body) =
        exchange(&app, &client, &[("subject_token", &user), ("subject_token_type", USER_ID), ("audience", SHOP)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read:orders");
    assert!(body.get("refresh_token").is_none());
    let claims = decode_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["aud"], SHOP);
    assert_eq!(claims["azp"], client.0.as_str());
    assert_eq!(claims["gty"], "token-exchange");
    assert!(claims.get("act").is_none(), "impersonation carries no act: {claims}");

    // Introspection knows it, and the audit log names the client and the user.
    let (introspector, introspector_secret) = app.machine_client("introspector", &[]).await;
    let (status, active) = split(
        app.http
            .post(app.url("/oauth/introspect"))
            .basic_auth(&introspector, Some(&introspector_secret))
            .form(&[("token", body["access_token"].as_str().unwrap())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, active["active"].as_bool(), active["sub"].as_str()), (200, Some(true), Some(user.as_str())));
    let events = app.logs_of_type("guise_token_exchange").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"]["id"], client.0.as_str());
    assert_eq!(events[0]["user_id"], user.as_str());

    // Discovery says so.
    let (_, discovery) = app.get("/.well-known/openid-configuration").await;
    assert!(discovery["grant_types_supported"].as_array().unwrap().iter().any(|g| g == GRANT), "{discovery}");
}

async fn scope_only_narrows_and_targets_are_checked(app: TestApp) {
    let client = back_end(&app, "orders back end", &["impersonate:users"]).await;
    let user = grace(&app).await;
    let subject = [("subject_token", user.as_str()), ("subject_token_type", USER_ID)];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut form = subject.to_vec();
        form.extend_from_slice(extra);
        form
    };
    let narrowed = exchange(&app, &client, &with(&[("audience", SHOP), ("scope", "read:orders")])).await;
    assert_eq!((narrowed.0, narrowed.1["scope"].as_str()), (200, Some("read:orders")), "{}", narrowed.1);
    assert_error(
        &exchange(&app, &client, &with(&[("audience", SHOP), ("scope", "refund:orders")])).await,
        "invalid_scope",
    );
    // `resource` (RFC 8707) names the same target; two different targets are refused.
    let by_resource = exchange(&app, &client, &with(&[("resource", SHOP)])).await;
    assert_eq!(by_resource.0, 200, "{}", by_resource.1);
    assert_error(
        &exchange(&app, &client, &with(&[("audience", SHOP), ("resource", "https://other.example.com/")])).await,
        "invalid_target",
    );
    // No Management API tokens: acting as a user there is what as_user_id is for.
    let management = app.management_audience();
    let refused = exchange(&app, &client, &[subject[0], subject[1], ("audience", &management)]).await;
    assert_error(&refused, "invalid_target");
    assert_error(
        &exchange(&app, &client, &with(&[("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")]))
            .await,
        "invalid_request",
    );
    assert_error(&exchange(&app, &client, &[("audience", SHOP)]).await, "invalid_request");
}

async fn only_trusted_clients_exchange_and_never_beyond_their_authority(app: TestApp) {
    let user = grace(&app).await;
    let subject = [("subject_token", user.as_str()), ("subject_token_type", USER_ID), ("audience", SHOP)];
    // Without allow_token_exchange, a client may not exchange at all, even listing the
    // grant type (Auth0's way) and holding impersonate:users.
    let plain = app.machine_client("plain", &["impersonate:users"]).await;
    assert_error(&exchange(&app, &plain, &subject).await, "unauthorized_client");
    let listed = format!("/api/v2/clients/{}", plain.0);
    let (status, body) = app.patch(&listed, &json!({ "grant_types": ["client_credentials", GRANT] })).await;
    assert_eq!((status, &body["allow_token_exchange"]), (200, &json!(false)), "{body}");
    let refused = exchange(&app, &plain, &subject).await;
    assert_error(&refused, "unauthorized_client");
    assert!(refused.1["error_description"].as_str().unwrap().contains("allow_token_exchange"), "{:?}", refused);
    // Only a confidential client may be allowed to.
    let (status, spa) =
        app.post("/api/v2/clients", &json!({ "name": "spa", "app_type": "spa", "allow_token_exchange": true })).await;
    assert_eq!(status, 400, "{spa}");
    // With the grant type but without impersonate:users: refused too.
    let untrusted = back_end(&app, "untrusted", &["read:users"]).await;
    assert_error(&exchange(&app, &untrusted, &subject).await, "unauthorized_client");
    // The authority ceiling: an administrator's powers are beyond a client that lacks them.
    let client = back_end(&app, "orders back end", &["impersonate:users"]).await;
    let admin = app.admin_user_id.clone();
    let refused =
        exchange(&app, &client, &[("subject_token", &admin), ("subject_token_type", USER_ID), ("audience", SHOP)])
            .await;
    assert_error(&refused, "invalid_grant");
    assert!(
        refused.1["error_description"].as_str().unwrap().contains("lacks permissions the user holds"),
        "{}",
        refused.1
    );
    assert_eq!(app.logs_of_type("guise_token_exchange_failed").await.len(), 4, "every refusal is audited");
    // Blocked users get nothing.
    assert_eq!(app.patch(&format!("/api/v2/users/{}", urlencode(&user)), &json!({ "blocked": true })).await.0, 200);
    assert_error(&exchange(&app, &client, &subject).await, "invalid_grant");
}

async fn delegation_needs_may_act_and_nests_act(app: TestApp) {
    let client = back_end(&app, "orders back end", &["impersonate:users"]).await;
    let user = grace(&app).await;
    // The actor: a service with its own client-credentials token.
    let (actor_id, actor_secret) = app.machine_client("reporting service", &["read:users"]).await;
    let actor_token = app.client_token(&actor_id, &actor_secret, None).await;
    let actor_sub = format!("{actor_id}@clients");
    let form = [
        ("subject_token", user.as_str()),
        ("subject_token_type", USER_ID),
        ("actor_token", actor_token.as_str()),
        ("actor_token_type", ACCESS),
        ("audience", SHOP),
    ];
    let refused = exchange(&app, &client, &form).await;
    assert_error(&refused, "invalid_grant");
    assert!(refused.1["error_description"].as_str().unwrap().contains("may_act"), "{}", refused.1);

    let may_act = json!({ "app_metadata": { "may_act": { "sub": actor_sub } } });
    assert_eq!(app.patch(&format!("/api/v2/users/{}", urlencode(&user)), &may_act).await.0, 200);
    let (status, body) = exchange(&app, &client, &form).await;
    assert_eq!(status, 200, "{body}");
    let delegated = body["access_token"].as_str().unwrap().to_owned();
    let claims = decode_payload(&delegated);
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["act"], json!({ "sub": actor_sub }));
    assert_eq!(claims["may_act"], json!({ "sub": actor_sub }));
    let events = app.logs_of_type("guise_token_exchange").await;
    assert_eq!(events[0]["on_behalf_of"], actor_sub.as_str(), "{events:?}");

    // A second hop: Grace's token, delegated to the service, now acts for another user who
    // allows Grace: the prior actor nests inside the new one (RFC 8693 §4.1).
    let other = app.create_user("ada@example.com").await["user_id"].as_str().unwrap().to_owned();
    let allow_grace = json!({ "app_metadata": { "may_act": [{ "sub": user }] } });
    assert_eq!(app.patch(&format!("/api/v2/users/{}", urlencode(&other)), &allow_grace).await.0, 200);
    let (status, body) = exchange(
        &app,
        &client,
        &[
            ("subject_token", &other),
            ("subject_token_type", USER_ID),
            ("actor_token", &delegated),
            ("actor_token_type", ACCESS),
            ("audience", SHOP),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let nested = decode_payload(body["access_token"].as_str().unwrap());
    assert_eq!(nested["act"], json!({ "sub": user, "act": { "sub": actor_sub } }));
}

async fn subject_tokens_are_verified(app: TestApp) {
    let client = back_end(&app, "orders back end", &["impersonate:users"]).await;
    let user = grace(&app).await;
    // Exchanging one of the user's tokens narrows within it; here the token names the
    // user through a previous exchange for the shop API.
    let (_, first) =
        exchange(&app, &client, &[("subject_token", &user), ("subject_token_type", USER_ID), ("audience", SHOP)]).await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    let (status, body) =
        exchange(&app, &client, &[("subject_token", &token), ("subject_token_type", ACCESS), ("audience", SHOP)]).await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("read:orders")), "{body}");
    assert!(
        decode_payload(body["access_token"].as_str().unwrap())["exp"].as_i64()
            <= decode_payload(&token)["exp"].as_i64()
    );

    // A tampered token, a machine's token and an unknown user are refused.
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let refused = exchange(&app, &client, &[("subject_token", &tampered), ("subject_token_type", ACCESS)]).await;
    assert_error(&refused, "invalid_request");
    let machine = app.client_token(&client.0, &client.1, None).await;
    assert_error(
        &exchange(&app, &client, &[("subject_token", &machine), ("subject_token_type", ACCESS)]).await,
        "invalid_request",
    );
    assert_error(
        &exchange(&app, &client, &[("subject_token", "guise|nobody"), ("subject_token_type", USER_ID)]).await,
        "invalid_grant",
    );
    assert_error(
        &exchange(&app, &client, &[("subject_token", &user), ("subject_token_type", "urn:x")]).await,
        "invalid_request",
    );
    // A revoked subject token is refused.
    let (status, _) = split(
        app.http
            .post(app.url("/oauth/revoke"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_error(
        &exchange(&app, &client, &[("subject_token", &token), ("subject_token_type", ACCESS)]).await,
        "invalid_request",
    );
}
