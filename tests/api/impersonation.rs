//! Impersonation logins end to end: minting the bewit URL, redeeming it, both `oauth2`
//! delivery paths with the `openidconnect` crate as the client, every refusal (each
//! audited, each granting nothing), single use across two servers, ending sessions.

use crate::both_backends;
use crate::browser::{Browser, CALLBACK, USER_EMAIL, USER_PASSWORD, authorize_url, callback_params, user, web_client};
use crate::helpers::{ADMIN_EMAIL, Backend, TestApp, spawn_app_with, spawn_app_with_clock, split};
use crate::oidc::decode_payload;
use guise_core::clock::ManualClock;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Value, json};
use std::sync::Arc;

both_backends!(
    direct_delivery_carries_the_impersonation_everywhere,
    initiate_login_uri_delivery_keeps_the_clients_state_nonce_and_pkce,
    refused_mints_are_audited_and_grant_nothing,
    tampered_replayed_and_unknown_key_urls_are_refused,
    ending_an_impersonation_revokes_its_tokens,
    the_cli_mints_urls_for_support_staff,
    a_form_body_naming_additional_parameters_twice_is_a_400,
    parameters_are_read_as_auth0_s_reference_sends_them,
    the_url_is_redeemed_at_the_impersonator_s_path_and_the_legacy_path,
    the_user_sees_who_acted_as_them_on_their_account_page,
);

/// POST /users/{id}/impersonate with `token`; returns (status, body text).
pub async fn mint_with(app: &TestApp, token: &str, user_id: &str, body: &Value) -> (u16, String) {
    let response = app
        .http
        .post(app.url(&format!("/users/{}/impersonate", crate::users::urlencode(user_id))))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub fn mint_body(app: &TestApp, client_id: &str) -> Value {
    json!({
        "protocol": "oauth2",
        "impersonator_id": app.admin_user_id,
        "client_id": client_id,
        "reason": "SUPPORT-42",
        "additionalParameters": {
            "response_type": "code",
            "state": "from-the-admin",
            "scope": "openid profile email",
            "nonce": "admin-nonce",
            "callback_url": CALLBACK,
        },
    })
}

pub async fn impersonation_client(app: &TestApp, extra: Value) -> (String, String) {
    let mut body = json!({ "allow_impersonation": true });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    web_client(app, body).await
}

async fn direct_delivery_carries_the_impersonation_everywhere(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, secret) = impersonation_client(&app, json!({})).await;

    let (status, url) = mint_with(&app, &app.token, target_id, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{url}");
    let shape = app.url(&format!("/users/{}/impersonate?", crate::users::urlencode(&app.admin_user_id)));
    assert!(url.starts_with(&shape), "Auth0's shape, at the impersonator's path: {url}");
    assert!(url.contains("bewit="));

    // Following the URL logs the client in as the target: code and the admin's state.
    let browser = Browser::new();
    let redeemed = browser.get(&url).await;
    assert_eq!(redeemed.status, 302, "{}", redeemed.body);
    let params = callback_params(redeemed.location.as_deref().unwrap());
    assert_eq!(params["state"], "from-the-admin");

    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http).await.unwrap();
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().unwrap();
    let claims =
        id_token.claims(&client.id_token_verifier(), &Nonce::new("admin-nonce".into())).expect("verified ID token");
    assert_eq!(claims.subject().as_str(), target_id, "the target is the subject");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(USER_EMAIL));

    let expected_impersonator = json!({ "user_id": app.admin_user_id, "email": ADMIN_EMAIL });
    let id_claims = decode_payload(&id_token.to_string());
    let access_claims = decode_payload(tokens.access_token().secret());
    for claims in [&id_claims, &access_claims] {
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!(lifetime <= 3_600, "nothing outlives the one-hour impersonation session: {lifetime}");
        assert_eq!(claims["sub"], target_id, "the impersonator never becomes the subject");
        assert_eq!(claims["impersonated"], true);
        assert_eq!(claims["impersonator"], expected_impersonator);
        assert_eq!(claims["act"], json!({ "sub": app.admin_user_id }));
    }
    let (status, info) =
        split(app.http.get(app.url("/userinfo")).bearer_auth(tokens.access_token().secret()).send().await.unwrap())
            .await;
    assert_eq!(status, 200);
    assert_eq!(info["sub"], target_id);
    assert_eq!(info["impersonated"], true);
    assert_eq!(info["impersonator"], expected_impersonator);
    assert_eq!(info["act"], json!({ "sub": app.admin_user_id }));

    // guise's own pages show the impersonation to whoever holds the session.
    let home = browser.get(&app.url("/")).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Impersonation session"), "{}", home.body);
    assert!(home.body.contains(ADMIN_EMAIL) && home.body.contains("SUPPORT-42"), "{}", home.body);

    // The same URL a second time is refused, with no code and no session.
    let again = Browser::new().get(&url).await;
    assert_eq!(again.status, 401);
    assert!(again.location.is_none());
    assert!(again.body.contains("Bewit already used"), "{}", again.body);

    // The audit trail names both parties.
    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted[0]["user_id"], target_id);
    assert_eq!(minted[0]["actor"]["id"], app.management_client_id.as_str());
    assert_eq!(minted[0]["on_behalf_of"], app.admin_user_id.as_str());
    assert_eq!(minted[0]["details"]["reason"], "SUPPORT-42");
    let redeemed = app.logs_of_type("guise_impersonation_redeemed").await;
    assert_eq!(redeemed[0]["actor"], json!({ "type": "user", "id": app.admin_user_id }));
    assert_eq!(redeemed[0]["user_id"], target_id);
    assert_eq!(redeemed[0]["client_id"], client_id.as_str());
    let refused = app.logs_of_type("guise_impersonation_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "replayed");
    assert!(!serde_json::to_string(&minted).unwrap().contains("bewit"), "the URL's credential is not logged");
}

