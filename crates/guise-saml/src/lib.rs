//! guise's SAML 2.0 identity provider: parsing AuthnRequests and LogoutRequests (Redirect
//! and POST bindings, XXE-proof), the rules a sign-on (`sso`) or logout (`slo`) request
//! obeys, building signed Responses and metadata. Typed requests in, XML out; no HTTP, no
//! SQL. XML is signed in pure Rust over XML guise itself emits in canonical form (see
//! docs/saml.md for why not samael/xmlsec).

pub mod cert;
pub mod dsig;
pub mod metadata;
pub mod request;
pub mod response;
pub mod settings;
pub mod slo;
pub mod sso;
pub mod xml;
