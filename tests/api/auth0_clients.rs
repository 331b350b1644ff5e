//! Auth0's client fields (`web_origins`, `allowed_origins`, `oidc_conformant`,
//! `description`, `logo_uri`, `client_metadata`) and the CORS that `web_origins`
//! drives on the token, userinfo and JWKS endpoints.

use crate::both_backends;
use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(auth0_client_fields_round_trip_and_are_validated, web_origins_drive_cors_on_token_userinfo_and_jwks);

async fn auth0_client_fields_round_trip_and_are_validated(app: TestApp) {
    let fields = json!({
        "description": "The shop front",
        "web_origins": ["https://shop.example.com", "http://localhost:3000"],
        "allowed_origins": ["https://shop.example.com"],
        "oidc_conformant": false,
        "logo_uri": "https://cdn.example.com/logo.png",
        "client_metadata": { "tier": "gold", "owner": "team-shop" },
    });
    let mut body = fields.clone();
    body["name"] = json!("Shop");
    body["app_type"] = json!("spa");
    let (status, created) = app.post("/api/v2/clients", &body).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v2/clients/{}", created["client_id"].as_str().unwrap());
    let (_, fetched) = app.get(&path).await;
    for (key, value) in fields.as_object().unwrap() {
        assert_eq!(&created[key], value, "{key} on create");
        assert_eq!(&fetched[key], value, "{key} stored");
    }

    let (status, plain) = app.post("/api/v2/clients", &json!({ "name": "Plain" })).await;
    assert_eq!(status, 201);
    assert_eq!(plain["web_origins"], json!([]));
    assert_eq!(plain["allowed_origins"], json!([]));
    assert_eq!(plain["oidc_conformant"], true, "Auth0's default for new clients");
    assert_eq!(plain["logo_uri"], Value::Null);
    assert_eq!(plain["client_metadata"], json!({}));

    let eleven: serde_json::Map<String, Value> = (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
    let refused = [
        json!({ "web_origins": ["http://shop.example.com"] }),
        json!({ "web_origins": ["https://shop.example.com/app"] }),
        json!({ "web_origins": ["https://shop.example.com/?x=1"] }),
        json!({ "web_origins": ["javascript:alert(1)"] }),
        json!({ "web_origins": ["https://*.example.com"] }),
        json!({ "web_origins": ["com.example.app:/"] }),
        json!({ "allowed_origins": ["data:text/html,x"] }),
        json!({ "logo_uri": "javascript:alert(1)" }),
        json!({ "logo_uri": "http://cdn.example.com/logo.png" }),
        json!({ "client_metadata": { "n": 1 } }),
        json!({ "client_metadata": { "long": "x".repeat(256) } }),
        json!({ "client_metadata": eleven }),
        json!({ "oidc_conformant": "yes" }),
    ];
    for bad in refused {
        let mut create = bad.clone();
        create["name"] = json!("Bad");
        let (status, body) = app.post("/api/v2/clients", &create).await;
        assert_eq!(status, 400, "create {bad}: {body}");
        let (status, body) = app.patch(&path, &bad).await;
        assert_eq!(status, 400, "patch {bad}: {body}");
    }
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(unchanged, fetched, "refused patches change nothing");

    let (status, patched) = app
        .patch(&path, &json!({ "web_origins": ["https://new.example.com"], "logo_uri": null, "client_metadata": {} }))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["web_origins"], json!(["https://new.example.com"]));
    assert_eq!(patched["logo_uri"], Value::Null);
    assert_eq!(patched["client_metadata"], json!({}));
    assert_eq!(patched["allowed_origins"], json!(["https://shop.example.com"]), "untouched");
}

async fn request(app: &TestApp, method: Method, path: &str, origin: &str) -> reqwest::Response {
    app.http
        .request(method, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

fn allow_origin(response: &reqwest::Response) -> Option<String> {
    response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned())
}

async fn web_origins_drive_cors_on_token_userinfo_and_jwks(app: TestApp) {
    const SPA: &str = "https://spa.example.com";
    const EVIL: &str = "https://evil.example.com";
    let (status, spa) =
        app.post("/api/v2/clients", &json!({ "name": "SPA", "app_type": "spa", "web_origins": [SPA] })).await;
    assert_eq!(status, 201, "{spa}");

    for path in ["/oauth/token", "/userinfo", "/.well-known/jwks.json"] {
        let preflight = request(&app, Method::OPTIONS, path, SPA).await;
        assert_eq!(preflight.status().as_u16(), 204, "{path}");
        assert_eq!(allow_origin(&preflight).as_deref(), Some(SPA), "{path}");
        let methods = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
        assert!(methods.contains("POST") && methods.contains("GET"), "{methods}");
        assert!(preflight.headers().get("access-control-allow-credentials").is_none(), "never credentials");

        let refused = request(&app, Method::OPTIONS, path, EVIL).await;
        assert_eq!(allow_origin(&refused), None, "{path}: an unregistered origin gets no CORS headers");
    }

    // The actual responses, errors included, name the registered origin only.
    let token_error = app
        .http
        .post(app.url("/oauth/token"))
        .header("origin", SPA)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("client_id", spa["client_id"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token_error.status().as_u16(), 400);
    assert_eq!(allow_origin(&token_error).as_deref(), Some(SPA));
    // A token request naming another client is readable only from that client's origins.
    let (status, other) = app.post("/api/v2/clients", &json!({ "name": "Other SPA", "app_type": "spa" })).await;
    assert_eq!(status, 201);
    let other_error = app
        .http
        .post(app.url("/oauth/token"))
        .header("origin", SPA)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("client_id", other["client_id"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(other_error.status().as_u16(), 400);
    assert_eq!(allow_origin(&other_error), None, "SPA's origin may not read another client's token answers");
    let jwks = request(&app, Method::GET, "/.well-known/jwks.json", SPA).await;
    assert_eq!(jwks.status().as_u16(), 200);
    assert_eq!(allow_origin(&jwks).as_deref(), Some(SPA));
    let vary: Vec<String> = jwks.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(vary.iter().any(|v| v.contains("Origin")), "a cached JWKS varies by origin: {vary:?}");
    let same_origin_spelt_otherwise =
        request(&app, Method::GET, "/.well-known/jwks.json", "https://spa.example.com:443").await;
    assert_eq!(allow_origin(&same_origin_spelt_otherwise).as_deref(), Some("https://spa.example.com:443"));
    let userinfo = request(&app, Method::GET, "/userinfo", SPA).await;
    assert_eq!(userinfo.status().as_u16(), 401);
    assert_eq!(allow_origin(&userinfo).as_deref(), Some(SPA));
    for (path, method) in
        [("/.well-known/jwks.json", Method::GET), ("/userinfo", Method::GET), ("/oauth/token", Method::POST)]
    {
        let evil = request(&app, method, path, EVIL).await;
        assert_eq!(allow_origin(&evil), None, "{path}");
    }
    // Other routes never answer cross-origin.
    let discovery = request(&app, Method::GET, "/api/v2/clients", SPA).await;
    assert_eq!(allow_origin(&discovery), None);

    // Removing the origin ends it at once.
    let (status, _) = app
        .patch(&format!("/api/v2/clients/{}", spa["client_id"].as_str().unwrap()), &json!({ "web_origins": [] }))
        .await;
    assert_eq!(status, 200);
    let after = request(&app, Method::OPTIONS, "/oauth/token", SPA).await;
    assert_eq!(allow_origin(&after), None);
}
