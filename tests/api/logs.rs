//! `/api/v2/logs`: the audit log's shape, its search language (`q`), ordering, page and
//! checkpoint pagination, single events, refusals, and the hash chain linking events.

use crate::both_backends;
use crate::helpers::{TestApp, split};
use chrono::{DateTime, Utc};
use guise_core::audit::{Actor, AuditEvent, GENESIS_HASH, chain_hash};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    logs_are_newest_first_with_every_field,
    type_filter,
    user_id_filter_returns_only_that_users_events,
    client_id_filter,
    date_range_filter,
    ascending_sort,
    page_pagination_with_totals,
    checkpoint_pagination,
    a_single_event_by_id,
    bad_queries_are_refused,
    reading_logs_needs_read_logs,
    the_hash_chain_links_every_event,
    concurrent_writes_keep_the_chain_intact,
    passwords_and_secrets_never_reach_the_log,
);

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_api_error(status: u16, body: &Value, expected_status: u16, error_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["statusCode"], expected_status, "{body}");
    assert_eq!(body["errorCode"], error_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn logs(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v2/logs?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body.as_array().unwrap_or_else(|| panic!("an array for {query}: {body}")).clone()
}

fn seq(event: &Value) -> i64 {
    event["log_id"].as_str().unwrap_or_else(|| panic!("log_id: {event}")).parse().unwrap()
}

fn descriptions(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["description"].as_str().unwrap()).collect()
}

/// A few Management API writes: a role, a user, a patch of that user. Returns the user id.
async fn some_writes(app: &TestApp) -> String {
    let (status, _) = app.post("/api/v2/roles", &json!({ "name": "Loggers" })).await;
    assert_eq!(status, 200);
    let user = app.create_user("ada@example.com").await["user_id"].as_str().unwrap().to_owned();
    let (status, body) = app.patch(&format!("/api/v2/users/{}", enc(&user)), &json!({ "name": "Ada L." })).await;
    assert_eq!(status, 200, "{body}");
    user
}

async fn logs_are_newest_first_with_every_field(app: TestApp) {
    some_writes(&app).await;
    let events = logs(&app, "").await;
    assert!(events.len() >= 3, "{events:#?}");

    // Newest first: the three writes, most recent on top.
    assert_eq!(descriptions(&events[..3]), ["Update a user", "Create a user", "Create a role"]);
    for pair in events.windows(2) {
        assert!(seq(&pair[0]) > seq(&pair[1]), "{pair:#?}");
        assert!(pair[0]["date"].as_str().unwrap() >= pair[1]["date"].as_str().unwrap(), "{pair:#?}");
    }

    let newest = &events[0];
    let log_id = newest["log_id"].as_str().unwrap();
    assert!(!log_id.is_empty() && log_id.chars().all(|c| c.is_ascii_digit()), "{newest}");
    let date = DateTime::parse_from_rfc3339(newest["date"].as_str().unwrap()).expect("an RFC 3339 date");
    let age = Utc::now().signed_duration_since(date.with_timezone(&Utc));
    assert!(age.num_seconds().abs() < 300, "the event is recent: {newest}");
    assert_eq!(newest["type"], "sapi");
    assert_eq!(newest["description"], "Update a user");
    assert_eq!(newest["actor"], json!({ "type": "client", "id": app.management_client_id }));
    assert_eq!(newest["client_id"], app.management_client_id.as_str());
    assert_eq!(newest["ip"], "127.0.0.1");
    let hash = newest["hash"].as_str().unwrap();
    assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{newest}");
    assert_eq!(newest["details"]["request"]["method"], "PATCH", "{newest}");

    // The oldest events are the first signing key's and guise init's, by the system.
    let oldest = events.last().unwrap();
    assert_eq!(seq(oldest), 1, "{oldest}");
    assert_eq!(oldest["type"], "guise_key_rotated", "{oldest}");
    let init: Vec<&Value> = events.iter().filter(|e| e["type"] == "guise_init").collect();
    assert!(!init.is_empty(), "{events:#?}");
    for event in init.iter().chain([&oldest]) {
        assert_eq!(event["actor"], json!({ "type": "system", "id": null }), "{event}");
    }
}

