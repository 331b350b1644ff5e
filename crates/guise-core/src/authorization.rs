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
    /// The protocol the request came over, and what answering it needs.
    #[serde(flatten, with = "protocol_wire")]
    pub protocol: PendingProtocol,
}

/// What a pending request is answered with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PendingProtocol {
    /// An OIDC authorization request: a code (or an error) to `redirect_uri`.
    #[default]
    Oidc,
    /// A SAML AuthnRequest or IdP-initiated SSO: a SAML Response.
    Saml(PendingSaml),
    /// A WS-Federation sign-in request: a sign-in response.
    Wsfed(PendingWsfed),
}

/// The stored shape of `PendingProtocol`: the optional `saml` and `wsfed` members the
/// pending-request table has always held, so requests in flight across an upgrade (in
/// either direction) still read. Both set is refused.
mod protocol_wire {
    use super::{PendingProtocol, PendingSaml, PendingWsfed};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(bound(deserialize = "S: Deserialize<'de>, W: Deserialize<'de>"))]
    struct Wire<S, W> {
        #[serde(default)]
        saml: Option<S>,
        #[serde(default)]
        wsfed: Option<W>,
    }

    pub fn serialize<Z: Serializer>(protocol: &PendingProtocol, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let wire = match protocol {
            PendingProtocol::Oidc => Wire { saml: None, wsfed: None },
            PendingProtocol::Saml(saml) => Wire { saml: Some(saml), wsfed: None },
            PendingProtocol::Wsfed(wsfed) => Wire { saml: None, wsfed: Some(wsfed) },
        };
        wire.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PendingProtocol, D::Error> {
        match Wire::<PendingSaml, PendingWsfed>::deserialize(deserializer)? {
            Wire { saml: None, wsfed: None } => Ok(PendingProtocol::Oidc),
            Wire { saml: Some(saml), wsfed: None } => Ok(PendingProtocol::Saml(saml)),
            Wire { saml: None, wsfed: Some(wsfed) } => Ok(PendingProtocol::Wsfed(wsfed)),
            Wire { .. } => Err(serde::de::Error::custom("a pending request is either SAML or WS-Federation")),
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
mod tests {
    use super::*;

    #[test]
    fn the_protocol_is_stored_as_the_optional_saml_and_wsfed_members() {
        let oidc = r#"{"client_id":"c","redirect_uri":"https://a/cb","scope":["openid"],"state":null,"nonce":null,
            "code_challenge":null,"audience":null,"prompt":[],"max_age":null,"login_hint":null,"response_mode":"query"}"#;
        let request: PendingAuthorization = serde_json::from_str(oidc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.protocol, PendingProtocol::Oidc);
        // Rows written before the enum, with explicit nulls, still read.
        let old = oidc.replace(r#""response_mode":"query""#, r#""response_mode":"query","saml":null,"wsfed":null"#);
        let request: PendingAuthorization = serde_json::from_str(&old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.protocol, PendingProtocol::Oidc);
        let wsfed = PendingAuthorization {
            protocol: PendingProtocol::Wsfed(PendingWsfed {
                realm: "urn:r".into(),
                reply: "https://a/reply".into(),
                wctx: None,
                rms: false,
            }),
            ..request
        };
        let text = serde_json::to_string(&wsfed).unwrap_or_default();
        assert!(text.contains(r#""saml":null,"wsfed":{"realm":"urn:r""#), "{text}");
        let back: PendingAuthorization = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, wsfed);
        let both = text.replace(
            r#""saml":null"#,
            r#""saml":{"request_id":null,"acs_url":"x","audience":"y","relay_state":null,"name_id_format":"z"}"#,
        );
        assert!(serde_json::from_str::<PendingAuthorization>(&both).is_err());
    }
}
