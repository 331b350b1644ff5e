//! Records of the authorization-code flow: the pending request while the user logs in,
//! issued codes, refresh tokens (in rotating families) and access tokens (for revocation).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A validated sign-in request — OIDC, SAML or WS-Federation — kept while the user logs
/// in or consents. Stored in the flat shape of [`wire`], which reads and writes the rows
/// of every version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "wire::Wire", into = "wire::Wire")]
pub struct PendingAuthorization {
    pub client_id: String,
    /// What the login must be: `none` (no page may be shown: OIDC, SAML `IsPassive`),
    /// `login` (a fresh login: OIDC, SAML `ForceAuthn`, WS-Fed `wfresh=0`), and for OIDC
    /// also `consent` and `select_account`.
    pub prompt: Vec<String>,
    /// The oldest login accepted, in seconds (OIDC `max_age`, WS-Fed `wfresh`).
    pub max_age: Option<i64>,
    /// The protocol the request came over, and what answering it needs.
    pub protocol: PendingProtocol,
}

/// What a sign-in over SAML or WS-Federation discloses, and so what consent to it covers.
pub const ASSERTION_SCOPE: [&str; 3] = ["openid", "profile", "email"];

impl PendingAuthorization {
    /// The scopes the user consents to: the OIDC request's, or what an assertion discloses.
    pub fn scope(&self) -> Vec<String> {
        match &self.protocol {
            PendingProtocol::Oidc(oidc) => oidc.scope.clone(),
            PendingProtocol::Saml(_) | PendingProtocol::Wsfed(_) => ASSERTION_SCOPE.map(str::to_owned).to_vec(),
        }
    }

    /// The address the login page suggests (OIDC `login_hint`).
    pub fn login_hint(&self) -> Option<&str> {
        if let PendingProtocol::Oidc(oidc) = &self.protocol { oidc.login_hint.as_deref() } else { None }
    }
}

/// What a pending request is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingProtocol {
    /// An OIDC authorization request: a code (or an error) to its `redirect_uri`.
    Oidc(PendingOidc),
    /// A SAML AuthnRequest or IdP-initiated SSO: a SAML Response.
    Saml(PendingSaml),
    /// A WS-Federation sign-in request: a sign-in response.
    Wsfed(PendingWsfed),
}

/// What an OIDC authorization request needs to be answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOidc {
    /// A registered callback.
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub audience: Option<String>,
    pub login_hint: Option<String>,
    /// `query` (default) or `form_post`.
    pub response_mode: String,
}

/// The stored shape of a pending request: one flat object with every OIDC member, and the
/// optional `saml` and `wsfed` members, as the pending-request table has always held it.
/// A SAML or WS-Fed request is written with the OIDC members an older version expects
/// (its address as `redirect_uri`, [`ASSERTION_SCOPE`], `form_post`), so requests in
/// flight across an upgrade, in either direction, still read. Both set is refused.
mod wire {
    use super::{ASSERTION_SCOPE, PendingAuthorization, PendingOidc, PendingProtocol, PendingSaml, PendingWsfed};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Wire {
        client_id: String,
        #[serde(flatten)]
        oidc: PendingOidc,
        prompt: Vec<String>,
        max_age: Option<i64>,
        #[serde(default)]
        saml: Option<PendingSaml>,
        #[serde(default)]
        wsfed: Option<PendingWsfed>,
    }

    /// The OIDC members of an assertion's request, as older versions wrote them.
    fn assertion(address: &str) -> PendingOidc {
        let scope = ASSERTION_SCOPE.map(str::to_owned).to_vec();
        PendingOidc {
            redirect_uri: address.to_owned(),
            scope,
            response_mode: "form_post".into(),
            ..PendingOidc::default()
        }
    }

    impl From<PendingAuthorization> for Wire {
        fn from(request: PendingAuthorization) -> Self {
            let (oidc, saml, wsfed) = match request.protocol {
                PendingProtocol::Oidc(oidc) => (oidc, None, None),
                PendingProtocol::Saml(saml) => (assertion(&saml.acs_url), Some(saml), None),
                PendingProtocol::Wsfed(wsfed) => (assertion(&wsfed.reply), None, Some(wsfed)),
            };
            Wire { client_id: request.client_id, oidc, prompt: request.prompt, max_age: request.max_age, saml, wsfed }
        }
    }

    impl TryFrom<Wire> for PendingAuthorization {
        type Error = &'static str;

        fn try_from(wire: Wire) -> Result<Self, Self::Error> {
            let protocol = match (wire.saml, wire.wsfed) {
                (None, None) => PendingProtocol::Oidc(wire.oidc),
                (Some(saml), None) => PendingProtocol::Saml(saml),
                (None, Some(wsfed)) => PendingProtocol::Wsfed(wsfed),
                (Some(_), Some(_)) => return Err("a pending request is either SAML or WS-Federation"),
            };
            Ok(PendingAuthorization { client_id: wire.client_id, prompt: wire.prompt, max_age: wire.max_age, protocol })
        }
    }
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

#[cfg(test)]
mod tests;
