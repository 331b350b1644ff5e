//! `GET`/`POST /userinfo` (OIDC Core §5.3), bearer token in the header or (POST) body.

use crate::auth::bearer_token;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use guise_oidc::userinfo::{UserInfoError, userinfo};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct BodyToken {
    access_token: Option<String>,
}

/// RFC 6750 §3: errors in `WWW-Authenticate`.
fn challenge(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let description = description.replace('"', "'");
    HttpResponse::build(status)
        .insert_header((
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"{error}\", error_description=\"{description}\""),
        ))
        .json(serde_json::json!({ "error": error, "error_description": description }))
}

async fn answer(state: web::Data<AppState>, token: Option<String>) -> HttpResponse {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return HttpResponse::Unauthorized().insert_header((header::WWW_AUTHENTICATE, "Bearer")).finish();
    };
    let result = state
        .into_inner()
        .blocking(move |s| {
            let keys = s.keys.current();
            Ok::<_, crate::error::ApiError>(userinfo(&s.token_context(&keys), &token))
        })
        .await;
    match result {
        Ok(Ok(claims)) => HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::NoStore])).json(claims),
        Ok(Err(UserInfoError::InvalidToken(d))) => challenge(StatusCode::UNAUTHORIZED, "invalid_token", &d),
        Ok(Err(UserInfoError::InsufficientScope)) => {
            challenge(StatusCode::FORBIDDEN, "insufficient_scope", "The access token does not carry the openid scope")
        }
        Ok(Err(UserInfoError::Server)) | Err(_) => {
            HttpResponse::InternalServerError().json(serde_json::json!({ "error": "server_error" }))
        }
    }
}

pub async fn userinfo_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    answer(state, bearer_token(&req)).await
}

pub async fn userinfo_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Option<web::Form<BodyToken>>,
) -> HttpResponse {
    let from_body = body.and_then(|b| b.into_inner().access_token);
    match (bearer_token(&req), from_body) {
        (Some(_), Some(_)) => challenge(StatusCode::BAD_REQUEST, "invalid_request", "Send the token in one place only"),
        (header, body) => answer(state, header.or(body)).await,
    }
}
