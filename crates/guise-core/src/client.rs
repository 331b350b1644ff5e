//! Clients (applications): registration fields, secret hashing and the validation of
//! URLs and grant types a registration may carry.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppType {
    /// A confidential server-side web application.
    RegularWeb,
    /// A browser single-page app: public, PKCE.
    Spa,
    /// A mobile or desktop app: public, PKCE, loopback redirects.
    Native,
    /// A machine-to-machine client (client credentials).
    NonInteractive,
}

impl AppType {
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::RegularWeb => "regular_web",
            AppType::Spa => "spa",
            AppType::Native => "native",
            AppType::NonInteractive => "non_interactive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "regular_web" => AppType::RegularWeb,
            "spa" => AppType::Spa,
            "native" => AppType::Native,
            "non_interactive" => AppType::NonInteractive,
            _ => return None,
        })
    }

    /// Grants a new client of this type gets when none are given (Auth0's defaults).
    pub fn default_grant_types(self) -> Vec<String> {
        let grants: &[&str] = match self {
            AppType::RegularWeb => &["authorization_code", "refresh_token", "client_credentials"],
            AppType::Spa | AppType::Native => &["authorization_code", "refresh_token"],
            AppType::NonInteractive => &["client_credentials"],
        };
        grants.iter().map(|g| (*g).to_owned()).collect()
    }

    pub fn default_auth_method(self) -> TokenEndpointAuthMethod {
        match self {
            AppType::Spa | AppType::Native => TokenEndpointAuthMethod::None,
            AppType::RegularWeb | AppType::NonInteractive => TokenEndpointAuthMethod::ClientSecretPost,
        }
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuthMethod {
    None,
    ClientSecretPost,
    ClientSecretBasic,
}

impl TokenEndpointAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::None => "none",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => TokenEndpointAuthMethod::None,
            "client_secret_post" => TokenEndpointAuthMethod::ClientSecretPost,
            "client_secret_basic" => TokenEndpointAuthMethod::ClientSecretBasic,
            _ => return None,
        })
    }
}

/// Grant types guise implements; registrations naming others are refused.
pub const SUPPORTED_GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: String,
    /// Hex SHA-256 of the secret; `None` for public clients.
    pub client_secret_hash: Option<String>,
    pub name: String,
    pub description: String,
    pub app_type: AppType,
    pub is_first_party: bool,
    pub callbacks: Vec<String>,
    pub allowed_logout_urls: Vec<String>,
    pub grant_types: Vec<String>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// Whether impersonation logins to this client may be minted.
    pub allow_impersonation: bool,
    /// Whether this client may call the API on behalf of users.
    pub allow_act_as: bool,
    pub initiate_login_uri: Option<String>,
    /// Per-protocol settings (`samlp`, `wsfed`), Auth0's shape.
    pub addons: Map<String, Value>,
    /// `{alg, lifetime_in_seconds}` for ID tokens.
    pub jwt_configuration: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Client {
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// Check a presented secret against the stored hash in constant time.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.client_secret_hash {
            Some(stored) => hash_client_secret(presented).as_bytes().ct_eq(stored.as_bytes()).into(),
            None => false,
        }
    }

    pub fn is_confidential(&self) -> bool {
        self.token_endpoint_auth_method != TokenEndpointAuthMethod::None
    }
}

/// SHA-256 of a client secret, hex. Secrets are 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force (see docs/operations.md).
pub fn hash_client_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Default)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub app_type: Option<AppType>,
    pub is_first_party: Option<bool>,
    pub callbacks: Option<Vec<String>>,
    pub allowed_logout_urls: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub allow_impersonation: Option<bool>,
    pub allow_act_as: Option<bool>,
    pub initiate_login_uri: Option<Option<String>>,
    pub addons: Option<Map<String, Value>>,
    pub jwt_configuration: Option<Map<String, Value>>,
}

impl ClientPatch {
    pub fn apply_to(self, client: &mut Client) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { client.$field = v; } )* };
        }
        set!(
            name,
            description,
            app_type,
            is_first_party,
            callbacks,
            allowed_logout_urls,
            grant_types,
            token_endpoint_auth_method,
            allow_impersonation,
            allow_act_as,
            initiate_login_uri,
            addons,
            jwt_configuration
        );
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientValidationError {
    #[error("{field} contains an invalid URL: {url}")]
    InvalidUrl { field: &'static str, url: String },
    #[error("unsupported grant type: {0}")]
    UnsupportedGrantType(String),
    #[error("name must be 1 to 255 characters")]
    InvalidName,
}

/// Validate a list of registered URLs: absolute, with a host unless a private-use scheme
/// (native apps), no fragment. Plain http is accepted (as Auth0 does, for development);
/// matching at `/authorize` is exact, so an http callback is only used if registered.
pub fn validate_urls(field: &'static str, urls: &[String]) -> Result<(), ClientValidationError> {
    for raw in urls {
        let invalid = || ClientValidationError::InvalidUrl { field, url: raw.clone() };
        let url = url::Url::parse(raw).map_err(|_| invalid())?;
        if url.fragment().is_some() || url.cannot_be_a_base() && url.scheme() != "urn" {
            return Err(invalid());
        }
        if matches!(url.scheme(), "http" | "https") && url.host_str().is_none() {
            return Err(invalid());
        }
    }
    Ok(())
}

pub fn is_loopback_or_localhost(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

pub fn validate_grant_types(grants: &[String]) -> Result<(), ClientValidationError> {
    match grants.iter().find(|g| !SUPPORTED_GRANT_TYPES.contains(&g.as_str())) {
        Some(bad) => Err(ClientValidationError::UnsupportedGrantType(bad.clone())),
        None => Ok(()),
    }
}

pub fn validate_name(name: &str) -> Result<(), ClientValidationError> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(ClientValidationError::InvalidName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_round_trip() {
        let hash = hash_client_secret("s3cret");
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, hash_client_secret("s3cret2"));
    }

    #[test]
    fn url_validation() {
        assert!(validate_urls("callbacks", &["https://app.example.com/cb".into()]).is_ok());
        assert!(validate_urls("callbacks", &["http://127.0.0.1:9000/cb".into()]).is_ok());
        assert!(validate_urls("callbacks", &["https://app.example.com/cb#frag".into()]).is_err());
        assert!(validate_urls("callbacks", &["not a url".into()]).is_err());
        assert!(validate_grant_types(&["password".into()]).is_err());
    }
}
