//! Per-client SAML settings, read from the client's `addons.samlp` in Auth0's shape.

use serde::Deserialize;
use serde_json::{Map, Value};

pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
pub const NAMEID_FORMATS: &[&str] = &[NAMEID_UNSPECIFIED, NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT];

/// Claim URIs of the default attribute mappings (as Auth0 sends them).
pub const CLAIM_NAMEIDENTIFIER: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
pub const CLAIM_EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
pub const CLAIM_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
pub const CLAIM_UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
/// Impersonation attributes (see docs/impersonation.md).
pub const ATTR_IMPERSONATED: &str = "urn:guise:impersonated";
pub const ATTR_IMPERSONATOR_ID: &str = "urn:guise:impersonator:user_id";
pub const ATTR_IMPERSONATOR_EMAIL: &str = "urn:guise:impersonator:email";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    audience: Option<String>,
    recipient: Option<String>,
    destination: Option<String>,
    name_identifier_format: Option<String>,
    mappings: Option<Map<String, Value>>,
    signature_algorithm: Option<String>,
    digest_algorithm: Option<String>,
    lifetime_in_seconds: Option<i64>,
    sign_response: Option<bool>,
    signing_cert: Option<String>,
    logout: Option<Map<String, Value>>,
}

/// Settings resolved with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlSettings {
    /// The SP's entity id, the assertion's Audience. Only the registration sets it: when
    /// unset, [`SamlSettings::entity_id`] is `urn:{client_id}`.
    pub audience: Option<String>,
    pub recipient: Option<String>,
    pub destination: Option<String>,
    pub name_id_format: String,
    /// user field → attribute name.
    pub mappings: Vec<(String, String)>,
    pub lifetime_seconds: i64,
    pub sign_response: bool,
    /// PEM of the SP's certificate: when set, Redirect-binding requests must be signed.
    pub signing_cert: Option<String>,
    /// The SP's single-logout URL (`logout.callback`): where the browser goes after an
    /// SP-initiated logout, and where LogoutRequests go when `slo_enabled`.
    pub logout_callback: Option<String>,
    /// `logout.slo_enabled` (default `true`): whether the SP is sent a LogoutRequest when
    /// a session that logged into it ends.
    pub slo_enabled: bool,
}

impl SamlSettings {
    /// The SP's registered entity id: `audience`, or `urn:{client_id}` when none is
    /// registered. It is the Audience of every assertion for this client, and the only
    /// `Issuer` an AuthnRequest for this client may carry. Nothing in a request chooses it.
    pub fn entity_id(&self, client_id: &str) -> String {
        self.audience.clone().unwrap_or_else(|| format!("urn:{client_id}"))
    }

    /// Whether an AuthnRequest's `Issuer` names this client's registered entity id. A
    /// missing Issuer does not (the Web SSO profile requires one, SAML profiles §4.1.4.1).
    pub fn issuer_matches(&self, client_id: &str, issuer: Option<&str>) -> bool {
        issuer.is_some_and(|issuer| issuer == self.entity_id(client_id))
    }

