//! `ApiError`: every Management API failure as Auth0's JSON
//! `{statusCode, error, message, errorCode}`. Server faults are logged with their cause
//! and answered with a generic body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use guise_core::StoreError;
use guise_core::refusal::RefusalKind;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub error_code: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), error_code }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query_string", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }

    pub fn insufficient_scope(expected: &[&str]) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("Insufficient scope, expected any of: {}", expected.join(",")),
        )
    }

    pub fn not_found(what: &str) -> Self {
        // Auth0 names the kind for users (`inexistent_user`), which SDKs test for.
        let code = if what == "user" { "inexistent_user" } else { "inexistent_resource" };
        Self::new(StatusCode::NOT_FOUND, code, format!("The {what} does not exist."))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A server fault: log the cause, answer generically.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error")
    }

    /// Map a store error, naming the kind of resource for 404s.
    pub fn from_store(e: StoreError, what: &str) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(what),
            StoreError::Conflict(message) => Self::conflict(message),
            StoreError::InvalidReference(message) => Self::new(StatusCode::BAD_REQUEST, "invalid_body", message),
            StoreError::Backend(_) => Self::internal(&e),
        }
    }
}

/// The one place a domain refusal's kind becomes an HTTP status.
pub fn status_of(kind: RefusalKind) -> StatusCode {
    match kind {
        RefusalKind::Invalid => StatusCode::BAD_REQUEST,
        RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        RefusalKind::Forbidden => StatusCode::FORBIDDEN,
        RefusalKind::UnknownUser => StatusCode::NOT_FOUND,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.error_code, self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_store(e, "resource")
    }
}

/// A flow's error: a refusal by its kind (`status_of`; acting-as refusals with their own
/// codes), a client misconfiguration as a `400` naming it, a store or internal fault as a
/// logged, generic `500`.
impl From<guise_flow::FlowError> for ApiError {
    fn from(e: guise_flow::FlowError) -> Self {
        use guise_flow::FlowError;
        match e {
            FlowError::Store(e) => e.into(),
            FlowError::Refused { kind, message } => {
                let code = match kind {
                    RefusalKind::Invalid => "invalid_body",
                    RefusalKind::Unauthenticated => "invalid_token",
                    RefusalKind::Forbidden => "insufficient_permissions",
                    RefusalKind::UnknownUser => "inexistent_user",
                };
                Self::new(status_of(kind), code, message)
            }
            FlowError::ActAsRefused(refusal) => {
                let code = match refusal.kind() {
                    RefusalKind::Invalid => "invalid_act_as",
                    RefusalKind::UnknownUser => "inexistent_user",
                    RefusalKind::Forbidden | RefusalKind::Unauthenticated => "act_as_forbidden",
                };
                Self::new(status_of(refusal.kind()), code, refusal.to_string())
            }
            FlowError::Misconfigured(message) => {
                tracing::warn!(%message, "a client's registration cannot serve the flow");
                Self::bad_request(message)
            }
            FlowError::Internal(cause) => Self::internal(&cause),
        }
    }
}

impl From<guise_core::user::UserValidationError> for ApiError {
    fn from(e: guise_core::user::UserValidationError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<guise_core::client::ClientValidationError> for ApiError {
    fn from(e: guise_core::client::ClientValidationError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            status_code: self.status.as_u16(),
            error: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            error_code: self.error_code,
        })
    }
}

/// The body of every Management API error, in Auth0's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// The HTTP reason phrase.
    pub error: &'a str,
    pub message: &'a str,
    /// A stable machine-readable code, e.g. `inexistent_user`, `insufficient_scope`.
    #[serde(rename = "errorCode")]
    pub error_code: &'a str,
}
