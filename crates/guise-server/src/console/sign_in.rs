//! Signing in to the console as a relying party of guise: `/console/login` sends the
//! agent to `/authorize` (code flow, PKCE S256, `state`, `nonce`, the Management API as
//! audience; `prompt=login&max_age=0` for step-up), `/console/callback` redeems the code
//! at `/oauth/token` and opens a console session holding the agent's token.

use super::api::{self, ApiFailure};
use super::client::callback_url;
use super::session::{self, CsrfForm, LOGIN_COOKIE, PendingSignIn, SESSION_COOKIE};
use super::view;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guise_core::console::ConsoleSession;
use guise_core::ids::new_secret;
use guise_core::permission::scopes;
use guise_core::store::ConsoleSessionStore;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct LoginParams {
    return_to: Option<String>,
    /// Ask guise for a fresh password entry (the agent's login is too old to mint).
    step_up: Option<String>,
}

/// The console's own client id, kept from `console::client::ensure` at start.
fn console_client_id(state: &AppState) -> Option<String> {
    state.console_client_id.get().cloned()
}

fn unavailable() -> HttpResponse {
    view::message(StatusCode::SERVICE_UNAVAILABLE, "The console is unavailable", "Try again in a moment.", None)
}

/// `GET /console/login`
pub async fn login(state: web::Data<AppState>, params: web::Query<LoginParams>) -> HttpResponse {
    let Some(client_id) = console_client_id(&state) else { return unavailable() };
    let pending = PendingSignIn {
        state: new_secret(),
        verifier: new_secret(),
        nonce: new_secret(),
        return_to: session::safe_return(params.return_to.as_deref()),
    };
    let scope = ["openid", "profile", "email"].iter().chain(scopes::ALL.iter()).copied().collect::<Vec<_>>().join(" ");
    let mut query = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client_id),
        ("redirect_uri", callback_url(&state.settings.issuer)),
        ("scope", scope),
        ("audience", state.settings.management_audience()),
        ("state", pending.state.clone()),
        ("nonce", pending.nonce.clone()),
        ("code_challenge", guise_oidc::pkce::challenge_s256(&pending.verifier)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    if params.step_up.is_some() {
        query.push(("prompt", "login".to_owned()));
        query.push(("max_age", "0".to_owned()));
    }
    let location = format!("/authorize?{}", serde_urlencoded::to_string(&query).unwrap_or_default());
    view::redirect(&location, vec![session::login_cookie(pending.encode(), state.secure_cookies())])
}

#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn sign_in_failed(text: &str) -> HttpResponse {
    view::page(
        StatusCode::BAD_REQUEST,
        "console/message.html",
        minijinja::context! { title => "Sign-in did not complete", text => text, sign_in_again => true },
    )
}

