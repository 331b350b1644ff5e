//! What guise tells others, end to end through the outbox: Standard Webhooks verified
//! by a local receiver (and retried after it fails), email notices read back from a
//! local SMTP server, and OIDC back-channel logout tokens verified by a local RP
//! against guise's JWKS.

use crate::both_backends;
use crate::browser::{Browser, CALLBACK, LOGOUT_URL, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, user};
use crate::helpers::{ADMIN_EMAIL, Backend, TestApp, spawn_app, spawn_app_with, spawn_app_with_clock, split};
use crate::impersonation::{impersonation_client, mint_body, mint_with};
use crate::receivers::{HttpReceiver, Received, SmtpSink};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;

both_backends!(
    using crate::helpers::own_app;
    webhooks_are_signed_name_both_people_and_are_retried,
    a_webhook_needs_a_caller_who_may_read_what_it_receives,
    the_impersonated_user_is_emailed_when_it_starts_and_ends,
    ending_sessions_logs_the_relying_parties_out_over_the_back_channel,
    an_expired_impersonation_is_ended_announced_and_logged_out,
    a_saml_application_is_sent_a_signed_logout_request,
    a_logout_request_is_not_sent_once_single_logout_is_off,
    two_nodes_deliver_each_message_once,
);

fn fast_outbox(config: &mut guise_server::Config) {
    config.outbox_poll_ms = 50;
    config.outbox_backoff_secs = 1;
    config.outbox_max_attempts = 2;
    config.outbox_timeout_ms = 5_000;
}

/// Standard Webhooks verification, written from the specification: the signed content
/// is `{webhook-id}.{webhook-timestamp}.{body}`, the key the base64 after `whsec_`, and
/// the header lists `v1,<base64 HMAC-SHA256>` signatures separated by spaces.
fn verify_standard_webhook(secret: &str, request: &Received) -> Value {
    let id = &request.headers["webhook-id"];
    let timestamp = &request.headers["webhook-timestamp"];
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(age.abs() < 300, "the timestamp is current: {age} s");
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", request.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        request.headers["webhook-signature"].split(' ').any(|s| s == expected),
        "signature of {id} verifies: {:?}",
        request.headers
    );
    assert_eq!(request.headers["content-type"], "application/json");
    serde_json::from_str(&request.body).unwrap()
}

/// Mint an impersonation of `target_id` for `client_id` and follow it; returns the
/// redirect to the client's callback.
async fn impersonate(app: &TestApp, target_id: &str, client_id: &str) -> String {
    let (status, url) = mint_with(app, &app.token, target_id, &mint_body(app, client_id)).await;
    assert_eq!(status, 200, "{url}");
    let redeemed = Browser::new().get(&url).await;
    assert_eq!(redeemed.status, 302, "{}", redeemed.body);
    redeemed.location.unwrap()
}

/// End the one live impersonation of `target_id` through the API.
async fn end_impersonation(app: &TestApp, target_id: &str) -> String {
    let (status, sessions) =
        app.get(&format!("/api/v2/impersonations?user_id={}", crate::users::urlencode(target_id))).await;
    assert_eq!(status, 200, "{sessions}");
    let sid = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/api/v2/impersonations/{sid}")).await.0, 204);
    sid
}

