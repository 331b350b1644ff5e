//! SAML 2.0 IdP endpoints (Auth0's paths): metadata, SP- and IdP-initiated single sign-on
//! over the HTTP-Redirect and HTTP-POST bindings, and single logout of the guise session.
//! Until the ACS URL is known to be registered, every failure is an error page.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{IntoReply, session_cookie};
use crate::state::AppState;
use crate::web::cookies::{self, SESSION_COOKIE};
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::StoreError;
use guise_core::authorization::{PendingAuthorization, PendingProtocol, PendingSaml};
use guise_core::client::Client;
use guise_core::store::{BewitStore, ClientStore};
use guise_flow::authorization::{FlowOutcome, begin, continue_authorization, current_session};
use guise_saml::request::{self, AuthnRequest};
use guise_saml::response::STATUS_REQUESTER;
use guise_saml::settings::{NAMEID_FORMATS, NAMEID_UNSPECIFIED, SamlSettings, from_addons};
use serde::Deserialize;

fn page(error: &str, description: impl Into<String>) -> FlowOutcome {
    FlowOutcome::ErrorPage { error: error.to_owned(), description: description.into() }
}

/// The client and its SAML settings, or an error page.
fn saml_client(s: &AppState, client_id: &str) -> Result<Result<(Client, SamlSettings), FlowOutcome>, ApiError> {
    let client = match s.db.client_by_id(client_id) {
        Ok(client) => client,
        Err(StoreError::NotFound) => return Ok(Err(page("invalid_request", "Unknown client"))),
        Err(e) => return Err(e.into()),
    };
    match from_addons(&client.addons) {
        Ok(Some(settings)) => Ok(Ok((client, settings))),
        Ok(None) => Ok(Err(page("invalid_request", "SAML is not enabled for this client"))),
        Err(e) => Ok(Err(page("invalid_request", e.to_string()))),
    }
}

pub async fn metadata(state: web::Data<AppState>, client_id: web::Path<String>) -> HttpResponse {
    let client_id = client_id.into_inner();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let wants_signed = match saml_client(s, &client_id)? {
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

#[derive(Debug, Default, Deserialize)]
pub struct SamlParams {
    #[serde(rename = "SAMLRequest")]
    saml_request: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

enum Binding {
    /// The raw query string, for the signature check.
    Redirect(String),
    Post,
}

pub async fn sso_get(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    // A query that does not parse is an error, not IdP-initiated SSO.
    let Ok(params) = web::Query::<SamlParams>::from_query(req.query_string()).map(|q| q.into_inner()) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_request", "Malformed SAML request parameters");
    };
    let raw = req.query_string().to_owned();
    sso(req, state, client_id.into_inner(), params, Binding::Redirect(raw)).await
}

pub async fn sso_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    client_id: web::Path<String>,
    form: web::Form<SamlParams>,
) -> Reply {
    sso(req, state, client_id.into_inner(), form.into_inner(), Binding::Post).await
}

const MAX_RELAY_STATE: usize = 1024;

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
            let ctx = s.flow();
            let (client, settings) = match saml_client(s, &client_id)? {
                Ok(found) => found,
                Err(outcome) => return Ok::<_, ApiError>(outcome),
            };
            if params.relay_state.as_ref().is_some_and(|r| r.len() > MAX_RELAY_STATE) {
                return Ok(page("invalid_request", "RelayState is too long"));
            }
            let parsed = match &params.saml_request {
                Some(encoded) => match authn_request(&client, &settings, encoded, &binding) {
                    Ok(parsed) => Some(parsed),
                    Err(outcome) => return Ok(*outcome),
                },
                // IdP-initiated SSO: no request, the first registered ACS.
                None => None,
            };
            let pending = match pending_for(&client, &settings, parsed.as_ref(), params.relay_state.clone()) {
                Ok(pending) => pending,
                Err(outcome) => return Ok(*outcome),
            };
            if let (PendingProtocol::Saml(saml), Some(parsed)) = (&pending.protocol, &parsed)
                && !settings.issuer_matches(&client.client_id, parsed.issuer.as_deref())
            {
                // The assertion's Audience is the registered entity id, never the request's
                // Issuer: a request from another entity is refused, to the (registered) ACS.
                tracing::warn!(client_id = %client.client_id, "SAML AuthnRequest Issuer is not the registered entity id");
                return Ok(FlowOutcome::saml_error(
                    &ctx,
                    saml,
                    STATUS_REQUESTER,
                    guise_saml::response::STATUS_REQUEST_DENIED,
                    "The AuthnRequest Issuer is not the entity id registered for this client",
                ));
            }
            // A NameID format the IdP cannot produce is a SAML error, sent to the (registered) ACS.
            if let PendingProtocol::Saml(saml) = &pending.protocol
                && !NAMEID_FORMATS.contains(&saml.name_id_format.as_str())
            {
                return Ok(FlowOutcome::saml_error(
                    &ctx,
                    saml,
                    STATUS_REQUESTER,
                    guise_saml::response::STATUS_INVALID_NAMEID_POLICY,
                    "Unsupported NameID format",
                ));
            }
            let record = begin(&ctx, pending)?;
            let session = current_session(&ctx, cookie.as_deref())?;
            Ok(continue_authorization(&ctx, &record, session.as_ref(), false)?)
        })
        .await;
    match result {
        Ok(outcome) => outcome.into_reply(),
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}

