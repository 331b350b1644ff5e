//! Clients (applications): registration fields, secret hashing and the validation of
//! URLs and grant types a registration may carry.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What `GET /api/v2/clients` filters on: any of `app_types` (all when empty), and
/// `is_first_party` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFilter {
    pub app_types: Vec<AppType>,
    pub is_first_party: Option<bool>,
}

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
pub const SUPPORTED_GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    // RFC 8693; a client opts in by listing it (and holding impersonate:users).
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

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
    /// Whether this client may use the RFC 8693 token-exchange grant (it also needs
    /// `impersonate:users` in its Management API grant).
    pub allow_token_exchange: bool,
    pub initiate_login_uri: Option<String>,
    /// Per-protocol settings (`samlp`, `wsfed`), Auth0's shape.
    pub addons: Map<String, Value>,
    /// `{alg, lifetime_in_seconds}` for ID tokens.
    pub jwt_configuration: Map<String, Value>,
    /// Origins whose browser scripts may call the token, userinfo and JWKS endpoints
    /// (CORS).
    pub web_origins: Vec<String>,
    /// Auth0's origins for cross-origin authentication; stored and returned only.
    pub allowed_origins: Vec<String>,
    /// Auth0's flag; guise always behaves OIDC-conformant. Stored and returned only.
    pub oidc_conformant: bool,
    pub logo_uri: Option<String>,
    /// Up to 10 string values, as Auth0 allows.
    pub client_metadata: Map<String, Value>,
    /// OIDC Back-Channel Logout 1.0: where a logout token is POSTed when a session
    /// this client logged into ends.
    pub backchannel_logout_uri: Option<String>,
    /// Whether the logout token must carry `sid` (it always does when a session ends).
    pub backchannel_logout_session_required: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Client {
    /// A client of `app_type` with every other field at its default: first party, the
    /// app type's grant types and authentication method, no secret, nothing registered,
    /// neither impersonation nor acting-as allowed.
    pub fn new(client_id: impl Into<String>, name: impl Into<String>, app_type: AppType, at: DateTime<Utc>) -> Self {
        Client {
            client_id: client_id.into(),
            client_secret_hash: None,
            name: name.into(),
            description: String::new(),
            app_type,
            is_first_party: true,
            callbacks: Vec::new(),
            allowed_logout_urls: Vec::new(),
            grant_types: app_type.default_grant_types(),
            token_endpoint_auth_method: app_type.default_auth_method(),
            allow_impersonation: false,
            allow_act_as: false,
            allow_token_exchange: false,
            initiate_login_uri: None,
            addons: Map::new(),
            jwt_configuration: Map::new(),
            web_origins: Vec::new(),
            allowed_origins: Vec::new(),
            oidc_conformant: true,
            logo_uri: None,
            client_metadata: Map::new(),
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            created_at: at,
            updated_at: at,
        }
    }

    /// Whether the browser may be sent to `presented` with a code, a SAML Response or a
    /// WS-Fed sign-in response: one of the registered `callbacks`, exactly — or, for
    /// native apps and loopback IP redirects only, with any port (RFC 8252 §7.3). The one
    /// registration check for OIDC redirect URIs, SAML ACS URLs, WS-Fed replies and
    /// impersonation callbacks.
    pub fn is_registered_callback(&self, presented: &str) -> bool {
        if self.callbacks.iter().any(|c| c == presented) {
            return true;
        }
        if self.app_type != AppType::Native {
            return false;
        }
        let Ok(presented) = url::Url::parse(presented) else { return false };
        let is_loopback_ip = |u: &url::Url| {
            u.scheme() == "http"
                && matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                    | matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        };
        if !is_loopback_ip(&presented) {
            return false;
        }
        self.callbacks.iter().filter_map(|c| url::Url::parse(c).ok()).any(|registered| {
            is_loopback_ip(&registered)
                && registered.host() == presented.host()
                && registered.path() == presented.path()
                && registered.query() == presented.query()
        })
    }

    /// Whether the browser may be sent to `url` after an OIDC logout: one of the
    /// registered `allowed_logout_urls`, exactly.
    pub fn is_registered_logout_url(&self, url: &str) -> bool {
        self.allowed_logout_urls.iter().any(|allowed| allowed == url)
    }

    /// Where SAML and WS-Fed sign-out may reply: a logout URL or a callback, exactly.
    pub fn accepts_sign_out_reply(&self, url: &str) -> bool {
        self.is_registered_logout_url(url) || self.callbacks.iter().any(|c| c == url)
    }

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
    pub allow_token_exchange: Option<bool>,
    pub initiate_login_uri: Option<Option<String>>,
    pub addons: Option<Map<String, Value>>,
    pub jwt_configuration: Option<Map<String, Value>>,
    pub web_origins: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub oidc_conformant: Option<bool>,
    pub logo_uri: Option<Option<String>>,
    pub client_metadata: Option<Map<String, Value>>,
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
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
            allow_token_exchange,
            initiate_login_uri,
            addons,
            jwt_configuration,
            web_origins,
            allowed_origins,
            oidc_conformant,
            logo_uri,
            client_metadata,
            backchannel_logout_uri,
            backchannel_logout_session_required
        );
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientValidationError {
    #[error("{field} contains an invalid URL: {url} ({reason})")]
    InvalidUrl { field: &'static str, url: String, reason: &'static str },
    #[error("unsupported grant type: {0}")]
    UnsupportedGrantType(String),
    #[error("name must be 1 to 255 characters")]
    InvalidName,
    #[error("{field} must be an origin (scheme, host and port, no path): {origin}")]
    NotAnOrigin { field: &'static str, origin: String },
    #[error(
        "client_metadata holds at most 10 keys, each a string of at most 255 characters with a value of at most 255"
    )]
    InvalidClientMetadata,
}

