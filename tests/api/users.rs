//! `/api/v2/users`: the Auth0 shapes, search, merge-on-patch, and every refusal.

use crate::both_backends;
use crate::helpers::{TestApp, split};
use serde_json::{Value, json};

both_backends!(
    create_get_and_delete_a_user,
    search_with_q_and_pagination,
    patch_merges_metadata_and_records_who,
    invalid_input_is_refused_with_400,
    duplicate_email_in_any_case_is_409,
    unknown_user_is_404,
    oversized_and_malformed_bodies,
    every_user_write_is_audited,
    usernames_are_unique_searchable_and_log_in,
);

async fn create_get_and_delete_a_user(app: TestApp) {
    let (status, user) = app
        .post(
            "/api/v2/users",
            &json!({
                "email": "ada@example.com",
                "password": "analytical engine",
                "connection": "Username-Password-Authentication",
                "given_name": "Ada",
                "family_name": "Lovelace",
                "app_metadata": { "plan": "gold" },
                "external_id": "sis-1815",
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["user_id"].as_str().unwrap();
    assert!(id.starts_with("guise|"));
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "ada@example.com", "name defaults to the email, as Auth0 does");
    assert_eq!(user["nickname"], "ada");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["blocked"], false);
    assert_eq!(user["app_metadata"], json!({ "plan": "gold" }));
    assert_eq!(user["external_id"], "sis-1815");
    assert_eq!(user["identities"][0]["connection"], "Username-Password-Authentication");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert!(!user.to_string().contains("argon2"), "no hash may leave the server");

    let (status, fetched) = app.get(&format!("/api/v2/users/{}", urlencode(id))).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, user);

    let (status, _) = app.delete(&format!("/api/v2/users/{}", urlencode(id))).await;
    assert_eq!(status, 204);
    let (status, body) = app.get(&format!("/api/v2/users/{}", urlencode(id))).await;
    assert_eq!(status, 404);
    assert_eq!(body["errorCode"], "inexistent_user");
    let (status, _) = app.delete(&format!("/api/v2/users/{}", urlencode(id))).await;
    assert_eq!(status, 404);
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn search_with_q_and_pagination(app: TestApp) {
    for (email, name) in [
        ("grace@navy.example", "Grace Hopper"),
        ("alan@bletchley.example", "Alan Turing"),
        ("ada@analytical.example", "Ada Lovelace"),
    ] {
        let (status, body) = app.post("/api/v2/users", &json!({ "email": email, "name": name })).await;
        assert_eq!(status, 201, "{body}");
    }
    let emails = |body: &Value| -> Vec<String> {
        body.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect()
    };

    // Plain text matches email or name, case-insensitively.
    let (_, found) = app.get("/api/v2/users?q=HOPPER").await;
    assert_eq!(emails(&found), vec!["grace@navy.example"]);
    let (_, found) = app.get("/api/v2/users?q=bletchley").await;
    assert_eq!(emails(&found), vec!["alan@bletchley.example"]);
    // field:value, quoted values, prefixes.
    let (_, found) = app.get(&format!("/api/v2/users?q={}", urlencode(r#"name:"Ada Lovelace""#))).await;
    assert_eq!(emails(&found), vec!["ada@analytical.example"]);
    let (_, found) = app.get(&format!("/api/v2/users?q={}", urlencode("email:ALAN@Bletchley.example"))).await;
    assert_eq!(emails(&found), vec!["alan@bletchley.example"]);
    let (_, found) = app.get(&format!("/api/v2/users?q={}", urlencode("name:Gr*"))).await;
    assert_eq!(emails(&found), vec!["grace@navy.example"]);
    let (_, found) = app.get("/api/v2/users?q=blocked:true").await;
    assert_eq!(found, json!([]));
    // Wildcards in plain text are literal, not SQL patterns.
    let (_, found) = app.get(&format!("/api/v2/users?q={}", urlencode("%"))).await;
    assert_eq!(found, json!([]));

    // Pagination over the four users (three plus the admin).
    let (status, page) = app.get("/api/v2/users?per_page=3&page=0&include_totals=true").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 4);
    assert_eq!(page["length"], 3);
    assert_eq!(page["limit"], 3);
    assert_eq!(page["start"], 0);
    let (_, second) = app.get("/api/v2/users?per_page=3&page=1&include_totals=true").await;
    assert_eq!(second["length"], 1);
    assert_eq!(second["start"], 3);

    // Query errors are 400s naming the problem.
    for q in ["password:x", "blocked:maybe", "name:\"unterminated"] {
        let (status, body) = app.get(&format!("/api/v2/users?q={}", urlencode(q))).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["errorCode"], "invalid_query_string");
    }
    let (status, _) = app.get("/api/v2/users?per_page=abc").await;
    assert_eq!(status, 400);
}

async fn patch_merges_metadata_and_records_who(app: TestApp) {
    let user = app.create_user("linus@example.com").await;
    let path = format!("/api/v2/users/{}", urlencode(user["user_id"].as_str().unwrap()));
    let (status, _) = app.patch(&path, &json!({ "user_metadata": { "theme": "dark", "lang": "fi" } })).await;
    assert_eq!(status, 200);
    let (status, patched) = app
        .patch(
            &path,
            &json!({ "user_metadata": { "lang": null, "tz": "Europe/Helsinki" }, "name": "Linus", "blocked": true }),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["user_metadata"], json!({ "theme": "dark", "tz": "Europe/Helsinki" }));
    assert_eq!(patched["name"], "Linus");
    assert_eq!(patched["blocked"], true);
    assert_eq!(patched["created_by"], app.management_client_id.as_str());
    assert_eq!(patched["modified_by"], app.management_client_id.as_str());
    assert!(patched.get("modified_on_behalf_by").is_none());

    // An empty object clears the metadata, as Auth0 documents; the other one is kept.
    let (status, _) = app.patch(&path, &json!({ "app_metadata": { "plan": "gold" } })).await;
    assert_eq!(status, 200);
    let (status, cleared) = app.patch(&path, &json!({ "user_metadata": {} })).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["user_metadata"], json!({}));
    assert_eq!(cleared["app_metadata"], json!({ "plan": "gold" }));
    let (_, fetched) = app.get(&path).await;
    assert_eq!(fetched["user_metadata"], json!({}), "cleared in the store, not only in the answer");
    let (status, cleared) = app.patch(&path, &json!({ "app_metadata": {} })).await;
    assert_eq!(status, 200);
    assert_eq!(cleared["app_metadata"], json!({}));

    // Email changes keep case-insensitive uniqueness; a null clears an optional field.
    let (status, patched) = app.patch(&path, &json!({ "email": "Torvalds@Example.com", "nickname": null })).await;
    assert_eq!(status, 200);
    assert_eq!(patched["email"], "Torvalds@Example.com");
    assert!(patched.get("nickname").is_none());
    let (_, found) = app.get("/api/v2/users?q=email:torvalds@example.com").await;
    assert_eq!(found.as_array().unwrap().len(), 1);

    // A new password is accepted (and never echoed); a short one refused.
    let (status, body) = app.patch(&path, &json!({ "password": "a much better password" })).await;
    assert_eq!(status, 200);
    assert!(body.get("password").is_none());
    let (status, body) = app.patch(&path, &json!({ "password": "short" })).await;
    assert_eq!(status, 400, "{body}");
}

async fn invalid_input_is_refused_with_400(app: TestApp) {
    let cases = [
        json!({ "email": "not-an-email", "password": "long enough password" }),
        json!({ "email": "x@y", "password": "long enough password" }),
        json!({ "password": "long enough password" }),
        json!({ "email": "ok@example.com", "password": "short" }),
        json!({ "email": "ok@example.com", "unknown_field": 1 }),
        json!({ "email": "ok@example.com", "connection": "google-oauth2" }),
        json!({ "email": "ok@example.com", "app_metadata": "not an object" }),
        json!({ "email": "ok@example.com", "picture": "not a url" }),
        json!({ "email": "ok@example.com", "name": "n".repeat(301) }),
    ];
    for body in cases {
        let (status, response) = app.post("/api/v2/users", &body).await;
        assert_eq!(status, 400, "{body} → {response}");
        assert_eq!(response["statusCode"], 400);
        assert!(response["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let user = app.create_user("valid@example.com").await;
    let path = format!("/api/v2/users/{}", urlencode(user["user_id"].as_str().unwrap()));
    for body in
        [json!({}), json!({ "email": "bad" }), json!({ "blocked": "yes" }), json!({ "is_admin": true }), json!([])]
    {
        let (status, response) = app.patch(&path, &body).await;
        assert_eq!(status, 400, "{body} → {response}");
    }
    // Nothing was created by the refused requests.
    let (_, all) = app.get("/api/v2/users?include_totals=true").await;
    assert_eq!(all["total"], 2);
}

async fn duplicate_email_in_any_case_is_409(app: TestApp) {
    app.create_user("Dup@Example.com").await;
    for email in ["dup@example.com", "DUP@EXAMPLE.COM", " Dup@Example.com "] {
        let (status, body) = app.post("/api/v2/users", &json!({ "email": email })).await;
        assert_eq!(status, 409, "{email}: {body}");
        assert_eq!(body["statusCode"], 409);
        assert_eq!(body["message"], "The user already exists.");
    }
    let other = app.create_user("other@example.com").await;
    let (status, _) = app
        .patch(
            &format!("/api/v2/users/{}", urlencode(other["user_id"].as_str().unwrap())),
            &json!({ "email": "DUP@example.com" }),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app.post("/api/v2/users", &json!({ "email": "e1@example.com", "external_id": "X1" })).await;
    assert_eq!(status, 201);
    let (status, body) = app.post("/api/v2/users", &json!({ "email": "e2@example.com", "external_id": "X1" })).await;
    assert_eq!(status, 409, "{body}");
}

async fn unknown_user_is_404(app: TestApp) {
    let missing = urlencode("guise|000000000000000000000000");
    let (status, body) = app.get(&format!("/api/v2/users/{missing}")).await;
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("inexistent_user")));
    assert_eq!(body["message"], "The user does not exist.");
    for (method, path, body) in [
        (reqwest::Method::PATCH, format!("/api/v2/users/{missing}"), Some(json!({ "name": "x" }))),
        (reqwest::Method::PATCH, format!("/api/v2/users/{missing}"), Some(json!({ "user_metadata": {} }))),
        (reqwest::Method::DELETE, format!("/api/v2/users/{missing}"), None),
        (reqwest::Method::GET, format!("/api/v2/users/{missing}/permissions"), None),
        (reqwest::Method::GET, format!("/api/v2/users/{missing}/roles"), None),
    ] {
        let (status, error) = app.send(method, &path, body.as_ref()).await;
        assert_eq!((status, error["errorCode"].as_str()), (404, Some("inexistent_user")), "{path}: {error}");
    }
}

async fn oversized_and_malformed_bodies(app: TestApp) {
    let huge = json!({ "email": "big@example.com", "user_metadata": { "blob": "x".repeat(70 * 1024) } });
    let (status, body) = app.post("/api/v2/users", &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["statusCode"], 413);

    let response = app
        .http
        .post(app.url("/api/v2/users"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(r#"{"email": "broken@example.com","#)
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorCode"], "invalid_body");

    let response = app
        .http
        .post(app.url("/api/v2/users"))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body("email=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    // Unknown routes are JSON 404s, not HTML.
    let (status, body) = app.get("/api/v2/nothing-here").await;
    assert_eq!((status, body["statusCode"].as_u64()), (404, Some(404)));
}

async fn every_user_write_is_audited(app: TestApp) {
    let user = app.create_user("audited@example.com").await;
    let id = user["user_id"].as_str().unwrap();
    let path = format!("/api/v2/users/{}", urlencode(id));
    app.patch(&path, &json!({ "name": "Audited" })).await;
    app.delete(&path).await;
    let (status, logs) = app.get(&format!("/api/v2/logs?q={}", urlencode(&format!("user_id:\"{id}\"")))).await;
    assert_eq!(status, 200, "{logs}");
    let descriptions: Vec<&str> = logs.as_array().unwrap().iter().map(|e| e["description"].as_str().unwrap()).collect();
    assert_eq!(descriptions, vec!["Delete a user", "Update a user", "Create a user"]);
    for event in logs.as_array().unwrap() {
        assert_eq!(event["type"], "sapi");
        assert_eq!(event["actor"]["type"], "client");
        assert_eq!(event["actor"]["id"], app.management_client_id.as_str());
        assert_eq!(event["ip"], "127.0.0.1");
    }
    assert!(!logs.to_string().contains("long enough password"), "passwords never reach the log");
}

/// `username`: optional, unique per tenant (in any case), a login identifier on the
/// login page beside the email, never containing `@`.
async fn usernames_are_unique_searchable_and_log_in(app: TestApp) {
    use crate::browser::{Browser, CALLBACK, web_client};
    let (status, ada) = app
        .post(
            "/api/v2/users",
            &json!({ "email": "ada@example.com", "username": "Ada_L", "password": "analytical engine" }),
        )
        .await;
    assert_eq!(status, 201, "{ada}");
    assert_eq!(ada["username"], "ada_l", "stored lower-cased");
    let ada_path = format!("/api/v2/users/{}", urlencode(ada["user_id"].as_str().unwrap()));

    // Unique in any case; users without one do not collide.
    let (status, body) = app.post("/api/v2/users", &json!({ "email": "other@example.com", "username": "ADA_L" })).await;
    assert_eq!((status, body["message"].as_str()), (409, Some("The username is already in use")), "{body}");
    let first = app.create_user("no-name-1@example.com").await;
    app.create_user("no-name-2@example.com").await;
    assert!(first.get("username").is_none(), "absent when unset: {first}");
    for bad in ["has@sign", "has space", "", "<b>"] {
        let (status, body) = app.post("/api/v2/users", &json!({ "email": "bad@example.com", "username": bad })).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Patched, searched, sorted, cleared.
    let first_path = format!("/api/v2/users/{}", urlencode(first["user_id"].as_str().unwrap()));
    let (status, body) = app.patch(&first_path, &json!({ "username": "ada_l" })).await;
    assert_eq!(status, 409, "{body}");
    let (status, patched) = app.patch(&first_path, &json!({ "username": "Babbage" })).await;
    assert_eq!((status, patched["username"].as_str()), (200, Some("babbage")), "{patched}");
    let (_, found) = app.get("/api/v2/users?q=username:ADA_L").await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["user_id"], ada["user_id"]);
    let (status, sorted) = app.get("/api/v2/users?sort=username:1&fields=username").await;
    assert_eq!(status, 200, "{sorted}");
    assert_eq!(sorted[0]["username"], "ada_l");
    assert_eq!(sorted[1]["username"], "babbage");
    let (status, cleared) = app.patch(&first_path, &json!({ "username": null })).await;
    assert_eq!(status, 200);
    assert!(cleared.get("username").is_none(), "{cleared}");

    // The login page takes the username (in any case) as well as the email.
    let (client_id, _) = web_client(&app, json!({})).await;
    let authorize = crate::browser::authorize_url(
        &app,
        &[("client_id", &client_id), ("response_type", "code"), ("redirect_uri", CALLBACK), ("scope", "openid")],
    );
    for identifier in ["Ada_L", "ada@example.com"] {
        let done = Browser::new().login_via(&app, &authorize, identifier, "analytical engine").await;
        assert_eq!(done.status, 302, "{identifier}: {}", done.body);
        assert!(done.location.as_deref().unwrap().starts_with(CALLBACK), "{identifier}");
    }
    let wrong = Browser::new().login_via(&app, &authorize, "ada_l", "not the password").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let login = Browser::new().get(&authorize).await;
    let page = Browser::new().get(&app.url(login.location.as_deref().unwrap())).await;
    assert!(page.body.contains("Email or username"), "{}", page.body);
    let (_, logins) = app.get(&ada_path).await;
    assert_eq!(logins["logins_count"], 2);

    // Through /me a user cannot change their own username (an administrator's field).
    let (status, body) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v2/me?as_user_id={}", urlencode(ada["user_id"].as_str().unwrap())),
            Some(&json!({ "username": "mine" })),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}
