//! `/api/v2/roles`: roles, their permissions, and the users holding them.

use super::views::{PermissionView, RoleUserView, RoleView};
use super::{Paging, allow_query, paged, payload_error, query_names, require_non_empty};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::ids::new_role_id;
use guise_core::permission::{Permission, PermissionSet, is_valid_scope_token, scopes};
use guise_core::role::{Role, RolePatch};
use guise_core::store::RoleStore;
use guise_store::Database;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/roles").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/roles/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(
            web::resource("/roles/{id}/permissions")
                .route(web::get().to(list_permissions))
                .route(web::post().to(add_permissions))
                .route(web::delete().to(remove_permissions)),
        )
        .service(
            web::resource("/roles/{id}/users").route(web::get().to(list_users)).route(web::post().to(assign_users)),
        );
}

fn validate_role_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 50 {
        return Err(ApiError::bad_request("Payload validation error: 'name' must be 1 to 50 characters"));
    }
    Ok(())
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(post, path = "/roles", tag = "roles", summary = "Create a role",
    request_body = CreateRole,
    responses((status = 200, body = RoleView)),
    security(("bearer" = ["create:roles"])))]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: web::Json<CreateRole>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::CREATE_ROLES)?;
    let body = body.into_inner();
    validate_role_name(&body.name)?;
    let role = state
        .into_inner()
        .blocking(move |s| {
            let role = Role { id: new_role_id(), name: body.name, description: body.description };
            let mut audit = meta.api_event(&caller, s.clock.now(), "Create a role");
            audit.details["role"] = json!({ "id": role.id, "name": role.name });
            s.db.create_role(role, audit).map_err(|e| ApiError::from_store(e, "role"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RoleFilter {
    /// Roles whose name contains this text (case-insensitive).
    name_filter: Option<String>,
}

#[utoipa::path(get, path = "/roles", tag = "roles", summary = "List roles",
    params(Paging, RoleFilter),
    responses((status = 200, body = Vec<RoleView>)),
    security(("bearer" = ["read:roles"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<RoleFilter>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_ROLES)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<RoleFilter>()])?;
    let name = filter.into_inner().name_filter;
    let page = params.page_request();
    let roles =
        state.into_inner().blocking(move |s| Ok::<_, ApiError>(s.db.list_roles(name.as_deref(), page)?)).await?;
    Ok(paged(roles, params.include_totals, "roles", RoleView::from))
}

#[utoipa::path(get, path = "/roles/{id}", tag = "roles", summary = "Get a role",
    params(("id" = String, Path, description = "The role id")),
    responses((status = 200, body = RoleView)),
    security(("bearer" = ["read:roles"])))]
async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_ROLES)?;
    let id = id.into_inner();
    let role =
        state.into_inner().blocking(move |s| s.db.role_by_id(&id).map_err(|e| ApiError::from_store(e, "role"))).await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

/// A PATCH body: only the properties given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatchBody {
    name: Option<String>,
    description: Option<String>,
}

#[utoipa::path(patch, path = "/roles/{id}", tag = "roles", summary = "Update a role",
    params(("id" = String, Path, description = "The role id")),
    request_body = RolePatchBody,
    responses((status = 200, body = RoleView)),
    security(("bearer" = ["update:roles"])))]
async fn patch(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_ROLES)?;
    require_non_empty(&body)?;
    let p: RolePatchBody = serde_json::from_value(body.into_inner()).map_err(payload_error)?;
    if let Some(name) = &p.name {
        validate_role_name(name)?;
    }
    let id = id.into_inner();
    let role = state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::roles(&s.flow(), &caller, [&id])?;
            let mut audit = meta.api_event(&caller, s.clock.now(), "Update a role");
            audit.details["role"] = json!({ "id": id });
            s.db.update_role(&id, RolePatch { name: p.name, description: p.description }, audit)
                .map_err(|e| ApiError::from_store(e, "role"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

#[utoipa::path(delete, path = "/roles/{id}", tag = "roles", summary = "Delete a role",
    params(("id" = String, Path, description = "The role id")),
    responses((status = 204)),
    security(("bearer" = ["delete:roles"])))]
async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::DELETE_ROLES)?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::roles(&s.flow(), &caller, [&id])?;
            let mut audit = meta.api_event(&caller, s.clock.now(), "Delete a role");
            audit.details["role"] = json!({ "id": id });
            s.db.delete_role(&id, audit).map_err(|e| ApiError::from_store(e, "role"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/roles/{id}/permissions", tag = "roles", summary = "A role's permissions",
    params(("id" = String, Path, description = "The role id"), Paging),
    responses((status = 200, body = Vec<PermissionView>)),
    security(("bearer" = ["read:roles"])))]
async fn list_permissions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_ROLES)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let id = id.into_inner();
    let page = params.page_request();
    let permissions = state
        .into_inner()
        .blocking(move |s| s.db.role_permissions(&id, page).map_err(|e| ApiError::from_store(e, "role")))
        .await?;
    Ok(paged(permissions, params.include_totals, "permissions", PermissionView::new))
}