async fn listed(app: &TestApp, path: &str) -> Vec<Value> {
    let (status, list) = app.get(path).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// Wait (up to 20 s) until `path` lists `count` deliveries: a receiver may have the
/// message a moment before the worker records it delivered.
async fn wait_for_listed(app: &TestApp, path: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let found = listed(app, path).await;
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {count} deliveries at {path}: {:#?}", listed(app, path).await);
}

async fn wait_for_deliveries(app: &TestApp, hook_id: &str, query: &str, count: usize) -> Vec<Value> {
    wait_for_listed(app, &format!("/api/v2/webhooks/{hook_id}/deliveries{query}"), count).await
}

async fn webhooks_are_signed_name_both_people_and_are_retried(backend: Backend) {
    let app = spawn_app_with(backend, fast_outbox).await;
    let receiver = HttpReceiver::start(1).await;
    let types = ["impersonation.started", "impersonation.ended", "user.blocked", "user.password_changed"];
    let (status, hook) = app
        .post(
            "/api/v2/webhooks",
            &json!({ "url": format!("{}/hook", receiver.url), "event_types": types, "description": "support audit" }),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (status, shown) = app.get(&format!("/api/v2/webhooks/{hook_id}")).await;
    assert_eq!(status, 200);
    assert!(shown.get("secret").is_none(), "the secret is shown once: {shown}");
    let (status, refused) =
        app.post("/api/v2/webhooks", &json!({ "url": receiver.url, "event_types": ["user.deleted"] })).await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = app.post("/api/v2/webhooks", &json!({ "url": "ftp://example.com/hook" })).await;
    assert_eq!(status, 400, "{refused}");

    // An impersonation started and ended, a password changed, a user blocked.
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    impersonate(&app, target_id, &client_id).await;
    end_impersonation(&app, target_id).await;
    let path = format!("/api/v2/users/{}", crate::users::urlencode(target_id));
    assert_eq!(app.patch(&path, &json!({ "password": "another long password" })).await.0, 200);
    assert_eq!(app.patch(&path, &json!({ "blocked": true })).await.0, 200);

    // Four messages, the first attempt of one refused with a 500 and retried.
    let received = receiver
        .wait_for("four messages and a retry", |r| {
            let ok: std::collections::HashSet<_> = r.iter().map(|x| x.headers["webhook-id"].clone()).collect();
            ok.len() == 4 && r.len() == 5
        })
        .await;
    let mut by_type: HashMap<String, Value> = HashMap::new();
    for request in &received {
        assert_eq!(request.path, "/hook");
        let body = verify_standard_webhook(&secret, request);
        by_type.insert(body["type"].as_str().unwrap().to_owned(), body);
    }
    let retried = &received[0].headers["webhook-id"];
    assert_eq!(received.iter().filter(|r| &r.headers["webhook-id"] == retried).count(), 2, "the same message again");

    let started = &by_type["impersonation.started"]["data"];
    assert_eq!(started["impersonator"]["email"], ADMIN_EMAIL);
    assert_eq!(started["user"]["email"], USER_EMAIL);
    assert_eq!(started["user"]["user_id"], target_id);
    assert_eq!(started["client"]["client_id"], client_id.as_str());
    assert_eq!(started["reason"], "SUPPORT-42");
    assert!(started["expires_at"].is_string() && started["log_id"].is_string(), "{started}");
    let ended = &by_type["impersonation.ended"]["data"];
    assert_eq!(ended["impersonator"]["email"], ADMIN_EMAIL);
    assert_eq!(ended["user"]["email"], USER_EMAIL);
    assert_eq!(ended["reason"], "SUPPORT-42", "the impersonation's reason");
    assert_eq!(ended["end_reason"], "ended_by");
    assert_eq!(ended["client"]["client_id"], client_id.as_str(), "the application it was for");
    assert_eq!(ended["actor"]["client_id"], app.management_client_id.as_str(), "who ended it");
    assert_eq!(by_type["user.blocked"]["data"]["user"]["user_id"], target_id);
    assert_eq!(by_type["user.password_changed"]["data"]["user"]["email"], USER_EMAIL);
    assert!(!received.iter().any(|r| r.body.contains("another long password")), "no secrets in payloads");

    // The deliveries are visible: all delivered, one after two attempts.
    let listed = wait_for_deliveries(&app, &hook_id, "?status=delivered", 4).await;
    assert_eq!(listed.len(), 4);
    assert_eq!(listed.iter().filter(|d| d["attempts"] == 2).count(), 1, "{listed:#?}");
    assert!(listed.iter().all(|d| d["kind"] == "webhook" && d["delivered_at"].is_string()));

    // A receiver that never answers: given up after two attempts, then retried by hand
    // once the webhook points somewhere that works.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", listener.local_addr().unwrap())
    };
    let (status, broken) = app.post("/api/v2/webhooks", &json!({ "url": dead, "event_types": ["user.blocked"] })).await;
    assert_eq!(status, 201, "{broken}");
    let broken_id = broken["id"].as_str().unwrap();
    let other = app.create_user("second@example.com").await;
    let other_path = format!("/api/v2/users/{}", crate::users::urlencode(other["user_id"].as_str().unwrap()));
    assert_eq!(app.patch(&other_path, &json!({ "blocked": true })).await.0, 200);
    let failed = wait_for_deliveries(&app, broken_id, "?status=failed", 1).await;
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(failed[0]["last_error"], "could not connect");
    let delivery_id = failed[0]["id"].as_str().unwrap();
    let retry = format!("/api/v2/webhooks/{broken_id}/deliveries/{delivery_id}/retry");
    let fixed = json!({ "url": format!("{}/fixed", receiver.url) });
    assert_eq!(app.patch(&format!("/api/v2/webhooks/{broken_id}"), &fixed).await.0, 200);
    let (status, retried) = app.post(&retry, &json!({})).await;
    assert_eq!(status, 202, "{retried}");
    receiver.wait_for("the retried delivery", |r| r.iter().any(|x| x.path == "/fixed")).await;
    wait_for_deliveries(&app, broken_id, "?status=delivered", 1).await;
    let (status, again) = app.post(&retry, &json!({})).await;
    assert_eq!(status, 409, "a delivered message is not sent twice: {again}");
    let (status, _) = app.post(&format!("/api/v2/webhooks/{hook_id}/deliveries/{delivery_id}/retry"), &json!({})).await;
    assert_eq!(status, 404, "a delivery belongs to its webhook");
    assert_eq!(app.delete(&format!("/api/v2/webhooks/{broken_id}")).await.0, 204);
    assert_eq!(app.get(&format!("/api/v2/webhooks/{broken_id}")).await.0, 404);
}

async fn a_webhook_needs_a_caller_who_may_read_what_it_receives(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = HttpReceiver::start(0).await;
    let body = json!({ "url": receiver.url });
    let (status, hook) = app.post("/api/v2/webhooks", &body).await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap();

    // Holding the webhook scopes is not enough: a webhook hears about every user.
    let (weak_id, weak_secret) = app
        .machine_client("webhook-only", &["read:webhooks", "create:webhooks", "update:webhooks", "delete:webhooks"])
        .await;
    let weak = app.client_token(&weak_id, &weak_secret, None).await;
    let (status, refused) = app.send_as(&weak, reqwest::Method::POST, "/api/v2/webhooks", Some(&body)).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("read:users"), "{refused}");
    let redirect = json!({ "url": format!("{}/mine", receiver.url) });
    let (status, _) =
        app.send_as(&weak, reqwest::Method::PATCH, &format!("/api/v2/webhooks/{hook_id}"), Some(&redirect)).await;
    assert_eq!(status, 403, "nor may it point someone else's webhook elsewhere");
    let (status, _) =
        app.send_as(&weak, reqwest::Method::GET, &format!("/api/v2/webhooks/{hook_id}/deliveries"), None).await;
    assert_eq!(status, 403, "nor read what was sent");
    let (status, _) = app.send_as(&weak, reqwest::Method::GET, "/api/v2/deliveries", None).await;
    assert_eq!(status, 403, "nor any other delivery");
    let (status, listed) = app.send_as(&weak, reqwest::Method::GET, "/api/v2/webhooks", None).await;
    assert_eq!(status, 200, "listing subscriptions shows no user data: {listed}");
    assert!(listed[0].get("secret").is_none());
    let (status, _) = app.send_as(&app.token, reqwest::Method::GET, "/api/v2/webhooks", None).await;
    assert_eq!(status, 200);

    // Without the scope, nothing; with it and the covering permissions, a webhook.
    let (reader_id, reader_secret) = app.machine_client("reader", &["read:users", "read:logs"]).await;
    let reader = app.client_token(&reader_id, &reader_secret, None).await;
    let (status, _) = app.send_as(&reader, reqwest::Method::POST, "/api/v2/webhooks", Some(&body)).await;
    assert_eq!(status, 403);
    let (strong_id, strong_secret) =
        app.machine_client("auditor", &["create:webhooks", "read:users", "read:logs"]).await;
    let strong = app.client_token(&strong_id, &strong_secret, None).await;
    let (status, created) = app.send_as(&strong, reqwest::Method::POST, "/api/v2/webhooks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let audit = app.logs_of_type("sapi").await;
    assert!(
        audit.iter().any(|e| e["description"] == "Create a webhook" && e["details"]["webhook_id"] == created["id"])
    );
    assert!(!serde_json::to_string(&audit).unwrap().contains(created["secret"].as_str().unwrap()), "secret not logged");
}

async fn the_impersonated_user_is_emailed_when_it_starts_and_ends(backend: Backend) {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = spawn_app_with(backend, move |c| {
        fast_outbox(c);
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = port;
        c.smtp_tls = "none".into();
        c.smtp_from = "guise notices <notices@guise.test>".into();
    })
    .await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({ "name": "Billing Portal" })).await;
    impersonate(&app, target_id, &client_id).await;
    let started = sink.wait_for(1).await.remove(0);
    end_impersonation(&app, target_id).await;
    let ended = sink.wait_for(2).await.remove(1);

    for mail in [&started, &ended] {
        assert_eq!(mail.from, "<notices@guise.test>");
        assert_eq!(mail.to, vec![format!("<{USER_EMAIL}>")]);
        assert!(mail.header("To").unwrap().contains(USER_EMAIL));
        assert!(mail.header("From").unwrap().contains("notices@guise.test"));
        let body = mail.body();
        assert!(body.contains("Hello Grace Hopper"), "{body}");
        assert!(body.contains(ADMIN_EMAIL), "who: {body}");
        assert!(body.contains("Reason given: SUPPORT-42"), "why: {body}");
        assert!(body.contains("Billing Portal"), "which application: {body}");
    }
    assert!(started.header("Subject").unwrap().contains("is signed in to Billing Portal as you"), "{started:?}");
    assert!(started.body().contains("(60 minutes)"), "how long: {}", started.body());
    assert!(ended.header("Subject").unwrap().contains("has ended"), "{ended:?}");
    assert!(ended.body().contains("(ended_by)"), "{}", ended.body());
    let emails = wait_for_listed(&app, "/api/v2/deliveries?kind=email&status=delivered", 2).await;
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert!(emails.iter().all(|d| d["target"] == target_id && d["attempts"] == 1));

    // A login of the user's own sends nothing.
    let browser = Browser::new();
    let (own_client, _) = crate::browser::web_client(&app, json!({})).await;
    let url = authorize_url(
        &app,
        &[("response_type", "code"), ("client_id", &own_client), ("redirect_uri", CALLBACK), ("scope", "openid")],
    );
    let page = browser.login_via(&app, &url, USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(page.status, 302);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(sink.mails().len(), 2);
}

/// The RP's side (OIDC Back-Channel Logout 1.0 §2.6): a `logout_token` form field whose
/// JWT is typed `logout+jwt`, signed by a key in guise's JWKS, for this RP, naming a
/// session, carrying the logout event and no nonce.
async fn verify_logout_token(app: &TestApp, client_id: &str, request: &Received) -> Value {
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    let form: HashMap<String, String> = url::form_urlencoded::parse(request.body.as_bytes()).into_owned().collect();
    let token = &form["logout_token"];
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet =
        app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[client_id]);
    validation.set_issuer(&[app.issuer()]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the logout token verifies").claims;
    assert!(claims["jti"].is_string() && claims["iat"].is_i64(), "{claims}");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none(), "a logout token never has a nonce");
    claims
}

/// A password login to `client_id` and its code exchanged; the browser and ID token.
async fn login(app: &TestApp, client_id: &str, secret: &str) -> (Browser, String) {
    let browser = Browser::new();
    let url = authorize_url(
        app,
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("nonce", "n-1"),
        ],
    );
    let page = browser.login_via(app, &url, USER_EMAIL, USER_PASSWORD).await;
    let page = browser.follow(app, page).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let tokens = code_exchange(app, client_id, secret, page.location.as_deref().unwrap()).await;
    (browser, tokens["id_token"].as_str().unwrap().to_owned())
}

