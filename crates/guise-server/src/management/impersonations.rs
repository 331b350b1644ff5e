//! `/api/v2/impersonations`: live impersonation sessions, listed and ended early.
//! Ending one revokes every token minted from it.

use super::views::ImpersonationView;
use super::{Paging, allow_query, page_of, paged, query_names};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::StoreError;
use guise_core::audit::event_type;
use guise_core::permission::scopes;
use guise_core::store::{ImpersonationFilter, ImpersonationSessionStore, SessionStore};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/impersonations").route(web::get().to(list)))
        .service(web::resource("/impersonations/{id}").route(web::delete().to(end)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Filter {
    impersonator_id: Option<String>,
    user_id: Option<String>,
}

#[utoipa::path(get, path = "/impersonations", tag = "impersonations", summary = "Live impersonation sessions",
    params(Paging, Filter),
    responses((status = 200, body = Vec<ImpersonationView>)),
    security(("bearer" = ["read:users"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<Filter>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<Filter>()])?;
    let filter = filter.into_inner();
    let sessions = state
        .into_inner()
        .blocking(move |s| {
            let filter = ImpersonationFilter { impersonator_id: filter.impersonator_id, user_id: filter.user_id };
            Ok::<_, ApiError>(s.db.impersonation_sessions(&filter, s.clock.now())?)
        })
        .await?;
    Ok(paged(
        page_of(sessions, params.page_request()),
        params.include_totals,
        "impersonations",
        ImpersonationView::from,
    ))
}

/// Admins (`update:users`) end any impersonation; an impersonator (`impersonate:users`)
/// ends their own.
#[utoipa::path(delete, path = "/impersonations/{id}", tag = "impersonations",
    summary = "End an impersonation (one's own with impersonate:users, any with update:users)",
    params(("id" = String, Path, description = "The impersonation session id")),
    responses((status = 204)),
    security(("bearer" = ["impersonate:users"]), ("bearer" = ["update:users"])))]
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
