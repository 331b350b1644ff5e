//! Settling a Management API caller and the ceiling on its writes, without a server: the
//! rules `tests/api/act_as.rs` and `tests/api/authority.rs` assert over HTTP.

use super::*;
use crate::caller::{Caller, RequestFacts, settle};
use crate::ceiling;
use guise_core::act_as::ActAsRefusal;
use guise_core::audit::Actor;
use guise_core::authorization::AccessTokenRecord;
use guise_core::permission::PermissionSet;
use guise_core::role::ClientGrant;
use guise_core::store::{ClientGrantStore, TokenStore};
use guise_core::user::Attribution;
use guise_oidc::access_token::AccessTokenClaims;
use guise_oidc::impersonation_claims::Impersonation;

const HELPDESK: &str = "helpdeskclient00000000000000000E";
const STRONG: &str = "guise|570000000000000000000000";
const BLOCKED: &str = "guise|b10c00000000000000000000";

fn management(w: &World) -> String {
    w.settings.management_audience()
}

/// The claims of a token issued at `t0` to `sub` through `azp` for the Management API.
fn token(w: &World, sub: &str, azp: &str, scope: &[&str]) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: sub.into(),
        aud: management(w),
        azp: azp.into(),
        scope: scope.join(" "),
        iat: t0().timestamp(),
        exp: (t0() + Duration::hours(1)).timestamp(),
        jti: format!("jti-{sub}"),
        gty: None,
        extra: serde_json::Map::new(),
    }
}

/// A machine client granted `scope` on the Management API (grant `cgr_{client_id}`),
/// and its client-credentials token for all of it.
fn machine(w: &World, client_id: &str, allow_act_as: bool, scope: &[&str]) -> AccessTokenClaims {
    let machine = Client { allow_act_as, ..client(client_id, AppType::NonInteractive, Some(M2M_SECRET)) };
    w.store.create_client(machine, audit("client")).unwrap();
    let grant = ClientGrant {
        id: format!("cgr_{client_id}"),
        client_id: client_id.into(),
        audience: management(w),
        scope: scope.iter().map(|s| (*s).to_owned()).collect(),
        created_at: t0(),
    };
    w.store.create_client_grant(grant, audit("grant")).unwrap();
    token(w, &format!("{client_id}@clients"), client_id, scope)
}

fn request() -> RequestFacts {
    RequestFacts { source_ip: Some("192.0.2.7".into()), method: "PATCH".into(), path: "/api/v2/me".into() }
}

fn settle_at_t0(w: &World, claims: AccessTokenClaims, act_as: Option<&str>) -> Result<Caller, FlowError> {
    settle(&w.ctx(t0()), claims, Ok(act_as.map(str::to_owned)), &request())
}

fn refused(result: Result<(), FlowError>, kind: RefusalKind, naming: &str) -> bool {
    matches!(result, Err(FlowError::Refused { kind: k, message }) if k == kind && message.contains(naming))
}

/// `STRONG` holds `delete:users` on the Management API; `BLOCKED` is blocked.
fn with_strong_and_blocked(w: &World) {
    w.store.create_user(new_user(STRONG, "strong@example.com"), audit("strong")).unwrap();
    add_role(&w.store, "rol_deleter", "Deleter", &[permission(&management(w), "delete:users")], STRONG);
    let blocked = NewUser { blocked: true, ..new_user(BLOCKED, "blocked@example.com") };
    w.store.create_user(blocked, audit("blocked")).unwrap();
}

#[test]
fn acting_as_a_user_runs_with_the_intersection_of_both_parties() {
    let w = World::new();
    let m = management(&w);
    add_role(&w.store, "rol_user_reader", "User reader", &[permission(&m, "read:users")], ALICE);
    let helpdesk = machine(&w, HELPDESK, true, &["impersonate:users", "read:users", "update:users"]);

    let caller = settle_at_t0(&w, helpdesk, Some(ALICE)).unwrap();
    assert_eq!(caller.acting_as.as_deref(), Some(ALICE));
    assert_eq!(caller.effective_user(), Some(ALICE));
    assert_eq!(caller.attribution(), Attribution { by: Some(ALICE.into()), on_behalf_by: Some(HELPDESK.into()) });
    // Both may read users; only the helpdesk may update them, so the call may not.
    assert_eq!(caller.claims.scope, "read:users");
    assert_eq!(caller.chain.links().len(), 2);
    assert_eq!(caller.chain.effective_on(&m), PermissionSet::on(&m, ["read:users"]));
    let update = caller.require_cover(&PermissionSet::on(&m, ["update:users"]));
    assert!(refused(update, RefusalKind::Forbidden, "the user acted as"));

    let events = w.events();
    let used = events.last().unwrap();
    assert_eq!(used.event.event_type, event_type::ACT_AS);
    assert_eq!(used.event.actor, Actor::Client(HELPDESK.into()));
    assert_eq!(used.event.on_behalf_of.as_deref(), Some(ALICE));
    assert_eq!(used.event.details["effective_scope"], serde_json::json!(["read:users"]));
}