/// Decode, check the signature of, and parse an AuthnRequest; failures are error pages.
fn authn_request(
    client: &Client,
    settings: &SamlSettings,
    encoded: &str,
    binding: &Binding,
) -> Result<AuthnRequest, Box<FlowOutcome>> {
    let bad = |e: &dyn std::fmt::Display| Box::new(page("invalid_request", e.to_string()));
    let xml = match binding {
        Binding::Redirect(raw_query) => {
            if let Some(cert) = &settings.signing_cert {
                request::verify_redirect_signature(raw_query, cert).map_err(|e| bad(&e))?;
            }
            request::decode_redirect(encoded).map_err(|e| bad(&e))?
        }
        Binding::Post => {
            if settings.signing_cert.is_some() {
                return Err(bad(&"This client requires signed requests: use the HTTP-Redirect binding"));
            }
            request::decode_post(encoded).map_err(|e| bad(&e))?
        }
    };
    let parsed = request::parse_authn_request(&xml).map_err(|e| bad(&e))?;
    if let Some(acs) = &parsed.acs_url
        && !client.is_registered_callback(acs)
    {
        return Err(bad(&"The AssertionConsumerServiceURL is not registered for this client"));
    }
    Ok(parsed)
}

/// The pending login a SAML request (or IdP-initiated SSO) becomes.
fn pending_for(
    client: &Client,
    settings: &SamlSettings,
    parsed: Option<&AuthnRequest>,
    relay_state: Option<String>,
) -> Result<PendingAuthorization, Box<FlowOutcome>> {
    let acs_url = match parsed.and_then(|r| r.acs_url.clone()).or_else(|| client.callbacks.first().cloned()) {
        Some(acs) => acs,
        None => {
            return Err(Box::new(page("invalid_request", "The client has no registered ACS URL (callbacks)")));
        }
    };
    let name_id_format = match parsed.and_then(|r| r.name_id_format.clone()) {
        None => settings.name_id_format.clone(),
        Some(format) if format == NAMEID_UNSPECIFIED => settings.name_id_format.clone(),
        Some(format) => format,
    };
    // From the registration only: the request's Issuer is checked against it, never used.
    let audience = settings.entity_id(&client.client_id);
    let mut prompt = Vec::new();
    if parsed.is_some_and(|r| r.is_passive) {
        prompt.push("none".to_owned());
    } else if parsed.is_some_and(|r| r.force_authn) {
        prompt.push("login".to_owned());
    }
    Ok(PendingAuthorization {
        client_id: client.client_id.clone(),
        redirect_uri: acs_url.clone(),
        scope: vec!["openid".into(), "profile".into(), "email".into()],
        state: None,
        nonce: None,
        code_challenge: None,
        audience: None,
        prompt,
        max_age: None,
        login_hint: None,
        response_mode: "form_post".into(),
        protocol: PendingProtocol::Saml(PendingSaml {
            request_id: parsed.map(|r| r.id.clone()),
            acs_url,
            audience,
            relay_state,
            name_id_format,
        }),
    })
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
            let (client, settings) = match saml_client(s, &client_id)? {
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