/// Which URLs a field may hold, and whether plain http is allowed for any host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Also accept a native app's private-use scheme (RFC 8252 §7.1): `callbacks` and
    /// `allowed_logout_urls`. Web-only fields (`initiate_login_uri`, SAML addon URLs)
    /// take `https` (or loopback `http`) alone.
    pub private_use_schemes: bool,
    /// Accept `http` for any host (the `allow_insecure_http_urls` development setting).
    pub allow_insecure_http: bool,
}

impl UrlPolicy {
    /// `callbacks` (redirect URIs, SAML ACS URLs, WS-Fed reply addresses) and
    /// `allowed_logout_urls`.
    pub fn redirect(allow_insecure_http: bool) -> Self {
        Self { private_use_schemes: true, allow_insecure_http }
    }

    /// Fields a browser is sent to that must be web URLs.
    pub fn web(allow_insecure_http: bool) -> Self {
        Self { private_use_schemes: false, allow_insecure_http }
    }
}

/// Schemes never accepted, even where they would pass as a private-use scheme: they run
/// script, read local files, or are no place to send a browser with a code or assertion.
pub const REFUSED_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "urn",
    "chrome",
    "resource",
    "jar",
];

/// Validate one registered URL a browser may be sent to.
///
/// - `https` with a host;
/// - `http` with a host only for loopback (127.0.0.0/8, `::1`, `localhost`), unless
///   `policy.allow_insecure_http`;
/// - with `policy.private_use_schemes`, a native app's private-use scheme in
///   reverse-domain form (RFC 8252 §7.1: it contains a `.`, e.g. `com.example.app:/cb`);
/// - nothing else: `javascript:`, `data:`, `file:`, `urn:` … are refused, in any case.
///
/// Always: parseable, absolute, no fragment, no user name or password.
pub fn validate_url(field: &'static str, raw: &str, policy: UrlPolicy) -> Result<(), ClientValidationError> {
    let invalid = |reason| ClientValidationError::InvalidUrl { field, url: raw.to_owned(), reason };
    if raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err(invalid("whitespace or control characters"));
    }
    // `Url::parse` lower-cases the scheme, so JAVASCRIPT: is javascript: here.
    let url = url::Url::parse(raw).map_err(|_| invalid("not an absolute URL"))?;
    let scheme = url.scheme();
    if REFUSED_SCHEMES.contains(&scheme) {
        return Err(invalid("scheme not allowed"));
    }
    if url.fragment().is_some() {
        return Err(invalid("a fragment is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in a URL are not allowed"));
    }
    match scheme {
        "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid("no host"));
            }
        }
        "http" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid("no host"));
            }
            if !policy.allow_insecure_http && !is_loopback_or_localhost(&url) {
                return Err(invalid("http is allowed only for loopback hosts; use https"));
            }
        }
        private if policy.private_use_schemes && is_private_use_scheme(private) => {}
        _ if policy.private_use_schemes => {
            return Err(invalid("only https, loopback http or a reverse-domain private-use scheme"));
        }
        _ => return Err(invalid("only https or loopback http")),
    }
    Ok(())
}

