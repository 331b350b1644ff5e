//! `guise init`: the first administrator and a management client, created idempotently.

use crate::error::ApiError;
use crate::management_client::{ensure_management_grant, find_client_by_name};
use crate::state::AppState;
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::client::{AppType, Client, TokenEndpointAuthMethod};
use guise_core::ids::{new_client_id, new_role_id, new_user_id};
use guise_core::page::PageRequest;
use guise_core::permission::{Permission, scopes};
use guise_core::role::Role;
use guise_core::store::{RoleStore, UserStore};
use guise_core::user::{NewUser, validate_email};
use guise_store::password::hash_password;
use serde::Serialize;
use serde_json::json;

pub const ADMIN_ROLE: &str = "guise Administrator";
pub const MANAGEMENT_CLIENT: &str = "guise Management Client";

#[derive(Debug, Serialize)]
pub struct InitOutcome {
    pub admin: AdminSummary,
    pub management_client: ClientSummary,
}

#[derive(Debug, Serialize)]
pub struct AdminSummary {
    pub user_id: String,
    pub email: String,
}

#[derive(Debug, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    /// Present when the client was created now; an existing secret cannot be shown.
    pub client_secret: Option<String>,
}

fn event(state: &AppState, description: &str) -> AuditEvent {
    AuditEvent::new(event_type::TENANT_INITIALISED, state.clock.now(), Actor::System, description)
}

/// Create what is missing: the admin role with every Management API permission, the
/// admin user holding it, the management client and its grant on every scope.
pub fn init_tenant(state: &AppState, email: &str, password: &str) -> Result<InitOutcome, ApiError> {
    let email = validate_email(email)?;
    let audience = state.settings.management_audience();
    let role = ensure_admin_role(state, &audience)?;
    let admin = match state.db.user_by_email(&email) {
        Ok(user) => user,
        Err(StoreError::NotFound) => {
            let password_hash = hash_password(password).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let new = NewUser {
                email_verified: true,
                password_hash: Some(password_hash),
                ..NewUser::named_after_email(new_user_id(), &email, state.clock.now())
            };
            let user_id = new.user_id.clone();
            state.db.create_user(new, event(state, "Administrator created").subject(user_id))?
        }
        Err(e) => return Err(e.into()),
    };
    let holds_role =
        state.db.user_roles(&admin.user_id, PageRequest::new(None, Some(100)))?.items.iter().any(|r| r.id == role.id);
    if !holds_role {
        state.db.assign_roles(
            &admin.user_id,
            std::slice::from_ref(&role.id),
            event(state, "Administrator role assigned").subject(admin.user_id.clone()),
        )?;
    }

    let (client, secret) = match find_client_by_name(&state.db, MANAGEMENT_CLIENT)? {
        Some(client) => (client, None),
        None => {
            let now = state.clock.now();
            let client = Client {
                description: "Created by guise init: a machine client holding every Management API scope".into(),
                grant_types: vec!["client_credentials".into()],
                token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretPost,
                allow_act_as: true,
                ..Client::new(new_client_id(), MANAGEMENT_CLIENT, AppType::NonInteractive, now)
            };
            let (client, secret) =
                crate::management::create_client(&state.db, client, event(state, "Management client created"))?;
            (client, secret)
        }
    };
    ensure_management_grant(
        state,
        &client.client_id,
        &audience,
        event(state, "Management client granted every scope"),
    )?;
    crate::console::client::ensure(state)?;
    Ok(InitOutcome {
        admin: AdminSummary { user_id: admin.user_id, email: admin.email },
        management_client: ClientSummary { client_id: client.client_id, client_secret: secret },
    })
}

fn ensure_admin_role(state: &AppState, audience: &str) -> Result<Role, ApiError> {
    let existing = state.db.list_roles(Some(ADMIN_ROLE), Default::default())?.items.into_iter().next();
    let role = match existing {
        Some(role) => role,
        None => state.db.create_role(
            Role {
                id: new_role_id(),
                name: ADMIN_ROLE.to_owned(),
                description: "Every Management API permission (created by guise init)".into(),
            },
            event(state, "Administrator role created"),
        )?,
    };
    let held = state.db.role_permissions(&role.id, PageRequest::new(None, Some(100)))?.items;
    let missing: Vec<Permission> = scopes::ALL
        .iter()
        .map(|s| Permission { resource_server_identifier: audience.to_owned(), permission_name: (*s).to_owned() })
        .filter(|p| !held.contains(p))
        .collect();
    if !missing.is_empty() {
        state.db.add_role_permissions(
            &role.id,
            &missing,
            event(state, "Administrator role granted every permission").details(json!({ "role": role.id })),
        )?;
    }
    Ok(role)
}
