//! Who is calling, as HTTP sees it: the bearer token and the acting-as spellings of a
//! Management API request, the token verified against the key ring (reloaded once when
//! its key rotated on another node) and settled by `guise_flow::caller::settle`; and the
//! request facts (source address, method, path) for audit.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use guise_core::act_as::{ActAsRefusal, single_target};
use guise_flow::caller::{RequestFacts, settle, verify_bearer};
use guise_oidc::access_token::{AccessTokenClaims, TokenRejection};
use percent_encoding::percent_decode_str;
use std::future::Future;
use std::pin::Pin;

/// The settled caller of a Management API call (`guise_flow::caller::settle`), as an
/// extractor; it reads as the flow's `Caller`.
#[derive(Debug, Clone)]
pub struct Caller(pub guise_flow::caller::Caller);

impl std::ops::Deref for Caller {
    type Target = guise_flow::caller::Caller;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The response header that names the user a call ran as.
pub const EFFECTIVE_USER_HEADER: &str = "x-effective-user";

impl Caller {
    /// Refuse unless the (effective) token scope carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.claims.has_scope(scope) { Ok(()) } else { Err(ApiError::insufficient_scope(&[scope])) }
    }
}

/// The token of an `Authorization: Bearer …` header, if the request has one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let (scheme, token) = req.headers().get(AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_owned())
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    bearer_token(req).ok_or_else(|| match req.headers().contains_key(AUTHORIZATION) {
        true => ApiError::unauthorized("Bad HTTP authentication header format"),
        false => ApiError::unauthorized("Missing authentication"),
    })
}

fn rejection(e: TokenRejection) -> ApiError {
    ApiError::unauthorized(e.to_string())
}

/// The target named by `as_user_id` (query), `As-User` or `MSCRMCallerID` (headers).
fn act_as_spec(req: &HttpRequest) -> Result<Option<String>, ActAsRefusal> {
    let query = url::form_urlencoded::parse(req.query_string().as_bytes()).find(|(k, _)| k == "as_user_id");
    // Headers carry the reference percent-encoded (no form rules: `+` stays `+`).
    let header = |name| match req.headers().get(name).map(|v| v.to_str()) {
        None => Ok(None),
        Some(v) => {
            v.ok().and_then(|s| percent_decode_str(s).decode_utf8().ok()).map(Some).ok_or(ActAsRefusal::InvalidTarget)
        }
    };
    let (box_header, dynamics_header) = (header("as-user")?, header("mscrmcallerid")?);
    let spellings = [query.as_ref().map(|(_, v)| v.as_ref()), box_header.as_deref(), dynamics_header.as_deref()];
    Ok(single_target(spellings)?.map(str::to_owned))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let spec = act_as_spec(req);
        let meta = RequestMeta::from_request(req, state.as_ref().is_some_and(|s| s.config.trust_forwarded_for));
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(&"application state missing"))?.into_inner();
            let claims = verify_token(&state, token?).await?;
            let caller = state
                .blocking(move |s| settle(&s.flow(), claims, spec, &meta).map(Caller).map_err(ApiError::from))
                .await?;
            // Remembered for the refusal audit and the effective-user header.
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })
    }
}

async fn verify_token(state: &std::sync::Arc<AppState>, token: String) -> Result<AccessTokenClaims, ApiError> {
    let check =
        move |state: &AppState| verify_bearer(&state.keys.current(), &token, &state.settings, state.clock.now());
    match check(state) {
        Err(TokenRejection::UnknownKey) if state.keys.may_refresh_on_demand() => {
            // A key rotated on another node: reload once, then decide.
            state
                .blocking(move |s| {
                    s.keys.refresh(&s.db, s.clock.now()).map_err(|e| ApiError::internal(&e))?;
                    check(s).map_err(rejection)
                })
                .await
        }
        verified => verified.map_err(rejection),
    }
}

/// Facts about the request that audit events record, as an extractor; it reads as the
/// flow's `RequestFacts`.
#[derive(Debug, Clone)]
pub struct RequestMeta(pub RequestFacts);

impl std::ops::Deref for RequestMeta {
    type Target = RequestFacts;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl RequestMeta {
    pub fn from_request(req: &HttpRequest, trust_forwarded_for: bool) -> Self {
        let forwarded = trust_forwarded_for
            .then(|| req.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            // The right-most entry is the one our trusted proxy appended; the rest is
            // whatever the client sent.
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_owned());
        // A support console call carries the agent's own address (see `console::api`).
        let relayed = crate::console::api::relayed_source(req);
        Self(RequestFacts {
            source_ip: relayed.or(forwarded).or_else(|| req.peer_addr().map(|a| a.ip().to_string())),
            method: req.method().to_string(),
            path: req.path().to_owned(),
        })
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
