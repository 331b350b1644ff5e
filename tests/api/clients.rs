//! `/api/v2/clients` and `/api/v2/client-grants`: registration defaults, the secret shown
//! once, rotation, patching, deletion, the grants that gate client-credentials tokens,
//! scope enforcement, and the audit trail (which never holds a secret).

use crate::both_backends;
use crate::helpers::{TestApp, split};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    create_returns_the_secret_once_and_get_never_does,
    new_clients_get_defaults_per_app_type,
    clients_list_with_totals_and_pages,
    invalid_registrations_are_refused,
    tokens_follow_the_client_grant,
    client_grant_errors,
    rotating_the_secret_retires_the_old_one,
    patch_is_reflected_on_get,
    invalid_patches_are_refused,
    deleting_a_client_ends_its_access,
    client_routes_enforce_their_scopes,
    client_writes_are_audited_without_secrets,
);

/// A raw client-credentials token request (client_secret_post).
async fn token_request(app: &TestApp, client_id: &str, secret: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    split(app.http.post(app.url("/oauth/token")).form(&form).send().await.unwrap()).await
}

async fn create_client(app: &TestApp, body: Value) -> Value {
    let (status, client) = app.post("/api/v2/clients", &body).await;
    assert_eq!(status, 201, "{client}");
    client
}

fn id_of(client: &Value) -> String {
    client["client_id"].as_str().expect("client_id").to_owned()
}

fn secret_of(client: &Value) -> String {
    client["client_secret"].as_str().expect("client_secret").to_owned()
}

/// Every audit event, oldest first, by checkpoint pagination.
async fn all_logs(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut from = "0".to_owned();
    loop {
        let (status, page) = app.get(&format!("/api/v2/logs?from={from}&take=100")).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().cloned().unwrap();
        let Some(last) = page.last() else { break };
        from = last["log_id"].as_str().unwrap().to_owned();
        all.extend(page);
    }
    all
}