/// The claims of an ID token received straight from guise's token endpoint over
/// loopback (OIDC Core §3.1.3.7: the direct channel stands in for the signature); the
/// issuer, audience and nonce are still checked.
fn id_token_claims(id_token: &str) -> Option<Value> {
    let payload = id_token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// `GET /console/callback`
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<CallbackParams>,
) -> HttpResponse {
    let secure = state.secure_cookies();
    let Some(pending) = req.cookie(LOGIN_COOKIE).and_then(|c| PendingSignIn::decode(c.value())) else {
        return sign_in_failed("This sign-in was not started from this browser, or took too long. Start again.");
    };
    let state_matches = params.state.as_deref().is_some_and(|s| session::tokens_match(&pending.state, s));
    if !state_matches {
        return sign_in_failed("The sign-in response does not belong to this browser's sign-in. Start again.");
    }
    if let Some(error) = &params.error {
        let text = params.error_description.clone().unwrap_or_else(|| error.clone());
        return sign_in_failed(&format!("guise did not sign you in: {text}"));
    }
    let Some(code) = params.code.as_deref() else { return sign_in_failed("The sign-in response carries no code.") };
    let Some(client_id) = console_client_id(&state) else { return unavailable() };
    let redirect_uri = callback_url(&state.settings.issuer);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", client_id.as_str()),
        ("code_verifier", pending.verifier.as_str()),
    ];
    let tokens = match api::token_request(&req, &form).await {
        Ok(tokens) => tokens,
        Err(ApiFailure { status, message }) if status < 500 => {
            return sign_in_failed(&format!("guise refused the sign-in: {message}"));
        }
        Err(_) => return unavailable(),
    };
    let (Some(access_token), Some(claims)) =
        (tokens["access_token"].as_str(), tokens["id_token"].as_str().and_then(id_token_claims))
    else {
        return sign_in_failed("guise's answer lacked a token.");
    };
    let issuer_ok = claims["iss"].as_str() == Some(state.settings.issuer.as_str());
    let audience_ok = claims["aud"].as_str() == Some(client_id.as_str())
        || claims["aud"].as_array().is_some_and(|a| a.iter().any(|v| v.as_str() == Some(client_id.as_str())));
    let nonce_ok = claims["nonce"].as_str().is_some_and(|n| session::tokens_match(&pending.nonce, n));
    let (Some(sub), Some(auth_time)) = (claims["sub"].as_str(), claims["auth_time"].as_i64()) else {
        return sign_in_failed("guise's ID token lacked the subject or the time of login.");
    };
    if !(issuer_ok && audience_ok && nonce_ok) {
        return sign_in_failed("guise's ID token was not issued for this sign-in.");
    }
    let cookie = new_secret();
    let Some(sealed_token) = session::seal(&cookie, access_token) else { return unavailable() };
    let label = claims["email"].as_str().or(claims["name"].as_str()).unwrap_or(sub).to_owned();
    let expires_in = tokens["expires_in"].as_i64().unwrap_or(0).clamp(0, 86_400);
    let (user_id, id_hash) = (sub.to_owned(), session::id_hash(&cookie));
    let stored = state
        .clone()
        .into_inner()
        .blocking(move |s| {
            let now = s.clock.now();
            let row = ConsoleSession {
                id_hash,
                user_id,
                label,
                sealed_token,
                auth_time: chrono::DateTime::from_timestamp(auth_time, 0).unwrap_or(now),
                created_at: now,
                expires_at: now + chrono::Duration::seconds(expires_in),
            };
            s.db.create_console_session(&row, now).map_err(ApiError::from)
        })
        .await;
    if stored.is_err() {
        return unavailable();
    }
    view::redirect(
        &pending.return_to,
        vec![session::session_cookie(cookie, secure), session::removal(LOGIN_COOKIE, secure)],
    )
}

/// `POST /console/logout`: ends the console session (the agent's guise login stays, as
/// with any application; the page links to guise's own logout). It needs the session
/// cookie and its CSRF token, nothing more: an agent with "no access", or whose token
/// expired, can still sign out.
pub async fn logout(req: HttpRequest, state: web::Data<AppState>, form: web::Form<CsrfForm>) -> HttpResponse {
    let secure = state.secure_cookies();
    let Some(cookie) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return view::redirect("/console", vec![]);
    };
    if !session::tokens_match(&session::csrf_token(&cookie), &form.csrf) {
        return view::message(StatusCode::FORBIDDEN, "This form has expired", "Reload the page and try again.", None);
    }
    let id_hash = session::id_hash(&cookie);
    let _ = state
        .clone()
        .into_inner()
        .blocking(move |s| s.db.delete_console_session(&id_hash).map_err(ApiError::from))
        .await;
    view::page_with_cookies(
        StatusCode::OK,
        "console/message.html",
        minijinja::context! {
            title => "Signed out of the console",
            text => "Your console session has ended. You are still signed in to guise itself until you log out there.",
            sign_in_again => true,
            guise_logout => true,
        },
        vec![session::removal(SESSION_COOKIE, secure)],
    )
}
