//! The store's contract: the rules every caller relies on — errors, cascades,
//! all-or-nothing writes, single-use codes, refresh rotation and reuse, search, the audit
//! hash chain — checked on SQLite and on PostgreSQL alike, against the one real store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod outbox;

use chrono::{DateTime, Duration, Utc};
use fixture::*;
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, ChainBreak};
use guise_core::authorization::{
    AccessTokenRecord, AuthorizationCode, CodeRedemption, RefreshRedemption, RefreshTokenRecord,
};
use guise_core::client::{AppType, hash_client_secret};
use guise_core::page::PageRequest;
use guise_core::permission::Permission;
use guise_core::role::{ClientGrant, Role};
use guise_core::store::{
    AuditFilter, AuditStore, AuthorizationCodeStore, ClientGrantStore, ClientStore, RoleStore, SessionStore,
    StoreResult, TokenStore, UserStore,
};
use guise_core::user::{Attribution, NewUser, UserPatch};
use guise_core::user_query::parse_user_query;
use guise_store::{Backend, Database};
use serde_json::json;

/// Each test runs twice: on a SQLite file and on a PostgreSQL database.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(guise_store::Backend::Sqlite)
                }
                #[test]
                fn postgres() {
                    super::$name(guise_store::Backend::Postgres)
                }
            }
        )*
    };
}

on_both_backends!(
    the_audit_log_is_a_hash_chain_that_shows_edits_and_cuts,
    concurrent_appends_from_two_nodes_are_group_committed_into_one_chain,
    failed_writes_change_nothing_and_log_nothing,
    uniqueness_and_references_are_enforced,
    deleting_users_clients_and_roles_cascades,
    a_code_is_consumed_once_and_its_replay_revokes_its_descendants,
    a_refresh_token_rotates_once_then_reuse_revokes_its_family,
    ending_a_session_revokes_what_was_minted_from_it,
    users_are_searched_updated_and_counted_like_the_database_does,
    permissions_come_from_roles,
    clients_are_listed_patched_and_given_secrets,
    cached_clients_and_grants_follow_changes_from_any_node,
);

use outbox::*;
on_both_backends!(
    events_are_delivered_to_the_webhooks_that_want_them_in_their_transaction,
    one_claim_at_a_time_with_retries_and_giving_up,
    ending_a_session_queues_a_logout_for_each_client_it_logged_into,
    claims_racing_from_several_connections_never_share_a_delivery,
    expired_sessions_with_someone_to_tell_are_ended_once,
);

fn event(event_type: &str, at: DateTime<Utc>, actor: Actor) -> AuditEvent {
    AuditEvent::new(event_type, at, actor, format!("{event_type} happened"))
}

fn refresh(token_hash: &str, family_id: &str, code_hash: Option<&str>, expires: DateTime<Utc>) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: token_hash.into(),
        family_id: family_id.into(),
        client_id: WEB_APP.into(),
        user_id: ALICE.into(),
        sid: SID.into(),
        scope: vec!["openid".into(), "offline_access".into()],
        audience: None,
        code_hash: code_hash.map(str::to_owned),
        auth_time: t0(),
        created_at: t0(),
        family_expires_at: expires,
        // The store starts every token unused and unrevoked, whatever it is given.
        used_at: Some(t0()),
        revoked_at: Some(t0()),
    }
}

fn access(jti: &str, family_id: Option<&str>, code_hash: Option<&str>) -> AccessTokenRecord {
    AccessTokenRecord {
        jti: jti.into(),
        client_id: WEB_APP.into(),
        user_id: ALICE.into(),
        sid: SID.into(),
        family_id: family_id.map(str::to_owned),
        code_hash: code_hash.map(str::to_owned),
        expires_at: t0() + Duration::hours(1),
        revoked_at: None,
    }
}

fn revoked_at(store: &Database, jti: &str) -> Option<DateTime<Utc>> {
    store.access_token_record(jti).unwrap().revoked_at
}

