//! OAuth endpoints: `POST /oauth/token` (form or JSON body, `client_secret_basic` or
//! `client_secret_post`), discovery and JWKS. Errors are RFC 6749 `error` objects.

use crate::auth::RequestMeta;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, get, post, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use guise_oidc::client_auth::ClientCredentials;
use guise_oidc::client_auth::authenticate;
use guise_oidc::grant::{ExchangeParams, TokenRequest, exchange};
use guise_oidc::revocation::{introspect as introspect_token, revoke as revoke_token};
use guise_oidc::{OAuthError, OAuthErrorCode, discovery};
use serde::Deserialize;
use serde_json::json;

/// An OAuth error as an HTTP response.
#[derive(Debug)]
pub struct OAuthResponseError {
    pub error: OAuthError,
    /// Whether the client tried HTTP Basic (then a 401 names the scheme).
    pub basic_attempted: bool,
    /// A status other than the error code's own (413 for an oversized body).
    pub status: Option<StatusCode>,
}

impl std::fmt::Display for OAuthResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<ApiError> for OAuthResponseError {
    fn from(_: ApiError) -> Self {
        OAuthResponseError { error: OAuthError::server_error(), basic_attempted: false, status: None }
    }
}

impl ResponseError for OAuthResponseError {
    fn status_code(&self) -> StatusCode {
        if let Some(status) = self.status {
            return status;
        }
        match self.error.code {
            OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthErrorCode::AccessDenied => StatusCode::FORBIDDEN,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header(CacheControl(vec![CacheDirective::NoStore]));
        if self.basic_attempted && self.error.code == OAuthErrorCode::InvalidClient {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"guise\""));
        }
        response.json(json!({ "error": self.error.code.as_str(), "error_description": self.error.description }))
    }
}

fn invalid_request(description: &str) -> OAuthResponseError {
    OAuthResponseError { error: OAuthError::invalid_request(description), basic_attempted: false, status: None }
}

/// The parameters `TokenForm` reads, each a string.
const TOKEN_PARAMETERS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
];

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    actor_token: Option<String>,
    actor_token_type: Option<String>,
    requested_token_type: Option<String>,
    resource: Option<String>,
    token: Option<String>,
    #[serde(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

/// Parse `Authorization: Basic` per RFC 6749 §2.3.1 (each part form-urlencoded).
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthResponseError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthResponseError { error: OAuthError::invalid_client(), basic_attempted: true, status: None };
    parse_basic(value.to_str().map_err(|_| bad())?).map(Some)
}

/// The client id and secret of an `Authorization: Basic` value.
fn parse_basic(value: &str) -> Result<(String, String), OAuthResponseError> {
    let bad = || OAuthResponseError { error: OAuthError::invalid_client(), basic_attempted: true, status: None };
    let Some((scheme, encoded)) = value.split_once(' ') else { return Err(bad()) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Result<String, OAuthResponseError> {
        url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).ok_or_else(bad)
    };
    let (id, secret) = (unescape(id)?, unescape(secret)?);
    // Decoded here, after the edge's NUL check: refuse NUL as any bad credential.
    if id.contains('\0') || secret.contains('\0') {
        return Err(bad());
    }
    Ok((id, secret))
}

fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<TokenForm, OAuthResponseError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    parse_body_as(content_type, body)
}

/// Whether a token, revocation or introspection body parses: for fuzz targets
/// (`docs/operations.md`, "Fuzzing"); the handlers use `parse_body`.
#[doc(hidden)]
pub fn token_body_parses(content_type: &str, body: &[u8]) -> bool {
    parse_body_as(content_type, body).is_ok()
}

/// A token, revocation or introspection body of the given content type.
fn parse_body_as(content_type: &str, body: &[u8]) -> Result<TokenForm, OAuthResponseError> {
    if content_type.starts_with("application/json") {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| invalid_request("The request body is not valid JSON"))?;
        let Some(object) = value.as_object() else {
            return Err(invalid_request("The request body must be a JSON object"));
        };
        // Valid JSON whose parameter has the wrong type says which one.
        if let Some(name) =
            TOKEN_PARAMETERS.iter().find(|name| object.get(**name).is_some_and(|v| !v.is_string() && !v.is_null()))
        {
            return Err(invalid_request(&format!("Parameter {name} must be a string")));
        }
        serde_json::from_value(value).map_err(|e| invalid_request(&format!("The request body is invalid: {e}")))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| invalid_request(&format!("The request body is not a valid form: {e}")))
    } else {
        Err(invalid_request("Content-Type must be application/x-www-form-urlencoded or application/json"))
    }
}

