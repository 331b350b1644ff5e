//! The token endpoint (`grant::exchange`), revocation, introspection and userinfo, driven
//! through the in-memory store at fixed times.

use super::*;
use crate::error::OAuthErrorCode;
use crate::id_token;
use crate::revocation::{introspect, revoke};
use crate::userinfo::{UserInfoError, userinfo, verify_user_token};
use guise_core::authorization::{
    AccessTokenRecord, AuthorizationCode, CodeRedemption, RefreshRedemption, RefreshTokenRecord,
};
use guise_core::store::{AuthorizationCodeStore, SessionStore, StoreResult, TokenStore, UserStore};
use guise_core::user::{Attribution, UserPatch};
use serde_json::json;

/// Everything a code may carry; `ALICE` holds only `read:things` of the API scopes.
const FULL_SCOPE: &str = "openid profile email offline_access read:things write:things";
/// What `ALICE` is given for `FULL_SCOPE`.
const ALICE_SCOPE: &str = "openid profile email offline_access read:things";

#[track_caller]
fn assert_error(result: Result<TokenResponse, OAuthError>, code: OAuthErrorCode, description: &str) {
    let error = result.expect_err("the request must be refused");
    assert_eq!((error.code, error.description.as_str()), (code, description));
}

fn client_credentials(
    credentials: Option<ClientCredentials>,
    scope: Option<&str>,
    audience: Option<&str>,
) -> TokenRequest {
    TokenRequest {
        grant_type: "client_credentials".into(),
        credentials,
        scope: scope.map(str::to_owned),
        audience: audience.map(str::to_owned),
        source_ip: Some("203.0.113.5".into()),
        ..TokenRequest::default()
    }
}

/// Save `code-1` for `WEB_APP` in `ALICE`'s session and exchange it at `t0`.
fn first_exchange(w: &World) -> TokenResponse {
    w.save_code(w.code("code-1", WEB_APP, SID, ALICE, FULL_SCOPE));
    w.exchange(&code_request("code-1")).expect("the code is exchanged")
}

fn refresh_record(w: &World, refresh_token: &str) -> guise_core::authorization::RefreshTokenRecord {
    w.store.refresh_token(&hash_secret(refresh_token)).expect("a stored refresh token")
}

fn jti(w: &World, access_token: &str) -> String {
    access_token::verify_any_audience(&w.keys, access_token, ISSUER, DateTime::<Utc>::MIN_UTC)
        .expect("a token guise signed")
        .jti
}

fn web_app(w: &World) -> Client {
    w.store.client_by_id(WEB_APP).expect("the web app")
}

// ---------------------------------------------------------------- client credentials

#[test]
fn client_credentials_issues_a_machine_token_narrowed_to_the_requested_scope() {
    let w = World::new();
    let response = w.exchange(&client_credentials(post(M2M, M2M_SECRET), Some("read:things"), Some(API))).unwrap();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.scope, "read:things");
    assert_eq!(response.expires_in, 3600);
    assert_eq!((response.id_token.as_deref(), response.refresh_token.as_deref()), (None, None));
    assert_eq!((response.subject.as_deref(), response.impersonator.as_deref()), (None, None));

    let claims = w.access_claims(&response.access_token, API, t0());
    assert_eq!(claims.sub, format!("{M2M}@clients"));
    assert_eq!(claims.machine_client(), Some(M2M));
    assert_eq!((claims.aud.as_str(), claims.azp.as_str(), claims.iss.as_str()), (API, M2M, ISSUER));
    assert_eq!(claims.scope, "read:things");
    assert_eq!(claims.gty.as_deref(), Some("client-credentials"));
    assert_eq!((claims.iat, claims.exp), (t0().timestamp(), t0().timestamp() + 3600));
    assert!(claims.extra.is_empty(), "no user, no impersonation: {:?}", claims.extra);

    // No scope asked for: everything the grant holds (and basic authentication works too).
    let all = w.exchange(&client_credentials(basic(M2M, M2M_SECRET), None, Some(API))).unwrap();
    assert_eq!(all.scope, "read:things write:things");

    // Machine tokens are not user tokens: /userinfo refuses them.
    assert_eq!(
        verify_user_token(&w.keys, &w.settings, &w.store, &response.access_token, t0()),
        Err(UserInfoError::InvalidToken("The access token was not issued to a user".into()))
    );

    let log = w.audit_log();
    let issued: Vec<&AuditRecord> = log.iter().filter(|r| r.event.event_type == "seccft").collect();
    assert_eq!(issued.len(), 2);
    let event = &issued[0].event;
    assert_eq!(event.actor, Actor::Client(M2M.into()));
    assert_eq!(event.client_id.as_deref(), Some(M2M));
    assert_eq!(event.source_ip.as_deref(), Some("203.0.113.5"));
    assert_eq!((event.subject.as_deref(), event.on_behalf_of.as_deref()), (None, None));
    assert_eq!(event.occurred_at, t0());
    assert_eq!(event.details, json!({ "grant_type": "client_credentials", "audience": API, "scope": "read:things" }));
    assert_eq!(w.token_events(), ["seccft", "seccft"]);
    w.assert_chain_verifies();
}

#[test]
fn client_credentials_refuses_a_scope_beyond_the_client_grant() {
    let w = World::new();
    assert_error(
        w.exchange(&client_credentials(post(M2M, M2M_SECRET), Some("read:things delete:things"), Some(API))),
        OAuthErrorCode::InvalidScope,
        &format!("Scope 'delete:things' is not granted to this client for \"{API}\""),
    );
    let log = w.audit_log();
    let last = log.last().unwrap();
    assert_eq!(last.event.event_type, "feccft");
    assert_eq!(last.event.details, json!({ "grant_type": "client_credentials", "error": "invalid_scope" }));
    w.assert_chain_verifies();
}