fn the_audit_log_is_a_hash_chain_that_shows_edits_and_cuts(backend: Backend) {
    let tenant = Tenant::empty(backend);
    let store = &tenant.db;
    let at = t0() + Duration::nanoseconds(1_234_567); // below a millisecond: not stored
    let appended = store
        .append(vec![
            event("s", at, Actor::User(ALICE.into())).subject(ALICE).client(WEB_APP),
            event("seccft", at, Actor::Client(M2M.into())).client(M2M).details(json!({ "scope": "read:things" })),
            AuditEvent { on_behalf_of: Some(ADMIN.into()), ..event("seacft", at, Actor::Client(WEB_APP.into())) }
                .subject(ALICE),
        ])
        .unwrap();
    assert_eq!(appended.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(appended[0].prev_hash, guise_core::audit::GENESIS_HASH);
    assert_eq!(appended[1].prev_hash, appended[0].hash);
    assert_eq!(appended[1].details_text, r#"{"scope":"read:things"}"#);
    assert_eq!(store.append(Vec::new()).unwrap(), []);
    assert_eq!(store.verify_chain().unwrap(), Ok(3));

    let stored = store.audit_record(2).unwrap();
    assert_eq!(stored.hash, appended[1].hash);
    assert_eq!(stored.event.occurred_at, t0() + Duration::milliseconds(1), "stored at millisecond precision");
    assert!(matches!(store.audit_record(4), Err(StoreError::NotFound)));

    // Filters: newest first by default.
    let page = PageRequest::new(None, Some(10));
    let seqs = |filter: AuditFilter| -> Vec<i64> {
        store.audit_records(&filter, page, true).unwrap().items.iter().map(|r| r.seq).collect()
    };
    assert_eq!(seqs(AuditFilter::default()), [3, 2, 1]);
    assert_eq!(seqs(AuditFilter { ascending: true, ..Default::default() }), [1, 2, 3]);
    assert_eq!(seqs(AuditFilter { event_type: Some("seccft".into()), ..Default::default() }), [2]);
    assert_eq!(seqs(AuditFilter { user_id: Some(ALICE.into()), ..Default::default() }), [3, 1]);
    assert_eq!(seqs(AuditFilter { user_id: Some(ADMIN.into()), ..Default::default() }), [3], "on behalf of");
    assert_eq!(seqs(AuditFilter { user_id: Some(M2M.into()), ..Default::default() }), [2], "the actor");
    assert_eq!(seqs(AuditFilter { actor_id: Some(M2M.into()), ..Default::default() }), [2]);
    assert_eq!(seqs(AuditFilter { on_behalf_of: Some(ADMIN.into()), ..Default::default() }), [3]);
    assert_eq!(seqs(AuditFilter { on_behalf_of: Some(ALICE.into()), ..Default::default() }), [0i64; 0]);
    assert_eq!(seqs(AuditFilter { client_id: Some(WEB_APP.into()), ..Default::default() }), [1]);
    assert_eq!(seqs(AuditFilter { after_seq: Some(1), ascending: true, ..Default::default() }), [2, 3]);
    assert_eq!(seqs(AuditFilter { from: Some(t0() + Duration::seconds(1)), ..Default::default() }), [0i64; 0]);
    assert_eq!(seqs(AuditFilter { to: Some(t0() + Duration::milliseconds(1)), ..Default::default() }), [3, 2, 1]);
    let first_page = store.audit_records(&AuditFilter::default(), PageRequest::new(Some(0), Some(2)), true).unwrap();
    assert_eq!((first_page.items.len(), first_page.total), (2, 3));
    let second_page = store.audit_records(&AuditFilter::default(), PageRequest::new(Some(1), Some(2)), false).unwrap();
    assert_eq!((second_page.items.len(), second_page.total), (1, 1));

    // An edited row no longer matches its hash.
    tenant.tamper("UPDATE audit_log SET description = 'nothing to see' WHERE seq = 2");
    assert_eq!(store.verify_chain().unwrap(), Err(ChainBreak::HashMismatch { seq: 2 }));
    tenant.tamper("UPDATE audit_log SET description = 'seccft happened' WHERE seq = 2");
    assert_eq!(store.verify_chain().unwrap(), Ok(3));

    // A row cut from the end leaves the chain behind its head.
    tenant.tamper("DELETE FROM audit_log WHERE seq = 3");
    assert_eq!(store.verify_chain().unwrap(), Err(ChainBreak::BrokenLink { seq: 3 }));
}

/// Appends from many threads on two nodes, interleaved with audited changes: every
/// caller gets back its own events, adjacent and in order, each is stored once, the one
/// chain verifies, and the batches never outnumber the appends (sharing itself is timing:
/// `group_commit`'s unit test shows it deterministically).
fn concurrent_appends_from_two_nodes_are_group_committed_into_one_chain(backend: Backend) {
    let tenant = Tenant::empty(backend);
    let nodes = [tenant.db.clone(), tenant.second_node()];
    let threads: Vec<_> = (0..24)
        .map(|n| {
            let db = nodes[n % 2].clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for round in 0..10 {
                    let tag = format!("{n}/{round}");
                    let events = vec![
                        event("t1", t0(), Actor::System).subject(&tag),
                        event("t2", t0(), Actor::System).subject(&tag),
                    ];
                    let records = db.append(events).unwrap();
                    assert_eq!(records.len(), 2);
                    assert!(records.iter().all(|r| r.event.subject.as_deref() == Some(tag.as_str())));
                    assert_eq!(
                        (records[0].event.event_type.as_str(), records[1].event.event_type.as_str()),
                        ("t1", "t2")
                    );
                    assert_eq!(records[1].seq, records[0].seq + 1);
                    assert_eq!(records[1].prev_hash, records[0].hash);
                    seqs.extend(records.iter().map(|r| r.seq));
                    if round % 5 == 0 {
                        // An audited change takes the head lock between the batches.
                        let user = new_user(&format!("u{n}-{round}"), &format!("u{n}-{round}@example.com"));
                        db.create_user(user, event("sapi", t0(), Actor::System)).unwrap();
                    }
                }
                seqs
            })
        })
        .collect();
    let mut seqs: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 24 * 10 * 2, "every appended event stored once");
    let total = 24 * 10 * 2 + 24 * 2;
    assert_eq!(tenant.db.verify_chain().unwrap(), Ok(total as u64));
    let appends = 24 * 10;
    let batches: u64 =
        nodes.iter().map(|db| db.audit_batch_stats().batches.load(std::sync::atomic::Ordering::Relaxed)).sum();
    let events: u64 =
        nodes.iter().map(|db| db.audit_batch_stats().events.load(std::sync::atomic::Ordering::Relaxed)).sum();
    assert_eq!(events, appends * 2);
    assert!(batches <= appends, "{batches} batches for {appends} appends");
}

