//! The claims that say a token was minted in an impersonation session — `impersonated`,
//! `impersonator: {user_id, email}` and RFC 8693 `act: {sub}` — written into access
//! tokens, ID tokens, `/userinfo` and introspection answers, and read back, here only.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The claim names, for discovery's `claims_supported`.
pub const CLAIM_NAMES: [&str; 3] = ["impersonated", "impersonator", "act"];

/// RFC 8693 §4.1: the actor, the party that really acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    pub sub: String,
}

/// Who is behind an impersonated token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impersonator {
    pub user_id: String,
    pub email: Option<String>,
}

/// The impersonation a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    pub impersonator: Impersonator,
}

impl Impersonation {
    pub fn new(impersonator_id: &str, email: Option<String>) -> Self {
        Self { impersonator: Impersonator { user_id: impersonator_id.to_owned(), email } }
    }

    /// Add the claims to a token's (or an answer's) claim set.
    pub fn write_into(&self, claims: &mut Map<String, Value>) {
        claims.insert("impersonated".into(), json!(true));
        claims.insert("impersonator".into(), json!(self.impersonator));
        claims.insert("act".into(), json!(Act { sub: self.impersonator.user_id.clone() }));
    }

    /// The impersonation in a verified token's claims: present exactly when the token
    /// says `impersonated: true` and carries `act` (whose `sub` names the impersonator).
    /// A delegation's `act` (token exchange) alone is no impersonation.
    pub fn read(claims: &Map<String, Value>) -> Option<Self> {
        if !Self::is_carried_by(claims) {
            return None;
        }
        let act: Act = serde_json::from_value(claims.get("act")?.clone()).ok()?;
        let email = claims
            .get("impersonator")
            .and_then(|i| serde_json::from_value::<Impersonator>(i.clone()).ok())
            .filter(|i| i.user_id == act.sub)
            .and_then(|i| i.email);
        Some(Self::new(&act.sub, email))
    }

    /// Whether a claim set says it was minted in an impersonation session.
    pub fn is_carried_by(claims: &Map<String, Value>) -> bool {
        claims.get("impersonated") == Some(&Value::Bool(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back() {
        let mut claims = Map::new();
        let impersonation = Impersonation::new("guise|admin", Some("admin@example.com".into()));
        impersonation.write_into(&mut claims);
        assert_eq!(
            Value::Object(claims.clone()),
            json!({
                "impersonated": true,
                "impersonator": { "user_id": "guise|admin", "email": "admin@example.com" },
                "act": { "sub": "guise|admin" },
            })
        );
        assert_eq!(Impersonation::read(&claims), Some(impersonation));
        assert!(Impersonation::is_carried_by(&claims));
        assert_eq!(Impersonation::read(&Map::new()), None);
        let delegation = json!({ "act": { "sub": "svc@clients" } });
        assert_eq!(Impersonation::read(delegation.as_object().unwrap_or(&Map::new())), None);
    }
}
