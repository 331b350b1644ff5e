//! `GET`/`POST /authorize`: validate, then hand over to login, consent or code delivery.

use crate::error::ApiError;
use crate::flow::{IntoReply, session_cookie};
use crate::state::AppState;
use crate::web::pages;
use crate::web::pages::Reply;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_core::StoreError;
use guise_core::store::ClientStore;
use guise_flow::authorization::{FlowOutcome, start};
use guise_oidc::authorize::{AuthorizeError, AuthorizeParams, validate};

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
    let outcome = state
        .into_inner()
        .blocking(move |s| {
            let ctx = s.flow();
            let client = match params.client_id.as_deref().filter(|id| !id.is_empty() && id.len() <= 128) {
                Some(id) => match s.db.client_by_id(id) {
                    Ok(client) => Some(client),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(ApiError::from(e)),
                },
                None => None,
            };
            let request = match validate(&params, client.as_ref()) {
                Ok(request) => request,
                Err(AuthorizeError::Page { error, description }) => {
                    return Ok(FlowOutcome::ErrorPage { error, description });
                }
                Err(AuthorizeError::Redirect { redirect_uri, response_mode, state, error, description }) => {
                    let mut params = vec![("error", error.to_owned()), ("error_description", description)];
                    if let Some(state) = state {
                        params.push(("state", state));
                    }
                    params.push(("iss", s.settings.issuer.clone()));
                    return Ok(FlowOutcome::Deliver { redirect_uri, response_mode, params });
                }
            };
            Ok(start(&ctx, request, cookie.as_deref())?)
        })
        .await;
    match outcome {
        Ok(outcome) => outcome.into_reply(),
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}
