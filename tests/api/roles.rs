//! `/api/v2/roles` and the role routes of `/api/v2/users`: roles, their permissions,
//! who holds them, the permissions users get through them, and scope enforcement.

use crate::both_backends;
use crate::helpers::{TestApp, split};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    role_crud_round_trip,
    invalid_role_requests_are_refused,
    roles_list_with_name_filter_and_totals,
    role_permissions_add_list_remove,
    invalid_role_permissions_are_refused,
    assigned_roles_give_users_permissions,
    role_users_route_assigns_and_lists,
    role_assignment_errors,
    a_failed_role_users_request_assigns_nobody,
    deleting_a_role_removes_it_from_its_users,
    role_routes_enforce_their_scopes,
    user_role_routes_need_the_roles_scope_too,
    role_writes_are_audited,
);

/// The role `guise init` creates; every tenant has it.
const ADMIN_ROLE: &str = "guise Administrator";

fn assert_api_error(status: u16, body: &Value, expected_status: u16, error_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["statusCode"], expected_status, "{body}");
    assert_eq!(body["errorCode"], error_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn create_role(app: &TestApp, name: &str, description: &str) -> String {
    let (status, role) = app.post("/api/v2/roles", &json!({ "name": name, "description": description })).await;
    assert_eq!(status, 200, "{role}");
    role["id"].as_str().expect("role id").to_owned()
}

fn permission(app: &TestApp, name: &str) -> Value {
    json!({ "resource_server_identifier": app.management_audience(), "permission_name": name })
}

async fn add_permissions(app: &TestApp, role: &str, names: &[&str]) {
    let permissions: Vec<Value> = names.iter().map(|n| permission(app, n)).collect();
    let (status, body) =
        app.post(&format!("/api/v2/roles/{role}/permissions"), &json!({ "permissions": permissions })).await;
    assert_eq!(status, 201, "{body}");
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.create_user(email).await["user_id"].as_str().unwrap().to_owned()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

async fn role_crud_round_trip(app: TestApp) {
    let (status, role) = app.post("/api/v2/roles", &json!({ "name": "Support", "description": "Helps users" })).await;
    assert_eq!(status, 200, "{role}");
    let id = role["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rol_"), "{role}");
    assert_eq!(role, json!({ "id": id, "name": "Support", "description": "Helps users" }));

    let (status, fetched) = app.get(&format!("/api/v2/roles/{id}")).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched, role);

    // Description defaults to empty.
    let (status, bare) = app.post("/api/v2/roles", &json!({ "name": "Bare" })).await;
    assert_eq!(status, 200, "{bare}");
    assert_eq!(bare["description"], "");

    let (status, patched) = app.patch(&format!("/api/v2/roles/{id}"), &json!({ "description": "Tier 1" })).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched, json!({ "id": id, "name": "Support", "description": "Tier 1" }));
    let (status, patched) = app.patch(&format!("/api/v2/roles/{id}"), &json!({ "name": "Support L1" })).await;
    assert_eq!(status, 200, "{patched}");
    let (_, fetched) = app.get(&format!("/api/v2/roles/{id}")).await;
    assert_eq!(fetched, json!({ "id": id, "name": "Support L1", "description": "Tier 1" }));

    // The old name is free again.
    let (status, reused) = app.post("/api/v2/roles", &json!({ "name": "Support" })).await;
    assert_eq!(status, 200, "{reused}");
    assert_ne!(reused["id"], id.as_str());

    let (status, body) = app.delete(&format!("/api/v2/roles/{id}")).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app.get(&format!("/api/v2/roles/{id}")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (status, body) = app.delete(&format!("/api/v2/roles/{id}")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (_, list) = app.get("/api/v2/roles").await;
    assert!(!names(&list, "id").contains(&id), "{list}");
}

async fn invalid_role_requests_are_refused(app: TestApp) {
    let id = create_role(&app, "Editors", "").await;
    create_role(&app, "Viewers", "").await;

    let (status, body) = app.post("/api/v2/roles", &json!({ "name": "Editors" })).await;
    assert_api_error(status, &body, 409, "conflict");

    for bad in [
        json!({ "name": "" }),
        json!({ "name": "   " }),
        json!({ "name": "x".repeat(51) }),
        json!({ "description": "no name" }),
        json!({ "name": "ok", "permissions": [] }),
        json!({ "name": 7 }),
    ] {
        let (status, body) = app.post("/api/v2/roles", &bad).await;
        assert_api_error(status, &body, 400, "invalid_body");
    }

    let path = format!("/api/v2/roles/{id}");
    for bad in [json!({}), json!({ "name": "" }), json!({ "colour": "red" }), json!({ "name": "y".repeat(51) })] {
        let (status, body) = app.patch(&path, &bad).await;
        assert_api_error(status, &body, 400, "invalid_body");
    }
    // Renaming onto another role's name.
    let (status, body) = app.patch(&path, &json!({ "name": "Viewers" })).await;
    assert_api_error(status, &body, 409, "conflict");
    let (_, fetched) = app.get(&path).await;
    assert_eq!(fetched["name"], "Editors", "{fetched}");

    // Unknown role.
    let (status, body) = app.get("/api/v2/roles/rol_0000000000000000").await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (status, body) = app.patch("/api/v2/roles/rol_0000000000000000", &json!({ "name": "z" })).await;
    assert_api_error(status, &body, 404, "inexistent_resource");

    // Only the admin role and the two created exist.
    let (_, list) = app.get("/api/v2/roles?include_totals=true").await;
    assert_eq!(list["total"], 3, "{list}");
}

async fn roles_list_with_name_filter_and_totals(app: TestApp) {
    for name in ["Auditors", "Billing", "Customers"] {
        create_role(&app, name, "").await;
    }
    let (status, list) = app.get("/api/v2/roles").await;
    assert_eq!(status, 200, "{list}");
    let all = names(&list, "name");
    for name in ["Auditors", "Billing", "Customers", ADMIN_ROLE] {
        assert!(all.contains(&name.to_owned()), "{name} missing: {list}");
    }

    let (status, list) = app.get("/api/v2/roles?name_filter=Billing").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list, "name"), ["Billing"]);
    let (status, list) = app.get("/api/v2/roles?name_filter=Nobody").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!([]));

    let (status, body) = app.get("/api/v2/roles?include_totals=true&per_page=2&page=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 4, "{body}");
    assert_eq!(body["start"], 2, "{body}");
    assert_eq!(body["limit"], 2, "{body}");
    assert_eq!(body["length"], 2, "{body}");
    assert_eq!(body["roles"].as_array().map(Vec::len), Some(2), "{body}");

    let (status, body) = app.get("/api/v2/roles?include_totals=true&name_filter=Customers").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(names(&body["roles"], "name"), ["Customers"]);
}

