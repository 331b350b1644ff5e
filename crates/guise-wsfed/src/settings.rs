//! Per-client WS-Fed settings, from the client's `addons.wsfed`.

use serde::Deserialize;
use serde_json::{Map, Value};

pub const TOKEN_SAML11: &str = "urn:oasis:names:tc:SAML:1.0:assertion";
pub const TOKEN_SAML20: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    realm: Option<String>,
    token_type: Option<String>,
    mappings: Option<Map<String, Value>>,
    lifetime_in_seconds: Option<i64>,
    rms: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WsfedSettings {
    /// The relying party's realm (`wtrealm`); defaults to the client id.
    pub realm: String,
    pub token_type: &'static str,
    /// user field → claim type URI.
    pub mappings: Vec<(String, String)>,
    pub lifetime_seconds: i64,
    /// Tokens shaped for Microsoft Rights Management (`wsfed-rms`).
    pub rms: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("addons.wsfed is not valid: {0}")]
pub struct SettingsError(String);

pub const CLAIMS: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims";

fn default_mappings() -> Vec<(String, String)> {
    [
        ("user_id", "nameidentifier"),
        ("email", "emailaddress"),
        ("name", "name"),
        ("upn", "upn"),
        ("given_name", "givenname"),
        ("family_name", "surname"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), format!("{CLAIMS}/{v}")))
    .collect()
}

/// Read `addons.wsfed` (`None` when the client has no WS-Fed add-on).
pub fn from_addons(client_id: &str, addons: &Map<String, Value>) -> Result<Option<WsfedSettings>, SettingsError> {
    let Some(value) = addons.get("wsfed") else { return Ok(None) };
    let raw: Raw = serde_json::from_value(value.clone()).map_err(|e| SettingsError(e.to_string()))?;
    let token_type = match raw.token_type.as_deref() {
        None | Some(TOKEN_SAML11) | Some("saml11") => TOKEN_SAML11,
        Some(TOKEN_SAML20) | Some("saml20") => TOKEN_SAML20,
        Some(other) => return Err(SettingsError(format!("tokenType '{other}' is not supported"))),
    };
    let lifetime_seconds = raw.lifetime_in_seconds.unwrap_or(3600);
    if !(60..=86_400).contains(&lifetime_seconds) {
        return Err(SettingsError("lifetimeInSeconds must be between 60 and 86400".into()));
    }
    let mappings = match raw.mappings {
        None => default_mappings(),
        Some(map) => map
            .into_iter()
            .map(|(field, claim)| match claim {
                Value::String(c) if c.contains('/') => Ok((field, c)),
                _ => Err(SettingsError(format!("mapping for '{field}' must be a claim type URI"))),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Some(WsfedSettings {
        realm: raw.realm.filter(|r| !r.is_empty()).unwrap_or_else(|| client_id.to_owned()),
        token_type,
        mappings,
        lifetime_seconds,
        rms: raw.rms.unwrap_or(false),
    }))
}
