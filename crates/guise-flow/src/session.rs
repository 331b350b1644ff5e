//! Opening a browser session: the one place a `Session` is built, for a password login
//! and for a redeemed impersonation.

use crate::{FlowContext, FlowError};
use chrono::Duration;
use guise_core::audit::AuditEvent;
use guise_core::ids::{new_secret, new_token_id};
use guise_core::session::Session;
use guise_oidc::grant::hash_secret;

/// Who really stands behind an impersonation session, and for how long it may last.
#[derive(Debug, Clone)]
pub struct Impersonated {
    pub impersonator_id: String,
    pub reason: Option<String>,
    pub minted_by: Option<String>,
    /// The session's whole lifetime (the idle limit still applies within it).
    pub lifetime: Duration,
}

/// The browser that asked.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A session for `user_id` as of `ctx.now`, with its cookie's secret; `event` (built
/// from the session's `sid`) is committed with it.
pub fn open(
    ctx: &FlowContext<'_>,
    user_id: &str,
    browser: Browser,
    impersonated: Option<Impersonated>,
    event: impl FnOnce(&Session) -> AuditEvent,
) -> Result<(String, Session), FlowError> {
    let now = ctx.now;
    let lifetimes = ctx.policies.sessions;
    let absolute = impersonated.as_ref().map_or(lifetimes.absolute, |i| i.lifetime);
    let (impersonator_id, impersonation_reason, impersonation_minted_by) = match impersonated {
        Some(i) => (Some(i.impersonator_id), i.reason, i.minted_by),
        None => (None, None, None),
    };
    let session = Session {
        sid: new_token_id(),
        user_id: user_id.to_owned(),
        created_at: now,
        auth_time: now,
        last_seen: now,
        idle_expires_at: now + absolute.min(lifetimes.idle),
        absolute_expires_at: now + absolute,
        source_ip: browser.source_ip,
        user_agent: browser.user_agent,
        ended_at: None,
        impersonator_id,
        impersonation_reason,
        impersonation_minted_by,
    };
    let cookie = new_secret();
    let event = event(&session);
    ctx.store.create_session(&hash_secret(&cookie), session.clone(), event)?;
    Ok((cookie, session))
}
