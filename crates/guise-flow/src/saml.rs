//! SAML requests, from the client's id to the browser's next step: the client and its
//! settings looked up, then single sign-on (`guise_saml::sso`, the shared login flow) or
//! single logout (`guise_saml::slo`, the replay key redeemed on any node, the session ended).

use crate::authorization::{FlowOutcome, SignOutOutcome, end_session, session_behind, start};
use crate::{FlowContext, FlowError};
use guise_core::client::Client;
use guise_core::session::Session;
use guise_core::store::found;
use guise_saml::response::STATUS_REQUESTER;
use guise_saml::settings::{SamlSettings, from_addons};
use guise_saml::slo::{CheckedLogout, LogoutRefusal, check_logout, is_for_session, response_url};
use guise_saml::sso::{Binding, SamlParams, SsoRefusal, pending_sso};

/// The client and its SAML settings, or the error page saying why not.
pub fn saml_client(ctx: &FlowContext<'_>, id: &str) -> Result<Result<(Client, SamlSettings), FlowOutcome>, FlowError> {
    let Some(client) = found(ctx.store.client_by_id(id))? else {
        return Ok(Err(FlowOutcome::invalid_request("Unknown client")));
    };
    Ok(match from_addons(&client.addons) {
        Ok(Some(settings)) => Ok((client, settings)),
        Ok(None) => Err(FlowOutcome::invalid_request("SAML is not enabled for this client")),
        Err(e) => Err(FlowOutcome::invalid_request(e.to_string())),
    })
}

/// Begin (or refuse) single sign-on to `client_id` for the browser with `cookie`.
pub fn sign_in(
    ctx: &FlowContext<'_>,
    client_id: &str,
    params: &SamlParams,
    binding: &Binding,
    cookie: Option<&str>,
) -> Result<FlowOutcome, FlowError> {
    let (client, settings) = match saml_client(ctx, client_id)? {
        Ok(found) => found,
        Err(outcome) => return Ok(outcome),
    };
    match pending_sso(&client, &settings, params, binding) {
        Ok(pending) => start(ctx, pending, cookie),
        Err(SsoRefusal::Page(description)) => Ok(FlowOutcome::invalid_request(description)),
        Err(SsoRefusal::ToAcs { pending, status, message }) => {
            // Answered to the registered ACS, so the operator may be the only one to see it.
            tracing::warn!(client_id = %client.client_id, %message, "SAML AuthnRequest refused");
            Ok(FlowOutcome::saml_error(ctx, &pending, STATUS_REQUESTER, status, message))
        }
    }
}

/// Single logout at `client_id` (`raw_query` is what a signature covers); a refused
/// logout ends nothing.
pub fn logout(
    ctx: &FlowContext<'_>,
    client_id: &str,
    params: &SamlParams,
    raw_query: &str,
    cookie: Option<&str>,
    source_ip: Option<String>,
) -> Result<SignOutOutcome, FlowError> {
    let refused =
        |refusal: LogoutRefusal| Ok(SignOutOutcome::Continue(FlowOutcome::invalid_request(refusal.to_string())));
    let (client, settings) = match saml_client(ctx, client_id)? {
        Ok(found) => found,
        Err(outcome) => return Ok(SignOutOutcome::Continue(outcome)),
    };
    let checked = match check_logout(&client.client_id, &settings, params, raw_query, ctx.now) {
        Ok(checked) => checked,
        Err(refusal) => return refused(refusal),
    };
    // The answer is built before the request is spent, so a misconfigured client does not
    // burn a LogoutRequest that would succeed once it is fixed.
    let relay_state = params.relay_state.as_deref();
    let reply = response_url(&ctx.settings.issuer, &client, &settings, &checked, relay_state, ctx.now)
        .map_err(|e| FlowError::Misconfigured(format!("The client's logout callback is unusable: {e}")))?;
    if let Some((key, until)) = &checked.replay
        && !ctx.store.redeem_once(key, ctx.now, *until)?
    {
        return refused(LogoutRefusal::Replayed);
    }
    let Some(session) = session_behind(ctx, cookie)?.filter(|s| s.ended_at.is_none()) else {
        return Ok(SignOutOutcome::SignedOut { reply });
    };
    if !is_for_session(&checked, &session.sid) {
        // The request names other sessions. Those of this browser's user are the same
        // principal logging out (it signed in again since: ForceAuthn, step-up), so they
        // end with this one; one of another user's (an earlier sign-in in this browser,
        // or someone else's request) leaves this session alone.
        let named = named_sessions(ctx, &checked)?;
        let same_user: Vec<&Session> = named.iter().filter(|s| s.user_id == session.user_id).collect();
        if same_user.is_empty() {
            tracing::info!(client_id = %client.client_id, "SAML LogoutRequest for another user's session: nothing ended");
            return Ok(SignOutOutcome::Continue(match reply {
                Some(url) => FlowOutcome::Page(url),
                None => FlowOutcome::invalid_request("This logout is for another sign-in; you are still signed in"),
            }));
        }
        // Only a signed request ends a session other than the browser's own (session ids
        // also reach OIDC relying parties as `sid`).
        if checked.replay.is_some() {
            for other in same_user.into_iter().filter(|s| s.ended_at.is_none()) {
                let (client_id, source_ip) = (Some(client.client_id.clone()), source_ip.clone());
                end_session(ctx, other, client_id, source_ip, "Logged out (SAML)")?;
            }
        }
    }
    end_session(ctx, &session, Some(client.client_id), source_ip, "Logged out (SAML)")?;
    Ok(SignOutOutcome::SignedOut { reply })
}

/// The most sessions one LogoutRequest's `SessionIndex` values are looked up for.
const MAX_NAMED_SESSIONS: usize = 16;

/// The sessions (ended or not) a LogoutRequest's `SessionIndex` values name.
fn named_sessions(ctx: &FlowContext<'_>, checked: &CheckedLogout) -> Result<Vec<Session>, FlowError> {
    let indexes = checked.request.iter().flat_map(|r| &r.session_indexes).take(MAX_NAMED_SESSIONS);
    let mut named = Vec::new();
    for sid in indexes {
        named.extend(found(ctx.store.session_by_sid(sid))?);
    }
    Ok(named)
}
