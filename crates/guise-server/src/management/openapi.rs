//! `GET /api/v2/openapi.json`: an OpenAPI 3.1 description of the Management API, built
//! from the table below. The API test `openapi::the_document_matches_the_routes` calls
//! every operation it lists, with every query parameter it names, so the table cannot
//! name a route or a parameter the server does not have.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

/// One operation: method, path (relative to `/api/v2`), scopes (all required), summary,
/// query parameters, whether it takes a JSON body, and its success status.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub scopes: &'static [&'static str],
    pub summary: &'static str,
    pub query: &'static [&'static str],
    pub body: Option<&'static str>,
    pub success: u16,
    pub response: Option<&'static str>,
}

const PAGING: [&str; 3] = ["page", "per_page", "include_totals"];
const USERS_QUERY: &[&str] =
    &["page", "per_page", "include_totals", "q", "sort", "search_engine", "fields", "include_fields"];
const CLIENTS_QUERY: &[&str] =
    &["page", "per_page", "include_totals", "app_type", "is_first_party", "is_global", "fields", "include_fields"];
const LOGS_QUERY: &[&str] =
    &["page", "per_page", "include_totals", "q", "search", "from", "take", "sort", "fields", "include_fields"];

macro_rules! op {
    ($method:literal, $path:literal, [$($scope:literal),*], $summary:literal, $query:expr, $body:expr, $success:literal, $response:expr) => {
        Operation {
            method: $method,
            path: $path,
            scopes: &[$($scope),*],
            summary: $summary,
            query: $query,
            body: $body,
            success: $success,
            response: $response,
        }
    };
}

