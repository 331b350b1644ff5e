//! The login and consent pages: CSRF-checked forms, argon2 password check, throttling
//! per account and per address with temporary lockout, one generic failure message.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{IntoReply, session_cookie};
use crate::state::AppState;
use crate::web::cookies::{self, CSRF_COOKIE};
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::authorization::AuthorizationRequestRecord;
use guise_core::store::{
    AuditStore, AuthorizationRequestStore, ClientStore, ConsentStore, LoginThrottleStore, UserStore,
};
use guise_core::throttle::{ThrottleCounter, account_key, address_key};
use guise_flow::authorization::{FlowOutcome, continue_authorization, current_session, load_request};
use guise_flow::session::Browser;
use guise_store::password::verify_password;
use minijinja::context;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The one message every failed login gets, whatever the reason.
pub const LOGIN_FAILED: &str = "Wrong email or password.";
pub const LOCKED_OUT: &str = "Too many failed attempts. Try again later.";

/// A valid argon2id hash of a random password: verifying against it when the account
/// does not exist makes unknown emails cost the same as wrong passwords.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0zrAKp6Eu1Z/P3ZCNzOtHhbs0vPhPcOV3u8SPcRbgUA";

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
    match s.db.client_by_id(client_id) {
        Ok(client) => Ok(client.name),
        Err(StoreError::NotFound) => Ok(client_id.to_owned()),
        Err(e) => Err(e.into()),
    }
}

pub async fn login_form(state: web::Data<AppState>, query: web::Query<TxQuery>) -> Reply {
    let tx = query.into_inner().tx;
    let secure = state.secure_cookies();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let ctx = s.flow();
            Ok::<_, ApiError>(match load_request(&ctx, &tx)? {
                Ok(record) => {
                    let name = client_name(s, &record.request.client_id)?;
                    let hint = record.request.login_hint.clone().unwrap_or_default();
                    login_page(StatusCode::OK, &name, &record, &hint, None, secure)
                }
                Err(outcome) => outcome.into_reply(),
            })
        })
        .await;
    result.unwrap_or_else(|e| pages::error_page(e.status, "server_error", "The request could not be completed"))
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
    let expected = record.csrf_token.as_bytes();
    bool::from(form_value.as_bytes().ct_eq(expected))
        && cookie.is_some_and(|c| bool::from(c.as_bytes().ct_eq(expected)))
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
            authenticate(s, &record, &form, &meta, user_agent, now, secure)
        })
        .await;
    match result {
        Ok(LoginResult::Failed(response)) => response,
        Ok(LoginResult::LoggedIn { outcome, cookie }) => outcome
            .into_reply()
            .with_cookie(cookies::session(cookie, secure))
            .with_cookie(cookies::removal(CSRF_COOKIE, secure)),
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}

fn login_event(kind: &str, now: DateTime<Utc>, description: &str, meta: &RequestMeta, client_id: &str) -> AuditEvent {
    AuditEvent::new(kind, now, Actor::System, description)
        .client(client_id.to_owned())
        .source_ip(meta.source_ip.clone())
}