/// A private-use URI scheme in reverse-domain form (RFC 8252 §7.1): at least two
/// non-empty labels separated by dots (`com.example.app`), and not a refused scheme.
pub fn is_private_use_scheme(scheme: &str) -> bool {
    scheme.contains('.') && scheme.split('.').all(|label| !label.is_empty()) && !REFUSED_SCHEMES.contains(&scheme)
}

/// Validate a list of registered URLs with [`validate_url`]. Matching at `/authorize`
/// (and at the SAML and WS-Fed endpoints) is exact, so only these URLs are ever used.
pub fn validate_urls(field: &'static str, urls: &[String], policy: UrlPolicy) -> Result<(), ClientValidationError> {
    urls.iter().try_for_each(|raw| validate_url(field, raw, policy))
}

pub fn is_loopback_or_localhost(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Validate a registered origin (`web_origins`, `allowed_origins`): a web URL by
/// [`validate_url`] (https, or loopback http) that is only an origin — no path beyond
/// `/`, no query.
pub fn validate_origin(field: &'static str, raw: &str, allow_insecure_http: bool) -> Result<(), ClientValidationError> {
    validate_url(field, raw, UrlPolicy::web(allow_insecure_http))?;
    let not_origin = || ClientValidationError::NotAnOrigin { field, origin: raw.to_owned() };
    let url = url::Url::parse(raw).map_err(|_| not_origin())?;
    // Auth0's subdomain wildcards (`https://*.example.com`) are not supported: refused
    // rather than stored to never match.
    if url.path() != "/" || url.query().is_some() || raw.ends_with('?') || raw.contains('*') {
        return Err(not_origin());
    }
    Ok(())
}

pub fn validate_origins(
    field: &'static str,
    origins: &[String],
    allow_insecure_http: bool,
) -> Result<(), ClientValidationError> {
    origins.iter().try_for_each(|o| validate_origin(field, o, allow_insecure_http))
}

/// Whether a browser's `Origin` header is one of `registered` (compared as origins:
/// scheme, host and port, so `https://a.example` and `https://a.example:443/` match).
pub fn origin_allowed(registered: &[String], origin: &str) -> bool {
    let Ok(asked) = url::Url::parse(origin) else {
        return false;
    };
    let asked = asked.origin();
    asked.is_tuple() && registered.iter().any(|r| url::Url::parse(r).is_ok_and(|r| r.origin() == asked))
}

/// Auth0's limits on `client_metadata`: at most 10 keys, string values, 255 characters
/// each way.
pub fn validate_client_metadata(metadata: &Map<String, Value>) -> Result<(), ClientValidationError> {
    let ok = metadata.len() <= 10
        && metadata.iter().all(|(k, v)| {
            !k.is_empty() && k.chars().count() <= 255 && v.as_str().is_some_and(|v| v.chars().count() <= 255)
        });
    if ok { Ok(()) } else { Err(ClientValidationError::InvalidClientMetadata) }
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

    fn registered(app_type: AppType, callbacks: &[&str], logout: &[&str]) -> Client {
        Client {
            callbacks: callbacks.iter().map(|c| (*c).to_owned()).collect(),
            allowed_logout_urls: logout.iter().map(|c| (*c).to_owned()).collect(),
            ..Client::new("c", "c", app_type, DateTime::<Utc>::MIN_UTC)
        }
    }

    #[test]
    fn one_registration_check_for_every_redirect() {
        let web = registered(AppType::RegularWeb, &["https://app/cb"], &["https://app/bye"]);
        assert!(web.is_registered_callback("https://app/cb"));
        assert!(!web.is_registered_callback("https://app/cb/"), "exact match only");
        assert!(!web.is_registered_callback("https://app/bye"));
        assert!(web.is_registered_logout_url("https://app/bye"));
        assert!(!web.is_registered_logout_url("https://app/cb"));
        assert!(web.accepts_sign_out_reply("https://app/cb") && web.accepts_sign_out_reply("https://app/bye"));
        // RFC 8252 §7.3: any port on a loopback IP, for native apps only.
        let native = registered(AppType::Native, &["http://127.0.0.1/cb"], &[]);
        assert!(native.is_registered_callback("http://127.0.0.1:51234/cb"));
        assert!(!native.is_registered_callback("http://127.0.0.1:51234/other"));
        assert!(!native.is_registered_callback("http://localhost:51234/cb"));
        let web_loopback = registered(AppType::RegularWeb, &["http://127.0.0.1/cb"], &[]);
        assert!(!web_loopback.is_registered_callback("http://127.0.0.1:51234/cb"));
    }

    #[test]
    fn origins_are_web_origins_and_compare_as_origins() {
        for ok in
            ["https://app.example.com", "https://app.example.com/", "http://localhost:3000", "http://127.0.0.1:8080"]
        {
            assert!(validate_origin("web_origins", ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/?q",
            "https://*.example.com",
            "javascript:alert(1)",
            "com.example.app:/",
        ] {
            assert!(validate_origin("web_origins", bad, false).is_err(), "{bad}");
        }
        let registered = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed(&registered, "https://app.example.com"));
        assert!(origin_allowed(&registered, "https://app.example.com:443"));
        assert!(!origin_allowed(&registered, "https://app.example.com.evil.example"));
        assert!(!origin_allowed(&registered, "http://app.example.com"));
        assert!(!origin_allowed(&registered, "null"));
    }

    #[test]
    fn secret_hash_round_trip() {
        let hash = hash_client_secret("s3cret");
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, hash_client_secret("s3cret2"));
    }

    #[test]
    fn url_validation() {
        let redirect = UrlPolicy::redirect(false);
        let ok = |u: &str| validate_urls("callbacks", &[u.to_owned()], redirect).is_ok();
        for good in [
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1:9000/cb",
            "http://127.8.9.10/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/cb",
            "http://LOCALHOST/cb",
            "com.example.app:/callback",
            "com.example.app:/oauth2redirect/example-provider",
        ] {
            assert!(ok(good), "{good} should be accepted");
        }
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "JavaScript://app.example.com/%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "blob:https://app.example.com/uuid",
            "about:blank",
            "ftp://app.example.com/cb",
            "ws://127.0.0.1/cb",
            "urn:ietf:wg:oauth:2.0:oob",
            "myapp:/cb",
            "http://evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/cb",
            "https://app.example.com/cb#frag",
            "https://user:pass@app.example.com/cb",
            " https://app.example.com/cb",
            "not a url",
            "/relative/cb",
            ".app:/cb",
        ] {
            assert!(!ok(bad), "{bad} should be refused");
        }
        assert!(validate_grant_types(&["password".into()]).is_err());
    }

    #[test]
    fn web_only_fields_and_the_insecure_http_setting() {
        assert!(validate_url("initiate_login_uri", "com.example.app:/cb", UrlPolicy::web(false)).is_err());
        assert!(validate_url("initiate_login_uri", "https://app.example.com/login", UrlPolicy::web(false)).is_ok());
        assert!(validate_url("initiate_login_uri", "http://app.example.com/login", UrlPolicy::web(false)).is_err());
        assert!(validate_url("initiate_login_uri", "http://app.example.com/login", UrlPolicy::web(true)).is_ok());
        // The development setting relaxes http only, never the scheme rules.
        assert!(validate_url("callbacks", "javascript:alert(1)", UrlPolicy::redirect(true)).is_err());
        assert!(validate_url("callbacks", "data:,x", UrlPolicy::redirect(true)).is_err());
        let error = validate_url("allowed_logout_urls", "javascript:x", UrlPolicy::redirect(false));
        assert!(error.is_err_and(|e| e.to_string().starts_with("allowed_logout_urls ")));
    }
}
