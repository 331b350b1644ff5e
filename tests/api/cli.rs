//! The `guise` binary: `init` is idempotent, `audit verify` names the first bad row,
//! `keys rotate` publishes a new key while old tokens keep verifying.

use crate::both_backends;
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use serde_json::Value;
use std::process::Command;

both_backends!(
    init_is_idempotent,
    audit_verify_names_an_edited_row,
    audit_verify_notices_removed_rows,
    keys_rotate_keeps_old_tokens_valid,
    ready_probes_the_running_server
);

fn guise(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guise"))
        .args(args)
        .env("GUISE_DATABASE_URL", &app.db.url)
        .env("GUISE_ISSUER", app.issuer())
        .env("GUISE_DATA_DIR", app.db.data_dir())
        .env("GUISE_LOG", "warn")
        .env_remove("GUISE_CONFIG")
        .output()
        .expect("the guise binary runs")
}

/// Run one SQL statement on the app's database, as an attacker with database access would.
fn tamper(app: &TestApp, sql: &str) {
    match app.backend {
        Backend::Sqlite => {
            let path = app.db.url.trim_start_matches("sqlite://");
            let mut conn = SqliteConnection::establish(path).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&app.db.url).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
    }
}

async fn init_is_idempotent(app: TestApp) {
    // The harness already initialised this tenant; the CLI finds the same admin and client
    // and, with nothing to change, writes nothing.
    let (_, before) = app.get("/api/v2/logs?q=type:guise_init&include_totals=true").await;
    let output = guise(&app, &["init", "--admin-email", ADMIN_EMAIL, "--admin-password", ADMIN_PASSWORD]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("init prints one JSON object");
    assert_eq!(printed["admin"]["user_id"], app.admin_user_id.as_str());
    assert_eq!(printed["admin"]["email"], ADMIN_EMAIL);
    assert_eq!(printed["management_client"]["client_id"], app.management_client_id.as_str());
    assert!(printed["management_client"]["client_secret"].is_null(), "an existing secret cannot be shown again");
    let (_, after) = app.get("/api/v2/logs?q=type:guise_init&include_totals=true").await;
    assert_eq!(after["total"], before["total"], "a repeated init changes nothing");
    let (_, users) = app.get("/api/v2/users?include_totals=true").await;
    assert_eq!(users["total"], 1);
    let (_, clients) = app.get("/api/v2/clients?include_totals=true").await;
    assert_eq!(clients["total"], 1);

    // The admin holds every Management API permission through its role.
    let path = format!("/api/v2/users/{}/permissions", crate::users::urlencode(&app.admin_user_id));
    let (status, permissions) = app.get(&path).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        permissions.as_array().unwrap().iter().map(|p| p["permission_name"].as_str().unwrap()).collect();
    for scope in guise_core::permission::scopes::ALL {
        assert!(names.contains(scope), "admin lacks {scope}");
    }

    // A fresh database: init prints a new secret that works.
    let fresh = crate::helpers::TestDatabase::new(app.backend);
    let output = Command::new(env!("CARGO_BIN_EXE_guise"))
        .args(["init", "--admin-email", "first@example.com", "--admin-password", "first admin password"])
        .env("GUISE_DATABASE_URL", &fresh.url)
        .env("GUISE_ISSUER", app.issuer())
        .env("GUISE_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(printed["management_client"]["client_secret"].as_str().is_some_and(|s| s.len() == 43));
}

async fn audit_verify_names_an_edited_row(app: TestApp) {
    app.create_user("someone@example.com").await;
    let output = guise(&app, &["audit", "verify"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("intact"));

    tamper(&app, "UPDATE audit_log SET description = 'nothing happened' WHERE seq = 3");
    let output = guise(&app, &["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("audit row 3"), "{stderr}");
}

async fn audit_verify_notices_removed_rows(app: TestApp) {
    app.create_user("someone@example.com").await;
    tamper(&app, "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)");
    let output = guise(&app, &["audit", "verify"]);
    assert!(!output.status.success(), "a truncated chain must not verify");

    tamper(&app, "DELETE FROM audit_log WHERE seq = 2");
    let stderr = String::from_utf8_lossy(&guise(&app, &["audit", "verify"]).stderr).into_owned();
    assert!(stderr.contains("audit row 3"), "{stderr}");
}

async fn keys_rotate_keeps_old_tokens_valid(app: TestApp) {
    let old_token = app.token.clone();
    let old_kid = jsonwebtoken::decode_header(&old_token).unwrap().kid.unwrap();
    let output = guise(&app, &["keys", "rotate"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rs256 = printed["active"].as_array().unwrap().iter().find(|k| k["alg"] == "RS256").unwrap();
    let new_kid = rs256["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    // The running server picks up the rotation (it reloads periodically; force it here).
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || state.keys.refresh(&state.db, chrono::Utc::now()).unwrap()).await.unwrap();
    let (_, jwks) = crate::helpers::split(app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap()).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()), "{kids:?}");

    let new_token = app.client_token(&app.management_client_id, &app.management_client_secret, None).await;
    assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.unwrap(), new_kid);
    for token in [&old_token, &new_token] {
        assert_eq!(app.send_as(token, reqwest::Method::GET, "/api/v2/users", None).await.0, 200);
    }
    let rotations = app.logs_of_type("guise_key_rotated").await;
    assert_eq!(rotations.len(), 6, "the first keys and the rotation of each algorithm are audited");
}

/// After a rotation the old key stays in JWKS until tokens it signed have expired, then retires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_retire_after_their_tokens_expire() {
    let clock = std::sync::Arc::new(guise_core::clock::ManualClock::new(chrono::Utc::now()));
    let app = crate::helpers::spawn_app_with_clock(Backend::Sqlite, |_| {}, clock.clone()).await;
    let old_kid = jsonwebtoken::decode_header(&app.token).unwrap().kid.unwrap();
    assert!(guise(&app, &["keys", "rotate"]).status.success());
    assert!(published_kids(&app).await.contains(&old_kid), "still published while its tokens live");
    // Past the longest token lifetime (24 h access tokens by default).
    clock.advance(chrono::Duration::hours(25));
    let published = published_kids(&app).await;
    assert!(!published.contains(&old_kid), "retired: {published:?}");
    assert_eq!(published.len(), 3, "one active key per algorithm");
}

/// Reload the server's keys now and list the kids its JWKS publishes.
async fn published_kids(app: &TestApp) -> Vec<String> {
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || state.keys.refresh(&state.db, state.clock.now()).unwrap()).await.unwrap();
    let (_, jwks) = crate::helpers::split(app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap()).await;
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// `guise ready` (the container healthcheck) asks `/readyz` of the server on `listen`.
async fn ready_probes_the_running_server(app: TestApp) {
    let listen = app.base.trim_start_matches("http://").to_owned();
    let probe = |listen: String| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_guise"));
        command.args(["ready"]).env("GUISE_LISTEN", listen).env("GUISE_LOG", "warn").env_remove("GUISE_CONFIG");
        command.env("GUISE_DATABASE_URL", &app.db.url).env("GUISE_DATA_DIR", app.db.data_dir());
        tokio::task::spawn_blocking(move || command.output().expect("the guise binary runs"))
    };
    let output = probe(listen).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Nothing listens on port 9 (discard) here: not ready, and it says why.
    let output = probe("127.0.0.1:9".to_owned()).await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("127.0.0.1:9"), "{output:?}");
}