#[test]
fn acting_as_is_refused_without_the_permission_for_unknown_or_blocked_users_or_beyond_the_caller() {
    let w = World::new();
    with_strong_and_blocked(&w);
    let helpdesk = machine(&w, HELPDESK, true, &["impersonate:users", "read:users"]);
    let not_enabled = machine(&w, "notenabledclient000000000000000F", false, &["impersonate:users", "read:users"]);
    let without_scope = token(&w, &format!("{HELPDESK}@clients"), HELPDESK, &["read:users"]);

    let cases = [
        (without_scope, Ok(Some(ALICE)), ActAsRefusal::MissingScope, RefusalKind::Forbidden),
        (not_enabled, Ok(Some(ALICE)), ActAsRefusal::ClientNotEnabled, RefusalKind::Forbidden),
        (
            helpdesk.clone(),
            Ok(Some("guise|000000000000000000000000")),
            ActAsRefusal::UnknownTarget,
            RefusalKind::UnknownUser,
        ),
        (helpdesk.clone(), Ok(Some("external_id:nobody")), ActAsRefusal::UnknownTarget, RefusalKind::UnknownUser),
        (helpdesk.clone(), Ok(Some(BLOCKED)), ActAsRefusal::BlockedTarget, RefusalKind::Forbidden),
        (helpdesk.clone(), Ok(Some(STRONG)), ActAsRefusal::WeakerCaller("delete:users".into()), RefusalKind::Forbidden),
        (helpdesk, Err(ActAsRefusal::ConflictingSpellings), ActAsRefusal::ConflictingSpellings, RefusalKind::Invalid),
    ];
    let count = cases.len();
    for (claims, act_as, expected, kind) in cases {
        let act_as = act_as.map(|target| target.map(str::to_owned));
        let outcome = settle(&w.ctx(t0()), claims, act_as, &request());
        assert!(
            matches!(&outcome, Err(FlowError::ActAsRefused(r)) if *r == expected && r.kind() == kind),
            "{expected:?}: {outcome:?}"
        );
    }
    let audited = w.events().into_iter().filter(|r| r.event.event_type == event_type::ACT_AS_REFUSED).count();
    assert_eq!(audited, count, "each refusal is audited");
    assert!(w.events().iter().all(|r| r.event.event_type != event_type::ACT_AS), "nothing ran as anyone");
}

#[test]
fn a_token_is_settled_to_what_its_grant_holds_now_and_refused_without_one() {
    let w = World::new();
    let m = management(&w);
    let worker = machine(&w, HELPDESK, false, &["read:users", "read:clients"]);
    assert_eq!(settle_at_t0(&w, worker.clone(), None).unwrap().claims.scope, "read:users read:clients");

    let grant = format!("cgr_{HELPDESK}");
    w.store.update_client_grant_scope(&grant, vec!["read:users".into()], audit("narrowed")).unwrap();
    let narrowed = settle_at_t0(&w, worker.clone(), None).unwrap();
    assert_eq!(narrowed.claims.scope, "read:users", "the token still lists read:clients; the grant no longer does");
    assert_eq!(narrowed.chain.links()[0].holds, PermissionSet::on(&m, ["read:users"]));

    w.store.delete_client_grant(&grant, audit("deleted")).unwrap();
    let gone = settle_at_t0(&w, worker, None).map(|_| ());
    assert!(refused(gone, RefusalKind::Unauthenticated, "no grant"));
}

