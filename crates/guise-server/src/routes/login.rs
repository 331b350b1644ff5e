//! The login and consent pages: CSRF-checked forms, argon2 password check, throttling
//! per account and per address with temporary lockout, one generic failure message.

use crate::auth::RequestMeta;
use crate::console::session::tokens_match;
use crate::error::ApiError;
use crate::flow::{IntoReply, failed, page, session_cookie};
use crate::state::AppState;
use crate::web::cookies::{self, CSRF_COOKIE};
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::AuthorizationRequestRecord;
use guise_core::store::{AuthorizationRequestStore, ClientStore, ConsentStore, UserStore, found};
use guise_flow::authorization::{FlowOutcome, consenting_session, continue_authorization, load_request};
use guise_flow::login::{Attempt, LoginOutcome};
use guise_flow::session::Browser;
use guise_store::password::verify_password;
use minijinja::context;
use serde::Deserialize;

/// The one message every failed login gets, whatever the reason.
pub const LOGIN_FAILED: &str = "Wrong email or password.";
pub const LOCKED_OUT: &str = "Too many failed attempts. Try again later.";

#[derive(Debug, Deserialize)]
pub struct TxQuery {
    #[serde(default)]
    tx: String,
}

fn login_page(
    status: StatusCode,
    client_name: &str,
    record: &AuthorizationRequestRecord,
    email: &str,
    error: Option<&str>,
    secure: bool,
) -> Reply {
    pages::render(
        status,
        "login.html",
        context! { client_name => client_name, tx => record.id.clone(), csrf => record.csrf_token.clone(), email => email, error => error },
    )
    .with_cookie(cookies::csrf(record.csrf_token.clone(), secure))
}

fn client_name(s: &AppState, client_id: &str) -> Result<String, ApiError> {
    Ok(found(s.db.client_by_id(client_id))?.map_or_else(|| client_id.to_owned(), |client| client.name))
}

