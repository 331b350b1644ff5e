//! guise's OAuth 2.0 / OpenID Connect protocol: typed requests in, typed outcomes out.
//! No HTTP types and no SQL: the server adapts requests, the store traits persist.

pub mod access_token;
pub mod api_access;
pub mod authorize;
pub mod backchannel;
pub mod chain;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod grant;
pub mod id_token;
pub mod impersonation_claims;
mod jws;
pub mod keys;
pub mod logout;
pub mod pkce;
pub mod revocation;
pub mod settings;
pub mod userinfo;

#[cfg(test)]
mod testing;

pub use error::{OAuthError, OAuthErrorCode};
pub use settings::OidcSettings;
