//! Operations: health and readiness, and server faults that answer generically.

use crate::both_backends;
use crate::helpers::{Backend, TestApp, split};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};

both_backends!(health_and_readiness, a_server_fault_leaks_nothing);

async fn health_and_readiness(app: TestApp) {
    let (status, body) = split(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = split(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

async fn a_server_fault_leaks_nothing(app: TestApp) {
    // Break the database under the running server: the grants the Management API lists,
    // and the audit chain's head every token request appends through (the token
    // endpoint reads the client and its grant from the store's cache, which a dropped
    // table does not clear: dropping a table is no change to a row).
    let break_table = |sql: &str| match app.backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(app.db.url.trim_start_matches("sqlite://")).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&app.db.url).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
    };
    break_table("DROP TABLE client_grants");
    break_table("ALTER TABLE audit_head RENAME TO audit_head_gone");
    let (status, body) = app.get("/api/v2/client-grants").await;
    assert_eq!(status, 500);
    assert_eq!(body["message"], "Internal server error");
    let text = body.to_string().to_lowercase();
    for leak in ["client_grants", "table", "sql", "diesel", "relation"] {
        assert!(!text.contains(leak), "500 body leaks '{leak}': {body}");
    }
    // The token endpoint fails the same way: a generic OAuth server_error.
    let (status, body) = app.management_token_request().await;
    assert_eq!((status, body["error"].as_str()), (500, Some("server_error")), "{body}");
    let text = body.to_string().to_lowercase();
    for leak in ["client_grants", "audit_head", "table", "sql", "relation"] {
        assert!(!text.contains(leak), "500 body leaks '{leak}': {body}");
    }
}

/// Expired rows are purged (the server does it every 30 s; here directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_rows_are_purged() {
    use crate::browser::{Browser, CALLBACK, authorize_url, web_client};
    let clock = std::sync::Arc::new(guise_core::clock::ManualClock::new(chrono::Utc::now()));
    let app = crate::helpers::spawn_app_with_clock(Backend::Sqlite, |_| {}, clock.clone()).await;
    let (client_id, _) = web_client(&app, serde_json::json!({})).await;
    let url = authorize_url(
        &app,
        &[("client_id", &client_id), ("response_type", "code"), ("redirect_uri", CALLBACK), ("scope", "openid")],
    );
    let started = Browser::new().get(&url).await;
    let login = started.location.unwrap();
    clock.advance(chrono::Duration::hours(1));
    let state = app.state.clone();
    let purged = tokio::task::spawn_blocking(move || {
        guise_core::store::Housekeeping::purge_expired(&state.db, state.clock.now(), chrono::Duration::days(30))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(purged >= 1, "the abandoned authorization request is gone");
    let page = Browser::new().get(&app.url(&login)).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired or is unknown"));
}