pub async fn login_form(state: web::Data<AppState>, query: web::Query<TxQuery>) -> Reply {
    let tx = query.into_inner().tx;
    let secure = state.secure_cookies();
    page(state, move |s| {
        let ctx = s.flow();
        Ok(match load_request(&ctx, &tx)? {
            Ok(record) => {
                let name = client_name(s, &record.request.client_id)?;
                let hint = record.request.login_hint().unwrap_or_default();
                login_page(StatusCode::OK, &name, &record, hint, None, secure)
            }
            Err(outcome) => outcome.into_reply(),
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// Both the form field and the cookie must carry the request's CSRF token.
fn csrf_ok(record: &AuthorizationRequestRecord, form_value: &str, cookie: Option<&str>) -> bool {
    tokens_match(&record.csrf_token, form_value) && cookie.is_some_and(|c| tokens_match(&record.csrf_token, c))
}

fn csrf_failure() -> Reply {
    pages::error_page(
        StatusCode::FORBIDDEN,
        "invalid_request",
        "The form could not be verified (CSRF). Reload the page and try again.",
    )
}

enum LoginResult {
    Failed(Reply),
    LoggedIn { outcome: FlowOutcome, cookie: String },
}

pub async fn login_submit(req: HttpRequest, state: web::Data<AppState>, form: web::Form<LoginForm>) -> Reply {
    let form = form.into_inner();
    let csrf_cookie = req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned());
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let user_agent =
        req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    let secure = state.secure_cookies();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let ctx = s.flow();
            let now = ctx.now;
            let record = match load_request(&ctx, &form.tx)? {
                Ok(record) => record,
                Err(outcome) => return Ok(LoginResult::Failed(outcome.into_reply())),
            };
            if !csrf_ok(&record, &form.csrf, csrf_cookie.as_deref()) {
                return Ok(LoginResult::Failed(csrf_failure()));
            }
            let browser = Browser { source_ip: meta.source_ip.clone(), user_agent };
            authenticate(s, &record, &form, browser, now, secure)
        })
        .await;
    match result {
        Ok(LoginResult::Failed(response)) => response,
        Ok(LoginResult::LoggedIn { outcome, cookie }) => outcome
            .into_reply()
            .with_cookie(cookies::session(cookie, secure))
            .with_cookie(cookies::removal(CSRF_COOKIE, secure)),
        Err(e) => failed(e.status),
    }
}

/// Check the password (`guise_flow::login::authenticate`, argon2 behind the store's
/// gate), then continue the authorization or show the login page again.
fn authenticate(
    s: &AppState,
    record: &AuthorizationRequestRecord,
    form: &LoginForm,
    browser: Browser,
    now: DateTime<Utc>,
    secure: bool,
) -> Result<LoginResult, ApiError> {
    let ctx = guise_flow::FlowContext { now, ..s.flow() };
    let client_id = record.request.client_id.as_str();
    let attempt = Attempt { client_id, identifier: &form.email, password: &form.password, browser };
    let (status, message, identifier) = match guise_flow::login::authenticate(&ctx, attempt, &verify_password)? {
        LoginOutcome::LoggedIn { cookie, session } => {
            let outcome = continue_authorization(&ctx, record, Some(session.as_ref()), false)?;
            return Ok(LoginResult::LoggedIn { outcome, cookie });
        }
        LoginOutcome::LockedOut { identifier } => (StatusCode::TOO_MANY_REQUESTS, LOCKED_OUT, identifier),
        LoginOutcome::Failed { identifier } => (StatusCode::UNAUTHORIZED, LOGIN_FAILED, identifier),
    };
    let name = client_name(s, client_id)?;
    Ok(LoginResult::Failed(login_page(status, &name, record, &identifier, Some(message), secure)))
}

pub async fn consent_form(req: HttpRequest, state: web::Data<AppState>, query: web::Query<TxQuery>) -> Reply {
    let tx = query.into_inner().tx;
    let cookie = session_cookie(&req);
    let secure = state.secure_cookies();
    page(state, move |s| {
        let ctx = s.flow();
        let record = match load_request(&ctx, &tx)? {
            Ok(record) => record,
            Err(outcome) => return Ok(outcome.into_reply()),
        };
        let session = match consenting_session(&ctx, &record, cookie.as_deref())? {
            Ok(session) => session,
            Err(outcome) => return Ok(outcome.into_reply()),
        };
        let user = s.db.user_by_id(&session.user_id)?;
        let name = client_name(s, &record.request.client_id)?;
        Ok(pages::render(
            StatusCode::OK,
            "consent.html",
            context! {
                client_name => name, user_email => user.email, scopes => record.request.scope(),
                tx => record.id.clone(), csrf => record.csrf_token.clone(),
            },
        )
        .with_cookie(cookies::csrf(record.csrf_token.clone(), secure)))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

pub async fn consent_submit(req: HttpRequest, state: web::Data<AppState>, form: web::Form<ConsentForm>) -> Reply {
    let form = form.into_inner();
    let cookie = session_cookie(&req);
    let csrf_cookie = req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned());
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    page(state, move |s| {
        let ctx = s.flow();
        let now = ctx.now;
        let record = match load_request(&ctx, &form.tx)? {
            Ok(record) => record,
            Err(outcome) => return Ok(outcome.into_reply()),
        };
        if !csrf_ok(&record, &form.csrf, csrf_cookie.as_deref()) {
            return Ok(csrf_failure());
        }
        // No consent is given or recorded during impersonation.
        let session = match consenting_session(&ctx, &record, cookie.as_deref())? {
            Ok(session) => session,
            Err(outcome) => return Ok(outcome.into_reply()),
        };
        if form.decision != "allow" {
            s.db.delete_authorization_request(&record.id)?;
            return Ok(
                FlowOutcome::error(&ctx, &record.request, "access_denied", "The user denied access").into_reply()
            );
        }
        let scope = record.request.scope();
        let event = AuditEvent::new(event_type::CONSENT, now, Actor::User(session.user_id.clone()), "Consent given")
            .subject(session.user_id.clone())
            .client(record.request.client_id.clone())
            .source_ip(meta.source_ip.clone())
            .details(serde_json::json!({ "scope": scope }));
        s.db.grant_consent(&session.user_id, &record.request.client_id, &scope, now, event)?;
        Ok(continue_authorization(&ctx, &record, Some(&session), true)?.into_reply())
    })
    .await
}
