//! What kind of "no" a rule gives. Each domain refusal (`impersonation::Refusal`,
//! `act_as::ActAsRefusal`, a failed redemption) names its kind; only the HTTP layer
//! (`guise-server`'s `error.rs`) turns a kind into a status code.

/// The kind of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is wrong (a missing or malformed parameter).
    Invalid,
    /// The credential presented proves nothing (a bad or replayed URL).
    Unauthenticated,
    /// Someone is named, but the rules do not allow it.
    Forbidden,
    /// The user the request is about does not exist.
    UnknownUser,
}

impl RefusalKind {
    /// The audit `reason` recorded for a refusal of this kind.
    pub fn reason(self) -> &'static str {
        match self {
            RefusalKind::Invalid => "invalid_request",
            RefusalKind::Unauthenticated => "unauthenticated",
            RefusalKind::Forbidden => "forbidden",
            RefusalKind::UnknownUser => "unknown_user",
        }
    }
}
