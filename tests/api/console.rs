//! The support console over HTTP: every route's sign-in and CSRF refusals, the security
//! headers, "no access", the ceiling (the console never lets an agent do what their own
//! token could not), step-up, and an impersonation started, listed and ended.

use crate::both_backends;
use crate::browser::{Browser, Page, USER_EMAIL, user};
use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, spawn_app_with_clock};
use crate::impersonation::impersonation_client;
use guise_core::clock::ManualClock;
use serde_json::json;
use std::sync::Arc;

pub const AGENT_PASSWORD: &str = "support agent password";

/// Sign in to the console through guise's own login page; returns the browser holding the
/// console session.
pub async fn console_sign_in(app: &TestApp, email: &str, password: &str) -> Browser {
    console_sign_in_with(app, Browser::new(), email, password).await
}

/// [`console_sign_in`] in `browser`.
pub async fn console_sign_in_with(app: &TestApp, browser: Browser, email: &str, password: &str) -> Browser {
    let start = browser.get(&app.url("/console")).await;
    assert_eq!(start.status, 303, "{}", start.body);
    assert!(start.location.as_deref().unwrap().starts_with("/console/login?return_to="), "{start:?}");
    let login = browser.get(&app.url(start.location.as_deref().unwrap())).await;
    assert_eq!(login.status, 303);
    let authorize = login.location.clone().unwrap();
    assert!(authorize.starts_with("/authorize?") && authorize.contains("code_challenge_method=S256"), "{authorize}");
    let callback = browser.login_via(app, &app.url(&authorize), email, password).await;
    finish_sign_in(app, &browser, callback).await;
    browser
}

/// Follow guise's answer to the login form to the console's callback and back.
pub async fn finish_sign_in(app: &TestApp, browser: &Browser, mut page: Page) {
    page = browser.follow(app, page).await;
    let callback = page.location.clone().unwrap_or_else(|| panic!("no callback: {}", page.body));
    assert!(callback.starts_with(&app.url("/console/callback?")), "{callback}");
    let back = browser.get(&callback).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.location.as_deref(), Some("/console"));
}

/// A user holding a role with `permissions` on the Management API; returns their id.
pub async fn agent(app: &TestApp, email: &str, permissions: &[&str]) -> String {
    let (status, created) =
        app.post("/api/v2/users", &json!({ "email": email, "password": AGENT_PASSWORD, "email_verified": true })).await;
    assert_eq!(status, 201, "{created}");
    let user_id = created["user_id"].as_str().unwrap().to_owned();
    if permissions.is_empty() {
        return user_id;
    }
    let (status, role) = app.post("/api/v2/roles", &json!({ "name": format!("Support {email}") })).await;
    assert!(matches!(status, 200 | 201), "{role}");
    let role_id = role["id"].as_str().unwrap();
    let list: Vec<_> = permissions
        .iter()
        .map(|p| json!({ "resource_server_identifier": app.management_audience(), "permission_name": p }))
        .collect();
    assert_eq!(app.post(&format!("/api/v2/roles/{role_id}/permissions"), &json!({ "permissions": list })).await.0, 201);
    let path = format!("/api/v2/users/{}/roles", crate::users::urlencode(&user_id));
    assert!(matches!(app.post(&path, &json!({ "roles": [role_id] })).await.0, 200 | 201 | 204));
    user_id
}

/// The CSRF token of the console's forms on `html`.
pub fn csrf(html: &str) -> String {
    crate::browser::hidden(html, "csrf")
}

fn enc(s: &str) -> String {
    crate::users::urlencode(s)
}

