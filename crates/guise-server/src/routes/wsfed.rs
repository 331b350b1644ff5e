//! WS-Federation passive requestor endpoints (Auth0's paths): `wa=wsignin1.0`,
//! `wsignout1.0`, `wsignoutcleanup1.0` at `/wsfed/{client_id}` (or `/wsfed` with
//! `wtrealm`), and signed federation metadata. A request's rules are
//! `guise_wsfed::request`'s, run by `guise_flow::wsfed::request`.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{IntoReply, session_cookie};
use crate::state::AppState;
use crate::web::cookies::{self, SESSION_COOKIE};
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_flow::wsfed::{WsfedOutcome, relying_party_for};
use guise_wsfed::request::WsfedParams;

pub async fn wsfed_for_client(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    wsfed(req, state, Some(client_id.into_inner())).await
}

pub async fn wsfed_by_realm(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    wsfed(req, state, None).await
}

async fn wsfed(req: HttpRequest, state: web::Data<AppState>, client_id: Option<String>) -> Reply {
    let Ok(params) = web::Query::<WsfedParams>::from_query(req.query_string()).map(|q| q.into_inner()) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed request");
    };
    let cookie = session_cookie(&req);
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let secure = state.secure_cookies();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let (id, cookie) = (client_id.as_deref(), cookie.as_deref());
            Ok::<_, ApiError>(guise_flow::wsfed::request(&s.flow(), id, &params, cookie, meta.source_ip)?)
        })
        .await;
    let removal = || cookies::removal(SESSION_COOKIE, secure);
    match result {
        Ok(WsfedOutcome::Continue(outcome)) => outcome.into_reply(),
        Ok(WsfedOutcome::SignedOut { reply: Some(url) }) => Reply::redirect(url).with_cookie(removal()),
        Ok(WsfedOutcome::SignedOut { reply: None }) => {
            pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {}).with_cookie(removal())
        }
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}

pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    metadata_for(state, None).await
}

pub async fn client_metadata(state: web::Data<AppState>, client_id: web::Path<String>) -> HttpResponse {
    metadata_for(state, Some(client_id.into_inner())).await
}

async fn metadata_for(state: web::Data<AppState>, client_id: Option<String>) -> HttpResponse {
    let result = state
        .into_inner()
        .blocking(move |s| {
            if let Some(id) = &client_id
                && relying_party_for(&s.flow(), Some(id), None)?.is_err()
            {
                return Ok::<_, ApiError>(None);
            }
            let passive = match &client_id {
                Some(id) => s.settings.endpoint(&format!("/wsfed/{id}")),
                None => s.settings.endpoint("/wsfed"),
            };
            s.keys
                .saml_signer()
                .map(|signer| {
                    guise_wsfed::metadata::federation_metadata(&signer, &crate::saml::entity_id(s), &passive)
                        .map_err(|e| ApiError::internal(&e))
                })
                .transpose()
        })
        .await;
    match result {
        Ok(Some(xml)) => HttpResponse::Ok().content_type("application/xml").body(xml),
        Ok(None) => HttpResponse::NotFound().json(serde_json::json!({
            "statusCode": 404, "error": "Not Found", "message": "No WS-Federation client with this id", "errorCode": "inexistent_client",
        })),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}
