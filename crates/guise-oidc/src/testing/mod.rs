//! Unit tests of the protocol against the real store over a temporary SQLite file: no
//! server, and time fixed by the test. (The store's own rules are tested on SQLite and
//! PostgreSQL by the contract suite in `crates/guise-store/tests/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tests_authorize;
mod tests_token;

use crate::OidcSettings;
use crate::access_token::{self, AccessTokenClaims};
use crate::client_auth::ClientCredentials;
use crate::error::OAuthError;
use crate::grant::{self, TokenContext, TokenRequest, TokenResponse, hash_secret};
use crate::keys::{KeyRing, generate_rs256};
use chrono::{DateTime, Duration, Utc};
use guise_core::audit::{Actor, AuditRecord};
use guise_core::authorization::AuthorizationCode;
use guise_core::client::{AppType, Client};
use guise_core::session::Session;
use guise_core::signing_key::SigningKey;
use guise_core::store::{AuthorizationCodeStore, ClientStore};
use guise_store::Database;
pub use guise_store::testing::*;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// RFC 7636 appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const NONCE: &str = "n-0S6_WzA2Mj";
pub const IMPERSONATION_SID: &str = "sid-impersonation";

/// One RSA key for every test: generating one takes a while.
fn signing_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| generate_rs256(t0()).expect("an RSA key")).clone()
}

pub fn post(client_id: &str, secret: &str) -> Option<ClientCredentials> {
    Some(ClientCredentials::Post { client_id: client_id.to_owned(), client_secret: secret.to_owned() })
}

pub fn basic(client_id: &str, secret: &str) -> Option<ClientCredentials> {
    Some(ClientCredentials::Basic { client_id: client_id.to_owned(), client_secret: secret.to_owned() })
}

pub fn public(client_id: &str) -> Option<ClientCredentials> {
    Some(ClientCredentials::Public { client_id: client_id.to_owned() })
}

/// A tenant: clients, users, a role, sessions, signing keys and settings.
pub struct World {
    pub store: Database,
    pub settings: OidcSettings,
    pub keys: KeyRing,
    /// Holds the database file until the world is dropped.
    _dir: TempDir,
}

impl World {
    /// The tenant of `guise_store::testing` (`add_clients`, `add_alice_and_admin`), with
    /// `ADMIN` a support agent (`make_admin_support`) who has no session of its own.
    pub fn new() -> Self {
        let (store, dir) = temporary_database();
        let world = World {
            settings: OidcSettings::new(ISSUER, Duration::hours(1)),
            keys: KeyRing::new(&[signing_key()], t0()).expect("a key ring"),
            store,
            _dir: dir,
        };
        add_clients(&world.store);
        add_alice_and_admin(&world.store);
        make_admin_support(&world.store, &world.settings.management_audience());
        world
    }

    pub fn ctx(&self, now: DateTime<Utc>) -> TokenContext<'_> {
        TokenContext {
            settings: &self.settings,
            keys: &self.keys,
            clients: &self.store,
            client_grants: &self.store,
            audit: &self.store,
            users: &self.store,
            roles: &self.store,
            sessions: &self.store,
            codes: &self.store,
            tokens: &self.store,
            now,
        }
    }

    /// The token endpoint at `now`.
    pub fn exchange_at(&self, request: &TokenRequest, now: DateTime<Utc>) -> Result<TokenResponse, OAuthError> {
        grant::exchange(&grant::handlers(), request, &self.ctx(now))
    }

    pub fn exchange(&self, request: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        self.exchange_at(request, t0())
    }

    /// A code as `/authorize` would have saved it for `client_id`, with PKCE (appendix B),
    /// a nonce, and a 60 s lifetime from `t0`.
    pub fn code(&self, secret: &str, client_id: &str, sid: &str, user_id: &str, scope: &str) -> AuthorizationCode {
        AuthorizationCode {
            nonce: Some(NONCE.to_owned()),
            code_challenge: Some(CHALLENGE.to_owned()),
            expires_at: t0() + self.settings.code_lifetime,
            ..code(secret, client_id, sid, user_id, scope)
        }
    }

    pub fn save_code(&self, code: AuthorizationCode) {
        self.store.save_code(code).expect("code saved");
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Vec<AuditRecord> {
        audit_log(&self.store)
    }

    /// Event types appended after the setup's own events.
    pub fn token_events(&self) -> Vec<String> {
        self.audit_log().into_iter().filter(|r| r.event.event_type != "sapi").map(|r| r.event.event_type).collect()
    }

    pub fn assert_chain_verifies(&self) {
        assert_chain_verifies(&self.store);
    }

    /// Verify an access token as a resource server for `audience` would, at `now`.
    pub fn access_claims(&self, token: &str, audience: &str, now: DateTime<Utc>) -> AccessTokenClaims {
        access_token::verify(&self.keys, token, ISSUER, audience, now).expect("a valid access token")
    }

    /// Verify an ID token's signature, issuer and audience; return its claims.
    pub fn id_claims(&self, token: &str, client_id: &str) -> Map<String, Value> {
        let header = jsonwebtoken::decode_header(token).expect("a JWT header");
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let (alg, key) = self.keys.verifier(header.kid.as_deref().expect("a kid")).expect("a published kid");
        let mut validation = jsonwebtoken::Validation::new(*alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[client_id]);
        // Expiry is checked by the tests against their fixed time, not the wall clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).expect("a valid ID token").claims
    }
}

/// A code-grant token request for `WEB_APP` with the right redirect URI and verifier.
pub fn code_request(code: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "authorization_code".into(),
        credentials: post(WEB_APP, WEB_SECRET),
        code: Some(code.to_owned()),
        redirect_uri: Some(CALLBACK.to_owned()),
        code_verifier: Some(VERIFIER.to_owned()),
        source_ip: Some("198.51.100.7".into()),
        ..TokenRequest::default()
    }
}

pub fn refresh_request(refresh_token: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "refresh_token".into(),
        credentials: post(WEB_APP, WEB_SECRET),
        refresh_token: Some(refresh_token.to_owned()),
        ..TokenRequest::default()
    }
}