#[test]
fn client_credentials_with_bad_client_authentication_is_invalid_client() {
    let w = World::new();
    let cases = [
        ("wrong secret (post)", post(M2M, "not-the-secret")),
        ("wrong secret (basic)", basic(M2M, WEB_SECRET)),
        ("unknown client", post("no-such-client", M2M_SECRET)),
        ("no secret for a confidential client", public(M2M)),
    ];
    for (name, credentials) in cases {
        let result = w.exchange(&client_credentials(credentials, None, Some(API)));
        let error = result.expect_err(name);
        assert_eq!(error, OAuthError::invalid_client(), "{name}");
    }
    assert_eq!(w.token_events(), ["feccft"; 4]);
    let log = w.audit_log();
    let unknown = &log[log.len() - 2].event;
    // The client id that was claimed is logged, even though no such client exists.
    assert_eq!(unknown.client_id.as_deref(), Some("no-such-client"));
    assert_eq!(unknown.details, json!({ "grant_type": "client_credentials", "error": "invalid_client" }));

    // No credentials at all: refused before any client is named, so nothing to log.
    assert_error(
        w.exchange(&client_credentials(None, None, Some(API))),
        OAuthErrorCode::InvalidClient,
        "Client authentication is required",
    );
    assert_eq!(w.token_events().len(), 4);
    w.assert_chain_verifies();
}

#[test]
fn unknown_grant_types_are_unsupported_and_not_audited() {
    let w = World::new();
    for grant_type in ["password", "urn:ietf:params:oauth:grant-type:device_code", "implicit"] {
        let request = TokenRequest {
            grant_type: grant_type.into(),
            credentials: post(M2M, M2M_SECRET),
            ..TokenRequest::default()
        };
        let error = w.exchange(&request).expect_err(grant_type);
        assert_eq!(error.code, OAuthErrorCode::UnsupportedGrantType, "{grant_type}");
    }
    let empty = TokenRequest { credentials: post(M2M, M2M_SECRET), ..TokenRequest::default() };
    assert_error(w.exchange(&empty), OAuthErrorCode::InvalidRequest, "Missing required parameter: grant_type");
    assert!(w.token_events().is_empty());
}

#[test]
fn client_credentials_without_a_client_grant_is_access_denied() {
    let w = World::new();
    let other = "https://other-api.example.com/";
    assert_error(
        w.exchange(&client_credentials(post(M2M, M2M_SECRET), None, Some(other))),
        OAuthErrorCode::AccessDenied,
        &format!(
            "Client is not authorized to access \"{other}\". You need to create a client grant associated to this API."
        ),
    );
    // Without an audience the Management API is meant; M2M holds no grant on it.
    let error = w.exchange(&client_credentials(post(M2M, M2M_SECRET), None, None)).unwrap_err();
    assert_eq!(error.code, OAuthErrorCode::AccessDenied);
    assert!(error.description.contains("\"https://idp.example.com/api/v2/\""), "{}", error.description);
    // A web app may use the grant type, but holds no client grant either.
    let error = w.exchange(&client_credentials(post(WEB_APP, WEB_SECRET), None, Some(API))).unwrap_err();
    assert_eq!(error.code, OAuthErrorCode::AccessDenied);

    assert_eq!(w.token_events(), ["feccft"; 3]);
    assert!(w.audit_log().iter().rev().take(3).all(|r| r.event.details["error"] == "access_denied"));
    w.assert_chain_verifies();
}

#[test]
fn public_clients_cannot_use_client_credentials() {
    let w = World::new();
    // A public client registered (wrongly) with the grant type: the handler refuses it.
    let mut spa = client("spawithccgrant000000000000000000", AppType::Spa, None);
    spa.grant_types.push("client_credentials".into());
    w.store.create_client(spa.clone(), audit("spa")).unwrap();
    assert_error(
        w.exchange(&client_credentials(public(&spa.client_id), None, Some(API))),
        OAuthErrorCode::UnauthorizedClient,
        "Public clients cannot use the client_credentials grant",
    );
    // The ordinary public client is not even allowed the grant type.
    assert_error(
        w.exchange(&client_credentials(public(SPA), None, Some(API))),
        OAuthErrorCode::UnauthorizedClient,
        "Grant type 'client_credentials' not allowed for the client.",
    );
    // A public client cannot pass a secret either.
    assert_error(
        w.exchange(&client_credentials(post(SPA, "anything"), None, Some(API))),
        OAuthErrorCode::InvalidClient,
        "Client authentication failed",
    );
    assert_eq!(w.token_events(), ["feccft"; 3]);
    w.assert_chain_verifies();
}

#[test]
fn every_token_endpoint_outcome_is_chained_into_the_audit_log() {
    let w = World::new();
    let setup_rows = w.audit_log().len();
    w.exchange(&client_credentials(post(M2M, M2M_SECRET), None, Some(API))).unwrap();
    w.exchange(&client_credentials(post(M2M, "wrong"), None, Some(API))).unwrap_err();
    w.exchange(&client_credentials(post(M2M, M2M_SECRET), Some("read:things"), Some(API))).unwrap();
    let log = w.audit_log();
    assert_eq!(log.len(), setup_rows + 3);
    assert_eq!(w.token_events(), ["seccft", "feccft", "seccft"]);
    for pair in log.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    w.assert_chain_verifies();
}

// ---------------------------------------------------------------- authorization code