fn sid_of(id_token: &str) -> String {
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn code_exchange(app: &TestApp, client_id: &str, secret: &str, location: &str) -> Value {
    let code = callback_params(location)["code"].clone();
    let (status, tokens) = split(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn ending_sessions_logs_the_relying_parties_out_over_the_back_channel(backend: Backend) {
    let app = spawn_app_with(backend, fast_outbox).await;
    let rp = HttpReceiver::start(0).await;
    let (status, discovery) =
        split(app.http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    let (status, refused) =
        app.post("/api/v2/clients", &json!({ "name": "Bad", "backchannel_logout_uri": "javascript:alert(1)" })).await;
    assert_eq!(status, 400, "{refused}");

    let registration = json!({
        "backchannel_logout_uri": format!("{}/backchannel", rp.url),
        "backchannel_logout_session_required": true,
    });
    let (client_id, secret) = impersonation_client(&app, registration).await;
    let (status, client) = app.get(&format!("/api/v2/clients/{client_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(client["backchannel_logout_uri"], format!("{}/backchannel", rp.url));
    assert_eq!(client["backchannel_logout_session_required"], true);
    let (bystander, _) = crate::browser::web_client(&app, json!({})).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();

    // 1. An impersonation ended early through the API.
    let location = impersonate(&app, target_id, &client_id).await;
    let impersonation_sid =
        sid_of(code_exchange(&app, &client_id, &secret, &location).await["id_token"].as_str().unwrap());
    let ended_sid = end_impersonation(&app, target_id).await;
    assert_eq!(ended_sid, impersonation_sid, "the ID token's sid is the session's");

    // 2. An ordinary login, ended by RP-initiated logout.
    let (browser, id_token) = login(&app, &client_id, &secret).await;
    let logout_sid = sid_of(&id_token);
    let mut url = url::Url::parse(&app.url("/oidc/logout")).unwrap();
    url.query_pairs_mut()
        .extend_pairs([("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", LOGOUT_URL)]);
    assert_eq!(browser.get(url.as_str()).await.status, 302);

    // 3. Another login, ended by blocking the user.
    let (_, id_token) = login(&app, &client_id, &secret).await;
    let blocked_sid = sid_of(&id_token);
    let path = format!("/api/v2/users/{}", crate::users::urlencode(target_id));
    assert_eq!(app.patch(&path, &json!({ "blocked": true })).await.0, 200);

    let received = rp.wait_for("three logout tokens", |r| r.len() >= 3).await;
    let mut sids = Vec::new();
    for request in &received {
        assert_eq!(request.path, "/backchannel");
        let claims = verify_logout_token(&app, &client_id, request).await;
        assert_eq!(claims["sub"], target_id);
        sids.push(claims["sid"].as_str().unwrap().to_owned());
    }
    assert_eq!(sids, vec![impersonation_sid, logout_sid, blocked_sid]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rp.received().len(), 3, "one token per session; the bystander client was never logged into");
    let logouts = format!("/api/v2/deliveries?kind=backchannel_logout&target={client_id}&status=delivered");
    assert_eq!(wait_for_listed(&app, &logouts, 3).await.len(), 3);
    let (status, _) = app.get("/api/v2/deliveries?kind=fax").await;
    assert_eq!(status, 400);
    assert!(!bystander.is_empty());
}

async fn an_expired_impersonation_is_ended_announced_and_logged_out(backend: Backend) {
    let clock = std::sync::Arc::new(guise_core::clock::ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(
        backend,
        |c| {
            fast_outbox(c);
            c.session_sweep_secs = 1;
        },
        clock.clone(),
    )
    .await;
    let rp = HttpReceiver::start(0).await;
    let hooks = HttpReceiver::start(0).await;
    let (status, hook) =
        app.post("/api/v2/webhooks", &json!({ "url": hooks.url, "event_types": ["impersonation.ended"] })).await;
    assert_eq!(status, 201, "{hook}");
    let registration = json!({ "backchannel_logout_uri": format!("{}/backchannel", rp.url) });
    let (client_id, secret) = impersonation_client(&app, registration).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let location = impersonate(&app, target_id, &client_id).await;
    let sid = sid_of(code_exchange(&app, &client_id, &secret, &location).await["id_token"].as_str().unwrap());

    // Nothing is told while it lasts; past its hour, the sweep ends it.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(rp.received().is_empty() && hooks.received().is_empty());
    clock.advance(chrono::Duration::minutes(61));
    let received = rp.wait_for("the logout token", |r| !r.is_empty()).await;
    let claims = verify_logout_token(&app, &client_id, &received[0]).await;
    assert_eq!((claims["sid"].as_str(), claims["sub"].as_str()), (Some(sid.as_str()), Some(target_id)));
    let told = hooks.wait_for("the webhook", |r| !r.is_empty()).await;
    let body: Value = serde_json::from_str(&told[0].body).unwrap();
    assert_eq!(body["type"], "impersonation.ended");
    assert_eq!(body["data"]["end_reason"], "expired");
    assert_eq!(body["data"]["impersonator"]["email"], ADMIN_EMAIL);
    assert_eq!(body["data"]["user"]["user_id"], target_id);
    let ended = app.logs_of_type("guise_impersonation_ended").await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["details"]["reason"], "expired");
    assert_eq!(ended[0]["on_behalf_of"], app.admin_user_id.as_str());
    let (_, live) = app.get("/api/v2/impersonations").await;
    assert_eq!(live, json!([]));
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!((rp.received().len(), hooks.received().len()), (1, 1), "ended once, told once");
}

/// An impersonation login of `target_id` to the SAML client `client_id`: the NameID
/// (` Format="…">value`) and SessionIndex its assertion carried.
async fn saml_impersonation(app: &TestApp, target_id: &str, client_id: &str) -> (String, String) {
    use crate::saml::{between, posted_response};
    let body = json!({
        "protocol": "samlp",
        "impersonator_id": app.admin_user_id,
        "client_id": client_id,
        "reason": "SUPPORT-9",
    });
    let (status, url) = mint_with(app, &app.token, target_id, &body).await;
    assert_eq!(status, 200, "{url}");
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (response, _) = posted_response(&page.body);
    let name_id = between(&response, "<saml:NameID", "</saml:NameID>").to_owned();
    let session_index = between(&response, "SessionIndex=\"", "\"").to_owned();
    (name_id, session_index)
}

async fn a_saml_application_is_sent_a_signed_logout_request(backend: Backend) {
    use crate::saml::{idp_certificate, saml_client, xmlsec1_verify};
    let app = spawn_app_with(backend, fast_outbox).await;
    let sp = HttpReceiver::start(0).await;
    let slo = format!("{}/saml/slo", sp.url);
    let client_id = saml_client(&app, json!({ "logout": { "callback": slo } })).await;
    let (cert, _) = idp_certificate(&app, &client_id).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (name_id, session_index) = saml_impersonation(&app, target_id, &client_id).await;
    let sid = end_impersonation(&app, target_id).await;
    assert_eq!(session_index, sid);

    let received = sp.wait_for("the LogoutRequest", |r| !r.is_empty()).await;
    let request = &received[0];
    assert_eq!(request.path, "/saml/slo");
    assert!(request.headers["content-type"].starts_with("text/xml"));
    assert_eq!(request.headers["soapaction"], "http://www.oasis-open.org/committees/security");
    let envelope = &request.body;
    assert!(
        envelope.starts_with("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>"),
        "{envelope}"
    );
    assert!(xmlsec1_verify(envelope, &cert, "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest"), "{envelope}");
    let tampered = envelope.replace(&sid, "another-session");
    assert!(!xmlsec1_verify(&tampered, &cert, "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest"));
    assert!(envelope.contains(&format!("Destination=\"{slo}\"")), "{envelope}");
    let issuer =
        format!(r#"<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{}</saml:Issuer>"#, app.issuer());
    assert!(envelope.contains(&issuer), "{envelope}");
    // ` Format="…">value`: the NameID's format and value, as asserted.
    assert!(name_id.contains(target_id), "{name_id}");
    assert!(envelope.contains(&format!("{name_id}</saml:NameID>")), "the NameID asserted: {envelope}");
    assert!(envelope.contains(&format!("<samlp:SessionIndex>{sid}</samlp:SessionIndex>")), "{envelope}");
}

/// `slo_enabled: false` is honoured when the LogoutRequest is sent, not only when it is
/// queued: one queued before single logout was turned off (here: waiting to be retried
/// after the SP failed) is never sent again.
async fn a_logout_request_is_not_sent_once_single_logout_is_off(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        fast_outbox(c);
        c.outbox_backoff_secs = 3;
    })
    .await;
    let sp = HttpReceiver::start(1).await;
    let slo = format!("{}/saml/slo", sp.url);
    let client_id = crate::saml::saml_client(&app, json!({ "logout": { "callback": slo } })).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    saml_impersonation(&app, target_id, &client_id).await;
    end_impersonation(&app, target_id).await;
    sp.wait_for("the first LogoutRequest (answered 500)", |r| !r.is_empty()).await;

    let off = json!({ "addons": { "samlp": { "logout": { "callback": slo, "slo_enabled": false } } } });
    let (status, patched) = app.patch(&format!("/api/v2/clients/{client_id}"), &off).await;
    assert_eq!(status, 200, "{patched}");
    let failed = format!("/api/v2/deliveries?kind=saml_logout&target={client_id}&status=failed");
    let failed = wait_for_listed(&app, &failed, 1).await;
    assert_eq!(failed[0]["attempts"], 2, "{failed:?}");
    assert_eq!(failed[0]["last_error"], "single logout is off for the client (slo_enabled: false)");
    assert_eq!(sp.received().len(), 1, "the retry was not sent");
}

async fn two_nodes_deliver_each_message_once(backend: Backend) {
    let app = spawn_app_with(backend, fast_outbox).await;
    // A second node on the same database, with its own delivery worker.
    let second = app.second_node().await;
    let receiver = HttpReceiver::start(0).await;
    let (status, hook) =
        app.post("/api/v2/webhooks", &json!({ "url": receiver.url, "event_types": ["user.blocked"] })).await;
    assert_eq!(status, 201, "{hook}");
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(app.create_user(&format!("user{i}@example.com")).await["user_id"].as_str().unwrap().to_owned());
    }
    for (i, user_id) in users.iter().enumerate() {
        // Half the blocks through each node.
        let base = if i % 2 == 0 { app.base.clone() } else { second.clone() };
        let url = format!("{base}/api/v2/users/{}", crate::users::urlencode(user_id));
        let response =
            app.http.patch(url).bearer_auth(&app.token).json(&json!({ "blocked": true })).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let received = receiver.wait_for("twelve messages", |r| r.len() >= 12).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let received = receiver.received().len().max(received.len());
    assert_eq!(received, 12, "each message once, whichever node's worker took it");
    let mut ids: Vec<String> = receiver.received().iter().map(|r| r.headers["webhook-id"].clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);
}
