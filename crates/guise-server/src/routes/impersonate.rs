//! `POST /users/{user_id}/impersonate` (Auth0's legacy impersonation API: answers the URL
//! as `text/plain`) and `GET /users/{impersonator_id}/impersonate?…&bewit=…` (following
//! the URL; `GET /impersonate/redeem` still follows URLs minted before that shape).

use crate::auth::{Caller, RequestMeta};
use crate::error::{ApiError, status_of};
use crate::flow::failed;
use crate::state::AppState;
use crate::web::cookies;
use crate::web::pages::{self, Reply};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::permission::scopes;
use guise_flow::FlowError;
use guise_flow::delivery::Delivery;
use guise_flow::impersonation::{MintRequest, mint, redeem};
use serde_json::{Map, Value};

const ADDITIONAL: &str = "additionalParameters";

/// A string, number or boolean as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(scalar)
}

/// Whether two values given for one parameter say the same thing: a form's `"60"` and a
/// JSON body's `60` do.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => match (scalar(a), scalar(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn twice(key: &str) -> ApiError {
    if key == ADDITIONAL || key.starts_with("additionalParameters[") {
        ApiError::bad_request("additionalParameters is given twice")
    } else {
        ApiError::bad_request(format!(
            "{} is given twice with different values",
            key.chars().take(64).collect::<String>()
        ))
    }
}

/// `additionalParameters` given as a string holding a JSON object (as Auth0's reference
/// shows it in a query string) is that object.
fn normalise(key: &str, value: Value) -> Value {
    match value {
        Value::String(s) if key == ADDITIONAL && s.trim_start().starts_with('{') => {
            match serde_json::from_str::<Value>(&s) {
                Ok(object @ Value::Object(_)) => object,
                _ => Value::String(s),
            }
        }
        other => other,
    }
}

/// Add one parameter to `into`. The same parameter twice is fine when both say the same
/// thing; `additionalParameters` objects are merged key by key; anything else is a 400.
fn put(into: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), ApiError> {
    let value = normalise(key, value);
    match into.get_mut(key) {
        None => {
            into.insert(key.to_owned(), value);
            Ok(())
        }
        Some(Value::Object(existing)) if key == ADDITIONAL => match value {
            Value::Object(extra) => {
                for (k, v) in extra {
                    match existing.get(&k) {
                        Some(old) if !same(old, &v) => return Err(twice(ADDITIONAL)),
                        Some(_) => {}
                        None => {
                            existing.insert(k, v);
                        }
                    }
                }
                Ok(())
            }
            _ => Err(twice(ADDITIONAL)),
        },
        Some(existing) if same(existing, &value) => Ok(()),
        Some(_) => Err(twice(key)),
    }
}

/// A form (or a query string): `additionalParameters[x]` keys fold into an object.
fn form_into(into: &mut Map<String, Value>, raw: &[u8]) -> Result<(), ApiError> {
    for (k, v) in url::form_urlencoded::parse(raw) {
        match k.strip_prefix("additionalParameters[").and_then(|k| k.strip_suffix(']')) {
            Some(inner) => {
                let mut extra = Map::new();
                extra.insert(inner.to_owned(), Value::String(v.into_owned()));
                put(into, ADDITIONAL, Value::Object(extra))?;
            }
            None => put(into, &k, Value::String(v.into_owned()))?,
        }
    }
    Ok(())
}

/// The body's parameters. Its format is read from its content when the declared type
/// disagrees (SDKs send JSON as a form and forms as JSON): a body that starts with `{`
/// is JSON, one that is valid JSON under a JSON content type is JSON, anything else is a
/// form.
fn body_params(content_type: &str, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(params);
    }
    let declared_json = content_type.trim_start().to_ascii_lowercase().starts_with("application/json");
    let parsed = if trimmed.starts_with(b"{") {
        Some(
            serde_json::from_slice::<Value>(trimmed)
                .map_err(|_| ApiError::bad_request("Invalid request payload JSON format"))?,
        )
    } else if declared_json {
        serde_json::from_slice::<Value>(trimmed).ok()
    } else {
        None
    };
    match parsed {
        Some(Value::Object(object)) => {
            for (k, v) in object {
                put(&mut params, &k, v)?;
            }
        }
        Some(_) => return Err(ApiError::bad_request("Payload validation error: 'Expected type object'")),
        None => form_into(&mut params, trimmed)?,
    }
    Ok(params)
}

