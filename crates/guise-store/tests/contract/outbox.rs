//! The outbox's contract: deliveries are made by the write that causes them (and roll
//! back with it), one claim at a time across connections, retried and given up as told.

use crate::fixture::*;
use chrono::Duration;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::client::ClientPatch;
use guise_core::outbox::{AttemptOutcome, DeliveryFilter, DeliveryKind, DeliveryStatus, Webhook, WebhookPatch, event};
use guise_core::page::PageRequest;
use guise_core::store::{
    AuditStore, AuthorizationCodeStore, ClientStore, OutboxStore, SessionStore, UserStore, WebhookStore,
};
use guise_core::user::{Attribution, UserPatch};
use guise_store::Backend;

fn webhook(id: &str, types: &[&str]) -> Webhook {
    Webhook {
        id: id.into(),
        url: "https://hooks.example.com/guise".into(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        description: String::new(),
        enabled: true,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn all(s: &guise_store::Database, target: Option<&str>) -> Vec<guise_core::outbox::Delivery> {
    let filter = DeliveryFilter { target: target.map(str::to_owned), ..DeliveryFilter::default() };
    s.deliveries(&filter, PageRequest::new(None, Some(100))).unwrap().items
}

pub fn events_are_delivered_to_the_webhooks_that_want_them_in_their_transaction(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    s.create_webhook(webhook("wh_all", &[]), audit("hook")).unwrap();
    s.create_webhook(webhook("wh_blocked", &[event::USER_BLOCKED]), audit("hook")).unwrap();
    let mut off = webhook("wh_off", &[]);
    off.enabled = false;
    s.create_webhook(off, audit("hook")).unwrap();
    assert!(all(s, None).is_empty(), "creating webhooks tells nobody");

    // An impersonation refused: both people named, to the webhook of every event.
    let mut refused = AuditEvent::new(event_type::IMPERSONATION_REFUSED, t0(), Actor::User(ADMIN.into()), "refused")
        .subject(ALICE)
        .client(WEB_APP)
        .details(serde_json::json!({ "reason": "INC-7" }));
    refused.on_behalf_of = Some(ADMIN.into());
    let records = s.append(vec![refused]).unwrap();
    let sent = all(s, None);
    assert_eq!(sent.len(), 1);
    let d = &sent[0];
    assert_eq!(
        (d.kind, d.target.as_str(), d.event_type.as_str()),
        (DeliveryKind::Webhook, "wh_all", event::IMPERSONATION_REFUSED)
    );
    assert_eq!(d.audit_seq, Some(records[0].seq));
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(d.payload["type"], event::IMPERSONATION_REFUSED);
    assert_eq!(d.payload["data"]["actor"]["email"], "support@example.com");
    assert_eq!(d.payload["data"]["user"]["email"], "alice@example.com");
    assert_eq!(d.payload["data"]["reason"], "INC-7");

    // Blocking a user: the update's event says so, the subscribed webhooks hear it,
    // and a blocked-again update (no change) says nothing.
    let block = UserPatch { blocked: Some(true), ..UserPatch::default() };
    s.update_user(ALICE, block.clone(), Attribution::default(), t0(), audit("block")).unwrap();
    let last = w.audit_log().pop().unwrap();
    assert_eq!(last.event.details["user_blocked"], true);
    assert_eq!(all(s, Some("wh_blocked")).len(), 1);
    assert_eq!(all(s, Some("wh_all")).iter().filter(|d| d.event_type == event::USER_BLOCKED).count(), 1);
    s.update_user(ALICE, block, Attribution::default(), t0(), audit("block again")).unwrap();
    assert_eq!(all(s, Some("wh_blocked")).len(), 1);
    assert!(all(s, Some("wh_off")).is_empty(), "a disabled webhook is sent nothing");

    // A write that fails leaves no delivery behind.
    let before = all(s, None).len();
    let bad = AuditEvent::new(event_type::IMPERSONATION_REDEEMED, t0(), Actor::User(ADMIN.into()), "x").subject(ALICE);
    assert!(
        s.create_session(&hash_secret("alice-cookie"), session("sid-other", ALICE), bad).is_err(),
        "the cookie is taken"
    );
    assert_eq!(all(s, None).len(), before);
    w.assert_chain_verifies();

    // Deleting a webhook drops what it was still owed.
    s.delete_webhook("wh_blocked", audit("unhook")).unwrap();
    assert!(all(s, Some("wh_blocked")).is_empty());
    s.update_webhook("wh_all", WebhookPatch { enabled: Some(false), ..WebhookPatch::default() }, t0(), audit("off"))
        .unwrap();
    assert!(!s.webhook("wh_all").unwrap().enabled);
}

pub fn one_claim_at_a_time_with_retries_and_giving_up(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    s.create_webhook(webhook("wh", &[]), audit("hook")).unwrap();
    let event = AuditEvent::new(event_type::ACT_AS, t0(), Actor::User(ADMIN.into()), "acted").subject(ALICE);
    s.append(vec![event.clone(), event]).unwrap();
    let lease = t0() + Duration::seconds(30);

    // Two claims get two different deliveries; a third finds nothing due.
    let first = s.claim_delivery(t0(), lease).unwrap().expect("one is due");
    let second = s.claim_delivery(t0(), lease).unwrap().expect("the other is due");
    assert_ne!(first.id, second.id);
    assert_eq!((first.attempts, second.attempts), (1, 1));
    assert!(s.claim_delivery(t0(), lease).unwrap().is_none(), "both are leased");

    // Delivered stays delivered; a failure is retried when due, then given up.
    s.record_attempt(&first.id, &AttemptOutcome::Delivered, None, t0()).unwrap();
    let retry_at = t0() + Duration::seconds(5);
    s.record_attempt(&second.id, &AttemptOutcome::Failed("HTTP 500".into()), Some(retry_at), t0()).unwrap();
    assert!(s.claim_delivery(t0() + Duration::seconds(4), lease).unwrap().is_none(), "not due yet");
    let again = s.claim_delivery(retry_at, lease).unwrap().expect("due again");
    assert_eq!((again.id.as_str(), again.attempts), (second.id.as_str(), 2));
    assert_eq!(again.last_error.as_deref(), Some("HTTP 500"));
    s.record_attempt(&again.id, &AttemptOutcome::Failed("timed out".into()), None, retry_at).unwrap();
    assert_eq!(s.delivery(&second.id).unwrap().status, DeliveryStatus::Failed);
    assert!(s.claim_delivery(t0() + Duration::days(1), t0() + Duration::days(2)).unwrap().is_none());

    // A lease that runs out (its node died mid-attempt) frees the delivery.
    s.retry_delivery(&second.id, t0(), audit("retry")).unwrap();
    let taken = s.claim_delivery(t0(), t0() + Duration::seconds(10)).unwrap().expect("due after the retry");
    assert_eq!(taken.attempts, 1, "a retry starts the count again");
    assert!(s.claim_delivery(t0() + Duration::seconds(9), lease).unwrap().is_none());
    assert!(s.claim_delivery(t0() + Duration::seconds(11), lease).unwrap().is_some(), "the lease ran out");

    // A delivered message is not retried.
    assert!(matches!(s.retry_delivery(&first.id, t0(), audit("retry")), Err(guise_core::StoreError::Conflict(_))));
    assert!(matches!(s.retry_delivery("msg_unknown", t0(), audit("retry")), Err(guise_core::StoreError::NotFound)));
    w.assert_chain_verifies();
}

pub fn ending_a_session_queues_a_logout_for_each_client_it_logged_into(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let rp = ClientPatch {
        backchannel_logout_uri: Some(Some("https://app.example.com/backchannel".into())),
        backchannel_logout_session_required: Some(true),
        ..ClientPatch::default()
    };
    s.update_client(WEB_APP, rp, t0(), audit("rp")).unwrap();
    // The session logged into WEB_APP twice and OTHER_APP (no back-channel URI) once.
    s.save_code(code("c1", WEB_APP, SID, ALICE, "openid")).unwrap();
    s.save_code(code("c2", WEB_APP, SID, ALICE, "openid")).unwrap();
    s.save_code(code("c3", OTHER_APP, SID, ALICE, "openid")).unwrap();
    s.end_session(SID, t0(), audit("logout")).unwrap();
    let logouts = all(s, Some(WEB_APP));
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].kind, DeliveryKind::BackchannelLogout);
    // The session and its user, nothing read again at send time (the URI, whether the
    // client requires the sid).
    assert_eq!(logouts[0].payload, serde_json::json!({ "sub": ALICE, "sid": SID }));
    assert!(all(s, Some(OTHER_APP)).is_empty());

    // Blocking ends every session of the user, with the same logouts.
    s.create_session(&hash_secret("second"), session("sid-2", ALICE), audit("login")).unwrap();
    s.save_code(code("c4", WEB_APP, "sid-2", ALICE, "openid")).unwrap();
    let block = UserPatch { blocked: Some(true), ..UserPatch::default() };
    s.update_user(ALICE, block, Attribution::default(), t0(), audit("block")).unwrap();
    let logouts = all(s, Some(WEB_APP));
    assert_eq!(logouts.len(), 2);
    assert!(logouts.iter().any(|d| d.payload["sid"] == "sid-2"));
}

pub fn claims_racing_from_several_connections_never_share_a_delivery(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    s.create_webhook(webhook("wh", &[]), audit("hook")).unwrap();
    let event = AuditEvent::new(event_type::ACT_AS, t0(), Actor::User(ADMIN.into()), "acted").subject(ALICE);
    s.append(vec![event; 24]).unwrap();
    let claimed: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while let Some(d) = s.claim_delivery(t0(), t0() + Duration::minutes(1)).unwrap() {
                        mine.push(d.id);
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut unique = claimed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((claimed.len(), unique.len()), (24, 24), "each delivery claimed exactly once");
}

pub fn expired_sessions_with_someone_to_tell_are_ended_once(backend: Backend) {
    use guise_core::client::{AppType, Client};
    const SP: &str = "samlspclient00000000000000000000E";
    let w = Tenant::new(backend);
    let s = &w.db;
    let mut sp = Client::new(SP, "SAML SP", AppType::RegularWeb, t0());
    sp.addons = serde_json::json!({ "samlp": { "logout": { "callback": "https://sp.example.com/slo" } } })
        .as_object()
        .cloned()
        .unwrap();
    s.create_client(sp, audit("sp")).unwrap();
    // SID logged into the SP by a SAML Response; another session logged in nowhere.
    let response = AuditEvent::new(event_type::SAML_RESPONSE, t0(), Actor::System, "SAML response issued")
        .subject(ALICE)
        .client(SP)
        .details(serde_json::json!({
            "sid": SID,
            "name_id": "alice-name-id",
            "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        }));
    s.append(vec![response]).unwrap();
    s.create_session(&hash_secret("quiet"), session("sid-quiet", ALICE), audit("login")).unwrap();

    assert_eq!(s.end_expired_sessions(t0(), 100).unwrap(), 0, "nothing has expired yet");
    let later = t0() + Duration::hours(1);
    assert_eq!(s.end_expired_sessions(later, 100).unwrap(), 1, "only the session someone must hear about");
    let ended = s.session_by_sid(SID).unwrap();
    assert_eq!(ended.ended_at, Some(ended.idle_expires_at), "ended when it expired, not when swept");
    assert_eq!(s.session_by_sid("sid-quiet").unwrap().ended_at, None);
    let logouts = all(s, Some(SP));
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].kind, DeliveryKind::SamlLogout);
    assert_eq!(logouts[0].payload["name_id"], "alice-name-id");
    assert_eq!(logouts[0].payload["sid"], SID);
    // What the worker needs to name the session; where it goes is read from the client
    // when it is sent (a callback changed or turned off since is honoured).
    let expected = serde_json::json!({
        "sub": ALICE,
        "sid": SID,
        "name_id": "alice-name-id",
        "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    });
    assert_eq!(logouts[0].payload, expected);
    let last = w.audit_log().pop().unwrap();
    assert_eq!(last.event.event_type, event_type::SESSION_EXPIRED);
    assert_eq!((last.event.subject.as_deref(), last.event.details["reason"].as_str()), (Some(ALICE), Some("expired")));
    assert_eq!(s.end_expired_sessions(later + Duration::hours(1), 100).unwrap(), 0, "ended once");
    assert_eq!(all(s, Some(SP)).len(), 1);
    w.assert_chain_verifies();
}
