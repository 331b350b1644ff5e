//! Building and running the application: state from configuration, the actix server on
//! a bound listener (port 0 in tests), body limits and JSON error handlers.

use crate::config::Config;
use crate::error::ApiError;
use crate::keyring::{KeyCache, KeyCacheError, REFRESH_INTERVAL};
use crate::state::AppState;
use crate::{management, routes};
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, web};
use guise_core::{Clock, SystemClock};
use guise_oidc::OidcSettings;
use guise_store::{Database, DatabaseUrl};
use std::net::TcpListener;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("database: {0}")]
    Database(#[from] guise_core::StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyCacheError),
    #[error("{0}")]
    Other(String),
}

/// The file in the data directory that says a database was initialised through it, and
/// which (`database_identity`).
pub const INITIALISED_MARKER: &str = "guise.initialised";

/// What names a database in the marker: a SQLite file's absolute path, a PostgreSQL URL
/// without its password.
fn database_identity(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => {
            format!("sqlite://{}", std::path::absolute(path).unwrap_or_else(|_| path.clone()).display())
        }
        DatabaseUrl::Postgres(raw) => match url::Url::parse(raw) {
            Ok(mut parsed) => {
                let _ = parsed.set_password(None);
                // Options such as `?password=` must not reach the marker file or an error.
                parsed.set_query(None);
                parsed.to_string()
            }
            Err(_) => "postgres://(unparsable)".to_owned(),
        },
    }
}

/// `guise serve` does not create a fresh database where an initialised one is
/// expected: when the data directory's marker names this database and it has no schema
/// (a SQLite file deleted or lost with its volume, a PostgreSQL database recreated
/// empty), starting would silently begin a new tenant with new keys. `guise init` or
/// `guise migrate` create one deliberately; on a fresh machine there is no marker.
pub fn refuse_fresh_database(config: &Config) -> Result<(), StartupError> {
    let url = DatabaseUrl::parse(&config.database_url())?;
    let marker = config.data_dir.join(INITIALISED_MARKER);
    let Ok(recorded) = std::fs::read_to_string(&marker) else { return Ok(()) };
    if recorded.trim() != database_identity(&url) || guise_store::has_schema(&url)? {
        return Ok(());
    }
    Err(StartupError::Other(format!(
        "{} has no guise schema, but {} says it was initialised: restore the database (or point \
         GUISE_DATABASE_URL at it); to start afresh on purpose, run `guise init` (or delete the marker)",
        database_identity(&url),
        marker.display()
    )))
}

/// Record in the data directory that `url` holds an initialised database. Only where
/// the directory exists (the default SQLite database lives there): a PostgreSQL node
/// without a data directory gets none created in its working directory.
fn write_marker(config: &Config, url: &DatabaseUrl) {
    if !config.data_dir.is_dir() {
        return;
    }
    let marker = config.data_dir.join(INITIALISED_MARKER);
    if let Err(e) = std::fs::write(&marker, format!("{}\n", database_identity(url))) {
        tracing::warn!(marker = %marker.display(), error = %e, "could not record the initialised database");
    }
}

/// Open the database (creating the schema) and load keys (creating the first one).
pub fn build_state(config: Config, issuer: &str, clock: Arc<dyn Clock>) -> Result<AppState, StartupError> {
    let url = DatabaseUrl::parse(&config.database_url())?;
    let db = Database::connect(
        &url,
        config.db_max_connections,
        std::time::Duration::from_millis(config.db_acquire_timeout_ms),
    )?;
    write_marker(&config, &url);
    let certificate_name =
        url::Url::parse(issuer).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let keys = KeyCache::load(&db, clock.now(), &certificate_name)?;
    let bewit_key = guise_flow::bewit_keys::configured(config.bewit_key_id.as_deref(), config.bewit_key.as_deref())
        .map_err(|e| StartupError::Other(e.to_string()))?;
    guise_flow::bewit_keys::ensure(&db, clock.now())?;
    let mut settings = OidcSettings::new(issuer, chrono::Duration::seconds(config.access_token_lifetime_secs));
    settings.id_token_lifetime = chrono::Duration::seconds(config.id_token_lifetime_secs);
    settings.refresh_token_lifetime = chrono::Duration::seconds(config.refresh_token_lifetime_secs);
    // A bad sender address or unreadable notice templates stop guise here, not later.
    crate::outbox::Mailer::from_config(&config).map_err(StartupError::Other)?;
    db.set_mail_notices(config.impersonation_notify && config.smtp_host.is_some());
    Ok(AppState {
        db,
        settings,
        keys,
        clock,
        grant_handlers: guise_oidc::grant::handlers(),
        config,
        bewit_key,
        metrics: Default::default(),
        console_client_id: Default::default(),
    })
}