async fn every_console_route_needs_a_session_and_every_form_its_csrf_token(app: TestApp) {
    let stranger = Browser::new();
    for path in ["/console", "/console/users/guise%7Cx", "/console/impersonations", "/console/logs"] {
        let page = stranger.get(&app.url(path)).await;
        assert_eq!(page.status, 303, "{path} without a session");
        assert!(page.location.unwrap().starts_with("/console/login?return_to="), "{path}");
    }
    for path in ["/console/users/guise%7Cx/impersonate", "/console/impersonations/sid/end", "/console/logout"] {
        let page = stranger.post(&app.url(path), &[("csrf", "x")]).await;
        assert!(matches!(page.status, 303 | 403), "{path} without a session: {}", page.status);
        assert_ne!(page.status, 200);
    }
    // Ending an impersonation from inside needs an impersonation session and its token.
    let page = stranger.post(&app.url("/console/end-impersonation"), &[("token", "x")]).await;
    assert_eq!(page.status, 400, "{page:?}");

    let admin = console_sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let response = admin.http.get(app.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("style-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let home = response.text().await.unwrap();
    assert!(!home.contains("<script") && !home.contains("style="), "no script and no inline style");
    let token = csrf(&home);

    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let forms = [
        (
            format!("/console/users/{}/impersonate", enc(target_id)),
            vec![("reason", "x"), ("client_id", "c"), ("session_minutes", "5")],
        ),
        ("/console/impersonations/some-sid/end".to_owned(), vec![]),
        ("/console/logout".to_owned(), vec![]),
    ];
    for (path, fields) in &forms {
        for bad in ["", "forged", &token[..token.len() - 1]] {
            let mut form = fields.clone();
            form.push(("csrf", bad));
            let page = admin.post(&app.url(path), &form).await;
            assert_eq!(page.status, 403, "{path} with csrf {bad:?}: {}", page.body);
        }
    }
    // The session still works after the refusals; the CSRF token signs it out.
    assert_eq!(admin.get(&app.url("/console")).await.status, 200);
    let out = admin.post(&app.url("/console/logout"), &[("csrf", &token)]).await;
    assert_eq!(out.status, 200);
    assert_eq!(admin.get(&app.url("/console")).await.status, 303, "signed out");
}

async fn an_agent_without_any_management_permission_sees_no_access(app: TestApp) {
    agent(&app, "visitor@example.com", &[]).await;
    let browser = console_sign_in(&app, "visitor@example.com", AGENT_PASSWORD).await;
    for path in ["/console", "/console/logs", "/console/impersonations"] {
        let page = browser.get(&app.url(path)).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("No access to the support console"), "{}", page.body);
    }
}

async fn a_reader_sees_no_impersonate_button_and_a_forged_post_is_refused_by_the_api(app: TestApp) {
    agent(&app, "reader@example.com", &["read:users", "read:clients"]).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let browser = console_sign_in(&app, "reader@example.com", AGENT_PASSWORD).await;

    let found = browser.get(&app.url("/console?q=grace")).await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains(USER_EMAIL), "{}", found.body);
    let page = browser.get(&app.url(&format!("/console/users/{}", enc(target_id)))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Grace Hopper"));
    assert!(!page.body.contains("impersonate-button"), "no Impersonate button without impersonate:users");
    assert!(page.body.contains("lacks <code>impersonate:users</code>"));

    let forged = browser
        .post(
            &app.url(&format!("/console/users/{}/impersonate", enc(target_id))),
            &[("csrf", &csrf(&page.body)), ("client_id", &client_id), ("reason", "forged"), ("session_minutes", "5")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("guise refused the impersonation"), "{}", forged.body);
    assert!(app.logs_of_type("guise_impersonation_minted").await.is_empty());
}

async fn an_agent_cannot_impersonate_someone_stronger_through_the_console(app: TestApp) {
    agent(&app, "helpdesk@example.com", &["read:users", "read:clients", "impersonate:users"]).await;
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let browser = console_sign_in(&app, "helpdesk@example.com", AGENT_PASSWORD).await;
    let page = browser.get(&app.url(&format!("/console/users/{}", enc(&app.admin_user_id)))).await;
    assert!(page.body.contains("impersonate-button"));
    let refused = browser
        .post(
            &app.url(&format!("/console/users/{}/impersonate", enc(&app.admin_user_id))),
            &[("csrf", &csrf(&page.body)), ("client_id", &client_id), ("reason", "curious"), ("session_minutes", "5")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("delete:users"), "the API's reason names what is missing: {}", refused.body);
    assert!(app.logs_of_type("guise_impersonation_minted").await.is_empty());
}

async fn impersonating_needs_a_reason_and_a_recent_login_then_is_listed_and_ended(
    app: TestApp,
    clock: Arc<ManualClock>,
) {
    agent(&app, "helpdesk@example.com", &["read:users", "read:clients", "read:logs", "impersonate:users"]).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({ "name": "Billing" })).await;
    let browser = console_sign_in(&app, "helpdesk@example.com", AGENT_PASSWORD).await;
    let user_path = format!("/console/users/{}", enc(target_id));
    let page = browser.get(&app.url(&user_path)).await;
    let impersonate = app.url(&format!("{user_path}/impersonate"));
    let token = csrf(&page.body);

    let no_reason = browser
        .post(&impersonate, &[("csrf", &token), ("client_id", &client_id), ("reason", " "), ("session_minutes", "5")])
        .await;
    assert_eq!(no_reason.status, 400);
    assert!(no_reason.body.contains("Give a reason"));

    // A login older than the window asks for the password again (prompt=login, max_age=0).
    clock.advance(chrono::Duration::minutes(16));
    let stale = browser
        .post(&impersonate, &[("csrf", &token), ("client_id", &client_id), ("reason", "T-1"), ("session_minutes", "5")])
        .await;
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert!(stale.body.contains("Confirm it is you"));
    let step_up = crate::browser::hidden_href(&stale.body, "Sign in again");
    let login = browser.get(&app.url(&step_up)).await;
    let authorize = login.location.unwrap();
    assert!(authorize.contains("prompt=login") && authorize.contains("max_age=0"), "{authorize}");
    let to_login = browser.get(&app.url(&authorize)).await;
    assert!(
        to_login.location.as_deref().unwrap_or("").starts_with("/login?tx="),
        "guise asks for the password again although its session is live"
    );
    let answered =
        browser.submit_login(&app, to_login.location.as_deref().unwrap(), "helpdesk@example.com", AGENT_PASSWORD).await;
    let answered = browser.follow(&app, answered).await;
    let back = browser.get(answered.location.as_deref().unwrap()).await;
    assert_eq!(back.location.as_deref(), Some(user_path.as_str()));

    let page = browser.get(&app.url(&user_path)).await;
    let token = csrf(&page.body);
    let ready = browser
        .post(
            &impersonate,
            &[
                ("csrf", &token),
                ("client_id", &client_id),
                ("reason", "T-1: invoices missing"),
                ("session_minutes", "15"),
            ],
        )
        .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("Open Billing in a new window"));
    let url = crate::browser::hidden_href(&ready.body, "Open Billing").replace("&amp;", "&");
    let app_browser = Browser::new();
    let redeemed = app_browser.get(&url).await;
    assert_eq!(redeemed.status, 302, "{}", redeemed.body);

    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted[0]["details"]["reason"], "T-1: invoices missing");

    let list = browser.get(&app.url("/console/impersonations")).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("T-1: invoices missing") && list.body.contains(target_id), "{}", list.body);
    let (_, live) = app.get(&format!("/api/v2/impersonations?user_id={}", enc(target_id))).await;
    let sid = live[0]["id"].as_str().unwrap().to_owned();
    let lifetime = chrono::DateTime::parse_from_rfc3339(live[0]["expires_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(live[0]["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(lifetime.num_minutes(), 15, "the chosen duration");
    let ended =
        browser.post(&app.url(&format!("/console/impersonations/{sid}/end")), &[("csrf", &csrf(&list.body))]).await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    let (_, live) = app.get(&format!("/api/v2/impersonations?user_id={}", enc(target_id))).await;
    assert_eq!(live, json!([]));
    assert!(!app.logs_of_type("guise_impersonation_ended").await.is_empty());
}

both_backends!(
    every_console_route_needs_a_session_and_every_form_its_csrf_token,
    an_agent_without_any_management_permission_sees_no_access,
    a_reader_sees_no_impersonate_button_and_a_forged_post_is_refused_by_the_api,
    an_agent_cannot_impersonate_someone_stronger_through_the_console,
    the_console_signs_in_with_its_own_client_whatever_its_name,
);

mod step_up_and_end {
    use super::*;
    use crate::helpers::Backend;

    async fn run(backend: Backend) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let app = spawn_app_with_clock(backend, |_| {}, clock.clone()).await;
        impersonating_needs_a_reason_and_a_recent_login_then_is_listed_and_ended(app, clock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres).await
    }
}

