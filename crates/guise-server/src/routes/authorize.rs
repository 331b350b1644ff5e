//! `GET`/`POST /authorize`: the HTTP of `guise_flow::authorization::authorize`.

use crate::flow::{IntoReply, page, session_cookie};
use crate::state::AppState;
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_oidc::authorize::AuthorizeParams;

pub async fn authorize_get(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    match web::Query::<AuthorizeParams>::from_query(req.query_string()) {
        Ok(params) => authorize(req, state, params.into_inner()).await,
        Err(_) => pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed authorization request"),
    }
}

pub async fn authorize_post(req: HttpRequest, state: web::Data<AppState>, form: web::Form<AuthorizeParams>) -> Reply {
    authorize(req, state, form.into_inner()).await
}

async fn authorize(req: HttpRequest, state: web::Data<AppState>, params: AuthorizeParams) -> Reply {
    let cookie = session_cookie(&req);
    page(state, move |s| Ok(guise_flow::authorization::authorize(&s.flow(), &params, cookie.as_deref())?.into_reply()))
        .await
}