/// Every Management API operation.
pub const OPERATIONS: &[Operation] = &[
    op!("get", "/users", ["read:users"], "List or search users", USERS_QUERY, None, 200, Some("User")),
    op!("post", "/users", ["create:users"], "Create a user", &[], Some("UserCreate"), 201, Some("User")),
    op!(
        "get",
        "/users-by-email",
        ["read:users"],
        "Users with an email (exact, case-insensitive)",
        &["email", "fields", "include_fields"],
        None,
        200,
        Some("User")
    ),
    op!("get", "/users/{id}", ["read:users"], "Get a user", &["fields", "include_fields"], None, 200, Some("User")),
    op!("patch", "/users/{id}", ["update:users"], "Update a user", &[], Some("UserPatch"), 200, Some("User")),
    op!("delete", "/users/{id}", ["delete:users"], "Delete a user", &[], None, 204, None),
    op!("get", "/users/{id}/roles", ["read:users", "read:roles"], "A user's roles", &PAGING, None, 200, Some("Role")),
    op!(
        "post",
        "/users/{id}/roles",
        ["update:users", "update:roles"],
        "Assign roles to a user",
        &[],
        Some("RoleIds"),
        204,
        None
    ),
    op!(
        "delete",
        "/users/{id}/roles",
        ["update:users", "update:roles"],
        "Remove roles from a user",
        &[],
        Some("RoleIds"),
        204,
        None
    ),
    op!(
        "get",
        "/users/{id}/permissions",
        ["read:users"],
        "A user's permissions, with their sources",
        &PAGING,
        None,
        200,
        Some("Permission")
    ),
    op!("get", "/clients", ["read:clients"], "List clients", CLIENTS_QUERY, None, 200, Some("Client")),
    op!("post", "/clients", ["create:clients"], "Create a client", &[], Some("ClientWrite"), 201, Some("Client")),
    op!(
        "get",
        "/clients/{id}",
        ["read:clients"],
        "Get a client",
        &["fields", "include_fields"],
        None,
        200,
        Some("Client")
    ),
    op!("patch", "/clients/{id}", ["update:clients"], "Update a client", &[], Some("ClientWrite"), 200, Some("Client")),
    op!("delete", "/clients/{id}", ["delete:clients"], "Delete a client", &[], None, 204, None),
    op!(
        "post",
        "/clients/{id}/rotate-secret",
        ["update:clients"],
        "Rotate a client's secret",
        &[],
        None,
        200,
        Some("Client")
    ),
    op!(
        "get",
        "/client-grants",
        ["read:client_grants"],
        "List client grants",
        &["page", "per_page", "include_totals", "client_id", "audience"],
        None,
        200,
        Some("ClientGrant")
    ),
    op!(
        "post",
        "/client-grants",
        ["create:client_grants"],
        "Create a client grant",
        &[],
        Some("ClientGrant"),
        201,
        Some("ClientGrant")
    ),
    op!(
        "patch",
        "/client-grants/{id}",
        ["update:client_grants"],
        "Update a client grant's scope",
        &[],
        Some("ClientGrant"),
        200,
        Some("ClientGrant")
    ),
    op!("delete", "/client-grants/{id}", ["delete:client_grants"], "Delete a client grant", &[], None, 204, None),
    op!(
        "get",
        "/roles",
        ["read:roles"],
        "List roles",
        &["page", "per_page", "include_totals", "name_filter"],
        None,
        200,
        Some("Role")
    ),
    op!("post", "/roles", ["create:roles"], "Create a role", &[], Some("Role"), 200, Some("Role")),
    op!("get", "/roles/{id}", ["read:roles"], "Get a role", &[], None, 200, Some("Role")),
    op!("patch", "/roles/{id}", ["update:roles"], "Update a role", &[], Some("Role"), 200, Some("Role")),
    op!("delete", "/roles/{id}", ["delete:roles"], "Delete a role", &[], None, 204, None),
    op!(
        "get",
        "/roles/{id}/permissions",
        ["read:roles"],
        "A role's permissions",
        &PAGING,
        None,
        200,
        Some("Permission")
    ),
    op!(
        "post",
        "/roles/{id}/permissions",
        ["update:roles"],
        "Add permissions to a role",
        &[],
        Some("Permissions"),
        201,
        None
    ),
    op!(
        "delete",
        "/roles/{id}/permissions",
        ["update:roles"],
        "Remove permissions from a role",
        &[],
        Some("Permissions"),
        204,
        None
    ),
    op!(
        "get",
        "/roles/{id}/users",
        ["read:roles", "read:users"],
        "Users holding a role",
        &PAGING,
        None,
        200,
        Some("User")
    ),
    op!(
        "post",
        "/roles/{id}/users",
        ["update:roles", "update:users"],
        "Assign a role to users",
        &[],
        Some("UserIds"),
        204,
        None
    ),
    op!("get", "/logs", ["read:logs"], "Search the audit log", LOGS_QUERY, None, 200, Some("Log")),
    op!("get", "/logs/{id}", ["read:logs"], "Get a log event", &[], None, 200, Some("Log")),
    op!(
        "get",
        "/impersonations",
        ["read:users"],
        "Live impersonation sessions",
        &["page", "per_page", "include_totals", "impersonator_id", "user_id"],
        None,
        200,
        Some("Impersonation")
    ),
    op!(
        "delete",
        "/impersonations/{id}",
        ["impersonate:users"],
        "End an impersonation (one's own with impersonate:users, any with update:users)",
        &[],
        None,
        204,
        None
    ),
    op!("get", "/me", [], "The user behind a user token (or acted as)", &[], None, 200, Some("User")),
    op!("patch", "/me", [], "Update one's own profile", &[], Some("UserPatch"), 200, Some("User")),
    op!("get", "/me/sessions", [], "One's own live sessions", &PAGING, None, 200, None),
    op!("get", "/me/activity", [], "One's own audit events", &PAGING, None, 200, Some("Log")),
];

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn schemas() -> Value {
    let s = json!({ "type": "string" });
    let ns = json!({ "type": ["string", "null"] });
    let b = json!({ "type": "boolean" });
    let obj = json!({ "type": "object" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "User": object(json!({
            "user_id": s, "email": s, "username": s, "email_verified": b, "blocked": b,
            "name": s, "given_name": s, "family_name": s, "nickname": s, "picture": s,
            "app_metadata": obj, "user_metadata": obj, "external_id": s,
            "created_at": { "type": "string", "format": "date-time" },
            "updated_at": { "type": "string", "format": "date-time" },
            "last_login": { "type": "string", "format": "date-time" }, "last_ip": s,
            "logins_count": { "type": "integer" },
            "created_by": s, "modified_by": s, "created_on_behalf_by": s, "modified_on_behalf_by": s,
            "identities": { "type": "array", "items": obj },
        }), &["user_id", "email", "email_verified", "blocked", "app_metadata", "user_metadata", "created_at", "updated_at", "logins_count", "identities"]),
        "UserCreate": object(json!({
            "email": s, "username": s, "password": s, "email_verified": b, "verify_email": b, "blocked": b,
            "name": s, "given_name": s, "family_name": s, "nickname": s, "picture": s,
            "app_metadata": obj, "user_metadata": obj, "external_id": s, "connection": s, "user_id": s,
        }), &["email"]),
        "UserPatch": object(json!({
            "email": s, "username": ns, "password": s, "email_verified": b, "blocked": b,
            "name": ns, "given_name": ns, "family_name": ns, "nickname": ns, "picture": ns,
            "app_metadata": obj, "user_metadata": obj, "external_id": ns, "connection": s, "verify_email": b,
        }), &[]),
        "Client": object(json!({
            "client_id": s, "client_secret": s, "name": s, "description": s,
            "app_type": { "enum": ["regular_web", "spa", "native", "non_interactive"] },
            "is_first_party": b, "callbacks": strings, "allowed_logout_urls": strings, "grant_types": strings,
            "token_endpoint_auth_method": { "enum": ["none", "client_secret_post", "client_secret_basic"] },
            "allow_impersonation": b, "allow_act_as": b, "initiate_login_uri": ns, "addons": obj,
            "jwt_configuration": obj, "web_origins": strings, "allowed_origins": strings,
            "oidc_conformant": b, "logo_uri": ns, "client_metadata": { "type": "object", "additionalProperties": s, "maxProperties": 10 },
            "created_at": { "type": "string", "format": "date-time" },
            "updated_at": { "type": "string", "format": "date-time" },
        }), &["client_id", "name", "app_type"]),
        "ClientWrite": { "$ref": "#/components/schemas/Client" },
        "ClientGrant": object(json!({ "id": s, "client_id": s, "audience": s, "scope": strings }), &[]),
        "Role": object(json!({ "id": s, "name": s, "description": s }), &[]),
        "RoleIds": object(json!({ "roles": strings }), &["roles"]),
        "UserIds": object(json!({ "users": strings }), &["users"]),
        "Permission": object(json!({
            "permission_name": s, "resource_server_identifier": s, "resource_server_name": s, "description": ns,
            "sources": { "type": "array", "items": obj },
        }), &["permission_name", "resource_server_identifier"]),
        "Permissions": object(json!({ "permissions": { "type": "array", "items": { "$ref": "#/components/schemas/Permission" } } }), &["permissions"]),
        "Log": object(json!({
            "log_id": s, "date": { "type": "string", "format": "date-time" }, "type": s, "description": s,
            "client_id": ns, "ip": ns, "user_id": ns, "actor": obj, "on_behalf_of": ns, "details": obj, "hash": s,
        }), &["log_id", "date", "type"]),
        "Impersonation": object(json!({
            "id": s, "user_id": s, "impersonator_id": s, "reason": ns,
            "created_at": { "type": "string", "format": "date-time" },
            "expires_at": { "type": "string", "format": "date-time" }, "ip": ns,
        }), &[]),
        "Error": object(json!({ "statusCode": { "type": "integer" }, "error": s, "message": s, "errorCode": s }), &["statusCode", "error", "message"]),
    })
}

