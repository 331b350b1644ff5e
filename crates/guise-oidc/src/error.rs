//! OAuth 2.0 errors with the codes of RFC 6749 §5.2 and friends. Descriptions are safe
//! to show to clients: they never carry secrets or internal failure details.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    /// RFC 8693 §2.2.2: the requested audience or resource is not acceptable.
    InvalidTarget,
    /// The server failed; the description is generic.
    ServerError,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::AccessDenied => "access_denied",
            OAuthErrorCode::InvalidTarget => "invalid_target",
            OAuthErrorCode::ServerError => "server_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    pub fn invalid_client() -> Self {
        Self::new(OAuthErrorCode::InvalidClient, "Client authentication failed")
    }

    pub fn server_error() -> Self {
        Self::new(OAuthErrorCode::ServerError, "The server could not complete the request")
    }
}

impl From<guise_core::StoreError> for OAuthError {
    fn from(e: guise_core::StoreError) -> Self {
        tracing::error!(error = %e, "storage failure in an OAuth flow");
        OAuthError::server_error()
    }
}
