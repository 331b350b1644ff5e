//! Management API lists as Auth0's SDKs call them: paging with totals on every list,
//! `users-by-email`, `search` as `q` on logs, `sort`, `fields`/`include_fields`
//! projections, client filters, and unknown query parameters refused.

use crate::both_backends;
use crate::helpers::TestApp;
use crate::users::urlencode;
use serde_json::{Value, json};

both_backends!(
    a_user_s_permissions_and_roles_page_with_totals,
    users_by_email_is_exact_case_insensitive_and_needs_read_users,
    unknown_query_parameters_on_lists_are_a_400,
    logs_take_search_as_q_sort_by_date_and_project_fields,
    users_sort_and_project_without_revealing_more,
    clients_filter_by_app_type_first_party_and_global,
);

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap_or_else(|| panic!("an object: {v}")).keys().cloned().collect();
    keys.sort();
    keys
}

async fn a_user_s_permissions_and_roles_page_with_totals(app: TestApp) {
    let user = app.create_user("paged@example.com").await;
    let id = urlencode(user["user_id"].as_str().unwrap());
    let mut roles = Vec::new();
    for name in ["paged-a", "paged-b", "paged-c"] {
        let (status, role) = app.post("/api/v2/roles", &json!({ "name": name })).await;
        assert_eq!(status, 200, "{role}");
        roles.push(role["id"].as_str().unwrap().to_owned());
    }
    let permissions: Vec<Value> = ["read:a", "read:b", "read:c"]
        .iter()
        .map(|p| json!({ "resource_server_identifier": "https://api.example.com/", "permission_name": p }))
        .collect();
    let (status, body) =
        app.post(&format!("/api/v2/roles/{}/permissions", roles[0]), &json!({ "permissions": permissions })).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.post(&format!("/api/v2/users/{id}/roles"), &json!({ "roles": roles })).await;
    assert_eq!(status, 204, "{body}");

    let (status, all) = app.get(&format!("/api/v2/users/{id}/permissions")).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 3, "a bare array without include_totals");

    let (status, first) =
        app.get(&format!("/api/v2/users/{id}/permissions?page=0&per_page=2&include_totals=true")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["start"].as_i64(), first["limit"].as_i64(), first["total"].as_i64()),
        (Some(0), Some(2), Some(3))
    );
    assert_eq!(first["permissions"].as_array().unwrap().len(), 2);
    let (_, second) = app.get(&format!("/api/v2/users/{id}/permissions?page=1&per_page=2&include_totals=true")).await;
    assert_eq!(second["start"], 2);
    assert_eq!(second["permissions"].as_array().unwrap().len(), 1);
    let mut seen: Vec<Value> = first["permissions"].as_array().unwrap().clone();
    seen.extend(second["permissions"].as_array().unwrap().iter().cloned());
    let mut names: Vec<&str> = seen.iter().map(|p| p["permission_name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["read:a", "read:b", "read:c"], "the pages cover the list once");

    let (status, page) = app.get(&format!("/api/v2/users/{id}/roles?page=1&per_page=2&include_totals=true")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["start"].as_i64(), page["limit"].as_i64(), page["total"].as_i64()), (Some(2), Some(2), Some(3)));
    assert_eq!(page["roles"].as_array().unwrap().len(), 1);
}

async fn users_by_email_is_exact_case_insensitive_and_needs_read_users(app: TestApp) {
    let user = app.create_user("Mixed.Case@Example.com").await;
    let (status, found) = app.get("/api/v2/users-by-email?email=mixed.case%40example.COM").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["user_id"], user["user_id"]);
    assert_eq!(found[0], user, "the same view as GET /users/{{id}}");

    for near_miss in ["mixed.case%40example", "mixed", "ixed.case%40example.com", "mixed.case%25"] {
        let (status, found) = app.get(&format!("/api/v2/users-by-email?email={near_miss}")).await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found, json!([]), "exact, never a prefix or pattern: {near_miss}");
    }
    let (status, projected) =
        app.get("/api/v2/users-by-email?email=mixed.case%40example.com&fields=user_id,email&include_fields=true").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&projected[0]), ["email", "user_id"]);

    let (status, body) = app.get("/api/v2/users-by-email").await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("invalid_query_string")), "{body}");
    let (status, body) = app.get("/api/v2/users-by-email?email=x%40example.com&q=email:x").await;
    assert_eq!(status, 400, "{body}");

    // A token without read:users learns nothing, not even whether the address exists.
    let (client_id, secret) = app.machine_client("no-read-users", &["read:logs"]).await;
    let weak = app.client_token(&client_id, &secret, None).await;
    for email in ["mixed.case%40example.com", "nobody%40example.com"] {
        let (status, body) =
            app.send_as(&weak, reqwest::Method::GET, &format!("/api/v2/users-by-email?email={email}"), None).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["errorCode"], "insufficient_scope");
    }
}

