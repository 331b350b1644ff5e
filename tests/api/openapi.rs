//! `GET /api/v2/openapi.json`: an OpenAPI 3.1 document whose every operation and query
//! parameter exists on the server.

use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::Value;

both_backends!(the_document_matches_the_routes);

async fn the_document_matches_the_routes(app: TestApp) {
    let response = app.http.get(app.url("/api/v2/openapi.json")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "public, like Auth0's published description");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], app.management_audience().trim_end_matches('/'));
    let user = app.create_user("openapi@example.com").await;
    let user_id = crate::users::urlencode(user["user_id"].as_str().unwrap());

    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            assert!(operation["x-required-scopes"].is_array(), "{method} {path}");
            let concrete = format!("/api/v2{}", path.replace("{id}", &user_id));
            let query: Vec<String> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query" && p["name"] != "as_user_id")
                .map(|p| format!("{}=1", p["name"].as_str().unwrap()))
                .collect();
            let url = if query.is_empty() { concrete.clone() } else { format!("{concrete}?{}", query.join("&")) };
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
        }
    }
    assert!(operations >= 35, "{operations}");
}
