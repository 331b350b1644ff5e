//! Compact JWS signing (RS256, ES256, EdDSA) with an aws-lc key parsed once, when the key
//! ring is built, instead of on every token.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// A private key ready to sign, for one JWS algorithm.
pub(crate) enum JwsKey {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// The key could not be read, or the signature could not be made.
#[derive(Debug)]
pub(crate) struct JwsError;

impl JwsKey {
    /// Parse a PKCS#8 (or, for RSA, PKCS#1) PEM private key for `alg`.
    pub(crate) fn from_pem(alg: Algorithm, pem: &str) -> Result<Self, JwsError> {
        // jsonwebtoken's PEM reader yields the DER the matching aws-lc parser takes:
        // PKCS#1 RSAPrivateKey for RSA, PKCS#8 for EC and Ed25519.
        match alg {
            Algorithm::RS256 => {
                let der = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| JwsError)?;
                RsaKeyPair::from_der(der.as_bytes()).map(Self::Rs256).map_err(|_| JwsError)
            }
            Algorithm::ES256 => {
                let der = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| JwsError)?;
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_bytes())
                    .map(Self::Es256)
                    .map_err(|_| JwsError)
            }
            Algorithm::EdDSA => {
                let der = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| JwsError)?;
                Ed25519KeyPair::from_pkcs8(der.as_bytes()).map(Self::EdDsa).map_err(|_| JwsError)
            }
            _ => Err(JwsError),
        }
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, JwsError> {
        match self {
            Self::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature).map_err(|_| JwsError)?;
                Ok(signature)
            }
            Self::Es256(key) => {
                key.sign(&SystemRandom::new(), message).map(|s| s.as_ref().to_vec()).map_err(|_| JwsError)
            }
            Self::EdDsa(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }

    /// The compact serialization `header.claims.signature` (RFC 7515 §7.1).
    pub(crate) fn sign<T: serde::Serialize>(&self, header: &Header, claims: &T) -> Result<String, JwsError> {
        let header = serde_json::to_vec(header).map_err(|_| JwsError)?;
        let claims = serde_json::to_vec(claims).map_err(|_| JwsError)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}
