//! `spawn_app`: the real server on port 0 over a fresh database (a SQLite file in a temp
//! directory, or a new PostgreSQL database), initialised with an admin and a management
//! client, plus small HTTP helpers.

use diesel::{Connection, PgConnection, RunQueryDsl};
use guise_server::Config;
use guise_server::startup::Application;
use guise_server::state::AppState;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub fn postgres_admin_url() -> String {
    std::env::var("GUISE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped (with its connections) when this is dropped.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        let admin = postgres_admin_url();
        let name = format!("guise_test_{}", guise_core::ids::new_key_id());
        let mut conn = PgConnection::establish(&admin).expect("PostgreSQL must answer at GUISE_TEST_POSTGRES_URL");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test database");
        let base = admin.rsplit_once('/').map(|(base, _)| base.to_owned()).unwrap_or(admin);
        PgDatabase { url: format!("{base}/{name}"), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&postgres_admin_url()) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

pub struct TestDatabase {
    pub url: String,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("guise.db").display());
                TestDatabase { url, _dir: dir, _pg: None }
            }
            Backend::Postgres => {
                let pg = PgDatabase::create();
                TestDatabase { url: pg.url.clone(), _dir: dir, _pg: Some(pg) }
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

pub fn test_config(db: &TestDatabase) -> Config {
    Config {
        database_url: Some(db.url.clone()),
        listen: "127.0.0.1:0".into(),
        data_dir: db.data_dir().to_path_buf(),
        workers: 2,
        db_max_connections: 4,
        ..Config::default()
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub http: reqwest::Client,
    pub state: Arc<AppState>,
    pub admin_user_id: String,
    pub management_client_id: String,
    pub management_client_secret: String,
    /// The support console's client (created with the tenant, like the management client).
    pub console_client_id: String,
    /// A token for the management client holding every Management API scope.
    pub token: String,
    pub db: TestDatabase,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_clock(backend, adjust, Arc::new(guise_core::SystemClock)).await
}

/// The server on a clock the test controls (e.g. `guise_core::clock::ManualClock`).
pub async fn spawn_app_with_clock(
    backend: Backend,
    adjust: impl FnOnce(&mut Config),
    clock: Arc<dyn guise_core::Clock>,
) -> TestApp {
    let db = TestDatabase::new(backend);
    let mut config = test_config(&db);
    adjust(&mut config);
    let app = Application::build_with_clock(config, clock).await.expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());

    let init_state = Arc::clone(&state);
    let outcome = tokio::task::spawn_blocking(move || {
        guise_server::tenant::init_tenant(&init_state, ADMIN_EMAIL, ADMIN_PASSWORD)
    })
    .await
    .expect("init runs")
    .expect("init succeeds");
    let lookup_state = Arc::clone(&state);
    let console_client_id = tokio::task::spawn_blocking(move || {
        guise_server::management_client::find_client_by_name(
            &lookup_state.db,
            guise_server::console::client::CONSOLE_CLIENT,
        )
    })
    .await
    .expect("lookup runs")
    .expect("lookup succeeds")
    .expect("the console client exists")
    .client_id;
    let http = reqwest::Client::builder().cookie_store(true).build().expect("http client");
    let mut app = TestApp {
        backend,
        base,
        http,
        state,
        admin_user_id: outcome.admin.user_id,
        management_client_id: outcome.management_client.client_id,
        management_client_secret: outcome.management_client.client_secret.expect("a new client has a secret"),
        console_client_id,
        token: String::new(),
        db,
    };
    app.token = app.client_token(&app.management_client_id.clone(), &app.management_client_secret.clone(), None).await;
    app
}

impl TestApp {
    /// A second node on this app's database with the same issuer (PostgreSQL: several
    /// nodes; SQLite: two processes on one file). Returns its base URL; it runs until the
    /// test's runtime ends.
    pub async fn second_node(&self) -> String {
        let node = Application::build(Config {
            database_url: Some(self.db.url.clone()),
            issuer: Some(self.issuer()),
            listen: "127.0.0.1:0".into(),
            data_dir: self.db.data_dir().to_path_buf(),
            workers: 2,
            db_max_connections: 4,
            // Its delivery worker races the first node's (tests/api/notices.rs).
            outbox_poll_ms: 50,
            ..Config::default()
        })
        .await
        .expect("second node builds");
        let base = format!("http://127.0.0.1:{}", node.port());
        tokio::spawn(node.run_until_stopped());
        base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn issuer(&self) -> String {
        format!("{}/", self.base)
    }

    pub fn management_audience(&self) -> String {
        format!("{}/api/v2/", self.base)
    }

    /// A client-credentials token (client_secret_post), panicking on failure.
    pub async fn client_token(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self.http.post(self.url("/oauth/token")).form(&form).send().await.expect("token request");
        assert_eq!(response.status(), 200, "token request failed");
        let body: Value = response.json().await.expect("token json");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(&self.token).send().await.expect("GET");
        split(response).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.send_as(&self.token, method, path, body).await
    }

    pub async fn send_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        split(request.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Create a machine client granted `scopes` on the Management API; returns (id, secret).
    pub async fn machine_client(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let (status, client) =
            self.post("/api/v2/clients", &serde_json::json!({ "name": name, "app_type": "non_interactive" })).await;
        assert_eq!(status, 201, "{client}");
        let client_id = client["client_id"].as_str().expect("client_id").to_owned();
        let (status, grant) = self
            .post(
                "/api/v2/client-grants",
                &serde_json::json!({ "client_id": client_id, "audience": self.management_audience(), "scope": scopes }),
            )
            .await;
        assert_eq!(status, 201, "{grant}");
        (client_id, client["client_secret"].as_str().expect("client_secret").to_owned())
    }

    /// Create a user; returns its JSON.
    pub async fn create_user(&self, email: &str) -> Value {
        let (status, user) = self
            .post("/api/v2/users", &serde_json::json!({ "email": email, "password": "long enough password" }))
            .await;
        assert_eq!(status, 201, "{user}");
        user
    }

    /// `POST /oauth/token` with the management client's credentials (client
    /// credentials): status and body.
    pub async fn management_token_request(&self) -> (u16, Value) {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.management_client_id.as_str()),
            ("client_secret", self.management_client_secret.as_str()),
        ];
        split(self.http.post(self.url("/oauth/token")).form(&form).send().await.expect("token request")).await
    }

    /// Audit events of one type, newest first.
    pub async fn logs_of_type(&self, event_type: &str) -> Vec<Value> {
        let (status, logs) = self.get(&format!("/api/v2/logs?q=type:{event_type}&per_page=100")).await;
        assert_eq!(status, 200, "{logs}");
        logs.as_array().cloned().unwrap_or_default()
    }
}

/// Status and JSON body (Null when the body is empty or not JSON).
pub async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Run one async test body against SQLite and against PostgreSQL. The body gets an app
/// (`spawn_app`), or what the function named by `using` makes of the backend:
/// `using crate::helpers::own_app;` hands it the backend, for tests that start their own
/// server (a manual clock, a config change).
#[macro_export]
macro_rules! both_backends {
    (using $setup:path; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($setup($crate::helpers::Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($setup($crate::helpers::Backend::Postgres).await).await
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!(using $crate::helpers::spawn_app; $($name),*);
    };
}

/// For `both_backends!(using crate::helpers::own_app; …)`: the test starts its own server.
pub async fn own_app(backend: Backend) -> Backend {
    backend
}
