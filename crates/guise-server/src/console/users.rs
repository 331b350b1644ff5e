//! Finding a user, seeing one, and impersonating them — each a Management API call with
//! the agent's token.

use super::agent::{self, Agent};
use super::api::{ApiFailure, segment};
use super::view;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::permission::scopes;
use serde::Deserialize;
use serde_json::{Value, json};

pub const PER_PAGE: u32 = 20;

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    page: Option<u32>,
}

/// A section of a page: its data, or the API's reason for not showing it.
fn section(result: Result<Value, ApiFailure>) -> Value {
    match result {
        Ok(data) => json!({ "ok": true, "data": data }),
        Err(failure) => json!({ "ok": false, "error": failure.message }),
    }
}

/// `GET /console`: the search box and a page of results.
pub async fn search(req: HttpRequest, state: web::Data<AppState>, params: web::Query<SearchParams>) -> HttpResponse {
    let agent = agent::load_or_return!(&req, &state);
    let q = params.q.clone().unwrap_or_default().trim().to_owned();
    let page = params.page.unwrap_or(0).min(10_000);
    let mut query = vec![
        ("page", page.to_string()),
        ("per_page", PER_PAGE.to_string()),
        ("include_totals", "true".to_owned()),
        ("sort", "email:1".to_owned()),
    ];
    if !q.is_empty() {
        query.push(("q", q.clone()));
    }
    let result = agent.api.get("/api/v2/users", &query).await;
    let (status, results, error) = match result {
        Ok(body) => (StatusCode::OK, Some(body), None),
        Err(failure) => (failure.status_code(), None, Some(failure.message)),
    };
    let total = results.as_ref().and_then(|b| b["total"].as_u64()).unwrap_or(0);
    let shown_to = u64::from(page) * u64::from(PER_PAGE)
        + results.as_ref().and_then(|b| b["users"].as_array()).map_or(0, |u| u.len() as u64);
    view::page(
        status,
        "console/search.html",
        minijinja::context! {
            agent => agent.context(),
            nav => "users",
            q => q,
            page => page,
            users => results.as_ref().map(|b| view::data(&b["users"])),
            total => total,
            first => u64::from(page) * u64::from(PER_PAGE) + 1,
            last => shown_to,
            prev_page => page.checked_sub(1),
            next_page => (shown_to < total).then_some(page + 1),
            error => error,
        },
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct ImpersonateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    session_minutes: String,
}

/// Applications the agent may start an impersonation into: enabled for impersonation,
/// interactive. (The API still decides at minting.)
fn impersonation_targets(clients: &Value) -> Vec<Value> {
    clients
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|c| c["allow_impersonation"].as_bool() == Some(true) && c["app_type"] != "non_interactive")
                .map(|c| json!({ "client_id": c["client_id"], "name": c["name"], "protocol": protocol_of(c) }))
                .collect()
        })
        .unwrap_or_default()
}

/// The protocol follows from the application: SAML or WS-Fed when configured, else OIDC.
fn protocol_of(client: &Value) -> &'static str {
    let addons = &client["addons"];
    if addons["samlp"].is_object() {
        "samlp"
    } else if addons["wsfed"].is_object() {
        "wsfed"
    } else {
        "oauth2"
    }
}

/// A call made only when the agent's token carries `scope` (a call sure to be refused
/// would only leave a refused-call event in the audit log).
async fn needing(
    agent: &Agent,
    scope: &str,
    call: impl std::future::Future<Output = Result<Value, ApiFailure>>,
) -> Result<Value, ApiFailure> {
    if agent.can(scope) {
        call.await
    } else {
        Err(ApiFailure { status: 403, message: format!("your role lacks {scope}") })
    }
}

