//! The authority ceiling, the rule under every other rule: an actor may only confer, or
//! act with, permissions it holds itself. An action has a chain — the token holder (a
//! client or a user), the named impersonator, the acted-as user — and its effective
//! permissions are the intersection of the chain. Conferring or exercising a set of
//! permissions needs every link of the chain to hold all of it.
//!
//! A token speaks for the API it was issued for: a link made from a token is measured on
//! that audience alone (a Management API token confers or exercises Management API
//! permissions, never an application's). A person — the impersonator, whose
//! impersonation login hands over the target's full powers — is measured on everything.

use crate::permission::{Permission, PermissionSet};
use std::fmt;

/// The place a party has in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Whoever holds the token: a machine client or the user it was issued to.
    TokenHolder,
    /// The person an impersonation is minted for and recorded against.
    Impersonator,
    /// The user a Management API call runs as (`as_user_id`, `As-User`, `MSCRMCallerID`).
    ActedAs,
}

/// Who a link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Client(String),
    User(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Client(id) => write!(f, "client {id}"),
            Principal::User(id) => write!(f, "user {id}"),
        }
    }
}

/// Which permissions a link answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every API: a person.
    Everything,
    /// One API: a token, which speaks for its audience alone.
    Audience(String),
}

/// One party of a chain and the permissions it holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    pub principal: Principal,
    pub holds: PermissionSet,
    pub reach: Reach,
}

impl Link {
    /// A party measured on everything it holds.
    pub fn new(kind: LinkKind, principal: Principal, holds: PermissionSet) -> Self {
        Self { kind, principal, holds, reach: Reach::Everything }
    }

    /// A token's holder (or a party named on a token's call), measured on the token's
    /// audience alone.
    pub fn on_audience(kind: LinkKind, principal: Principal, audience: &str, holds: &PermissionSet) -> Self {
        Self { kind, principal, holds: holds.only(audience), reach: Reach::Audience(audience.to_owned()) }
    }

    /// The part of `needed` this link answers for.
    fn answers_for(&self, needed: &PermissionSet) -> PermissionSet {
        match &self.reach {
            Reach::Everything => needed.clone(),
            Reach::Audience(audience) => needed.only(audience),
        }
    }
}

/// A link that lacks part of what an action needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} lacks {}", names(.missing))]
pub struct Shortfall {
    pub kind: LinkKind,
    pub principal: Principal,
    pub missing: Vec<Permission>,
}

impl Shortfall {
    /// The missing permission names, comma-separated, for messages.
    pub fn missing_names(&self) -> String {
        names(&self.missing)
    }
}

fn names(permissions: &[Permission]) -> String {
    permissions.iter().map(|p| p.permission_name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The parties behind one action, from the token holder outwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    links: Vec<Link>,
}

impl Chain {
    /// A chain of one: the token holder acting for itself.
    pub fn of(holder: Link) -> Self {
        Self { links: vec![holder] }
    }

    /// The same chain with one more party behind it.
    pub fn then(mut self, link: Link) -> Self {
        self.links.push(link);
        self
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// What the action may do on `audience`: the permissions there that every link holds.
    pub fn effective_on(&self, audience: &str) -> PermissionSet {
        let mut links = self.links.iter();
        let first = links.next().map(|l| l.holds.only(audience)).unwrap_or_default();
        links.fold(first, |acc, link| acc.intersection(&link.holds))
    }

    /// Confer or exercise `needed`: every link must hold all of it. The first link that
    /// does not is named, with what it lacks.
    pub fn covers(&self, needed: &PermissionSet) -> Result<(), Shortfall> {
        for link in &self.links {
            let answers_for = link.answers_for(needed);
            let missing: Vec<Permission> = link.holds.missing_from(&answers_for).cloned().collect();
            if !missing.is_empty() {
                return Err(Shortfall { kind: link.kind, principal: link.principal.clone(), missing });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(names: &[&str]) -> PermissionSet {
        PermissionSet::new(
            names.iter().map(|n| Permission { resource_server_identifier: "api".into(), permission_name: (*n).into() }),
        )
    }

    #[test]
    fn the_chain_acts_with_the_intersection() {
        let chain = Chain::of(Link::new(LinkKind::TokenHolder, Principal::Client("c".into()), perms(&["a", "b"])))
            .then(Link::new(LinkKind::Impersonator, Principal::User("u".into()), perms(&["b", "c"])));
        assert_eq!(chain.effective_on("api"), perms(&["b"]));
    }

    #[test]
    fn a_token_answers_for_its_audience_only() {
        let app = PermissionSet::on("https://shop/", ["read:orders"]);
        let holder = Link::on_audience(LinkKind::TokenHolder, Principal::Client("c".into()), "api", &perms(&["a"]));
        let token = Chain::of(holder);
        assert_eq!(token.covers(&app), Ok(()));
        assert!(token.covers(&app.union(&perms(&["delete:users"]))).is_err());
        let person = Chain::of(Link::new(LinkKind::Impersonator, Principal::User("u".into()), perms(&["a"])));
        assert!(person.covers(&app).is_err());
    }

    #[test]
    fn conferring_needs_every_link_and_names_the_first_short_one() {
        let chain = Chain::of(Link::new(LinkKind::TokenHolder, Principal::Client("c".into()), perms(&["a"])))
            .then(Link::new(LinkKind::Impersonator, Principal::User("admin".into()), perms(&["a", "b"])));
        assert_eq!(chain.covers(&perms(&["a"])), Ok(()));
        let short = chain.covers(&perms(&["a", "b"])).err();
        assert_eq!(short.as_ref().map(|s| s.kind), Some(LinkKind::TokenHolder));
        assert_eq!(short.map(|s| s.to_string()), Some("client c lacks b".to_owned()));
        assert_eq!(chain.covers(&perms(&[])), Ok(()));
    }
}
