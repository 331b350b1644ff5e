//! WS-Federation passive requestor endpoints (Auth0's paths): `wa=wsignin1.0`,
//! `wsignout1.0`, `wsignoutcleanup1.0` at `/wsfed/{client_id}` (or `/wsfed` with
//! `wtrealm`), and signed federation metadata. A request's rules are
//! `guise_wsfed::request`'s, run by `guise_flow::wsfed::request`.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{page, session_cookie, sign_out_reply};
use crate::state::AppState;
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_flow::wsfed::relying_party_for;
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
    page(state, move |s| {
        let (id, cookie) = (client_id.as_deref(), cookie.as_deref());
        let outcome = guise_flow::wsfed::request(&s.flow(), id, &params, cookie, meta.source_ip.clone())?;
        Ok(sign_out_reply(outcome, s.secure_cookies()))
    })
    .await
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
                    guise_wsfed::metadata::federation_metadata(&signer, &s.settings.issuer, &passive)
                        .map_err(|e| ApiError::internal(&e))
                })
                .transpose()
        })
        .await;
    super::samlp::xml_or_not_found(result, "application/xml", "No WS-Federation client with this id")
}
