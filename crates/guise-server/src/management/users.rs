//! `/api/v2/users`: create, read, search, patch, delete; roles and permissions of a user.

use super::views::{PermissionView, RoleView, SessionView, UserView};
use super::{Fields, Paging, Projection, allow_query, page_of, paged, parse_sort, query_names, require_non_empty};
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::ids::new_user_id;
use guise_core::permission::scopes;
use guise_core::store::{RoleStore, SessionStore, UserStore};
use guise_core::user::{NewUser, UserPatch, validate_email, validate_external_id, validate_length, validate_username};
use guise_core::user_query::{UserSort, UserSortField, parse_user_query};
use guise_store::Database;
use guise_store::password::{PasswordError, hash_password};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").route(web::get().to(list)).route(web::post().to(create)))
        .service(web::resource("/users-by-email").route(web::get().to(by_email)))
        .service(
            web::resource("/users/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        )
        .service(
            web::resource("/users/{id}/roles")
                .route(web::get().to(list_roles))
                .route(web::post().to(assign_roles))
                .route(web::delete().to(unassign_roles)),
        )
        .service(web::resource("/users/{id}/permissions").route(web::get().to(permissions)))
        .service(web::resource("/users/{id}/sessions").route(web::get().to(sessions)));
}

pub use super::views::CONNECTION;

/// A new user: an email or a username, and usually a password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    email_verified: bool,
    /// Accepted for Auth0 compatibility; guise sends no email.
    #[serde(default, rename = "verify_email")]
    _verify_email: bool,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    nickname: Option<String>,
    picture: Option<String>,
    #[serde(default)]
    blocked: bool,
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Map<String, Value>>,
    external_id: Option<String>,
    /// Must be `Username-Password-Authentication` when given.
    connection: Option<String>,
    /// Accepted for Auth0 compatibility: guise makes its own ids.
    user_id: Option<String>,
}

fn password_error(e: PasswordError) -> ApiError {
    match e {
        PasswordError::Hashing => ApiError::internal(&e),
        other => ApiError::bad_request(other.to_string()),
    }
}

fn check_profile_lengths(fields: &[(&'static str, &Option<String>)]) -> Result<(), ApiError> {
    for (name, value) in fields {
        if let Some(value) = value {
            validate_length(name, value, 300)?;
        }
    }
    Ok(())
}

fn valid_picture(picture: &Option<String>) -> Result<(), ApiError> {
    match picture {
        Some(p) if url::Url::parse(p).is_err() => Err(ApiError::bad_request("picture must be a URL")),
        _ => Ok(()),
    }
}

#[utoipa::path(post, path = "/users", tag = "users", summary = "Create a user",
    request_body = CreateUser,
    responses((status = 201, body = UserView)),
    security(("bearer" = ["create:users"])))]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::CREATE_USERS)?;
    let body = body.into_inner();
    if let Some(connection) = body.connection.as_ref().filter(|c| *c != CONNECTION) {
        return Err(ApiError::bad_request(format!("The connection does not exist: {connection}")));
    }
    let email = validate_email(
        body.email
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("Payload validation error: 'Missing required property: email'"))?,
    )?;
    if let Some(id) = &body.external_id {
        validate_external_id(id)?;
    }
    let username = body.username.as_deref().map(validate_username).transpose()?;
    check_profile_lengths(&[
        ("name", &body.name),
        ("given_name", &body.given_name),
        ("family_name", &body.family_name),
        ("nickname", &body.nickname),
        ("picture", &body.picture),
    ])?;
    valid_picture(&body.picture)?;
    let user_id = match body.user_id {
        Some(id)
            if id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            return Err(ApiError::bad_request("user_id must be 1 to 64 letters, digits, '-' or '_'"));
        }
        Some(id) => format!("{}{id}", guise_core::ids::USER_ID_PREFIX),
        None => new_user_id(),
    };
    let state = state.into_inner();
    let user = state
        .blocking(move |s| {
            let password_hash = body.password.as_deref().map(hash_password).transpose().map_err(password_error)?;
            let now = s.clock.now();
            let audit = meta.api_event(&caller, now, "Create a user").subject(user_id.clone());
            let named = NewUser::named_after_email(user_id, &email, now);
            let new = NewUser {
                username,
                email_verified: body.email_verified,
                name: body.name.or(named.name.clone()),
                given_name: body.given_name,
                family_name: body.family_name,
                nickname: body.nickname.or(named.nickname.clone()),
                picture: body.picture,
                blocked: body.blocked,
                app_metadata: body.app_metadata.unwrap_or_default(),
                user_metadata: body.user_metadata.unwrap_or_default(),
                external_id: body.external_id,
                password_hash,
                attribution: caller.attribution(),
                ..named
            };
            s.db.create_user(new, audit).map_err(|e| ApiError::from_store(e, "user"))
        })
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// A search in Auth0's Lucene-like syntax (docs/api.md).
    q: Option<String>,
    /// `field:1` or `field:-1`.
    sort: Option<String>,
    /// Accepted for Auth0 compatibility (`v3`); there is one search engine.
    #[serde(rename = "search_engine")]
    #[param(rename = "search_engine")]
    _search_engine: Option<String>,
}