async fn initiate_login_uri_delivery_keeps_the_clients_state_nonce_and_pkce(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let initiate = "http://127.0.0.1:9/start-login";
    let (client_id, secret) = impersonation_client(&app, json!({ "initiate_login_uri": initiate })).await;
    let mut body = mint_body(&app, &client_id);
    body["additionalParameters"] = json!({});
    let (status, url) = mint_with(&app, &app.token, target_id, &body).await;
    assert_eq!(status, 200, "{url}");

    // Redemption sends the browser to the client's initiate_login_uri (third-party-initiated login).
    let browser = Browser::new();
    let redeemed = browser.get(&url).await;
    assert_eq!(redeemed.status, 302);
    let location = redeemed.location.unwrap();
    assert!(location.starts_with(initiate), "{location}");
    let params = callback_params(&location);
    assert_eq!(params["iss"], app.issuer());
    assert_eq!(params["login_hint"], USER_EMAIL);

    // The client starts its own authorization request; the impersonation session answers it.
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http).await.unwrap();
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .set_login_hint(openidconnect::LoginHint::new(params["login_hint"].clone()))
        .set_pkce_challenge(challenge)
        .url();
    let authorized = browser.get(auth_url.as_str()).await;
    assert_eq!(authorized.status, 302, "{}", authorized.body);
    let callback = callback_params(authorized.location.as_deref().unwrap());
    assert_eq!(callback["state"], *csrf.secret(), "the client's own state comes back");
    let tokens = client
        .exchange_code(AuthorizationCode::new(callback["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("the client's own nonce verifies");
    assert_eq!(claims.subject().as_str(), target_id);
    let payload = decode_payload(&id_token.to_string());
    assert_eq!(payload["impersonated"], true);
    assert_eq!(payload["act"]["sub"], app.admin_user_id.as_str());

    // The impersonation session opens only clients enabled for impersonation.
    let (other_id, _) = web_client(&app, json!({ "name": "Not enabled" })).await;
    let other = crate::browser::authorize_url(
        &app,
        &[
            ("client_id", &other_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("state", "st"),
        ],
    );
    let refused = browser.get(&other).await;
    let refused = callback_params(refused.location.as_deref().unwrap());
    assert_eq!(refused["error"], "access_denied");
    assert!(!refused.contains_key("code"));
}

async fn refused_mints_are_audited_and_grant_nothing(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap().to_owned();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let (disabled_id, _) = web_client(&app, json!({ "name": "Disabled" })).await;
    let (third_party_id, _) =
        impersonation_client(&app, json!({ "name": "Third party", "is_first_party": false })).await;

    // A helpdesk agent allowed to impersonate, but weaker than an admin-like target.
    let (_, helpdesk_role) = app.post("/api/v2/roles", &json!({ "name": "Helpdesk" })).await;
    let audience = app.management_audience();
    app.post(
        &format!("/api/v2/roles/{}/permissions", helpdesk_role["id"].as_str().unwrap()),
        &json!({ "permissions": [{ "resource_server_identifier": audience, "permission_name": "impersonate:users" }] }),
    )
    .await;
    let helpdesk = app.create_user("helpdesk@example.com").await;
    let helpdesk_id = helpdesk["user_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v2/users/{}/roles", crate::users::urlencode(&helpdesk_id)),
            &json!({ "roles": [helpdesk_role["id"]] }),
        )
        .await;
    assert_eq!(status, 204);
    let (_, reader_role) = app.post("/api/v2/roles", &json!({ "name": "Reader" })).await;
    app.post(
        &format!("/api/v2/roles/{}/permissions", reader_role["id"].as_str().unwrap()),
        &json!({ "permissions": [{ "resource_server_identifier": audience, "permission_name": "read:users" }] }),
    )
    .await;
    let reader = app.create_user("reader@example.com").await;
    let reader_id = reader["user_id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v2/users/{}/roles", crate::users::urlencode(&reader_id)),
        &json!({ "roles": [reader_role["id"]] }),
    )
    .await;
    let blocked = app.create_user("blocked@example.com").await;
    let blocked_id = blocked["user_id"].as_str().unwrap().to_owned();
    app.patch(&format!("/api/v2/users/{}", crate::users::urlencode(&blocked_id)), &json!({ "blocked": true })).await;
    let (no_scope_client, no_scope_secret) = app.machine_client("reader machine", &["read:users"]).await;
    let no_scope_token = app.client_token(&no_scope_client, &no_scope_secret, None).await;

    let body = |impersonator: &str, client: &str| {
        let mut b = mint_body(&app, client);
        b["impersonator_id"] = json!(impersonator);
        b
    };
    let admin = app.admin_user_id.clone();
    let cases: Vec<(&str, String, String, Value, u16)> = vec![
        ("missing scope", no_scope_token.clone(), target_id.clone(), body(&admin, &client_id), 403),
        ("weaker impersonator", app.token.clone(), reader_id.clone(), body(&helpdesk_id, &client_id), 403),
        ("impersonator without permission", app.token.clone(), target_id.clone(), body(&reader_id, &client_id), 403),
        ("client not enabled", app.token.clone(), target_id.clone(), body(&admin, &disabled_id), 403),
        ("self", app.token.clone(), admin.clone(), body(&admin, &client_id), 400),
        ("blocked target", app.token.clone(), blocked_id.clone(), body(&admin, &client_id), 400),
        (
            "unregistered callback",
            app.token.clone(),
            target_id.clone(),
            {
                let mut b = body(&admin, &client_id);
                b["additionalParameters"]["callback_url"] = json!("https://evil.example/cb");
                b
            },
            400,
        ),
        (
            "unknown protocol",
            app.token.clone(),
            target_id.clone(),
            {
                let mut b = body(&admin, &client_id);
                b["protocol"] = json!("kerberos");
                b
            },
            400,
        ),
        (
            "machine without impersonator",
            app.token.clone(),
            target_id.clone(),
            {
                let mut b = body(&admin, &client_id);
                b.as_object_mut().unwrap().remove("impersonator_id");
                b
            },
            400,
        ),
        (
            "ttl beyond policy",
            app.token.clone(),
            target_id.clone(),
            {
                let mut b = body(&admin, &client_id);
                b["ttl"] = json!(86_400);
                b
            },
            400,
        ),
        (
            // Beyond what a chrono Duration holds: refused, not a panic.
            "ttl beyond any duration",
            app.token.clone(),
            target_id.clone(),
            {
                let mut b = body(&admin, &client_id);
                b["ttl"] = json!(i64::MAX);
                b
            },
            400,
        ),
        ("unknown user", app.token.clone(), "guise|000000000000000000000000".into(), body(&admin, &client_id), 404),
        ("direct delivery to a third party", app.token.clone(), target_id.clone(), body(&admin, &third_party_id), 400),
    ];
    let total = cases.len();
    for (name, token, user_id, body, expected) in cases {
        let (status, text) = mint_with(&app, &token, &user_id, &body).await;
        assert_eq!(status, expected, "{name}: {text}");
        let error: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: JSON error body, got {text}"));
        assert_eq!(error["statusCode"], expected, "{name}");
        assert!(!text.contains("bewit"), "{name}: no URL in a refusal");
    }
    let refused = app.logs_of_type("guise_impersonation_refused").await;
    assert_eq!(refused.len(), total, "every refusal is audited");
    assert!(refused.iter().all(|e| e["details"]["stage"] == "mint" && e["ip"] == "127.0.0.1"));
    assert!(refused.iter().any(|e| e["details"]["reason"] == "forbidden"));
    assert!(app.logs_of_type("guise_impersonation_minted").await.is_empty(), "nothing was minted");
    let (_, sessions) = app.get("/api/v2/impersonations").await;
    assert_eq!(sessions, json!([]));

    // A reason is required by default, free text of at most 500 characters; a
    // deployment can turn the requirement off.
    let target = app.create_user("t@example.com").await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client, _) = impersonation_client(&app, json!({})).await;
    for reason in [None, Some(json!("   ")), Some(json!("x".repeat(501)))] {
        let mut body = mint_body(&app, &client);
        match reason {
            Some(r) => body["reason"] = r,
            None => drop(body.as_object_mut().unwrap().remove("reason")),
        }
        let (status, text) = mint_with(&app, &app.token, target_id, &body).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("reason"), "{text}");
    }
    let mut body = mint_body(&app, &client);
    body["reason"] = json!("é".repeat(500));
    assert_eq!(mint_with(&app, &app.token, target_id, &body).await.0, 200, "500 characters, not bytes");
    let lenient = spawn_app_with(app.backend, |c| c.impersonation_require_reason = false).await;
    let target = lenient.create_user("t@example.com").await;
    let (lenient_client, _) = impersonation_client(&lenient, json!({})).await;
    let mut body = mint_body(&lenient, &lenient_client);
    body.as_object_mut().unwrap().remove("reason");
    let (status, text) = mint_with(&lenient, &lenient.token, target["user_id"].as_str().unwrap(), &body).await;
    assert_eq!(status, 200, "{text}");
}

