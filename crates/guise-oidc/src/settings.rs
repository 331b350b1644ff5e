//! Protocol settings derived from configuration: issuer, audiences, lifetimes.

use chrono::Duration;

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer identifier exactly as it appears in `iss` (Auth0 style, trailing `/`).
    pub issuer: String,
    pub access_token_lifetime: Duration,
    pub id_token_lifetime: Duration,
    /// Absolute lifetime of a refresh-token family; rotation never extends it.
    pub refresh_token_lifetime: Duration,
    pub code_lifetime: Duration,
    /// How long a started authorization request waits for login and consent.
    pub authorization_request_lifetime: Duration,
}

impl OidcSettings {
    pub fn new(issuer: &str, access_token_lifetime: Duration) -> Self {
        let issuer = if issuer.ends_with('/') { issuer.to_owned() } else { format!("{issuer}/") };
        Self {
            issuer,
            access_token_lifetime,
            id_token_lifetime: Duration::hours(10),
            refresh_token_lifetime: Duration::days(30),
            code_lifetime: Duration::seconds(60),
            authorization_request_lifetime: Duration::minutes(30),
        }
    }

    /// The audience of access tokens minted for `/userinfo` only.
    pub fn userinfo_audience(&self) -> String {
        self.endpoint("/userinfo")
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