#[utoipa::path(get, path = "/users", tag = "users", summary = "List or search users",
    params(Paging, Fields, SearchParams),
    responses((status = 200, body = Vec<UserView>)),
    security(("bearer" = ["read:users"])))]
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<SearchParams>,
    list: web::Query<Paging>,
    fields: web::Query<Fields>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<Paging>(), query_names::<Fields>(), query_names::<SearchParams>()])?;
    let terms = parse_user_query(params.q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid_query(format!("Invalid query: {e}")))?;
    let sort = match params.sort.as_deref() {
        None => UserSort::default(),
        Some(sort) => {
            let (field, ascending) = parse_sort(sort, UserSortField::NAMES)?;
            let field = UserSortField::parse(field).ok_or_else(|| ApiError::invalid_query("Invalid sort field"))?;
            UserSort { field, ascending }
        }
    };
    let projection = Projection::of(&fields)?;
    let page = list.page_request();
    let with_total = list.include_totals;
    let result = state
        .into_inner()
        .blocking(move |s| Ok::<_, ApiError>(s.db.search_users(&terms, sort, page, with_total)?))
        .await?;
    Ok(paged(result, with_total, "users", |u| projection.apply(UserView::from(u))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ByEmail {
    /// The email, compared exactly but without regard to case.
    #[param(required = true)]
    email: Option<String>,
}

/// `GET /api/v2/users-by-email?email=`: the users with that email, compared exactly but
/// without regard to case, as an array (at most one: emails are unique in guise).
#[utoipa::path(get, path = "/users-by-email", tag = "users", summary = "Users with an email (exact, case-insensitive)",
    params(ByEmail, Fields),
    responses((status = 200, body = Vec<UserView>)),
    security(("bearer" = ["read:users"])))]
async fn by_email(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ByEmail>,
    fields: web::Query<Fields>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<ByEmail>(), query_names::<Fields>()])?;
    let email = params.into_inner().email.filter(|e| !e.trim().is_empty()).ok_or_else(|| {
        ApiError::invalid_query("Query validation error: 'Missing required property: email' on property email")
    })?;
    let projection = Projection::of(&fields)?;
    let found = state
        .into_inner()
        .blocking(move |s| match s.db.user_by_email(&email) {
            Ok(user) => Ok(vec![user]),
            Err(guise_core::StoreError::NotFound) => Ok(Vec::new()),
            Err(e) => Err(ApiError::from(e)),
        })
        .await?;
    let body: Vec<Value> = found.into_iter().map(|u| projection.apply(UserView::from(u))).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/users/{id}", tag = "users", summary = "Get a user",
    params(("id" = String, Path, description = "The user id"), Fields),
    responses((status = 200, body = UserView)),
    security(("bearer" = ["read:users"])))]
async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Fields>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<Fields>()])?;
    let projection = Projection::of(&params)?;
    let id = id.into_inner();
    let user =
        state.into_inner().blocking(move |s| s.db.user_by_id(&id).map_err(|e| ApiError::from_store(e, "user"))).await?;
    Ok(HttpResponse::Ok().json(projection.apply(UserView::from(user))))
}

/// A PATCH body: only the properties given change; `null` removes an optional profile
/// field, and `{}` clears `user_metadata` or `app_metadata` (Auth0's semantics).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<bool>)]
    email_verified: Option<Option<bool>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    given_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    family_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    nickname: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    picture: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<bool>)]
    blocked: Option<Option<bool>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    password: Option<Option<String>>,
    /// Accepted for Auth0 compatibility.
    #[serde(default, rename = "connection")]
    #[schema(value_type = Option<String>)]
    _connection: Option<Value>,
    /// Accepted for Auth0 compatibility; guise sends no email.
    #[serde(default, rename = "verify_email")]
    #[schema(value_type = Option<bool>)]
    _verify_email: Option<Value>,
}