async fn unknown_query_parameters_on_lists_are_a_400(app: TestApp) {
    let user = app.create_user("lists@example.com").await;
    let id = urlencode(user["user_id"].as_str().unwrap());
    let (status, role) = app.post("/api/v2/roles", &json!({ "name": "lists" })).await;
    assert_eq!(status, 200);
    let role = role["id"].as_str().unwrap().to_owned();
    let lists = [
        "/api/v2/users".to_owned(),
        format!("/api/v2/users/{id}/roles"),
        format!("/api/v2/users/{id}/permissions"),
        "/api/v2/clients".to_owned(),
        "/api/v2/client-grants".to_owned(),
        "/api/v2/roles".to_owned(),
        format!("/api/v2/roles/{role}/permissions"),
        format!("/api/v2/roles/{role}/users"),
        "/api/v2/logs".to_owned(),
        "/api/v2/impersonations".to_owned(),
    ];
    let admin = urlencode(&app.admin_user_id);
    for list in &lists {
        let sep = if list.contains('?') { '&' } else { '?' };
        let (status, body) = app.get(&format!("{list}{sep}per_page=5&page=0&include_totals=true")).await;
        assert_eq!(status, 200, "{list}: {body}");
        assert!(body["total"].is_i64(), "{list} pages with totals: {body}");
        let (status, body) = app.get(&format!("{list}{sep}pre_page=5")).await;
        assert_eq!(status, 400, "a misspelt parameter on {list} is refused: {body}");
        assert_eq!(body["errorCode"], "invalid_query_string", "{body}");
        assert!(body["message"].as_str().unwrap().contains("pre_page"), "{body}");
        // as_user_id is read by every Management API call (acting as a user).
        let (status, body) = app.get(&format!("{list}{sep}as_user_id={admin}")).await;
        assert_ne!(status, 400, "as_user_id is no unknown parameter on {list}: {body}");
    }
    // users-by-email is no paged list in Auth0: paging parameters are unknown there.
    let (status, body) = app.get("/api/v2/users-by-email?email=lists%40example.com&per_page=5").await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("invalid_query_string")), "{body}");
    let (status, _) = app.get(&format!("/api/v2/users-by-email?email=lists%40example.com&as_user_id={admin}")).await;
    assert_eq!(status, 200);
    // The self-service lists too.
    let (status, body) = app.get(&format!("/api/v2/me/activity?as_user_id={id}&bogus=1")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get(&format!("/api/v2/me/sessions?as_user_id={id}&include_totals=true")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 0);
}