fn query_parameter(name: &str) -> Value {
    let schema = match name {
        "page" | "per_page" | "take" => json!({ "type": "integer", "minimum": 0 }),
        "include_totals" | "include_fields" | "is_first_party" | "is_global" => json!({ "type": "boolean" }),
        _ => json!({ "type": "string" }),
    };
    json!({ "name": name, "in": "query", "required": name == "email", "schema": schema })
}

/// The document, with `{issuer}api/v2` as its server.
pub fn document(management_audience: &str) -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let mut parameters: Vec<Value> = Vec::new();
        if op.path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        parameters.extend(op.query.iter().map(|q| query_parameter(q)));
        parameters.push(json!({
            "name": "as_user_id", "in": "query", "required": false, "schema": { "type": "string" },
            "description": "Act on behalf of this user (see docs/api.md, Acting on behalf of a user)",
        }));
        let mut responses = Map::new();
        let success = match op.response {
            Some(schema) => {
                let item = json!({ "$ref": format!("#/components/schemas/{schema}") });
                let content = if op.method == "get" && !op.path.ends_with("{id}") && op.path != "/me" {
                    json!({ "oneOf": [{ "type": "array", "items": item }, { "type": "object" }] })
                } else {
                    item
                };
                json!({ "description": "Success", "content": { "application/json": { "schema": content } } })
            }
            None => json!({ "description": "Success" }),
        };
        responses.insert(op.success.to_string(), success);
        responses.insert(
            "default".into(),
            json!({ "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
        let mut operation = json!({
            "summary": op.summary,
            "parameters": parameters,
            "responses": responses,
            "security": [{ "bearer": op.scopes }],
            "x-required-scopes": op.scopes,
        });
        if let Some(body) = op.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } },
            });
        }
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "guise Management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Auth0's Management API v2 shapes. Every operation needs a bearer access token for this audience carrying the listed scopes (all of them); see docs/api.md.",
        },
        "servers": [{ "url": management_audience.trim_end_matches('/') }],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
        },
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(serve)));
}

/// Public, like Auth0's published API description: it says what exists, not what
/// anyone holds.
async fn serve(state: web::Data<crate::state::AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.settings.management_audience()))
}
