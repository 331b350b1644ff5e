//! `/authorize`: validating an authorization request (RFC 6749 §4.1, OIDC Core §3.1.2,
//! RFC 9700) and deciding the next step — login, consent, or a code.

use crate::pkce;
use chrono::{DateTime, Duration, Utc};
use guise_core::authorization::{PendingAuthorization, PendingOidc, PendingProtocol};
use guise_core::client::{Client, TokenEndpointAuthMethod};
use guise_core::permission::{is_valid_scope_token, parse_scope};
use guise_core::session::Session;

/// Raw query or form parameters of an authorization request.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub audience: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// Why a request failed, and whether the client may be told by redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect.
    Page { error: String, description: String },
    /// The redirect URI is registered: send the error back to it.
    Redirect {
        redirect_uri: String,
        response_mode: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

const MAX_PARAM_LEN: usize = 2048;

fn page(error: &str, description: impl Into<String>) -> AuthorizeError {
    AuthorizeError::Page { error: error.to_owned(), description: description.into() }
}

/// Validate a request for `client` (already looked up by `client_id`; `None` if unknown).
pub fn validate(params: &AuthorizeParams, client: Option<&Client>) -> Result<PendingAuthorization, AuthorizeError> {
    let all = [
        &params.response_type,
        &params.client_id,
        &params.redirect_uri,
        &params.scope,
        &params.state,
        &params.nonce,
        &params.code_challenge,
        &params.prompt,
        &params.login_hint,
        &params.audience,
    ];
    if all.iter().any(|p| p.as_ref().is_some_and(|v| v.len() > MAX_PARAM_LEN)) {
        return Err(page("invalid_request", "A request parameter is too long"));
    }
    if params.client_id.as_deref().unwrap_or("").is_empty() {
        return Err(page("invalid_request", "Missing required parameter: client_id"));
    }
    let client = client.ok_or_else(|| page("invalid_request", "Unknown client"))?;
    let redirect_uri = match params.redirect_uri.as_deref() {
        Some(uri) if client.is_registered_callback(uri) => uri.to_owned(),
        Some(_) => {
            return Err(page(
                "invalid_request",
                "The redirect_uri is not registered for this client (it must match a callback URL exactly)",
            ));
        }
        None => return Err(page("invalid_request", "Missing required parameter: redirect_uri")),
    };
    let response_mode = params.response_mode.clone().unwrap_or_else(|| "query".to_owned());
    if response_mode != "query" && response_mode != "form_post" {
        return Err(page("invalid_request", "response_mode must be query or form_post"));
    }
    let state = params.state.clone();
    let redirect_error = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        response_mode: response_mode.clone(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };

    if params.request.is_some() {
        return Err(redirect_error("request_not_supported", "Request objects are not supported"));
    }
    if params.request_uri.is_some() {
        return Err(redirect_error("request_uri_not_supported", "request_uri is not supported"));
    }
    match params.response_type.as_deref() {
        Some("code") => {}
        None => return Err(redirect_error("invalid_request", "Missing required parameter: response_type")),
        Some(_) => {
            return Err(redirect_error("unsupported_response_type", "Only response_type=code is supported"));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(redirect_error("unauthorized_client", "The client may not use the authorization code grant"));
    }
    let scope = parse_scope(params.scope.as_deref().unwrap_or(""));
    if let Some(bad) = scope.iter().find(|s| !is_valid_scope_token(s)) {
        return Err(redirect_error("invalid_scope", &format!("Invalid scope '{bad}'")));
    }
    match (params.code_challenge.as_deref(), params.code_challenge_method.as_deref()) {
        (Some(challenge), Some("S256")) => {
            if !pkce::well_formed(challenge) {
                return Err(redirect_error("invalid_request", "code_challenge is malformed"));
            }
        }
        (Some(_), Some("plain") | None) => {
            return Err(redirect_error("invalid_request", "code_challenge_method must be S256 (plain is not allowed)"));
        }
        (Some(_), Some(_)) => return Err(redirect_error("invalid_request", "Unsupported code_challenge_method")),
        (None, Some(_)) => {
            return Err(redirect_error("invalid_request", "code_challenge_method without code_challenge"));
        }
        (None, None) => {
            if client.token_endpoint_auth_method == TokenEndpointAuthMethod::None {
                return Err(redirect_error(
                    "invalid_request",
                    "PKCE (code_challenge with S256) is required for public clients",
                ));
            }
        }
    }
    let prompt = parse_scope(params.prompt.as_deref().unwrap_or(""));
    if let Some(bad) = prompt.iter().find(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account")) {
        return Err(redirect_error("invalid_request", &format!("Unsupported prompt value '{bad}'")));
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return Err(redirect_error("invalid_request", "prompt=none cannot be combined with other values"));
    }
    let max_age = match params.max_age.as_deref() {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(redirect_error("invalid_request", "max_age must be a non-negative integer")),
        },
    };
    if let Some(audience) = &params.audience
        && url::Url::parse(audience).is_err()
        && !audience.starts_with("urn:")
    {
        return Err(redirect_error("invalid_request", "audience must be an API identifier"));
    }
    Ok(PendingAuthorization {
        client_id: client.client_id.clone(),
        prompt,
        max_age,
        protocol: PendingProtocol::Oidc(PendingOidc {
            redirect_uri,
            scope,
            state,
            nonce: params.nonce.clone(),
            code_challenge: params.code_challenge.clone(),
            audience: params.audience.clone(),
            login_hint: params.login_hint.clone(),
            response_mode,
        }),
    })
}

/// What to do with a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Login,
    Consent,
    IssueCode,
    /// `prompt=none` could not be honoured.
    Fail {
        error: &'static str,
        description: &'static str,
    },
}

/// Decide the next step from the session (if any), what the user has consented to, and
/// when the request began (a login after it counts as fresh for `prompt=login`).
pub fn next_step(
    request: &PendingAuthorization,
    requested_at: DateTime<Utc>,
    session: Option<&Session>,
    client: &Client,
    consented: Option<&[String]>,
    consent_given_now: bool,
    now: DateTime<Utc>,
) -> NextStep {
    let prompt_none = request.prompt.iter().any(|p| p == "none");
    let live = session.filter(|s| s.is_live(now));
    let needs_login = match live {
        None => true,
        Some(s) => {
            let fresh = s.auth_time >= requested_at;
            let too_old =
                request.max_age.and_then(Duration::try_seconds).is_some_and(|max| s.age_of_authentication(now) > max);
            (request.prompt.iter().any(|p| p == "login") && !fresh) || too_old
        }
    };
    if needs_login {
        return if prompt_none {
            NextStep::Fail { error: "login_required", description: "The user must log in" }
        } else {
            NextStep::Login
        };
    }
    if consent_given_now {
        return NextStep::IssueCode;
    }
    let covered = consented.is_some_and(|c| request.scope().iter().all(|s| c.contains(s)));
    let forced = request.prompt.iter().any(|p| p == "consent");
    if (!client.is_first_party && !covered) || forced {
        return if prompt_none {
            NextStep::Fail { error: "consent_required", description: "The user must consent" }
        } else {
            NextStep::Consent
        };
    }
    NextStep::IssueCode
}