/// Replace the key id inside a bewit (keeping its MAC), as an attacker guessing ids would.
fn with_key_id(url: &str, key_id: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parsed = url::Url::parse(url).unwrap();
    let bewit = parsed.query_pairs().find(|(k, _)| k == "bewit").unwrap().1.into_owned();
    let decoded = String::from_utf8(b64.decode(&bewit).unwrap()).unwrap();
    let rest = decoded.split_once('\\').unwrap().1;
    url.replace(&bewit, &b64.encode(format!("{key_id}\\{rest}")))
}

async fn tampered_replayed_and_unknown_key_urls_are_refused(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let (_, url) = mint_with(&app, &app.token, target_id, &mint_body(&app, &client_id)).await;

    let tampered = [
        url.replace("state=from-the-admin", "state=from-the-attacker"),
        url.replace("protocol=oauth2", "protocol=oauth3"),
        url.replace("session_ttl=", "session_ttl=9"),
        format!("{url}&extra=1"),
        url.replacen("client_id=", "client_id=x", 1),
        // A second bewit, after or before the real one: Hawk strips every `bewit`
        // from the MAC input, so the URL must carry exactly one.
        format!("{url}&bewit=garbage"),
        url.replacen("?", "?bewit=garbage&", 1),
    ];
    for bad in tampered {
        let page = Browser::new().get(&bad).await;
        assert_eq!(page.status, 401, "{bad}");
        assert!(page.body.contains("Bad mac"), "{}", page.body);
        assert!(page.location.is_none());
    }
    let unknown = Browser::new().get(&with_key_id(&url, "no-such-key")).await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("Unknown credentials"));
    let malformed = Browser::new().get(&app.url("/impersonate/redeem?bewit=%%%")).await;
    assert!(matches!(malformed.status, 400 | 401));

    // The untouched URL still works once, then never again.
    assert_eq!(Browser::new().get(&url).await.status, 302);
    assert_eq!(Browser::new().get(&url).await.status, 401);

    let reasons: Vec<String> = app
        .logs_of_type("guise_impersonation_refused")
        .await
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap().to_owned())
        .collect();
    for reason in ["bad_mac", "unknown_key", "replayed"] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} refusal in {reasons:?}");
    }
    assert_eq!(app.logs_of_type("guise_impersonation_redeemed").await.len(), 1);
}

