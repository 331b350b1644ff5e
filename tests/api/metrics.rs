//! `/metrics`: off by default, behind its bearer token when configured, and counting
//! what the server really did (requests per route, tokens per grant type, the pool,
//! the audit group commit).

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app_with};

const METRICS_TOKEN: &str = "metrics-reader-0123456789abcdef";

both_backends!(metrics_are_off_by_default);

both_backends!(using super::with_metrics; metrics_need_the_bearer_token, metrics_count_what_happened);

async fn with_metrics(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| config.metrics_token = Some(METRICS_TOKEN.to_owned())).await
}

async fn metrics_are_off_by_default(app: TestApp) {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // Not even the Management API token opens it.
    let response = app.http.get(app.url("/metrics")).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

async fn metrics_need_the_bearer_token(app: TestApp) {
    for authorization in [None, Some("Bearer wrong-token"), Some("Basic bWV0cmljczp4"), Some(METRICS_TOKEN)] {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"metrics\"");
        let body = response.text().await.unwrap();
        assert!(!body.contains("guise_"), "a refused caller sees no metrics");
    }
    // The Management API's own token is not the metrics token.
    let response = app.http.get(app.url("/metrics")).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    response.text().await.unwrap()
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

async fn metrics_count_what_happened(app: TestApp) {
    // spawn_app took one client-credentials token; take two more and fail one.
    let (id, secret) = (app.management_client_id.clone(), app.management_client_secret.clone());
    app.client_token(&id, &secret, None).await;
    app.client_token(&id, &secret, None).await;
    let refused = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (status, _) = app.get(&format!("/api/v2/users/{}", app.admin_user_id)).await;
    assert_eq!(status, 200);

    let text = scrape(&app).await;
    assert_eq!(sample(&text, r#"guise_tokens_issued_total{grant_type="client_credentials"}"#), 3.0);
    assert_eq!(sample(&text, r#"guise_tokens_issued_total{grant_type="authorization_code"}"#), 0.0);
    assert_eq!(sample(&text, r#"guise_audit_events_total{type="feccft"}"#), 1.0);
    assert_eq!(sample(&text, r#"guise_http_requests_total{route="/oauth/token",method="POST",status="200"}"#), 3.0);
    assert_eq!(sample(&text, r#"guise_http_requests_total{route="/oauth/token",method="POST",status="401"}"#), 1.0);
    // Routes are labelled by pattern, not by path: no user id in a label.
    assert_eq!(
        sample(&text, r#"guise_http_requests_total{route="/api/v2/users/{id}",method="GET",status="200"}"#),
        1.0
    );
    assert!(!text.contains(&app.admin_user_id), "ids never become labels");
    let token_latency = r#"guise_http_request_duration_seconds_count{route="/oauth/token",method="POST"}"#;
    assert_eq!(sample(&text, token_latency), 4.0);
    assert_eq!(
        sample(&text, r#"guise_http_request_duration_seconds_bucket{route="/oauth/token",method="POST",le="+Inf"}"#),
        4.0
    );
    assert!(sample(&text, r#"guise_http_request_duration_seconds_sum{route="/oauth/token",method="POST"}"#) > 0.0);
    assert_eq!(sample(&text, r#"guise_impersonations_total{outcome="minted"}"#), 0.0);
    assert_eq!(sample(&text, "guise_login_failures_total"), 0.0);
    assert!(sample(&text, "guise_db_pool_max_connections") >= 1.0);
    assert!(sample(&text, r#"guise_db_pool_connections{state="idle"}"#) >= 0.0);
    assert_eq!(sample(&text, "guise_db_pool_waiting"), 0.0);
    // Every token event went through the group commit: 4 events in at most 4 batches.
    let batches = sample(&text, "guise_audit_batch_size_count");
    assert!((1.0..=4.0).contains(&batches), "{batches} batches");
    assert_eq!(sample(&text, "guise_audit_batch_size_sum"), 4.0);
    assert_eq!(sample(&text, r#"guise_audit_batch_size_bucket{le="+Inf"}"#), batches);
    assert!(sample(&text, "guise_audit_lock_held_seconds_total") > 0.0);

    // The scrape itself is counted next time.
    let text = scrape(&app).await;
    assert_eq!(sample(&text, r#"guise_http_requests_total{route="/metrics",method="GET",status="200"}"#), 1.0);
}
