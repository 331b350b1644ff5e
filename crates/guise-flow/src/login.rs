//! Password login with lockout: one throttle counter per account (whichever identifier
//! was typed; per identifier for unknown ones) and one per source address. A locked
//! counter refuses before any password is checked; an unknown identifier costs a full
//! password check all the same; every failure is audited, a new lock as an event of its
//! own; a success clears the account's counter and opens the session.

use crate::session::{self, Browser};
use crate::{FlowContext, FlowError};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::session::Session;
use guise_core::store::found;
use guise_core::throttle::{ThrottleCounter, account_key, address_key};

/// A valid argon2id hash of a random password: verifying against it when the account
/// does not exist makes unknown identifiers cost the same as wrong passwords.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0zrAKp6Eu1Z/P3ZCNzOtHhbs0vPhPcOV3u8SPcRbgUA";

/// A login attempt at `client_id`'s login page.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub client_id: &'a str,
    /// An email (it has an `@`; usernames never do) or a username, as typed.
    pub identifier: &'a str,
    pub password: &'a str,
    pub browser: Browser,
}

/// How an attempt ended. `identifier` is the one the page shows again.
#[derive(Debug)]
pub enum LoginOutcome {
    LoggedIn {
        cookie: String,
        session: Box<Session>,
    },
    /// Wrong password, unknown identifier or blocked user: one answer for all.
    Failed {
        identifier: String,
    },
    /// The account or the address is locked out for now.
    LockedOut {
        identifier: String,
    },
}

/// Check `attempt`; `verify_password(password, phc)` is the password check (the server
/// runs argon2 behind its gate).
pub fn authenticate(
    ctx: &FlowContext<'_>,
    attempt: Attempt<'_>,
    verify_password: &dyn Fn(&str, &str) -> bool,
) -> Result<LoginOutcome, FlowError> {
    let (store, now) = (ctx.store, ctx.now);
    let identifier = attempt.identifier.trim().chars().take(254).collect::<String>();
    let source_ip = attempt.browser.source_ip.clone();
    let event = |kind: &str, description: &str| {
        AuditEvent::new(kind, now, Actor::System, description)
            .client(attempt.client_id.to_owned())
            .source_ip(source_ip.clone())
    };
    let lookup =
        if identifier.contains('@') { store.user_by_email(&identifier) } else { store.user_by_username(&identifier) };
    let user = found(lookup)?;
    let account = user.as_ref().map_or_else(|| identifier.clone(), |u| u.email.clone());
    let keys = [account_key(&account), address_key(source_ip.as_deref().unwrap_or("unknown"))];
    let mut counters = Vec::with_capacity(2);
    for key in &keys {
        counters.push(store.throttle_counter(key)?.unwrap_or_else(|| ThrottleCounter::fresh(key, now)));
    }
    if counters.iter().any(|c| c.is_locked(now)) {
        store.append(vec![
            event(event_type::FAILED_LOGIN, "Login refused: locked out")
                .details(serde_json::json!({ "email": identifier, "reason": "locked" })),
        ])?;
        return Ok(LoginOutcome::LockedOut { identifier });
    }

    let stored_hash = match &user {
        Some(u) => store.password_hash(&u.user_id)?,
        None => None,
    };
    let password_ok = match stored_hash {
        Some(phc) => verify_password(attempt.password, &phc),
        None => {
            // Spend the same time as a real check, then fail.
            let _ = verify_password(attempt.password, DUMMY_HASH);
            false
        }
    };
    match user {
        Some(user) if password_ok && !user.blocked => {
            store.clear_throttle_counter(&keys[0])?;
            let (cookie, session) = session::open(ctx, &user.user_id, attempt.browser, None, |session| {
                event(event_type::LOGIN, "Successful login")
                    .subject(user.user_id.clone())
                    .details(serde_json::json!({ "sid": session.sid }))
            })?;
            store.record_login(&user.user_id, now, source_ip.as_deref())?;
            Ok(LoginOutcome::LoggedIn { cookie, session: Box::new(session) })
        }
        user => {
            let (kind, reason) = match &user {
                Some(u) if u.blocked && password_ok => (event_type::BLOCKED_USER_LOGIN, "blocked"),
                Some(_) => (event_type::FAILED_LOGIN, "wrong password"),
                None => (event_type::FAILED_LOGIN, "unknown email"),
            };
            let subject = user.as_ref().map(|u| u.user_id.clone());
            let mut failed =
                event(kind, "Failed login").details(serde_json::json!({ "email": identifier, "reason": reason }));
            failed.subject = subject.clone();
            let mut events = vec![failed];
            for counter in &mut counters {
                if counter.record_failure(now, &ctx.policies.throttle) {
                    let (kind, what) = if counter.key.starts_with("account:") {
                        (event_type::ACCOUNT_LOCKED, "Account locked after repeated failed logins")
                    } else {
                        (event_type::ADDRESS_LOCKED, "Source address locked after repeated failed logins")
                    };
                    let mut locked = event(kind, what)
                        .details(serde_json::json!({ "email": identifier, "until": counter.locked_until }));
                    locked.subject = subject.clone();
                    events.push(locked);
                }
                store.save_throttle_counter(counter)?;
            }
            store.append(events)?;
            Ok(LoginOutcome::Failed { identifier })
        }
    }
}
