//! CORS for the endpoints browser apps call directly: the token endpoint, `/userinfo`
//! and the JWKS. An origin is allowed when some client registered it in `web_origins`
//! (Auth0's "Allowed Web Origins"); a token request's answer only when the client the
//! request names registered it. Credentials (cookies) are never allowed
//! cross-origin: these endpoints take client authentication, a code with its PKCE
//! verifier, or a bearer token, so CORS only lets a registered page read an answer it
//! could already obtain; it grants nothing.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use guise_core::StoreError;
use guise_core::client::origin_allowed;
use guise_core::store::{ClientStore, found};

/// The paths that answer cross-origin requests from registered origins.
pub const PATHS: &[&str] = &["/oauth/token", "/userinfo", "/.well-known/jwks.json"];

/// The client a token request names (set by the token endpoint): its answer is readable
/// only from that client's own `web_origins`.
#[derive(Debug, Clone)]
pub struct CallingClient(pub String);

/// Whether `client_id` registered `origin` in its `web_origins`.
pub fn registered_by(db: &dyn ClientStore, client_id: &str, origin: &str) -> Result<bool, StoreError> {
    Ok(found(db.client_by_id(client_id))?.is_some_and(|client| origin_allowed(&client.web_origins, origin)))
}

/// Whether any client registered `origin` in its `web_origins` (read through the
/// store's cache of every client's origins).
pub fn registered(db: &dyn ClientStore, origin: &str) -> Result<bool, StoreError> {
    Ok(db.web_origins()?.iter().any(|origins| origin_allowed(origins, origin)))
}

/// The request's `Origin`, when it is a well-formed origin (`scheme://host[:port]`):
/// anything else is never registered, so it costs no database lookup.
fn origin_of(headers: &header::HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| o.len() <= 2048)?;
    url::Url::parse(origin).ok().filter(|u| u.origin().is_tuple()).map(|_| origin.to_owned())
}

async fn allowed(state: Option<web::Data<AppState>>, origin: &str, client: Option<CallingClient>) -> bool {
    let Some(state) = state else {
        return false;
    };
    let origin = origin.to_owned();
    let answer = state
        .into_inner()
        .blocking(move |s| {
            match &client {
                Some(CallingClient(id)) => registered_by(&s.db, id, &origin),
                None => registered(&s.db, &origin),
            }
            .map_err(crate::error::ApiError::from)
        })
        .await;
    match answer {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::error!(error = %e, "could not check a CORS origin");
            false
        }
    }
}

/// `OPTIONS` on the CORS paths: the preflight. A registered origin gets the methods and
/// headers it may use; any other gets no CORS headers, so the browser stops there.
pub async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut response = HttpResponse::NoContent();
    response.insert_header((header::VARY, "Origin"));
    let Some(origin) = origin_of(req.headers()) else {
        return response.finish();
    };
    if !allowed(Some(state), &origin, None).await {
        return response.finish();
    }
    response
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization, Content-Type"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish()
}

/// Middleware: the actual (non-preflight) responses of the CORS paths name a registered
/// request origin in `Access-Control-Allow-Origin`, errors included, so apps can read
/// `invalid_grant` as well as tokens.
pub async fn allow_registered_origins(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let cors = PATHS.contains(&req.path()) && req.method() != actix_web::http::Method::OPTIONS;
    // A token answer is readable only by an origin of the client the request names.
    let names_a_client = req.path() == "/oauth/token";
    let origin = if cors { origin_of(req.headers()) } else { None };
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut response = next.call(req).await?;
    if cors {
        response.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let client = response.request().extensions().get::<CallingClient>().cloned();
    // No second database wait on a server error (an outage answers 503 promptly), and a
    // token request that named no client is readable by no origin.
    let decidable = !response.status().is_server_error() && (client.is_some() || !names_a_client);
    if let Some(origin) = origin.filter(|_| decidable)
        && allowed(state, &origin, client).await
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    Ok(response)
}
