//! The HTTP side of the authorization flow (`guise_flow::authorization`): the session
//! cookie, and a `FlowOutcome` as a reply — a redirect, an auto-POST form or an error page
//! — or a `SignOutOutcome` (the cookie removed when the session ended).

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::cookies::{self, SESSION_COOKIE};
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_flow::authorization::{FlowOutcome, SignOutOutcome};

/// A flow's outcome as the browser's next step.
pub trait IntoReply {
    fn into_reply(self) -> Reply;
}

impl IntoReply for FlowOutcome {
    fn into_reply(self) -> Reply {
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

/// A browser page's work, run off the async workers; a failure there (the database, say)
/// is the error page with its status.
pub async fn page(
    state: web::Data<AppState>,
    work: impl FnOnce(&AppState) -> Result<Reply, ApiError> + Send + 'static,
) -> Reply {
    state.into_inner().blocking(work).await.unwrap_or_else(|e| failed(e.status))
}

/// The page for a request that could not be completed.
pub fn failed(status: StatusCode) -> Reply {
    pages::error_page(status, "server_error", "The request could not be completed")
}

/// A request that may have ended the session as the browser's next step: the cookie goes
/// only when the session ended.
pub fn sign_out_reply(outcome: SignOutOutcome, secure: bool) -> Reply {
    let reply = match outcome {
        SignOutOutcome::Continue(outcome) => return outcome.into_reply(),
        SignOutOutcome::SignedOut { reply: Some(url) } => Reply::redirect(url),
        SignOutOutcome::SignedOut { reply: None } => {
            pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {})
        }
    };
    reply.with_cookie(cookies::removal(SESSION_COOKIE, secure))
}

/// Send parameters to a (validated) redirect URI by query string or auto-POST form.
fn deliver(redirect_uri: &str, response_mode: &str, params: &[(&str, String)]) -> Reply {
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

/// The session cookie's value, if the browser sent one.
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned())
}
