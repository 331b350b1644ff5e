//! `GET`/`POST /oidc/logout`: RP-initiated logout. Ends the guise session (revoking the
//! tokens minted from it), then returns to a registered `post_logout_redirect_uri`.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::session_cookie;
use crate::state::AppState;
use crate::web::cookies::{self, SESSION_COOKIE};
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_core::StoreError;
use guise_core::store::ClientStore;
use guise_oidc::logout::{post_logout_redirect_allowed, verify_id_token_hint};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
}

enum LogoutOutcome {
    Redirect(String),
    LoggedOut,
    Refused(String),
}

pub async fn logout_get(req: HttpRequest, state: web::Data<AppState>, query: web::Query<LogoutParams>) -> Reply {
    logout(req, state, query.into_inner()).await
}

pub async fn logout_post(req: HttpRequest, state: web::Data<AppState>, form: web::Form<LogoutParams>) -> Reply {
    logout(req, state, form.into_inner()).await
}

async fn logout(req: HttpRequest, state: web::Data<AppState>, params: LogoutParams) -> Reply {
    let cookie = session_cookie(&req);
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let secure = state.secure_cookies();
    let result = state.into_inner().blocking(move |s| decide(s, params, cookie, meta)).await;
    let reply = match result {
        Ok(LogoutOutcome::Redirect(location)) => Reply::redirect(location),
        Ok(LogoutOutcome::LoggedOut) => pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {}),
        Ok(LogoutOutcome::Refused(description)) => {
            return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", &description);
        }
        Err(e) => return pages::error_page(e.status, "server_error", "The request could not be completed"),
    };
    reply.with_cookie(cookies::removal(SESSION_COOKIE, secure))
}

fn decide(
    s: &AppState,
    params: LogoutParams,
    cookie: Option<String>,
    meta: RequestMeta,
) -> Result<LogoutOutcome, ApiError> {
    let hint = match params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(token) => match verify_id_token_hint(&s.keys.current(), &s.settings.issuer, token) {
            Some(hint) => Some(hint),
            None => {
                return Ok(LogoutOutcome::Refused("The id_token_hint is not a valid ID token from this issuer".into()));
            }
        },
        None => None,
    };
    let client_id = match (&hint, params.client_id.as_deref()) {
        (Some(h), Some(id)) if h.client_id != id => {
            return Ok(LogoutOutcome::Refused("client_id does not match the id_token_hint".into()));
        }
        (Some(h), _) => Some(h.client_id.clone()),
        (None, id) => id.map(str::to_owned),
    };
    let redirect = match params.post_logout_redirect_uri.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let Some(client_id) = &client_id else {
                return Ok(LogoutOutcome::Refused("post_logout_redirect_uri needs id_token_hint or client_id".into()));
            };
            let client = match s.db.client_by_id(client_id) {
                Ok(client) => client,
                Err(StoreError::NotFound) => return Ok(LogoutOutcome::Refused("Unknown client".into())),
                Err(e) => return Err(e.into()),
            };
            if !post_logout_redirect_allowed(&client, uri) {
                return Ok(LogoutOutcome::Refused(
                    "post_logout_redirect_uri is not an allowed logout URL of the client".into(),
                ));
            }
            let mut url =
                url::Url::parse(uri).map_err(|_| ApiError::bad_request("invalid post_logout_redirect_uri"))?;
            if let Some(state) = &params.state {
                url.query_pairs_mut().append_pair("state", state);
            }
            Some(url.to_string())
        }
    };
    crate::flow::end_cookie_session(s, cookie.as_deref(), client_id, meta.source_ip, "Logged out")?;
    Ok(match redirect {
        Some(location) => LogoutOutcome::Redirect(location),
        None => LogoutOutcome::LoggedOut,
    })
}
