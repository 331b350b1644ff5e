//! RP-initiated logout: without proof of the user or the session's client a live session
//! is only asked about; the return address must be registered.

use super::*;
use crate::authorization::current_session;
use crate::logout::{Confirmation, LogoutOutcome, LogoutRequest, rp_initiated};
use crate::session::{Browser, open};
use guise_oidc::keys::{KeyRing, generate_rs256};

fn keys() -> KeyRing {
    KeyRing::new(&[generate_rs256(t0()).unwrap()], t0()).unwrap()
}

fn refusal(outcome: Result<LogoutOutcome, FlowError>) -> RefusalKind {
    match outcome {
        Err(FlowError::Refused { kind, .. }) => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_logout_without_proof_is_asked_about_and_a_confirmed_one_ends_the_session() {
    let (w, keys) = (World::new(), keys());
    let ctx = w.ctx(t0());
    let (cookie, _) = open(&ctx, ALICE, Browser::default(), None, |_| audit("opened")).unwrap();

    let asked = rp_initiated(&ctx, &keys, LogoutRequest::default(), Some(&cookie), None).unwrap();
    assert!(matches!(asked, LogoutOutcome::Confirm { .. }), "{asked:?}");
    assert!(current_session(&ctx, Some(&cookie)).unwrap().is_some(), "asking ends nothing");

    let forged = LogoutRequest { confirmation: Confirmation::Invalid, ..LogoutRequest::default() };
    assert_eq!(refusal(rp_initiated(&ctx, &keys, forged, Some(&cookie), None)), RefusalKind::Forbidden);
    assert!(current_session(&ctx, Some(&cookie)).unwrap().is_some());

    let confirmed = LogoutRequest { confirmation: Confirmation::Valid, ..LogoutRequest::default() };
    let done = rp_initiated(&ctx, &keys, confirmed, Some(&cookie), None).unwrap();
    assert!(matches!(done, LogoutOutcome::LoggedOut), "{done:?}");
    assert!(current_session(&ctx, Some(&cookie)).unwrap().is_none(), "the session ended");
}

#[test]
fn a_logout_returns_only_to_a_registered_url_and_trusts_only_our_id_tokens() {
    let (w, keys) = (World::new(), keys());
    let ctx = w.ctx(t0());
    let (cookie, _) = open(&ctx, ALICE, Browser::default(), None, |_| audit("opened")).unwrap();
    let confirmation = Confirmation::Valid;

    let elsewhere = LogoutRequest {
        client_id: Some(APP.into()),
        post_logout_redirect_uri: Some("https://evil.example/".into()),
        confirmation,
        ..LogoutRequest::default()
    };
    assert_eq!(refusal(rp_initiated(&ctx, &keys, elsewhere, Some(&cookie), None)), RefusalKind::Invalid);
    let nameless = LogoutRequest { post_logout_redirect_uri: Some(CALLBACK.into()), ..LogoutRequest::default() };
    assert_eq!(refusal(rp_initiated(&ctx, &keys, nameless, Some(&cookie), None)), RefusalKind::Invalid);
    let forged = LogoutRequest { id_token_hint: Some("e30.e30.c2ln".into()), ..LogoutRequest::default() };
    assert_eq!(refusal(rp_initiated(&ctx, &keys, forged, Some(&cookie), None)), RefusalKind::Invalid);
    assert!(current_session(&ctx, Some(&cookie)).unwrap().is_some(), "no refusal ends the session");
}
