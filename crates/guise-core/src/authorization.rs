//! Records of the authorization-code flow: the pending request while the user logs in,
//! issued codes, refresh tokens (in rotating families) and access tokens (for revocation).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A validated authorization request, kept while the user logs in or consents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub audience: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// `query` (default) or `form_post`.
    pub response_mode: String,
    /// Set when the request came over SAML: the answer is a SAML Response.
    #[serde(default)]
    pub saml: Option<PendingSaml>,
    /// Set when the request came over WS-Federation: the answer is a sign-in response.
    #[serde(default)]
    pub wsfed: Option<PendingWsfed>,
}

/// What a WS-Federation sign-in request needs to be answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWsfed {
    pub realm: String,
    /// A registered callback.
    pub reply: String,
    pub wctx: Option<String>,
    /// Shape the token for Microsoft Rights Management clients.
    pub rms: bool,
}

/// What a SAML AuthnRequest (or IdP-initiated SSO) needs to be answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSaml {
    /// The AuthnRequest's ID (`InResponseTo`); `None` for IdP-initiated SSO.
    pub request_id: Option<String>,
    /// Where the Response is posted: a registered callback.
    pub acs_url: String,
    /// The SP entity the assertion is for.
    pub audience: String,
    pub relay_state: Option<String>,
    pub name_id_format: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationRequestRecord {
    pub id: String,
    pub request: PendingAuthorization,
    /// The CSRF token the login and consent forms must echo.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub sid: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// What consuming a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// First use: the code, now marked consumed.
    Redeemed(AuthorizationCode),
    /// Second use: every token issued from the code has been revoked.
    Replayed(AuthorizationCode),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub sid: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub code_hash: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The family's absolute end: rotation never extends it.
    pub family_expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshRedemption {
    /// Valid and now used: the caller issues its successor in the same family.
    Rotated(RefreshTokenRecord),
    /// Already used: the whole family has been revoked (token theft is assumed).
    Reused(RefreshTokenRecord),
    /// Revoked or past its family's lifetime.
    Dead(RefreshTokenRecord),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessTokenRecord {
    pub jti: String,
    pub client_id: String,
    pub user_id: String,
    pub sid: String,
    pub family_id: Option<String>,
    pub code_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}