    /// Where a LogoutRequest goes when a session that logged into this SP ends: the
    /// `logout.callback`, unless `logout.slo_enabled` is `false`. Read when the request
    /// is sent, so one queued before single logout was turned off is not sent.
    pub fn logout_request_url(&self) -> Option<&str> {
        self.logout_callback.as_deref().filter(|_| self.slo_enabled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("addons.samlp is not valid: {0}")]
    Invalid(String),
}

fn default_mappings() -> Vec<(String, String)> {
    [("user_id", CLAIM_NAMEIDENTIFIER), ("email", CLAIM_EMAIL), ("name", CLAIM_NAME), ("upn", CLAIM_UPN)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Read `addons.samlp` (`None` when the client has no SAML add-on).
pub fn from_addons(addons: &Map<String, Value>) -> Result<Option<SamlSettings>, SettingsError> {
    let Some(value) = addons.get("samlp") else { return Ok(None) };
    let raw: Raw = serde_json::from_value(value.clone()).map_err(|e| SettingsError::Invalid(e.to_string()))?;
    if let Some(alg) = &raw.signature_algorithm
        && alg != "rsa-sha256"
    {
        return Err(SettingsError::Invalid(format!("signatureAlgorithm '{alg}' is not supported (rsa-sha256)")));
    }
    if let Some(alg) = &raw.digest_algorithm
        && alg != "sha256"
    {
        return Err(SettingsError::Invalid(format!("digestAlgorithm '{alg}' is not supported (sha256)")));
    }
    let name_id_format = raw.name_identifier_format.unwrap_or_else(|| NAMEID_UNSPECIFIED.to_owned());
    if !NAMEID_FORMATS.contains(&name_id_format.as_str()) {
        return Err(SettingsError::Invalid(format!("nameIdentifierFormat '{name_id_format}' is not supported")));
    }
    let lifetime_seconds = raw.lifetime_in_seconds.unwrap_or(3600);
    if !(60..=86_400).contains(&lifetime_seconds) {
        return Err(SettingsError::Invalid("lifetimeInSeconds must be between 60 and 86400".into()));
    }
    let mappings = match raw.mappings {
        None => default_mappings(),
        Some(map) => map
            .into_iter()
            .map(|(field, attribute)| match attribute {
                Value::String(a) if !a.is_empty() => Ok((field, a)),
                _ => Err(SettingsError::Invalid(format!("mapping for '{field}' must be an attribute name"))),
            })
            .collect::<Result<_, _>>()?,
    };
    let logout = raw.logout.unwrap_or_default();
    let logout_callback = logout.get("callback").and_then(Value::as_str).map(str::to_owned);
    let slo_enabled = match logout.get("slo_enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(on)) => *on,
        Some(_) => return Err(SettingsError::Invalid("logout.slo_enabled must be true or false".into())),
    };
    Ok(Some(SamlSettings {
        audience: raw.audience,
        recipient: raw.recipient,
        destination: raw.destination,
        name_id_format,
        mappings,
        lifetime_seconds,
        sign_response: raw.sign_response.unwrap_or(false),
        signing_cert: raw.signing_cert,
        logout_callback,
        slo_enabled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addons(v: Value) -> Map<String, Value> {
        json!({ "samlp": v }).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_and_validation() {
        let s = from_addons(&addons(json!({}))).ok().flatten();
        assert_eq!(s.as_ref().map(|s| s.name_id_format.as_str()), Some(NAMEID_UNSPECIFIED));
        assert_eq!(s.map(|s| s.mappings.len()), Some(4));
        assert_eq!(from_addons(&Map::new()), Ok(None));
        assert!(from_addons(&addons(json!({ "nameIdentifierFormat": "urn:bogus" }))).is_err());
        assert!(from_addons(&addons(json!({ "signatureAlgorithm": "rsa-sha1" }))).is_err());
    }

    #[test]
    fn the_entity_id_comes_from_the_registration_only() {
        let default = from_addons(&addons(json!({}))).ok().flatten();
        assert_eq!(default.as_ref().map(|s| s.entity_id("abc")), Some("urn:abc".to_owned()));
        assert_eq!(default.as_ref().map(|s| s.issuer_matches("abc", Some("urn:abc"))), Some(true));
        assert_eq!(default.as_ref().map(|s| s.issuer_matches("abc", Some("https://sp.example/"))), Some(false));
        let explicit = from_addons(&addons(json!({ "audience": "https://sp.example/" }))).ok().flatten();
        assert_eq!(explicit.as_ref().map(|s| s.entity_id("abc")), Some("https://sp.example/".to_owned()));
        assert_eq!(explicit.as_ref().map(|s| s.issuer_matches("abc", Some("https://sp.example/"))), Some(true));
        assert_eq!(explicit.as_ref().map(|s| s.issuer_matches("abc", Some("urn:abc"))), Some(false));
        assert_eq!(explicit.as_ref().map(|s| s.issuer_matches("abc", None)), Some(false));
    }

    #[test]
    fn logout_requests_go_to_the_callback_only_while_slo_is_enabled() {
        let url = |logout: Value| {
            from_addons(&addons(json!({ "logout": logout })))
                .map(|s| s.and_then(|s| s.logout_request_url().map(str::to_owned)))
        };
        let slo = "https://sp.example/slo";
        assert_eq!(url(json!({ "callback": slo })), Ok(Some(slo.to_owned())));
        assert_eq!(url(json!({ "callback": slo, "slo_enabled": true })), Ok(Some(slo.to_owned())));
        assert_eq!(url(json!({ "callback": slo, "slo_enabled": false })), Ok(None));
        assert_eq!(url(json!({ "slo_enabled": true })), Ok(None));
        assert!(url(json!({ "callback": slo, "slo_enabled": "no" })).is_err());
        // The browser's LogoutResponse still goes to the callback.
        let off = from_addons(&addons(json!({ "logout": { "callback": slo, "slo_enabled": false } }))).ok().flatten();
        assert_eq!(off.and_then(|s| s.logout_callback), Some(slo.to_owned()));
    }
}