fn assert_api_error(status: u16, body: &Value, expected_status: u16, error_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["statusCode"], expected_status, "{body}");
    assert_eq!(body["errorCode"], error_code, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn create_returns_the_secret_once_and_get_never_does(app: TestApp) {
    let created = create_client(
        &app,
        json!({ "name": "Billing worker", "description": "nightly jobs", "app_type": "non_interactive" }),
    )
    .await;
    let id = id_of(&created);
    let secret = secret_of(&created);
    assert!(id.len() >= 32, "{created}");
    assert!(secret.len() >= 43, "a 256-bit secret: {created}");
    assert_eq!(created["name"], "Billing worker");
    assert_eq!(created["description"], "nightly jobs");
    assert_eq!(created["app_type"], "non_interactive");
    assert!(created["created_at"].as_str().is_some_and(|d| d.ends_with('Z')), "{created}");

    let (status, fetched) = app.get(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(status, 200, "{fetched}");
    assert!(fetched.get("client_secret").is_none(), "GET must not show the secret: {fetched}");
    assert!(fetched.get("client_secret_hash").is_none(), "{fetched}");
    assert!(!fetched.to_string().contains(&secret), "{fetched}");
    assert_eq!(fetched["client_id"], id.as_str());
    assert_eq!(fetched["name"], "Billing worker");
    assert_eq!(fetched["created_at"], created["created_at"]);

    // The list does not show it either.
    let (status, list) = app.get("/api/v2/clients?per_page=100").await;
    assert_eq!(status, 200, "{list}");
    assert!(!list.to_string().contains(&secret));
    assert!(list.as_array().unwrap().iter().all(|c| c.get("client_secret").is_none()), "{list}");

    // Unknown client.
    let (status, body) = app.get("/api/v2/clients/no-such-client").await;
    assert_api_error(status, &body, 404, "inexistent_resource");
}

async fn new_clients_get_defaults_per_app_type(app: TestApp) {
    let m2m = create_client(&app, json!({ "name": "m2m", "app_type": "non_interactive" })).await;
    assert_eq!(m2m["grant_types"], json!(["client_credentials"]), "{m2m}");
    assert_eq!(m2m["token_endpoint_auth_method"], "client_secret_post", "{m2m}");
    assert!(m2m["client_secret"].as_str().is_some_and(|s| !s.is_empty()), "{m2m}");

    let spa = create_client(
        &app,
        json!({ "name": "spa", "app_type": "spa", "callbacks": ["https://app.example.com/callback"] }),
    )
    .await;
    assert_eq!(spa["token_endpoint_auth_method"], "none", "{spa}");
    assert!(spa.get("client_secret").is_none(), "a public client has no secret: {spa}");
    assert_eq!(spa["grant_types"], json!(["authorization_code", "refresh_token"]), "{spa}");
    assert_eq!(spa["callbacks"], json!(["https://app.example.com/callback"]), "{spa}");

    let native = create_client(&app, json!({ "name": "native", "app_type": "native" })).await;
    assert_eq!(native["token_endpoint_auth_method"], "none", "{native}");
    assert!(native.get("client_secret").is_none(), "{native}");

    // No app_type: a regular web application, confidential.
    let web = create_client(&app, json!({ "name": "web" })).await;
    assert_eq!(web["app_type"], "regular_web", "{web}");
    assert_eq!(web["token_endpoint_auth_method"], "client_secret_post", "{web}");
    assert_eq!(web["grant_types"], json!(["authorization_code", "refresh_token", "client_credentials"]), "{web}");
    assert!(web["client_secret"].as_str().is_some(), "{web}");
    assert_eq!(web["is_first_party"], true, "{web}");
    assert_eq!(web["allow_impersonation"], false, "{web}");
    assert_eq!(web["callbacks"], json!([]), "{web}");

    // Defaults persist: GET shows what creation answered.
    for created in [&m2m, &spa, &native, &web] {
        let (status, fetched) = app.get(&format!("/api/v2/clients/{}", id_of(created))).await;
        assert_eq!(status, 200, "{fetched}");
        for key in ["app_type", "grant_types", "token_endpoint_auth_method", "callbacks", "name"] {
            assert_eq!(fetched[key], created[key], "{key}: {fetched}");
        }
    }

    // Explicit settings win over the defaults.
    let basic = create_client(
        &app,
        json!({ "name": "basic", "app_type": "non_interactive", "token_endpoint_auth_method": "client_secret_basic" }),
    )
    .await;
    assert_eq!(basic["token_endpoint_auth_method"], "client_secret_basic", "{basic}");
    assert!(basic["client_secret"].as_str().is_some(), "{basic}");
}

async fn clients_list_with_totals_and_pages(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        ids.push(id_of(&create_client(&app, json!({ "name": name, "app_type": "non_interactive" })).await));
    }

    let (status, body) = app.get("/api/v2/clients?include_totals=true").await;
    assert_eq!(status, 200, "{body}");
    // The management and console clients plus the three.
    assert_eq!(body["total"], 5, "{body}");
    assert_eq!(body["start"], 0, "{body}");
    assert_eq!(body["limit"], 50, "{body}");
    assert_eq!(body["length"], 5, "{body}");
    let listed: Vec<&str> =
        body["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 5, "{body}");
    for id in &ids {
        assert!(listed.contains(&id.as_str()), "{id} missing from {body}");
    }
    assert!(listed.contains(&app.management_client_id.as_str()));

    // Pages partition the list.
    let mut paged = Vec::new();
    for page in 0..3 {
        let (status, body) = app.get(&format!("/api/v2/clients?include_totals=true&per_page=2&page={page}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 5, "{body}");
        assert_eq!(body["start"], page * 2, "{body}");
        assert_eq!(body["limit"], 2, "{body}");
        assert_eq!(body["length"], if page < 2 { 2 } else { 1 }, "{body}");
        paged.extend(body["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_owned()));
    }
    paged.sort();
    paged.dedup();
    assert_eq!(paged.len(), 5, "three pages of two hold five distinct clients");

    // Without include_totals: a bare array.
    let (status, body) = app.get("/api/v2/clients?per_page=3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(3), "{body}");
}

async fn invalid_registrations_are_refused(app: TestApp) {
    let bad = [
        json!({ "name": "x", "unknown_field": true }),
        json!({ "app_type": "spa" }),
        json!({ "name": "" }),
        json!({ "name": "x", "app_type": "desktop" }),
        json!({ "name": "x", "token_endpoint_auth_method": "private_key_jwt" }),
        json!({ "name": "x", "grant_types": ["password"] }),
        json!({ "name": "x", "app_type": "spa", "grant_types": ["client_credentials"] }),
        json!({ "name": "x", "callbacks": ["not a url"] }),
        json!({ "name": "x", "callbacks": ["https://app.example.com/cb#fragment"] }),
        json!({ "name": "x", "allowed_logout_urls": ["javascript:alert(1)"] }),
        json!({ "name": "x", "initiate_login_uri": "http://app.example.com/login" }),
        json!({ "name": "x", "callbacks": "https://app.example.com/cb" }),
        json!({ "name": "x", "client_secret": "chosen-by-the-caller" }),
    ];
    for body in bad {
        let (status, response) = app.post("/api/v2/clients", &body).await;
        assert_api_error(status, &response, 400, "invalid_body");
        assert!(response.get("client_secret").is_none(), "{body} -> {response}");
    }
    // Nothing was created.
    let (status, body) = app.get("/api/v2/clients?include_totals=true").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 2, "only the management and console clients: {body}");
}

async fn tokens_follow_the_client_grant(app: TestApp) {
    let client = create_client(&app, json!({ "name": "worker", "app_type": "non_interactive" })).await;
    let (id, secret) = (id_of(&client), secret_of(&client));

    // No grant yet: access denied.
    let (status, body) = token_request(&app, &id, &secret, None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("access_denied")), "{body}");

    let (status, grant) = app
        .post(
            "/api/v2/client-grants",
            &json!({ "client_id": id, "audience": app.management_audience(), "scope": ["read:users", "read:clients"] }),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    assert!(grant_id.starts_with("cgr_"), "{grant}");
    assert_eq!(grant["client_id"], id.as_str());
    assert_eq!(grant["audience"], app.management_audience());
    assert_eq!(grant["scope"], json!(["read:users", "read:clients"]));

    // The grant is listed, and filtered by client.
    let (status, list) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], grant_id.as_str());
    let (status, list) = app.get(&format!("/api/v2/client-grants?audience={}", app.management_audience())).await;
    assert_eq!(status, 200, "{list}");
    let mut holders: Vec<&str> = list.as_array().unwrap().iter().map(|g| g["client_id"].as_str().unwrap()).collect();
    holders.sort_unstable();
    let mut expected = vec![id.as_str(), app.management_client_id.as_str(), app.console_client_id.as_str()];
    expected.sort_unstable();
    assert_eq!(holders, expected, "{list}");

    let (status, body) = token_request(&app, &id, &secret, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read:users read:clients", "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app.send_as(&token, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 200);
    let (status, body) = app.send_as(&token, Method::POST, "/api/v2/roles", Some(&json!({ "name": "r" }))).await;
    assert_api_error(status, &body, 403, "insufficient_scope");

    // Change the grant's scope: new tokens carry the new scope.
    let (status, patched) =
        app.patch(&format!("/api/v2/client-grants/{grant_id}"), &json!({ "scope": ["read:logs"] })).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["scope"], json!(["read:logs"]));
    assert_eq!(patched["id"], grant_id.as_str());
    let (status, list) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["scope"], json!(["read:logs"]), "{list}");

    let (status, body) = token_request(&app, &id, &secret, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read:logs", "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app.send_as(&token, Method::GET, "/api/v2/logs", None).await;
    assert_eq!(status, 200);
    let (status, body) = app.send_as(&token, Method::GET, "/api/v2/users", None).await;
    assert_api_error(status, &body, 403, "insufficient_scope");
    // A scope the grant no longer holds is refused.
    let (status, body) = token_request(&app, &id, &secret, Some("read:users")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");

    // Delete the grant: no more tokens.
    let (status, _) = app.delete(&format!("/api/v2/client-grants/{grant_id}")).await;
    assert_eq!(status, 204);
    let (status, body) = token_request(&app, &id, &secret, None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("access_denied")), "{body}");
    let (status, list) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
    let (status, body) = app.delete(&format!("/api/v2/client-grants/{grant_id}")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
}

async fn client_grant_errors(app: TestApp) {
    let client = create_client(&app, json!({ "name": "worker", "app_type": "non_interactive" })).await;
    let id = id_of(&client);
    let audience = app.management_audience();

    let (status, grant) = app
        .post("/api/v2/client-grants", &json!({ "client_id": id, "audience": audience, "scope": ["read:users"] }))
        .await;
    assert_eq!(status, 201, "{grant}");
    let grant_id = grant["id"].as_str().unwrap().to_owned();

    // A second grant for the same client and audience.
    let (status, body) = app
        .post("/api/v2/client-grants", &json!({ "client_id": id, "audience": audience, "scope": ["read:clients"] }))
        .await;
    assert_api_error(status, &body, 409, "conflict");

    // An unknown Management API scope.
    let other = id_of(&create_client(&app, json!({ "name": "other", "app_type": "non_interactive" })).await);
    let (status, body) = app
        .post(
            "/api/v2/client-grants",
            &json!({ "client_id": other, "audience": audience, "scope": ["read:everything"] }),
        )
        .await;
    assert_api_error(status, &body, 400, "invalid_body");
    assert!(body["message"].as_str().unwrap().contains("read:everything"), "{body}");

    // An unknown client.
    let (status, body) = app
        .post(
            "/api/v2/client-grants",
            &json!({ "client_id": "no-such-client", "audience": audience, "scope": ["read:users"] }),
        )
        .await;
    assert_api_error(status, &body, 404, "inexistent_resource");

    // Not an API identifier, and an unknown field.
    let (status, body) =
        app.post("/api/v2/client-grants", &json!({ "client_id": other, "audience": "not an api", "scope": [] })).await;
    assert_api_error(status, &body, 400, "invalid_body");
    let (status, body) = app
        .post("/api/v2/client-grants", &json!({ "client_id": other, "audience": audience, "scope": [], "extra": 1 }))
        .await;
    assert_api_error(status, &body, 400, "invalid_body");

    // None of the refused requests left a grant for `other`.
    let (status, list) = app.get(&format!("/api/v2/client-grants?client_id={other}")).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));

    // PATCH to an unknown scope is refused and changes nothing; unknown grant is 404.
    let (status, body) =
        app.patch(&format!("/api/v2/client-grants/{grant_id}"), &json!({ "scope": ["delete:everything"] })).await;
    assert_api_error(status, &body, 400, "invalid_body");
    let (status, list) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["scope"], json!(["read:users"]), "{list}");
    for bad in [json!({}), json!({ "scope": "read:users" }), json!({ "scope": ["read:users"], "audience": "x" })] {
        let (status, body) = app.patch(&format!("/api/v2/client-grants/{grant_id}"), &bad).await;
        assert_api_error(status, &body, 400, "invalid_body");
    }
    let (status, body) = app.patch("/api/v2/client-grants/cgr_nope", &json!({ "scope": ["read:users"] })).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
}

async fn rotating_the_secret_retires_the_old_one(app: TestApp) {
    let (id, old) = app.machine_client("rotating", &["read:users"]).await;
    let (status, _) = token_request(&app, &id, &old, None).await;
    assert_eq!(status, 200);

    let (status, rotated) = app.post(&format!("/api/v2/clients/{id}/rotate-secret"), &json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new = secret_of(&rotated);
    assert_ne!(new, old);
    assert_eq!(rotated["client_id"], id.as_str());
    assert_eq!(rotated["name"], "rotating");

    let (status, body) = token_request(&app, &id, &new, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read:users");
    let (status, body) = token_request(&app, &id, &old, None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");

    // Still never on GET.
    let (status, fetched) = app.get(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(status, 200);
    assert!(fetched.get("client_secret").is_none(), "{fetched}");

    // A public client has nothing to rotate; an unknown client is 404.
    let spa = id_of(&create_client(&app, json!({ "name": "spa", "app_type": "spa" })).await);
    let (status, body) = app.post(&format!("/api/v2/clients/{spa}/rotate-secret"), &json!({})).await;
    assert_api_error(status, &body, 400, "invalid_body");
    let (status, body) = app.post("/api/v2/clients/no-such-client/rotate-secret", &json!({})).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
}

async fn patch_is_reflected_on_get(app: TestApp) {
    let id = id_of(&create_client(&app, json!({ "name": "before" })).await);
    let before = app.get(&format!("/api/v2/clients/{id}")).await.1;

    let patch = json!({
        "name": "after",
        "callbacks": ["https://app.example.com/callback", "http://localhost:3000/callback"],
        "allowed_logout_urls": ["https://app.example.com/"],
        "allow_impersonation": true,
        "initiate_login_uri": "https://app.example.com/login",
    });
    let (status, patched) = app.patch(&format!("/api/v2/clients/{id}"), &patch).await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched.get("client_secret").is_none(), "{patched}");

    let (status, fetched) = app.get(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(status, 200, "{fetched}");
    for (key, value) in patch.as_object().unwrap() {
        assert_eq!(&fetched[key], value, "{key}: {fetched}");
        assert_eq!(&patched[key], value, "{key}: {patched}");
    }
    // Untouched fields are kept.
    for key in ["app_type", "grant_types", "token_endpoint_auth_method", "created_at", "is_first_party"] {
        assert_eq!(fetched[key], before[key], "{key}");
    }
    assert!(fetched["updated_at"].as_str().unwrap() >= before["updated_at"].as_str().unwrap());

    // initiate_login_uri can be cleared with null.
    let (status, patched) = app.patch(&format!("/api/v2/clients/{id}"), &json!({ "initiate_login_uri": null })).await;
    assert_eq!(status, 200, "{patched}");
    let (_, fetched) = app.get(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(fetched["initiate_login_uri"], Value::Null, "{fetched}");
    assert_eq!(fetched["name"], "after");

    // Impersonation can be switched off again.
    let (status, _) = app.patch(&format!("/api/v2/clients/{id}"), &json!({ "allow_impersonation": false })).await;
    assert_eq!(status, 200);
    let (_, fetched) = app.get(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(fetched["allow_impersonation"], false, "{fetched}");
}

async fn invalid_patches_are_refused(app: TestApp) {
    let client = create_client(
        &app,
        json!({ "name": "stable", "app_type": "non_interactive", "callbacks": ["https://ok.example.com/cb"] }),
    )
    .await;
    let id = id_of(&client);
    let path = format!("/api/v2/clients/{id}");

    let bad = [
        json!({ "callbacks": ["not a url"] }),
        json!({ "callbacks": ["https://app.example.com/cb#fragment"] }),
        json!({ "allowed_logout_urls": ["https://app.example.com/#x"] }),
        json!({ "initiate_login_uri": "not a url" }),
        json!({ "initiate_login_uri": "http://app.example.com/login" }),
        json!({ "unknown_field": "x" }),
        json!({ "name": "" }),
        json!({ "name": 42 }),
        json!({ "app_type": "desktop" }),
        json!({ "grant_types": ["implicit"] }),
        // A public client cannot keep client_credentials.
        json!({ "token_endpoint_auth_method": "none" }),
        json!({}),
        json!([]),
    ];
    for body in bad {
        let (status, response) = app.patch(&path, &body).await;
        assert_api_error(status, &response, 400, "invalid_body");
    }

    // Nothing changed.
    let (status, fetched) = app.get(&path).await;
    assert_eq!(status, 200);
    for key in [
        "name",
        "callbacks",
        "allowed_logout_urls",
        "initiate_login_uri",
        "grant_types",
        "token_endpoint_auth_method",
        "updated_at",
    ] {
        assert_eq!(fetched[key], client[key], "{key}: {fetched}");
    }
    // And the secret still works (the client did not turn public).
    let (status, grant) = app
        .post("/api/v2/client-grants", &json!({ "client_id": id, "audience": app.management_audience(), "scope": [] }))
        .await;
    assert_eq!(status, 201, "{grant}");
    let (status, body) = token_request(&app, &id, &secret_of(&client), None).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app.patch("/api/v2/clients/no-such-client", &json!({ "name": "x" })).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
}

async fn deleting_a_client_ends_its_access(app: TestApp) {
    let (id, secret) = app.machine_client("doomed", &["read:users"]).await;
    let (status, _) = token_request(&app, &id, &secret, None).await;
    assert_eq!(status, 200);

    let (status, body) = app.delete(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(status, 204, "{body}");

    let (status, body) = app.get(&format!("/api/v2/clients/{id}")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (status, body) = token_request(&app, &id, &secret, None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // Its grants went with it.
    let (status, grants) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(grants, json!([]));
    // It is gone from the list; deleting again is 404.
    let (_, list) = app.get("/api/v2/clients?include_totals=true").await;
    assert_eq!(list["total"], 2, "the management and console clients: {list}");
    let (status, body) = app.delete(&format!("/api/v2/clients/{id}")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    // Other clients are unaffected.
    let (status, _) = token_request(&app, &app.management_client_id, &app.management_client_secret, None).await;
    assert_eq!(status, 200);
}

async fn client_routes_enforce_their_scopes(app: TestApp) {
    let (reader, secret) = app.machine_client("reader", &["read:clients"]).await;
    let token = app.client_token(&reader, &secret, None).await;

    let (status, body) = app.send_as(&token, Method::GET, "/api/v2/clients", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.send_as(&token, Method::GET, &format!("/api/v2/clients/{reader}"), None).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app.send_as(&token, Method::POST, "/api/v2/clients", Some(&json!({ "name": "sneaky" }))).await;
    assert_api_error(status, &body, 403, "insufficient_scope");
    assert!(body["message"].as_str().unwrap().contains("create:clients"), "{body}");

    let refused: [(Method, String, Option<Value>); 6] = [
        (Method::PATCH, format!("/api/v2/clients/{reader}"), Some(json!({ "name": "renamed" }))),
        (Method::DELETE, format!("/api/v2/clients/{reader}"), None),
        (Method::POST, format!("/api/v2/clients/{reader}/rotate-secret"), Some(json!({}))),
        (
            Method::POST,
            "/api/v2/client-grants".to_owned(),
            Some(json!({ "client_id": reader, "audience": app.management_audience(), "scope": ["read:users"] })),
        ),
        (Method::GET, "/api/v2/client-grants".to_owned(), None),
        (Method::GET, "/api/v2/logs".to_owned(), None),
    ];
    for (method, path, body) in refused {
        let (status, response) = app.send_as(&token, method.clone(), &path, body.as_ref()).await;
        assert_api_error(status, &response, 403, "insufficient_scope");
    }

    // Nothing was created or changed.
    let (_, list) = app.get("/api/v2/clients?include_totals=true").await;
    assert_eq!(list["total"], 3, "the management and console clients and the reader: {list}");
    let (_, fetched) = app.get(&format!("/api/v2/clients/{reader}")).await;
    assert_eq!(fetched["name"], "reader");
    let (status, _) = token_request(&app, &reader, &secret, None).await;
    assert_eq!(status, 200, "the secret was not rotated");

    // No token at all.
    let (status, body) = split(app.http.get(app.url("/api/v2/clients")).send().await.unwrap()).await;
    assert_api_error(status, &body, 401, "invalid_token");
}

async fn client_writes_are_audited_without_secrets(app: TestApp) {
    let created = create_client(&app, json!({ "name": "audited", "app_type": "non_interactive" })).await;
    let (id, first_secret) = (id_of(&created), secret_of(&created));
    let (status, grant) = app
        .post(
            "/api/v2/client-grants",
            &json!({ "client_id": id, "audience": app.management_audience(), "scope": ["read:users"] }),
        )
        .await;
    assert_eq!(status, 201);
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    let (status, _) =
        app.patch(&format!("/api/v2/client-grants/{grant_id}"), &json!({ "scope": ["read:roles"] })).await;
    assert_eq!(status, 200);
    let (status, _) = app.patch(&format!("/api/v2/clients/{id}"), &json!({ "name": "audited 2" })).await;
    assert_eq!(status, 200);
    let (status, rotated) = app.post(&format!("/api/v2/clients/{id}/rotate-secret"), &json!({})).await;
    assert_eq!(status, 200);
    let second_secret = secret_of(&rotated);
    // Token exchanges with the current and the retired secret.
    assert_eq!(token_request(&app, &id, &second_secret, None).await.0, 200);
    assert_eq!(token_request(&app, &id, &first_secret, None).await.0, 401);
    let (status, _) = app.delete(&format!("/api/v2/client-grants/{grant_id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.delete(&format!("/api/v2/clients/{id}")).await;
    assert_eq!(status, 204);

    let sapi = app.logs_of_type("sapi").await;
    let about_client: Vec<&Value> = sapi
        .iter()
        .filter(|e| {
            let details = e["details"].to_string();
            e["client_id"] == id.as_str() || details.contains(id.as_str()) || details.contains(grant_id.as_str())
        })
        .collect();
    let mut descriptions: Vec<&str> = about_client.iter().map(|e| e["description"].as_str().unwrap()).collect();
    descriptions.reverse(); // oldest first
    assert_eq!(
        descriptions,
        [
            "Create a client",
            "Create client grant",
            "Update client grant",
            "Update a client",
            "Rotate a client secret",
            "Delete client grant",
            "Delete a client",
        ],
        "{sapi:#?}"
    );
    for event in &about_client {
        assert_eq!(event["type"], "sapi");
        assert_eq!(event["actor"], json!({ "type": "client", "id": app.management_client_id }), "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
    }
    let create = about_client.last().unwrap();
    assert_eq!(create["details"]["client"]["client_id"], id.as_str(), "{create}");
    assert_eq!(create["details"]["client"]["name"], "audited", "{create}");

    // No event anywhere holds either secret (or the management client's).
    let everything = serde_json::to_string(&all_logs(&app).await).unwrap();
    for secret in [&first_secret, &second_secret, &app.management_client_secret] {
        assert!(!everything.contains(secret.as_str()), "a client secret is in the audit log");
    }
    // The token exchanges were audited too.
    let issued = app.logs_of_type("seccft").await;
    assert!(issued.iter().any(|e| e["client_id"] == id.as_str()), "{issued:#?}");
    let failed = app.logs_of_type("feccft").await;
    assert!(
        failed.iter().any(|e| e["client_id"] == id.as_str() && e["details"]["error"] == "invalid_client"),
        "{failed:#?}"
    );
}