/// `null` where a value must be given.
fn not_null<T>(field: Option<Option<T>>, name: &str, what: &str) -> Result<Option<T>, ApiError> {
    match field {
        Some(None) => Err(ApiError::bad_request(format!("Payload validation error: '{name}' must be {what}"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// Parse a PATCH body into a `UserPatch` plus the new password, if any.
pub fn parse_user_patch(body: &Value) -> Result<(UserPatch, Option<String>), ApiError> {
    require_non_empty(body)?;
    let body: UserPatchBody = serde_json::from_value(body.clone()).map_err(super::payload_error)?;
    let email = match body.email {
        Some(Some(e)) => Some(validate_email(&e)?),
        Some(None) => return Err(ApiError::bad_request("email cannot be removed")),
        None => None,
    };
    let username = match body.username {
        Some(Some(u)) => Some(Some(validate_username(&u)?)),
        other => other,
    };
    if let Some(Some(id)) = &body.external_id {
        validate_external_id(id)?;
    }
    let patch = UserPatch {
        email,
        username,
        email_verified: not_null(body.email_verified, "email_verified", "a boolean")?,
        name: body.name,
        given_name: body.given_name,
        family_name: body.family_name,
        nickname: body.nickname,
        picture: body.picture,
        blocked: not_null(body.blocked, "blocked", "a boolean")?,
        app_metadata: not_null(body.app_metadata, "app_metadata", "an object")?,
        user_metadata: not_null(body.user_metadata, "user_metadata", "an object")?,
        external_id: body.external_id,
        password_hash: None,
    };
    let password = not_null(body.password, "password", "a string")?;
    check_profile_lengths(&[
        ("name", &patch.name.clone().flatten()),
        ("given_name", &patch.given_name.clone().flatten()),
        ("family_name", &patch.family_name.clone().flatten()),
        ("nickname", &patch.nickname.clone().flatten()),
        ("picture", &patch.picture.clone().flatten()),
    ])?;
    valid_picture(&patch.picture.clone().flatten())?;
    Ok((patch, password))
}

#[utoipa::path(patch, path = "/users/{id}", tag = "users", summary = "Update a user",
    params(("id" = String, Path, description = "The user id")),
    request_body = UserPatchBody,
    responses((status = 200, body = UserView)),
    security(("bearer" = ["update:users"])))]
async fn patch(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_USERS)?;
    let (mut patch, password) = parse_user_patch(&body)?;
    // Credentials, the login identifiers (email, username) and the blocked flag decide
    // who can sign in as this user; app_metadata feeds the attributes applications
    // authorise on, and external_id is how `sis_user_id:` acting-as finds the user.
    let touches_authority = password.is_some()
        || patch.email.is_some()
        || patch.username.is_some()
        || patch.email_verified.is_some()
        || patch.blocked.is_some()
        || patch.app_metadata.is_some()
        || patch.external_id.is_some();
    let id = id.into_inner();
    let user = state
        .into_inner()
        .blocking(move |s| {
            if touches_authority {
                guise_flow::ceiling::user(&s.flow(), &caller, &id)?;
            }
            patch.password_hash = password.as_deref().map(hash_password).transpose().map_err(password_error)?;
            let now = s.clock.now();
            let mut audit = meta.api_event(&caller, now, "Update a user").subject(id.clone());
            audit.details["request"]["fields"] = json!(body.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()));
            let by = caller.attribution();
            s.db.update_user(&id, patch, by, now, audit).map_err(|e| ApiError::from_store(e, "user"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[utoipa::path(delete, path = "/users/{id}", tag = "users", summary = "Delete a user",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 204)),
    security(("bearer" = ["delete:users"])))]
async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    meta: RequestMeta,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::DELETE_USERS)?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::user(&s.flow(), &caller, &id)?;
            let audit = meta.api_event(&caller, s.clock.now(), "Delete a user").subject(id.clone());
            s.db.delete_user(&id, audit).map_err(|e| ApiError::from_store(e, "user"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/users/{id}/roles", tag = "users", summary = "A user's roles",
    params(("id" = String, Path, description = "The user id"), Paging),
    responses((status = 200, body = Vec<RoleView>)),
    security(("bearer" = ["read:users", "read:roles"])))]
async fn list_roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    caller.require(scopes::READ_ROLES)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let id = id.into_inner();
    let page = params.page_request();
    let roles = state
        .into_inner()
        .blocking(move |s| s.db.user_roles(&id, page).map_err(|e| ApiError::from_store(e, "user")))
        .await?;
    Ok(paged(roles, params.include_totals, "roles", RoleView::from))
}

/// Role ids, 1 to 100.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleIds {
    roles: Vec<String>,
}

/// What a write of a user's roles takes from the request.
type RolesWrite = (web::Data<AppState>, Caller, RequestMeta, web::Path<String>, web::Json<RoleIds>);

fn role_ids(body: RoleIds) -> Result<Vec<String>, ApiError> {
    if body.roles.is_empty() || body.roles.len() > 100 {
        return Err(ApiError::bad_request("Payload validation error: 'roles' must hold 1 to 100 role ids"));
    }
    Ok(body.roles)
}

#[utoipa::path(post, path = "/users/{id}/roles", tag = "users", summary = "Assign roles to a user",
    params(("id" = String, Path, description = "The user id")),
    request_body = RoleIds,
    responses((status = 204)),
    security(("bearer" = ["update:users", "update:roles"])))]