/// Read the body up to `limit` bytes; beyond it, 413 with an OAuth error body.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, OAuthResponseError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| invalid_request("The request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            let mut error = invalid_request("The request body is too large");
            error.status = Some(StatusCode::PAYLOAD_TOO_LARGE);
            return Err(error);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The client's credentials from `Authorization: Basic` or the body (never both).
fn client_credentials(
    req: &HttpRequest,
    form: &mut TokenForm,
) -> Result<Option<ClientCredentials>, OAuthResponseError> {
    let basic = basic_credentials(req)?;
    Ok(match (basic, form.client_id.take(), form.client_secret.take()) {
        (Some(_), _, Some(_)) => return Err(invalid_request("Use only one client authentication method")),
        (Some((basic_id, _)), Some(form_id), None) if form_id != basic_id => {
            return Err(invalid_request("client_id does not match the authenticated client"));
        }
        (Some((client_id, client_secret)), _, None) => Some(ClientCredentials::Basic { client_id, client_secret }),
        (None, Some(client_id), Some(client_secret)) => Some(ClientCredentials::Post { client_id, client_secret }),
        (None, Some(client_id), None) => Some(ClientCredentials::Public { client_id }),
        (None, None, _) => None,
    })
}

/// Authenticate the caller of revocation or introspection.
fn authenticated_client(
    s: &AppState,
    credentials: Option<ClientCredentials>,
    confidential_only: bool,
) -> Result<guise_core::client::Client, OAuthResponseError> {
    let basic_attempted = matches!(credentials, Some(ClientCredentials::Basic { .. }));
    let fail = |error| OAuthResponseError { error, basic_attempted, status: None };
    let credentials = credentials.ok_or_else(|| fail(OAuthError::invalid_client()))?;
    if confidential_only && matches!(credentials, ClientCredentials::Public { .. }) {
        return Err(fail(OAuthError::invalid_client()));
    }
    authenticate(&s.db, &credentials).map_err(fail)
}

/// The client's credentials and the `token` parameter of a revocation or introspection request.
async fn token_and_client(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(Option<ClientCredentials>, String), OAuthResponseError> {
    let body = read_body(payload, limit).await?;
    let mut form = parse_body(req, &body)?;
    let credentials = client_credentials(req, &mut form)?;
    let presented =
        form.token.filter(|t| !t.is_empty()).ok_or_else(|| invalid_request("Missing required parameter: token"))?;
    Ok((credentials, presented))
}

/// `POST /oauth/revoke` (RFC 7009): always 200 for a well-formed request.
#[post("/oauth/revoke")]
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthResponseError> {
    let (credentials, presented) = token_and_client(&req, payload, state.config.max_body_bytes).await?;
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    state
        .into_inner()
        .blocking(move |s| {
            let client = authenticated_client(s, credentials, false)?;
            let now = s.clock.now();
            let revoked = revoke_token(&s.keys.current(), &s.settings, &s.db, &client, &presented, now)
                .map_err(|e| OAuthResponseError::from(ApiError::from(e)))?;
            if revoked {
                let event = guise_core::audit::AuditEvent::new(
                    guise_core::audit::event_type::REVOCATION,
                    now,
                    guise_core::audit::Actor::Client(client.client_id.clone()),
                    "Token revoked",
                )
                .client(client.client_id.clone())
                .source_ip(meta.source_ip.clone());
                guise_core::store::AuditStore::append(&s.db, vec![event])
                    .map_err(|e| OAuthResponseError::from(ApiError::from(e)))?;
            }
            Ok::<_, OAuthResponseError>(())
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::NoStore])).finish())
}

/// `POST /oauth/introspect` (RFC 7662), for confidential clients.
#[post("/oauth/introspect")]
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthResponseError> {
    let (credentials, presented) = token_and_client(&req, payload, state.config.max_body_bytes).await?;
    let answer = state
        .into_inner()
        .blocking(move |s| {
            let client = authenticated_client(s, credentials, true)?;
            let keys = s.keys.current();
            introspect_token(&s.token_context(&keys), &client, &presented)
                .map_err(|e| OAuthResponseError::from(ApiError::from(e)))
        })
        .await?;
    Ok(HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::NoStore])).json(answer))
}