#[test]
fn code_exchange_with_pkce_issues_access_id_and_refresh_tokens() {
    let w = World::new();
    let response = first_exchange(&w);
    assert_eq!(response.scope, ALICE_SCOPE, "write:things is not held by the user");
    assert_eq!(response.expires_in, 3600);
    assert_eq!(response.subject.as_deref(), Some(ALICE));
    assert_eq!(response.impersonator, None);
    let refresh_token = response.refresh_token.clone().expect("offline_access gives a refresh token");

    let access = w.access_claims(&response.access_token, API, t0());
    assert_eq!((access.sub.as_str(), access.azp.as_str(), access.aud.as_str()), (ALICE, WEB_APP, API));
    assert_eq!(access.scope, ALICE_SCOPE);
    assert_eq!(access.gty, None);
    assert_eq!((access.iat, access.exp), (t0().timestamp(), t0().timestamp() + 3600));
    assert_eq!(Value::Object(access.extra.clone()), json!({ "sid": SID }));

    let id = w.id_claims(response.id_token.as_deref().expect("openid gives an ID token"), WEB_APP);
    assert_eq!(id["sub"], ALICE);
    assert_eq!(id["azp"], WEB_APP);
    assert_eq!(id["nonce"], NONCE);
    assert_eq!(id["at_hash"], id_token::at_hash(&response.access_token, "RS256"));
    assert_eq!(id["sid"], SID);
    assert_eq!(id["auth_time"], (t0() - Duration::minutes(5)).timestamp());
    assert_eq!(id["iat"], t0().timestamp());
    assert_eq!(id["exp"], (t0() + Duration::hours(10)).timestamp());
    assert_eq!(id["email"], ALICE_EMAIL);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], format!("Name of {ALICE_EMAIL}"));
    assert!(id.get("impersonated").is_none() && id.get("act").is_none());

    let record = w.store.access_token_record(&access.jti).unwrap();
    let family = refresh_record(&w, &refresh_token);
    assert_eq!((record.client_id.as_str(), record.user_id.as_str(), record.sid.as_str()), (WEB_APP, ALICE, SID));
    assert_eq!(record.code_hash, Some(hash_secret("code-1")));
    assert_eq!(record.family_id.as_ref(), Some(&family.family_id));
    assert_eq!((record.expires_at, record.revoked_at), (t0() + Duration::hours(1), None));
    assert_eq!(family.scope.join(" "), FULL_SCOPE, "the family keeps the scope that was granted");
    assert_eq!(family.audience.as_deref(), Some(API));
    assert_eq!(family.code_hash, Some(hash_secret("code-1")));
    assert_eq!(family.family_expires_at, t0() + Duration::days(30));
    assert_eq!((family.used_at, family.revoked_at), (None, None));

    let log = w.audit_log();
    let event = &log.last().unwrap().event;
    assert_eq!(event.event_type, "seacft");
    assert_eq!(event.actor, Actor::Client(WEB_APP.into()));
    assert_eq!((event.subject.as_deref(), event.on_behalf_of.as_deref()), (Some(ALICE), None));
    assert_eq!(event.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(event.details["scope"], ALICE_SCOPE);
    w.assert_chain_verifies();

    // The token works at /userinfo, with the claims its scope releases.
    let info = userinfo(&w.ctx(t0()), &response.access_token).unwrap();
    assert_eq!(info["sub"], ALICE);
    assert_eq!(info["email"], ALICE_EMAIL);
    assert!(info.get("impersonated").is_none());
}

#[test]
fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let w = World::new();
    let first = first_exchange(&w);
    let access_jti = jti(&w, &first.access_token);
    let refresh_token = first.refresh_token.clone().unwrap();

    let replay_at = t0() + Duration::seconds(10);
    assert_error(
        w.exchange_at(&code_request("code-1"), replay_at),
        OAuthErrorCode::InvalidGrant,
        "Invalid authorization code",
    );
    assert_eq!(w.store.access_token_record(&access_jti).unwrap().revoked_at, Some(replay_at));
    assert_eq!(refresh_record(&w, &refresh_token).revoked_at, Some(replay_at));

    // Everything the code issued is dead.
    assert_eq!(
        verify_user_token(&w.keys, &w.settings, &w.store, &first.access_token, replay_at),
        Err(UserInfoError::InvalidToken("The access token has been revoked".into()))
    );
    let client = web_app(&w);
    let inactive = json!({ "active": false });
    assert_eq!(introspect(&w.ctx(replay_at), &client, &first.access_token).unwrap(), inactive);
    assert_eq!(introspect(&w.ctx(replay_at), &client, &refresh_token).unwrap(), inactive);
    assert_error(
        w.exchange_at(&refresh_request(&refresh_token), replay_at),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );

    assert_eq!(w.token_events(), ["seacft", "guise_code_replayed", "feacft", "fertft"]);
    let log = w.audit_log();
    let replayed = log.iter().find(|r| r.event.event_type == "guise_code_replayed").unwrap();
    assert_eq!(replayed.event.subject.as_deref(), Some(ALICE));
    assert_eq!(replayed.event.client_id.as_deref(), Some(WEB_APP));
    assert_eq!(replayed.event.details, json!({ "sid": SID }));
    w.assert_chain_verifies();
}