async fn ending_an_impersonation_revokes_its_tokens(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, secret) = impersonation_client(&app, json!({})).await;
    let mut body = mint_body(&app, &client_id);
    body["additionalParameters"]["scope"] = json!("openid offline_access");
    let (_, url) = mint_with(&app, &app.token, target_id, &body).await;
    let redeemed = Browser::new().get(&url).await;
    let code = callback_params(redeemed.location.as_deref().unwrap())["code"].clone();
    let (status, tokens) = split(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");

    let (status, sessions) =
        app.get(&format!("/api/v2/impersonations?user_id={}", crate::users::urlencode(target_id))).await;
    assert_eq!(status, 200);
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["impersonator_id"], app.admin_user_id.as_str());
    assert_eq!(sessions[0]["reason"], "SUPPORT-42");
    let sid = sessions[0]["id"].as_str().unwrap();
    // The user's sessions show it, marked with who and why.
    let of_user = format!("/api/v2/users/{}/sessions", crate::users::urlencode(target_id));
    let (status, live) = app.get(&of_user).await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
    assert_eq!(live[0]["id"], sid);
    assert_eq!((&live[0]["impersonated"], &live[0]["reason"]), (&json!(true), &json!("SUPPORT-42")));
    assert_eq!(live[0]["impersonator_id"], app.admin_user_id.as_str());
    assert_eq!(app.get("/api/v2/users/guise%7Cnobody/sessions").await.0, 404);
    assert_eq!(app.delete(&format!("/api/v2/impersonations/{sid}")).await.0, 204);
    assert_eq!(app.get(&of_user).await.1, json!([]), "ended: no longer live");

    let introspect = |token: String| {
        let request =
            app.http.post(app.url("/oauth/introspect")).basic_auth(&client_id, Some(&secret)).form(&[("token", token)]);
        async move { split(request.send().await.unwrap()).await.1 }
    };
    assert_eq!(introspect(tokens["access_token"].as_str().unwrap().to_owned()).await["active"], false);
    let (status, refreshed) = split(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, refreshed["error"].as_str()),
        (400, Some("invalid_grant")),
        "refresh tokens die with the session"
    );
    let (_, sessions) = app.get("/api/v2/impersonations").await;
    assert_eq!(sessions, json!([]));
    assert_eq!(app.logs_of_type("guise_impersonation_ended").await.len(), 1);
    assert_eq!(app.delete(&format!("/api/v2/impersonations/{sid}")).await.0, 404);
}

