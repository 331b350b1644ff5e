//! The flows of guise, without HTTP: minting and redeeming impersonations, SAML and
//! WS-Federation requests, continuing an authorization after login, the assertion a SAML
//! or WS-Federation login produces, settling a Management API caller and the authority
//! ceiling on its writes. Each flow takes a [`FlowContext`] — the stores
//! as narrow `guise-core` traits, the XML signer, the bewit key, the policies and `now` —
//! and returns a typed outcome or one [`FlowError`]. `guise-server` turns both into HTTP.
//!
//! Its unit tests run on the real store over a temporary SQLite file (`tests.rs`).

pub mod assertion;
pub mod authorization;
pub mod bewit_keys;
pub mod caller;
pub mod ceiling;
pub mod delivery;
mod error;
pub mod impersonation;
pub mod login;
pub mod logout;
pub mod saml;
pub mod session;
#[cfg(test)]
mod tests;
pub mod wsfed;

pub use error::FlowError;

use chrono::{DateTime, Utc};
use guise_core::bewit::BewitKey;
use guise_core::impersonation::ImpersonationPolicy;
use guise_core::session::SessionLifetimes;
use guise_core::store::{
    AuditStore, AuthorizationCodeStore, AuthorizationRequestStore, BewitStore, ClientGrantStore, ClientStore,
    ConsentStore, LoginThrottleStore, RoleStore, SessionStore, TokenStore, UserStore,
};
use guise_core::throttle::ThrottlePolicy;
use guise_oidc::OidcSettings;
use guise_oidc::chain::ChainStores;
use guise_saml::dsig::SamlSigner;
use std::sync::Arc;

macro_rules! flow_store {
    ($($store:ident),+) => {
        /// Every store trait a flow may use. Implemented for anything that implements
        /// them all (the diesel `Database`); flows see only these traits, never the database.
        pub trait FlowStore: $($store +)+ {}
        impl<T: $($store +)+ ?Sized> FlowStore for T {}
    };
}

flow_store!(
    UserStore,
    ClientStore,
    ClientGrantStore,
    RoleStore,
    SessionStore,
    AuditStore,
    BewitStore,
    AuthorizationCodeStore,
    AuthorizationRequestStore,
    ConsentStore,
    LoginThrottleStore,
    TokenStore
);

/// The configured limits a flow applies.
#[derive(Debug, Clone, Copy)]
pub struct Policies {
    pub impersonation: ImpersonationPolicy,
    pub throttle: ThrottlePolicy,
    pub sessions: SessionLifetimes,
}

/// What a flow works with. Built per request by the server (`AppState::flow`), or by a
/// test over its own store; `now` is fixed for the whole flow.
pub struct FlowContext<'a> {
    pub store: &'a dyn FlowStore,
    pub settings: &'a OidcSettings,
    /// The active RS256 key and its certificate, for SAML and WS-Federation (`None`
    /// until one has a certificate).
    pub xml_signer: Option<Arc<SamlSigner>>,
    /// The bewit key from configuration (shared by every node); `None` uses the
    /// database's rotating keys.
    pub bewit_key: Option<&'a BewitKey>,
    pub policies: Policies,
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for FlowContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowContext").field("issuer", &self.settings.issuer).field("now", &self.now).finish()
    }
}

impl<'a> FlowContext<'a> {
    /// The stores an impersonation's chain is read from.
    pub fn chain_stores(&self) -> ChainStores<'a> {
        ChainStores { users: self.store, roles: self.store, clients: self.store, client_grants: self.store }
    }
}
