//! Acting on behalf of a user on an API call (Canvas `as_user_id`, Box `As-User`,
//! Dynamics `MSCRMCallerID`): naming the target, and the rules — the call runs with the
//! intersection of the caller's and the target's permissions.

use crate::permission::scopes;
use crate::refusal::RefusalKind;
use std::collections::BTreeSet;

/// How the target was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    UserId(String),
    /// `external_id:VALUE` (alias `sis_user_id:VALUE`).
    ExternalId(String),
}

impl TargetRef {
    pub fn parse(spec: &str) -> Option<Self> {
        let spec = spec.trim();
        if spec.is_empty() || spec.len() > 300 {
            return None;
        }
        for prefix in ["external_id:", "sis_user_id:"] {
            if let Some(value) = spec.strip_prefix(prefix) {
                return (!value.is_empty()).then(|| TargetRef::ExternalId(value.to_owned()));
            }
        }
        Some(TargetRef::UserId(spec.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActAsRefusal {
    #[error("as_user_id, As-User and MSCRMCallerID name different users")]
    ConflictingSpellings,
    #[error("The acting-as target is not a valid user reference")]
    InvalidTarget,
    #[error("Acting as a user requires the impersonate:users scope")]
    MissingScope,
    #[error("The calling client is not enabled to act as users (allow_act_as)")]
    ClientNotEnabled,
    #[error("The user does not exist")]
    UnknownTarget,
    #[error("Blocked users cannot be acted as")]
    BlockedTarget,
    #[error("The caller lacks permissions the target holds: {0}")]
    WeakerCaller(String),
}

impl ActAsRefusal {
    pub fn kind(&self) -> RefusalKind {
        match self {
            ActAsRefusal::ConflictingSpellings | ActAsRefusal::InvalidTarget => RefusalKind::Invalid,
            ActAsRefusal::UnknownTarget => RefusalKind::UnknownUser,
            _ => RefusalKind::Forbidden,
        }
    }

    pub fn reason(&self) -> &'static str {
        self.kind().reason()
    }
}

/// Reduce the three spellings to one target spec; two that disagree are an error.
pub fn single_target<'a>(
    spellings: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<Option<&'a str>, ActAsRefusal> {
    let mut found: Option<&str> = None;
    for value in spellings.into_iter().flatten() {
        match found {
            Some(existing) if existing != value => return Err(ActAsRefusal::ConflictingSpellings),
            _ => found = Some(value),
        }
    }
    Ok(found)
}

/// The caller's scopes checked against the target's permissions on the same API: the
/// caller must hold every one of them; the call gets the intersection.
pub fn effective_scopes(
    caller_scopes: &BTreeSet<String>,
    target_permissions: &BTreeSet<String>,
) -> Result<BTreeSet<String>, ActAsRefusal> {
    if !caller_scopes.contains(scopes::IMPERSONATE_USERS) {
        return Err(ActAsRefusal::MissingScope);
    }
    let missing: Vec<&str> = target_permissions.difference(caller_scopes).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(ActAsRefusal::WeakerCaller(missing.join(", ")));
    }
    Ok(caller_scopes.intersection(target_permissions).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn targets_and_spellings() {
        assert_eq!(TargetRef::parse("guise|abc"), Some(TargetRef::UserId("guise|abc".into())));
        assert_eq!(TargetRef::parse("sis_user_id:S-1"), Some(TargetRef::ExternalId("S-1".into())));
        assert_eq!(TargetRef::parse("external_id:"), None);
        assert_eq!(single_target([Some("a"), None, Some("a")]), Ok(Some("a")));
        assert_eq!(single_target([Some("a"), Some("b"), None]), Err(ActAsRefusal::ConflictingSpellings));
        assert_eq!(single_target([None, None, None]), Ok(None));
    }

    #[test]
    fn intersection_and_no_escalation() {
        let caller = set(&["impersonate:users", "read:users", "update:users"]);
        assert_eq!(effective_scopes(&caller, &set(&["read:users"])), Ok(set(&["read:users"])));
        assert_eq!(effective_scopes(&caller, &set(&[])), Ok(set(&[])));
        assert_eq!(
            effective_scopes(&caller, &set(&["delete:users"])),
            Err(ActAsRefusal::WeakerCaller("delete:users".into()))
        );
        assert_eq!(effective_scopes(&set(&["read:users"]), &set(&[])), Err(ActAsRefusal::MissingScope));
    }
}
