//! Who is calling: the bearer token of a Management API request, verified against the
//! published keys, and the request facts (source address, method, path) for audit.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_oidc::access_token::{AccessTokenClaims, TokenRejection, verify};
use std::future::Future;
use std::pin::Pin;

/// A verified caller of the Management API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: AccessTokenClaims,
}

impl Caller {
    /// Refuse unless the token carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.claims.has_scope(scope) { Ok(()) } else { Err(ApiError::insufficient_scope(&[scope])) }
    }

    pub fn actor(&self) -> Actor {
        match self.claims.machine_client() {
            Some(client_id) => Actor::Client(client_id.to_owned()),
            None => Actor::User(self.claims.sub.clone()),
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("Missing authentication"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Bad HTTP authentication header format"))?;
    match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::unauthorized("Bad HTTP authentication header format")),
    }
}

fn rejection(e: TokenRejection) -> ApiError {
    ApiError::unauthorized(e.to_string())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let req = req.clone();
        Box::pin(async move {
            let caller = Self::verify(state, token).await?;
            // Remembered for the refusal audit (see `startup::audit_refusals`).
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })
    }
}

impl Caller {
    async fn verify(state: Option<web::Data<AppState>>, token: Result<String, ApiError>) -> Result<Self, ApiError> {
        {
            let state = state.ok_or_else(|| ApiError::internal(&"application state missing"))?.into_inner();
            let token = token?;
            let audience = state.settings.management_audience();
            let check = move |state: &AppState| {
                verify(&state.keys.current(), &token, &state.settings.issuer, &audience, state.clock.now())
            };
            match check.clone()(&state) {
                Ok(claims) => Ok(Caller { claims }),
                Err(TokenRejection::UnknownKey) if state.keys.may_refresh_on_demand() => {
                    // A key rotated on another node: reload once, then decide.
                    let claims = state
                        .blocking(move |s| {
                            s.keys.refresh(&s.db, s.clock.now()).map_err(|e| ApiError::internal(&e))?;
                            check(s).map_err(rejection)
                        })
                        .await?;
                    Ok(Caller { claims })
                }
                Err(e) => Err(rejection(e)),
            }
        }
    }
}

/// Facts about the request that audit events record.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub method: String,
    pub path: String,
}

impl RequestMeta {
    pub fn from_request(req: &HttpRequest, trust_forwarded_for: bool) -> Self {
        let forwarded = trust_forwarded_for
            .then(|| req.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned());
        Self {
            source_ip: forwarded.or_else(|| req.peer_addr().map(|a| a.ip().to_string())),
            method: req.method().to_string(),
            path: req.path().to_owned(),
        }
    }

    /// A "success API operation" event by `caller`.
    pub fn api_event(&self, caller: &Caller, at: chrono::DateTime<chrono::Utc>, description: &str) -> AuditEvent {
        let mut event = AuditEvent::new(event_type::API_OPERATION, at, caller.actor(), description)
            .source_ip(self.source_ip.clone())
            .details(serde_json::json!({ "request": { "method": self.method, "path": self.path } }));
        event.client_id = Some(caller.claims.azp.clone());
        event
    }
}

impl FromRequest for RequestMeta {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.trust_forwarded_for);
        std::future::ready(Ok(Self::from_request(req, trust)))
    }
}
