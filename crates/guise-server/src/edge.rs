//! Checks at the edge, before any handler: input the database cannot store is refused
//! with the protocol's own `400`, so both backends answer alike.
//!
//! PostgreSQL `text` cannot hold a NUL character (SQLite can), so a NUL that reached a
//! query was a `500` on PostgreSQL and a quiet success on SQLite. `reject_unstorable`
//! looks for NUL in the path, the query string and form or JSON bodies (raw, `%00` or
//! `\u0000`) and answers as the endpoint's protocol does: an OAuth error object under
//! `/oauth/` and `/userinfo`, Auth0's JSON under `/api/v2/` and `/users/`, the error
//! page everywhere else (the browser routes).

use crate::error::ApiError;
use crate::routes::oauth::OAuthResponseError;
use crate::state::AppState;
use crate::web::pages::error_page;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use guise_oidc::OAuthError;

const NUL_MESSAGE: &str = "The request contains a NUL character, which is not allowed";

/// Which error shape a path's protocol prescribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 6749 `{"error", "error_description"}`.
    OAuth,
    /// Auth0's `{statusCode, error, message, errorCode}`.
    Management,
    /// The HTML error page.
    Browser,
}

impl Protocol {
    /// The protocol of a request: by its path, and for `/users/{id}/impersonate` by its
    /// method too (a `GET` there is a browser following an impersonation URL).
    pub fn of(method: &actix_web::http::Method, path: &str) -> Self {
        if method == actix_web::http::Method::GET && path.starts_with("/users/") && path.ends_with("/impersonate") {
            return Protocol::Browser;
        }
        Self::of_path(path)
    }

    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/oauth/") || path.starts_with("/userinfo") {
            Protocol::OAuth
        } else if path.starts_with("/api/") || path.starts_with("/users/") {
            Protocol::Management
        } else {
            Protocol::Browser
        }
    }

    /// A `400` in this protocol's shape about the URL (`in_body: false`) or the body.
    pub fn bad_request(self, in_body: bool, description: &str) -> HttpResponse {
        match self {
            Protocol::Management => {
                let code = if in_body { "invalid_body" } else { "invalid_query_string" };
                ApiError::new(StatusCode::BAD_REQUEST, code, description).error_response()
            }
            _ => self.error(StatusCode::BAD_REQUEST, description),
        }
    }

    /// An error of `status` in this protocol's shape.
    pub fn error(self, status: StatusCode, description: &str) -> HttpResponse {
        match self {
            Protocol::OAuth => OAuthResponseError {
                error: OAuthError::invalid_request(description),
                basic_attempted: false,
                status: Some(status),
            }
            .error_response(),
            Protocol::Management => {
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    StatusCode::URI_TOO_LONG => "uri_too_long",
                    StatusCode::REQUEST_TIMEOUT => "request_timeout",
                    _ => "invalid_request",
                };
                ApiError::new(status, code, description).error_response()
            }
            Protocol::Browser => error_page(status, "invalid_request", description).into_response(),
        }
    }
}

/// Longest path and query accepted; a longer URL is `414` in the protocol's shape.
/// (Past actix-web's 128 KiB request-head buffer the connection is answered a bare
/// `431` before guise sees it.)
pub const MAX_URI_BYTES: usize = 48 * 1024;

impl Protocol {
    /// `413` for a body over `max_body_bytes`, in this protocol's shape.
    pub fn too_large(self, max: usize) -> HttpResponse {
        let description = match self {
            Protocol::Management => format!("Request body is larger than {max} bytes"),
            _ => "The request body is too large".to_owned(),
        };
        self.error(StatusCode::PAYLOAD_TOO_LARGE, &description)
    }

    /// The error for a form body the `Form` extractor refused (wrong content type,
    /// malformed, too large), in this protocol's shape.
    pub fn form_error(self, error: &actix_web::error::UrlencodedError) -> HttpResponse {
        use actix_web::error::UrlencodedError;
        match error {
            UrlencodedError::ContentType => {
                self.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/x-www-form-urlencoded")
            }
            UrlencodedError::Overflow { limit, .. } => self.too_large(*limit),
            UrlencodedError::Parse(e) => self.bad_request(true, &format!("The form is invalid: {e}")),
            other => self.bad_request(true, &format!("The form could not be read: {other}")),
        }
    }
}

/// `Retry-After` of a `503` while the database is unreachable, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

