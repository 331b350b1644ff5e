//! The console's registration: a public, first-party OIDC client of guise itself whose
//! only callback is guise's own `/console/callback`, granted the Management API so that
//! an agent's token can carry the agent's own Management API permissions (never more:
//! a user token holds what the user and the grant both hold). Created by `guise init`
//! and at server start on databases that predate the console, audited like any client.

use crate::error::ApiError;
use crate::management_client::{ensure_management_grant, find_client_by_name};
use crate::state::AppState;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::client::{AppType, Client, ClientPatch, TokenEndpointAuthMethod};
use guise_core::ids::new_client_id;
use guise_core::store::ClientStore;

pub const CONSOLE_CLIENT: &str = "guise Support Console";

/// Where the authorization server sends the agent back.
pub fn callback_url(issuer: &str) -> String {
    format!("{}/console/callback", issuer.trim_end_matches('/'))
}

fn event(state: &AppState, description: &str) -> AuditEvent {
    AuditEvent::new(event_type::TENANT_INITIALISED, state.clock.now(), Actor::System, description)
}

/// The console client, created or brought up to date (its callback for this issuer,
/// its Management API grant), and its id kept in `state` for the console's sign-ins.
/// Idempotent: an up-to-date tenant gets no write.
pub fn ensure(state: &AppState) -> Result<Client, ApiError> {
    let callback = callback_url(&state.settings.issuer);
    let client = match find_client_by_name(&state.db, CONSOLE_CLIENT)? {
        Some(client) if client.is_registered_callback(&callback) => client,
        Some(client) => {
            let mut callbacks = client.callbacks.clone();
            callbacks.push(callback);
            let patch = ClientPatch { callbacks: Some(callbacks), ..Default::default() };
            state.db.update_client(
                &client.client_id,
                patch,
                state.clock.now(),
                event(state, "Support console callback registered for this issuer"),
            )?
        }
        None => {
            let now = state.clock.now();
            let mut client = Client::new(new_client_id(), CONSOLE_CLIENT, AppType::RegularWeb, now);
            client.description = "The support console at /console (created by guise): a public first-party client \
                                  using authorization code with PKCE"
                .into();
            client.callbacks = vec![callback];
            client.grant_types = vec!["authorization_code".into()];
            client.token_endpoint_auth_method = TokenEndpointAuthMethod::None;
            crate::management::create_client(&state.db, client, event(state, "Support console client created"))?.0
        }
    };
    ensure_management_grant(
        state,
        &client.client_id,
        &state.settings.management_audience(),
        event(state, "Support console granted the Management API (user tokens carry only the user's own permissions)"),
    )?;
    // Set once per process (a second call, as `guise init` makes, finds the same client).
    let _ = state.console_client_id.set(client.client_id.clone());
    Ok(client)
}