#[allow(clippy::too_many_arguments)]
fn authenticate(
    s: &AppState,
    record: &AuthorizationRequestRecord,
    form: &LoginForm,
    meta: &RequestMeta,
    user_agent: Option<String>,
    now: DateTime<Utc>,
    secure: bool,
) -> Result<LoginResult, ApiError> {
    let client_id = record.request.client_id.as_str();
    let name = client_name(s, client_id)?;
    let email = form.email.trim().chars().take(254).collect::<String>();
    let fail = |status: StatusCode, message: &str| {
        LoginResult::Failed(login_page(status, &name, record, &email, Some(message), secure))
    };
    // The identifier is an email when it has an `@` (usernames never do), else a username.
    let user = match if email.contains('@') { s.db.user_by_email(&email) } else { s.db.user_by_username(&email) } {
        Ok(user) => Some(user),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    // One lockout counter per account, whichever identifier was typed; per identifier
    // for unknown ones.
    let account = user.as_ref().map_or_else(|| email.clone(), |u| u.email.clone());
    let policy = s.policies().throttle;
    let keys = [account_key(&account), address_key(meta.source_ip.as_deref().unwrap_or("unknown"))];
    let mut counters = Vec::with_capacity(2);
    for key in &keys {
        counters.push(s.db.throttle_counter(key)?.unwrap_or_else(|| ThrottleCounter::fresh(key, now)));
    }
    if counters.iter().any(|c| c.is_locked(now)) {
        s.db.append(vec![
            login_event(event_type::FAILED_LOGIN, now, "Login refused: locked out", meta, client_id)
                .details(serde_json::json!({ "email": email, "reason": "locked" })),
        ])?;
        return Ok(fail(StatusCode::TOO_MANY_REQUESTS, LOCKED_OUT));
    }

    let stored_hash = match &user {
        Some(u) => s.db.password_hash(&u.user_id)?,
        None => None,
    };
    let password_ok = match stored_hash {
        Some(phc) => verify_password(&form.password, &phc),
        None => {
            // Spend the same time as a real check, then fail.
            let _ = verify_password(&form.password, DUMMY_HASH);
            false
        }
    };
    match user {
        Some(user) if password_ok && !user.blocked => {
            s.db.clear_throttle_counter(&keys[0])?;
            let ctx = guise_flow::FlowContext { now, ..s.flow() };
            let browser = Browser { source_ip: meta.source_ip.clone(), user_agent };
            let (cookie, session) = guise_flow::session::open(&ctx, &user.user_id, browser, None, |session| {
                login_event(event_type::LOGIN, now, "Successful login", meta, client_id)
                    .subject(user.user_id.clone())
                    .details(serde_json::json!({ "sid": session.sid }))
            })?;
            s.db.record_login(&user.user_id, now, meta.source_ip.as_deref())?;
            let outcome = continue_authorization(&ctx, record, Some(&session), false)?;
            Ok(LoginResult::LoggedIn { outcome, cookie })
        }
        user => {
            let (kind, reason) = match &user {
                Some(u) if u.blocked && password_ok => (event_type::BLOCKED_USER_LOGIN, "blocked"),
                Some(_) => (event_type::FAILED_LOGIN, "wrong password"),
                None => (event_type::FAILED_LOGIN, "unknown email"),
            };
            let mut events = vec![
                login_event(kind, now, "Failed login", meta, client_id)
                    .details(serde_json::json!({ "email": email, "reason": reason })),
            ];
            if let Some(u) = &user {
                events[0].subject = Some(u.user_id.clone());
            }
            for counter in &mut counters {
                if counter.record_failure(now, &policy) {
                    let (kind, what) = if counter.key.starts_with("account:") {
                        (event_type::ACCOUNT_LOCKED, "Account locked after repeated failed logins")
                    } else {
                        (event_type::ADDRESS_LOCKED, "Source address locked after repeated failed logins")
                    };
                    let mut event = login_event(kind, now, what, meta, client_id)
                        .details(serde_json::json!({ "email": email, "until": counter.locked_until }));
                    event.subject = user.as_ref().map(|u| u.user_id.clone());
                    events.push(event);
                }
                s.db.save_throttle_counter(counter)?;
            }
            s.db.append(events)?;
            Ok(fail(StatusCode::UNAUTHORIZED, LOGIN_FAILED))
        }
    }
}

pub async fn consent_form(req: HttpRequest, state: web::Data<AppState>, query: web::Query<TxQuery>) -> Reply {
    let tx = query.into_inner().tx;
    let cookie = session_cookie(&req);
    let secure = state.secure_cookies();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let ctx = s.flow();
            let record = match load_request(&ctx, &tx)? {
                Ok(record) => record,
                Err(outcome) => return Ok::<_, ApiError>(outcome.into_reply()),
            };
            let Some(session) = current_session(&ctx, cookie.as_deref())? else {
                return Ok(continue_authorization(&ctx, &record, None, false)?.into_reply());
            };
            if session.impersonator_id.is_some() {
                // No consent page renders in an impersonation session: the flow decides
                // (existing consent of the user's own, or consent_required).
                return Ok(continue_authorization(&ctx, &record, Some(&session), false)?.into_reply());
            }
            let user = s.db.user_by_id(&session.user_id)?;
            let name = client_name(s, &record.request.client_id)?;
            Ok(pages::render(
                StatusCode::OK,
                "consent.html",
                context! {
                    client_name => name, user_email => user.email, scopes => record.request.scope.clone(),
                    tx => record.id.clone(), csrf => record.csrf_token.clone(),
                },
            )
            .with_cookie(cookies::csrf(record.csrf_token.clone(), secure)))
        })
        .await;
    result.unwrap_or_else(|e| pages::error_page(e.status, "server_error", "The request could not be completed"))
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
    let result = state
        .into_inner()
        .blocking(move |s| {
            let ctx = s.flow();
            let now = ctx.now;
            let record = match load_request(&ctx, &form.tx)? {
                Ok(record) => record,
                Err(outcome) => return Ok::<_, ApiError>(outcome.into_reply()),
            };
            if !csrf_ok(&record, &form.csrf, csrf_cookie.as_deref()) {
                return Ok(csrf_failure());
            }
            let Some(session) = current_session(&ctx, cookie.as_deref())? else {
                return Ok(continue_authorization(&ctx, &record, None, false)?.into_reply());
            };
            if session.impersonator_id.is_some() {
                // No consent is given or recorded during impersonation.
                return Ok(continue_authorization(&ctx, &record, Some(&session), false)?.into_reply());
            }
            if form.decision != "allow" {
                s.db.delete_authorization_request(&record.id)?;
                return Ok(
                    FlowOutcome::error(&ctx, &record.request, "access_denied", "The user denied access").into_reply()
                );
            }
            let event =
                AuditEvent::new(event_type::CONSENT, now, Actor::User(session.user_id.clone()), "Consent given")
                    .subject(session.user_id.clone())
                    .client(record.request.client_id.clone())
                    .source_ip(meta.source_ip.clone())
                    .details(serde_json::json!({ "scope": record.request.scope }));
            s.db.grant_consent(&session.user_id, &record.request.client_id, &record.request.scope, now, event)?;
            Ok(continue_authorization(&ctx, &record, Some(&session), true)?.into_reply())
        })
        .await;
    result.unwrap_or_else(|e| pages::error_page(e.status, "server_error", "The request could not be completed"))
}
