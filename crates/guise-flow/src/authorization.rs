//! Continuing an authorization after login, for OIDC, SAML and WS-Federation alike: the
//! pending request (kept in the database, so any node can continue it), the browser
//! session behind the cookie, the decision (login, consent, or the answer) and the
//! answer — a code, a SAML Response or a WS-Fed sign-in response — or the request's
//! error, told to the client by its own protocol. Ending the session behind a cookie.

use crate::assertion::{self, Relying};
use crate::delivery::{Delivery, issue_code};
use crate::{FlowContext, FlowError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::{
    AuthorizationRequestRecord, PendingAuthorization, PendingOidc, PendingProtocol, PendingSaml,
};
use guise_core::ids::new_secret;
use guise_core::impersonation::{Refusal, impersonation_may_reach};
use guise_core::session::Session;
use guise_core::store::found;
use guise_oidc::api_access::{ClientCap, NOT_AUTHORIZED, client_cap};
use guise_oidc::authorize::{AuthorizeError, AuthorizeParams, NextStep, next_step, validate};
use guise_oidc::grant::hash_secret;
use guise_saml::response::{STATUS_NO_PASSIVE, STATUS_REQUEST_DENIED, STATUS_RESPONDER};

/// Where the browser goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowOutcome {
    /// A page of guise's (login, consent).
    Page(String),
    /// Back to the client with these parameters.
    Deliver { redirect_uri: String, response_mode: String, params: Vec<(&'static str, String)> },
    /// A request that can no longer be continued.
    ErrorPage { error: String, description: String },
}

impl FlowOutcome {
    /// An error page for a request that cannot be continued or trusted.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        FlowOutcome::ErrorPage { error: "invalid_request".into(), description: description.into() }
    }

    /// The request's error, told to the client by its own protocol.
    pub fn error(ctx: &FlowContext<'_>, request: &PendingAuthorization, error: &str, description: &str) -> Self {
        match &request.protocol {
            // WS-Federation has no error response: the user sees the error here.
            PendingProtocol::Wsfed(_) => {
                FlowOutcome::ErrorPage { error: error.to_owned(), description: description.to_owned() }
            }
            PendingProtocol::Saml(saml) => {
                let second = if error == "login_required" { STATUS_NO_PASSIVE } else { STATUS_REQUEST_DENIED };
                Self::saml_error(ctx, saml, STATUS_RESPONDER, second, description)
            }
            PendingProtocol::Oidc(oidc) => Self::to_redirect_uri(
                ctx,
                oidc,
                vec![("error", error.to_owned()), ("error_description", description.to_owned())],
            ),
        }
    }

    /// An OIDC answer to the request's redirect URI: `params`, then `state` and `iss`.
    fn to_redirect_uri(ctx: &FlowContext<'_>, request: &PendingOidc, mut params: Vec<(&'static str, String)>) -> Self {
        if let Some(state) = &request.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", ctx.settings.issuer.clone()));
        FlowOutcome::Deliver {
            redirect_uri: request.redirect_uri.clone(),
            response_mode: request.response_mode.clone(),
            params,
        }
    }

    /// An unsigned SAML error Response (status `top`, then `second`), auto-POSTed to the
    /// request's registered ACS.
    pub fn saml_error(ctx: &FlowContext<'_>, saml: &PendingSaml, top: &str, second: &str, message: &str) -> Self {
        let xml = guise_saml::response::failure(
            &ctx.settings.issuer,
            &saml.acs_url,
            saml.request_id.as_deref(),
            top,
            Some(second),
            message,
            ctx.now,
        );
        FlowOutcome::Deliver {
            redirect_uri: saml.acs_url.clone(),
            response_mode: "form_post".into(),
            params: assertion::saml_post_fields(STANDARD.encode(xml), &saml.relay_state),
        }
    }
}

impl From<Delivery> for FlowOutcome {
    fn from(delivery: Delivery) -> Self {
        match delivery {
            Delivery::Redirect(location) => FlowOutcome::Page(location),
            Delivery::FormPost { action, fields } => {
                FlowOutcome::Deliver { redirect_uri: action, response_mode: "form_post".into(), params: fields }
            }
        }
    }
}

/// The session a cookie's value names, ended or not, if any.
pub(crate) fn session_behind(ctx: &FlowContext<'_>, cookie: Option<&str>) -> Result<Option<Session>, StoreError> {
    match cookie.filter(|v| !v.is_empty() && v.len() <= 128) {
        Some(value) => found(ctx.store.session_by_cookie_hash(&hash_secret(value))),
        None => Ok(None),
    }
}

