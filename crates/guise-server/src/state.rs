//! Shared application state handed to every handler.

use crate::config::Config;
use crate::error::ApiError;
use crate::keyring::KeyCache;
use guise_core::Clock;
use guise_oidc::OidcSettings;
use guise_oidc::grant::GrantHandler;
use guise_store::Database;
use std::sync::Arc;

pub struct AppState {
    pub db: Database,
    pub settings: OidcSettings,
    pub keys: KeyCache,
    pub clock: Arc<dyn Clock>,
    pub grant_handlers: Vec<Box<dyn GrantHandler>>,
    pub config: Config,
    /// The bewit key from configuration, parsed once at start (`None`: the database's).
    pub bewit_key: Option<guise_core::bewit::BewitKey>,
    /// Request counts and latencies for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The support console's own client id, set by `console::client::ensure` at start.
    pub console_client_id: std::sync::OnceLock<String>,
}

impl AppState {
    /// The configured session lifetimes, login throttling and impersonation limits.
    pub fn policies(&self) -> guise_flow::Policies {
        let secs = chrono::Duration::seconds;
        let c = &self.config;
        let lockout = secs(c.login_lockout_secs);
        guise_flow::Policies {
            sessions: guise_core::session::SessionLifetimes {
                idle: secs(c.session_idle_secs),
                absolute: secs(c.session_absolute_secs),
            },
            throttle: guise_core::throttle::ThrottlePolicy {
                max_failures: c.login_max_failures,
                window: lockout,
                lockout,
            },
            impersonation: guise_core::impersonation::ImpersonationPolicy {
                default_url_ttl: secs(c.impersonation_url_ttl_secs),
                max_url_ttl: secs(c.impersonation_max_url_ttl_secs),
                session_lifetime: secs(c.impersonation_session_secs),
                require_reason: c.impersonation_require_reason,
            },
        }
    }

    /// The context a flow runs in, at the clock's `now`.
    pub fn flow(&self) -> guise_flow::FlowContext<'_> {
        guise_flow::FlowContext {
            store: &self.db,
            settings: &self.settings,
            xml_signer: self.keys.saml_signer(),
            bewit_key: self.bewit_key.as_ref(),
            policies: self.policies(),
            now: self.clock.now(),
        }
    }

    /// Whether cookies must be `Secure` (the issuer is https).
    pub fn secure_cookies(&self) -> bool {
        self.settings.issuer.starts_with("https://")
    }

    /// The context the token endpoint's grant handlers work in.
    pub fn token_context<'a>(&'a self, keys: &'a guise_oidc::keys::KeyRing) -> guise_oidc::grant::TokenContext<'a> {
        guise_oidc::grant::TokenContext {
            settings: &self.settings,
            keys,
            clients: &self.db,
            client_grants: &self.db,
            audit: &self.db,
            users: &self.db,
            roles: &self.db,
            sessions: &self.db,
            codes: &self.db,
            tokens: &self.db,
            now: self.clock.now(),
        }
    }

    /// Run blocking work (database, hashing) off the async workers.
    pub async fn blocking<T, E>(
        self: &Arc<Self>,
        work: impl FnOnce(&AppState) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<ApiError> + Send + 'static,
    {
        let state = Arc::clone(self);
        match actix_web::web::block(move || work(&state)).await {
            Ok(result) => result,
            Err(e) => Err(ApiError::internal(&e).into()),
        }
    }
}
