//! Management API authentication: bearer tokens are verified (signature by a published
//! key, issuer, audience, expiry) and each route demands its scope.

use crate::both_backends;
use crate::helpers::{TestApp, split};
use chrono::{Duration, Utc};
use guise_oidc::access_token::{AccessTokenClaims, mint};
use guise_oidc::keys::{KeyRing, generate_rs256};
use serde_json::Value;

both_backends!(
    missing_or_malformed_credentials_get_401,
    forged_expired_and_misdirected_tokens_get_401,
    alg_none_is_refused,
    a_token_without_the_route_scope_gets_403,
);

fn claims(app: &TestApp, audience: &str, exp_from_now: Duration) -> AccessTokenClaims {
    let now = Utc::now();
    AccessTokenClaims {
        iss: app.issuer(),
        sub: format!("{}@clients", app.management_client_id),
        aud: audience.to_owned(),
        azp: app.management_client_id.clone(),
        scope: "read:users".into(),
        iat: now.timestamp(),
        exp: (now + exp_from_now).timestamp(),
        jti: "test".into(),
        gty: None,
        extra: Default::default(),
    }
}

async fn status_with(app: &TestApp, authorization: &str) -> (u16, Value) {
    split(app.http.get(app.url("/api/v2/users")).header("authorization", authorization).send().await.unwrap()).await
}

async fn missing_or_malformed_credentials_get_401(app: TestApp) {
    let (status, body) = split(app.http.get(app.url("/api/v2/users")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["statusCode"], 401);
    assert_eq!(body["error"], "Unauthorized");
    assert_eq!(body["message"], "Missing authentication");
    assert_eq!(body["errorCode"], "invalid_token");

    for header in ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c"] {
        let (status, body) = status_with(&app, header).await;
        assert_eq!(status, 401, "{header}: {body}");
        assert_eq!(body["errorCode"], "invalid_token");
    }
}

async fn forged_expired_and_misdirected_tokens_get_401(app: TestApp) {
    let server_keys = app.state.keys.current();
    let audience = app.management_audience();

    // Signed by the server's own key but expired.
    let expired = mint(&server_keys, &claims(&app, &audience, Duration::seconds(-5))).unwrap();
    let (status, body) = status_with(&app, &format!("Bearer {expired}")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("Expired"), "{body}");

    // Signed by the server's key for another audience.
    let elsewhere = mint(&server_keys, &claims(&app, "https://other.example/api", Duration::hours(1))).unwrap();
    assert_eq!(status_with(&app, &format!("Bearer {elsewhere}")).await.0, 401);

    // Signed by an attacker's key that claims the server's kid.
    let server_kid = jsonwebtoken::decode_header(&app.token).unwrap().kid.unwrap();
    let mut attacker = generate_rs256(Utc::now()).unwrap();
    attacker.kid = server_kid;
    let attacker_keys = KeyRing::new(&[attacker], Utc::now()).unwrap();
    let forged = mint(&attacker_keys, &claims(&app, &audience, Duration::hours(1))).unwrap();
    let (status, body) = status_with(&app, &format!("Bearer {forged}")).await;
    assert_eq!(status, 401, "{body}");

    // A key the server never published.
    let unknown = KeyRing::new(&[generate_rs256(Utc::now()).unwrap()], Utc::now()).unwrap();
    let stranger = mint(&unknown, &claims(&app, &audience, Duration::hours(1))).unwrap();
    assert_eq!(status_with(&app, &format!("Bearer {stranger}")).await.0, 401);

    // The genuine token still works.
    assert_eq!(status_with(&app, &format!("Bearer {}", app.token)).await.0, 200);
}

async fn alg_none_is_refused(app: TestApp) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kid = jsonwebtoken::decode_header(&app.token).unwrap().kid.unwrap();
    let header = b64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    let body = b64.encode(serde_json::to_vec(&claims(&app, &app.management_audience(), Duration::hours(1))).unwrap());
    for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
        assert_eq!(status_with(&app, &format!("Bearer {token}")).await.0, 401);
    }
}

async fn a_token_without_the_route_scope_gets_403(app: TestApp) {
    let (reader, secret) = app.machine_client("log reader", &["read:logs"]).await;
    let token = app.client_token(&reader, &secret, None).await;
    let (status, body) = app.send_as(&token, reqwest::Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 403);
    assert_eq!(body["errorCode"], "insufficient_scope");
    assert_eq!(body["message"], "Insufficient scope, expected any of: read:users");
    let (status, _) = app.send_as(&token, reqwest::Method::GET, "/api/v2/logs", None).await;
    assert_eq!(status, 200);
}