/// The request's parameters: the query string and the body, merged. A parameter given in
/// both with different values is a 400.
fn parameters(query: &str, content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let mut params = Map::new();
    form_into(&mut params, query.as_bytes())?;
    for (k, v) in body_params(content_type, body)? {
        put(&mut params, &k, v)?;
    }
    Ok(Value::Object(params))
}

fn mint_request(user_id: String, body: &Value) -> Result<MintRequest, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("Payload validation error: 'Expected type object'"));
    }
    let extra = match body.get(ADDITIONAL) {
        None | Some(Value::Null) => Value::Null,
        Some(object @ Value::Object(_)) => object.clone(),
        Some(_) => return Err(ApiError::bad_request("additionalParameters must be an object")),
    };
    let seconds = |key: &str| -> Result<Option<i64>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => text(body, key)
                .and_then(|t| t.parse::<i64>().ok())
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("{key} must be a number of seconds, not {v}"))),
        }
    };
    let session_ttl = seconds("session_ttl")?;
    let ttl = seconds("ttl")?;
    // SDKs that forward only `additionalParameters` (Auth0's) can carry the reason there.
    let reason = match (text(body, "reason"), text(&extra, "reason")) {
        (Some(a), Some(b)) if a != b => return Err(ApiError::bad_request("reason is given twice")),
        (a, b) => a.or(b),
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
        reason,
        ttl,
        session_ttl,
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
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let request = mint_request(user_id.into_inner(), &parameters(req.query_string(), content_type, &body)?)?;
    let token_client = Some(caller.claims.azp.clone());
    let minter = caller.minter().ok_or_else(|| ApiError::internal(&"a verified caller without a token holder"))?;
    let url = state
        .into_inner()
        .blocking(move |s| {
            mint(&s.flow(), minter, scope_granted, request, meta.0.source_ip, token_client).map_err(ApiError::from)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(url))
}

/// Following an impersonation URL: `GET /users/{impersonator_id}/impersonate?…&bewit=…`
/// (Auth0's shape; `redeem` checks the path names the ticket's impersonator), and
/// `GET /impersonate/redeem?…&bewit=…` for URLs minted before guise used that shape.
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
        .blocking(move |s| Ok::<_, ApiError>(redeem(&s.flow(), &path_and_query, meta.0.source_ip, user_agent)))
        .await
        .and_then(|outcome| match outcome {
            Err(FlowError::Refused { kind, message }) => Ok(Err((kind, message))),
            other => other.map(Ok).map_err(ApiError::from),
        });
    match result {
        Ok(Ok(redeemed)) => {
            let reply = match redeemed.delivery {
                Delivery::Redirect(location) => Reply::redirect(location),
                Delivery::FormPost { action, fields } => pages::form_post(&action, &fields),
            };
            reply.with_cookie(cookies::session(redeemed.cookie, secure))
        }
        Ok(Err((kind, message))) => pages::error_page(status_of(kind), "Impersonation refused", &message),
        Err(e) => failed(e.status),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
    }

    /// Text made mostly of the characters the parsers look at.
    fn tricky() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r#"[a-z_\[\]{}":,=&%+0-9 ]{0,80}"#).unwrap()
    }

    fn form_key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("protocol".to_owned()),
            Just("client_id".to_owned()),
            Just("impersonator_id".to_owned()),
            Just("ttl".to_owned()),
            Just("additionalParameters".to_owned()),
            Just("additionalParameters[state]".to_owned()),
            Just("additionalParameters[scope]".to_owned()),
            tricky(),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        /// Any query, content type and body is answered — parsed or refused — never a panic.
        #[test]
        fn any_request_is_answered(
            query in tricky(),
            content_type in prop_oneof![
                Just("application/json".to_owned()),
                Just("application/x-www-form-urlencoded; charset=UTF-8".to_owned()),
                tricky(),
            ],
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(params) = parameters(&query, &content_type, &body) {
                let _ = mint_request("guise|target".to_owned(), &params);
            }
        }

        /// Forms built from the keys Auth0's clients send, in any order and number.
        #[test]
        fn any_form_of_known_keys_is_answered(
            pairs in proptest::collection::vec((form_key(), tricky()), 0..8),
            as_json_type in any::<bool>(),
        ) {
            let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            let content_type = if as_json_type { "application/json" } else { "application/x-www-form-urlencoded" };
            if let Ok(params) = parameters("", content_type, body.as_bytes()) {
                let _ = mint_request("guise|target".to_owned(), &params);
            }
        }
    }
}
