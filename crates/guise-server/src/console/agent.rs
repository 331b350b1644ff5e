//! The signed-in agent behind a console request: their session row, their token
//! (opened with the cookie), what the token says they may do (to show only the buttons
//! the API would honour — the API still decides), and the CSRF token of their forms.

use super::api::Api;
use super::session::{self, SESSION_COOKIE};
use super::view;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use guise_core::permission::scopes;
use guise_core::store::ConsoleSessionStore;
use std::collections::BTreeSet;

pub struct Agent {
    pub user_id: String,
    pub label: String,
    pub auth_time: DateTime<Utc>,
    pub scopes: BTreeSet<String>,
    pub csrf: String,
    pub api: Api,
}

impl Agent {
    pub fn can(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// What templates know of the agent.
    pub fn context(&self) -> minijinja::Value {
        minijinja::context! {
            label => self.label.clone(),
            user_id => self.user_id.clone(),
            csrf => self.csrf.clone(),
            can_impersonate => self.can(scopes::IMPERSONATE_USERS),
            can_read_users => self.can(scopes::READ_USERS),
            can_read_logs => self.can(scopes::READ_LOGS),
        }
    }

    /// Refuse a form whose CSRF token does not belong to this session.
    pub fn csrf_refusal(&self, given: &str) -> Option<HttpResponse> {
        if session::tokens_match(&self.csrf, given) {
            None
        } else {
            Some(view::message(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this console session (its security token did not match). \
                 Go back, reload the page and try again.",
                Some(self.context()),
            ))
        }
    }
}

/// Where sign-in should bring the agent back to: this page for a GET, the console's
/// front page for a POST (a form cannot be replayed after a sign-in).
fn sign_in(req: &HttpRequest) -> HttpResponse {
    let here = match req.uri().path_and_query() {
        Some(pq) if req.method() == actix_web::http::Method::GET => pq.as_str().to_owned(),
        _ => "/console".to_owned(),
    };
    let location = format!("/console/login?{}", serde_urlencoded::to_string([("return_to", here)]).unwrap_or_default());
    view::redirect(&location, vec![])
}

/// In a console handler: the agent, or return the response `load` gives instead.
macro_rules! load_or_return {
    ($req:expr, $state:expr) => {
        match $crate::console::agent::load($req, $state).await {
            Ok(agent) => agent,
            Err(response) => return response,
        }
    };
}
pub(super) use load_or_return;

/// The agent, or the response to give instead: sign in first, or "no access".
pub async fn load(req: &HttpRequest, state: &web::Data<AppState>) -> Result<Agent, HttpResponse> {
    let Some(cookie) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()).filter(|c| session::well_formed(c))
    else {
        return Err(sign_in(req));
    };
    let id_hash = session::id_hash(&cookie);
    let found = state
        .clone()
        .into_inner()
        .blocking(move |s| {
            let now = s.clock.now();
            let row = s.db.console_session(&id_hash, now)?;
            Ok::<_, crate::error::ApiError>(row.map(|row| (row, s.keys.current(), now)))
        })
        .await;
    let (row, keys, now) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Err(sign_in(req)),
        Err(e) => {
            return Err(view::message(e.status, "The console is unavailable", "Try again in a moment.", None));
        }
    };
    let Some(token) = session::open(&cookie, &row.sealed_token) else { return Err(sign_in(req)) };
    let audience = state.settings.management_audience();
    let claims = match guise_oidc::access_token::verify(&keys, &token, &state.settings.issuer, &audience, now) {
        Ok(claims) => claims,
        Err(_) => return Err(sign_in(req)),
    };
    let held: BTreeSet<String> = claims.scopes().map(str::to_owned).collect();
    let agent = Agent {
        user_id: row.user_id,
        label: row.label,
        auth_time: row.auth_time,
        scopes: held.clone(),
        csrf: session::csrf_token(&cookie),
        api: Api::new(req, token),
    };
    if !scopes::ALL.iter().any(|s| held.contains(*s)) {
        return Err(view::page(
            StatusCode::FORBIDDEN,
            "console/message.html",
            minijinja::context! {
                title => "No access to the support console",
                text => format!(
                    "You are signed in as {}, but your account holds no Management API permission, so there \
                     is nothing here you may see or do. Ask an administrator for a support role (for example \
                     read:users, read:logs and impersonate:users).",
                    agent.label
                ),
                agent => agent.context(),
                no_access => true,
            },
        ));
    }
    Ok(agent)
}
