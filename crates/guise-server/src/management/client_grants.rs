//! `/api/v2/client-grants`: which scopes of which API a client may obtain with the
//! client-credentials grant.

use super::views::ClientGrantView;
use super::{Paging, allow_query, paged, query_names};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::ids::new_client_grant_id;
use guise_core::permission::PermissionSet;
use guise_core::permission::{is_valid_scope_token, scopes};
use guise_core::role::ClientGrant;
use guise_core::store::{ClientGrantStore, ClientStore};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/client-grants").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/client-grants/{id}").route(web::patch().to(patch)).route(web::delete().to(delete)));
}

/// Check scopes against the API they are for: the Management API's own list, or valid
/// scope tokens for any other API identifier.
pub fn validate_scopes(management_audience: &str, audience: &str, scope: &[String]) -> Result<(), ApiError> {
    if url::Url::parse(audience).is_err() && !audience.starts_with("urn:") {
        return Err(ApiError::bad_request("audience must be an API identifier (a URL or URN)"));
    }
    for s in scope {
        let known =
            if audience == management_audience { scopes::ALL.contains(&s.as_str()) } else { is_valid_scope_token(s) };
        if !known {
            return Err(ApiError::bad_request(format!("The scope '{s}' is not defined for the API {audience}")));
        }
    }
    Ok(())
}

/// A grant of scopes on an API (its identifier, the `audience`) to a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    client_id: String,
    audience: String,
    scope: Vec<String>,
}

#[utoipa::path(post, path = "/client-grants", tag = "client-grants", summary = "Grant a client scopes on an API",
    request_body = CreateGrant,
    responses((status = 201, body = ClientGrantView)),
    security(("bearer" = ["create:client_grants"])))]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: web::Json<CreateGrant>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::CREATE_CLIENT_GRANTS)?;
    let body = body.into_inner();
    validate_scopes(&state.settings.management_audience(), &body.audience, &body.scope)?;
    let grant = state
        .into_inner()
        .blocking(move |s| {
            s.db.client_by_id(&body.client_id).map_err(|e| ApiError::from_store(e, "client"))?;
            caller.require_cover(&PermissionSet::on(&body.audience, body.scope.iter().cloned()))?;
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Create client grant");
            audit.details["grant"] =
                json!({ "client_id": body.client_id, "audience": body.audience, "scope": body.scope });
            let grant = ClientGrant {
                id: new_client_grant_id(),
                client_id: body.client_id,
                audience: body.audience,
                scope: body.scope,
                created_at: now,
            };
            s.db.create_client_grant(grant, audit).map_err(|e| match e {
                guise_core::StoreError::Conflict(_) => {
                    ApiError::conflict("A client grant for this client and audience already exists")
                }
                other => ApiError::from_store(other, "client grant"),
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(ClientGrantView::from(grant)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GrantFilter {
    client_id: Option<String>,
    audience: Option<String>,
}

#[utoipa::path(get, path = "/client-grants", tag = "client-grants", summary = "List client grants",
    params(Paging, GrantFilter),
    responses((status = 200, body = Vec<ClientGrantView>)),
    security(("bearer" = ["read:client_grants"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<GrantFilter>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_CLIENT_GRANTS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<GrantFilter>()])?;
    let filter = filter.into_inner();
    let page = params.page_request();
    let grants = state
        .into_inner()
        .blocking(move |s| {
            Ok::<_, ApiError>(s.db.list_client_grants(filter.client_id.as_deref(), filter.audience.as_deref(), page)?)
        })
        .await?;
    Ok(paged(grants, params.include_totals, "client_grants", ClientGrantView::from))
}

/// The grant's new scopes (all of them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchGrant {
    scope: Vec<String>,
}

#[utoipa::path(patch, path = "/client-grants/{id}", tag = "client-grants", summary = "Change a grant's scopes",
    params(("id" = String, Path, description = "The grant id")),
    request_body = PatchGrant,
    responses((status = 200, body = ClientGrantView)),
    security(("bearer" = ["update:client_grants"])))]
async fn patch(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<PatchGrant>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_CLIENT_GRANTS)?;
    let id = id.into_inner();
    let scope = body.into_inner().scope;
    let management = state.settings.management_audience();
    let grant = state
        .into_inner()
        .blocking(move |s| {
            let existing = s.db.client_grant_by_id(&id).map_err(|e| ApiError::from_store(e, "client grant"))?;
            validate_scopes(&management, &existing.audience, &scope)?;
            let before_and_after = PermissionSet::on(&existing.audience, existing.scope.iter().chain(&scope).cloned());
            caller.require_cover(&before_and_after)?;
            let mut audit = meta.api_event(&caller, s.clock.now(), "Update client grant");
            audit.details["grant"] = json!({ "id": id, "scope": scope });
            s.db.update_client_grant_scope(&id, scope, audit).map_err(|e| ApiError::from_store(e, "client grant"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(ClientGrantView::from(grant)))
}

#[utoipa::path(delete, path = "/client-grants/{id}", tag = "client-grants", summary = "Remove a grant",
    params(("id" = String, Path, description = "The grant id")),
    responses((status = 204)),
    security(("bearer" = ["delete:client_grants"])))]
async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::DELETE_CLIENT_GRANTS)?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::grant(&s.flow(), &caller, &id)?;
            let mut audit = meta.api_event(&caller, s.clock.now(), "Delete client grant");
            audit.details["grant"] = json!({ "id": id });
            s.db.delete_client_grant(&id, audit).map_err(|e| ApiError::from_store(e, "client grant"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
