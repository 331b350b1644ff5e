//! Protocol settings derived from configuration: issuer, audiences, lifetimes.

use chrono::Duration;

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer identifier exactly as it appears in `iss` (Auth0 style, trailing `/`).
    pub issuer: String,
    pub access_token_lifetime: Duration,
}

impl OidcSettings {
    pub fn new(issuer: &str, access_token_lifetime: Duration) -> Self {
        let issuer = if issuer.ends_with('/') { issuer.to_owned() } else { format!("{issuer}/") };
        Self { issuer, access_token_lifetime }
    }

    /// The issuer without its trailing slash, for building endpoint URLs.
    pub fn base_url(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// `{issuer}api/v2/`: the Management API's audience.
    pub fn management_audience(&self) -> String {
        format!("{}/api/v2/", self.base_url())
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }
}
