//! `GET /api/v2/openapi.json`: an OpenAPI 3.1 document generated from the handlers,
//! whose every operation, query parameter and scope requirement is the server's own.

use crate::both_backends;
use crate::helpers::TestApp;
use guise_core::permission::scopes;
use serde_json::Value;

both_backends!(the_document_matches_the_routes);

/// The scopes of each security alternative of an operation.
fn alternatives(operation: &Value) -> Vec<Vec<String>> {
    operation["security"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alt| alt["bearer"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .collect()
}

/// A value for a parameter: its documented example, else one of its documented type.
fn example(parameter: &Value) -> String {
    if let Some(example) = parameter["example"].as_str().or_else(|| parameter["schema"]["example"].as_str()) {
        return example.to_owned();
    }
    let schema = &parameter["schema"];
    let types = [&schema["type"], &schema["type"][0]];
    if types.iter().any(|t| *t == "boolean") { "true".into() } else { "1".into() }
}

async fn the_document_matches_the_routes(app: TestApp) {
    let response = app.http.get(app.url("/api/v2/openapi.json")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "public, like Auth0's published description");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], app.management_audience().trim_end_matches('/'));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for schema in ["UserView", "ClientView", "LogView", "ErrorBody", "CreateUser", "UserPatchBody"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} is in the components");
    }
    let user = app.create_user("openapi@example.com").await;
    let user_id = crate::users::urlencode(user["user_id"].as_str().unwrap());
    // One client holding every Management API scope; tokens narrowed per operation.
    let (client_id, secret) = app.machine_client("openapi-scopes", scopes::ALL).await;

    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            assert!(operation["x-required-scopes"].is_array(), "{method} {path}");
            assert!(operation["responses"]["default"]["content"].is_object(), "{method} {path}: the error shape");
            let concrete = format!("/api/v2{}", path.replace("{id}", &user_id));
            let parameters = operation["parameters"].as_array().unwrap();
            assert!(parameters.iter().any(|p| p["name"] == "as_user_id"), "{method} {path}");
            let query: Vec<String> = parameters
                .iter()
                .filter(|p| p["in"] == "query" && p["name"] != "as_user_id")
                .map(|p| format!("{}={}", p["name"].as_str().unwrap(), example(p)))
                .collect();
            let url = if query.is_empty() { concrete.clone() } else { format!("{concrete}?{}", query.join("&")) };
            let has_body = operation["requestBody"].is_object();
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // A token without any scope: every documented operation exists (no 404/405
            // from the router) and knows every documented query parameter.
            let (status, body) = app.send_as("not-a-token", method.clone(), &url, None).await;
            assert_eq!(status, 401, "{method} {url}: the route exists and asks for a token: {body}");
            let (status, body) = app.send(method.clone(), &url, Some(&serde_json::json!({}))).await;
            assert!(status != 404 || body["errorCode"] != "not_found", "{method} {url}: {body}");
            assert_ne!(status, 405, "{method} {url}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(!message.contains("Additional properties not allowed"), "{method} {url}: {body}");

            // The documented scopes are the ones the handler asks for: holding them is
            // never "insufficient scope", and lacking any one of them always is refused —
            // as a missing scope, or by the authority ceiling where a scope stands for
            // what the caller must hold (webhooks need a reader of users and logs). An
            // operation with a body may first refuse the empty body, before the scope.
            let alternatives = alternatives(operation);
            // (The self-service `/me` routes need no scope: a user, which tests/api/act_as.rs covers.)
            for needed in alternatives.iter().filter(|a| !a.is_empty()) {
                let token = app.client_token(&client_id, &secret, Some(&needed.join(" "))).await;
                let (_, body) = app.send_as(&token, method.clone(), &url, Some(&serde_json::json!({}))).await;
                assert_ne!(body["errorCode"], "insufficient_scope", "{method} {url} with {needed:?}: {body}");
            }
            // Lacking one scope of every alternative: each in turn where there is one
            // alternative, the first of each where there are several.
            let drops: Vec<Vec<&String>> = match alternatives.as_slice() {
                [only] => only.iter().map(|s| vec![s]).collect(),
                several => vec![several.iter().filter_map(|a| a.first()).collect()],
            };
            for dropped in drops.into_iter().filter(|d| !d.is_empty()) {
                let rest: Vec<&str> = scopes::ALL.iter().copied().filter(|s| !dropped.iter().any(|d| d == s)).collect();
                let token = app.client_token(&client_id, &secret, Some(&rest.join(" "))).await;
                let (status, body) = app.send_as(&token, method.clone(), &url, Some(&serde_json::json!({}))).await;
                let refused = status == 403
                    && (body["errorCode"] == "insufficient_scope" || body["errorCode"] == "insufficient_permissions");
                assert!(refused || (has_body && status == 400), "{method} {url} without {dropped:?}: {status} {body}");
            }
        }
    }
    assert!(operations >= 38, "{operations}");
}