async fn role_permissions_add_list_remove(app: TestApp) {
    let role = create_role(&app, "Readers", "").await;
    let path = format!("/api/v2/roles/{role}/permissions");

    let (status, list) = app.get(&path).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!([]));

    let (status, body) = app
        .post(&path, &json!({ "permissions": [permission(&app, "read:users"), permission(&app, "read:logs")] }))
        .await;
    assert_eq!(status, 201, "{body}");
    // Adding one again is harmless.
    add_permissions(&app, &role, &["read:users"]).await;
    // Another API's permission.
    let (status, body) = app
        .post(
            &path,
            &json!({ "permissions": [{ "resource_server_identifier": "https://api.example.com/", "permission_name": "read:invoices" }] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, list) = app.get(&path).await;
    assert_eq!(status, 200, "{list}");
    let held: Vec<(String, String)> = list
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
    let audience = app.management_audience();
    assert_eq!(held.len(), 3, "{list}");
    for expected in [
        (audience.clone(), "read:users".to_owned()),
        (audience.clone(), "read:logs".to_owned()),
        ("https://api.example.com/".to_owned(), "read:invoices".to_owned()),
    ] {
        assert!(held.contains(&expected), "{expected:?} missing: {list}");
    }
    let users = list.as_array().unwrap().iter().find(|p| p["permission_name"] == "read:users").unwrap();
    assert_eq!(users["description"], "Read users", "{users}");

    let (status, body) = app.get(&format!("{path}?include_totals=true&per_page=1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 3, "{body}");
    assert_eq!(body["length"], 1, "{body}");

    // Remove one.
    let (status, body) =
        app.send(Method::DELETE, &path, Some(&json!({ "permissions": [permission(&app, "read:users")] }))).await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = app.get(&path).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert!(!names(&list, "permission_name").contains(&"read:users".to_owned()), "{list}");

    // Unknown role.
    let (status, body) = app.get("/api/v2/roles/rol_0000000000000000/permissions").await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (status, body) = app
        .post(
            "/api/v2/roles/rol_0000000000000000/permissions",
            &json!({ "permissions": [permission(&app, "read:users")] }),
        )
        .await;
    assert_api_error(status, &body, 404, "inexistent_resource");
}

async fn invalid_role_permissions_are_refused(app: TestApp) {
    let role = create_role(&app, "Strict", "").await;
    let path = format!("/api/v2/roles/{role}/permissions");
    for bad in [
        json!({ "permissions": [permission(&app, "read:everything")] }),
        json!({ "permissions": [permission(&app, "read:users"), permission(&app, "destroy:tenant")] }),
        json!({ "permissions": [] }),
        json!({ "permissions": [{ "resource_server_identifier": "not an api", "permission_name": "read:x" }] }),
        json!({ "permissions": [{ "resource_server_identifier": "https://api.example.com/", "permission_name": "bad\"name" }] }),
        json!({ "permissions": [{ "permission_name": "read:users" }] }),
        json!({}),
    ] {
        let (status, body) = app.post(&path, &bad).await;
        assert_api_error(status, &body, 400, "invalid_body");
    }
    // Nothing was added, not even the valid half of a refused request.
    let (status, list) = app.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
}

async fn assigned_roles_give_users_permissions(app: TestApp) {
    let role = create_role(&app, "Helpdesk", "").await;
    add_permissions(&app, &role, &["read:users", "update:users"]).await;
    let other = create_role(&app, "Readers", "").await;
    add_permissions(&app, &other, &["read:users"]).await;
    let user = user_id(&app, "ada@example.com").await;

    let (status, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
    assert_eq!(status, 200, "{roles}");
    assert_eq!(roles, json!([]));
    let (status, perms) = app.get(&format!("/api/v2/users/{user}/permissions")).await;
    assert_eq!(status, 200, "{perms}");
    assert_eq!(perms, json!([]));

    let (status, body) = app.post(&format!("/api/v2/users/{user}/roles"), &json!({ "roles": [role] })).await;
    assert_eq!(status, 204, "{body}");
    // Assigning again is harmless.
    let (status, _) = app.post(&format!("/api/v2/users/{user}/roles"), &json!({ "roles": [role] })).await;
    assert_eq!(status, 204);

    let (status, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
    assert_eq!(status, 200, "{roles}");
    assert_eq!(roles, json!([{ "id": role, "name": "Helpdesk", "description": "" }]));

    let (status, perms) = app.get(&format!("/api/v2/users/{user}/permissions")).await;
    assert_eq!(status, 200, "{perms}");
    let mut held = names(&perms, "permission_name");
    held.sort();
    assert_eq!(held, ["read:users", "update:users"], "{perms}");
    for p in perms.as_array().unwrap() {
        assert_eq!(p["resource_server_identifier"], app.management_audience(), "{p}");
        assert_eq!(
            p["sources"],
            json!([{ "source_id": role, "source_name": "Helpdesk", "source_type": "ROLE" }]),
            "{p}"
        );
    }

    let (status, holders) = app.get(&format!("/api/v2/roles/{role}/users")).await;
    assert_eq!(status, 200, "{holders}");
    assert_eq!(names(&holders, "user_id"), [user.as_str()]);
    assert_eq!(holders[0]["email"], "ada@example.com");

    // A second role granting an overlapping permission: one entry, two sources.
    let (status, _) = app.post(&format!("/api/v2/users/{user}/roles"), &json!({ "roles": [other] })).await;
    assert_eq!(status, 204);
    let (_, roles) = app.get(&format!("/api/v2/users/{user}/roles?include_totals=true")).await;
    assert_eq!(roles["total"], 2, "{roles}");
    let (_, perms) = app.get(&format!("/api/v2/users/{user}/permissions")).await;
    assert_eq!(perms.as_array().map(Vec::len), Some(2), "{perms}");
    let read = perms.as_array().unwrap().iter().find(|p| p["permission_name"] == "read:users").unwrap();
    let mut sources = names(&read["sources"], "source_name");
    sources.sort();
    assert_eq!(sources, ["Helpdesk", "Readers"], "{read}");

    // Unassign both: no roles, no permissions.
    let (status, body) = app
        .send(Method::DELETE, &format!("/api/v2/users/{user}/roles"), Some(&json!({ "roles": [role, other] })))
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
    assert_eq!(roles, json!([]));
    let (_, perms) = app.get(&format!("/api/v2/users/{user}/permissions")).await;
    assert_eq!(perms, json!([]));
    let (_, holders) = app.get(&format!("/api/v2/roles/{role}/users")).await;
    assert_eq!(holders, json!([]));
    // The roles themselves remain.
    let (status, _) = app.get(&format!("/api/v2/roles/{role}")).await;
    assert_eq!(status, 200);
}

async fn role_users_route_assigns_and_lists(app: TestApp) {
    let role = create_role(&app, "Team", "").await;
    add_permissions(&app, &role, &["read:clients"]).await;
    let ada = user_id(&app, "ada@example.com").await;
    let bob = user_id(&app, "bob@example.com").await;
    let eve = user_id(&app, "eve@example.com").await;

    let (status, body) = app.post(&format!("/api/v2/roles/{role}/users"), &json!({ "users": [ada, bob] })).await;
    assert!(status == 200 || status == 201 || status == 204, "{status} {body}");

    let (status, holders) = app.get(&format!("/api/v2/roles/{role}/users?include_totals=true")).await;
    assert_eq!(status, 200, "{holders}");
    assert_eq!(holders["total"], 2, "{holders}");
    let mut listed = names(&holders["users"], "user_id");
    listed.sort();
    let mut expected = vec![ada.clone(), bob.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    for (user, has) in [(&ada, true), (&bob, true), (&eve, false)] {
        let (status, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
        assert_eq!(status, 200);
        assert_eq!(names(&roles, "id").contains(&role), has, "{user}: {roles}");
        let (_, perms) = app.get(&format!("/api/v2/users/{user}/permissions")).await;
        assert_eq!(names(&perms, "permission_name").contains(&"read:clients".to_owned()), has, "{user}: {perms}");
    }

    // Refusals.
    let (status, body) = app.post(&format!("/api/v2/roles/{role}/users"), &json!({ "users": [] })).await;
    assert_api_error(status, &body, 400, "invalid_body");
    let (status, body) = app.post("/api/v2/roles/rol_0000000000000000/users", &json!({ "users": [eve] })).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (status, body) = app.get("/api/v2/roles/rol_0000000000000000/users").await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (_, roles) = app.get(&format!("/api/v2/users/{eve}/roles")).await;
    assert_eq!(roles, json!([]));
}

async fn role_assignment_errors(app: TestApp) {
    let role = create_role(&app, "Real", "").await;
    let user = user_id(&app, "ada@example.com").await;
    let users_roles = format!("/api/v2/users/{user}/roles");

    // An unknown role id, alone or beside a real one: 400 and nothing assigned.
    for roles in [json!(["rol_0000000000000000"]), json!([role, "rol_0000000000000000"])] {
        let (status, body) = app.post(&users_roles, &json!({ "roles": roles })).await;
        assert_api_error(status, &body, 400, "invalid_body");
    }
    let (_, roles) = app.get(&users_roles).await;
    assert_eq!(roles, json!([]), "a refused assignment assigns nothing");

    for bad in [json!({ "roles": [] }), json!({}), json!({ "roles": "rol_x" })] {
        let (status, body) = app.post(&users_roles, &bad).await;
        assert_api_error(status, &body, 400, "invalid_body");
    }

    // Unknown user.
    let ghost = "guise|000000000000000000000000";
    let (status, body) = app.get(&format!("/api/v2/users/{ghost}/roles")).await;
    assert_api_error(status, &body, 404, "inexistent_user");
    let (status, body) = app.get(&format!("/api/v2/users/{ghost}/permissions")).await;
    assert_api_error(status, &body, 404, "inexistent_user");
    let (status, body) = app.post(&format!("/api/v2/users/{ghost}/roles"), &json!({ "roles": [role] })).await;
    assert_api_error(status, &body, 404, "inexistent_user");
    let (status, body) =
        app.send(Method::DELETE, &format!("/api/v2/users/{ghost}/roles"), Some(&json!({ "roles": [role] }))).await;
    assert_api_error(status, &body, 404, "inexistent_user");
    let (_, holders) = app.get(&format!("/api/v2/roles/{role}/users")).await;
    assert_eq!(holders, json!([]));
}

async fn a_failed_role_users_request_assigns_nobody(app: TestApp) {
    // `POST /roles/{id}/users` naming one real and one unknown user is refused; the
    // refusal must not leave the real user holding the role.
    let role = create_role(&app, "Atomic", "").await;
    let ada = user_id(&app, "ada@example.com").await;
    let (status, body) = app
        .post(&format!("/api/v2/roles/{role}/users"), &json!({ "users": [ada, "guise|000000000000000000000000"] }))
        .await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (_, holders) = app.get(&format!("/api/v2/roles/{role}/users")).await;
    assert_eq!(holders, json!([]), "a refused request assigned the role to some of its users");
    let (_, roles) = app.get(&format!("/api/v2/users/{ada}/roles")).await;
    assert_eq!(roles, json!([]));
}

async fn deleting_a_role_removes_it_from_its_users(app: TestApp) {
    let role = create_role(&app, "Temporary", "").await;
    add_permissions(&app, &role, &["read:roles"]).await;
    let keep = create_role(&app, "Permanent", "").await;
    add_permissions(&app, &keep, &["read:logs"]).await;
    let user = user_id(&app, "ada@example.com").await;
    let (status, _) = app.post(&format!("/api/v2/users/{user}/roles"), &json!({ "roles": [role, keep] })).await;
    assert_eq!(status, 204);

    let (status, _) = app.delete(&format!("/api/v2/roles/{role}")).await;
    assert_eq!(status, 204);

    let (status, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
    assert_eq!(status, 200, "{roles}");
    assert_eq!(names(&roles, "id"), [keep.as_str()]);
    let (_, perms) = app.get(&format!("/api/v2/users/{user}/permissions")).await;
    assert_eq!(names(&perms, "permission_name"), ["read:logs"], "{perms}");
    assert_eq!(perms[0]["sources"][0]["source_id"], keep.as_str());
    let (status, body) = app.get(&format!("/api/v2/roles/{role}/permissions")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    let (status, body) = app.get(&format!("/api/v2/roles/{role}/users")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");

    // A role with the same name can be created again and starts empty.
    let again = create_role(&app, "Temporary", "").await;
    let (_, perms) = app.get(&format!("/api/v2/roles/{again}/permissions")).await;
    assert_eq!(perms, json!([]));
    let (_, holders) = app.get(&format!("/api/v2/roles/{again}/users")).await;
    assert_eq!(holders, json!([]));
}

async fn role_routes_enforce_their_scopes(app: TestApp) {
    let role = create_role(&app, "Existing", "").await;
    let user = user_id(&app, "ada@example.com").await;
    let (reader, secret) = app.machine_client("role reader", &["read:roles"]).await;
    let token = app.client_token(&reader, &secret, None).await;

    let (status, list) = app.send_as(&token, Method::GET, "/api/v2/roles", None).await;
    assert_eq!(status, 200, "{list}");
    assert!(names(&list, "id").contains(&role));
    let (status, _) = app.send_as(&token, Method::GET, &format!("/api/v2/roles/{role}"), None).await;
    assert_eq!(status, 200);
    let (status, _) = app.send_as(&token, Method::GET, &format!("/api/v2/roles/{role}/permissions"), None).await;
    assert_eq!(status, 200);

    let (status, body) = app.send_as(&token, Method::POST, "/api/v2/roles", Some(&json!({ "name": "Mine" }))).await;
    assert_api_error(status, &body, 403, "insufficient_scope");
    assert!(body["message"].as_str().unwrap().contains("create:roles"), "{body}");

    let perms = json!({ "permissions": [permission(&app, "read:users")] });
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::PATCH, format!("/api/v2/roles/{role}"), Some(json!({ "name": "Renamed" }))),
        (Method::DELETE, format!("/api/v2/roles/{role}"), None),
        (Method::POST, format!("/api/v2/roles/{role}/permissions"), Some(perms.clone())),
        (Method::DELETE, format!("/api/v2/roles/{role}/permissions"), Some(perms)),
        (Method::POST, format!("/api/v2/roles/{role}/users"), Some(json!({ "users": [user] }))),
        // Listing a role's users also needs read:users.
        (Method::GET, format!("/api/v2/roles/{role}/users"), None),
        (Method::POST, format!("/api/v2/users/{user}/roles"), Some(json!({ "roles": [role] }))),
        (Method::GET, format!("/api/v2/users/{user}/roles"), None),
    ];
    for (method, path, body) in refused {
        let (status, response) = app.send_as(&token, method.clone(), &path, body.as_ref()).await;
        assert_api_error(status, &response, 403, "insufficient_scope");
    }

    // Nothing changed.
    let (_, list) = app.get("/api/v2/roles?include_totals=true").await;
    assert_eq!(list["total"], 2, "{list}");
    let (_, fetched) = app.get(&format!("/api/v2/roles/{role}")).await;
    assert_eq!(fetched["name"], "Existing");
    let (_, perms) = app.get(&format!("/api/v2/roles/{role}/permissions")).await;
    assert_eq!(perms, json!([]));
    let (_, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
    assert_eq!(roles, json!([]));

    // No token at all.
    let (status, body) = split(app.http.get(app.url("/api/v2/roles")).send().await.unwrap()).await;
    assert_api_error(status, &body, 401, "invalid_token");
}

async fn role_writes_are_audited(app: TestApp) {
    let role = create_role(&app, "Audited", "").await;
    let (status, _) = app.patch(&format!("/api/v2/roles/{role}"), &json!({ "description": "d" })).await;
    assert_eq!(status, 200);
    add_permissions(&app, &role, &["read:users"]).await;
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v2/roles/{role}/permissions"),
            Some(&json!({ "permissions": [permission(&app, "read:users")] })),
        )
        .await;
    assert_eq!(status, 204);
    let user = user_id(&app, "ada@example.com").await;
    let (status, _) = app.post(&format!("/api/v2/users/{user}/roles"), &json!({ "roles": [role] })).await;
    assert_eq!(status, 204);
    let (status, _) =
        app.send(Method::DELETE, &format!("/api/v2/users/{user}/roles"), Some(&json!({ "roles": [role] }))).await;
    assert_eq!(status, 204);
    let (status, _) = app.post(&format!("/api/v2/roles/{role}/users"), &json!({ "users": [user] })).await;
    assert!((200..300).contains(&status));
    let (status, _) = app.delete(&format!("/api/v2/roles/{role}")).await;
    assert_eq!(status, 204);

    let sapi = app.logs_of_type("sapi").await;
    let mut about_role: Vec<&Value> =
        sapi.iter().filter(|e| e["details"].to_string().contains(role.as_str())).collect();
    about_role.reverse();
    let descriptions: Vec<&str> = about_role.iter().map(|e| e["description"].as_str().unwrap()).collect();
    assert_eq!(
        descriptions,
        [
            "Create a role",
            "Update a role",
            "Add permissions to a role",
            "Remove permissions from a role",
            "Assign roles to a user",
            "Remove roles from a user",
            "Assign users to a role",
            "Delete a role",
        ],
        "{sapi:#?}"
    );
    for event in &about_role {
        assert_eq!(event["actor"], json!({ "type": "client", "id": app.management_client_id }), "{event}");
        assert_eq!(event["client_id"], app.management_client_id.as_str(), "{event}");
    }
    // The user-role events are about the user.
    for event in about_role.iter().filter(|e| e["description"].as_str().unwrap().contains("user")) {
        assert_eq!(event["user_id"], user.as_str(), "{event}");
    }
}

async fn user_role_routes_need_the_roles_scope_too(app: TestApp) {
    // `POST /roles/{id}/users` demands update:roles as well as update:users; the same
    // change made through `POST /users/{id}/roles` (or undone through DELETE) must not be
    // cheaper, or a client trusted only to edit profiles can make anyone an administrator.
    let (status, list) = app.get(&format!("/api/v2/roles?name_filter={}", ADMIN_ROLE.replace(' ', "%20"))).await;
    assert_eq!(status, 200, "{list}");
    let admin_role = list[0]["id"].as_str().unwrap().to_owned();
    let user = user_id(&app, "mallory@example.com").await;
    let (editor, secret) = app.machine_client("profile editor", &["read:users", "update:users"]).await;
    let token = app.client_token(&editor, &secret, None).await;

    // The role route refuses this client.
    let (status, body) = app
        .send_as(&token, Method::POST, &format!("/api/v2/roles/{admin_role}/users"), Some(&json!({ "users": [user] })))
        .await;
    assert_api_error(status, &body, 403, "insufficient_scope");

    // So must the user route.
    let (status, body) = app
        .send_as(&token, Method::POST, &format!("/api/v2/users/{user}/roles"), Some(&json!({ "roles": [admin_role] })))
        .await;
    assert_api_error(status, &body, 403, "insufficient_scope");
    let (_, roles) = app.get(&format!("/api/v2/users/{user}/roles")).await;
    assert_eq!(roles, json!([]), "a client without update:roles made the user an administrator");

    let (status, body) = app
        .send_as(
            &token,
            Method::DELETE,
            &format!("/api/v2/users/{}/roles", app.admin_user_id),
            Some(&json!({ "roles": [admin_role] })),
        )
        .await;
    assert_api_error(status, &body, 403, "insufficient_scope");
    let (_, roles) = app.get(&format!("/api/v2/users/{}/roles", app.admin_user_id)).await;
    assert_eq!(names(&roles, "id"), [admin_role], "a client without update:roles removed the admin's role");
}