async fn logs_take_search_as_q_sort_by_date_and_project_fields(app: TestApp) {
    app.create_user("searched@example.com").await;
    let (status, by_q) = app.get("/api/v2/logs?q=type:sapi").await;
    assert_eq!(status, 200, "{by_q}");
    let (status, by_search) = app.get("/api/v2/logs?search=type:sapi").await;
    assert_eq!(status, 200, "{by_search}");
    assert!(!by_q.as_array().unwrap().is_empty());
    assert_eq!(by_q, by_search, "search is q");
    let (status, body) = app.get("/api/v2/logs?q=type:sapi&search=type:fapi").await;
    assert_eq!(status, 400, "two different queries: {body}");

    let (_, newest) = app.get("/api/v2/logs?sort=date:-1&per_page=100").await;
    let (_, oldest) = app.get("/api/v2/logs?sort=date:1&per_page=100").await;
    let mut reversed = oldest.as_array().unwrap().clone();
    reversed.reverse();
    assert_eq!(newest.as_array().unwrap(), &reversed);
    for bad in ["type:1", "date", "date:2", "date:-1:x"] {
        let (status, body) = app.get(&format!("/api/v2/logs?sort={bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    let (status, projected) = app.get("/api/v2/logs?fields=type,date&include_fields=true").await;
    assert_eq!(status, 200);
    for log in projected.as_array().unwrap() {
        assert_eq!(keys(log), ["date", "type"]);
    }
    let (_, without) = app.get("/api/v2/logs?fields=details,hash&include_fields=false").await;
    for log in without.as_array().unwrap() {
        assert!(log.get("details").is_none() && log.get("hash").is_none() && log.get("type").is_some(), "{log}");
    }
}

async fn users_sort_and_project_without_revealing_more(app: TestApp) {
    for email in ["sort-b@example.com", "sort-c@example.com", "sort-a@example.com"] {
        app.create_user(email).await;
    }
    let emails = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect()
    };
    let (status, asc) = app.get("/api/v2/users?q=email:sort-*&sort=email:1").await;
    assert_eq!(status, 200, "{asc}");
    assert_eq!(emails(&asc), ["sort-a@example.com", "sort-b@example.com", "sort-c@example.com"]);
    let (_, desc) = app.get("/api/v2/users?q=email:sort-*&sort=email:-1").await;
    assert_eq!(emails(&desc), ["sort-c@example.com", "sort-b@example.com", "sort-a@example.com"]);
    let (status, _) = app.get("/api/v2/users?sort=last_login:-1&sort_extra=1").await;
    assert_eq!(status, 400);
    for sort in ["last_login:1", "logins_count:-1", "created_at:1", "updated_at:-1", "name:1", "user_id:-1"] {
        let (status, body) = app.get(&format!("/api/v2/users?sort={sort}&include_totals=true")).await;
        assert_eq!(status, 200, "{sort}: {body}");
        assert_eq!(body["total"], 4, "{sort}: the admin and the three");
    }
    for bad in ["password_hash:1", "email", "email:0", "app_metadata.x:1"] {
        let (status, body) = app.get(&format!("/api/v2/users?sort={bad}")).await;
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("invalid_query_string")), "{bad}: {body}");
    }

    let (status, projected) = app.get("/api/v2/users?q=email:sort-a*&fields=email,user_id").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&projected[0]), ["email", "user_id"]);
    let (_, excluded) =
        app.get("/api/v2/users?q=email:sort-a*&fields=identities,app_metadata&include_fields=false").await;
    assert!(excluded[0].get("identities").is_none() && excluded[0].get("app_metadata").is_none());
    assert!(excluded[0].get("email").is_some());
    // Naming a field the view does not have reveals nothing (no hashes, no secrets).
    let (_, probed) = app.get("/api/v2/users?q=email:sort-a*&fields=password_hash,password,user_id").await;
    assert_eq!(keys(&probed[0]), ["user_id"]);
    let one = format!("/api/v2/users/{}", urlencode(projected[0]["user_id"].as_str().unwrap()));
    let (status, single) = app.get(&format!("{one}?fields=email&include_fields=true")).await;
    assert_eq!(status, 200, "{single}");
    assert_eq!(keys(&single), ["email"]);
    let (status, body) = app.get(&format!("{one}?fieldz=email")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get("/api/v2/users?include_fields=maybe").await;
    assert_eq!(status, 400, "{body}");
}

async fn clients_filter_by_app_type_first_party_and_global(app: TestApp) {
    for (name, app_type, first_party) in
        [("f-spa", "spa", true), ("f-native", "native", false), ("f-web", "regular_web", true)]
    {
        let (status, body) = app
            .post("/api/v2/clients", &json!({ "name": name, "app_type": app_type, "is_first_party": first_party }))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let names = |list: &Value| -> Vec<String> {
        let mut names: Vec<String> =
            list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
        names.sort();
        names
    };
    let (status, spa) = app.get("/api/v2/clients?app_type=spa").await;
    assert_eq!(status, 200, "{spa}");
    assert_eq!(names(&spa), ["f-spa"]);
    let (_, several) = app.get("/api/v2/clients?app_type=spa,native&include_totals=true").await;
    assert_eq!(names(&several["clients"]), ["f-native", "f-spa"]);
    assert_eq!(several["total"], 2);
    let (_, third_party) = app.get("/api/v2/clients?is_first_party=false").await;
    assert_eq!(names(&third_party), ["f-native"]);
    let (_, web_first) = app.get("/api/v2/clients?app_type=regular_web&is_first_party=true").await;
    assert_eq!(names(&web_first), ["f-web", "guise Support Console"]);
    let (status, global) = app.get("/api/v2/clients?is_global=true").await;
    assert_eq!((status, global), (200, json!([])), "guise has no global client");
    let (_, not_global) = app.get("/api/v2/clients?is_global=false&include_totals=true").await;
    assert!(not_global["total"].as_i64().unwrap() >= 4, "{not_global}");
    let (status, body) = app.get("/api/v2/clients?app_type=desktop").await;
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("invalid_query_string")), "{body}");

    let (status, projected) = app.get("/api/v2/clients?app_type=spa&fields=client_id,name,client_secret").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&projected[0]), ["client_id", "name"], "a projection never adds the secret");
    let one = format!("/api/v2/clients/{}", projected[0]["client_id"].as_str().unwrap());
    let (status, single) = app.get(&format!("{one}?fields=client_secret,app_type")).await;
    assert_eq!(status, 200, "{single}");
    assert_eq!(keys(&single), ["app_type"]);
}
