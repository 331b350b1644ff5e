//! OpenID Connect with the `openidconnect` crate as the relying party: the whole code
//! flow end to end, then refresh, userinfo, revocation and introspection.

use crate::both_backends;
use crate::browser::{Browser, CALLBACK, USER_EMAIL, USER_PASSWORD, callback_params, user, web_client};
use crate::helpers::TestApp;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenIntrospectionResponse, TokenResponse,
};
use serde_json::json;

both_backends!(openidconnect_relying_party_end_to_end, alternative_signing_algorithms_verify);

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn openidconnect_relying_party_end_to_end(app: TestApp) {
    let grace = user(&app).await;
    let (client_id, secret) = web_client(&app, json!({})).await;
    let http = rp_http();

    // Discovery.
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http)
        .await
        .expect("discovery document parses");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap());

    // Authorize → login form → callback.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new();
    let done = browser.login_via(&app, auth_url.as_str(), USER_EMAIL, USER_PASSWORD).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let location = done.location.unwrap();
    assert!(location.starts_with(CALLBACK), "{location}");
    let params = callback_params(&location);
    assert_eq!(params["state"], *csrf.secret());
    assert_eq!(params["iss"], app.issuer());

    // Code exchange (client_secret_basic) and ID token verification.
    let tokens = client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token for scope openid");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("ID token verifies: signature, issuer, audience, nonce");
    assert_eq!(claims.subject().as_str(), grace["user_id"].as_str().unwrap());
    assert_eq!(claims.email().map(|e| e.as_str()), Some(USER_EMAIL));
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash), "at_hash matches");
    let raw: serde_json::Value = serde_json::from_str(&serde_json::to_string(id_token).unwrap()).unwrap();
    let payload = decode_payload(raw.as_str().unwrap());
    assert_eq!(payload["azp"], client_id.as_str());
    assert!(payload["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(payload.get("impersonated").is_none(), "an ordinary login is not an impersonation");

    // Userinfo.
    let info: CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.expect("userinfo");
    assert_eq!(info.subject().as_str(), grace["user_id"].as_str().unwrap());
    assert_eq!(info.email().map(|e| e.as_str()), Some(USER_EMAIL));

    // Refresh (rotation: a new refresh token each time).
    let refresh = tokens.refresh_token().expect("offline_access gives a refresh token").clone();
    let refreshed = client.exchange_refresh_token(&refresh).unwrap().request_async(&http).await.expect("refresh");
    let rotated = refreshed.refresh_token().expect("rotation issues a new refresh token").clone();
    assert_ne!(rotated.secret(), refresh.secret());
    let info: CoreUserInfoClaims = client
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo with the refreshed token");
    assert_eq!(info.subject().as_str(), grace["user_id"].as_str().unwrap());

    // Introspection says active, then revoke, then inactive.
    let active = client.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(active.active());
    // (The oauth2 crate refuses a revocation endpoint over plain http, so post it directly.)
    revoke(&app, &client_id, &secret, refreshed.access_token().secret()).await;
    let inactive = client.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(!inactive.active(), "a revoked access token is inactive");
    let after: Result<CoreUserInfoClaims, _> =
        client.user_info(refreshed.access_token().clone(), None).unwrap().request_async(&http).await;
    assert!(after.is_err(), "userinfo refuses a revoked token");

    revoke(&app, &client_id, &secret, rotated.secret()).await;
    let introspected = client.introspect(refreshed.access_token()).request_async(&http).await.unwrap();
    assert!(!introspected.active());
    assert!(
        client.exchange_refresh_token(&rotated).unwrap().request_async(&http).await.is_err(),
        "revoked refresh token"
    );

    // The flow left its audit trail.
    for event_type in ["s", "seacft", "sertft", "srrt"] {
        assert!(!app.logs_of_type(event_type).await.is_empty(), "no {event_type} event");
    }
}

/// RFC 7009 revocation with client_secret_basic; the endpoint answers 200.
pub async fn revoke(app: &TestApp, client_id: &str, secret: &str, token: &str) {
    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

pub fn decode_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn alternative_signing_algorithms_verify(app: TestApp) {
    user(&app).await;
    let http = rp_http();
    for alg in ["ES256", "EdDSA"] {
        let (client_id, secret) = web_client(&app, json!({ "jwt_configuration": { "alg": alg } })).await;
        let metadata =
            CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http).await.unwrap();
        let client =
            CoreClient::from_provider_metadata(metadata, ClientId::new(client_id), Some(ClientSecret::new(secret)))
                .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, _, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge)
            .url();
        let done = Browser::new().login_via(&app, auth_url.as_str(), USER_EMAIL, USER_PASSWORD).await;
        let code = callback_params(&done.location.unwrap())["code"].clone();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap();
        let id_token = tokens.id_token().unwrap();
        let id_verifier =
            client.id_token_verifier().set_allowed_algs(vec![serde_json::from_value(json!(alg)).unwrap()]);
        let claims = id_token.claims(&id_verifier, &nonce).unwrap_or_else(|e| panic!("{alg} ID token: {e}"));
        assert_eq!(claims.email().map(|e| e.as_str()), None, "no email claim without the email scope");
        let expected = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&id_verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected), "{alg} at_hash");
    }
}