pub struct Application {
    server: Server,
    port: u16,
    state: Arc<AppState>,
}

impl Application {
    /// Bind the listener, then build state with the issuer that binding implies.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(&config.listen).map_err(|e| StartupError::Listen(config.listen.clone(), e))?;
        let address = listener.local_addr().map_err(|e| StartupError::Listen(config.listen.clone(), e))?;
        let issuer = config.issuer_for(address);
        let state = tokio::task::spawn_blocking(move || {
            refuse_fresh_database(&config)?;
            let state = build_state(config, &issuer, clock)?;
            // Databases from before the console get its client here (audited, idempotent).
            crate::console::client::ensure(&state).map_err(|e| StartupError::Other(e.to_string()))?;
            Ok::<_, StartupError>(state)
        })
        .await
        .map_err(|e| StartupError::Other(e.to_string()))??;
        let state = Arc::new(state);
        let server = serve(listener, Arc::clone(&state))?;
        Ok(Self { server, port: address.port(), state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serve until SIGINT/SIGTERM (graceful), refreshing keys in the background.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = Arc::clone(&self.state);
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = Arc::clone(&state);
                let outcome = tokio::task::spawn_blocking(move || s.keys.refresh(&s.db, s.clock.now())).await;
                if let Ok(Err(e)) = outcome {
                    tracing::warn!(error = %e, "signing key refresh failed");
                }
                let s = Arc::clone(&state);
                let purged = tokio::task::spawn_blocking(move || {
                    let keep = chrono::Duration::seconds(s.config.refresh_token_lifetime_secs);
                    guise_core::store::Housekeeping::purge_expired(&s.db, s.clock.now(), keep)
                })
                .await;
                match purged {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(rows = n, "expired rows purged"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "purging expired rows failed"),
                    _ => {}
                }
            }
        });
        let worker = match crate::outbox::Worker::new(Arc::clone(&self.state)) {
            Ok(worker) => Some(tokio::spawn(worker.run())),
            Err(e) => {
                tracing::error!(error = %e, "the outbox delivery worker cannot start; nothing is delivered");
                None
            }
        };
        let result = self.server.await;
        refresher.abort();
        if let Some(worker) = worker {
            worker.abort();
        }
        result
    }
}

fn json_error(err: JsonPayloadError, max: usize) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body is larger than {max} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::bad_request(format!("Payload validation error: {e}"))
        }
        _ => ApiError::bad_request("Invalid request payload JSON format"),
    };
    api.into()
}

fn query_error(err: QueryPayloadError) -> actix_web::Error {
    ApiError::invalid_query(format!("Query validation error: {err}")).into()
}

/// One log line per request: method, path (never the query string, which may carry
/// credentials), status and duration.
async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let response = next.call(req).await?;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, %path, status, elapsed_ms, "request");
    }
    Ok(response)
}

/// Effects of the verified caller the `Caller` extractor left behind: a call made acting
/// as a user names that user in a response header; a Management API call refused for
/// lack of scope or permission leaves a `fapi` event naming the caller.
async fn caller_effects(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let effective = response.request().extensions().get::<crate::auth::Caller>().and_then(|c| c.acting_as.clone());
    if let Some(acting) = effective
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&acting)
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::HeaderName::from_static(crate::auth::EFFECTIVE_USER_HEADER), value);
    }
    if response.status() != StatusCode::FORBIDDEN || !response.request().path().starts_with("/api/v2/") {
        return Ok(response);
    }
    let request = response.request();
    let caller = request.extensions().get::<crate::auth::Caller>().cloned();
    let state = request.app_data::<web::Data<AppState>>().cloned();
    if let (Some(caller), Some(state)) = (caller, state) {
        let meta = crate::auth::RequestMeta::from_request(request, state.config.trust_forwarded_for);
        let state = state.into_inner();
        let appended = state
            .blocking(move |s| {
                let mut event = meta.api_event(&caller, s.clock.now(), "API operation refused");
                event.event_type = guise_core::audit::event_type::FAILED_API_OPERATION.to_owned();
                event.details["status"] = serde_json::json!(403);
                guise_core::store::AuditStore::append(&s.db, vec![event]).map_err(ApiError::from)
            })
            .await;
        if let Err(e) = appended {
            tracing::error!(error = %e, "could not audit a refused API call");
        }
    }
    Ok(response)
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "statusCode": 404, "error": "Not Found", "message": "Not Found", "errorCode": "not_found",
    }))
}

