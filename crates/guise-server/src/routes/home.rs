//! `GET /`: who is signed in at guise — with the impersonation banner when the session
//! is an impersonation, so the person behind it always sees so.

use crate::error::ApiError;
use crate::flow::{current_session, session_cookie};
use crate::state::AppState;
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_core::store::UserStore;
use minijinja::context;

pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let cookie = session_cookie(&req);
    let result = state
        .into_inner()
        .blocking(move |s| {
            let now = s.clock.now();
            let end_token = cookie.as_deref().map(crate::console::session::end_impersonation_token);
            let Some(session) = current_session(s, cookie.as_deref(), now)? else {
                return Ok::<_, ApiError>(pages::render(StatusCode::OK, "home.html", context! {}));
            };
            let user = s.db.user_by_id(&session.user_id)?;
            let impersonation = match &session.impersonator_id {
                Some(id) => {
                    let impersonator = s.db.user_by_id(id).map(|u| u.email).unwrap_or_else(|_| id.clone());
                    Some(context! {
                        impersonator => impersonator,
                        user => user.email.clone(),
                        reason => session.impersonation_reason.clone(),
                        ends_at => session.absolute_expires_at.to_rfc3339(),
                        minutes_left => (session.absolute_expires_at - now).num_minutes().max(0),
                        end_token => end_token,
                    })
                }
                None => None,
            };
            Ok(pages::render(
                StatusCode::OK,
                "home.html",
                context! { user_email => user.email, impersonation => impersonation },
            ))
        })
        .await;
    result.unwrap_or_else(|e| pages::error_page(e.status, "server_error", "The request could not be completed"))
}