async fn user_page(
    state: &AppState,
    agent: &Agent,
    user_id: &str,
    form: &ImpersonateForm,
    notice: Option<(StatusCode, String)>,
) -> HttpResponse {
    let id = segment(user_id);
    let api = &agent.api;
    let user = match api.get(&format!("/api/v2/users/{id}"), &[]).await {
        Ok(user) => user,
        Err(failure) => {
            return view::message(
                failure.status_code(),
                "This user cannot be shown",
                &failure.message,
                Some(agent.context()),
            );
        }
    };
    let logs_query = vec![("q", format!("user_id:\"{user_id}\"")), ("per_page", "15".to_owned())];
    let roles_path = format!("/api/v2/users/{id}/roles");
    let permissions_path = format!("/api/v2/users/{id}/permissions");
    let sessions_path = format!("/api/v2/users/{id}/sessions");
    let ((roles, permissions, sessions), (as_agent, logs, clients)) = futures_util::future::join(
        futures_util::future::join3(
            needing(agent, scopes::READ_ROLES, api.get(&roles_path, &[])),
            api.get(&permissions_path, &[("per_page", "100".to_owned())]),
            api.get(&sessions_path, &[("per_page", "100".to_owned())]),
        ),
        futures_util::future::join3(
            api.get("/api/v2/impersonations", &[("impersonator_id", user_id.to_owned())]),
            needing(agent, scopes::READ_LOGS, api.get("/api/v2/logs", &logs_query)),
            async {
                if agent.can(scopes::IMPERSONATE_USERS) {
                    api.get("/api/v2/clients", &[("per_page", "100".to_owned())]).await
                } else {
                    Ok(Value::Null)
                }
            },
        ),
    )
    .await;
    let targets = clients.as_ref().map(impersonation_targets).unwrap_or_default();
    let max_minutes = (state.config.impersonation_session_secs / 60).max(1);
    let durations: Vec<i64> =
        [5, 15, 30, 60, 120, 240, 480].into_iter().filter(|m| *m < max_minutes).chain([max_minutes]).collect();
    let (status, notice) = match notice {
        Some((status, text)) => (status, Some(text)),
        None => (StatusCode::OK, None),
    };
    view::page(
        status,
        "console/user.html",
        minijinja::context! {
            agent => agent.context(),
            nav => "users",
            user => view::data(&user),
            roles => view::data(&section(roles)),
            permissions => view::data(&section(permissions)),
            sessions => view::data(&section(sessions)),
            impersonating => view::data(&section(as_agent)),
            logs => view::data(&section(logs)),
            clients_error => clients.err().map(|f| f.message),
            targets => view::data(&targets),
            durations => durations,
            chosen_minutes => form.session_minutes.parse::<i64>().unwrap_or(max_minutes.min(30)),
            chosen_client => form.client_id.clone(),
            reason => form.reason.clone(),
            notice => notice,
            step_up_minutes => state.config.console_step_up_secs / 60,
        },
    )
}

/// `GET /console/users/{user_id}`
pub async fn show(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let agent = agent::load_or_return!(&req, &state);
    user_page(&state, &agent, &path, &ImpersonateForm::default(), None).await
}

/// `POST /console/users/{user_id}/impersonate`: reason required, a recent login
/// required (else step-up), then the API's `POST /users/{id}/impersonate` as the agent.
pub async fn impersonate(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<ImpersonateForm>,
) -> HttpResponse {
    let agent = agent::load_or_return!(&req, &state);
    if let Some(refused) = agent.csrf_refusal(&form.csrf) {
        return refused;
    }
    let user_id = path.into_inner();
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        let text = "Give a reason: it is recorded with the impersonation and shown to everyone who reviews it.";
        return user_page(&state, &agent, &user_id, &form, Some((StatusCode::BAD_REQUEST, text.to_owned()))).await;
    }
    let now = state.clock.now();
    let window = chrono::Duration::seconds(state.config.console_step_up_secs);
    if now - agent.auth_time > window {
        let back = format!("/console/users/{}", segment(&user_id));
        let location = format!(
            "/console/login?{}",
            serde_urlencoded::to_string([("return_to", back.as_str()), ("step_up", "1")]).unwrap_or_default()
        );
        return view::page(
            StatusCode::FORBIDDEN,
            "console/message.html",
            minijinja::context! {
                agent => agent.context(),
                title => "Confirm it is you",
                text => format!(
                    "Impersonating needs a recent sign-in, and yours is older than {} minutes. Enter your password \
                     again; you will come back to this user to start the impersonation.",
                    state.config.console_step_up_secs / 60
                ),
                step_up => location,
            },
        );
    }
    let Ok(minutes) = form.session_minutes.trim().parse::<i64>() else {
        let text = "Choose how long the impersonation may last.".to_owned();
        return user_page(&state, &agent, &user_id, &form, Some((StatusCode::BAD_REQUEST, text))).await;
    };
    let clients = agent.api.get("/api/v2/clients", &[("per_page", "100".to_owned())]).await;
    let target = clients
        .as_ref()
        .map(impersonation_targets)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c["client_id"] == form.client_id.as_str());
    let protocol = target.as_ref().and_then(|c| c["protocol"].as_str()).unwrap_or("oauth2").to_owned();
    let body = json!({
        "protocol": protocol,
        "impersonator_id": agent.user_id,
        "client_id": form.client_id,
        "reason": reason,
        "session_ttl": minutes.saturating_mul(60),
    });
    match agent.api.post(&format!("/users/{}/impersonate", segment(&user_id)), &body).await {
        Ok(url) => view::page(
            StatusCode::OK,
            "console/impersonation_ready.html",
            minijinja::context! {
                agent => agent.context(),
                nav => "users",
                url => url.trim(),
                user_id => user_id,
                app => target.as_ref().and_then(|c| c["name"].as_str()).unwrap_or(form.client_id.as_str()),
                reason => reason,
                minutes => minutes,
                url_seconds => state.config.impersonation_url_ttl_secs,
            },
        ),
        Err(failure) => {
            let text = format!("guise refused the impersonation: {}", failure.message);
            user_page(&state, &agent, &user_id, &form, Some((failure.status_code(), text))).await
        }
    }
}
