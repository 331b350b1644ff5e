//! Self-service routes that only ever work on "me": the user behind a user access token,
//! or the user an admin acts as. No Management API scope is needed — which is why an
//! ordinary user acted as can reach exactly these.

use super::users::{UserPatchBody, parse_user_patch};
use super::views::{LogView, SessionView, UserView};
use super::{Paging, allow_query, page_of, paged, query_names};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::store::{AuditFilter, AuditStore, UserStore};
use serde_json::{Value, json};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/me").route(web::get().to(me)).route(web::patch().to(patch_me)))
        .service(web::resource("/me/sessions").route(web::get().to(sessions)))
        .service(web::resource("/me/activity").route(web::get().to(activity)));
}

/// Profile fields a user may change about themselves.
const SELF_SERVICE_FIELDS: &[&str] = &["name", "given_name", "family_name", "nickname", "picture", "user_metadata"];

fn me_id(caller: &Caller) -> Result<String, ApiError> {
    caller.effective_user().map(str::to_owned).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_user",
            "These routes need a user: a user token, or acting as a user",
        )
    })
}

#[utoipa::path(get, path = "/me", tag = "me", summary = "The user behind a user token (or acted as)",
    responses((status = 200, body = UserView)),
    security(("bearer" = [])))]
async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let id = me_id(&caller)?;
    let user =
        state.into_inner().blocking(move |s| s.db.user_by_id(&id).map_err(|e| ApiError::from_store(e, "user"))).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[utoipa::path(patch, path = "/me", tag = "me", summary = "Update one's own profile (name, given_name, family_name, nickname, picture, user_metadata)",
    request_body = UserPatchBody,
    responses((status = 200, body = UserView)),
    security(("bearer" = [])))]
async fn patch_me(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = me_id(&caller)?;
    if let Some(field) = body.as_object().and_then(|m| m.keys().find(|k| !SELF_SERVICE_FIELDS.contains(&k.as_str()))) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("'{field}' cannot be changed through /me (allowed: {})", SELF_SERVICE_FIELDS.join(", ")),
        ));
    }
    let (patch, _) = parse_user_patch(&body)?;
    let user = state
        .into_inner()
        .blocking(move |s| {
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Update own profile").subject(id.clone());
            audit.details["request"]["fields"] = json!(body.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()));
            s.db.update_user(&id, patch, caller.attribution(), now, audit).map_err(|e| ApiError::from_store(e, "user"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[utoipa::path(get, path = "/me/sessions", tag = "me", summary = "One's own live sessions",
    params(Paging),
    responses((status = 200, body = Vec<SessionView>)),
    security(("bearer" = [])))]
async fn sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let id = me_id(&caller)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let sessions = state.into_inner().blocking(move |s| super::users::live_sessions(s, &id)).await?;
    Ok(paged(page_of(sessions, params.page_request()), params.include_totals, "sessions", SessionView::from))
}

#[utoipa::path(get, path = "/me/activity", tag = "me", summary = "One's own audit events",
    params(Paging),
    responses((status = 200, body = Vec<LogView>)),
    security(("bearer" = [])))]
async fn activity(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    list: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let id = me_id(&caller)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let page = list.page_request();
    let with_total = list.include_totals;
    let records = state
        .into_inner()
        .blocking(move |s| {
            let filter = AuditFilter { user_id: Some(id), ..Default::default() };
            Ok::<_, ApiError>(s.db.audit_records(&filter, page, with_total)?)
        })
        .await?;
    Ok(paged(records, with_total, "logs", LogView::from))
}
