//! `GET`/`POST /oidc/logout`: RP-initiated logout (OIDC RP-Initiated Logout 1.0). Ends
//! the guise session (revoking the tokens minted from it), then returns to a registered
//! `post_logout_redirect_uri`.
//!
//! Who may end the session, and where it may return, is `guise_flow::logout`'s; the
//! confirmation page (`logout_confirm.html`) carries a CSRF token that must equal the
//! `guise_logout_csrf` cookie (double-submit).

use crate::auth::RequestMeta;
use crate::console::session::tokens_match;
use crate::error::{ApiError, status_of};
use crate::flow::{failed, session_cookie};
use crate::state::AppState;
use crate::web::cookies::{self, LOGOUT_CSRF_COOKIE, SESSION_COOKIE};
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_flow::FlowError;
use guise_flow::logout::{Confirmation, LogoutOutcome, LogoutRequest, rp_initiated};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// Only the confirmation page's form sends it.
    csrf: Option<String>,
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
    let source_ip = RequestMeta::from_request(&req, state.config.trust_forwarded_for).0.source_ip;
    let secure = state.secure_cookies();
    let request = LogoutRequest {
        confirmation: match params.csrf.as_deref() {
            None => Confirmation::Absent,
            Some(value) if csrf_cookie.as_deref().is_some_and(|c| tokens_match(c, value)) => Confirmation::Valid,
            Some(_) => Confirmation::Invalid,
        },
        id_token_hint: params.id_token_hint,
        post_logout_redirect_uri: params.post_logout_redirect_uri,
        state: params.state,
        client_id: params.client_id,
    };
    let result = state
        .into_inner()
        .blocking(move |s| {
            Ok::<_, ApiError>(rp_initiated(&s.flow(), &s.keys.current(), request, cookie.as_deref(), source_ip))
        })
        .await;
    let reply = match result {
        Ok(Ok(LogoutOutcome::Redirect(location))) => Reply::redirect(location),
        Ok(Ok(LogoutOutcome::LoggedOut)) => pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {}),
        Ok(Ok(LogoutOutcome::Confirm { csrf, client_name, client_id, redirect })) => {
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
        Ok(Err(FlowError::Refused { kind, message })) => {
            return pages::error_page(status_of(kind), "invalid_request", &message);
        }
        Ok(Err(e)) => {
            return failed(ApiError::from(e).status);
        }
        Err(e) => return failed(e.status),
    };
    reply
        .with_cookie(cookies::removal(SESSION_COOKIE, secure))
        .with_cookie(cookies::removal(LOGOUT_CSRF_COOKIE, secure))
}