/// The live session behind a cookie's value, if any; its idle expiry is extended.
pub fn current_session(ctx: &FlowContext<'_>, cookie: Option<&str>) -> Result<Option<Session>, FlowError> {
    let Some(session) = session_behind(ctx, cookie)?.filter(|s| s.is_live(ctx.now)) else { return Ok(None) };
    let idle = session.extended_idle_expiry(ctx.now, ctx.policies.sessions);
    ctx.store.touch_session(&session.sid, ctx.now, idle)?;
    Ok(Some(session))
}

/// A pending request by id; an expired or unknown one ends with an error page.
pub fn load_request(
    ctx: &FlowContext<'_>,
    tx: &str,
) -> Result<Result<AuthorizationRequestRecord, FlowOutcome>, FlowError> {
    let expired = || {
        FlowOutcome::invalid_request(
            "This login request has expired or is unknown. Go back to the application and start again.",
        )
    };
    if tx.is_empty() || tx.len() > 64 {
        return Ok(Err(expired()));
    }
    Ok(found(ctx.store.authorization_request(tx))?.filter(|r| r.expires_at > ctx.now).ok_or_else(expired))
}

/// Keep a validated request while the user logs in or consents.
pub fn begin(ctx: &FlowContext<'_>, request: PendingAuthorization) -> Result<AuthorizationRequestRecord, FlowError> {
    let record = AuthorizationRequestRecord {
        id: new_secret(),
        request,
        csrf_token: new_secret(),
        created_at: ctx.now,
        expires_at: ctx.now + ctx.settings.authorization_request_lifetime,
    };
    ctx.store.save_authorization_request(record.clone())?;
    Ok(record)
}

/// An OIDC authorization request: validated for its client, then started; its error shown,
/// or sent to the redirect URI once that is known to be registered.
pub fn authorize(
    ctx: &FlowContext<'_>,
    params: &AuthorizeParams,
    cookie: Option<&str>,
) -> Result<FlowOutcome, FlowError> {
    let client_id = params.client_id.as_deref().filter(|id| !id.is_empty() && id.len() <= 128);
    let client = client_id.map(|id| found(ctx.store.client_by_id(id))).transpose()?.flatten();
    match validate(params, client.as_ref()) {
        Ok(request) => start(ctx, request, cookie),
        Err(AuthorizeError::Page { error, description }) => Ok(FlowOutcome::ErrorPage { error, description }),
        Err(AuthorizeError::Redirect { redirect_uri, response_mode, state, error, description }) => {
            let request = PendingOidc { redirect_uri, response_mode, state, ..PendingOidc::default() };
            let params = vec![("error", error.to_owned()), ("error_description", description)];
            Ok(FlowOutcome::to_redirect_uri(ctx, &request, params))
        }
    }
}

/// Keep a validated request and continue it with the session behind the browser's cookie.
pub fn start(
    ctx: &FlowContext<'_>,
    request: PendingAuthorization,
    cookie: Option<&str>,
) -> Result<FlowOutcome, FlowError> {
    let record = begin(ctx, request)?;
    let session = current_session(ctx, cookie)?;
    continue_authorization(ctx, &record, session.as_ref(), false)
}

/// The user's own session, which may be asked for and give consent to `record`; else
/// (no session, or an impersonation, which never consents) where the flow goes instead.
pub fn consenting_session(
    ctx: &FlowContext<'_>,
    record: &AuthorizationRequestRecord,
    cookie: Option<&str>,
) -> Result<Result<Session, FlowOutcome>, FlowError> {
    match current_session(ctx, cookie)? {
        Some(session) if session.impersonator_id.is_none() => Ok(Ok(session)),
        session => continue_authorization(ctx, record, session.as_ref(), false).map(Err),
    }
}