#[test]
fn code_exchange_with_a_wrong_pkce_verifier_fails_and_burns_the_code() {
    let w = World::new();
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("one character off", Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"), "Failed to verify code_verifier"),
        ("too short to be a verifier", Some("short"), "Failed to verify code_verifier"),
        ("missing", None, "Missing required parameter: code_verifier"),
    ];
    for (i, (name, verifier, description)) in cases.into_iter().enumerate() {
        let secret = format!("pkce-code-{i}");
        w.save_code(w.code(&secret, WEB_APP, SID, ALICE, FULL_SCOPE));
        let request = TokenRequest { code_verifier: verifier.map(str::to_owned), ..code_request(&secret) };
        let error = w.exchange(&request).expect_err(name);
        assert_eq!((error.code, error.description.as_str()), (OAuthErrorCode::InvalidGrant, description), "{name}");
        // The attempt consumed the code: the right verifier now comes too late.
        assert_error(w.exchange(&code_request(&secret)), OAuthErrorCode::InvalidGrant, "Invalid authorization code");
    }

    // A verifier for a code that had no challenge is a downgrade attempt.
    let no_pkce = AuthorizationCode { code_challenge: None, ..w.code("no-pkce", WEB_APP, SID, ALICE, FULL_SCOPE) };
    w.save_code(no_pkce.clone());
    assert_error(
        w.exchange(&code_request("no-pkce")),
        OAuthErrorCode::InvalidGrant,
        "code_verifier sent but the authorization request had no code_challenge",
    );
    // Without PKCE on either side a confidential client is fine.
    w.save_code(AuthorizationCode { code_hash: hash_secret("no-pkce-2"), ..no_pkce });
    let request = TokenRequest { code_verifier: None, ..code_request("no-pkce-2") };
    assert!(w.exchange(&request).is_ok());
    w.assert_chain_verifies();
}

#[test]
fn code_exchange_with_another_redirect_uri_fails() {
    let w = World::new();
    for (i, redirect_uri) in
        [Some("https://app.example.com/callback/"), Some("https://evil.example.com/callback"), None]
            .into_iter()
            .enumerate()
    {
        let secret = format!("redirect-code-{i}");
        w.save_code(w.code(&secret, WEB_APP, SID, ALICE, FULL_SCOPE));
        let request = TokenRequest { redirect_uri: redirect_uri.map(str::to_owned), ..code_request(&secret) };
        assert_error(
            w.exchange(&request),
            OAuthErrorCode::InvalidGrant,
            "redirect_uri does not match the authorization request",
        );
    }
    assert_eq!(w.token_events(), ["feacft"; 3]);
}

#[test]
fn an_expired_code_is_refused() {
    let w = World::new();
    let expires_at = t0() + w.settings.code_lifetime;
    for (secret, at, expired) in [
        ("late", expires_at + Duration::seconds(1), true),
        ("at-expiry", expires_at, true),
        ("just-in-time", expires_at - Duration::seconds(1), false),
    ] {
        w.save_code(w.code(secret, WEB_APP, SID, ALICE, FULL_SCOPE));
        let result = w.exchange_at(&code_request(secret), at);
        if expired {
            assert_error(result, OAuthErrorCode::InvalidGrant, "Authorization code has expired");
        } else {
            let response = result.expect("a code used before it expires works");
            assert_eq!(w.access_claims(&response.access_token, API, at).iat, at.timestamp());
        }
    }
    assert_eq!(w.token_events(), ["feacft", "feacft", "seacft"]);
}

#[test]
fn a_code_is_bound_to_its_client() {
    let w = World::new();
    w.save_code(w.code("code-1", WEB_APP, SID, ALICE, FULL_SCOPE));
    let stolen = TokenRequest { credentials: post(OTHER_APP, OTHER_SECRET), ..code_request("code-1") };
    assert_error(w.exchange(&stolen), OAuthErrorCode::InvalidGrant, "Invalid authorization code");
    // Unknown and empty codes.
    assert_error(w.exchange(&code_request("never-issued")), OAuthErrorCode::InvalidGrant, "Invalid authorization code");
    let empty = TokenRequest { code: Some(String::new()), ..code_request("") };
    assert_error(w.exchange(&empty), OAuthErrorCode::InvalidRequest, "Missing required parameter: code");
    // The machine client may not use the code grant at all.
    let machine = TokenRequest { credentials: post(M2M, M2M_SECRET), ..code_request("code-1") };
    assert_error(
        w.exchange(&machine),
        OAuthErrorCode::UnauthorizedClient,
        "Grant type 'authorization_code' not allowed for the client.",
    );
}

#[test]
fn a_public_client_exchanges_its_code_with_pkce_alone() {
    let w = World::new();
    let code = AuthorizationCode { audience: None, ..w.code("spa-code", SPA, SID, ALICE, "openid email") };
    w.save_code(code);
    let request = TokenRequest { credentials: public(SPA), ..code_request("spa-code") };
    let response = w.exchange(&request).unwrap();
    assert_eq!(response.scope, "openid email");
    assert_eq!(response.refresh_token, None, "no offline_access, no refresh token");
    let access = w.access_claims(&response.access_token, &w.settings.userinfo_audience(), t0());
    assert_eq!(access.azp, SPA);
    let id = w.id_claims(response.id_token.as_deref().unwrap(), SPA);
    assert_eq!(id["email"], ALICE_EMAIL);
    assert!(id.get("name").is_none(), "no profile scope");

    let info = userinfo(&w.ctx(t0()), &response.access_token).unwrap();
    assert_eq!(Value::Object(info), json!({ "sub": ALICE, "email": ALICE_EMAIL, "email_verified": true }));
}

#[test]
fn a_blocked_user_or_an_ended_session_gets_no_tokens() {
    let w = World::new();
    w.save_code(w.code("code-ended", WEB_APP, SID, ALICE, FULL_SCOPE));
    w.store.end_session(SID, t0() - Duration::seconds(1), audit("logout")).unwrap();
    assert_error(w.exchange(&code_request("code-ended")), OAuthErrorCode::InvalidGrant, "The session has ended");

    w.store.create_session(&hash_secret("cookie-2"), session("sid-2", ALICE), audit("login")).unwrap();
    w.save_code(w.code("code-blocked", WEB_APP, "sid-2", ALICE, FULL_SCOPE));
    let block = guise_core::user::UserPatch { blocked: Some(true), ..Default::default() };
    w.store.update_user(ALICE, block, Attribution::default(), t0(), audit("block")).unwrap();
    assert_error(w.exchange(&code_request("code-blocked")), OAuthErrorCode::InvalidGrant, "The user is blocked");
}