fn failed_writes_change_nothing_and_log_nothing(backend: Backend) {
    let w = Tenant::new(backend);
    let rows = w.audit_log().len();

    let duplicate = client(WEB_APP, AppType::RegularWeb, Some("x"));
    assert!(matches!(w.db.create_client(duplicate, audit("dup")), Err(StoreError::Conflict(_))));

    let roles = ["rol_reader".to_owned(), "rol_missing".to_owned()];
    w.db.create_user(new_user("guise|bob", "bob@example.com"), audit("bob")).unwrap();
    let rows = rows + 1;
    assert!(matches!(
        w.db.assign_roles("guise|bob", &roles, audit("assign")),
        Err(StoreError::InvalidReference(m)) if m == "role rol_missing does not exist"
    ));
    assert!(w.db.user_permission_set("guise|bob").unwrap().is_empty(), "all roles or none");

    let users = ["guise|bob".to_owned(), "guise|nobody".to_owned()];
    assert!(matches!(
        w.db.add_role_users("rol_reader", &users, vec![audit("a"), audit("b")]),
        Err(StoreError::NotFound)
    ));
    assert_eq!(w.db.role_users("rol_reader", PageRequest::default()).unwrap().total, 1, "only alice");

    assert!(matches!(w.db.end_session("no-such-sid", t0(), audit("logout")), Err(StoreError::NotFound)));
    assert!(matches!(w.db.delete_user("guise|nobody", audit("delete")), Err(StoreError::NotFound)));

    assert_eq!(w.audit_log().len(), rows, "no event for a write that did not happen");
    w.assert_chain_verifies();
}