async fn type_filter(app: TestApp) {
    some_writes(&app).await;
    let sapi = logs(&app, "q=type:sapi").await;
    assert_eq!(descriptions(&sapi), ["Update a user", "Create a user", "Create a role"]);
    assert!(sapi.iter().all(|e| e["type"] == "sapi"));

    let init = logs(&app, "q=type:guise_init").await;
    assert!(!init.is_empty());
    assert!(init.iter().all(|e| e["type"] == "guise_init"), "{init:#?}");

    // The harness's own token exchange.
    let issued = logs(&app, "q=type:seccft").await;
    assert!(!issued.is_empty());
    assert!(issued.iter().all(|e| e["type"] == "seccft" && e["client_id"] == app.management_client_id.as_str()));

    assert_eq!(logs(&app, "q=type:nothing_like_this").await, Vec::<Value>::new());
    // Quoted values and AND work too.
    let quoted = logs(&app, &format!("q={}", enc(r#"type:"sapi" AND type:sapi"#))).await;
    assert_eq!(quoted, sapi);
}

async fn user_id_filter_returns_only_that_users_events(app: TestApp) {
    let user = some_writes(&app).await;
    let other = app.create_user("bob@example.com").await["user_id"].as_str().unwrap().to_owned();

    let q = enc(&format!(r#"user_id:"{user}""#));
    let about = logs(&app, &format!("q={q}")).await;
    assert_eq!(descriptions(&about), ["Update a user", "Create a user"], "{about:#?}");
    for event in &about {
        assert!(event["user_id"] == user.as_str() || event["actor"]["id"] == user.as_str(), "{event}");
        assert!(!event.to_string().contains(&other), "{event}");
    }
    // Unquoted works as well, and combines with type.
    let unquoted = logs(&app, &format!("q={}", enc(&format!("user_id:{user} AND type:sapi")))).await;
    assert_eq!(unquoted, about);

    // The admin's events: created by guise init.
    let admin = logs(&app, &format!("q={}", enc(&format!(r#"user_id:"{}""#, app.admin_user_id)))).await;
    assert!(!admin.is_empty());
    assert!(admin.iter().all(|e| e["user_id"] == app.admin_user_id.as_str()), "{admin:#?}");

    assert_eq!(logs(&app, &format!("q={}", enc(r#"user_id:"guise|nobody""#))).await, Vec::<Value>::new());
}

async fn client_id_filter(app: TestApp) {
    let (client, secret) = app.machine_client("filtered", &["read:users"]).await;
    app.client_token(&client, &secret, None).await;
    let events = logs(&app, &format!("q={}", enc(&format!("client_id:{client} AND type:seccft")))).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["client_id"], client.as_str());
    assert_eq!(events[0]["actor"], json!({ "type": "client", "id": client }));
    let all = logs(&app, &format!("q={}", enc(&format!("client_id:{client}")))).await;
    assert!(all.iter().all(|e| e["client_id"] == client.as_str()), "{all:#?}");
}

async fn date_range_filter(app: TestApp) {
    some_writes(&app).await;
    let everything = logs(&app, "per_page=100").await;
    // The days of the oldest and newest events (the same day unless run across midnight).
    let day = |event: &Value| event["date"].as_str().unwrap()[..10].to_owned();
    let (first_day, last_day) = (day(everything.last().unwrap()), day(&everything[0]));
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    assert!(last_day <= today, "{last_day} {today}");

    let from_first = logs(&app, &format!("per_page=100&q={}", enc(&format!("date:[{first_day} TO *]")))).await;
    assert_eq!(from_first, everything);
    let until_last = logs(&app, &format!("per_page=100&q={}", enc(&format!("date:[* TO {last_day}]")))).await;
    assert_eq!(until_last, everything);
    let within = logs(&app, &format!("per_page=100&q={}", enc(&format!("date:[{first_day} TO {last_day}]")))).await;
    assert_eq!(within, everything);

    let long_ago = logs(&app, &format!("q={}", enc("date:[2000-01-01 TO 2000-01-02]"))).await;
    assert_eq!(long_ago, Vec::<Value>::new());
    let future = logs(&app, &format!("q={}", enc("date:[2999-01-01 TO *]"))).await;
    assert_eq!(future, Vec::<Value>::new());

    // RFC 3339 bounds, and a date range combined with a type.
    let newest = &everything[0];
    let at = newest["date"].as_str().unwrap();
    let exact = logs(&app, &format!("per_page=100&q={}", enc(&format!("date:[{at} TO {at}] AND type:sapi")))).await;
    assert!(exact.iter().any(|e| e["log_id"] == newest["log_id"]), "{exact:#?}");
    assert!(exact.iter().all(|e| e["date"] == at && e["type"] == "sapi"), "{exact:#?}");
}

async fn ascending_sort(app: TestApp) {
    some_writes(&app).await;
    let descending = logs(&app, "per_page=100").await;
    let ascending = logs(&app, "per_page=100&sort=date:1").await;
    let mut reversed = descending.clone();
    reversed.reverse();
    assert_eq!(ascending, reversed);
    assert_eq!(seq(&ascending[0]), 1);
    for pair in ascending.windows(2) {
        assert!(seq(&pair[0]) < seq(&pair[1]));
        assert!(pair[0]["date"].as_str().unwrap() <= pair[1]["date"].as_str().unwrap());
    }
    assert_eq!(logs(&app, "per_page=100&sort=date:-1").await, descending);
    // With a filter.
    let sapi = logs(&app, "q=type:sapi&sort=date:1").await;
    assert_eq!(descriptions(&sapi), ["Create a role", "Create a user", "Update a user"]);
}

async fn page_pagination_with_totals(app: TestApp) {
    some_writes(&app).await;
    let everything = logs(&app, "per_page=100").await;
    let total = everything.len();
    assert!(total >= 5, "{total}");

    let (status, body) = app.get("/api/v2/logs?include_totals=true&page=1&per_page=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], total, "{body}");
    assert_eq!(body["start"], 2, "{body}");
    assert_eq!(body["limit"], 2, "{body}");
    assert_eq!(body["length"], 2, "{body}");
    assert_eq!(body["logs"].as_array().unwrap()[..], everything[2..4]);

    // Pages cover everything, in order, without overlap.
    let mut paged = Vec::new();
    for page in 0.. {
        let chunk = logs(&app, &format!("page={page}&per_page=2")).await;
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 2);
        paged.extend(chunk);
    }
    assert_eq!(paged, everything);

    // Totals with a filter count the filtered events.
    let (status, body) = app.get("/api/v2/logs?include_totals=true&q=type:sapi&per_page=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 3, "{body}");
    assert_eq!(body["length"], 1, "{body}");
    assert_eq!(body["logs"][0]["description"], "Update a user");
}

async fn checkpoint_pagination(app: TestApp) {
    some_writes(&app).await;
    let ascending = logs(&app, "per_page=100&sort=date:1").await;
    assert!(ascending.len() >= 5);
    let from = ascending[1]["log_id"].as_str().unwrap();

    let next = logs(&app, &format!("from={from}&take=2")).await;
    assert_eq!(next[..], ascending[2..4], "the two events after the checkpoint, oldest first");

    // Walking the checkpoints visits every event once.
    let mut walked = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let chunk = logs(&app, &format!("from={cursor}&take=2")).await;
        let Some(last) = chunk.last() else { break };
        cursor = last["log_id"].as_str().unwrap().to_owned();
        walked.extend(chunk);
    }
    assert_eq!(walked, ascending);

    // After the newest event: nothing.
    let newest = ascending.last().unwrap()["log_id"].as_str().unwrap();
    assert_eq!(logs(&app, &format!("from={newest}&take=10")).await, Vec::<Value>::new());
    // Checkpoints combine with filters.
    let sapi = logs(&app, &format!("from={from}&take=10&q=type:sapi")).await;
    assert_eq!(descriptions(&sapi), ["Create a role", "Create a user", "Update a user"]);
    // `take` alone limits the newest-first list.
    let taken = logs(&app, "take=2").await;
    assert_eq!(descriptions(&taken), ["Update a user", "Create a user"]);
}

async fn a_single_event_by_id(app: TestApp) {
    some_writes(&app).await;
    let events = logs(&app, "per_page=100").await;
    for event in [&events[0], &events[events.len() / 2], events.last().unwrap()] {
        let log_id = event["log_id"].as_str().unwrap();
        let (status, fetched) = app.get(&format!("/api/v2/logs/{log_id}")).await;
        assert_eq!(status, 200, "{fetched}");
        assert_eq!(&fetched, event);
    }
    // Unknown and malformed ids.
    let beyond = seq(&events[0]) + 1000;
    let (status, body) = app.get(&format!("/api/v2/logs/{beyond}")).await;
    assert_api_error(status, &body, 404, "inexistent_resource");
    for bad in ["not-a-log-id", "-1", "1.5", "99999999999999999999999"] {
        let (status, body) = app.get(&format!("/api/v2/logs/{bad}")).await;
        assert_api_error(status, &body, 400, "invalid_query_string");
    }
}

async fn bad_queries_are_refused(app: TestApp) {
    for q in [
        "secret:x",
        "password:hunter2",
        "justaword",
        "date:[yesterday TO today]",
        "date:[2026-01-01 TO",
        "date:[2026-01-01 2026-02-01]",
    ] {
        let (status, body) = app.get(&format!("/api/v2/logs?q={}", enc(q))).await;
        assert_api_error(status, &body, 400, "invalid_query_string");
    }
    let too_long = format!("type:{}", "x".repeat(5000));
    let (status, body) = app.get(&format!("/api/v2/logs?q={too_long}")).await;
    assert_api_error(status, &body, 400, "invalid_query_string");

    for query in ["sort=name:1", "sort=date", "from=abc", "from=-5", "per_page=lots", "take=-1"] {
        let (status, body) = app.get(&format!("/api/v2/logs?{query}")).await;
        assert_api_error(status, &body, 400, "invalid_query_string");
    }
}

async fn reading_logs_needs_read_logs(app: TestApp) {
    let (client, secret) = app.machine_client("no logs", &["read:users", "read:clients", "read:roles"]).await;
    let token = app.client_token(&client, &secret, None).await;
    let (status, body) = app.send_as(&token, Method::GET, "/api/v2/logs", None).await;
    assert_api_error(status, &body, 403, "insufficient_scope");
    assert!(body["message"].as_str().unwrap().contains("read:logs"), "{body}");
    let (status, body) = app.send_as(&token, Method::GET, "/api/v2/logs/00000000000000000001", None).await;
    assert_api_error(status, &body, 403, "insufficient_scope");

    let (reader, secret) = app.machine_client("logs only", &["read:logs"]).await;
    let token = app.client_token(&reader, &secret, None).await;
    let (status, body) = app.send_as(&token, Method::GET, "/api/v2/logs", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.send_as(&token, Method::GET, "/api/v2/logs/00000000000000000001", None).await;
    assert_eq!(status, 200);

    let (status, body) = split(app.http.get(app.url("/api/v2/logs")).send().await.unwrap()).await;
    assert_api_error(status, &body, 401, "invalid_token");
    let (status, body) = app.send_as("not-a-jwt", Method::GET, "/api/v2/logs", None).await;
    assert_api_error(status, &body, 401, "invalid_token");
}

fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Rebuild the stored event from its API view.
fn event_of(view: &Value) -> AuditEvent {
    let date = DateTime::parse_from_rfc3339(view["date"].as_str().unwrap()).unwrap().with_timezone(&Utc);
    AuditEvent {
        event_type: view["type"].as_str().unwrap().to_owned(),
        occurred_at: date,
        actor: Actor::from_parts(view["actor"]["type"].as_str().unwrap(), opt_string(&view["actor"]["id"])),
        on_behalf_of: opt_string(&view["on_behalf_of"]),
        subject: opt_string(&view["user_id"]),
        client_id: opt_string(&view["client_id"]),
        source_ip: opt_string(&view["ip"]),
        description: view["description"].as_str().unwrap().to_owned(),
        details: view["details"].clone(),
    }
}

/// Check that every event, oldest first, chains from the one before it.
fn verify_chain(ascending: &[Value]) {
    let mut seen = std::collections::HashSet::new();
    let mut prev = GENESIS_HASH.to_owned();
    for (i, view) in ascending.iter().enumerate() {
        let hash = view["hash"].as_str().unwrap();
        assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{view}");
        assert!(seen.insert(hash.to_owned()), "hashes are distinct: {view}");
        assert_eq!(seq(view), i as i64 + 1, "no gaps in the sequence");
        let event = event_of(view);
        let expected = chain_hash(seq(view), &event, &view["details"].to_string(), &prev);
        assert_eq!(hash, expected, "event {} does not chain from the one before it: {view}", view["log_id"]);
        prev = hash.to_owned();
    }
}

async fn the_hash_chain_links_every_event(app: TestApp) {
    some_writes(&app).await;
    let (client, secret) = app.machine_client("chained", &["read:users"]).await;
    app.client_token(&client, &secret, None).await;
    let (status, _) = app.delete(&format!("/api/v2/clients/{client}")).await;
    assert_eq!(status, 204);

    let ascending = logs(&app, "per_page=100&sort=date:1").await;
    assert!(ascending.len() >= 8);
    verify_chain(&ascending);
}

async fn concurrent_writes_keep_the_chain_intact(app: TestApp) {
    let before = logs(&app, "per_page=100").await.len();
    let writes = (0..12).map(|i| {
        let app = &app;
        async move {
            if i % 3 == 0 {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", app.management_client_id.as_str()),
                    ("client_secret", "wrong"),
                ];
                let response = app.http.post(app.url("/oauth/token")).form(&form).send().await.unwrap();
                response.status().as_u16()
            } else {
                app.post("/api/v2/roles", &json!({ "name": format!("concurrent {i}") })).await.0
            }
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    for (i, status) in statuses.iter().enumerate() {
        let expected = if i % 3 == 0 { 401 } else { 200 };
        assert_eq!(*status, expected, "request {i}: {statuses:?}");
    }
    let ascending = logs(&app, "per_page=100&sort=date:1").await;
    assert_eq!(ascending.len(), before + 12, "one event per request");
    verify_chain(&ascending);
}

async fn passwords_and_secrets_never_reach_the_log(app: TestApp) {
    let (status, user) =
        app.post("/api/v2/users", &json!({ "email": "ada@example.com", "password": "first password 1234" })).await;
    assert_eq!(status, 201, "{user}");
    let id = user["user_id"].as_str().unwrap();
    let (status, _) =
        app.patch(&format!("/api/v2/users/{}", enc(id)), &json!({ "password": "second password 5678" })).await;
    assert_eq!(status, 200);
    let (client, secret) = app.machine_client("secretive", &["read:users"]).await;
    app.client_token(&client, &secret, None).await;
    let (status, rotated) = app.post(&format!("/api/v2/clients/{client}/rotate-secret"), &json!({})).await;
    assert_eq!(status, 200);
    let rotated = rotated["client_secret"].as_str().unwrap();
    let token = app.client_token(&client, rotated, None).await;

    let text = serde_json::to_string(&logs(&app, "per_page=100").await).unwrap();
    let update = logs(&app, &format!("q={}", enc(&format!(r#"user_id:"{id}" AND type:sapi"#)))).await;
    assert_eq!(update[0]["description"], "Update a user");
    assert_eq!(update[0]["details"]["request"]["fields"], json!(["password"]), "{}", update[0]);
    for needle in [
        "first password 1234",
        "second password 5678",
        secret.as_str(),
        rotated,
        app.management_client_secret.as_str(),
        token.as_str(),
        app.token.as_str(),
    ] {
        assert!(!text.contains(needle), "a secret is in the audit log");
    }
}
