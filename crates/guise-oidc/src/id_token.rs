//! ID tokens (OIDC Core §2): claims by scope, `at_hash`, signed with the client's chosen
//! algorithm.

use crate::OidcSettings;
use crate::keys::{KeyError, KeyRing};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use guise_core::user::User;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

/// `at_hash`: the left half of the hash of the access token, with the hash of the
/// signing algorithm (SHA-512 for Ed25519).
pub fn at_hash(access_token: &str, alg: &str) -> String {
    let digest: Vec<u8> = match alg {
        "EdDSA" => Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// Profile and email claims a scope releases (shared with `/userinfo`).
pub fn user_claims(user: &User, scope: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    let has = |s: &str| scope.iter().any(|x| x == s);
    if has("profile") {
        let optional = [
            ("name", &user.name),
            ("given_name", &user.given_name),
            ("family_name", &user.family_name),
            ("nickname", &user.nickname),
            ("picture", &user.picture),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                claims.insert(key.to_owned(), Value::String(v.clone()));
            }
        }
        claims.insert("updated_at".into(), json!(user.updated_at.timestamp()));
    }
    if has("email") {
        claims.insert("email".into(), Value::String(user.email.clone()));
        claims.insert("email_verified".into(), Value::Bool(user.email_verified));
    }
    claims
}

pub struct IdTokenInput<'a> {
    pub user: &'a User,
    pub client_id: &'a str,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: DateTime<Utc>,
    pub sid: &'a str,
    pub access_token: &'a str,
    pub alg: &'a str,
    /// How long the ID token is valid (capped for impersonation sessions).
    pub lifetime: chrono::Duration,
    /// Further claims (impersonation).
    pub extra: &'a Map<String, Value>,
}

pub fn mint(
    settings: &OidcSettings,
    keys: &KeyRing,
    input: &IdTokenInput<'_>,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let mut claims = user_claims(input.user, input.scope);
    claims.extend([
        ("iss".to_owned(), json!(settings.issuer)),
        ("sub".to_owned(), json!(input.user.user_id)),
        ("aud".to_owned(), json!(input.client_id)),
        ("azp".to_owned(), json!(input.client_id)),
        ("iat".to_owned(), json!(now.timestamp())),
        ("exp".to_owned(), json!((now + input.lifetime).timestamp())),
        ("auth_time".to_owned(), json!(input.auth_time.timestamp())),
        ("sid".to_owned(), json!(input.sid)),
        ("at_hash".to_owned(), json!(at_hash(input.access_token, input.alg))),
    ]);
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    for (k, v) in input.extra {
        claims.insert(k.clone(), v.clone());
    }
    keys.sign(input.alg, &Value::Object(claims), "JWT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OIDC Core A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" → at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        assert_eq!(at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256"), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
