//! `/api/v2/impersonations`: live impersonation sessions, listed and ended early.
//! Ending one revokes every token minted from it.

use super::{ListParams, PAGING, allow_query, iso, page_of, paged};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::StoreError;
use guise_core::audit::event_type;
use guise_core::permission::scopes;
use guise_core::session::Session;
use guise_core::store::{ImpersonationFilter, ImpersonationSessionStore, SessionStore};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/impersonations").route(web::get().to(list)))
        .service(web::resource("/impersonations/{id}").route(web::delete().to(end)));
}

pub fn impersonation_view(session: Session) -> Value {
    json!({
        "id": session.sid,
        "user_id": session.user_id,
        "impersonator_id": session.impersonator_id,
        "reason": session.impersonation_reason,
        "created_at": iso(session.created_at),
        "expires_at": iso(session.absolute_expires_at),
        "ip": session.source_ip,
    })
}

#[derive(Debug, Deserialize)]
struct Filter {
    impersonator_id: Option<String>,
    user_id: Option<String>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<Filter>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[PAGING, &["impersonator_id", "user_id"]])?;
    let filter = filter.into_inner();
    let sessions = state
        .into_inner()
        .blocking(move |s| {
            let filter = ImpersonationFilter { impersonator_id: filter.impersonator_id, user_id: filter.user_id };
            Ok::<_, ApiError>(s.db.impersonation_sessions(&filter, s.clock.now())?)
        })
        .await?;
    Ok(paged(page_of(sessions, params.page_request()), params.include_totals, "impersonations", impersonation_view))
}

/// Admins (`update:users`) end any impersonation; an impersonator (`impersonate:users`)
/// ends their own.
async fn end(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let is_admin = caller.claims.has_scope(scopes::UPDATE_USERS);
    if !is_admin {
        caller.require(scopes::IMPERSONATE_USERS)?;
    }
    let sid = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            let session = match s.db.session_by_sid(&sid) {
                Ok(session) if session.impersonator_id.is_some() && session.ended_at.is_none() => session,
                Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("impersonation session")),
                Err(e) => return Err(e.into()),
            };
            if !is_admin && session.impersonator_id.as_deref() != Some(caller.claims.sub.as_str()) {
                return Err(ApiError::insufficient_scope(&[scopes::UPDATE_USERS]));
            }
            let mut event = meta.api_event(&caller, s.clock.now(), "Impersonation session ended");
            event.event_type = event_type::IMPERSONATION_ENDED.to_owned();
            event.subject = Some(session.user_id.clone());
            event.on_behalf_of = session.impersonator_id.clone();
            event.details["sid"] = json!(session.sid);
            event.details["reason"] = json!("ended_by");
            s.db.end_session(&session.sid, s.clock.now(), event)
                .map_err(|e| ApiError::from_store(e, "impersonation session"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
