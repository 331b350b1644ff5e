//! guise's WS-Federation passive requestor profile (WS-Federation 1.2): per-client
//! settings, the rules a request obeys (`request`), the sign-in response — a WS-Trust
//! `RequestSecurityTokenResponse` carrying a signed SAML 1.1 assertion (or SAML 2.0 on
//! request) — and signed federation metadata. The `wsfed-rms` variant shapes the token
//! for Microsoft Rights Management clients.

pub mod metadata;
pub mod request;
pub mod settings;
pub mod token;

#[cfg(test)]
mod tests;