const UNAVAILABLE_MESSAGE: &str = "The service is temporarily unavailable; try again shortly";

impl Protocol {
    /// `503` with `Retry-After`, in this protocol's shape (`temporarily_unavailable`).
    pub fn unavailable(self) -> HttpResponse {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        let mut response = match self {
            Protocol::OAuth => HttpResponse::build(status)
                .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({
                    "error": "temporarily_unavailable",
                    "error_description": UNAVAILABLE_MESSAGE,
                })),
            Protocol::Management => {
                ApiError::new(status, "temporarily_unavailable", UNAVAILABLE_MESSAGE).error_response()
            }
            Protocol::Browser => error_page(status, "temporarily_unavailable", UNAVAILABLE_MESSAGE).into_response(),
        };
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&RETRY_AFTER_SECS.to_string()) {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
        }
        response
    }
}

/// A server fault while the database is unreachable is not the client's to puzzle over
/// as a `500`: it is answered `503` with `Retry-After`, in the protocol's shape. (The
/// cause — "connection refused", "database … does not exist" — is in the log.)
pub async fn unavailable_as_503(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let response = next.call(req).await?;
    let down = response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && response.request().app_data::<web::Data<AppState>>().is_some_and(|s| s.db.is_unavailable());
    if !down {
        return Ok(response.map_into_left_body());
    }
    let protocol = Protocol::of(response.request().method(), response.request().path());
    let (request, _) = response.into_parts();
    Ok(ServiceResponse::new(request, protocol.unavailable()).map_into_right_body())
}

/// Whether raw (still percent-encoded) URL text decodes to a NUL anywhere.
fn url_has_nul(raw: &str) -> bool {
    raw.contains("%00") || raw.contains('\0')
}

/// Whether a JSON document holds a NUL in any string or key.
fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// Whether a request body of `content_type` decodes to a NUL anywhere.
pub fn body_has_nul(content_type: &str, body: &[u8]) -> bool {
    if body.contains(&0) {
        return true;
    }
    let content_type = content_type.to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return body.windows(3).any(|w| w == b"%00");
    }
    if content_type.starts_with("application/json") && body.windows(6).any(|w| w == b"\\u0000") {
        // Only a real `\u0000` escape counts (not `\\u0000`): parse and look.
        return serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| json_has_nul(&v));
    }
    false
}

/// How reading a body ended.
enum Peeked {
    /// The whole body (within the limit).
    Complete(web::Bytes),
    /// Larger than the limit.
    TooLarge,
    /// Reading failed: the handler answers.
    Partial,
    /// Not received within the body timeout.
    TimedOut,
}

/// Read up to `limit` bytes of the body by `deadline`; the payload is put back whole
/// (what was read, then the rest) unless the deadline passed.
async fn peek_body(req: &mut ServiceRequest, limit: usize, deadline: std::time::Instant) -> Peeked {
    let mut payload = req.take_payload();
    let mut buffered = web::BytesMut::new();
    let mut failure = None;
    let mut complete = true;
    let mut too_large = false;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(next) = actix_web::rt::time::timeout(left, payload.next()).await else { return Peeked::TimedOut };
        let Some(chunk) = next else { break };
        match chunk {
            Ok(chunk) => {
                buffered.extend_from_slice(&chunk);
                if buffered.len() > limit {
                    complete = false;
                    too_large = true;
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                complete = false;
                break;
            }
        }
    }
    let bytes = buffered.freeze();
    let head = futures_util::stream::once(std::future::ready(Ok(bytes.clone())));
    type Boxed = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<web::Bytes, PayloadError>>>>;
    let stream: Boxed = match failure {
        Some(e) => Box::pin(head.chain(futures_util::stream::once(std::future::ready(Err(e))))),
        None => Box::pin(head.chain(payload)),
    };
    req.set_payload(Payload::Stream { payload: stream });
    match (complete, too_large) {
        (true, _) => Peeked::Complete(bytes),
        (false, true) => Peeked::TooLarge,
        (false, false) => Peeked::Partial,
    }
}

/// Whether a request announces a body (`Content-Length` above 0, or chunked).
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || headers.contains_key(actix_web::http::header::TRANSFER_ENCODING)
}

