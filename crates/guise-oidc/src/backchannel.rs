//! OpenID Connect Back-Channel Logout 1.0: the logout token a relying party is sent
//! when a session it logged into ends (§2.4): a JWT typed `logout+jwt` with `iss`,
//! `aud`, `iat`, `exp`, `jti`, `sub`, `sid` and the back-channel logout event, and never
//! a `nonce`.

use crate::OidcSettings;
use crate::keys::{DEFAULT_ALG, KeyError, KeyRing};
use chrono::{DateTime, Duration, Utc};
use guise_core::client::Client;
use serde_json::{Value, json};

/// The event a logout token carries (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The JWT `typ` of a logout token (§2.4, RFC 8725 explicit typing).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// How long a logout token is valid: long enough for its delivery, not for a replay.
pub const LOGOUT_TOKEN_LIFETIME: Duration = Duration::minutes(2);

/// Whom a session's logout names.
#[derive(Debug, Clone)]
pub struct EndedSession<'a> {
    pub sub: &'a str,
    pub sid: &'a str,
    /// The token's `jti`: the outbox message id, so a retried delivery is the same token.
    pub jti: &'a str,
}

pub fn claims(settings: &OidcSettings, client_id: &str, ended: &EndedSession<'_>, now: DateTime<Utc>) -> Value {
    json!({
        "iss": settings.issuer,
        "aud": client_id,
        "iat": now.timestamp(),
        "exp": (now + LOGOUT_TOKEN_LIFETIME).timestamp(),
        "jti": ended.jti,
        "sub": ended.sub,
        "sid": ended.sid,
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    })
}

/// The signed logout token for `client`, with the algorithm its ID tokens use.
pub fn logout_token(
    settings: &OidcSettings,
    keys: &KeyRing,
    client: &Client,
    ended: &EndedSession<'_>,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let alg = client.jwt_configuration.get("alg").and_then(Value::as_str).unwrap_or(DEFAULT_ALG);
    keys.sign(alg, &claims(settings, &client.client_id, ended, now), LOGOUT_TOKEN_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guise_core::client::AppType;

    #[test]
    fn a_logout_token_has_the_claims_of_section_2_4_and_no_nonce() -> Result<(), KeyError> {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let key = crate::keys::generate_rs256(now)?;
        let ring = KeyRing::new(std::slice::from_ref(&key), now)?;
        let settings = OidcSettings::new("https://id.example.com/", Duration::hours(1));
        let client = Client::new("rp", "RP", AppType::RegularWeb, now);
        let ended = EndedSession { sub: "guise|u", sid: "s1", jti: "msg_1" };
        let token = logout_token(&settings, &ring, &client, &ended, now)?;
        let part = |i: usize| -> Value {
            let text = token.split('.').nth(i).unwrap_or_default();
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, text).unwrap_or_default();
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        assert_eq!(part(0)["typ"], LOGOUT_TOKEN_TYPE);
        let body = part(1);
        assert_eq!(body["aud"], "rp");
        assert_eq!(body["sid"], "s1");
        assert_eq!(body["exp"], now.timestamp() + 120);
        assert!(body["events"][BACKCHANNEL_LOGOUT_EVENT].is_object());
        assert!(body.get("nonce").is_none());
        Ok(())
    }
}