// ---------------------------------------------------------------- refresh token

#[test]
fn refresh_rotates_the_token_within_its_family() {
    let w = World::new();
    let first = first_exchange(&w);
    let old = first.refresh_token.clone().unwrap();
    let t1 = t0() + Duration::hours(2);

    let second = w.exchange_at(&refresh_request(&old), t1).unwrap();
    let new = second.refresh_token.clone().expect("rotation issues a successor");
    assert_ne!(new, old);
    assert_eq!(second.scope, ALICE_SCOPE);
    let access = w.access_claims(&second.access_token, API, t1);
    assert_eq!((access.iat, access.exp), (t1.timestamp(), t1.timestamp() + 3600));
    let id = w.id_claims(second.id_token.as_deref().unwrap(), WEB_APP);
    assert!(id.get("nonce").is_none(), "a refreshed ID token carries no nonce");
    assert_eq!(id["auth_time"], (t0() - Duration::minutes(5)).timestamp(), "auth_time is the login's");
    assert_eq!(id["at_hash"], id_token::at_hash(&second.access_token, "RS256"));

    let old_record = refresh_record(&w, &old);
    let new_record = refresh_record(&w, &new);
    assert_eq!(old_record.used_at, Some(t1));
    assert_eq!(new_record.family_id, old_record.family_id);
    assert_eq!(new_record.family_expires_at, old_record.family_expires_at, "rotation never extends the family");
    assert_eq!((new_record.created_at, new_record.used_at, new_record.revoked_at), (t1, None, None));
    assert_eq!(new_record.scope, old_record.scope);
    assert_eq!(new_record.code_hash, old_record.code_hash);
    let access_record = w.store.access_token_record(&access.jti).unwrap();
    assert_eq!(access_record.family_id, Some(new_record.family_id.clone()));

    let client = web_app(&w);
    assert_eq!(introspect(&w.ctx(t1), &client, &old).unwrap(), json!({ "active": false }));
    let active = introspect(&w.ctx(t1), &client, &new).unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "refresh_token");
    assert_eq!(active["exp"], (t0() + Duration::days(30)).timestamp());

    assert_eq!(w.token_events(), ["seacft", "sertft"]);
    w.assert_chain_verifies();
}

#[test]
fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let w = World::new();
    let first = first_exchange(&w);
    let old = first.refresh_token.clone().unwrap();
    let t1 = t0() + Duration::minutes(30); // both access tokens are still unexpired at t2
    let second = w.exchange_at(&refresh_request(&old), t1).unwrap();
    let new = second.refresh_token.clone().unwrap();

    let t2 = t1 + Duration::minutes(1);
    assert_error(
        w.exchange_at(&refresh_request(&old), t2),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );
    // The legitimate successor is now dead too, and so is every access token of the family.
    assert_error(
        w.exchange_at(&refresh_request(&new), t2 + Duration::seconds(1)),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );
    assert_eq!(refresh_record(&w, &new).revoked_at, Some(t2));
    for token in [&first.access_token, &second.access_token] {
        assert_eq!(w.store.access_token_record(&jti(&w, token)).unwrap().revoked_at, Some(t2));
        assert_eq!(
            verify_user_token(&w.keys, &w.settings, &w.store, token, t2),
            Err(UserInfoError::InvalidToken("The access token has been revoked".into()))
        );
    }

    assert_eq!(w.token_events(), ["seacft", "sertft", "guise_refresh_reused", "fertft", "fertft"]);
    let log = w.audit_log();
    let reused = log.iter().find(|r| r.event.event_type == "guise_refresh_reused").unwrap();
    assert_eq!(reused.event.subject.as_deref(), Some(ALICE));
    assert_eq!(reused.event.details, json!({ "family_id": refresh_record(&w, &old).family_id }));
    w.assert_chain_verifies();
}

/// A store on which a second request redeems the same code or refresh token right after
/// this one claimed it, before this one has recorded what it issues: the interleaving two
/// nodes produce when the same credential reaches both at once.
struct ReuseRightAfterClaim<'a> {
    inner: &'a guise_store::Database,
    at: DateTime<Utc>,
    /// What the winner recorded, to check afterwards that none of it is live.
    saved_refresh: std::sync::Mutex<Vec<String>>,
    saved_access: std::sync::Mutex<Vec<String>>,
}

impl<'a> ReuseRightAfterClaim<'a> {
    fn new(inner: &'a guise_store::Database, at: DateTime<Utc>) -> Self {
        Self { inner, at, saved_refresh: Default::default(), saved_access: Default::default() }
    }

    /// The refresh tokens the winner recorded, as stored now.
    fn recorded_refresh(&self) -> Vec<RefreshTokenRecord> {
        let hashes = self.saved_refresh.lock().unwrap().clone();
        hashes.iter().map(|h| self.inner.refresh_token(h).unwrap()).collect()
    }

    /// The access tokens the winner recorded, as stored now.
    fn recorded_access(&self) -> Vec<AccessTokenRecord> {
        let jtis = self.saved_access.lock().unwrap().clone();
        jtis.iter().map(|j| self.inner.access_token_record(j).unwrap()).collect()
    }
}