/// Refuse input the database cannot store (NUL) with the protocol's own `400`.
pub async fn reject_unstorable(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let protocol = Protocol::of(req.method(), req.path());
    let uri_length = req.uri().path().len() + req.uri().query().map_or(0, str::len);
    if uri_length > MAX_URI_BYTES {
        let description = format!("The URL is longer than {MAX_URI_BYTES} bytes");
        let response = protocol.error(StatusCode::URI_TOO_LONG, &description);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let in_url = url_has_nul(req.uri().path()) || req.uri().query().is_some_and(url_has_nul);
    let mut in_body = false;
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !in_url && has_body(&req) {
        // The body is read here, whole, within the body timeout: a client trickling it
        // gets `408` instead of holding a worker's connection.
        let (limit, timeout) = req
            .app_data::<web::Data<AppState>>()
            .map_or((64 * 1024, 10_000), |s| (s.config.max_body_bytes, s.config.http_body_timeout_ms));
        let announced = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Ok(req.into_response(protocol.too_large(limit)).map_into_right_body());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout);
        match peek_body(&mut req, limit, deadline).await {
            Peeked::Complete(body) => in_body = body_has_nul(&content_type, &body),
            Peeked::TooLarge => return Ok(req.into_response(protocol.too_large(limit)).map_into_right_body()),
            Peeked::Partial => {}
            Peeked::TimedOut => {
                let response = protocol.error(StatusCode::REQUEST_TIMEOUT, "The request body was not received in time");
                let response = req.into_response(response).map_into_right_body();
                return Ok(response);
            }
        }
    }
    if in_url || in_body {
        let response = protocol.bad_request(in_body, NUL_MESSAGE);
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// At most `max` open connections per client address (0: no limit). Each accepted
/// connection is counted in `HttpServer::on_connect` while it lives (a guard in the
/// connection's extensions); one over the limit is shut down at once, before a byte of
/// it is read.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    max: usize,
    open: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// Counts one connection of an address while it is open.
struct Counted {
    address: std::net::IpAddr,
    open: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(count) = open.get_mut(&self.address)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        Self { max, open: std::sync::Arc::default() }
    }

    /// For `HttpServer::on_connect`.
    pub fn admit(&self, connection: &dyn std::any::Any, extensions: &mut actix_web::dev::Extensions) {
        if self.max == 0 {
            return;
        }
        let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else { return };
        let Ok(peer) = stream.peer_addr() else { return };
        let address = peer.ip();
        let count = match self.open.lock() {
            Ok(mut open) => {
                let count = open.entry(address).or_insert(0);
                *count += 1;
                *count
            }
            Err(_) => return,
        };
        extensions.insert(Counted { address, open: std::sync::Arc::clone(&self.open) });
        if count > self.max {
            tracing::warn!(%address, open = count - 1, "connection refused: too many open connections from one address");
            shut_down(stream);
        }
    }
}

#[cfg(unix)]
fn shut_down(stream: &actix_web::rt::net::TcpStream) {
    use std::os::fd::AsFd;
    if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
        let _ = std::net::TcpStream::from(fd).shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(not(unix))]
fn shut_down(_: &actix_web::rt::net::TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_however_it_is_written() {
        assert!(url_has_nul("client_id=a%00b"));
        assert!(!url_has_nul("client_id=a%2500b"));
        assert!(body_has_nul("application/x-www-form-urlencoded", b"a=%00"));
        assert!(body_has_nul("application/json", br#"{"name":"a\u0000b"}"#));
        assert!(body_has_nul("application/json", br#"{"a\u0000":1}"#));
        assert!(!body_has_nul("application/json", br#"{"name":"a\\u0000b"}"#));
        assert!(body_has_nul("text/plain", b"a\0b"));
        assert!(!body_has_nul("application/json", br#"{"name":"ab"}"#));
    }

    #[test]
    fn paths_choose_the_error_shape() {
        assert_eq!(Protocol::of_path("/oauth/token"), Protocol::OAuth);
        assert_eq!(Protocol::of_path("/api/v2/users"), Protocol::Management);
        assert_eq!(Protocol::of_path("/users/x/impersonate"), Protocol::Management);
        assert_eq!(Protocol::of(&actix_web::http::Method::GET, "/users/x/impersonate"), Protocol::Browser);
        assert_eq!(Protocol::of(&actix_web::http::Method::POST, "/users/x/impersonate"), Protocol::Management);
        assert_eq!(Protocol::of_path("/samlp/x"), Protocol::Browser);
    }
}
