//! The flows without a server, on the real store over a temporary SQLite file, at a
//! fixed `now`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::delivery::Delivery;
use crate::impersonation::{MintRequest, Minter, mint, redeem};
use crate::{FlowContext, FlowError, Policies};
use chrono::{DateTime, Duration, Utc};
use guise_core::audit::{AuditRecord, event_type};
use guise_core::client::{AppType, Client, ClientPatch};
use guise_core::impersonation::ImpersonationPolicy;
use guise_core::refusal::RefusalKind;
use guise_core::session::SessionLifetimes;
use guise_core::store::{ClientStore, SessionStore, UserStore};
use guise_core::throttle::ThrottlePolicy;
use guise_core::user::NewUser;
use guise_oidc::OidcSettings;
use guise_oidc::grant::hash_secret;
use guise_store::Database;
use guise_store::testing::*;

/// The app that accepts impersonation (the first-party `WEB_APP`).
pub const APP: &str = WEB_APP;
pub const CLOSED_APP: &str = "closedappclient000000000000000B";
pub const THIRD_PARTY: &str = "thirdpartyclient00000000000000C";

/// A tenant on a fresh SQLite file: `guise_store::testing`'s Alice and support agent, and
/// - `APP`: a confidential first-party web app that accepts impersonation;
/// - `CLOSED_APP`: the same, without `allow_impersonation`;
/// - `THIRD_PARTY`: a third-party app that accepts impersonation.
pub struct World {
    pub store: Database,
    pub settings: OidcSettings,
    _dir: TempDir,
}

impl World {
    pub fn new() -> Self {
        let (store, dir) = temporary_database();
        let world = World { settings: OidcSettings::new(ISSUER, Duration::hours(1)), store, _dir: dir };
        let s = &world.store;
        for (id, allow_impersonation, is_first_party) in
            [(APP, true, true), (CLOSED_APP, false, true), (THIRD_PARTY, true, false)]
        {
            let app =
                Client { allow_impersonation, is_first_party, ..client(id, AppType::RegularWeb, Some(WEB_SECRET)) };
            s.create_client(app, audit("client")).expect("client created");
        }
        add_alice_and_admin(s);
        make_admin_support(s, &world.settings.management_audience());
        crate::bewit_keys::ensure(s, t0()).expect("a bewit key");
        world
    }

    pub fn ctx(&self, now: DateTime<Utc>) -> FlowContext<'_> {
        FlowContext {
            store: &self.store,
            settings: &self.settings,
            xml_signer: None,
            bewit_key: None,
            policies: Policies {
                impersonation: ImpersonationPolicy {
                    default_url_ttl: Duration::seconds(120),
                    max_url_ttl: Duration::seconds(600),
                    session_lifetime: Duration::seconds(3600),
                    require_reason: false,
                },
                throttle: ThrottlePolicy {
                    max_failures: 3,
                    window: Duration::minutes(15),
                    lockout: Duration::minutes(15),
                },
                sessions: SessionLifetimes { idle: Duration::minutes(30), absolute: Duration::hours(8) },
            },
            now,
        }
    }

    /// Event types appended after the setup's own events, oldest first.
    pub fn events(&self) -> Vec<AuditRecord> {
        let setup = ["sapi", event_type::BEWIT_KEY_ROTATED];
        audit_log(&self.store).into_iter().filter(|r| !setup.contains(&r.event.event_type.as_str())).collect()
    }
}

fn mint_request(client_id: &str) -> MintRequest {
    MintRequest {
        target_user_id: ALICE.into(),
        impersonator_id: Some(ADMIN.into()),
        client_id: client_id.into(),
        protocol: "oauth2".into(),
        reason: Some("ticket 42".into()),
        state: Some("xyz".into()),
        ..MintRequest::default()
    }
}

