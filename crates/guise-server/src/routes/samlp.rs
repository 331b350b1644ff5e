//! SAML 2.0 IdP endpoints (Auth0's paths): metadata, SP- and IdP-initiated single sign-on
//! over the HTTP-Redirect and HTTP-POST bindings, and single logout of the guise session.
//! The rules are `guise_saml::sso`'s and `slo`'s, run by `guise_flow::saml`.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{IntoReply, page, session_cookie, sign_out_reply};
use crate::state::AppState;
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_flow::saml::saml_client;
use guise_saml::metadata::{Endpoints, idp_metadata};
use guise_saml::sso::{Binding, SamlParams};

pub async fn metadata(state: web::Data<AppState>, client_id: web::Path<String>) -> HttpResponse {
    let client_id = client_id.into_inner();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let (Ok((_, settings)), Some(signer)) = (saml_client(&s.flow(), &client_id)?, s.keys.saml_signer()) else {
                return Ok(None);
            };
            let (sso, slo) = (format!("/samlp/{client_id}"), format!("/samlp/{client_id}/logout"));
            let endpoints = Endpoints {
                entity_id: &s.settings.issuer,
                sso_url: &s.settings.endpoint(&sso),
                slo_url: &s.settings.endpoint(&slo),
                want_authn_requests_signed: settings.signing_cert.is_some(),
            };
            Ok(Some(idp_metadata(&signer, &endpoints).map_err(|e| ApiError::internal(&e))?))
        })
        .await;
    xml_or_not_found(result, "application/samlmetadata+xml", "No SAML client with this id")
}

/// Metadata, or Auth0's `404 inexistent_client` JSON for a client without it.
pub fn xml_or_not_found(result: Result<Option<String>, ApiError>, content_type: &str, message: &str) -> HttpResponse {
    match result {
        Ok(Some(xml)) => HttpResponse::Ok().content_type(content_type.to_owned()).body(xml),
        Ok(None) => HttpResponse::NotFound().json(serde_json::json!({
            "statusCode": 404, "error": "Not Found", "message": message, "errorCode": "inexistent_client",
        })),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

pub async fn sso_get(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    // A query that does not parse is an error, not IdP-initiated SSO.
    let Ok(params) = web::Query::<SamlParams>::from_query(req.query_string()).map(|q| q.into_inner()) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed SAML request parameters");
    };
    let binding = Binding::Redirect(req.query_string().to_owned());
    sso(req, state, client_id.into_inner(), params, binding).await
}

pub async fn sso_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    client_id: web::Path<String>,
    form: web::Form<SamlParams>,
) -> Reply {
    sso(req, state, client_id.into_inner(), form.into_inner(), Binding::Post).await
}

async fn sso(
    req: HttpRequest,
    state: web::Data<AppState>,
    client_id: String,
    params: SamlParams,
    binding: Binding,
) -> Reply {
    let cookie = session_cookie(&req);
    page(state, move |s| {
        Ok(guise_flow::saml::sign_in(&s.flow(), &client_id, &params, &binding, cookie.as_deref())?.into_reply())
    })
    .await
}

/// Single logout of the guise session (`guise_flow::saml::logout`); the cookie goes only
/// when the session ended.
pub async fn logout(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    let Ok(params) = web::Query::<SamlParams>::from_query(req.query_string()).map(|q| q.into_inner()) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed SAML request parameters");
    };
    let raw_query = req.query_string().to_owned();
    let cookie = session_cookie(&req);
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    page(state, move |s| {
        let outcome = guise_flow::saml::logout(
            &s.flow(),
            &client_id,
            &params,
            &raw_query,
            cookie.as_deref(),
            meta.source_ip.clone(),
        )?;
        Ok(sign_out_reply(outcome, s.secure_cookies()))
    })
    .await
}