fn uniqueness_and_references_are_enforced(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let conflict = |r: StoreResult<()>| matches!(r, Err(StoreError::Conflict(_)));

    // Users: email (case-insensitively) and external id are unique.
    let shouting = new_user("guise|other", "ALICE@Example.com");
    assert!(
        matches!(s.create_user(shouting, audit("u")), Err(StoreError::Conflict(m)) if m == "The user already exists.")
    );
    let with_external = NewUser { external_id: Some("sis-1".into()), ..new_user("guise|bob", "bob@example.com") };
    s.create_user(with_external, audit("u")).unwrap();
    let clash = NewUser { external_id: Some("sis-1".into()), ..new_user("guise|carol", "carol@example.com") };
    assert!(matches!(
        s.create_user(clash, audit("u")),
        Err(StoreError::Conflict(m)) if m == "The external_id is already in use"
    ));
    let take_email = UserPatch { email: Some("alice@EXAMPLE.com".into()), ..Default::default() };
    assert!(matches!(
        s.update_user("guise|bob", take_email, Attribution::default(), t0(), audit("u")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.user_by_email("Bob@Example.COM").unwrap().user_id, "guise|bob");
    assert_eq!(s.user_by_external_id("sis-1").unwrap().user_id, "guise|bob");
    assert!(matches!(s.user_by_id("guise|nobody"), Err(StoreError::NotFound)));

    // Client grants: one per client and audience, for an existing client.
    let grant = |id: &str, client_id: &str| ClientGrant {
        id: id.into(),
        client_id: client_id.into(),
        audience: API.into(),
        scope: Vec::new(),
        created_at: t0(),
    };
    assert!(conflict(s.create_client_grant(grant("cgr_2", M2M), audit("g")).map(drop)));
    assert!(matches!(
        s.create_client_grant(grant("cgr_3", "no-such-client"), audit("g")),
        Err(StoreError::InvalidReference(_))
    ));
    assert!(matches!(s.client_grant(WEB_APP, API), Err(StoreError::NotFound)));
    assert!(matches!(s.update_client_grant_scope("cgr_none", Vec::new(), audit("g")), Err(StoreError::NotFound)));

    // Roles: names are unique.
    let reader_again = Role { id: "rol_2".into(), name: "Reader".into(), description: String::new() };
    assert!(conflict(s.create_role(reader_again, audit("r")).map(drop)));
    assert_eq!(s.list_roles(Some("reader"), PageRequest::default()).unwrap().total, 1, "filter ignores case");

    // Sessions, codes and refresh tokens name existing users and clients.
    assert!(conflict(s.create_session("another-hash", session(SID, ALICE), audit("login"))));
    assert!(matches!(
        s.create_session("h", session("sid-x", "guise|nobody"), audit("login")),
        Err(StoreError::InvalidReference(_))
    ));
    let orphan = code("c", WEB_APP, SID, "guise|nobody", "openid");
    assert!(matches!(s.save_code(orphan), Err(StoreError::InvalidReference(_))));
    s.save_code(code("c", WEB_APP, SID, ALICE, "openid")).unwrap();
    assert!(conflict(s.save_code(code("c", WEB_APP, SID, ALICE, "openid"))));
    assert!(matches!(
        s.save_refresh_token(RefreshTokenRecord { client_id: "nope".into(), ..refresh("r", "f", None, t0()) }),
        Err(StoreError::InvalidReference(_))
    ));
    s.record_access_token(access("j", None, None)).unwrap();
    assert!(conflict(s.record_access_token(access("j", None, None))));
}

fn deleting_users_clients_and_roles_cascades(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    s.save_code(code("c", WEB_APP, SID, ALICE, "openid")).unwrap();
    s.save_refresh_token(refresh("r", "f", None, t0() + Duration::days(1))).unwrap();
    s.record_access_token(access("j", Some("f"), None)).unwrap();

    s.delete_client(WEB_APP, audit("delete client")).unwrap();
    assert!(matches!(s.client_by_id(WEB_APP), Err(StoreError::NotFound)));
    assert!(matches!(s.consume_code(&hash_secret("c"), t0()), Err(StoreError::NotFound)));
    assert!(matches!(s.refresh_token("r"), Err(StoreError::NotFound)));
    assert!(s.access_token_record("j").is_ok(), "access-token records have no foreign keys");
    assert!(matches!(s.delete_client(WEB_APP, audit("again")), Err(StoreError::NotFound)));

    s.delete_role("rol_reader", audit("delete role")).unwrap();
    assert!(s.user_permissions(ALICE).unwrap().is_empty());
    assert_eq!(s.user_roles(ALICE, PageRequest::default()).unwrap().total, 0);

    s.delete_user(ALICE, audit("delete user")).unwrap();
    assert!(matches!(s.session_by_sid(SID), Err(StoreError::NotFound)));
    assert!(s.sessions_of_user(ALICE).unwrap().is_empty());
    assert!(matches!(s.user_roles(ALICE, PageRequest::default()), Err(StoreError::NotFound)));
    w.assert_chain_verifies();
}

fn a_code_is_consumed_once_and_its_replay_revokes_its_descendants(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let code = code("c", WEB_APP, SID, ALICE, "openid offline_access");
    let code_hash = code.code_hash.clone();
    s.save_code(AuthorizationCode { consumed_at: Some(t0()), ..code.clone() }).unwrap();
    s.save_refresh_token(refresh("r1", "fam", Some(&code_hash), t0() + Duration::days(1))).unwrap();
    s.save_refresh_token(refresh("r2", "fam", Some(&code_hash), t0() + Duration::days(1))).unwrap();
    s.save_refresh_token(refresh("other", "fam-2", None, t0() + Duration::days(1))).unwrap();
    s.record_access_token(access("from-code", None, Some(&code_hash))).unwrap();
    s.record_access_token(access("from-family", Some("fam"), None)).unwrap();
    s.record_access_token(access("unrelated", Some("fam-2"), None)).unwrap();

    let first = t0() + Duration::seconds(1);
    assert_eq!(
        s.consume_code(&code_hash, first).unwrap(),
        CodeRedemption::Redeemed(AuthorizationCode { consumed_at: Some(first), ..code.clone() }),
        "saved unconsumed, whatever it was given"
    );
    assert!(revoked_at(s, "from-code").is_none());

    let replay = t0() + Duration::seconds(2);
    assert_eq!(
        s.consume_code(&code_hash, replay).unwrap(),
        CodeRedemption::Replayed(AuthorizationCode { consumed_at: Some(first), ..code })
    );
    assert_eq!(revoked_at(s, "from-code"), Some(replay));
    assert_eq!(revoked_at(s, "from-family"), Some(replay));
    assert_eq!(revoked_at(s, "unrelated"), None);
    assert_eq!(s.refresh_token("r1").unwrap().revoked_at, Some(replay));
    assert_eq!(s.refresh_token("r2").unwrap().revoked_at, Some(replay));
    assert_eq!(s.refresh_token("other").unwrap().revoked_at, None);
    assert!(matches!(s.consume_code("unknown", replay), Err(StoreError::NotFound)));
}

fn a_refresh_token_rotates_once_then_reuse_revokes_its_family(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let end = t0() + Duration::days(1);
    s.save_refresh_token(refresh("r1", "fam", None, end)).unwrap();
    s.save_refresh_token(refresh("r2", "fam", None, end)).unwrap();
    s.record_access_token(access("a1", Some("fam"), None)).unwrap();
    let stored = s.refresh_token("r1").unwrap();
    assert_eq!((stored.used_at, stored.revoked_at), (None, None));

    let t1 = t0() + Duration::minutes(1);
    match s.use_refresh_token("r1", t1).unwrap() {
        RefreshRedemption::Rotated(r) => assert_eq!(r.used_at, Some(t1)),
        other => panic!("expected a rotation, got {other:?}"),
    }
    let t2 = t1 + Duration::minutes(1);
    match s.use_refresh_token("r1", t2).unwrap() {
        // As the database returns it: read before the family was revoked.
        RefreshRedemption::Reused(r) => assert_eq!((r.used_at, r.revoked_at), (Some(t1), None)),
        other => panic!("expected reuse, got {other:?}"),
    }
    assert_eq!(s.refresh_token("r1").unwrap().revoked_at, Some(t2));
    assert_eq!(s.refresh_token("r2").unwrap().revoked_at, Some(t2));
    assert_eq!(revoked_at(s, "a1"), Some(t2));
    assert!(matches!(s.use_refresh_token("r2", t2).unwrap(), RefreshRedemption::Dead(_)));
    assert!(matches!(s.use_refresh_token("r1", t2).unwrap(), RefreshRedemption::Dead(_)), "revoked: dead");

    // Past the family's end an unused token is dead, and nothing is revoked.
    s.save_refresh_token(refresh("late", "fam-3", None, end)).unwrap();
    assert!(matches!(s.use_refresh_token("late", end).unwrap(), RefreshRedemption::Dead(_)));
    assert_eq!(s.refresh_token("late").unwrap().revoked_at, None);
    assert!(matches!(s.use_refresh_token("unknown", t0()), Err(StoreError::NotFound)));

    // Revoking by family, or one access token; unknown ones are no error.
    s.save_refresh_token(refresh("r4", "fam-4", None, end)).unwrap();
    s.record_access_token(access("a4", Some("fam-4"), None)).unwrap();
    s.record_access_token(access("a5", None, None)).unwrap();
    s.revoke_refresh_family("fam-4", t2).unwrap();
    assert_eq!((s.refresh_token("r4").unwrap().revoked_at, revoked_at(s, "a4")), (Some(t2), Some(t2)));
    s.revoke_access_token("a5", t1).unwrap();
    s.revoke_access_token("a5", t2).unwrap();
    assert_eq!(revoked_at(s, "a5"), Some(t1), "the first revocation time stays");
    s.revoke_access_token("unknown", t2).unwrap();
    s.revoke_refresh_family("unknown", t2).unwrap();
}

fn ending_a_session_revokes_what_was_minted_from_it(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    s.save_refresh_token(refresh("r", "fam", None, t0() + Duration::days(1))).unwrap();
    s.record_access_token(access("a", None, None)).unwrap();
    let at = t0() + Duration::minutes(2);
    s.touch_session(SID, at, at + Duration::minutes(30)).unwrap();
    assert_eq!(s.session_by_cookie_hash(&hash_secret("alice-cookie")).unwrap().last_seen, at);
    s.end_session(SID, at, audit("logout")).unwrap();
    assert_eq!(s.session_by_sid(SID).unwrap().ended_at, Some(at));
    assert_eq!(s.refresh_token("r").unwrap().revoked_at, Some(at));
    assert_eq!(revoked_at(s, "a"), Some(at));
    assert!(matches!(s.end_session(SID, at, audit("logout")), Err(StoreError::NotFound)), "already ended");
}

fn users_are_searched_updated_and_counted_like_the_database_does(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let bob = NewUser {
        name: Some("Bob Lovelace".into()),
        blocked: true,
        created_at: t0(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        ..new_user("guise|bob", "Bob@Example.com")
    };
    let created = s.create_user(bob, audit("bob")).unwrap();
    assert!(created.has_password);
    assert_eq!(created.updated_at, t0());
    assert!(s.password_hash("guise|bob").unwrap().is_some());
    assert_eq!(s.password_hash(ALICE).unwrap(), None);

    let ids = |q: &str| -> Vec<String> {
        let terms = parse_user_query(q).unwrap();
        s.search_users(&terms, Default::default(), PageRequest::default(), true)
            .unwrap()
            .items
            .into_iter()
            .map(|u| u.user_id)
            .collect()
    };
    assert_eq!(ids(""), ["guise|bob", ALICE, ADMIN], "newest first, then by id");
    assert_eq!(ids("lovelace"), ["guise|bob"]);
    assert_eq!(ids("email:bob@example.com"), ["guise|bob"]);
    assert_eq!(ids("name:bob*"), ["guise|bob"], "prefixes ignore case");
    assert_eq!(ids("name:bob"), [""; 0], "exact matches do not");
    assert_eq!(ids("blocked:false"), [ALICE, ADMIN]);
    assert_eq!(ids("example.com blocked:true"), ["guise|bob"]);

    let patch = UserPatch { name: Some(None), blocked: Some(false), ..Default::default() };
    let by = Attribution { by: Some(ALICE.into()), on_behalf_by: Some(ADMIN.into()) };
    let later = t0() + Duration::minutes(1);
    let updated = s.update_user("guise|bob", patch, by, later, audit("patch")).unwrap();
    assert_eq!((updated.name, updated.blocked, updated.updated_at), (None, false, later));
    assert_eq!(updated.modified_by.as_deref(), Some(ALICE));
    assert_eq!(updated.modified_on_behalf_by.as_deref(), Some(ADMIN));
    assert!(updated.has_password, "the password survives a patch without one");

    s.record_login(ALICE, later, Some("192.0.2.1")).unwrap();
    s.record_login(ALICE, later, None).unwrap();
    let alice = s.user_by_id(ALICE).unwrap();
    assert_eq!((alice.logins_count, alice.last_login, alice.last_ip), (2, Some(later), None));
    s.record_login("guise|nobody", later, None).unwrap();
}

fn permissions_come_from_roles(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let read = Permission { resource_server_identifier: API.into(), permission_name: "read:things".into() };
    let write = Permission { resource_server_identifier: API.into(), permission_name: "write:things".into() };
    s.create_role(Role { id: "rol_writer".into(), name: "Writer".into(), description: String::new() }, audit("r"))
        .unwrap();
    s.add_role_permissions("rol_writer", &[write.clone(), read.clone(), read.clone()], audit("p")).unwrap();
    assert_eq!(s.role_permissions("rol_writer", PageRequest::default()).unwrap().items, [read.clone(), write.clone()]);
    s.assign_roles(ALICE, &["rol_writer".into(), "rol_reader".into()], audit("a")).unwrap();

    let held = s.user_permissions(ALICE).unwrap();
    let names = |roles: &[Role]| roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    assert_eq!(held.len(), 2);
    assert_eq!((&held[0].0, names(&held[0].1)), (&read, vec!["Reader".to_owned(), "Writer".to_owned()]));
    assert_eq!((&held[1].0, names(&held[1].1)), (&write, vec!["Writer".to_owned()]));
    let roles = s.user_roles(ALICE, PageRequest::default()).unwrap();
    assert_eq!(names(&roles.items), ["Reader", "Writer"]);

    s.remove_role_permissions("rol_writer", std::slice::from_ref(&write), audit("p")).unwrap();
    s.unassign_roles(ALICE, &["rol_reader".into()], audit("u")).unwrap();
    assert_eq!(s.user_permission_set(ALICE).unwrap().names_for(API).into_iter().collect::<Vec<_>>(), ["read:things"]);
    let renamed = s
        .update_role(
            "rol_writer",
            guise_core::role::RolePatch { name: Some("Editor".into()), description: None },
            audit("r"),
        )
        .unwrap();
    assert_eq!(s.role_by_id("rol_writer").unwrap(), renamed);
    assert!(matches!(
        s.update_role(
            "rol_writer",
            guise_core::role::RolePatch { name: Some("Reader".into()), description: None },
            audit("r")
        ),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(s.role_permissions("rol_none", PageRequest::default()), Err(StoreError::NotFound)));
}

fn clients_are_listed_patched_and_given_secrets(backend: Backend) {
    let w = Tenant::new(backend);
    let s = &w.db;
    let listed = s.list_clients(&Default::default(), PageRequest::new(Some(0), Some(3)), true).unwrap();
    assert_eq!((listed.items.len(), listed.total), (3, 4));
    let later = t0() + Duration::minutes(5);
    let patch = guise_core::client::ClientPatch { name: Some("Renamed".into()), ..Default::default() };
    let patched = s.update_client(WEB_APP, patch, later, audit("patch")).unwrap();
    assert_eq!((patched.name.as_str(), patched.updated_at), ("Renamed", later));
    let rotated = s.set_client_secret_hash(WEB_APP, &hash_client_secret("new"), later, audit("rotate")).unwrap();
    assert!(rotated.secret_matches("new") && !rotated.secret_matches(WEB_SECRET));
    assert_eq!(s.client_by_id(WEB_APP).unwrap(), rotated);
    let grants = s.list_client_grants(Some(M2M), None, PageRequest::default()).unwrap();
    assert_eq!(grants.items.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["cgr_m2m_api"]);
    s.delete_client_grant("cgr_m2m_api", audit("g")).unwrap();
    assert!(matches!(s.client_grant_by_id("cgr_m2m_api"), Err(StoreError::NotFound)));
}

/// The two migration trees change together (same names), and no two migrations share a
/// version: diesel keys migrations by the part before the first `_`, so a second
/// `…-000006_x` beside `…-000006_y` would silently never run.
#[test]
fn migrations_have_one_version_each_and_the_trees_match() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let names = |tree: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(tree))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert_eq!(sqlite, postgres, "the SQLite and PostgreSQL trees differ");
    let mut versions: Vec<&str> = sqlite.iter().map(|n| n.split('_').next().unwrap()).collect();
    let count = versions.len();
    versions.dedup();
    assert_eq!(versions.len(), count, "two migrations share a version: {sqlite:?}");
}

/// Poll `seen` until it holds, at most 2 s; how long it took. (SQLite sees another
/// connection's change at the next lookup; PostgreSQL within the listener's poll.)
fn seen_within(backend: Backend, what: &str, seen: impl Fn() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        if seen() {
            let took = start.elapsed();
            eprintln!("{backend:?}: {what} seen after {took:?}");
            return took;
        }
        assert!(
            backend == Backend::Postgres && start.elapsed() < std::time::Duration::from_secs(2),
            "{backend:?}: {what} not seen after {:?}",
            start.elapsed()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The read cache behind `client_by_id`, `client_grant` and `web_origins` follows every
/// change: this node's own at once, another node's (or another process's, or a raw
/// statement's) at the next lookup on SQLite and within the listener's poll on
/// PostgreSQL. And it is in use: a change whose trigger was switched off is not seen.
fn cached_clients_and_grants_follow_changes_from_any_node(backend: Backend) {
    let tenant = Tenant::new(backend);
    let a = &tenant.db;
    let b = tenant.second_node();
    let scope = |db: &Database| db.client_grant(M2M, API).map(|g| g.scope);
    let warm = || {
        assert!(a.client_by_id(WEB_APP).is_ok());
        assert!(a.client_by_id(SPA).is_ok());
        assert!(scope(a).is_ok());
        assert!(a.web_origins().is_ok());
    };
    warm();
    if backend == Backend::Postgres {
        // The listener starts with the first lookup; until it listens, lookups bypass.
        std::thread::sleep(std::time::Duration::from_millis(300));
        warm();
    }

    // This node's own change: the next lookup.
    a.update_client_grant_scope("cgr_m2m_api", vec!["read:things".into()], audit("narrow")).unwrap();
    assert_eq!(scope(a).unwrap(), vec!["read:things".to_owned()]);

    // Another node's changes.
    b.update_client_grant_scope("cgr_m2m_api", vec![], audit("narrow to nothing")).unwrap();
    seen_within(backend, "a narrowed grant", || scope(a).unwrap().is_empty());
    warm();
    b.delete_client_grant("cgr_m2m_api", audit("remove")).unwrap();
    seen_within(backend, "a removed grant", || matches!(scope(a), Err(StoreError::NotFound)));
    b.delete_client(WEB_APP, audit("delete")).unwrap();
    seen_within(backend, "a deleted client", || matches!(a.client_by_id(WEB_APP), Err(StoreError::NotFound)));
    let patch = guise_core::client::ClientPatch {
        web_origins: Some(vec!["https://new.example.com".into()]),
        ..Default::default()
    };
    b.update_client(SPA, patch, t0(), audit("origins")).unwrap();
    seen_within(backend, "a new web origin", || {
        a.web_origins().unwrap().iter().any(|o| o.contains(&"https://new.example.com".to_owned()))
    });

    // A statement from outside guise (another process, psql, the sqlite3 shell).
    tenant.tamper(&format!("UPDATE clients SET name = 'Renamed outside' WHERE client_id = '{SPA}'"));
    seen_within(backend, "a raw UPDATE", || a.client_by_id(SPA).unwrap().name == "Renamed outside");

    // The cache is really in use: with the trigger off, a change goes unseen. (First a
    // lookup after every notification has arrived, so the entry is of the current
    // generation: one loaded while a notification was on its way is never served.)
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(a.client_by_id(SPA).unwrap().name, "Renamed outside");
    match backend {
        Backend::Sqlite => tenant.tamper("DROP TRIGGER clients_cache_update"),
        Backend::Postgres => tenant.tamper("ALTER TABLE clients DISABLE TRIGGER clients_cache"),
    }
    tenant.tamper(&format!("UPDATE clients SET name = 'Unseen' WHERE client_id = '{SPA}'"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(a.client_by_id(SPA).unwrap().name, "Renamed outside", "served from the cache");
    // The second node never cached it and reads the row.
    assert_eq!(b.client_by_id(SPA).unwrap().name, "Unseen");
}