/// The audit log records the agent's address for what the console does, not the
/// console's loopback call; the relay cannot be forged from outside.
async fn console_actions_are_audited_with_the_agents_address(app: TestApp) {
    agent(&app, "helpdesk@example.com", &["read:users", "read:clients", "impersonate:users"]).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let browser = console_sign_in(&app, "helpdesk@example.com", AGENT_PASSWORD).await;
    let user_path = format!("/console/users/{}", enc(target_id));
    let page = browser.get(&app.url(&user_path)).await;
    let response = browser
        .http
        .post(app.url(&format!("{user_path}/impersonate")))
        .header("x-forwarded-for", "198.51.100.7")
        .form(&[
            ("csrf", csrf(&page.body).as_str()),
            ("client_id", &client_id),
            ("reason", "T-9"),
            ("session_minutes", "5"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted[0]["ip"], "198.51.100.7", "the agent's address, behind the trusted proxy");

    // Someone calling the API directly cannot borrow the relay headers.
    let forged = app
        .http
        .post(app.url(&format!("/users/{}/impersonate", enc(target_id))))
        .bearer_auth(&app.token)
        .header("x-guise-console-relay", "guessed")
        .header("x-guise-console-source", "203.0.113.9")
        .json(&json!({ "protocol": "oauth2", "client_id": client_id, "impersonator_id": app.admin_user_id, "reason": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);
    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted[0]["ip"], "127.0.0.1", "{}", minted[0]);

    // The sign-in's code exchange, a loopback call too, is recorded from the agent.
    console_sign_in_with(&app, Browser::at("198.51.100.8"), "helpdesk@example.com", AGENT_PASSWORD).await;
    let console_client = app.console_client_id.as_str();
    let exchanges = app.logs_of_type("seacft").await;
    let exchange = exchanges.iter().find(|e| e["client_id"] == console_client).expect("the console's code exchange");
    assert_eq!(exchange["ip"], "198.51.100.8", "{exchange}");
}

/// The console signs in with the client `guise init` made for it, by id: renaming that
/// client (or naming another one like it) changes nothing.
async fn the_console_signs_in_with_its_own_client_whatever_its_name(app: TestApp) {
    let path = format!("/api/v2/clients/{}", app.console_client_id);
    let (status, renamed) = app.patch(&path, &json!({ "name": "Helpdesk" })).await;
    assert_eq!(status, 200, "{renamed}");
    let (status, decoy) = app
        .post(
            "/api/v2/clients",
            &json!({ "name": guise_server::console::client::CONSOLE_CLIENT, "callbacks": ["https://decoy.example/cb"] }),
        )
        .await;
    assert_eq!(status, 201, "{decoy}");
    let browser = console_sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(browser.get(&app.url("/console")).await.status, 200);
    let exchanges = app.logs_of_type("seacft").await;
    assert_eq!(exchanges[0]["client_id"], app.console_client_id.as_str(), "{}", exchanges[0]);
}

mod audited_address {
    use super::*;
    use crate::helpers::{Backend, spawn_app_with};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        console_actions_are_audited_with_the_agents_address(
            spawn_app_with(Backend::Sqlite, |c| c.trust_forwarded_for = true).await,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        console_actions_are_audited_with_the_agents_address(
            spawn_app_with(Backend::Postgres, |c| c.trust_forwarded_for = true).await,
        )
        .await
    }
}