/// Permissions, 1 to 100, each a scope of an API.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PermissionList {
    permissions: Vec<PermissionName>,
}

/// A permission named by its scope and its API's identifier.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PermissionName {
    permission_name: String,
    resource_server_identifier: String,
}

/// What a write of a role's permissions takes from the request.
type PermissionsWrite = (web::Data<AppState>, Caller, RequestMeta, web::Path<String>, web::Json<PermissionList>);

fn validate_permissions(management_audience: &str, body: PermissionList) -> Result<Vec<Permission>, ApiError> {
    if body.permissions.is_empty() || body.permissions.len() > 100 {
        return Err(ApiError::bad_request("Payload validation error: 'permissions' must hold 1 to 100 items"));
    }
    let permissions: Vec<Permission> = body
        .permissions
        .into_iter()
        .map(|p| Permission {
            permission_name: p.permission_name,
            resource_server_identifier: p.resource_server_identifier,
        })
        .collect();
    for p in &permissions {
        super::client_grants::validate_scopes(
            management_audience,
            &p.resource_server_identifier,
            std::slice::from_ref(&p.permission_name),
        )?;
        if !is_valid_scope_token(&p.permission_name) {
            return Err(ApiError::bad_request(format!("Invalid permission name '{}'", p.permission_name)));
        }
    }
    Ok(permissions)
}

#[utoipa::path(post, path = "/roles/{id}/permissions", tag = "roles", summary = "Add permissions to a role",
    params(("id" = String, Path, description = "The role id")),
    request_body = PermissionList,
    responses((status = 201)),
    security(("bearer" = ["update:roles"])))]
async fn add_permissions(request: PermissionsWrite) -> Result<HttpResponse, ApiError> {
    change_permissions(request, true).await
}

#[utoipa::path(delete, path = "/roles/{id}/permissions", tag = "roles", summary = "Remove permissions from a role",
    params(("id" = String, Path, description = "The role id")),
    request_body = PermissionList,
    responses((status = 204)),
    security(("bearer" = ["update:roles"])))]
async fn remove_permissions(request: PermissionsWrite) -> Result<HttpResponse, ApiError> {
    change_permissions(request, false).await
}

/// Add (`adding`) or remove a role's permissions; adding needs the caller to hold them.
async fn change_permissions(
    (state, caller, meta, id, body): PermissionsWrite,
    adding: bool,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_ROLES)?;
    let permissions = validate_permissions(&state.settings.management_audience(), body.into_inner())?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::roles(&s.flow(), &caller, [&id])?;
            let description = if adding {
                caller.require_cover(&PermissionSet::new(permissions.iter().cloned()))?;
                "Add permissions to a role"
            } else {
                "Remove permissions from a role"
            };
            let mut audit = meta.api_event(&caller, s.clock.now(), description);
            audit.details["role"] = json!({ "id": id, "permissions": permissions });
            let apply = if adding { Database::add_role_permissions } else { Database::remove_role_permissions };
            apply(&s.db, &id, &permissions, audit).map_err(|e| ApiError::from_store(e, "role"))
        })
        .await?;
    Ok(if adding { HttpResponse::Created() } else { HttpResponse::NoContent() }.finish())
}

#[utoipa::path(get, path = "/roles/{id}/users", tag = "roles", summary = "Users holding a role",
    params(("id" = String, Path, description = "The role id"), Paging),
    responses((status = 200, body = Vec<RoleUserView>)),
    security(("bearer" = ["read:roles", "read:users"])))]
async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_ROLES)?;
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let id = id.into_inner();
    let page = params.page_request();
    let users = state
        .into_inner()
        .blocking(move |s| s.db.role_users(&id, page).map_err(|e| ApiError::from_store(e, "role")))
        .await?;
    Ok(paged(users, params.include_totals, "users", RoleUserView::from))
}

/// User ids, 1 to 100.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserIds {
    users: Vec<String>,
}

#[utoipa::path(post, path = "/roles/{id}/users", tag = "roles", summary = "Assign a role to users",
    params(("id" = String, Path, description = "The role id")),
    request_body = UserIds,
    responses((status = 204)),
    security(("bearer" = ["update:roles", "update:users"])))]
async fn assign_users(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<UserIds>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_ROLES)?;
    caller.require(scopes::UPDATE_USERS)?;
    let users = body.into_inner().users;
    if users.is_empty() || users.len() > 100 {
        return Err(ApiError::bad_request("Payload validation error: 'users' must hold 1 to 100 user ids"));
    }
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            s.db.role_by_id(&id).map_err(|e| ApiError::from_store(e, "role"))?;
            guise_flow::ceiling::roles(&s.flow(), &caller, [&id])?;
            let now = s.clock.now();
            let events = users
                .iter()
                .map(|user| {
                    let mut audit = meta.api_event(&caller, now, "Assign users to a role").subject(user.clone());
                    audit.details["role"] = json!({ "id": id });
                    audit
                })
                .collect();
            s.db.add_role_users(&id, &users, events).map_err(|e| ApiError::from_store(e, "user"))
        })
        .await?;
    Ok(HttpResponse::Ok().finish())
}