async fn the_cli_mints_urls_for_support_staff(app: TestApp) {
    let target = user(&app).await;
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_guise"))
        .args(["impersonate", "--user", target["user_id"].as_str().unwrap(), "--impersonator", &app.admin_user_id])
        .args([format!("--client={client_id}").as_str(), "--protocol", "oauth2", "--reason", "INC-7"])
        .env("GUISE_DATABASE_URL", &app.db.url)
        .env("GUISE_ISSUER", app.issuer())
        .env("GUISE_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let redeemed = Browser::new().get(&url).await;
    assert_eq!(redeemed.status, 302, "{}", redeemed.body);
    assert!(redeemed.location.unwrap().starts_with(CALLBACK));
    let minted = app.logs_of_type("guise_impersonation_minted").await;
    assert_eq!(minted[0]["actor"]["type"], "system");
    assert_eq!(minted[0]["on_behalf_of"], app.admin_user_id.as_str());
}

/// Expiry needs a clock the test controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_url_is_refused() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(Backend::Sqlite, |_| {}, clock.clone()).await;
    let target = user(&app).await;
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let mut body = mint_body(&app, &client_id);
    body["ttl"] = json!(30);
    let (_, url) = mint_with(&app, &app.token, target["user_id"].as_str().unwrap(), &body).await;
    clock.advance(chrono::Duration::seconds(31));
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Access expired"), "{}", page.body);
    let refused = app.logs_of_type("guise_impersonation_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "expired");
    assert_eq!(refused[0]["user_id"], target["user_id"]);
}

/// Two nodes on one PostgreSQL database, configured with the same issuer: a URL minted on
/// one redeems on the other, and a replay is refused on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_keys_and_the_replay_store() {
    let node_a = crate::helpers::spawn_app(Backend::Postgres).await;
    let issuer = node_a.issuer();
    let database = node_a.db.url.clone();
    let node_b = guise_server::Application::build(guise_server::Config {
        database_url: Some(database),
        issuer: Some(issuer.clone()),
        listen: "127.0.0.1:0".into(),
        workers: 2,
        db_max_connections: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let b_base = format!("http://127.0.0.1:{}", node_b.port());
    tokio::spawn(node_b.run_until_stopped());

    let target = user(&node_a).await;
    let (client_id, _) = impersonation_client(&node_a, json!({})).await;
    let (status, url) =
        mint_with(&node_a, &node_a.token, target["user_id"].as_str().unwrap(), &mint_body(&node_a, &client_id)).await;
    assert_eq!(status, 200);
    let on_b = url.replace(node_a.base.as_str(), &b_base);
    let redeemed = Browser::new().get(&on_b).await;
    assert_eq!(redeemed.status, 302, "{}", redeemed.body);
    assert!(redeemed.location.unwrap().starts_with(CALLBACK));
    for replay in [&url, &on_b] {
        let page = Browser::new().get(replay).await;
        assert_eq!(page.status, 401);
        assert!(page.body.contains("Bewit already used"));
    }
}

/// The key id inside a URL's bewit.
fn bewit_key_id(url: &str) -> String {
    use base64::Engine;
    let parsed = url::Url::parse(url).unwrap();
    let bewit = parsed.query_pairs().find(|(k, _)| k == "bewit").unwrap().1.into_owned();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(bewit).unwrap();
    String::from_utf8(decoded).unwrap().split('\\').next().unwrap().to_owned()
}

/// Rotation keeps already-minted URLs valid; a configured key replaces the database's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bewit_keys_rotate_and_can_come_from_configuration() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap().to_owned();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let (_, before) = mint_with(&app, &app.token, &target_id, &mint_body(&app, &client_id)).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_guise"))
        .args(["keys", "rotate-bewit"])
        .env("GUISE_DATABASE_URL", &app.db.url)
        .env("GUISE_ISSUER", app.issuer())
        .env("GUISE_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rotated: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (_, after) = mint_with(&app, &app.token, &target_id, &mint_body(&app, &client_id)).await;
    assert_eq!(bewit_key_id(&after), rotated["bewit_key_id"].as_str().unwrap(), "new URLs use the new key");
    assert_ne!(bewit_key_id(&before), bewit_key_id(&after));
    assert_eq!(Browser::new().get(&before).await.status, 302, "a URL minted before the rotation still works");
    assert_eq!(Browser::new().get(&after).await.status, 302);

    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let configured = spawn_app_with(Backend::Sqlite, |c| {
        c.bewit_key_id = Some("vault-2026".into());
        c.bewit_key = Some(key.clone());
    })
    .await;
    let target = configured.create_user("t@example.com").await;
    let (client_id, _) = impersonation_client(&configured, json!({})).await;
    let (status, url) = mint_with(
        &configured,
        &configured.token,
        target["user_id"].as_str().unwrap(),
        &mint_body(&configured, &client_id),
    )
    .await;
    assert_eq!(status, 200, "{url}");
    assert_eq!(bewit_key_id(&url), "vault-2026");
    assert_eq!(Browser::new().get(&url).await.status, 302);
    // A half-configured key refuses to start.
    let broken = guise_server::Application::build(guise_server::Config {
        database_url: Some(format!("sqlite://{}", configured.db.data_dir().join("other.db").display())),
        listen: "127.0.0.1:0".into(),
        bewit_key_id: Some("only-an-id".into()),
        ..Default::default()
    })
    .await;
    assert!(broken.is_err());
}

/// `additionalParameters=x&additionalParameters[state]=y` once panicked the worker
/// (writing a key into a string); it is a 400, and the server goes on answering.
async fn a_form_body_naming_additional_parameters_twice_is_a_400(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let form = format!(
        "protocol=oauth2&client_id=c&impersonator_id={}&additionalParameters=x&additionalParameters%5Bstate%5D=y",
        crate::users::urlencode(&app.admin_user_id)
    );
    let response = app
        .http
        .post(app.url(&format!("/users/{}/impersonate", crate::users::urlencode(target_id))))
        .bearer_auth(&app.token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "additionalParameters is given twice");
    assert_eq!(app.get("/api/v2/users").await.0, 200, "the server still answers");
}

/// POST /users/{id}/impersonate with a raw body, a declared content type and a query
/// string; returns (status, body text).
async fn mint_raw(app: &TestApp, user_id: &str, query: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut path = format!("/users/{}/impersonate", crate::users::urlencode(user_id));
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    let response = app
        .http
        .post(app.url(&path))
        .bearer_auth(&app.token)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Auth0's reference sends the parameters in the query string (with
/// `additionalParameters` as JSON in a string), JSON under a form content type and forms
/// under a JSON content type; guise reads all of them, and refuses contradictions.
async fn parameters_are_read_as_auth0_s_reference_sends_them(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let enc = crate::users::urlencode;
    let extra =
        json!({ "response_type": "code", "state": "from-the-query", "callback_url": CALLBACK, "reason": "T-1" })
            .to_string();
    let admin = enc(&app.admin_user_id);
    let query =
        format!("protocol=oauth2&impersonator_id={admin}&client_id={client_id}&additionalParameters={}", enc(&extra));

    // (1) Everything in the query string, no body.
    let (status, url) = mint_raw(&app, target_id, &query, "application/json", "").await;
    assert_eq!(status, 200, "{url}");
    let redeemed = Browser::new().get(&url).await;
    assert_eq!(redeemed.status, 302, "{}", redeemed.body);
    assert_eq!(callback_params(redeemed.location.as_deref().unwrap())["state"], "from-the-query");

    // (2) A JSON body declared as a form.
    let json_body = mint_body(&app, &client_id).to_string();
    let form_ct = "application/x-www-form-urlencoded; charset=UTF-8";
    let (status, url) = mint_raw(&app, target_id, "", form_ct, &json_body).await;
    assert_eq!(status, 200, "{url}");
    let redeemed = Browser::new().get(&url).await;
    assert_eq!(callback_params(redeemed.location.as_deref().unwrap())["state"], "from-the-admin");

    // (3) A form declared as JSON, with bracketed additionalParameters.
    let form = format!(
        "protocol=oauth2&impersonator_id={admin}&client_id={client_id}&additionalParameters%5Bstate%5D=from-a-form\
         &additionalParameters%5Bcallback_url%5D={}&reason=T-1",
        enc(CALLBACK)
    );
    let (status, url) = mint_raw(&app, target_id, "", "application/json", &form).await;
    assert_eq!(status, 200, "{url}");
    let redeemed = Browser::new().get(&url).await;
    assert_eq!(callback_params(redeemed.location.as_deref().unwrap())["state"], "from-a-form");

    // The correct forms, and the query string splitting the parameters with the body.
    let (status, url) = mint_raw(&app, target_id, "", "application/x-www-form-urlencoded", &form).await;
    assert_eq!(status, 200, "{url}");
    let (status, url) = mint_raw(&app, target_id, "", "application/json; charset=utf-8", &json_body).await;
    assert_eq!(status, 200, "{url}");
    let split_body =
        json!({ "client_id": client_id, "reason": "T-1", "additionalParameters": { "state": "s" } }).to_string();
    let (status, url) =
        mint_raw(&app, target_id, &format!("protocol=oauth2&impersonator_id={admin}"), "application/json", &split_body)
            .await;
    assert_eq!(status, 200, "{url}");
    // The same value twice is no contradiction.
    let (status, url) = mint_raw(&app, target_id, "protocol=oauth2", "application/json", &json_body).await;
    assert_eq!(status, 200, "{url}");

    // Contradictions are a 400 naming the parameter, and mint nothing.
    let minted_before = app.logs_of_type("guise_impersonation_minted").await.len();
    let contradictions = [
        ("protocol=samlp".to_owned(), "application/json", json_body.clone(), "protocol is given twice"),
        (
            "additionalParameters%5Bstate%5D=other".to_owned(),
            "application/json",
            json_body.clone(),
            "additionalParameters is given twice",
        ),
        (String::new(), form_ct, format!("{form}&protocol=samlp"), "protocol is given twice"),
        (
            String::new(),
            form_ct,
            format!("{form}&additionalParameters%5Bstate%5D=b"),
            "additionalParameters is given twice",
        ),
        (String::new(), form_ct, format!("{form}&additionalParameters=x"), "additionalParameters is given twice"),
        (format!("client_id={client_id}x"), form_ct, form.clone(), "client_id is given twice"),
        (
            String::new(),
            form_ct,
            format!("{form}&additionalParameters%5Breason%5D=other").replace("&reason=T-1", "&reason=T-2"),
            "reason is given twice",
        ),
    ];
    for (query, content_type, body, message) in contradictions {
        let (status, text) = mint_raw(&app, target_id, &query, content_type, &body).await;
        assert_eq!(status, 400, "{query} {body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["message"].as_str().unwrap().starts_with(message), "{text}");
    }
    // Broken bodies are 400s too, never a panic.
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", "[1, 2]"),
        (form_ct, "{\"protocol\": "),
        ("text/plain", "additionalParameters=%7B%22state%22"),
        ("application/json", "additionalParameters=1&additionalParameters%5Bx%5D=2"),
    ] {
        let (status, text) =
            mint_raw(&app, target_id, &format!("protocol=oauth2&client_id={client_id}"), content_type, body).await;
        assert_eq!(status, 400, "{body}: {text}");
    }
    assert_eq!(app.logs_of_type("guise_impersonation_minted").await.len(), minted_before);
    assert_eq!(app.get("/api/v2/users").await.0, 200, "the server still answers");
}

/// The minted URL is a GET of `/users/{impersonator_id}/impersonate`, signed for that
/// path: moved to another path it is a bad mac; a path naming someone other than the
/// ticket's impersonator is refused even when signed; `/impersonate/redeem` still
/// redeems URLs signed for it (minted before the Auth0 shape).
async fn the_url_is_redeemed_at_the_impersonator_s_path_and_the_legacy_path(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({})).await;
    let at_path = app.url(&format!("/users/{}/impersonate?", crate::users::urlencode(&app.admin_user_id)));
    let key = guise_flow::bewit_keys::signing_key(&app.state.flow()).unwrap();
    let resign = |url: &str, path: &str| {
        let query = url.split_once('?').unwrap().1;
        let unsigned: Vec<&str> = query.split('&').filter(|p| !p.starts_with("bewit=")).collect();
        let url = url::Url::parse(&format!("{}?{}", app.url(path), unsigned.join("&"))).unwrap();
        let exp = chrono::Utc::now().timestamp() + 60;
        guise_core::bewit::sign_url(&key, url, exp, "").unwrap().to_string()
    };

    // Moved to the legacy path, the URL's MAC no longer matches.
    let (_, url) = mint_with(&app, &app.token, target_id, &mint_body(&app, &client_id)).await;
    assert!(url.starts_with(&at_path), "{url}");
    let moved = url.replacen(&at_path, &app.url("/impersonate/redeem?"), 1);
    let page = Browser::new().get(&moved).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("Bad mac"), "{}", page.body);

    // Signed for a path naming another impersonator: refused before it is spent.
    let forged = resign(&url, &format!("/users/{}/impersonate", crate::users::urlencode(target_id)));
    let page = Browser::new().get(&forged).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("another impersonator"), "{}", page.body);
    let reasons = app.logs_of_type("guise_impersonation_refused").await;
    assert!(reasons.iter().any(|e| e["details"]["reason"] == "impersonator_mismatch"), "{reasons:?}");

    // Signed for the legacy path (as guise minted before): redeemed there, once.
    let legacy = resign(&url, "/impersonate/redeem");
    let page = Browser::new().get(&legacy).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(callback_params(page.location.as_deref().unwrap())["state"], "from-the-admin");
    // It shares the ticket (jti) with the original URL: that one is now spent.
    assert_eq!(Browser::new().get(&url).await.status, 401);
}

