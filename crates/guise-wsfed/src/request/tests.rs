//! Unit tests of the WS-Federation request rules, without a server.

use super::*;
use guise_core::client::AppType;
use serde_json::json;

const REPLY: &str = "https://rp.example/signin";
const BYE: &str = "https://rp.example/bye";

fn client(id: &str, realm: Option<&str>) -> Client {
    let mut client = Client::new(id, "RP", AppType::RegularWeb, chrono::DateTime::UNIX_EPOCH);
    client.callbacks = vec![REPLY.into()];
    client.allowed_logout_urls = vec![BYE.into()];
    let wsfed = realm.map_or_else(|| json!({}), |realm| json!({ "realm": realm }));
    client.addons = json!({ "wsfed": wsfed }).as_object().cloned().unwrap_or_default();
    client
}

fn ask(client: &Client, params: WsfedParams) -> Result<WsfedRequest, Refusal> {
    let (client, settings) = relying_party(client.clone()).ok_or(Refusal::UnknownRealm)?;
    validate(&client, &settings, &params)
}

fn sign_in(wreply: Option<&str>, wfresh: Option<&str>) -> WsfedParams {
    WsfedParams {
        wa: Some("wsignin1.0".into()),
        wreply: wreply.map(str::to_owned),
        wfresh: wfresh.map(str::to_owned),
        ..WsfedParams::default()
    }
}

fn pending(result: Result<WsfedRequest, Refusal>) -> PendingAuthorization {
    match result {
        Ok(WsfedRequest::SignIn(pending)) => *pending,
        other => panic!("expected a sign-in, got {other:?}"),
    }
}

#[test]
fn an_unregistered_wreply_is_refused_for_sign_in_and_sign_out() {
    let rp = client("c1", None);
    assert_eq!(ask(&rp, sign_in(Some("https://evil.example/"), None)), Err(Refusal::UnregisteredReply));
    let sign_out = |reply: &str| WsfedParams {
        wa: Some("wsignout1.0".into()),
        wreply: Some(reply.into()),
        ..WsfedParams::default()
    };
    assert_eq!(ask(&rp, sign_out("https://evil.example/")), Err(Refusal::UnregisteredSignOutReply));
    assert_eq!(ask(&rp, sign_out(BYE)), Ok(WsfedRequest::SignOut { reply: Some(BYE.into()) }));
    // No wreply: the first registered callback; none registered, nowhere to answer.
    let PendingProtocol::Wsfed(wsfed) = pending(ask(&rp, sign_in(None, None))).protocol else { panic!("WS-Fed") };
    assert_eq!((wsfed.reply.as_str(), wsfed.realm.as_str()), (REPLY, "c1"));
    let bare = Client { callbacks: vec![], ..rp.clone() };
    assert_eq!(ask(&bare, sign_in(None, None)), Err(Refusal::NoCallback));
}

#[test]
fn wfresh_zero_forces_a_login_and_minutes_cap_its_age() {
    let rp = client("c1", None);
    let fresh = pending(ask(&rp, sign_in(Some(REPLY), Some("0"))));
    assert_eq!((fresh.prompt, fresh.max_age), (vec!["login".to_owned()], None));
    let recent = pending(ask(&rp, sign_in(Some(REPLY), Some("5"))));
    assert_eq!((recent.prompt.is_empty(), recent.max_age), (true, Some(300)));
    let any = pending(ask(&rp, sign_in(Some(REPLY), None)));
    assert_eq!((any.prompt.is_empty(), any.max_age), (true, None));
    for bad in ["-1", "soon", ""] {
        assert_eq!(ask(&rp, sign_in(Some(REPLY), Some(bad))), Err(Refusal::BadFreshness), "{bad}");
    }
}

#[test]
fn the_realm_names_a_relying_party_or_nothing() {
    let clients = || vec![client("plain", None), client("first", Some("urn:rp")), client("second", Some("urn:rp"))];
    assert_eq!(by_realm(clients(), "urn:unknown").err(), Some(Refusal::UnknownRealm));
    assert_eq!(by_realm(clients(), "urn:rp").map(|(c, _)| c.client_id), Ok("first".into()));
    assert_eq!(by_realm(clients(), "plain").map(|(c, _)| c.client_id), Ok("plain".into()));
    let no_wsfed = Client { addons: Default::default(), ..client("x", None) };
    assert_eq!(by_realm(vec![no_wsfed.clone()], "x").err(), Some(Refusal::UnknownRealm));
    assert!(relying_party(no_wsfed).is_none());
    // At a client's own endpoint, a wtrealm must be its realm.
    let other_realm = WsfedParams { wtrealm: Some("urn:other".into()), ..sign_in(Some(REPLY), None) };
    assert_eq!(ask(&client("c1", Some("urn:rp")), other_realm), Err(Refusal::RealmMismatch));
}

#[test]
fn actions_and_lengths_are_checked() {
    let rp = client("c1", None);
    assert_eq!(ask(&rp, WsfedParams::default()), Err(Refusal::MissingAction));
    let attribute = WsfedParams { wa: Some("wattr1.0".into()), ..WsfedParams::default() };
    assert_eq!(ask(&rp, attribute), Err(Refusal::UnsupportedAction));
    let long = WsfedParams { wctx: Some("x".repeat(MAX_PARAM + 1)), ..sign_in(None, None) };
    assert_eq!(long.check_lengths(), Err(Refusal::TooLong));
    let longest = WsfedParams { wctx: Some("x".repeat(MAX_PARAM)), ..sign_in(None, None) };
    assert_eq!(longest.check_lengths(), Ok(()));
}
