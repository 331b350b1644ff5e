//! JWT access tokens: the claims guise issues, minting, and verification against the
//! key ring with the time taken as a parameter.

use crate::keys::{KeyError, KeyRing};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `typ` header of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Grant type that produced the token (`client-credentials` for machines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gty: Option<String>,
    /// Further claims (impersonation, act) added by later flows.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AccessTokenClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The impersonation behind the token, when it was minted in an impersonation session.
    pub fn impersonation(&self) -> Option<crate::impersonation_claims::Impersonation> {
        crate::impersonation_claims::Impersonation::read(&self.extra)
    }

    /// The client id when the token was issued to a machine (`{client_id}@clients`).
    pub fn machine_client(&self) -> Option<&str> {
        self.sub.strip_suffix("@clients")
    }
}

pub fn mint(keys: &KeyRing, claims: &AccessTokenClaims) -> Result<String, KeyError> {
    keys.sign(crate::keys::DEFAULT_ALG, claims, ACCESS_TOKEN_TYP)
}

/// Why a presented token was refused. The display text is safe for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("Bad token: not a JWT")]
    Malformed,
    #[error("Invalid token: unknown signing key")]
    UnknownKey,
    #[error("Invalid token: signature or claims did not verify")]
    Invalid,
    #[error("Expired token received for JSON Web Token validation")]
    Expired,
    #[error("Bad audience")]
    WrongAudience,
}

/// Verify signature (with the algorithm of the key that `kid` names, never the header's
/// choice), issuer, audience, then expiry against `now`.
pub fn verify(
    keys: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<AccessTokenClaims, TokenRejection> {
    let claims = verify_any_audience(keys, token, issuer, now)?;
    if claims.aud != audience {
        return Err(TokenRejection::WrongAudience);
    }
    Ok(claims)
}

/// Like [`verify`], for endpoints any of guise's tokens may call (`/userinfo`,
/// introspection, revocation).
pub fn verify_any_audience(
    keys: &KeyRing,
    token: &str,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<AccessTokenClaims, TokenRejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
    let kid = header.kid.ok_or(TokenRejection::UnknownKey)?;
    let (alg, key) = keys.verifier(&kid).ok_or(TokenRejection::UnknownKey)?;
    if header.alg != *alg {
        return Err(TokenRejection::Invalid);
    }
    let mut validation = jsonwebtoken::Validation::new(*alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims =
        jsonwebtoken::decode::<AccessTokenClaims>(token, key, &validation).map_err(|_| TokenRejection::Invalid)?.claims;
    if claims.exp <= now.timestamp() {
        return Err(TokenRejection::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_rs256;

    fn claims(now: DateTime<Utc>) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://idp/".into(),
            sub: "abc@clients".into(),
            aud: "https://idp/api/v2/".into(),
            azp: "abc".into(),
            scope: "read:users".into(),
            iat: now.timestamp(),
            exp: now.timestamp() + 60,
            jti: "j".into(),
            gty: Some("client-credentials".into()),
            extra: Map::new(),
        }
    }

    #[test]
    fn mint_then_verify_and_refusals() -> Result<(), Box<dyn std::error::Error>> {
        let now = Utc::now();
        let key = generate_rs256(now)?;
        let ring = KeyRing::new(&[key], now)?;
        let token = mint(&ring, &claims(now))?;
        let verified = verify(&ring, &token, "https://idp/", "https://idp/api/v2/", now);
        assert_eq!(verified.as_ref().map(|c| c.machine_client()), Ok(Some("abc")));

        let later = now + chrono::Duration::seconds(61);
        assert_eq!(verify(&ring, &token, "https://idp/", "https://idp/api/v2/", later), Err(TokenRejection::Expired));
        assert_eq!(verify(&ring, &token, "https://idp/", "https://other/", now), Err(TokenRejection::WrongAudience));
        assert_eq!(verify(&ring, &token, "https://evil/", "https://idp/api/v2/", now), Err(TokenRejection::Invalid));

        let mut tampered = token.clone();
        tampered.insert(token.len() - 3, 'A');
        assert_eq!(verify(&ring, &tampered, "https://idp/", "https://idp/api/v2/", now), Err(TokenRejection::Invalid));
        assert_eq!(
            verify(&ring, "nonsense", "https://idp/", "https://idp/api/v2/", now),
            Err(TokenRejection::Malformed)
        );

        let other_ring = KeyRing::new(&[generate_rs256(now)?], now)?;
        assert_eq!(
            verify(&other_ring, &token, "https://idp/", "https://idp/api/v2/", now),
            Err(TokenRejection::UnknownKey)
        );
        Ok(())
    }

    #[test]
    fn alg_none_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        use base64::Engine;
        let now = Utc::now();
        let key = generate_rs256(now)?;
        let kid = key.kid.clone();
        let ring = KeyRing::new(&[key], now)?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#));
        let body = b64.encode(serde_json::to_vec(&claims(now))?);
        let unsigned = format!("{header}.{body}.");
        assert!(verify(&ring, &unsigned, "https://idp/", "https://idp/api/v2/", now).is_err());
        Ok(())
    }
}
