//! Configuration: defaults, then a TOML file, then `GUISE_*` environment variables
//! (the environment wins).

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://…`; defaults to `sqlite://{data_dir}/guise.db`.
    pub database_url: Option<String>,
    /// Address to listen on.
    pub listen: String,
    /// Issuer URL; defaults to `http://{listen}/`.
    pub issuer: Option<String>,
    pub data_dir: PathBuf,
    /// `text` or `json`.
    pub log_format: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A client must send a request's head (request line and headers) within this long
    /// of connecting or of its previous request, else the connection is closed.
    pub http_header_timeout_ms: u64,
    /// …and its body within this long of the head, else `408`.
    pub http_body_timeout_ms: u64,
    /// Open connections one client address may hold (0: no limit); more are closed at once.
    pub max_connections_per_address: usize,
    pub access_token_lifetime_secs: i64,
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before it is answered `503`
    /// (the database is down or every connection is busy), in milliseconds.
    pub db_acquire_timeout_ms: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    pub id_token_lifetime_secs: i64,
    /// Absolute lifetime of a refresh-token family.
    pub refresh_token_lifetime_secs: i64,
    /// A browser session ends after this long without activity…
    pub session_idle_secs: i64,
    /// …and this long after login, whatever the activity.
    pub session_absolute_secs: i64,
    /// Failed logins (per account, and per source address) before a lockout.
    pub login_max_failures: i64,
    /// How long a lockout lasts; failures are also counted over this window.
    pub login_lockout_secs: i64,
    /// Lifetime of an impersonation URL unless the caller asks for less.
    pub impersonation_url_ttl_secs: i64,
    /// The longest URL lifetime a caller may ask for.
    pub impersonation_max_url_ttl_secs: i64,
    /// Maximum lifetime of an impersonation session.
    pub impersonation_session_secs: i64,
    /// Refuse impersonation URLs minted without a `reason`.
    pub impersonation_require_reason: bool,
    /// A bewit key shared through configuration (with `bewit_key`, base64) instead of
    /// the database's rotating keys.
    pub bewit_key_id: Option<String>,
    pub bewit_key: Option<String>,
    /// Development only: accept plain `http` client URLs (callbacks, logout URLs,
    /// `initiate_login_uri`, SAML addon URLs) for any host, not just loopback.
    pub allow_insecure_http_urls: bool,
    /// The support console asks for the password again before an impersonation when the
    /// agent's last login is older than this (step-up).
    pub console_step_up_secs: i64,
    /// Tell the impersonated user by email when an impersonation of them starts and
    /// ends (needs `smtp_host`). Webhooks are told regardless, as subscribed.
    pub impersonation_notify: bool,
    /// The SMTP server notices are sent through; unset: no email.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `starttls` (upgrade, required), `tls` (TLS from the start, port 465) or `none`
    /// (plain, only for a relay on the same host or network).
    pub smtp_tls: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// The `From` of notices, e.g. `guise <no-reply@example.com>`.
    pub smtp_from: String,
    /// A directory holding `impersonation_started.txt` and `impersonation_ended.txt`
    /// (minijinja; the first line is `Subject: …`) to replace the built-in notices.
    pub notice_templates: Option<PathBuf>,
    /// How often the delivery worker looks for due deliveries, in milliseconds.
    pub outbox_poll_ms: u64,
    /// Attempts per delivery before it is given up (retriable through the API).
    pub outbox_max_attempts: i32,
    /// The wait after the first failed attempt; it doubles with each further failure.
    pub outbox_backoff_secs: i64,
    /// How long one attempt (connect, send, answer) may take, in milliseconds.
    pub outbox_timeout_ms: u64,
    /// How often expired sessions that someone must hear about (an impersonation, a
    /// client with a back-channel logout URI) are ended and announced, in seconds.
    pub session_sweep_secs: u64,
    /// Serve `/metrics` (Prometheus text) to `Authorization: Bearer <metrics_token>`;
    /// unset or empty: `/metrics` answers 404 and no request metrics are kept.
    pub metrics_token: Option<String>,
}

/// Settings whose values are credentials: never printed.
const SECRET_SETTINGS: &[&str] = &["bewit_key", "smtp_password", "metrics_token"];

