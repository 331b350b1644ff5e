//! `/api/v2/impersonations`: live impersonation sessions, listed and ended early (ending
//! one revokes every token minted from it), and the uses of acting on behalf of a user.

use super::views::ImpersonationEntry;
use super::{Paging, allow_query, page_of, paged, query_names};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::StoreError;
use guise_core::audit::event_type;
use guise_core::page::Page;
use guise_core::permission::scopes;
use guise_core::store::{AuditFilter, AuditStore, ImpersonationFilter, ImpersonationSessionStore, SessionStore};
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
    /// `session` (the default): live impersonation sessions; `act_as`: uses of acting on
    /// behalf of a user, newest first, from the audit log.
    #[param(example = "act_as")]
    kind: Option<String>,
    /// Who impersonated, or who acted on behalf of the user.
    impersonator_id: Option<String>,
    /// The user impersonated or acted as.
    user_id: Option<String>,
}

#[utoipa::path(get, path = "/impersonations", tag = "impersonations",
    summary = "Live impersonation sessions, or (kind=act_as) uses of acting on behalf of a user",
    params(Paging, Filter),
    responses((status = 200, body = Vec<ImpersonationEntry>)),
    security(("bearer" = ["read:users"]), ("bearer" = ["read:impersonations"]), ("bearer" = ["impersonate:users"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<Filter>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    // Everyone's with read:users or read:impersonations; an impersonator's own otherwise.
    let sees_all = caller.claims.has_scope(scopes::READ_USERS) || caller.claims.has_scope(scopes::READ_IMPERSONATIONS);
    if !sees_all {
        caller.require(scopes::IMPERSONATE_USERS)?;
    }
    allow_query(&req, &[query_names::<Paging>(), query_names::<Filter>()])?;
    let mut filter = filter.into_inner();
    if !sees_all {
        // Only the caller's own: a filter naming someone else matches none of them.
        let own = caller.claims.sub.clone();
        if filter.impersonator_id.as_ref().is_some_and(|named| *named != own) {
            return Ok(paged(
                page_of(Vec::<ImpersonationEntry>::new(), params.page_request()),
                params.include_totals,
                "impersonations",
                |e| e,
            ));
        }
        filter.impersonator_id = Some(own);
    }
    let page = params.page_request();
    let with_total = params.include_totals;
    let entries = match filter.kind.as_deref() {
        None | Some("session") => {
            let sessions = state
                .into_inner()
                .blocking(move |s| {
                    let filter =
                        ImpersonationFilter { impersonator_id: filter.impersonator_id, user_id: filter.user_id };
                    Ok::<_, ApiError>(s.db.impersonation_sessions(&filter, s.clock.now())?)
                })
                .await?;
            let entries = sessions.into_iter().map(|s| ImpersonationEntry::Session(s.into())).collect();
            page_of(entries, page)
        }
        Some("act_as") => {
            let uses = state
                .into_inner()
                .blocking(move |s| {
                    let filter = AuditFilter {
                        event_type: Some(event_type::ACT_AS.to_owned()),
                        actor_id: filter.impersonator_id,
                        on_behalf_of: filter.user_id,
                        ..AuditFilter::default()
                    };
                    Ok::<_, ApiError>(s.db.audit_records(&filter, page, with_total)?)
                })
                .await?;
            Page {
                items: uses.items.into_iter().map(|r| ImpersonationEntry::ActAs(r.into())).collect(),
                request: uses.request,
                total: uses.total,
            }
        }
        Some(_) => return Err(ApiError::invalid_query("Query validation error: 'kind' must be session or act_as")),
    };
    Ok(paged(entries, with_total, "impersonations", |e| e))
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
            event.details["sid"] = json!(session.sid);
            let mut event = event.caused_by(&session);
            event.details["reason"] = json!("ended_by");
            s.db.end_session(&session.sid, s.clock.now(), event)
                .map_err(|e| ApiError::from_store(e, "impersonation session"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