impl AuthorizationCodeStore for ReuseRightAfterClaim<'_> {
    fn save_code(&self, code: AuthorizationCode) -> StoreResult<()> {
        self.inner.save_code(code)
    }
    fn consume_code(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<CodeRedemption> {
        let won = self.inner.consume_code(code_hash, now)?;
        assert!(matches!(self.inner.consume_code(code_hash, self.at)?, CodeRedemption::Replayed(_)));
        Ok(won)
    }
    fn confirm_code_issue(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.inner.confirm_code_issue(code_hash, now)
    }
}

impl TokenStore for ReuseRightAfterClaim<'_> {
    fn save_refresh_token(&self, record: RefreshTokenRecord) -> StoreResult<()> {
        self.saved_refresh.lock().unwrap().push(record.token_hash.clone());
        self.inner.save_refresh_token(record)
    }
    fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshRedemption> {
        let won = self.inner.use_refresh_token(token_hash, now)?;
        assert!(matches!(self.inner.use_refresh_token(token_hash, self.at)?, RefreshRedemption::Reused(_)));
        Ok(won)
    }
    fn confirm_rotation(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.inner.confirm_rotation(token_hash, now)
    }
    fn refresh_token(&self, token_hash: &str) -> StoreResult<RefreshTokenRecord> {
        self.inner.refresh_token(token_hash)
    }
    fn revoke_refresh_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.inner.revoke_refresh_family(family_id, now)
    }
    fn record_access_token(&self, record: AccessTokenRecord) -> StoreResult<()> {
        self.saved_access.lock().unwrap().push(record.jti.clone());
        self.inner.record_access_token(record)
    }
    fn access_token_record(&self, jti: &str) -> StoreResult<AccessTokenRecord> {
        self.inner.access_token_record(jti)
    }
    fn revoke_access_token(&self, jti: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.inner.revoke_access_token(jti, now)
    }
}

#[test]
fn a_reuse_detected_while_the_winner_issues_leaves_no_live_token() {
    // The code: the replay lands between the winner's claim and its recording.
    let w = World::new();
    w.save_code(w.code("code-1", WEB_APP, SID, ALICE, FULL_SCOPE));
    let racing = ReuseRightAfterClaim::new(&w.store, t0());
    let mut ctx = w.ctx(t0());
    ctx.codes = &racing;
    ctx.tokens = &racing;
    assert_error(
        grant::exchange(&grant::handlers(), &code_request("code-1"), &ctx),
        OAuthErrorCode::InvalidGrant,
        "Invalid authorization code",
    );
    let families = racing.recorded_refresh();
    assert!(!families.is_empty(), "the winner recorded a family before confirming");
    assert!(families.iter().all(|r| r.revoked_at.is_some()), "{families:?}");
    let access = racing.recorded_access();
    assert!(!access.is_empty() && access.iter().all(|a| a.revoked_at.is_some()), "{access:?}");

    // The refresh token: the reuse lands between the rotation's claim and its recording.
    let w = World::new();
    let first = first_exchange(&w);
    let old = first.refresh_token.clone().unwrap();
    let t1 = t0() + Duration::minutes(1);
    let racing = ReuseRightAfterClaim::new(&w.store, t1);
    let mut ctx = w.ctx(t1);
    ctx.tokens = &racing;
    assert_error(
        grant::exchange(&grant::handlers(), &refresh_request(&old), &ctx),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );
    let successors = racing.recorded_refresh();
    assert_eq!(successors.len(), 1, "the rotation recorded its successor before confirming");
    assert!(successors.iter().all(|r| r.revoked_at.is_some()), "{successors:?}");
    assert!(refresh_record(&w, &old).revoked_at.is_some(), "and the family it came from is revoked");
    let first_jti = jti(&w, &first.access_token);
    assert!(w.store.access_token_record(&first_jti).unwrap().revoked_at.is_some());
    assert!(racing.recorded_access().iter().all(|a| a.revoked_at.is_some()));
}

#[test]
fn refresh_may_narrow_the_scope_but_never_widen_it() {
    let w = World::new();
    let first = first_exchange(&w);
    let token = first.refresh_token.clone().unwrap();

    // Wider: refused, and the token is not spent by the refusal.
    let wider = TokenRequest { scope: Some("openid write:admin".into()), ..refresh_request(&token) };
    assert_error(w.exchange(&wider), OAuthErrorCode::InvalidScope, "Scope 'write:admin' was not granted");
    assert_eq!(refresh_record(&w, &token).used_at, None);

    // Narrower: this access token is narrower; the family keeps what it was granted.
    let narrower = TokenRequest { scope: Some("openid".into()), ..refresh_request(&token) };
    let response = w.exchange(&narrower).unwrap();
    assert_eq!(response.scope, "openid");
    let successor = response.refresh_token.expect("the family was granted offline_access");
    assert_eq!(refresh_record(&w, &successor).scope.join(" "), FULL_SCOPE);
    let again = w.exchange(&refresh_request(&successor)).unwrap();
    assert_eq!(again.scope, ALICE_SCOPE);
}

#[test]
fn a_refresh_token_is_bound_to_its_client_and_its_family_lifetime() {
    let w = World::new();
    let first = first_exchange(&w);
    let token = first.refresh_token.clone().unwrap();

    // Another client presenting it: refused without spending it.
    let stolen = TokenRequest { credentials: post(OTHER_APP, OTHER_SECRET), ..refresh_request(&token) };
    assert_error(w.exchange(&stolen), OAuthErrorCode::InvalidGrant, "Unknown or invalid refresh token");
    assert_eq!(refresh_record(&w, &token).used_at, None);
    assert_error(
        w.exchange(&refresh_request("never-issued")),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );

    // At the family's end it is dead: refused, but not taken for a theft.
    let end = refresh_record(&w, &token).family_expires_at;
    assert_error(
        w.exchange_at(&refresh_request(&token), end),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );
    assert_eq!(refresh_record(&w, &token).revoked_at, None);
    assert!(!w.token_events().iter().any(|e| e == "guise_refresh_reused"));
    // Just before the end it still works.
    assert!(w.exchange_at(&refresh_request(&token), end - Duration::seconds(1)).is_ok());
}