/// guise's own account page (`/`) tells a signed-in user who impersonated them (who,
/// where, why, when) and which API calls were made on their behalf; an impersonator
/// inside their session sees the banner, not that history.
async fn the_user_sees_who_acted_as_them_on_their_account_page(app: TestApp) {
    let target = user(&app).await;
    let target_id = target["user_id"].as_str().unwrap();
    let (client_id, _) = impersonation_client(&app, json!({ "name": "Ledger" })).await;
    let (status, url) = mint_with(&app, &app.token, target_id, &mint_body(&app, &client_id)).await;
    assert_eq!(status, 200, "{url}");
    let impersonator = Browser::new();
    assert_eq!(impersonator.get(&url).await.status, 302);
    let inside = impersonator.get(&app.url("/")).await;
    assert!(inside.body.contains("Impersonation session"), "{}", inside.body);
    assert!(!inside.body.contains("Who acted as you"), "{}", inside.body);
    let (status, _) = app.get(&format!("/api/v2/me?as_user_id={}", crate::users::urlencode(target_id))).await;
    assert_eq!(status, 200);

    let me = Browser::new();
    let login = authorize_url(
        &app,
        &[("response_type", "code"), ("client_id", &client_id), ("scope", "openid"), ("redirect_uri", CALLBACK)],
    );
    let signed_in = me.follow(&app, me.login_via(&app, &login, USER_EMAIL, USER_PASSWORD).await).await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    let page = me.get(&app.url("/")).await;
    assert_eq!(page.status, 200);
    let body = page.body.replace("&#x2f;", "/");
    assert!(body.contains("Who acted as you"), "{body}");
    assert!(body.contains(&format!("{ADMIN_EMAIL} signed in as you to Ledger (reason: SUPPORT-42)")), "{body}");
    assert!(body.contains("guise Management Client called <code>GET /api/v2/me</code>"), "{body}");
    assert!(!body.contains("Impersonation session"), "{body}");
}