async fn assign_roles(request: RolesWrite) -> Result<HttpResponse, ApiError> {
    change_roles(request, true).await
}

#[utoipa::path(delete, path = "/users/{id}/roles", tag = "users", summary = "Remove roles from a user",
    params(("id" = String, Path, description = "The user id")),
    request_body = RoleIds,
    responses((status = 204)),
    security(("bearer" = ["update:users", "update:roles"])))]
async fn unassign_roles(request: RolesWrite) -> Result<HttpResponse, ApiError> {
    change_roles(request, false).await
}

/// Assign (`assign`) or remove a user's roles.
async fn change_roles((state, caller, meta, id, body): RolesWrite, assign: bool) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::UPDATE_USERS)?;
    caller.require(scopes::UPDATE_ROLES)?;
    let roles = role_ids(body.into_inner())?;
    let id = id.into_inner();
    state
        .into_inner()
        .blocking(move |s| {
            guise_flow::ceiling::roles(&s.flow(), &caller, &roles)?;
            let description = if assign { "Assign roles to a user" } else { "Remove roles from a user" };
            let mut audit = meta.api_event(&caller, s.clock.now(), description).subject(id.clone());
            audit.details["roles"] = json!(roles);
            let apply = if assign { Database::assign_roles } else { Database::unassign_roles };
            apply(&s.db, &id, &roles, audit).map_err(|e| ApiError::from_store(e, "user"))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/users/{id}/permissions", tag = "users", summary = "A user's effective permissions, with the roles they come from",
    params(("id" = String, Path, description = "The user id"), Paging),
    responses((status = 200, body = Vec<PermissionView>)),
    security(("bearer" = ["read:users"])))]
async fn permissions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let id = id.into_inner();
    let held = state
        .into_inner()
        .blocking(move |s| {
            s.db.user_by_id(&id).map_err(|e| ApiError::from_store(e, "user"))?;
            s.db.user_permissions(&id).map_err(ApiError::from)
        })
        .await?;
    Ok(paged(page_of(held, params.page_request()), params.include_totals, "permissions", |(permission, roles)| {
        PermissionView::with_sources(permission, roles)
    }))
}

#[utoipa::path(get, path = "/users/{id}/sessions", tag = "users",
    summary = "A user's live sessions at guise, impersonation sessions marked with who and why",
    params(("id" = String, Path, description = "The user id"), Paging),
    responses((status = 200, body = Vec<SessionView>)),
    security(("bearer" = ["read:users"])))]
async fn sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    caller.require(scopes::READ_USERS)?;
    allow_query(&req, &[query_names::<Paging>()])?;
    let id = id.into_inner();
    let live = state
        .into_inner()
        .blocking(move |s| {
            s.db.user_by_id(&id).map_err(|e| ApiError::from_store(e, "user"))?;
            live_sessions(s, &id)
        })
        .await?;
    Ok(paged(page_of(live, params.page_request()), params.include_totals, "sessions", SessionView::from))
}

/// A user's sessions that are live now (for `/users/{id}/sessions` and `/me/sessions`).
pub fn live_sessions(s: &AppState, user_id: &str) -> Result<Vec<guise_core::session::Session>, ApiError> {
    let now = s.clock.now();
    Ok(s.db.sessions_of_user(user_id)?.into_iter().filter(|x| x.is_live(now)).collect())
}
