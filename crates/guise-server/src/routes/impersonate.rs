//! `POST /users/{user_id}/impersonate` (Auth0's legacy impersonation API: answers the URL
//! as `text/plain`) and `GET /impersonate/redeem` (following the URL).

use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::impersonation::{Delivery, MintError, MintRequest, Minter, mint, redeem};
use crate::state::AppState;
use crate::web::cookies;
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::permission::scopes;
use serde_json::Value;

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The body as JSON, or a form with `additionalParameters[x]` keys folded into an object.
fn body_value(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut value = serde_json::json!({ "additionalParameters": {} });
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.strip_prefix("additionalParameters[").and_then(|k| k.strip_suffix(']')) {
                Some(inner) => match value.get_mut("additionalParameters").and_then(Value::as_object_mut) {
                    Some(extra) => {
                        extra.insert(inner.to_owned(), Value::String(v.into_owned()));
                    }
                    None => return Err(ApiError::bad_request("additionalParameters is given twice")),
                },
                None => value[k.as_ref()] = Value::String(v.into_owned()),
            }
        }
        return Ok(value);
    }
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request("Invalid request payload JSON format"))
}

fn mint_request(user_id: String, body: &Value) -> Result<MintRequest, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("Payload validation error: 'Expected type object'"));
    }
    let extra = body.get("additionalParameters").cloned().unwrap_or(Value::Null);
    let ttl = match body.get("ttl") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            text(body, "ttl")
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request(format!("ttl must be a number of seconds, not {v}")))?,
        ),
    };
    Ok(MintRequest {
        target_user_id: user_id,
        impersonator_id: text(body, "impersonator_id"),
        client_id: text(body, "client_id")
            .ok_or_else(|| ApiError::bad_request("Missing required property: client_id"))?,
        protocol: text(body, "protocol").ok_or_else(|| ApiError::bad_request("Missing required property: protocol"))?,
        response_type: text(&extra, "response_type"),
        scope: text(&extra, "scope"),
        state: text(&extra, "state"),
        nonce: text(&extra, "nonce"),
        callback_url: text(&extra, "callback_url").or_else(|| text(&extra, "redirect_uri")),
        reason: text(body, "reason"),
        ttl,
    })
}

pub async fn impersonate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    user_id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let scope_granted = caller.claims.has_scope(scopes::IMPERSONATE_USERS);
    let request = mint_request(user_id.into_inner(), &body_value(&req, &body)?)?;
    // A call acting as someone may not mint; otherwise the token holder is the first
    // link of the impersonation's chain, with what it holds now.
    let minter = match (caller.holder(), &caller.acting_as) {
        (Some(holder), None) => Minter::Token(holder.clone()),
        (Some(holder), Some(_)) => Minter::ActingAs(holder.principal.clone()),
        (None, _) => return Err(ApiError::internal(&"a verified caller without a token holder")),
    };
    let outcome = state
        .into_inner()
        .blocking(move |s| Ok::<_, ApiError>(mint(s, minter, scope_granted, request, meta.source_ip)))
        .await?;
    match outcome {
        Ok(url) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header(CacheControl(vec![CacheDirective::NoStore]))
            .body(url)),
        Err(MintError::Refused(r)) => {
            let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let code = match r.status() {
                403 => "insufficient_permissions",
                404 => "inexistent_user",
                _ => "invalid_body",
            };
            Err(ApiError::new(status, code, r.to_string()))
        }
        Err(MintError::Server(e)) => Err(ApiError::internal(&e)),
    }
}

pub async fn redeem_url(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let path_and_query = match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => req.path().to_owned(),
    };
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let user_agent =
        req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    let secure = state.secure_cookies();
    let result = state
        .into_inner()
        .blocking(move |s| redeem(s, &path_and_query, meta.source_ip, user_agent).map_err(ApiError::from))
        .await;
    match result {
        Ok(Ok(redeemed)) => {
            let reply = match redeemed.delivery {
                Delivery::Redirect(location) => Reply::redirect(location),
                Delivery::FormPost { action, fields } => pages::form_post(&action, &fields),
            };
            reply.with_cookie(cookies::session(redeemed.cookie, secure))
        }
        Ok(Err(refusal)) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNAUTHORIZED);
            pages::error_page(status, "Impersonation refused", &refusal.message)
        }
        Err(e) => pages::error_page(e.status, "server_error", "The request could not be completed"),
    }
}
