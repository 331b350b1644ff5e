//! SAML 2.0 IdP endpoints (Auth0's paths): metadata, SP- and IdP-initiated single sign-on
//! over the HTTP-Redirect and HTTP-POST bindings, and single logout of the guise session.
//! A sign-on request's rules are `guise_saml::sso`'s, run by `guise_flow::saml::sign_in`.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{IntoReply, session_cookie};
use crate::state::AppState;
use crate::web::cookies::{self, SESSION_COOKIE};
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::store::BewitStore;
use guise_flow::saml::saml_client;
use guise_saml::request;
use guise_saml::sso::{Binding, SamlParams};

pub async fn metadata(state: web::Data<AppState>, client_id: web::Path<String>) -> HttpResponse {
    let client_id = client_id.into_inner();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let wants_signed = match saml_client(&s.flow(), &client_id)? {
                Ok((_, settings)) => Some(settings.signing_cert.is_some()),
                Err(_) => None,
            };
            let signer = s.keys.saml_signer();
            Ok::<_, ApiError>(match (wants_signed, signer) {
                (Some(wants_signed), Some(signer)) => {
                    let sso = s.settings.endpoint(&format!("/samlp/{client_id}"));
                    let slo = s.settings.endpoint(&format!("/samlp/{client_id}/logout"));
                    let entity = crate::saml::entity_id(s);
                    Some(
                        guise_saml::metadata::idp_metadata(
                            &signer,
                            &guise_saml::metadata::Endpoints {
                                entity_id: &entity,
                                sso_url: &sso,
                                slo_url: &slo,
                                want_authn_requests_signed: wants_signed,
                            },
                        )
                        .map_err(|e| ApiError::internal(&e))?,
                    )
                }
                _ => None,
            })
        })
        .await;
    match result {
        Ok(Some(xml)) => HttpResponse::Ok().content_type("application/samlmetadata+xml").body(xml),
        Ok(None) => HttpResponse::NotFound().json(serde_json::json!({
            "statusCode": 404, "error": "Not Found", "message": "No SAML client with this id", "errorCode": "inexistent_client",
        })),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

pub async fn sso_get(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    // A query that does not parse is an error, not IdP-initiated SSO.
    let Ok(params) = web::Query::<SamlParams>::from_query(req.query_string()).map(|q| q.into_inner()) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed SAML request parameters");
    };
    let raw_query = req.query_string().to_owned();
    sso(req, state, client_id.into_inner(), params, Binding::Redirect { raw_query }).await
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
    let result = state
        .into_inner()
        .blocking(move |s| {
            Ok::<_, ApiError>(guise_flow::saml::sign_in(&s.flow(), &client_id, &params, &binding, cookie.as_deref())?)
        })
        .await;
    match result {
        Ok(outcome) => outcome.into_reply(),
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}

/// Single logout: end the guise session; answer a LogoutRequest with a LogoutResponse to
/// the client's `logout.callback` when one is registered. A client with a `signingCert`
/// must sign its LogoutRequests (HTTP-Redirect binding): an unsigned or badly signed
/// one, or a logout without any request, is refused before anything ends.
pub async fn logout(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    let Ok(params) = web::Query::<SamlParams>::from_query(req.query_string()).map(|q| q.into_inner()) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed SAML request parameters");
    };
    let raw_query = req.query_string().to_owned();
    let cookie = session_cookie(&req);
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let secure = state.secure_cookies();
    let client_id = client_id.into_inner();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let now = s.clock.now();
            let refuse = |description: &str| {
                Ok::<_, ApiError>((pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", description), false))
            };
            let (client, settings) = match saml_client(&s.flow(), &client_id)? {
                Ok(found) => found,
                Err(outcome) => return Ok((outcome.into_reply(), false)),
            };
            if let Some(cert) = &settings.signing_cert {
                if params.saml_request.is_none() {
                    return refuse("This client requires a signed LogoutRequest");
                }
                if let Err(e) = request::verify_redirect_signature(&raw_query, cert) {
                    return refuse(&e.to_string());
                }
            }
            let logout_request = match &params.saml_request {
                Some(encoded) => {
                    match request::decode_redirect(encoded).and_then(|xml| request::parse_logout_request(&xml)) {
                        Ok(parsed) => Some(parsed),
                        Err(e) => return refuse(&e.to_string()),
                    }
                }
                None => None,
            };
            // A signed LogoutRequest proves the SP asked, once, lately: it must name the
            // registered entity id, be recent, and not have been used before (any node).
            if settings.signing_cert.is_some()
                && let Some(request) = &logout_request
            {
                if !settings.issuer_matches(&client.client_id, request.issuer.as_deref()) {
                    return refuse("The LogoutRequest's Issuer is not this client's registered entity id");
                }
                let window = chrono::Duration::minutes(LOGOUT_REQUEST_WINDOW_MINUTES);
                let skew = chrono::Duration::seconds(guise_core::bewit::MAX_CLOCK_SKEW_SECS);
                match request.issue_instant {
                    Some(at) if at > now - window && at < now + skew => {}
                    _ => return refuse("The LogoutRequest is not recent (IssueInstant)"),
                }
                let key = format!("samlp-logout:{}:{}", client.client_id, request.id);
                if !s.db.redeem_once(&key, now, now + window + skew)? {
                    return refuse("This LogoutRequest was already used");
                }
            }
            guise_flow::authorization::end_cookie_session(
                &s.flow(),
                cookie.as_deref(),
                Some(client.client_id.clone()),
                meta.source_ip.clone(),
                "Logged out (SAML)",
            )?;
            // The callback must be a registered URL of the client, like every redirect.
            let callback = settings.logout_callback.as_ref().filter(|c| client.accepts_sign_out_reply(c));
            let reply = match (logout_request, callback) {
                (Some(request), Some(callback)) => {
                    let xml =
                        guise_saml::response::logout_response(&crate::saml::entity_id(s), callback, &request.id, now);
                    let encoded = deflate_base64(&xml);
                    let mut url =
                        url::Url::parse(callback).map_err(|_| ApiError::bad_request("invalid logout callback"))?;
                    url.query_pairs_mut().append_pair("SAMLResponse", &encoded);
                    if let Some(relay) = &params.relay_state {
                        url.query_pairs_mut().append_pair("RelayState", relay);
                    }
                    Reply::redirect(url.to_string())
                }
                _ => pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {}),
            };
            Ok((reply, true))
        })
        .await;
    match result {
        // The cookie goes only when the session was ended.
        Ok((reply, true)) => reply.with_cookie(cookies::removal(SESSION_COOKIE, secure)),
        Ok((reply, false)) => reply,
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}

/// How old a signed LogoutRequest may be; its ID is remembered for as long (plus the
/// clock skew), so a replay is refused on every node.
const LOGOUT_REQUEST_WINDOW_MINUTES: i64 = 10;

fn deflate_base64(xml: &str) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = encoder.write_all(xml.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap_or_default())
}