/// The path and query of a minted URL, as the browser requests it.
fn path_and_query(url: &str) -> String {
    let url = url::Url::parse(url).expect("a URL");
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

mod caller;
mod logout;

mod impersonation {
    use super::*;

    #[test]
    fn a_bewit_url_is_redeemed_once_into_an_impersonation_session() {
        let w = World::new();
        let url = mint(&w.ctx(t0()), Minter::Operator, true, mint_request(APP), None, None).unwrap();
        let at = t0() + Duration::seconds(5);

        let redeemed = redeem(&w.ctx(at), &path_and_query(&url), Some("192.0.2.1".into()), None).unwrap();
        let Delivery::Redirect(location) = &redeemed.delivery else { panic!("a redirect: {:?}", redeemed.delivery) };
        assert!(location.starts_with(&format!("{CALLBACK}?code=")), "{location}");
        assert!(location.contains("state=xyz"), "{location}");
        let session = w.store.session_by_cookie_hash(&hash_secret(&redeemed.cookie)).unwrap();
        assert_eq!(session.user_id, ALICE);
        assert_eq!(session.impersonator_id.as_deref(), Some(ADMIN));
        assert_eq!(session.impersonation_reason.as_deref(), Some("ticket 42"));
        assert_eq!(session.absolute_expires_at, at + Duration::seconds(3600));
        assert_eq!(session.idle_expires_at, at + Duration::minutes(30));

        // The same URL again, even a second later, is refused and audited as a replay.
        let again = redeem(&w.ctx(at + Duration::seconds(1)), &path_and_query(&url), None, None).unwrap_err();
        assert!(
            matches!(&again, FlowError::Refused { kind: RefusalKind::Unauthenticated, message } if message == "Bewit already used"),
            "{again:?}"
        );
        let events: Vec<(String, Option<String>)> = w
            .events()
            .into_iter()
            .map(|r| (r.event.event_type, r.event.details.get("reason").and_then(|v| v.as_str()).map(str::to_owned)))
            .collect();
        let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        let expected =
            [event_type::IMPERSONATION_MINTED, event_type::IMPERSONATION_REDEEMED, event_type::IMPERSONATION_REFUSED];
        assert_eq!(kinds, expected, "{events:?}");
        assert_eq!(events[2].1.as_deref(), Some("replayed"));
    }

    #[test]
    fn a_tampered_or_expired_url_opens_no_session() {
        let w = World::new();
        let url = mint(&w.ctx(t0()), Minter::Operator, true, mint_request(APP), None, None).unwrap();
        let tampered = path_and_query(&url).replace("state=xyz", "state=abc");
        let refused = redeem(&w.ctx(t0()), &tampered, None, None).unwrap_err();
        assert!(matches!(refused, FlowError::Refused { kind: RefusalKind::Unauthenticated, .. }), "{refused:?}");
        let late = redeem(&w.ctx(t0() + Duration::seconds(121)), &path_and_query(&url), None, None).unwrap_err();
        assert!(matches!(late, FlowError::Refused { kind: RefusalKind::Unauthenticated, .. }), "{late:?}");
        // Neither attempt spent the URL.
        redeem(&w.ctx(t0() + Duration::seconds(60)), &path_and_query(&url), None, None).unwrap();
    }

    #[test]
    fn impersonation_needs_allow_impersonation_on_the_client() {
        let w = World::new();
        let refused = mint(&w.ctx(t0()), Minter::Operator, true, mint_request(CLOSED_APP), None, None).unwrap_err();
        assert!(
            matches!(&refused, FlowError::Refused { kind: RefusalKind::Forbidden, message } if message.contains("allow_impersonation")),
            "{refused:?}"
        );
        // A URL minted while the client allowed it is refused once the client no longer does.
        let url = mint(&w.ctx(t0()), Minter::Operator, true, mint_request(APP), None, None).unwrap();
        let patch = ClientPatch { allow_impersonation: Some(false), ..ClientPatch::default() };
        w.store.update_client(APP, patch, t0(), audit("closed")).unwrap();
        let refused = redeem(&w.ctx(t0()), &path_and_query(&url), None, None).unwrap_err();
        assert!(matches!(refused, FlowError::Refused { kind: RefusalKind::Forbidden, .. }), "{refused:?}");
        let refusals =
            w.events().into_iter().filter(|r| r.event.event_type == event_type::IMPERSONATION_REFUSED).count();
        assert_eq!(refusals, 2);
    }

    #[test]
    fn a_configured_key_signs_and_verifies_without_the_database() {
        let w = World::new();
        let key = crate::bewit_keys::configured(Some("cfg"), Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="))
            .unwrap()
            .unwrap();
        let ctx = FlowContext { bewit_key: Some(&key), ..w.ctx(t0()) };
        let url = mint(&ctx, Minter::Operator, true, mint_request(APP), None, None).unwrap();
        assert!(url.contains("bewit="), "{url}");
        redeem(&ctx, &path_and_query(&url), None, None).unwrap();
        assert!(crate::bewit_keys::configured(Some("cfg"), None).is_err());
        assert!(crate::bewit_keys::configured(Some("cfg"), Some("c2hvcnQ=")).is_err());
    }
}

mod authorization {
    use super::*;
    use crate::authorization::{FlowOutcome, begin, continue_authorization};
    use crate::session::{Browser, Impersonated, open};
    use guise_core::authorization::{PendingAuthorization, PendingOidc, PendingProtocol};
    use guise_core::store::ConsentStore;

    fn oidc_request(client_id: &str) -> PendingAuthorization {
        PendingAuthorization {
            client_id: client_id.into(),
            prompt: vec![],
            max_age: None,
            protocol: PendingProtocol::Oidc(PendingOidc {
                redirect_uri: CALLBACK.into(),
                scope: vec!["openid".into(), "profile".into()],
                state: Some("st".into()),
                nonce: None,
                code_challenge: None,
                audience: None,
                login_hint: None,
                response_mode: "query".into(),
            }),
        }
    }

    /// A 30-minute session of `ADMIN` impersonating `ALICE`.
    fn admin_as_alice(ctx: &FlowContext<'_>) -> guise_core::session::Session {
        let impersonated = Impersonated {
            impersonator_id: ADMIN.into(),
            reason: None,
            minted_by: None,
            lifetime: Duration::minutes(30),
        };
        open(ctx, ALICE, Browser::default(), Some(impersonated), |_| audit("opened")).unwrap().1
    }

    fn param<'a>(outcome: &'a FlowOutcome, name: &str) -> Option<&'a str> {
        match outcome {
            FlowOutcome::Deliver { params, .. } => params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    #[test]
    fn no_consent_is_given_or_recorded_in_an_impersonation_session() {
        let w = World::new();
        let ctx = w.ctx(t0());
        let session = admin_as_alice(&ctx);

        // A third-party client needs consent: an impersonation cannot give it, even when
        // the caller claims it was given just now.
        for given_now in [false, true] {
            let record = begin(&ctx, oidc_request(THIRD_PARTY)).unwrap();
            let outcome = continue_authorization(&ctx, &record, Some(&session), given_now).unwrap();
            assert_eq!(param(&outcome, "error"), Some("consent_required"), "{outcome:?}");
            assert_eq!(param(&outcome, "code"), None);
        }
        assert_eq!(w.store.consented_scopes(ALICE, THIRD_PARTY).unwrap(), None);

        // The user's own session is asked for consent instead.
        let (_, own) = open(&ctx, ALICE, Browser::default(), None, |_| audit("login")).unwrap();
        let record = begin(&ctx, oidc_request(THIRD_PARTY)).unwrap();
        let outcome = continue_authorization(&ctx, &record, Some(&own), false).unwrap();
        assert_eq!(outcome, FlowOutcome::Page(format!("/consent?tx={}", record.id)));

        // A first-party client needs none: the impersonation gets its code.
        let record = begin(&ctx, oidc_request(APP)).unwrap();
        let outcome = continue_authorization(&ctx, &record, Some(&session), false).unwrap();
        assert!(param(&outcome, "code").is_some(), "{outcome:?}");
        assert_eq!(param(&outcome, "state"), Some("st"));
    }

    #[test]
    fn an_impersonation_session_reaches_only_clients_that_allow_impersonation() {
        let w = World::new();
        let ctx = w.ctx(t0());
        let session = admin_as_alice(&ctx);
        let record = begin(&ctx, oidc_request(CLOSED_APP)).unwrap();
        let outcome = continue_authorization(&ctx, &record, Some(&session), false).unwrap();
        assert_eq!(param(&outcome, "error"), Some("access_denied"), "{outcome:?}");
    }
}

mod login {
    use super::*;
    use crate::login::{Attempt, LoginOutcome, authenticate};
    use crate::session::Browser;
    use guise_store::password::{hash_password, verify_password};

    const BOB: &str = "guise|b0b00000000000000000000000";
    const BOB_EMAIL: &str = "bob@example.com";

    fn attempt<'a>(identifier: &'a str, password: &'a str, ip: &str) -> Attempt<'a> {
        Attempt {
            client_id: APP,
            identifier,
            password,
            browser: Browser { source_ip: Some(ip.into()), user_agent: None },
        }
    }

    fn with_bob() -> World {
        let w = World::new();
        let bob = NewUser {
            password_hash: Some(hash_password("correct horse battery").unwrap()),
            ..NewUser::new(BOB, BOB_EMAIL, t0() - Duration::days(1))
        };
        w.store.create_user(bob, audit("bob")).unwrap();
        w
    }

    #[test]
    fn repeated_failures_lock_the_account_until_the_lockout_ends() {
        let w = with_bob();
        let ctx = w.ctx(t0());
        // Three wrong passwords, from three addresses: the account locks on the third.
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            let outcome = authenticate(&ctx, attempt(BOB_EMAIL, "wrong", ip), &verify_password).unwrap();
            assert!(matches!(outcome, LoginOutcome::Failed { .. }), "{outcome:?}");
        }
        // Now even the right password is refused, before it is checked.
        let outcome = authenticate(&ctx, attempt(BOB_EMAIL, "correct horse battery", "192.0.2.4"), &verify_password);
        assert!(matches!(outcome, Ok(LoginOutcome::LockedOut { .. })), "{outcome:?}");
        let kinds: Vec<String> = w.events().into_iter().map(|r| r.event.event_type).collect();
        assert_eq!(kinds.iter().filter(|k| *k == event_type::ACCOUNT_LOCKED).count(), 1, "{kinds:?}");
        assert_eq!(kinds.last().map(String::as_str), Some(event_type::FAILED_LOGIN));

        // After the lockout the right password logs in and clears the counter.
        let later = w.ctx(t0() + Duration::minutes(16));
        let outcome = authenticate(&later, attempt(BOB_EMAIL, "correct horse battery", "192.0.2.4"), &verify_password);
        let Ok(LoginOutcome::LoggedIn { cookie, session }) = outcome else { panic!("logged in: {outcome:?}") };
        assert_eq!(session.user_id, BOB);
        assert_eq!(w.store.session_by_cookie_hash(&hash_secret(&cookie)).unwrap().sid, session.sid);
        let outcome = authenticate(&later, attempt(BOB_EMAIL, "wrong", "192.0.2.5"), &verify_password).unwrap();
        assert!(matches!(outcome, LoginOutcome::Failed { .. }), "{outcome:?}");
    }

    #[test]
    fn one_address_failing_on_many_accounts_is_locked_out() {
        let w = with_bob();
        let ctx = w.ctx(t0());
        for identifier in ["nobody@example.com", "someone", ALICE_EMAIL] {
            let outcome = authenticate(&ctx, attempt(identifier, "guess", "198.51.100.7"), &verify_password).unwrap();
            assert!(matches!(outcome, LoginOutcome::Failed { .. }), "{outcome:?}");
        }
        let outcome = authenticate(&ctx, attempt(BOB_EMAIL, "correct horse battery", "198.51.100.7"), &verify_password);
        assert!(matches!(outcome, Ok(LoginOutcome::LockedOut { .. })), "{outcome:?}");
        let outcome = authenticate(&ctx, attempt(BOB_EMAIL, "correct horse battery", "198.51.100.8"), &verify_password);
        assert!(matches!(outcome, Ok(LoginOutcome::LoggedIn { .. })), "{outcome:?}");
    }
}