#[test]
fn ending_the_session_stops_its_refresh_tokens() {
    let w = World::new();
    let first = first_exchange(&w);
    let token = first.refresh_token.clone().unwrap();
    let at = t0() + Duration::minutes(1);
    w.store.end_session(SID, at, audit("logout")).unwrap();
    assert_eq!(refresh_record(&w, &token).revoked_at, Some(at));
    assert_eq!(w.store.access_token_record(&jti(&w, &first.access_token)).unwrap().revoked_at, Some(at));
    assert_error(
        w.exchange_at(&refresh_request(&token), at + Duration::seconds(1)),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );
}

// ---------------------------------------------------------------- impersonation

/// An impersonation session of `ADMIN` as `ALICE`, opened a minute before `t0` and ending
/// (absolutely) ten minutes after it.
fn impersonation_session() -> Session {
    Session {
        created_at: t0() - Duration::minutes(1),
        auth_time: t0() - Duration::minutes(1),
        last_seen: t0() - Duration::minutes(1),
        idle_expires_at: t0() + Duration::minutes(30),
        absolute_expires_at: t0() + Duration::minutes(10),
        impersonator_id: Some(ADMIN.into()),
        impersonation_reason: Some("TICKET-42".into()),
        impersonation_minted_by: None,
        ..session(IMPERSONATION_SID, ALICE)
    }
}

#[test]
fn impersonation_tokens_name_the_impersonator_and_end_with_the_session() {
    let w = World::new();
    w.store.create_session(&hash_secret("imp-cookie"), impersonation_session(), audit("redeemed")).unwrap();
    w.save_code(w.code("imp-code", WEB_APP, IMPERSONATION_SID, ALICE, FULL_SCOPE));
    let response = w.exchange(&code_request("imp-code")).unwrap();
    let session_end = t0() + Duration::minutes(10);

    assert_eq!(response.subject.as_deref(), Some(ALICE));
    assert_eq!(response.impersonator.as_deref(), Some(ADMIN));
    assert_eq!(response.expires_in, 600, "capped at the session's end, not the hour configured");

    let impersonation = json!({
        "impersonated": true,
        "impersonator": { "user_id": ADMIN, "email": ADMIN_EMAIL },
        "act": { "sub": ADMIN },
    });
    let access = w.access_claims(&response.access_token, API, t0());
    assert_eq!(access.sub, ALICE);
    assert_eq!(access.exp, session_end.timestamp());
    for key in ["impersonated", "impersonator", "act"] {
        assert_eq!(access.extra[key], impersonation[key], "access token claim {key}");
    }
    let id = w.id_claims(response.id_token.as_deref().unwrap(), WEB_APP);
    assert_eq!(id["sub"], ALICE);
    assert_eq!(id["exp"], session_end.timestamp(), "the ID token does not outlive the session either");
    for key in ["impersonated", "impersonator", "act"] {
        assert_eq!(id[key], impersonation[key], "ID token claim {key}");
    }

    // /userinfo and introspection say so too.
    let info = userinfo(&w.ctx(t0()), &response.access_token).unwrap();
    let introspected = introspect(&w.ctx(t0()), &web_app(&w), &response.access_token).unwrap();
    for key in ["impersonated", "impersonator", "act"] {
        assert_eq!(info[key], impersonation[key], "userinfo claim {key}");
        assert_eq!(introspected[key], impersonation[key], "introspection field {key}");
    }

    // The audit event names both parties.
    let log = w.audit_log();
    let event = &log.last().unwrap().event;
    assert_eq!(event.event_type, "seacft");
    assert_eq!((event.subject.as_deref(), event.on_behalf_of.as_deref()), (Some(ALICE), Some(ADMIN)));
    assert_eq!(event.details["impersonated"], true);
    w.assert_chain_verifies();

    // Refreshing near the end gives what is left of the session, and no more.
    let token = response.refresh_token.clone().unwrap();
    let late = session_end - Duration::minutes(1);
    let refreshed = w.exchange_at(&refresh_request(&token), late).unwrap();
    assert_eq!(refreshed.expires_in, 60);
    assert_eq!(w.access_claims(&refreshed.access_token, API, late).exp, session_end.timestamp());
    // Once the session is over, nothing more is minted from it.
    let error = w
        .exchange_at(&refresh_request(&refreshed.refresh_token.unwrap()), session_end)
        .expect_err("no refresh after the impersonation session");
    assert_eq!(error.code, OAuthErrorCode::InvalidGrant, "{}", error.description);
    assert_eq!(
        access_token::verify(&w.keys, &response.access_token, ISSUER, API, session_end),
        Err(access_token::TokenRejection::Expired)
    );
}

