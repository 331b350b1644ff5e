//! RP-initiated logout (OIDC RP-Initiated Logout 1.0): whether a logout request may end
//! the browser's session and where it may return. A logout request is a cross-site
//! request anyone can make, so it ends the session only when it is known to come from
//! the user (the confirmation page's form) or from the session's own client (an
//! `id_token_hint` issued for this very session).

use crate::authorization::{current_session, end_cookie_session};
use crate::{FlowContext, FlowError};
use guise_core::ids::new_secret;
use guise_core::refusal::RefusalKind;
use guise_core::store::found;
use guise_oidc::keys::KeyRing;
use guise_oidc::logout::verify_id_token_hint;

/// A logout request's parameters (query or form).
#[derive(Debug, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub confirmation: Confirmation,
}

/// Whether the request was confirmed by the user on the confirmation page (the server
/// checks the form's CSRF field against its double-submit cookie).
#[derive(Debug, Default)]
pub enum Confirmation {
    /// No CSRF field: not the confirmation form.
    #[default]
    Absent,
    Valid,
    Invalid,
}

/// What the browser is answered.
#[derive(Debug)]
pub enum LogoutOutcome {
    Redirect(String),
    LoggedOut,
    /// The session stays; the user is asked (with this CSRF token).
    Confirm {
        csrf: String,
        client_name: Option<String>,
        client_id: Option<String>,
        /// The validated `post_logout_redirect_uri` and its `state`.
        redirect: Option<(String, Option<String>)>,
    },
}

/// Decide a logout request and, when it may, end the session of `cookie`.
pub fn rp_initiated(
    ctx: &FlowContext<'_>,
    keys: &KeyRing,
    request: LogoutRequest,
    cookie: Option<&str>,
    source_ip: Option<String>,
) -> Result<LogoutOutcome, FlowError> {
    let invalid = |message: &str| FlowError::refused(RefusalKind::Invalid, message);
    let hint = match request.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(token) => Some(
            verify_id_token_hint(keys, &ctx.settings.issuer, token)
                .ok_or_else(|| invalid("The id_token_hint is not a valid ID token from this issuer"))?,
        ),
        None => None,
    };
    let client_id = match (&hint, request.client_id.as_deref().filter(|c| !c.is_empty())) {
        (Some(h), Some(id)) if h.client_id != id => return Err(invalid("client_id does not match the id_token_hint")),
        (Some(h), _) => Some(h.client_id.clone()),
        (None, id) => id.map(str::to_owned),
    };
    let client = match &client_id {
        None => None,
        Some(id) => Some(found(ctx.store.client_by_id(id))?.ok_or_else(|| invalid("Unknown client"))?),
    };
    // Checked before anything happens: the redirect must be registered for the client.
    let redirect = match request.post_logout_redirect_uri.filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let client =
                client.as_ref().ok_or_else(|| invalid("post_logout_redirect_uri needs id_token_hint or client_id"))?;
            if !client.is_registered_logout_url(&uri) {
                return Err(invalid("post_logout_redirect_uri is not an allowed logout URL of the client"));
            }
            let mut url = url::Url::parse(&uri).map_err(|_| invalid("invalid post_logout_redirect_uri"))?;
            if let Some(state) = &request.state {
                url.query_pairs_mut().append_pair("state", state);
            }
            Some((uri, request.state, url.to_string()))
        }
    };

    if let Some(session) = current_session(ctx, cookie)? {
        let hinted = hint.as_ref().is_some_and(|h| h.names_session(&session));
        match request.confirmation {
            _ if hinted => {}
            Confirmation::Valid => {}
            Confirmation::Invalid => {
                let message = "The form could not be verified (CSRF). Reload the page and try again.";
                return Err(FlowError::refused(RefusalKind::Forbidden, message));
            }
            Confirmation::Absent => {
                return Ok(LogoutOutcome::Confirm {
                    csrf: new_secret(),
                    client_name: client.as_ref().map(|c| c.name.clone()),
                    client_id,
                    redirect: redirect.map(|(uri, state, _)| (uri, state)),
                });
            }
        }
        end_cookie_session(ctx, cookie, client_id, source_ip, "Logged out")?;
    }
    // Without a live session there is nothing to end: only the (registered) redirect.
    Ok(match redirect {
        Some((_, _, location)) => LogoutOutcome::Redirect(location),
        None => LogoutOutcome::LoggedOut,
    })
}
