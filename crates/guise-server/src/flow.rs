//! The authorization flow between `/authorize`, the login page and the consent page:
//! the pending request (kept in the database, so any node can continue it), the browser
//! session behind the cookie, and delivering the code or error to the client.

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::cookies::SESSION_COOKIE;
use crate::web::pages::{self, Reply};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::{AuthorizationRequestRecord, PendingAuthorization};
use guise_core::client::Client;
use guise_core::ids::new_secret;
use guise_core::impersonation::{Refusal, impersonation_may_reach};
use guise_core::session::Session;
use guise_core::store::{AuthorizationRequestStore, ClientStore, ConsentStore, SessionStore};
use guise_flow::assertion::Relying;
use guise_flow::delivery::{CodeRequest, Delivery};
use guise_oidc::api_access::{ClientCap, NOT_AUTHORIZED, client_cap};
use guise_oidc::authorize::{NextStep, next_step};
use guise_oidc::grant::hash_secret;

/// Where the browser goes next.
#[derive(Debug)]
pub enum FlowOutcome {
    /// A page of guise's (login, consent).
    Page(String),
    /// Back to the client with these parameters.
    Deliver { redirect_uri: String, response_mode: String, params: Vec<(&'static str, String)> },
    /// A request that can no longer be continued.
    ErrorPage { error: String, description: String },
}

impl FlowOutcome {
    /// The request's error, told to the client by its own protocol.
    pub fn error(s: &AppState, request: &PendingAuthorization, error: &str, description: &str) -> Self {
        if request.wsfed.is_some() {
            // WS-Federation has no error response: the user sees the error here.
            return FlowOutcome::ErrorPage { error: error.to_owned(), description: description.to_owned() };
        }
        if let Some(saml) = &request.saml {
            let second = match error {
                "login_required" => Some(guise_saml::response::STATUS_NO_PASSIVE),
                _ => Some(guise_saml::response::STATUS_REQUEST_DENIED),
            };
            let message =
                crate::saml::error_response(s, saml, guise_saml::response::STATUS_RESPONDER, second, description);
            return FlowOutcome::Deliver {
                redirect_uri: saml.acs_url.clone(),
                response_mode: "form_post".into(),
                params: guise_flow::assertion::saml_post_fields(message, &saml.relay_state),
            };
        }
        let issuer = &s.settings.issuer;
        let mut params = vec![("error", error.to_owned()), ("error_description", description.to_owned())];
        if let Some(state) = &request.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", issuer.to_owned()));
        FlowOutcome::Deliver {
            redirect_uri: request.redirect_uri.clone(),
            response_mode: request.response_mode.clone(),
            params,
        }
    }

    pub fn into_reply(self) -> Reply {
        match self {
            FlowOutcome::Page(location) => Reply::redirect(location),
            FlowOutcome::Deliver { redirect_uri, response_mode, params } => {
                deliver(&redirect_uri, &response_mode, &params)
            }
            FlowOutcome::ErrorPage { error, description } => {
                pages::error_page(StatusCode::BAD_REQUEST, &error, &description)
            }
        }
    }
}

/// Send parameters to a (validated) redirect URI by query string or auto-POST form.
pub fn deliver(redirect_uri: &str, response_mode: &str, params: &[(&str, String)]) -> Reply {
    if response_mode == "form_post" {
        return pages::form_post(redirect_uri, params);
    }
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Invalid redirect_uri"),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    Reply::redirect(url.to_string())
}

/// The live session behind the request's cookie, if any (blocking).
pub fn current_session(s: &AppState, cookie: Option<&str>, now: DateTime<Utc>) -> Result<Option<Session>, ApiError> {
    let Some(value) = cookie.filter(|v| !v.is_empty() && v.len() <= 128) else { return Ok(None) };
    match s.db.session_by_cookie_hash(&hash_secret(value)) {
        Ok(session) if session.is_live(now) => {
            let idle = session.extended_idle_expiry(now, s.policies().sessions);
            s.db.touch_session(&session.sid, now, idle)?;
            Ok(Some(session))
        }
        Ok(_) | Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned())
}

/// Load a pending request by id; expired or unknown requests end with an error page.
pub fn load_request(
    s: &AppState,
    tx: &str,
    now: DateTime<Utc>,
) -> Result<Result<AuthorizationRequestRecord, FlowOutcome>, ApiError> {
    let expired = || FlowOutcome::ErrorPage {
        error: "invalid_request".into(),
        description: "This login request has expired or is unknown. Go back to the application and start again.".into(),
    };
    if tx.is_empty() || tx.len() > 64 {
        return Ok(Err(expired()));
    }
    match s.db.authorization_request(tx) {
        Ok(record) if record.expires_at > now => Ok(Ok(record)),
        Ok(_) | Err(StoreError::NotFound) => Ok(Err(expired())),
        Err(e) => Err(e.into()),
    }
}

/// Start a pending request (after validation), returning its record.
pub fn begin(
    s: &AppState,
    request: PendingAuthorization,
    now: DateTime<Utc>,
) -> Result<AuthorizationRequestRecord, ApiError> {
    let record = AuthorizationRequestRecord {
        id: new_secret(),
        request,
        csrf_token: new_secret(),
        created_at: now,
        expires_at: now + s.settings.authorization_request_lifetime,
    };
    s.db.save_authorization_request(record.clone())?;
    Ok(record)
}

/// Decide and act: send to login or consent, or issue the code (blocking).
pub fn continue_authorization(
    s: &AppState,
    record: &AuthorizationRequestRecord,
    session: Option<&Session>,
    consent_given_now: bool,
    now: DateTime<Utc>,
) -> Result<FlowOutcome, ApiError> {
    let request = &record.request;
    let client: Client = match s.db.client_by_id(&request.client_id) {
        Ok(client) => client,
        Err(StoreError::NotFound) => {
            return Ok(FlowOutcome::ErrorPage {
                error: "invalid_request".into(),
                description: "Unknown client".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let consented = match session {
        Some(session) => s.db.consented_scopes(&session.user_id, &client.client_id)?,
        None => None,
    };
    let audience = request.audience.clone().unwrap_or_else(|| s.settings.userinfo_audience());
    let management = s.settings.management_audience();
    if client_cap(&s.db, &client.client_id, &audience, &management)? == ClientCap::NotAuthorized {
        s.db.delete_authorization_request(&record.id)?;
        return Ok(FlowOutcome::error(s, request, "access_denied", NOT_AUTHORIZED));
    }
    let impersonation = session.filter(|s| s.impersonator_id.is_some());
    let impersonating = impersonation.is_some();
    if let Some(session) = impersonation {
        let refusal = if !client.allow_impersonation {
            Some("This application does not accept impersonation sessions".to_owned())
        } else if let Err(r) = recheck_impersonation(s, session, &client.client_id, now)? {
            // Re-checked on every use: a broken chain has just ended the session.
            Some(format!("The impersonation has ended: {r}"))
        } else {
            impersonation_may_reach(&audience, &management).err().map(|r| r.to_string())
        };
        if let Some(description) = refusal {
            s.db.delete_authorization_request(&record.id)?;
            return Ok(FlowOutcome::error(s, request, "access_denied", &description));
        }
    }
    let step = next_step(request, record.created_at, session, &client, consented.as_deref(), consent_given_now, now);
    match (step, session) {
        (NextStep::Consent, _) if impersonating => {
            s.db.delete_authorization_request(&record.id)?;
            Ok(FlowOutcome::error(s, request, "consent_required", "Consent cannot be given during impersonation"))
        }
        (NextStep::Login, _) => Ok(FlowOutcome::Page(format!("/login?tx={}", record.id))),
        (NextStep::Consent, _) => Ok(FlowOutcome::Page(format!("/consent?tx={}", record.id))),
        (NextStep::Fail { error, description }, _) => {
            s.db.delete_authorization_request(&record.id)?;
            Ok(FlowOutcome::error(s, request, error, description))
        }
        (NextStep::IssueCode, Some(session)) => {
            let ctx = guise_flow::FlowContext { now, ..s.flow() };
            let (settings_saml, settings_wsfed);
            let relying = match (&request.saml, &request.wsfed) {
                (_, Some(pending)) => {
                    settings_wsfed = guise_flow::assertion::wsfed_settings(&client)?;
                    Some(Relying::Wsfed(&settings_wsfed, pending))
                }
                (Some(pending), None) => {
                    settings_saml = guise_flow::assertion::saml_settings(&client)?;
                    Some(Relying::Saml(&settings_saml, pending))
                }
                (None, None) => None,
            };
            let outcome = match relying {
                Some(relying) => match guise_flow::assertion::for_login(&ctx, &client, relying, session)? {
                    Delivery::FormPost { action, fields } => {
                        FlowOutcome::Deliver { redirect_uri: action, response_mode: "form_post".into(), params: fields }
                    }
                    Delivery::Redirect(location) => FlowOutcome::Page(location),
                },
                None => {
                    let code = guise_flow::delivery::issue_code(
                        &ctx,
                        &client,
                        session,
                        CodeRequest {
                            redirect_uri: request.redirect_uri.clone(),
                            scope: request.scope.clone(),
                            audience: request.audience.clone(),
                            nonce: request.nonce.clone(),
                            code_challenge: request.code_challenge.clone(),
                        },
                    )?;
                    let mut params = vec![("code", code)];
                    if let Some(state) = &request.state {
                        params.push(("state", state.clone()));
                    }
                    params.push(("iss", s.settings.issuer.clone()));
                    FlowOutcome::Deliver {
                        redirect_uri: request.redirect_uri.clone(),
                        response_mode: request.response_mode.clone(),
                        params,
                    }
                }
            };
            s.db.delete_authorization_request(&record.id)?;
            Ok(outcome)
        }
        (NextStep::IssueCode, None) => Ok(FlowOutcome::Page(format!("/login?tx={}", record.id))),
    }
}

/// Re-check an impersonation session's chain as it is used for `client_id` (ordinary
/// sessions pass); a broken chain ends the session and is audited.
pub fn recheck_impersonation(
    s: &AppState,
    session: &Session,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<Result<(), Refusal>, StoreError> {
    guise_oidc::chain::recheck(s.chain_stores(), &s.db, session, client_id, &s.settings.management_audience(), now)
}

/// Log out: end the session behind the cookie (revoking its tokens), audited as `slo`.
pub fn end_cookie_session(
    s: &AppState,
    cookie: Option<&str>,
    client_id: Option<String>,
    source_ip: Option<String>,
    description: &str,
) -> Result<(), ApiError> {
    let Some(value) = cookie.filter(|v| !v.is_empty() && v.len() <= 128) else { return Ok(()) };
    match s.db.session_by_cookie_hash(&hash_secret(value)) {
        Ok(session) if session.ended_at.is_none() => {
            let now = s.clock.now();
            // Logging out of an impersonation ends the impersonation: the impersonator
            // acted, the user is its subject.
            let (kind, actor) = match &session.impersonator_id {
                Some(impersonator) => (event_type::IMPERSONATION_ENDED, Actor::User(impersonator.clone())),
                None => (event_type::LOGOUT, Actor::User(session.user_id.clone())),
            };
            let mut event = AuditEvent::new(kind, now, actor, description)
                .subject(session.user_id.clone())
                .source_ip(source_ip)
                .details(serde_json::json!({ "sid": session.sid }))
                .caused_by(&session);
            if session.impersonator_id.is_some() {
                event.details["reason"] = serde_json::json!("logout");
            }
            event.client_id = client_id;
            s.db.end_session(&session.sid, now, event)?;
            Ok(())
        }
        Ok(_) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