#[test]
fn an_idle_impersonation_session_mints_nothing_more() {
    let w = World::new();
    let idle_soon = Session { idle_expires_at: t0() + Duration::minutes(2), ..impersonation_session() };
    w.store.create_session(&hash_secret("imp-cookie"), idle_soon, audit("redeemed")).unwrap();
    w.save_code(w.code("imp-code", WEB_APP, IMPERSONATION_SID, ALICE, FULL_SCOPE));
    let response = w.exchange(&code_request("imp-code")).unwrap();
    assert_error(
        w.exchange_at(&refresh_request(&response.refresh_token.unwrap()), t0() + Duration::minutes(3)),
        OAuthErrorCode::InvalidGrant,
        "The session has ended",
    );
    // An ordinary session past its idle time still refreshes (offline access).
    let first = first_exchange(&w);
    assert!(w.exchange_at(&refresh_request(&first.refresh_token.unwrap()), t0() + Duration::hours(9)).is_ok());
}

#[test]
fn blocking_the_impersonator_ends_the_session_at_the_next_refresh() {
    let w = World::new();
    w.store.create_session(&hash_secret("imp-cookie"), impersonation_session(), audit("redeemed")).unwrap();
    w.save_code(w.code("imp-code", WEB_APP, IMPERSONATION_SID, ALICE, FULL_SCOPE));
    let response = w.exchange(&code_request("imp-code")).unwrap();
    let block = UserPatch { blocked: Some(true), ..UserPatch::default() };
    w.store.update_user(ADMIN, block, Attribution::default(), t0(), audit("block")).unwrap();
    assert_error(
        w.exchange(&refresh_request(&response.refresh_token.unwrap())),
        OAuthErrorCode::InvalidGrant,
        "The impersonation has ended: The impersonator is blocked",
    );
    let ended = w.store.session_by_sid(IMPERSONATION_SID).unwrap();
    assert!(ended.ended_at.is_some(), "a broken chain ends the session");
    assert_eq!(
        introspect(&w.ctx(t0()), &web_app(&w), &response.access_token).unwrap(),
        json!({ "active": false }),
        "and revokes its tokens"
    );
}

#[test]
fn an_impersonation_refresh_token_is_not_reported_active_after_the_session() {
    // "Nothing minted in an impersonation session outlives it" (grant/issue.rs), and
    // docs/impersonation.md: "Refresh tokens die with the impersonation session". The
    // token endpoint refuses the refresh token once the session is over; introspection
    // (RFC 7662 §2.2) must not call it active, nor give it an `exp` past the session.
    let w = World::new();
    w.store.create_session(&hash_secret("imp-cookie"), impersonation_session(), audit("redeemed")).unwrap();
    w.save_code(w.code("imp-code", WEB_APP, IMPERSONATION_SID, ALICE, FULL_SCOPE));
    let response = w.exchange(&code_request("imp-code")).unwrap();
    let token = response.refresh_token.unwrap();
    let session_end = t0() + Duration::minutes(10);

    let client = web_app(&w);
    let during = introspect(&w.ctx(t0()), &client, &token).unwrap();
    assert_eq!(during["active"], true);
    assert!(
        during["exp"].as_i64().is_some_and(|exp| exp <= session_end.timestamp()),
        "an impersonation refresh token must not claim to outlive its session: exp {} > session end {}",
        during["exp"],
        session_end.timestamp()
    );
    let after = introspect(&w.ctx(session_end), &client, &token).unwrap();
    assert_eq!(after, json!({ "active": false }), "the token endpoint refuses this token now");
}

// ---------------------------------------------------------------- revocation

#[test]
fn revoking_a_refresh_token_revokes_its_family_and_access_tokens() {
    let w = World::new();
    let first = first_exchange(&w);
    let token = first.refresh_token.clone().unwrap();
    let at = t0() + Duration::minutes(3);

    let other = w.store.client_by_id(OTHER_APP).unwrap();
    assert!(!revoke(&w.keys, &w.settings, &w.store, &other, &token, at).unwrap(), "not the other client's");
    assert_eq!(refresh_record(&w, &token).revoked_at, None);

    assert!(revoke(&w.keys, &w.settings, &w.store, &web_app(&w), &token, at).unwrap());
    assert_eq!(refresh_record(&w, &token).revoked_at, Some(at));
    assert_eq!(w.store.access_token_record(&jti(&w, &first.access_token)).unwrap().revoked_at, Some(at));
    assert_error(
        w.exchange_at(&refresh_request(&token), at),
        OAuthErrorCode::InvalidGrant,
        "Unknown or invalid refresh token",
    );
}

#[test]
fn revoking_an_access_token_makes_it_inactive() {
    let w = World::new();
    let first = first_exchange(&w);
    let client = web_app(&w);
    let active = introspect(&w.ctx(t0()), &client, &first.access_token).unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], ALICE);
    assert_eq!(active["scope"], ALICE_SCOPE);
    assert!(active.get("impersonated").is_none());

    let at = t0() + Duration::minutes(1);
    assert!(revoke(&w.keys, &w.settings, &w.store, &client, &first.access_token, at).unwrap());
    assert_eq!(introspect(&w.ctx(at), &client, &first.access_token).unwrap(), json!({ "active": false }));
    assert_eq!(
        verify_user_token(&w.keys, &w.settings, &w.store, &first.access_token, at),
        Err(UserInfoError::InvalidToken("The access token has been revoked".into()))
    );
    // The refresh token (and so the family) is untouched by revoking one access token.
    assert!(w.exchange_at(&refresh_request(first.refresh_token.as_deref().unwrap()), at).is_ok());

    // Unknown tokens are not an error (RFC 7009 §2.2), and machine tokens have no record.
    assert!(!revoke(&w.keys, &w.settings, &w.store, &client, "not-a-token", at).unwrap());
    let machine = w.exchange(&client_credentials(post(M2M, M2M_SECRET), None, Some(API))).unwrap();
    let m2m = w.store.client_by_id(M2M).unwrap();
    assert!(!revoke(&w.keys, &w.settings, &w.store, &m2m, &machine.access_token, at).unwrap());
}
