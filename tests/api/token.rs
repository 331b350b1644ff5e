//! `POST /oauth/token` with client credentials, discovery and JWKS, driven by the
//! `oauth2` crate as a real client; tokens verified against the published JWKS.

use crate::both_backends;
use crate::helpers::{TestApp, split};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use serde_json::{Value, json};

both_backends!(
    changes_on_one_node_are_refused_on_another,
    oauth2_client_gets_a_token_that_verifies_against_jwks,
    client_secret_post_works_and_scopes_narrow,
    wrong_secret_and_unknown_client_are_invalid_client,
    bad_token_requests_get_oauth_errors,
    discovery_and_jwks_are_published,
    token_exchanges_are_audited,
);

fn oauth_client(
    app: &TestApp,
    id: &str,
    secret: &str,
) -> oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    BasicClient::new(ClientId::new(id.to_owned()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Verify a JWT against the server's JWKS; returns its claims.
pub async fn verify_with_jwks(app: &TestApp, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("tokens carry a kid");
    let jwk = jwks.find(&kid).expect("the kid is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.issuer()]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
}

async fn oauth2_client_gets_a_token_that_verifies_against_jwks(app: TestApp) {
    // client_secret_basic is the oauth2 crate's default.
    let client = oauth_client(&app, &app.management_client_id, &app.management_client_secret);
    let token = client.exchange_client_credentials().request_async(&http()).await.expect("token issued");
    assert_eq!(token.token_type().as_ref(), "bearer");
    assert!(token.expires_in().is_some_and(|d| d.as_secs() > 0));

    let claims = verify_with_jwks(&app, token.access_token().secret(), &app.management_audience()).await;
    assert_eq!(claims["iss"], app.issuer());
    assert_eq!(claims["sub"], format!("{}@clients", app.management_client_id));
    assert_eq!(claims["aud"], app.management_audience());
    assert_eq!(claims["azp"], app.management_client_id.as_str());
    assert!(claims["scope"].as_str().unwrap().split(' ').any(|s| s == "impersonate:users"));
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(exp > iat);

    // The token works on the Management API.
    let (status, _) = app.send_as(token.access_token().secret(), reqwest::Method::GET, "/api/v2/users", None).await;
    assert_eq!(status, 200);
}

async fn client_secret_post_works_and_scopes_narrow(app: TestApp) {
    let client = oauth_client(&app, &app.management_client_id, &app.management_client_secret)
        .set_auth_type(AuthType::RequestBody);
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read:users".into()))
        .request_async(&http())
        .await
        .expect("token issued with client_secret_post");
    let claims = verify_with_jwks(&app, token.access_token().secret(), &app.management_audience()).await;
    assert_eq!(claims["scope"], "read:users");

    // A scope outside the client's grant is refused.
    let (reader, secret) = app.machine_client("reader", &["read:users"]).await;
    let refused = oauth_client(&app, &reader, &secret)
        .exchange_client_credentials()
        .add_scope(Scope::new("delete:users".into()))
        .request_async(&http())
        .await;
    match refused {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope),
        other => panic!("expected invalid_scope, got {other:?}"),
    }
}

async fn wrong_secret_and_unknown_client_are_invalid_client(app: TestApp) {
    for (id, secret) in [(app.management_client_id.as_str(), "not-the-secret"), ("no-such-client", "whatever")] {
        let result = oauth_client(&app, id, secret).exchange_client_credentials().request_async(&http()).await;
        match result {
            Err(RequestTokenError::ServerResponse(e)) => {
                assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient)
            }
            other => panic!("expected invalid_client, got {other:?}"),
        }
    }
    // The raw response: 401, WWW-Authenticate for Basic, no-store.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&app.management_client_id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

async fn bad_token_requests_get_oauth_errors(app: TestApp) {
    let cid = app.management_client_id.clone();
    let secret = app.management_client_secret.clone();
    let post = |form: Vec<(&'static str, String)>| {
        let request = app.http.post(app.url("/oauth/token")).form(&form);
        async move { split(request.send().await.unwrap()).await }
    };

    let (status, body) = post(vec![("grant_type", "password".into()), ("client_id", cid.clone())]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")), "{body}");

    let (status, body) = post(vec![("client_id", cid.clone()), ("client_secret", secret.clone())]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    let (status, body) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", cid.clone()),
        ("client_secret", secret.clone()),
        ("audience", "https://unknown.example/api".into()),
    ])
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("access_denied")), "{body}");

    let (status, body) = post(vec![("grant_type", "client_credentials".into())]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");

    // Two authentication methods at once.
    let (status, body) = split(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&cid, Some(&secret))
            .form(&[("grant_type", "client_credentials"), ("client_secret", secret.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // JSON bodies are accepted (Auth0 SDKs send them); malformed JSON is invalid_request.
    let (status, body) = split(
        app.http
            .post(app.url("/oauth/token"))
            .json(&json!({ "grant_type": "client_credentials", "client_id": cid, "client_secret": secret }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = split(
        app.http
            .post(app.url("/oauth/token"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // Oversized body.
    let huge = "x".repeat(app.state.config.max_body_bytes + 1);
    let (status, body) = post(vec![("grant_type", "client_credentials".into()), ("scope", huge)]).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("invalid_request")), "{body}");
}

async fn discovery_and_jwks_are_published(app: TestApp) {
    let (status, discovery) =
        split(app.http.get(app.url("/.well-known/openid-configuration")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], app.issuer());
    assert_eq!(discovery["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(discovery["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert!(discovery["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")));

    let (status, jwks) = split(app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort_unstable();
    assert_eq!(algs, vec!["ES256", "EdDSA", "RS256"]);
    for key in keys {
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "JWKS leaks private part {private}");
        }
    }
}

async fn token_exchanges_are_audited(app: TestApp) {
    let _ = oauth_client(&app, &app.management_client_id, "wrong")
        .exchange_client_credentials()
        .request_async(&http())
        .await;
    let successes = app.logs_of_type("seccft").await;
    assert!(successes.iter().any(|e| e["client_id"] == app.management_client_id.as_str()));
    let failures = app.logs_of_type("feccft").await;
    let failure = failures.first().expect("a failed exchange is logged");
    assert_eq!(failure["client_id"], app.management_client_id.as_str());
    assert_eq!(failure["details"]["error"], "invalid_client");
    assert_eq!(failure["ip"], "127.0.0.1");
    let text = serde_json::to_string(&failures).unwrap();
    assert!(!text.contains("wrong"), "a presented secret must not reach the log");
    assert!(!text.contains(&app.management_client_secret));
}

/// A grant narrowed or removed, or a client deleted, on one node is refused on another
/// node on the same database (PostgreSQL: two nodes; SQLite: two processes on one file)
/// after the other node had cached them: on SQLite at the next request, on PostgreSQL
/// within the read cache's listener poll (polled here for at most 2 s). On the node that
/// made the change, the very next request.
async fn changes_on_one_node_are_refused_on_another(app: TestApp) {
    let other = app.second_node().await;
    let (client_id, secret) = app.machine_client("cached", &["read:users", "read:clients"]).await;
    let token_on = |base: String, scope: Option<&'static str>| {
        let http = app.http.clone();
        let (client_id, secret) = (client_id.clone(), secret.clone());
        async move {
            let mut form = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", client_id),
                ("client_secret", secret),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope.to_owned()));
            }
            split(http.post(format!("{base}/oauth/token")).form(&form).send().await.unwrap()).await
        }
    };
    let scope_of = |body: &Value| body["scope"].as_str().unwrap_or_default().to_owned();
    // Within 2 s on PostgreSQL, at once on SQLite; how long it took.
    let within = |backend: crate::helpers::Backend| match backend {
        crate::helpers::Backend::Sqlite => std::time::Duration::ZERO,
        crate::helpers::Backend::Postgres => std::time::Duration::from_secs(2),
    };
    // Both nodes serve (and cache) the client and its grant.
    for base in [app.base.clone(), other.clone()] {
        for _ in 0..3 {
            let (status, body) = token_on(base.clone(), None).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(scope_of(&body), "read:users read:clients");
        }
    }
    let (_, grants) = app.get(&format!("/api/v2/client-grants?client_id={client_id}")).await;
    let grant_id = grants[0]["id"].as_str().unwrap().to_owned();

    // Narrowed on this node: the next request here and on the other node.
    let (status, _) =
        app.patch(&format!("/api/v2/client-grants/{grant_id}"), &json!({ "scope": ["read:users"] })).await;
    assert_eq!(status, 200);
    let (_, body) = token_on(app.base.clone(), None).await;
    assert_eq!(scope_of(&body), "read:users", "the same node: the next request");
    let start = std::time::Instant::now();
    loop {
        let (status, body) = token_on(other.clone(), Some("read:clients")).await;
        if status != 200 {
            assert_eq!(body["error"], "invalid_scope", "{body}");
            break;
        }
        assert!(start.elapsed() <= within(app.backend), "the other node still grants read:clients: {body}");
    }
    eprintln!("{:?}: a narrowed grant refused on the other node after {:?}", app.backend, start.elapsed());

    // Removed on this node.
    let (status, _) = app.delete(&format!("/api/v2/client-grants/{grant_id}")).await;
    assert_eq!(status, 204);
    assert_eq!(token_on(app.base.clone(), None).await.0, 403, "the same node: the next request");
    let start = std::time::Instant::now();
    loop {
        let (status, body) = token_on(other.clone(), None).await;
        if status == 403 {
            break;
        }
        assert!(start.elapsed() <= within(app.backend), "the other node still grants: {status} {body}");
    }
    eprintln!("{:?}: a removed grant refused on the other node after {:?}", app.backend, start.elapsed());

    // The client deleted on this node.
    let (status, _) = app.delete(&format!("/api/v2/clients/{client_id}")).await;
    assert_eq!(status, 204);
    let (status, body) = token_on(app.base.clone(), None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "the same node: the next request");
    let start = std::time::Instant::now();
    loop {
        let (status, body) = token_on(other.clone(), None).await;
        if status == 401 {
            assert_eq!(body["error"], "invalid_client");
            break;
        }
        assert!(start.elapsed() <= within(app.backend), "the other node still knows the client: {status} {body}");
    }
    eprintln!("{:?}: a deleted client refused on the other node after {:?}", app.backend, start.elapsed());
}
