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
    // Break the database under the running server.
    let sql = "DROP TABLE client_grants";
    match app.backend {
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(app.db.url.trim_start_matches("sqlite://")).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&app.db.url).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
    }
    let (status, body) = app.get("/api/v2/client-grants").await;
    assert_eq!(status, 500);
    assert_eq!(body["message"], "Internal server error");
    let text = body.to_string().to_lowercase();
    for leak in ["client_grants", "table", "sql", "diesel", "relation"] {
        assert!(!text.contains(leak), "500 body leaks '{leak}': {body}");
    }
    // The token endpoint fails the same way: a generic OAuth server_error.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.management_client_id.as_str()),
            ("client_secret", app.management_client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!((status, body["error"].as_str()), (500, Some("server_error")), "{body}");
    assert!(!body.to_string().to_lowercase().contains("client_grants"));
}
