//! `GET`/`POST /oidc/logout`: RP-initiated logout (OIDC RP-Initiated Logout 1.0). Ends
//! the guise session (revoking the tokens minted from it), then returns to a registered
//! `post_logout_redirect_uri`.
//!
//! A logout request is a cross-site request anyone can make, so it ends the session only
//! when it is known to come from the user or from the session's own client: with an
//! `id_token_hint` that we issued for this very session (signature and issuer checked, an
//! expired one will do), or as the POST of the confirmation page (`logout_confirm.html`)
//! carrying its CSRF token, which must equal the `guise_logout_csrf` cookie
//! (double-submit). Anything else with a live session gets that confirmation page.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::session_cookie;
use crate::state::AppState;
use crate::web::cookies::{self, LOGOUT_CSRF_COOKIE, SESSION_COOKIE};
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_core::ids::new_secret;
use guise_core::store::{ClientStore, found};
use guise_flow::authorization::current_session;
use guise_oidc::logout::verify_id_token_hint;
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// Only the confirmation page's form sends it.
    csrf: Option<String>,
}

enum LogoutOutcome {
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
    Refused(StatusCode, String),
}

/// Whether the request was confirmed by the user on the confirmation page.
enum Confirmation {
    /// No `csrf` field: not the confirmation form.
    Absent,
    Valid,
    Invalid,
}

fn confirmation(form_value: Option<&str>, cookie: Option<&str>) -> Confirmation {
    match form_value {
        None => Confirmation::Absent,
        Some(value) => {
            let valid = !value.is_empty()
                && cookie.is_some_and(|c| c.len() == value.len() && bool::from(c.as_bytes().ct_eq(value.as_bytes())));
            if valid { Confirmation::Valid } else { Confirmation::Invalid }
        }
    }
}

pub async fn logout_get(req: HttpRequest, state: web::Data<AppState>, query: web::Query<LogoutParams>) -> Reply {
    let mut params = query.into_inner();
    // Only a POST confirms: a link cannot.
    params.csrf = None;
    logout(req, state, params).await
}

pub async fn logout_post(req: HttpRequest, state: web::Data<AppState>, form: web::Form<LogoutParams>) -> Reply {
    logout(req, state, form.into_inner()).await
}

async fn logout(req: HttpRequest, state: web::Data<AppState>, params: LogoutParams) -> Reply {
    let cookie = session_cookie(&req);
    let csrf_cookie = req.cookie(LOGOUT_CSRF_COOKIE).map(|c| c.value().to_owned());
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let secure = state.secure_cookies();
    let result = state.into_inner().blocking(move |s| decide(s, params, cookie, csrf_cookie, meta)).await;
    let reply = match result {
        Ok(LogoutOutcome::Redirect(location)) => Reply::redirect(location),
        Ok(LogoutOutcome::LoggedOut) => pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {}),
        Ok(LogoutOutcome::Confirm { csrf, client_name, client_id, redirect }) => {
            let (post_logout_redirect_uri, state) = redirect.map_or((None, None), |(uri, state)| (Some(uri), state));
            return pages::render(
                StatusCode::OK,
                "logout_confirm.html",
                minijinja::context! {
                    csrf => csrf.clone(), client_name => client_name, client_id => client_id,
                    post_logout_redirect_uri => post_logout_redirect_uri, state => state,
                },
            )
            .with_cookie(cookies::logout_csrf(csrf, secure));
        }
        Ok(LogoutOutcome::Refused(status, description)) => {
            return pages::error_page(status, "invalid_request", &description);
        }
        Err(e) => return pages::error_page(e.status, "server_error", "The request could not be completed"),
    };
    reply
        .with_cookie(cookies::removal(SESSION_COOKIE, secure))
        .with_cookie(cookies::removal(LOGOUT_CSRF_COOKIE, secure))
}

fn decide(
    s: &AppState,
    params: LogoutParams,
    cookie: Option<String>,
    csrf_cookie: Option<String>,
    meta: RequestMeta,
) -> Result<LogoutOutcome, ApiError> {
    let refused = |description: &str| Ok(LogoutOutcome::Refused(StatusCode::BAD_REQUEST, description.to_owned()));
    let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(token) => match verify_id_token_hint(&s.keys.current(), &s.settings.issuer, token) {
            Some(hint) => Some(hint),
            None => return refused("The id_token_hint is not a valid ID token from this issuer"),
        },
        None => None,
    };
    let client_id = match (&hint, params.client_id.as_deref().filter(|c| !c.is_empty())) {
        (Some(h), Some(id)) if h.client_id != id => return refused("client_id does not match the id_token_hint"),
        (Some(h), _) => Some(h.client_id.clone()),
        (None, id) => id.map(str::to_owned),
    };
    let client = match &client_id {
        None => None,
        Some(id) => match found(s.db.client_by_id(id))? {
            Some(client) => Some(client),
            None => return refused("Unknown client"),
        },
    };
    // Checked before anything happens: the redirect must be registered for the client.
    let redirect = match params.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let Some(client) = &client else {
                return refused("post_logout_redirect_uri needs id_token_hint or client_id");
            };
            if !client.is_registered_logout_url(uri) {
                return refused("post_logout_redirect_uri is not an allowed logout URL of the client");
            }
            url::Url::parse(uri).map_err(|_| ApiError::bad_request("invalid post_logout_redirect_uri"))?;
            Some((uri.to_owned(), params.state.clone()))
        }
    };

    let ctx = s.flow();
    if let Some(session) = current_session(&ctx, cookie.as_deref())? {
        let hinted = hint.as_ref().is_some_and(|h| h.names_session(&session));
        match confirmation(params.csrf.as_deref(), csrf_cookie.as_deref()) {
            _ if hinted => {}
            Confirmation::Valid => {}
            Confirmation::Invalid => {
                return Ok(LogoutOutcome::Refused(
                    StatusCode::FORBIDDEN,
                    "The form could not be verified (CSRF). Reload the page and try again.".into(),
                ));
            }
            Confirmation::Absent => {
                return Ok(LogoutOutcome::Confirm {
                    csrf: new_secret(),
                    client_name: client.as_ref().map(|c| c.name.clone()),
                    client_id,
                    redirect,
                });
            }
        }
        guise_flow::authorization::end_cookie_session(
            &s.flow(),
            cookie.as_deref(),
            client_id,
            meta.0.source_ip,
            "Logged out",
        )?;
    }
    // Without a live session there is nothing to end: only the (registered) redirect.
    Ok(match redirect {
        Some((uri, state)) => {
            let mut url =
                url::Url::parse(&uri).map_err(|_| ApiError::bad_request("invalid post_logout_redirect_uri"))?;
            if let Some(state) = &state {
                url.query_pairs_mut().append_pair("state", state);
            }
            LogoutOutcome::Redirect(url.to_string())
        }
        None => LogoutOutcome::LoggedOut,
    })
}
