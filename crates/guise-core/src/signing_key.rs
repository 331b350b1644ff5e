//! Token signing keys as stored: algorithm, key id, private key and lifecycle state.

use chrono::{DateTime, Utc};
use std::fmt;

/// Where a key is in its life: signing now, still published for verification, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens; exactly one per algorithm.
    Active,
    /// No longer signs, still in JWKS until `retire_after`.
    Retiring,
    /// Neither signs nor verifies.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(KeyState::Active),
            "retiring" => Some(KeyState::Retiring),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// JOSE algorithm name: `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// PKCS#8 PEM. Never printed: `Debug` redacts it.
    pub private_key_pem: String,
    /// The public JWK as published in JWKS (JSON object).
    pub public_jwk: serde_json::Value,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    /// For a retiring key: when it leaves JWKS.
    pub retire_after: Option<DateTime<Utc>>,
    /// Self-signed X.509 certificate (PEM) for SAML and WS-Federation, once issued.
    pub certificate_pem: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key_pem", &"<redacted>")
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("retire_after", &self.retire_after)
            .finish()
    }
}

impl SigningKey {
    /// Whether tokens signed with this key still verify at `now`.
    pub fn is_published(&self, now: DateTime<Utc>) -> bool {
        match self.state {
            KeyState::Active => true,
            KeyState::Retiring => self.retire_after.is_none_or(|t| now < t),
            KeyState::Retired => false,
        }
    }
}
