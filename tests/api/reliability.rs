//! Reliability (#15): hostile and unstorable input, races between nodes, database
//! faults. Every answer is the protocol's own error, alike on both backends.

use crate::both_backends;
use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(nul_characters_are_refused_at_the_edge_in_each_protocol_s_shape);

/// A request body: its content type and text.
type Body<'a> = Option<(&'a str, String)>;

/// Which error body an answer must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{"error": "invalid_request", "error_description": …}`
    OAuth,
    /// `{"statusCode": 400, "error", "message", "errorCode"}`
    Auth0,
    /// The HTML error page.
    Page,
}

async fn nul_characters_are_refused_at_the_edge_in_each_protocol_s_shape(app: TestApp) {
    let form = "application/x-www-form-urlencoded";
    let admin_path = format!("/api/v2/users/{}", app.admin_user_id.replace('|', "%7C"));
    let json_type = "application/json";
    // (method, path, content type and body, authenticated, shape)
    let cases: Vec<(Method, &str, Body, bool, Shape)> = vec![
        (Method::GET, "/authorize?response_type=code&client_id=a%00b", None, false, Shape::Page),
        (Method::GET, "/samlp/a%00b", None, false, Shape::Page),
        (Method::GET, "/samlp/metadata/a%00b", None, false, Shape::Page),
        (Method::GET, "/wsfed/a%00b?wa=wsignin1.0", None, false, Shape::Page),
        (Method::GET, "/login?tx=a%00b", None, false, Shape::Page),
        (
            Method::POST,
            "/login",
            Some((form, "tx=a%00b&email=x%40example.com&password=p&csrf=c".into())),
            false,
            Shape::Page,
        ),
        (Method::GET, "/oidc/logout?client_id=a%00b", None, false, Shape::Page),
        (Method::GET, "/impersonate/redeem?user_id=a%00b&bewit=x", None, false, Shape::Page),
        (
            Method::POST,
            "/oauth/token",
            Some((form, "grant_type=client_credentials&client_id=a%00b&client_secret=x".into())),
            false,
            Shape::OAuth,
        ),
        (
            Method::POST,
            "/oauth/token",
            Some((json_type, r#"{"grant_type":"authorization_code","client_id":"c","code":"a\u0000b"}"#.into())),
            false,
            Shape::OAuth,
        ),
        (Method::POST, "/oauth/revoke", Some((form, "client_id=c&token=a%00b".into())), false, Shape::OAuth),
        (Method::POST, "/oauth/introspect", Some((form, "client_id=c&token=a%00b".into())), false, Shape::OAuth),
        (Method::GET, "/api/v2/users/a%00b", None, true, Shape::Auth0),
        (Method::GET, "/api/v2/users?q=a%00b", None, true, Shape::Auth0),
        (Method::GET, "/api/v2/logs?q=user_id:a%00b", None, true, Shape::Auth0),
        (Method::GET, "/api/v2/clients/a%00b", None, true, Shape::Auth0),
        (Method::DELETE, "/api/v2/roles/a%00b", None, true, Shape::Auth0),
        (
            Method::POST,
            "/api/v2/users",
            Some((
                json_type,
                json!({"email": "nul@example.com", "name": "a\u{0}b", "password": "long enough password"}).to_string(),
            )),
            true,
            Shape::Auth0,
        ),
        (Method::POST, "/api/v2/roles", Some((json_type, json!({"name": "a\u{0}b"}).to_string())), true, Shape::Auth0),
        (
            Method::PATCH,
            &admin_path,
            Some((json_type, json!({"user_metadata": {"k\u{0}": "v"}}).to_string())),
            true,
            Shape::Auth0,
        ),
    ];
    for (method, path, body, authenticated, shape) in cases {
        let name = format!("{method} {path}");
        let mut request = app.http.request(method, app.url(path));
        if authenticated {
            request = request.bearer_auth(&app.token);
        }
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 400, "{name}: {text}");
        match shape {
            Shape::OAuth => {
                let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: JSON, got {text}"));
                assert_eq!(body["error"], "invalid_request", "{name}");
                assert!(body["error_description"].as_str().is_some_and(|d| d.contains("NUL")), "{name}: {body}");
            }
            Shape::Auth0 => {
                let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: JSON, got {text}"));
                assert_eq!(body["statusCode"], 400, "{name}");
                assert!(body["message"].as_str().is_some_and(|d| d.contains("NUL")), "{name}: {body}");
            }
            Shape::Page => {
                assert!(content_type.starts_with("text/html"), "{name}: {content_type}");
                assert!(text.contains("NUL"), "{name}: {text}");
            }
        }
    }
    // Nothing was stored on either backend.
    let (_, users) = app.get("/api/v2/users?q=email:nul@example.com").await;
    assert_eq!(users.as_array().map(Vec::len), Some(0), "{users}");
}