/// Every setting, with the credentials replaced and the database URL's password and
/// query removed, so a `{:?}` of the configuration (or of a state holding it) can never
/// put a secret in a log.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = serde_json::to_value(self).unwrap_or_default();
        if let Some(settings) = shown.as_object_mut() {
            for key in SECRET_SETTINGS {
                if settings.get(*key).is_some_and(|v| !v.is_null()) {
                    settings.insert((*key).to_owned(), serde_json::json!("[redacted]"));
                }
            }
            if let Some(serde_json::Value::String(url)) = settings.get_mut("database_url") {
                *url = match url::Url::parse(url) {
                    Ok(mut parsed) => {
                        let _ = parsed.set_password(None);
                        parsed.set_query(None);
                        parsed.to_string()
                    }
                    Err(_) => "[unparsable]".to_owned(),
                };
            }
        }
        write!(f, "Config {shown}")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: None,
            listen: "127.0.0.1:8080".to_owned(),
            issuer: None,
            data_dir: PathBuf::from("./data"),
            log_format: "text".to_owned(),
            max_body_bytes: 64 * 1024,
            http_header_timeout_ms: 5_000,
            http_body_timeout_ms: 10_000,
            max_connections_per_address: 256,
            access_token_lifetime_secs: 86_400,
            db_max_connections: 16,
            db_acquire_timeout_ms: 2_000,
            trust_forwarded_for: false,
            workers: 0,
            id_token_lifetime_secs: 36_000,
            refresh_token_lifetime_secs: 30 * 86_400,
            session_idle_secs: 1_800,
            session_absolute_secs: 36_000,
            login_max_failures: 5,
            login_lockout_secs: 900,
            impersonation_url_ttl_secs: 120,
            impersonation_max_url_ttl_secs: 600,
            impersonation_session_secs: 3_600,
            impersonation_require_reason: true,
            bewit_key_id: None,
            bewit_key: None,
            allow_insecure_http_urls: false,
            console_step_up_secs: 900,
            impersonation_notify: true,
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: "starttls".to_owned(),
            smtp_username: None,
            smtp_password: None,
            smtp_from: "guise <no-reply@localhost>".to_owned(),
            notice_templates: None,
            outbox_poll_ms: 1_000,
            outbox_max_attempts: 8,
            outbox_backoff_secs: 5,
            outbox_timeout_ms: 10_000,
            session_sweep_secs: 30,
            metrics_token: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Load from `file` (or `GUISE_CONFIG`, or `./guise.toml` when present), then env.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os("GUISE_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!("config file {} does not exist", path.display())));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("guise.toml")),
        }
        figment
            .merge(Env::prefixed("GUISE_").ignore(&["CONFIG", "TEST_POSTGRES_URL", "LOG"]))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("guise.db").display()))
    }

    /// The issuer, given the address actually bound (port 0 resolves at bind time).
    pub fn issuer_for(&self, bound: std::net::SocketAddr) -> String {
        match &self.issuer {
            Some(issuer) => issuer.clone(),
            None => format!("http://{bound}/"),
        }
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_with_the_environment_winning() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "guise.toml",
                "listen = \"0.0.0.0:9000\"\nlog_format = \"json\"\nmax_body_bytes = 1024\n",
            )?;
            jail.set_env("GUISE_LISTEN", "127.0.0.1:9100");
            jail.set_env("GUISE_DATABASE_URL", "postgres://db/guise");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "127.0.0.1:9100");
            assert_eq!(config.log_format, "json");
            assert_eq!(config.max_body_bytes, 1024);
            assert_eq!(config.database_url(), "postgres://db/guise");
            Ok(())
        });
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let config = Config {
            database_url: Some("postgres://guise:db-pass-1@db/guise?password=db-pass-2".into()),
            bewit_key: Some("bewit-key-3".into()),
            smtp_password: Some("smtp-pass-4".into()),
            metrics_token: Some("metrics-5".into()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        for secret in ["db-pass-1", "db-pass-2", "bewit-key-3", "smtp-pass-4", "metrics-5"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("postgres://guise@db/guise") && shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn defaults_derive_the_database_and_issuer() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.database_url(), "sqlite://./data/guise.db");
            let bound: std::net::SocketAddr = "127.0.0.1:8080".parse().map_err(|_| "addr")?;
            assert_eq!(config.issuer_for(bound), "http://127.0.0.1:8080/");
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/guise.toml"))).is_err());
    }
}
