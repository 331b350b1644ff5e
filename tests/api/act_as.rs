//! Acting on behalf of a user (`as_user_id`, `As-User`, `MSCRMCallerID`): each spelling on
//! a read and a write, external-id targets, the intersection of permissions, on-behalf-of
//! records, every refusal (audited, granting nothing), acting as measured on a grant
//! narrowed after the token was issued, and the self-service routes.

use crate::both_backends;
use crate::browser::{Browser, CALLBACK, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, user, web_client};
use crate::helpers::{TestApp, split};
use crate::users::urlencode;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    each_spelling_reads_and_writes_as_the_target,
    external_and_sis_ids_name_targets,
    records_say_who_really_acted,
    refusals_are_audited_and_grant_nothing,
    the_intersection_of_permissions_applies,
    a_narrowed_grant_narrows_acting_as_too,
    self_service_routes_work_on_me_only,
);

#[derive(Clone, Copy)]
enum Spelling {
    Query,
    BoxHeader,
    Dynamics,
}

const SPELLINGS: [Spelling; 3] = [Spelling::Query, Spelling::BoxHeader, Spelling::Dynamics];

/// Send a request acting as `target` with one spelling; returns status, effective-user header and body.
async fn act(
    app: &TestApp,
    token: &str,
    spelling: Spelling,
    target: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Option<String>, Value) {
    let url = match spelling {
        Spelling::Query => {
            let separator = if path.contains('?') { '&' } else { '?' };
            app.url(&format!("{path}{separator}as_user_id={}", urlencode(target)))
        }
        _ => app.url(path),
    };
    let mut request = app.http.request(method, url).bearer_auth(token);
    request = match spelling {
        Spelling::Query => request,
        Spelling::BoxHeader => request.header("As-User", target),
        Spelling::Dynamics => request.header("MSCRMCallerID", target),
    };
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let effective = response.headers().get("x-effective-user").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = split(response).await;
    (status, effective, body)
}

async fn target_user(app: &TestApp, email: &str, external_id: Option<&str>) -> String {
    let mut body = json!({ "email": email, "password": "long enough password" });
    if let Some(id) = external_id {
        body["external_id"] = json!(id);
    }
    let (status, user) = app.post("/api/v2/users", &body).await;
    assert_eq!(status, 201, "{user}");
    user["user_id"].as_str().unwrap().to_owned()
}

/// A role with `permissions` on the Management API, given to `user_id`.
async fn grant(app: &TestApp, user_id: &str, name: &str, permissions: &[&str]) {
    let (_, role) = app.post("/api/v2/roles", &json!({ "name": name })).await;
    let role_id = role["id"].as_str().unwrap();
    let list: Vec<Value> = permissions
        .iter()
        .map(|p| json!({ "resource_server_identifier": app.management_audience(), "permission_name": p }))
        .collect();
    assert_eq!(app.post(&format!("/api/v2/roles/{role_id}/permissions"), &json!({ "permissions": list })).await.0, 201);
    assert_eq!(
        app.post(&format!("/api/v2/users/{}/roles", urlencode(user_id)), &json!({ "roles": [role_id] })).await.0,
        204
    );
}

/// A machine client with `scopes`, optionally enabled for acting as users; returns a token.
async fn machine(app: &TestApp, name: &str, scopes: &[&str], allow_act_as: bool) -> String {
    let (id, secret) = app.machine_client(name, scopes).await;
    if allow_act_as {
        let (status, _) = app.patch(&format!("/api/v2/clients/{id}"), &json!({ "allow_act_as": true })).await;
        assert_eq!(status, 200);
    }
    app.client_token(&id, &secret, None).await
}

