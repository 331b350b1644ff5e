//! The one error of every flow.

use guise_core::StoreError;
use guise_core::act_as::ActAsRefusal;
use guise_core::refusal::RefusalKind;

/// Why a flow did not produce its outcome. A refusal is the rules saying no (audited by
/// the flow before it returns); everything else is a fault the caller logs and answers
/// generically.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The store failed: a server error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The rules refuse: `message` is safe to show to the caller.
    #[error("{message}")]
    Refused { kind: RefusalKind, message: String },
    /// Acting as a user is refused (audited): the API names these refusals its own way.
    #[error("{0}")]
    ActAsRefused(ActAsRefusal),
    /// A client's registration cannot serve the flow (no callback, settings that no
    /// longer parse, an unusable registered URL): safe to show, the administrator's to fix.
    #[error("{0}")]
    Misconfigured(String),
    /// guise itself cannot do it now (no signing certificate yet, signing failed).
    #[error("{0}")]
    Internal(String),
}

impl FlowError {
    pub fn refused(kind: RefusalKind, message: impl Into<String>) -> Self {
        FlowError::Refused { kind, message: message.into() }
    }
}

impl From<guise_core::impersonation::Refusal> for FlowError {
    fn from(r: guise_core::impersonation::Refusal) -> Self {
        FlowError::refused(r.kind(), r.to_string())
    }
}

impl From<guise_oidc::chain::ChainError> for FlowError {
    fn from(e: guise_oidc::chain::ChainError) -> Self {
        match e {
            guise_oidc::chain::ChainError::Refused(r) => r.into(),
            guise_oidc::chain::ChainError::Store(e) => e.into(),
        }
    }
}