#[post("/oauth/token")]
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthResponseError> {
    let body = read_body(payload, state.config.max_body_bytes).await?;
    let mut form = parse_body(&req, &body)?;
    let credentials = client_credentials(&req, &mut form)?;
    let basic_attempted = matches!(credentials, Some(ClientCredentials::Basic { .. }));
    if let Some(credentials) = &credentials {
        req.extensions_mut().insert(crate::cors::CallingClient(credentials.client_id().to_owned()));
    }
    let meta = RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let request = TokenRequest {
        grant_type: form.grant_type,
        credentials,
        scope: form.scope,
        audience: form.audience,
        code: form.code,
        redirect_uri: form.redirect_uri,
        code_verifier: form.code_verifier,
        refresh_token: form.refresh_token,
        exchange: ExchangeParams {
            subject_token: form.subject_token,
            subject_token_type: form.subject_token_type,
            actor_token: form.actor_token,
            actor_token_type: form.actor_token_type,
            requested_token_type: form.requested_token_type,
            resource: form.resource,
        },
        source_ip: meta.0.source_ip,
    };
    let response = state
        .into_inner()
        .blocking(move |s| {
            let keys = s.keys.current();
            let ctx = s.token_context(&keys);
            exchange(&s.grant_handlers, &request, &ctx).map_err(|error| OAuthResponseError {
                error,
                basic_attempted,
                status: None,
            })
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

#[get("/.well-known/openid-configuration")]
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let grants: Vec<&str> = state.grant_handlers.iter().map(|h| h.grant_type()).collect();
    HttpResponse::Ok().json(discovery::document(&state.settings, &grants))
}

#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(60)]))
        .json(state.keys.current().jwks())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
    }

    const FIELDS: &str = "(grant_type|client_id|client_secret|scope|audience|code|redirect_uri|code_verifier|refresh_token|token|token_type_hint|[a-z_\\[\\]]{1,12})";

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(FIELDS, inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn a_parameter_of_the_wrong_type_is_named() {
        let error =
            parse_body_as("application/json", br#"{"grant_type":5}"#).map(|_| ()).map_err(|e| e.error.description);
        assert_eq!(error, Err("Parameter grant_type must be a string".to_owned()));
        let error = parse_body_as("application/json", b"[]").map(|_| ()).map_err(|e| e.error.description);
        assert_eq!(error, Err("The request body must be a JSON object".to_owned()));
        let error = parse_body_as("application/json", b"{").map(|_| ()).map_err(|e| e.error.description);
        assert_eq!(error, Err("The request body is not valid JSON".to_owned()));
        assert!(parse_body_as("application/json", br#"{"grant_type":"x","extra":5}"#).is_ok());
    }

    proptest! {
        #![proptest_config(config())]

        /// Any bytes under any content type are a form or an OAuth error.
        #[test]
        fn any_body_is_answered(
            content_type in prop_oneof!["application/x-www-form-urlencoded", "application/json", "application/json; charset=utf-8", "[ -~]{0,30}"],
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = parse_body_as(&content_type, &body);
        }

        /// Forms with the token endpoint's own field names, repeated, bracketed or escaped.
        #[test]
        fn any_form_is_answered(pairs in proptest::collection::vec((FIELDS, "(%[0-9A-Fa-f]{0,2}|[ -~]){0,20}"), 0..12)) {
            let body = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
            let _ = parse_body_as("application/x-www-form-urlencoded", body.as_bytes());
        }

        /// JSON objects whose fields have any type.
        #[test]
        fn any_json_is_answered(value in json_value()) {
            let body = serde_json::to_vec(&value).unwrap_or_default();
            let _ = parse_body_as("application/json", &body);
        }

        /// Any `Authorization` value, and any base64 of `id:secret`-ish bytes.
        #[test]
        fn any_basic_header_is_answered(raw in "[ -~]{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = parse_basic(&raw);
            let _ = parse_basic(&format!("Basic {}", STANDARD.encode(&bytes)));
        }
    }
}