async fn each_spelling_reads_and_writes_as_the_target(app: TestApp) {
    let target = target_user(&app, "student@example.com", None).await;
    for (i, spelling) in SPELLINGS.into_iter().enumerate() {
        let (status, effective, me) = act(&app, &app.token, spelling, &target, Method::GET, "/api/v2/me", None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["user_id"], target.as_str());
        assert_eq!(effective.as_deref(), Some(target.as_str()), "the response names the effective user");

        let name = format!("Student {i}");
        let (status, _, patched) =
            act(&app, &app.token, spelling, &target, Method::PATCH, "/api/v2/me", Some(&json!({ "name": name }))).await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["name"], name.as_str());
        assert_eq!(patched["modified_by"], target.as_str());
        assert_eq!(patched["modified_on_behalf_by"], app.management_client_id.as_str());
    }
    let events = app.logs_of_type("guise_act_as").await;
    assert_eq!(events.len(), 6, "every call acting as a user is audited");
    for event in &events {
        assert_eq!(event["actor"]["id"], app.management_client_id.as_str());
        assert_eq!(event["on_behalf_of"], target.as_str());
        assert_eq!(event["user_id"], target.as_str());
    }
    // Two spellings that agree are fine; two that disagree are a 400.
    let other = target_user(&app, "other@example.com", None).await;
    let response = app
        .http
        .get(app.url(&format!("/api/v2/me?as_user_id={}", urlencode(&target))))
        .bearer_auth(&app.token)
        .header("As-User", &target)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .http
        .get(app.url(&format!("/api/v2/me?as_user_id={}", urlencode(&target))))
        .bearer_auth(&app.token)
        .header("MSCRMCallerID", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

async fn external_and_sis_ids_name_targets(app: TestApp) {
    let target = target_user(&app, "sis@example.com", Some("SIS 2024/17+a&b")).await;
    for spec in ["external_id:SIS 2024/17+a&b", "sis_user_id:SIS 2024/17+a&b"] {
        for spelling in [Spelling::Query, Spelling::BoxHeader] {
            let header_value;
            let target_spec = match spelling {
                // Headers carry the reference percent-encoded (a `+` would stay a `+`).
                Spelling::BoxHeader => {
                    header_value =
                        percent_encoding::utf8_percent_encode(spec, percent_encoding::NON_ALPHANUMERIC).to_string();
                    header_value.as_str()
                }
                _ => spec,
            };
            let (status, _, me) = act(&app, &app.token, spelling, target_spec, Method::GET, "/api/v2/me", None).await;
            assert_eq!(status, 200, "{spec}: {me}");
            assert_eq!(me["user_id"], target.as_str());
        }
    }
    let (status, _, body) =
        act(&app, &app.token, Spelling::Query, "external_id:nobody", Method::GET, "/api/v2/me", None).await;
    assert_eq!(status, 404, "{body}");
}

async fn records_say_who_really_acted(app: TestApp) {
    // A registrar who may create and update users, acted as by the management client.
    let registrar = target_user(&app, "registrar@example.com", None).await;
    grant(&app, &registrar, "Registrar", &["create:users", "read:users", "update:users"]).await;
    let (status, effective, created) = act(
        &app,
        &app.token,
        Spelling::Dynamics,
        &registrar,
        Method::POST,
        "/api/v2/users",
        Some(&json!({ "email": "new@example.com" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(effective.as_deref(), Some(registrar.as_str()));
    assert_eq!(created["created_by"], registrar.as_str());
    assert_eq!(created["created_on_behalf_by"], app.management_client_id.as_str());
    let new_id = created["user_id"].as_str().unwrap();

    let (status, _, updated) = act(
        &app,
        &app.token,
        Spelling::BoxHeader,
        &registrar,
        Method::PATCH,
        &format!("/api/v2/users/{}", urlencode(new_id)),
        Some(&json!({ "nickname": "newbie" })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["modified_by"], registrar.as_str());
    assert_eq!(updated["modified_on_behalf_by"], app.management_client_id.as_str());
    assert_eq!(updated["created_by"], registrar.as_str(), "creation attribution survives updates");

    // Visible through the API without acting, too.
    let (_, fetched) = app.get(&format!("/api/v2/users/{}", urlencode(new_id))).await;
    assert_eq!(fetched["created_on_behalf_by"], app.management_client_id.as_str());
    assert_eq!(fetched["modified_on_behalf_by"], app.management_client_id.as_str());
    // The write's own audit event names both parties.
    let writes = app.logs_of_type("sapi").await;
    let create = writes.iter().find(|e| e["description"] == "Create a user" && e["user_id"] == new_id).unwrap();
    assert_eq!(create["actor"]["id"], app.management_client_id.as_str());
    assert_eq!(create["on_behalf_of"], registrar.as_str());

    // Support leads see the uses beside the impersonation sessions: time, caller,
    // target, route — newest first, filtered by either party.
    let (status, uses) = app.get("/api/v2/impersonations?kind=act_as&include_totals=true").await;
    assert_eq!(status, 200, "{uses}");
    assert_eq!(uses["total"], 2, "{uses}");
    let newest = &uses["impersonations"][0];
    assert_eq!(newest["kind"], "act_as");
    assert_eq!(newest["impersonator_id"], app.management_client_id.as_str());
    assert_eq!(newest["impersonator_type"], "client");
    assert_eq!(newest["user_id"], registrar.as_str());
    assert_eq!(newest["route"], format!("PATCH /api/v2/users/{}", urlencode(new_id)));
    assert!(newest["date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(uses["impersonations"][1]["route"], "POST /api/v2/users");
    let by_target = format!("/api/v2/impersonations?kind=act_as&user_id={}", urlencode(&registrar));
    assert_eq!(app.get(&by_target).await.1.as_array().unwrap().len(), 2);
    let by_caller = format!("/api/v2/impersonations?kind=act_as&impersonator_id={}", app.management_client_id);
    assert_eq!(app.get(&by_caller).await.1.as_array().unwrap().len(), 2);
    let by_other = format!("/api/v2/impersonations?kind=act_as&user_id={}", urlencode(new_id));
    assert_eq!(app.get(&by_other).await.1, json!([]));
    let (status, sessions) = app.get("/api/v2/impersonations?kind=session").await;
    assert_eq!((status, sessions), (200, json!([])), "no impersonation sessions");
    let (status, refused) = app.get("/api/v2/impersonations?kind=everything").await;
    assert_eq!(status, 400, "{refused}");

    // Everyone's needs read:users or read:impersonations; an impersonator sees their own.
    let (id, secret) = app.machine_client("auditor", &["read:impersonations"]).await;
    let auditor = app.client_token(&id, &secret, None).await;
    let (status, all) = app.send_as(&auditor, Method::GET, "/api/v2/impersonations?kind=act_as", None).await;
    assert_eq!((status, all.as_array().map(Vec::len)), (200, Some(2)), "{all}");
    let (id, secret) = app.machine_client("impersonator", &["impersonate:users"]).await;
    let impersonator = app.client_token(&id, &secret, None).await;
    let (status, own) = app.send_as(&impersonator, Method::GET, "/api/v2/impersonations?kind=act_as", None).await;
    assert_eq!((status, own), (200, json!([])), "only its own, of which there are none");
    let others = format!("/api/v2/impersonations?impersonator_id={}", app.management_client_id);
    let (status, none) = app.send_as(&impersonator, Method::GET, &others, None).await;
    assert_eq!((status, none), (200, json!([])), "someone else's are none of its own");
    let (id, secret) = app.machine_client("reader", &["read:logs"]).await;
    let reader = app.client_token(&id, &secret, None).await;
    assert_eq!(app.send_as(&reader, Method::GET, "/api/v2/impersonations", None).await.0, 403);
}

async fn refusals_are_audited_and_grant_nothing(app: TestApp) {
    let target = target_user(&app, "t@example.com", None).await;
    let blocked = target_user(&app, "blocked@example.com", None).await;
    app.patch(&format!("/api/v2/users/{}", urlencode(&blocked)), &json!({ "blocked": true })).await;
    let strong = target_user(&app, "strong@example.com", None).await;
    grant(&app, &strong, "Deleter", &["delete:users"]).await;

    let without_scope = machine(&app, "no impersonate", &["read:users"], true).await;
    let not_enabled = machine(&app, "not enabled", &["impersonate:users", "read:users"], false).await;
    let weaker = machine(&app, "weaker", &["impersonate:users", "read:users"], true).await;

    let cases = [
        ("caller without impersonate:users", &without_scope, target.as_str(), 403),
        ("client not enabled", &not_enabled, target.as_str(), 403),
        ("target holds a permission the caller lacks", &weaker, strong.as_str(), 403),
        ("blocked target", &app.token, blocked.as_str(), 403),
        ("unknown target", &app.token, "guise|000000000000000000000000", 404),
    ];
    for (name, token, who, expected) in cases {
        let (status, effective, body) =
            act(&app, token, Spelling::BoxHeader, who, Method::PATCH, "/api/v2/me", Some(&json!({ "name": "pwned" })))
                .await;
        assert_eq!(status, expected, "{name}: {body}");
        assert_eq!(body["statusCode"], expected);
        assert!(effective.is_none(), "{name}: nothing ran as the target");
    }
    let refused = app.logs_of_type("guise_act_as_refused").await;
    assert_eq!(refused.len(), cases.len(), "each refusal is audited");
    let (_, unchanged) = app.get(&format!("/api/v2/users/{}", urlencode(&target))).await;
    assert_ne!(unchanged["name"], "pwned");
    let (_, unchanged) = app.get(&format!("/api/v2/users/{}", urlencode(&strong))).await;
    assert_ne!(unchanged["name"], "pwned");
}

async fn the_intersection_of_permissions_applies(app: TestApp) {
    // The caller may read and update users; the target may only read them.
    let reader = target_user(&app, "reader@example.com", None).await;
    grant(&app, &reader, "Reader", &["read:users"]).await;
    let caller = machine(&app, "helpdesk", &["impersonate:users", "read:users", "update:users"], true).await;
    let (status, _, users) = act(&app, &caller, Spelling::Query, &reader, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 200, "both may read: {users}");
    let (status, _, body) = act(
        &app,
        &caller,
        Spelling::Query,
        &reader,
        Method::PATCH,
        &format!("/api/v2/users/{}", urlencode(&reader)),
        Some(&json!({ "name": "x" })),
    )
    .await;
    assert_eq!(status, 403, "the caller may update, the target may not: {body}");
    assert_eq!(body["errorCode"], "insufficient_scope");
    // An ordinary user (no permissions) reached through acting-as sees only self-service.
    let ordinary = target_user(&app, "ordinary@example.com", None).await;
    let (status, _, _) = act(&app, &caller, Spelling::Query, &ordinary, Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 403);
    let (status, _, me) = act(&app, &caller, Spelling::Query, &ordinary, Method::GET, "/api/v2/me", None).await;
    assert_eq!((status, me["user_id"].as_str()), (200, Some(ordinary.as_str())));
    assert!(!app.logs_of_type("fapi").await.is_empty(), "the refused update is audited");
}

async fn a_narrowed_grant_narrows_acting_as_too(app: TestApp) {
    // The token lists impersonate:users and delete:users; its grant is narrowed after it
    // was issued. Acting as is measured on what the grant holds now, not on the token.
    let strong = target_user(&app, "strong@example.com", None).await;
    grant(&app, &strong, "Deleter", &["delete:users"]).await;
    let ordinary = target_user(&app, "ordinary@example.com", None).await;
    let (id, secret) = app.machine_client("helpdesk", &["impersonate:users", "read:users", "delete:users"]).await;
    assert_eq!(app.patch(&format!("/api/v2/clients/{id}"), &json!({ "allow_act_as": true })).await.0, 200);
    let token = app.client_token(&id, &secret, None).await;
    let (_, grants) = app.get(&format!("/api/v2/client-grants?client_id={id}")).await;
    let grant_path = format!("/api/v2/client-grants/{}", grants[0]["id"].as_str().unwrap());
    assert_eq!(act(&app, &token, Spelling::BoxHeader, &strong, Method::GET, "/api/v2/me", None).await.0, 200);

    let narrowed = json!({ "scope": ["impersonate:users", "read:users"] });
    assert_eq!(app.patch(&grant_path, &narrowed).await.0, 200);
    for spelling in SPELLINGS {
        let (status, effective, body) = act(&app, &token, spelling, &strong, Method::GET, "/api/v2/me", None).await;
        assert_eq!((status, body["errorCode"].as_str()), (403, Some("act_as_forbidden")), "{body}");
        assert!(effective.is_none(), "nothing ran as the stronger target");
    }
    assert_eq!(app.patch(&grant_path, &json!({ "scope": ["read:users"] })).await.0, 200);
    let (status, effective, body) =
        act(&app, &token, Spelling::Dynamics, &ordinary, Method::GET, "/api/v2/me", None).await;
    assert_eq!(status, 403, "impersonate:users left the grant: {body}");
    assert!(effective.is_none());
    assert_eq!(app.logs_of_type("guise_act_as_refused").await.len(), 4, "each refusal is audited");
}

async fn self_service_routes_work_on_me_only(app: TestApp) {
    let me = user(&app).await;
    let me_id = me["user_id"].as_str().unwrap().to_owned();
    let other = target_user(&app, "neighbour@example.com", None).await;
    let (client_id, secret) = web_client(&app, json!({})).await;

    // A user access token for the Management API audience, by the code flow, through a
    // client granted the Management API (with no scope: /me needs none).
    let audience = app.management_audience();
    let (status, grant) =
        app.post("/api/v2/client-grants", &json!({ "client_id": client_id, "audience": audience, "scope": [] })).await;
    assert_eq!(status, 201, "{grant}");
    let url = authorize_url(
        &app,
        &[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("audience", &audience),
        ],
    );
    let browser = Browser::new();
    let done = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
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
    let token = tokens["access_token"].as_str().unwrap();

    let (status, mine) = app.send_as(token, Method::GET, "/api/v2/me", None).await;
    assert_eq!((status, mine["user_id"].as_str()), (200, Some(me_id.as_str())));
    let (status, patched) =
        app.send_as(token, Method::PATCH, "/api/v2/me", Some(&json!({ "user_metadata": { "theme": "dark" } }))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["modified_by"], me_id.as_str());
    let (status, forbidden) =
        app.send_as(token, Method::PATCH, "/api/v2/me", Some(&json!({ "app_metadata": { "plan": "gold" } }))).await;
    assert_eq!(status, 403, "{forbidden}");
    let (status, sessions) = app.send_as(token, Method::GET, "/api/v2/me/sessions", None).await;
    assert_eq!(status, 200);
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    let (status, activity) = app.send_as(token, Method::GET, "/api/v2/me/activity", None).await;
    assert_eq!(status, 200);
    assert!(activity.as_array().unwrap().iter().any(|e| e["type"] == "s"), "the login is in my activity");

    // Someone else's data: 403 without acting.
    let (status, _) = app.send_as(token, Method::GET, &format!("/api/v2/users/{}", urlencode(&other)), None).await;
    assert_eq!(status, 403);
    // A machine token is nobody: /me needs a user.
    assert_eq!(app.get("/api/v2/me").await.0, 403);
    // Acting as the user, an admin sees the same data.
    let (status, _, acted) = act(&app, &app.token, Spelling::Query, &me_id, Method::GET, "/api/v2/me", None).await;
    assert_eq!((status, acted["user_id"].as_str()), (200, Some(me_id.as_str())));
    assert_eq!(acted["user_metadata"], json!({ "theme": "dark" }));
}
