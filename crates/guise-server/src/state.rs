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
}

impl AppState {
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