fn serve(listener: TcpListener, state: Arc<AppState>) -> Result<Server, StartupError> {
    let max_body = state.config.max_body_bytes;
    let workers = state.config.workers;
    let header_timeout = std::time::Duration::from_millis(state.config.http_header_timeout_ms);
    let cap = crate::edge::ConnectionCap::new(state.config.max_connections_per_address);
    let data = web::Data::from(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::cors::allow_registered_origins))
            .wrap(actix_web::middleware::from_fn(crate::edge::reject_unstorable))
            .wrap(actix_web::middleware::from_fn(crate::edge::unavailable_as_503))
            .wrap(actix_web::middleware::from_fn(caller_effects))
            .wrap(actix_web::middleware::from_fn(access_log))
            .wrap(actix_web::middleware::from_fn(crate::metrics::observe))
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(move |e, _| json_error(e, max_body)))
            .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e)))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::FormConfig::default().limit(max_body).error_handler(|e, req| {
                let response = crate::edge::Protocol::of_path(req.path()).form_error(&e);
                actix_web::error::InternalError::from_response(e, response).into()
            }))
            .service(routes::health::healthz)
            .service(routes::health::readyz)
            .route("/metrics", web::get().to(crate::metrics::metrics))
            .service(routes::oauth::token)
            .route("/oauth/token", web::method(Method::OPTIONS).to(crate::cors::preflight))
            .route("/userinfo", web::method(Method::OPTIONS).to(crate::cors::preflight))
            .route("/.well-known/jwks.json", web::method(Method::OPTIONS).to(crate::cors::preflight))
            .service(routes::oauth::revoke)
            .service(routes::oauth::introspect)
            .route("/", web::get().to(routes::home::home))
            .route("/authorize", web::get().to(routes::authorize::authorize_get))
            .route("/authorize", web::post().to(routes::authorize::authorize_post))
            .route("/login", web::get().to(routes::login::login_form))
            .route("/login", web::post().to(routes::login::login_submit))
            .route("/consent", web::get().to(routes::login::consent_form))
            .route("/consent", web::post().to(routes::login::consent_submit))
            .route("/userinfo", web::get().to(routes::userinfo::userinfo_get))
            .route("/userinfo", web::post().to(routes::userinfo::userinfo_post))
            .route("/users/{user_id}/impersonate", web::post().to(routes::impersonate::impersonate))
            .route("/users/{impersonator_id}/impersonate", web::get().to(routes::impersonate::redeem_url))
            .route("/impersonate/redeem", web::get().to(routes::impersonate::redeem_url))
            .route("/samlp/metadata/{client_id}", web::get().to(routes::samlp::metadata))
            .route("/samlp/{client_id}/logout", web::get().to(routes::samlp::logout))
            .route("/samlp/{client_id}", web::get().to(routes::samlp::sso_get))
            .route("/samlp/{client_id}", web::post().to(routes::samlp::sso_post))
            .route("/wsfed/FederationMetadata/2007-06/FederationMetadata.xml", web::get().to(routes::wsfed::metadata))
            .route(
                "/wsfed/{client_id}/FederationMetadata/2007-06/FederationMetadata.xml",
                web::get().to(routes::wsfed::client_metadata),
            )
            .route("/wsfed", web::get().to(routes::wsfed::wsfed_by_realm))
            .route("/wsfed/{client_id}", web::get().to(routes::wsfed::wsfed_for_client))
            .route("/oidc/logout", web::get().to(routes::logout::logout_get))
            .route("/oidc/logout", web::post().to(routes::logout::logout_post))
            .service(routes::oauth::openid_configuration)
            .service(routes::oauth::jwks)
            .configure(crate::console::configure)
            .configure(management::configure)
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(10)
    .client_request_timeout(header_timeout)
    .on_connect(move |connection, extensions| cap.admit(connection, extensions));
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.listen(listener).map_err(|e| StartupError::Listen("listener".into(), e))?.run())
}