/// Decide and act: send to login or consent, or answer the request. An impersonation
/// session is re-checked here, reaches only clients with `allow_impersonation`, and
/// never gives consent.
pub fn continue_authorization(
    ctx: &FlowContext<'_>,
    record: &AuthorizationRequestRecord,
    session: Option<&Session>,
    consent_given_now: bool,
) -> Result<FlowOutcome, FlowError> {
    let (store, now) = (ctx.store, ctx.now);
    let request = &record.request;
    let fail = |error: &str, description: &str| -> Result<FlowOutcome, FlowError> {
        store.delete_authorization_request(&record.id)?;
        Ok(FlowOutcome::error(ctx, request, error, description))
    };
    let Some(client) = found(store.client_by_id(&request.client_id))? else {
        return Ok(FlowOutcome::invalid_request("Unknown client"));
    };
    let consented = match session {
        Some(session) => store.consented_scopes(&session.user_id, &client.client_id)?,
        None => None,
    };
    let audience = if let PendingProtocol::Oidc(oidc) = &request.protocol { oidc.audience.clone() } else { None };
    let audience = audience.unwrap_or_else(|| ctx.settings.userinfo_audience());
    let management = ctx.settings.management_audience();
    if client_cap(store, &client.client_id, &audience, &management)? == ClientCap::NotAuthorized {
        return fail("access_denied", NOT_AUTHORIZED);
    }
    let impersonation = session.filter(|s| s.impersonator_id.is_some());
    // No consent is given during an impersonation, whatever the caller says.
    let consent_given_now = consent_given_now && impersonation.is_none();
    if let Some(session) = impersonation {
        let refusal = if !client.allow_impersonation {
            Some("This application does not accept impersonation sessions".to_owned())
        } else if let Err(r) = recheck_impersonation(ctx, session, &client.client_id)? {
            // Re-checked on every use: a broken chain has just ended the session.
            Some(format!("The impersonation has ended: {r}"))
        } else {
            impersonation_may_reach(&audience, &management).err().map(|r| r.to_string())
        };
        if let Some(description) = refusal {
            return fail("access_denied", &description);
        }
    }
    let step = next_step(request, record.created_at, session, &client, consented.as_deref(), consent_given_now, now);
    let session = match (step, session) {
        (NextStep::Consent, _) if impersonation.is_some() => {
            return fail("consent_required", "Consent cannot be given during impersonation");
        }
        (NextStep::Consent, _) => return Ok(FlowOutcome::Page(format!("/consent?tx={}", record.id))),
        (NextStep::Fail { error, description }, _) => return fail(error, description),
        (NextStep::Login, _) | (NextStep::IssueCode, None) => {
            return Ok(FlowOutcome::Page(format!("/login?tx={}", record.id)));
        }
        (NextStep::IssueCode, Some(session)) => session,
    };
    let outcome = match &request.protocol {
        PendingProtocol::Saml(pending) => {
            let settings = assertion::saml_settings(&client)?;
            assertion::for_login(ctx, &client, Relying::Saml(&settings, pending), session)?.into()
        }
        PendingProtocol::Wsfed(pending) => {
            let settings = assertion::wsfed_settings(&client)?;
            assertion::for_login(ctx, &client, Relying::Wsfed(&settings, pending), session)?.into()
        }
        PendingProtocol::Oidc(oidc) => {
            let code = issue_code(ctx, &client, session, oidc)?;
            FlowOutcome::to_redirect_uri(ctx, oidc, vec![("code", code)])
        }
    };
    store.delete_authorization_request(&record.id)?;
    Ok(outcome)
}

/// Re-check an impersonation session's chain as it is used for `client_id` (ordinary
/// sessions pass); a broken chain ends the session and is audited.
pub fn recheck_impersonation(
    ctx: &FlowContext<'_>,
    session: &Session,
    client_id: &str,
) -> Result<Result<(), Refusal>, StoreError> {
    let management = ctx.settings.management_audience();
    guise_oidc::chain::recheck(ctx.chain_stores(), ctx.store, session, client_id, &management, ctx.now)
}

/// Where the browser goes after a request that may end the session (a WS-Fed request, a
/// SAML logout).
#[derive(Debug, Clone, PartialEq)]
pub enum SignOutOutcome {
    /// Nothing ended: a sign-in continues (login, consent, the answer), or an error page.
    Continue(FlowOutcome),
    /// The session has ended (the cookie goes): to `reply` (a registered URL), or else a
    /// logged-out page.
    SignedOut { reply: Option<String> },
}

/// Log out: end the session behind a cookie's value (revoking its tokens), audited.
pub fn end_cookie_session(
    ctx: &FlowContext<'_>,
    cookie: Option<&str>,
    client_id: Option<String>,
    source_ip: Option<String>,
    description: &str,
) -> Result<(), FlowError> {
    let Some(session) = session_behind(ctx, cookie)?.filter(|s| s.ended_at.is_none()) else { return Ok(()) };
    end_session(ctx, &session, client_id, source_ip, description)
}

/// Log out of `session` (revoking its tokens), audited.
pub(crate) fn end_session(
    ctx: &FlowContext<'_>,
    session: &Session,
    client_id: Option<String>,
    source_ip: Option<String>,
    description: &str,
) -> Result<(), FlowError> {
    // Logging out of an impersonation ends the impersonation: the impersonator acted, the
    // user is its subject.
    let (kind, actor) = match &session.impersonator_id {
        Some(impersonator) => (event_type::IMPERSONATION_ENDED, Actor::User(impersonator.clone())),
        None => (event_type::LOGOUT, Actor::User(session.user_id.clone())),
    };
    let mut event = AuditEvent::new(kind, ctx.now, actor, description)
        .subject(session.user_id.clone())
        .source_ip(source_ip)
        .details(serde_json::json!({ "sid": session.sid }))
        .caused_by(session);
    if session.impersonator_id.is_some() {
        event.details["reason"] = serde_json::json!("logout");
    }
    event.client_id = client_id;
    match ctx.store.end_session(&session.sid, ctx.now, event) {
        // Another request ended it first.
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
