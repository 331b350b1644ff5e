//! WS-Federation passive requestor endpoints (Auth0's paths): `wa=wsignin1.0`,
//! `wsignout1.0`, `wsignoutcleanup1.0` at `/wsfed/{client_id}` (or `/wsfed` with
//! `wtrealm`), and signed federation metadata. An unknown realm or an unregistered
//! `wreply` gets an error page, never a redirect.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::flow::{IntoReply, session_cookie};
use crate::management_client::all_clients;
use crate::state::AppState;
use crate::web::cookies::{self, SESSION_COOKIE};
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::StoreError;
use guise_core::authorization::{PendingAuthorization, PendingProtocol, PendingWsfed};
use guise_core::client::Client;
use guise_core::store::ClientStore;
use guise_flow::authorization::{FlowOutcome, begin, continue_authorization, current_session};
use guise_wsfed::settings::{WsfedSettings, from_addons};
use serde::Deserialize;

/// Longest value accepted for any WS-Fed parameter.
const MAX_PARAM: usize = 2048;

#[derive(Debug, Default, Deserialize)]
pub struct WsfedParams {
    wa: Option<String>,
    wtrealm: Option<String>,
    wreply: Option<String>,
    wctx: Option<String>,
    wfresh: Option<String>,
}

fn refuse(description: impl Into<String>) -> FlowOutcome {
    FlowOutcome::ErrorPage { error: "invalid_request".into(), description: description.into() }
}

/// Find the client: by path id, or by `wtrealm` (a client's realm, or its id).
fn find(
    s: &AppState,
    client_id: Option<&str>,
    realm: Option<&str>,
) -> Result<Option<(Client, WsfedSettings)>, ApiError> {
    let with_settings = |client: Client| -> Option<(Client, WsfedSettings)> {
        let settings = from_addons(&client.client_id, &client.addons).ok().flatten()?;
        Some((client, settings))
    };
    if let Some(id) = client_id {
        return match s.db.client_by_id(id) {
            Ok(client) => Ok(with_settings(client)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let Some(realm) = realm else { return Ok(None) };
    Ok(all_clients(&s.db)?.into_iter().filter_map(with_settings).find(|(_, settings)| settings.realm == realm))
}

pub async fn wsfed_for_client(req: HttpRequest, state: web::Data<AppState>, client_id: web::Path<String>) -> Reply {
    wsfed(req, state, Some(client_id.into_inner())).await
}

pub async fn wsfed_by_realm(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    wsfed(req, state, None).await
}

async fn wsfed(req: HttpRequest, state: web::Data<AppState>, client_id: Option<String>) -> Reply {
    let params = web::Query::<WsfedParams>::from_query(req.query_string()).map(|q| q.into_inner());
    let cookie = session_cookie(&req);
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let secure = state.secure_cookies();
    let result = state
        .into_inner()
        .blocking(move |s| {
            let Ok(params) = params else {
                return Ok::<_, ApiError>((refuse("Malformed request").into_reply(), false));
            };
            let values = [&params.wa, &params.wtrealm, &params.wreply, &params.wctx, &params.wfresh];
            if values.iter().any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_PARAM)) {
                return Ok((refuse("A parameter is too long").into_reply(), false));
            }
            let Some((client, settings)) = find(s, client_id.as_deref(), params.wtrealm.as_deref())? else {
                return Ok((
                    refuse("Unknown realm or client, or WS-Federation is not enabled for it").into_reply(),
                    false,
                ));
            };
            if let Some(realm) = &params.wtrealm
                && *realm != settings.realm
            {
                return Ok((refuse("wtrealm does not match the client's realm").into_reply(), false));
            }
            let ctx = s.flow();
            match params.wa.as_deref() {
                Some("wsignin1.0") => {
                    let reply = match params.wreply.clone().or_else(|| client.callbacks.first().cloned()) {
                        Some(reply) if client.is_registered_callback(&reply) => reply,
                        Some(_) => {
                            return Ok((
                                refuse("wreply is not a registered callback of the client").into_reply(),
                                false,
                            ));
                        }
                        None => return Ok((refuse("The client has no registered callback").into_reply(), false)),
                    };
                    let (prompt, max_age) = match params.wfresh.as_deref().map(str::parse::<i64>) {
                        None => (vec![], None),
                        Some(Ok(0)) => (vec!["login".to_owned()], None),
                        Some(Ok(minutes)) if minutes > 0 => (vec![], Some(minutes.saturating_mul(60))),
                        Some(_) => return Ok((refuse("wfresh must be a number of minutes").into_reply(), false)),
                    };
                    let pending = PendingAuthorization {
                        client_id: client.client_id.clone(),
                        redirect_uri: reply.clone(),
                        scope: vec!["openid".into(), "profile".into(), "email".into()],
                        state: None,
                        nonce: None,
                        code_challenge: None,
                        audience: None,
                        prompt,
                        max_age,
                        login_hint: None,
                        response_mode: "form_post".into(),
                        protocol: PendingProtocol::Wsfed(PendingWsfed {
                            realm: settings.realm.clone(),
                            reply,
                            wctx: params.wctx.clone(),
                            rms: settings.rms,
                        }),
                    };
                    let record = begin(&ctx, pending)?;
                    let session = current_session(&ctx, cookie.as_deref())?;
                    Ok((continue_authorization(&ctx, &record, session.as_ref(), false)?.into_reply(), false))
                }
                Some("wsignout1.0") | Some("wsignoutcleanup1.0") => {
                    // Validate wreply before ending anything: a refused sign-out leaves the
                    // session as it was.
                    let registered = |url: &String| client.accepts_sign_out_reply(url);
                    let reply = match &params.wreply {
                        Some(url) if registered(url) => Reply::redirect(url.clone()),
                        Some(_) => {
                            return Ok((
                                refuse("wreply is not a registered logout URL of the client").into_reply(),
                                false,
                            ));
                        }
                        None => pages::render(StatusCode::OK, "logged_out.html", minijinja::context! {}),
                    };
                    end_session(s, cookie.as_deref(), &client, &meta)?;
                    Ok((reply, true))
                }
                Some(_) => {
                    Ok((refuse("Unsupported wa (wsignin1.0, wsignout1.0 or wsignoutcleanup1.0)").into_reply(), false))
                }
                None => Ok((refuse("Missing wa").into_reply(), false)),
            }
        })
        .await;
    match result {
        Ok((reply, true)) => reply.with_cookie(cookies::removal(SESSION_COOKIE, secure)),
        Ok((reply, false)) => reply,
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}

fn end_session(s: &AppState, cookie: Option<&str>, client: &Client, meta: &RequestMeta) -> Result<(), ApiError> {
    guise_flow::authorization::end_cookie_session(
        &s.flow(),
        cookie,
        Some(client.client_id.clone()),
        meta.source_ip.clone(),
        "Logged out (WS-Federation)",
    )
    .map_err(ApiError::from)
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
                && find(s, Some(id), None)?.is_none()
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
