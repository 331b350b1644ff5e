//! RP-initiated logout (OIDC RP-Initiated Logout 1.0): the `id_token_hint` identifies
//! the client and session; `post_logout_redirect_uri` must be registered.

use crate::keys::KeyRing;
use guise_core::session::Session;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
}

#[derive(Deserialize)]
struct HintClaims {
    aud: String,
    sub: String,
    sid: Option<String>,
}

/// Verify an ID token we issued (signature and issuer; an expired one is still a hint).
pub fn verify_id_token_hint(keys: &KeyRing, issuer: &str, token: &str) -> Option<IdTokenHint> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let (alg, key) = keys.verifier(header.kid.as_deref()?)?;
    if header.alg != *alg {
        return None;
    }
    let mut validation = jsonwebtoken::Validation::new(*alg);
    validation.set_issuer(&[issuer]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<HintClaims>(token, key, &validation).ok()?.claims;
    Some(IdTokenHint { client_id: claims.aud, sub: claims.sub, sid: claims.sid })
}

impl IdTokenHint {
    /// Whether the hint was issued for `session`: its `sid`, or (for a token without one)
    /// its `sub`. A valid ID token of another session, the caller's own for instance,
    /// proves nothing about this browser's session and does not end it unasked.
    pub fn names_session(&self, session: &Session) -> bool {
        match &self.sid {
            Some(sid) => *sid == session.sid && self.sub == session.user_id,
            None => self.sub == session.user_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn session(sid: &str, user_id: &str) -> Session {
        let now = Utc::now();
        Session {
            sid: sid.into(),
            user_id: user_id.into(),
            created_at: now,
            auth_time: now,
            last_seen: now,
            idle_expires_at: now,
            absolute_expires_at: now,
            source_ip: None,
            user_agent: None,
            ended_at: None,
            impersonator_id: None,
            impersonation_reason: None,
            impersonation_minted_by: None,
        }
    }

    #[test]
    fn a_hint_names_only_its_own_session() {
        let hint = |sub: &str, sid: Option<&str>| IdTokenHint {
            client_id: "c".into(),
            sub: sub.into(),
            sid: sid.map(str::to_owned),
        };
        let mine = session("sid-1", "guise|grace");
        assert!(hint("guise|grace", Some("sid-1")).names_session(&mine));
        assert!(!hint("guise|grace", Some("sid-2")).names_session(&mine), "an older session of the same user");
        assert!(!hint("guise|mallory", Some("sid-9")).names_session(&mine), "someone else's token");
        assert!(!hint("guise|mallory", Some("sid-1")).names_session(&mine));
        assert!(hint("guise|grace", None).names_session(&mine));
        assert!(!hint("guise|mallory", None).names_session(&mine));
    }
}