#[test]
fn a_user_token_is_capped_by_its_client_s_grant_and_its_revocation() {
    let w = World::new();
    let m = management(&w);
    let admin = token(&w, ADMIN, APP, &["openid", "impersonate:users"]);
    let record = AccessTokenRecord {
        jti: admin.jti.clone(),
        client_id: APP.into(),
        user_id: ADMIN.into(),
        sid: SID.into(),
        family_id: None,
        code_hash: None,
        expires_at: t0() + Duration::hours(1),
        revoked_at: None,
    };
    w.store.record_access_token(record).unwrap();
    // Nobody granted APP the Management API: its users' tokens are no way in.
    assert!(refused(settle_at_t0(&w, admin.clone(), None).map(|_| ()), RefusalKind::Unauthenticated, "not authorized"));

    let grant = ClientGrant {
        id: "cgr_app".into(),
        client_id: APP.into(),
        audience: m.clone(),
        scope: vec!["impersonate:users".into()],
        created_at: t0(),
    };
    w.store.create_client_grant(grant, audit("grant")).unwrap();
    let caller = settle_at_t0(&w, admin.clone(), None).unwrap();
    assert_eq!(caller.claims.scope, "openid impersonate:users");
    assert_eq!(caller.actor(), Actor::User(ADMIN.into()));
    w.store.update_client_grant_scope("cgr_app", vec![], audit("narrowed")).unwrap();
    assert_eq!(settle_at_t0(&w, admin.clone(), None).unwrap().claims.scope, "openid");

    w.store.revoke_access_token(&admin.jti, t0()).unwrap();
    assert!(refused(settle_at_t0(&w, admin, None).map(|_| ()), RefusalKind::Unauthenticated, "revoked"));
}

#[test]
fn a_token_from_an_impersonation_session_is_refused_and_audited() {
    let w = World::new();
    let mut claims = token(&w, ALICE, APP, &["openid"]);
    Impersonation::new(ADMIN, None).write_into(&mut claims.extra);
    let outcome = settle_at_t0(&w, claims, None).map(|_| ());
    assert!(matches!(outcome, Err(FlowError::Refused { kind: RefusalKind::Unauthenticated, .. })), "{outcome:?}");
    let events = w.events();
    let attempt = events.last().unwrap();
    assert_eq!(attempt.event.event_type, event_type::IMPERSONATION_REFUSED);
    assert_eq!(attempt.event.actor, Actor::User(ADMIN.into()));
    assert_eq!(attempt.event.on_behalf_of.as_deref(), Some(ALICE));
}

#[test]
fn the_ceiling_refuses_writes_conferring_what_the_caller_lacks_and_lets_unknown_ids_through() {
    let w = World::new();
    let m = management(&w);
    with_strong_and_blocked(&w);
    machine(&w, "strongclient0000000000000000000G", false, &["delete:users"]);
    let clerk = machine(&w, HELPDESK, false, &["update:users", "update:roles", "create:client_grants"]);
    let caller = settle_at_t0(&w, clerk, None).unwrap();
    let ctx = w.ctx(t0());
    let lacks = |result: Result<(), FlowError>| refused(result, RefusalKind::Forbidden, "delete:users");

    assert!(lacks(ceiling::roles(&ctx, &caller, [&"rol_deleter".to_owned()])), "assigning a stronger role");
    assert!(lacks(ceiling::user(&ctx, &caller, STRONG)), "changing a stronger user");
    assert!(lacks(caller.require_cover(&PermissionSet::on(&m, ["delete:users"]))), "granting beyond itself");
    assert!(lacks(ceiling::grant(&ctx, &caller, "cgr_strongclient0000000000000000000G")), "editing a stronger grant");
    assert!(lacks(ceiling::client(&ctx, &caller, "strongclient0000000000000000000G")), "changing a stronger client");

    // What it holds it may confer; permissions on another API are not its to measure.
    caller.require_cover(&PermissionSet::on(&m, ["update:users"])).unwrap();
    ceiling::roles(&ctx, &caller, [&"rol_reader".to_owned()]).unwrap();
    ceiling::user(&ctx, &caller, ALICE).unwrap();
    ceiling::client(&ctx, &caller, APP).unwrap();
    // Unknown ids pass, so the write itself answers 404.
    ceiling::user(&ctx, &caller, "guise|000000000000000000000000").unwrap();
    ceiling::roles(&ctx, &caller, [&"rol_nobody".to_owned()]).unwrap();
    ceiling::grant(&ctx, &caller, "cgr_nobody").unwrap();
    ceiling::client(&ctx, &caller, "nobody").unwrap();
}
