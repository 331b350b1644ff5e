//! Signing keys in memory: generating RS256 keys, the JWKS document, and the key ring
//! that signs with the active key and verifies against every published one.

use crate::jws::JwsKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use guise_core::ids::new_key_id;
use guise_core::signing_key::{KeyState, SigningKey};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::json;
use std::collections::HashMap;

/// The algorithm new keys use unless a client asks for another.
pub const DEFAULT_ALG: &str = "RS256";
const RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generation,
    #[error("stored key {0} is unusable")]
    Unusable(String),
    #[error("no active signing key")]
    NoActiveKey,
}

/// Algorithms guise signs with: RS256 (default), ES256 and EdDSA (Ed25519).
pub const SUPPORTED_ALGS: &[&str] = &["RS256", "ES256", "EdDSA"];

/// Generate a fresh key for `alg`, ready to store.
pub fn generate(alg: &str, now: DateTime<Utc>) -> Result<SigningKey, KeyError> {
    match alg {
        "RS256" => generate_rs256(now),
        "ES256" => generate_es256(now),
        "EdDSA" => generate_ed25519(now),
        _ => Err(KeyError::Generation),
    }
}

fn new_key(alg: &str, kid: String, pem: String, public_jwk: serde_json::Value, now: DateTime<Utc>) -> SigningKey {
    SigningKey {
        kid,
        alg: alg.to_owned(),
        private_key_pem: pem,
        public_jwk,
        state: KeyState::Active,
        created_at: now,
        retire_after: None,
        certificate_pem: None,
    }
}

fn generate_es256(now: DateTime<Utc>) -> Result<SigningKey, KeyError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::EncodePrivateKey as _;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).map_err(|_| KeyError::Generation)?;
    let point = secret.public_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else { return Err(KeyError::Generation) };
    let kid = new_key_id();
    let jwk = json!({
        "kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    });
    Ok(new_key("ES256", kid, pem.to_string(), jwk, now))
}

fn generate_ed25519(now: DateTime<Utc>) -> Result<SigningKey, KeyError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let pem =
        key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).map_err(|_| KeyError::Generation)?;
    let kid = new_key_id();
    let jwk = json!({
        "kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": kid, "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
    });
    Ok(new_key("EdDSA", kid, pem.to_string(), jwk, now))
}

/// Generate a fresh RS256 key, ready to store.
pub fn generate_rs256(now: DateTime<Utc>) -> Result<SigningKey, KeyError> {
    let private = RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS).map_err(|_| KeyError::Generation)?;
    let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|_| KeyError::Generation)?;
    let kid = new_key_id();
    let public_jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    });
    Ok(new_key(DEFAULT_ALG, kid, pem.to_string(), public_jwk, now))
}

struct Signer {
    kid: String,
    alg: Algorithm,
    key: JwsKey,
}

/// Keys loaded for use: one signer per algorithm and a verifier per published kid.
pub struct KeyRing {
    signers: HashMap<String, Signer>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: serde_json::Value,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.verifiers.keys().collect::<Vec<_>>()).finish()
    }
}

fn parse_alg(alg: &str) -> Option<Algorithm> {
    match alg {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl KeyRing {
    /// Build from the store's published keys, as of `now`.
    pub fn new(keys: &[SigningKey], now: DateTime<Utc>) -> Result<Self, KeyError> {
        let mut signers = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for key in keys.iter().filter(|k| k.is_published(now)) {
            let alg = parse_alg(&key.alg).ok_or_else(|| KeyError::Unusable(key.kid.clone()))?;
            let jwk: Jwk =
                serde_json::from_value(key.public_jwk.clone()).map_err(|_| KeyError::Unusable(key.kid.clone()))?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| KeyError::Unusable(key.kid.clone()))?;
            verifiers.insert(key.kid.clone(), (alg, decoding));
            published.push(key.public_jwk.clone());
            if key.state == KeyState::Active {
                // Parsed once here: parsing an RSA key costs about a quarter of a signature.
                let signing =
                    JwsKey::from_pem(alg, &key.private_key_pem).map_err(|_| KeyError::Unusable(key.kid.clone()))?;
                signers.insert(key.alg.clone(), Signer { kid: key.kid.clone(), alg, key: signing });
            }
        }
        Ok(Self { signers, verifiers, jwks: json!({ "keys": published }) })
    }

    /// The JWKS document (`/.well-known/jwks.json`): public parts only.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifiers.contains_key(kid)
    }

    /// Sign `claims` with the active key of `alg` (RS256 unless a client chose another).
    pub fn sign<T: serde::Serialize>(&self, alg: &str, claims: &T, typ: &str) -> Result<String, KeyError> {
        let signer = self.signers.get(alg).ok_or(KeyError::NoActiveKey)?;
        let mut header = jsonwebtoken::Header::new(signer.alg);
        header.kid = Some(signer.kid.clone());
        header.typ = Some(typ.to_owned());
        signer.key.sign(&header, claims).map_err(|_| KeyError::Unusable(signer.kid.clone()))
    }

    /// The verifier for a token's `kid`, if published.
    pub(crate) fn verifier(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.verifiers.get(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_is_published() -> Result<(), KeyError> {
        let now = Utc::now();
        let key = generate_rs256(now)?;
        assert!(key.private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let ring = KeyRing::new(std::slice::from_ref(&key), now)?;
        assert!(ring.knows(&key.kid));
        let jwks = ring.jwks().to_string();
        assert!(!jwks.contains("PRIVATE") && !jwks.contains("\"d\""), "JWKS must carry public parts only");
        let token = ring.sign(DEFAULT_ALG, &json!({"sub": "x"}), "JWT")?;
        assert_eq!(token.split('.').count(), 3);
        Ok(())
    }

    #[test]
    fn every_supported_algorithm_signs_and_verifies() -> Result<(), Box<dyn std::error::Error>> {
        let now = Utc::now();
        let keys: Vec<SigningKey> = SUPPORTED_ALGS.iter().map(|alg| generate(alg, now)).collect::<Result<_, _>>()?;
        let ring = KeyRing::new(&keys, now)?;
        for key in &keys {
            let token = ring.sign(&key.alg, &json!({"sub": "x"}), "JWT")?;
            let header = jsonwebtoken::decode_header(&token)?;
            assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
            let (alg, decoding) = ring.verifier(&key.kid).ok_or("published")?;
            let mut validation = jsonwebtoken::Validation::new(*alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, decoding, &validation)?;
        }
        Ok(())
    }

    #[test]
    fn retired_keys_are_not_published() -> Result<(), KeyError> {
        let now = Utc::now();
        let mut key = generate_rs256(now)?;
        key.state = KeyState::Retiring;
        key.retire_after = Some(now - chrono::Duration::seconds(1));
        let ring = KeyRing::new(&[key.clone()], now)?;
        assert!(!ring.knows(&key.kid));
        Ok(())
    }
}
