//! The outbox on diesel: webhook subscriptions, and the deliveries written in the
//! transaction of the change that causes them — `enqueue_for_records` (called by
//! `Database::write_deciding` after the audit events are appended) and `sessions_ended`
//! (called by every store write that ends a session) are the only places deliveries are
//! made. A worker claims one due delivery at a time (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, a compare-and-set on SQLite) under a lease.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, json_strings, millis, to_json};
use crate::schema::{clients, outbox, session_clients, sessions, users, webhooks};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::{AuditEvent, AuditRecord};
use guise_core::ids::new_token_id;
use guise_core::outbox::{
    AttemptOutcome, Delivery, DeliveryFilter, DeliveryKind, DeliveryStatus, Webhook, WebhookPatch, event,
    is_impersonation_notice, webhook_events,
};
use guise_core::page::{Page, PageRequest};
use guise_core::store::{OutboxStore, StoreResult, WebhookStore};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks)]
struct WebhookRow {
    id: String,
    url: String,
    secret: String,
    event_types: String,
    description: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            secret: r.secret,
            event_types: json_strings(&r.event_types),
            description: r.description,
            enabled: r.enabled,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

impl From<&Webhook> for WebhookRow {
    fn from(w: &Webhook) -> Self {
        WebhookRow {
            id: w.id.clone(),
            url: w.url.clone(),
            secret: w.secret.clone(),
            event_types: to_json(&w.event_types),
            description: w.description.clone(),
            enabled: w.enabled,
            created_at: millis(w.created_at),
            updated_at: millis(w.updated_at),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = outbox)]
struct DeliveryRow {
    id: String,
    kind: String,
    target: String,
    event_type: String,
    audit_seq: Option<i64>,
    payload: String,
    status: String,
    attempts: i32,
    next_attempt_at: i64,
    leased_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Delivery {
            id: r.id,
            kind: DeliveryKind::parse(&r.kind).unwrap_or(DeliveryKind::Webhook),
            target: r.target,
            event_type: r.event_type,
            audit_seq: r.audit_seq,
            payload: serde_json::from_str(&r.payload).unwrap_or(Value::Null),
            status: DeliveryStatus::parse(&r.status).unwrap_or(DeliveryStatus::Failed),
            attempts: r.attempts,
            next_attempt_at: from_millis(r.next_attempt_at),
            last_error: r.last_error,
            created_at: from_millis(r.created_at),
            delivered_at: r.delivered_at.map(from_millis),
        }
    }
}

fn insert_delivery(
    conn: &mut AnyConnection,
    kind: DeliveryKind,
    target: &str,
    event_type: &str,
    audit_seq: Option<i64>,
    payload: &Value,
    at: i64,
) -> DbResult<()> {
    let row = DeliveryRow {
        id: format!("msg_{}", new_token_id()),
        kind: kind.as_str().to_owned(),
        target: target.to_owned(),
        event_type: event_type.to_owned(),
        audit_seq,
        payload: payload.to_string(),
        status: DeliveryStatus::Pending.as_str().to_owned(),
        attempts: 0,
        next_attempt_at: at,
        leased_until: None,
        last_error: None,
        created_at: at,
        delivered_at: None,
    };
    diesel::insert_into(outbox::table).values(&row).execute(conn)?;
    Ok(())
}

/// A user as a notice names them: id, email and name (just the id if they are gone).
fn person(conn: &mut AnyConnection, user_id: &str) -> DbResult<Value> {
    let found: Option<(String, Option<String>)> =
        users::table.find(user_id).select((users::email, users::name)).first(conn).optional()?;
    Ok(match found {
        Some((email, name)) => json!({ "user_id": user_id, "email": email, "name": name }),
        None => json!({ "user_id": user_id }),
    })
}

fn client_named(conn: &mut AnyConnection, client_id: &str) -> DbResult<Value> {
    let name: Option<String> = clients::table.find(client_id).select(clients::name).first(conn).optional()?;
    Ok(json!({ "client_id": client_id, "name": name }))
}

fn iso(ms: i64) -> String {
    from_millis(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What a notice about `event` says: both people named (actor, subject, the impersonator
/// and whom the actor acted for), the application, the reason, and for impersonations
/// the session's times. Audit details carry no secrets, so they go along.
fn notice_data(conn: &mut AnyConnection, record: &AuditRecord) -> DbResult<Value> {
    let e = &record.event;
    let mut data = json!({
        "log_id": record.log_id(),
        "description": e.description,
        "details": e.details,
    });
    data["actor"] = match e.actor.id() {
        Some(id) if e.actor.kind() == "user" => person(conn, id)?,
        Some(id) => json!({ "client_id": id }),
        None => json!({ "system": true }),
    };
    if let Some(subject) = &e.subject {
        data["user"] = person(conn, subject)?;
    }
    if let Some(on_behalf_of) = &e.on_behalf_of {
        data["on_behalf_of"] = person(conn, on_behalf_of)?;
    }
    if let Some(client_id) = &e.client_id {
        data["client"] = client_named(conn, client_id)?;
    }
    if let Some(sid) = e.details.get("sid").and_then(Value::as_str) {
        // impersonator, reason, started, expires, ended
        type Times = (Option<String>, Option<String>, i64, i64, Option<i64>);
        let session: Option<Times> = sessions::table
            .filter(sessions::sid.eq(sid))
            .select((
                sessions::impersonator_id,
                sessions::impersonation_reason,
                sessions::created_at,
                sessions::absolute_expires_at,
                sessions::ended_at,
            ))
            .first(conn)
            .optional()?;
        // An ended impersonation names the application it was for (the event's client
        // may be the one whose API call ended it; that caller is the actor).
        let ending = e.event_type == guise_core::audit::event_type::IMPERSONATION_ENDED;
        if data.get("client").is_none() || ending {
            let first: Option<String> = session_clients::table
                .filter(session_clients::sid.eq(sid))
                .order(session_clients::first_at.asc())
                .select(session_clients::client_id)
                .first(conn)
                .optional()?;
            if let Some(client_id) = first {
                data["client"] = client_named(conn, &client_id)?;
            }
        }
        if let Some((Some(impersonator), reason, started, expires, ended)) = session {
            data["impersonator"] = person(conn, &impersonator)?;
            data["reason"] = json!(reason);
            data["started_at"] = json!(iso(started));
            data["expires_at"] = json!(iso(expires));
            data["ended_at"] = json!(ended.map(iso));
            data["duration_seconds"] = json!((ended.unwrap_or(expires) - started) / 1000);
            if let Some(end_reason) = e.details.get("reason").filter(|_| ended.is_some()) {
                data["end_reason"] = end_reason.clone();
            }
        }
    }
    if data.get("reason").is_none()
        && let Some(reason) = e.details.get("reason")
    {
        data["reason"] = reason.clone();
    }
    Ok(data)
}

fn envelope(event_type: &str, at: DateTime<Utc>, data: Value) -> Value {
    json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

fn enabled_webhooks(conn: &mut AnyConnection) -> DbResult<Vec<Webhook>> {
    let rows: Vec<WebhookRow> =
        webhooks::table.filter(webhooks::enabled.eq(true)).select(WebhookRow::as_select()).load(conn)?;
    Ok(rows.into_iter().map(Webhook::from).collect())
}

/// The deliveries the just-appended `records` cause: one per subscribed webhook, and
/// with `mail_notices` an email to the user an impersonation started or ended on.
pub(crate) fn enqueue_for_records(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
    mail_notices: bool,
) -> DbResult<()> {
    let mut subscribers: Option<Vec<Webhook>> = None;
    for record in records {
        logged_into(conn, &record.event)?;
        for kind in webhook_events(&record.event) {
            // Who wants it first: the notice's lookups (people, client, session) are made
            // only for an event someone is told of.
            let hooks = match &mut subscribers {
                Some(hooks) => hooks,
                None => subscribers.insert(enabled_webhooks(conn)?),
            };
            let wanted: Vec<String> = hooks.iter().filter(|h| h.wants(kind)).map(|h| h.id.clone()).collect();
            let mailed = record.event.subject.as_deref().filter(|_| mail_notices && is_impersonation_notice(kind));
            if wanted.is_empty() && mailed.is_none() {
                continue;
            }
            let at = millis(record.event.occurred_at);
            let payload = envelope(kind, record.event.occurred_at, notice_data(conn, record)?);
            for hook in &wanted {
                insert_delivery(conn, DeliveryKind::Webhook, hook, kind, Some(record.seq), &payload, at)?;
            }
            if let Some(subject) = mailed {
                insert_delivery(conn, DeliveryKind::Email, subject, kind, Some(record.seq), &payload, at)?;
            }
        }
    }
    Ok(())
}

/// Sessions `sids` end at `at` (milliseconds): every client they logged into that
/// registered a `backchannel_logout_uri` gets a logout, and webhooks of
/// `session.ended` a notice. Called inside the write that ends them.
pub(crate) fn sessions_ended(conn: &mut AnyConnection, sids: &[String], at: i64) -> DbResult<()> {
    let mut subscribers: Option<Vec<Webhook>> = None;
    for sid in sids {
        let session: Option<(String, Option<String>)> = sessions::table
            .filter(sessions::sid.eq(sid))
            .select((sessions::user_id, sessions::impersonator_id))
            .first(conn)
            .optional()?;
        let Some((user_id, impersonator)) = session else { continue };
        type LoggedInto = (String, bool, String, Option<String>, Option<String>);
        let logged_into: Vec<LoggedInto> = session_clients::table
            .inner_join(clients::table.on(clients::client_id.eq(session_clients::client_id)))
            .filter(session_clients::sid.eq(sid))
            .select((
                clients::client_id,
                clients::backchannel_logout_uri.is_not_null(),
                clients::addons,
                session_clients::saml_name_id,
                session_clients::saml_name_id_format,
            ))
            .load(conn)?;
        // A logout names the session; where it goes (and how) the worker reads from the
        // client when it sends it.
        for (client_id, backchannel, addons, name_id, name_id_format) in &logged_into {
            if let (true, Some(name_id), Some(format)) = (saml_logout_wanted(addons), name_id, name_id_format) {
                let payload = json!({
                    "sub": user_id,
                    "sid": sid,
                    "name_id": name_id,
                    "name_id_format": format,
                });
                insert_delivery(conn, DeliveryKind::SamlLogout, client_id, event::SESSION_ENDED, None, &payload, at)?;
            }
            if *backchannel {
                let payload = json!({ "sub": user_id, "sid": sid });
                insert_delivery(
                    conn,
                    DeliveryKind::BackchannelLogout,
                    client_id,
                    event::SESSION_ENDED,
                    None,
                    &payload,
                    at,
                )?;
            }
        }
        if subscribers.is_none() {
            subscribers = Some(enabled_webhooks(conn)?);
        }
        let wanted: Vec<&Webhook> = subscribers.iter().flatten().filter(|h| h.wants(event::SESSION_ENDED)).collect();
        if !wanted.is_empty() {
            let mut data = json!({
                "sid": sid,
                "user": person(conn, &user_id)?,
                "clients": logged_into.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
            });
            if let Some(impersonator) = impersonator {
                data["impersonator"] = person(conn, &impersonator)?;
            }
            let payload = envelope(event::SESSION_ENDED, from_millis(at), data);
            for hook in wanted {
                insert_delivery(conn, DeliveryKind::Webhook, &hook.id, event::SESSION_ENDED, None, &payload, at)?;
            }
        }
    }
    Ok(())
}

/// A SAML Response or WS-Fed sign-in response issued for a session: the session
/// logged into that client (OIDC logins are recorded when their code is saved).
fn logged_into(conn: &mut AnyConnection, e: &AuditEvent) -> DbResult<()> {
    use guise_core::audit::event_type::{SAML_RESPONSE, WSFED_SIGN_IN};
    if e.event_type != SAML_RESPONSE && e.event_type != WSFED_SIGN_IN {
        return Ok(());
    }
    let text = |key: &str| e.details.get(key).and_then(Value::as_str);
    let saml = match (text("name_id"), text("name_id_format")) {
        (Some(name_id), Some(format)) => Some((name_id, format)),
        _ => None,
    };
    match (text("sid"), &e.client_id) {
        (Some(sid), Some(client_id)) => record_session_client(conn, sid, client_id, millis(e.occurred_at), saml),
        _ => Ok(()),
    }
}

/// Whether a SAML client wants a LogoutRequest when a session that logged into it ends:
/// it has a single-logout URL (`addons.samlp.logout.callback`) and `slo_enabled` is not
/// false. The worker checks again when it sends (`SamlSettings::logout_request_url`).
fn saml_logout_wanted(addons: &str) -> bool {
    let Ok(addons) = serde_json::from_str::<Value>(addons) else { return false };
    let Some(logout) = addons.get("samlp").and_then(|s| s.get("logout")) else { return false };
    logout.get("slo_enabled").and_then(Value::as_bool) != Some(false)
        && logout.get("callback").and_then(Value::as_str).is_some()
}

/// Remember that session `sid` logged into `client_id` (for its logouts), with the
/// SAML NameID (and its format) when it was a SAML login.
pub(crate) fn record_session_client(
    conn: &mut AnyConnection,
    sid: &str,
    client_id: &str,
    at: i64,
    saml: Option<(&str, &str)>,
) -> DbResult<()> {
    let this =
        session_clients::table.filter(session_clients::sid.eq(sid)).filter(session_clients::client_id.eq(client_id));
    let known: i64 = this.count().get_result(conn)?;
    let (name_id, format) = (saml.map(|s| s.0), saml.map(|s| s.1));
    if known > 0 && saml.is_some() {
        diesel::update(this)
            .set((session_clients::saml_name_id.eq(name_id), session_clients::saml_name_id_format.eq(format)))
            .execute(conn)?;
    }
    if known == 0 {
        let inserted = diesel::insert_into(session_clients::table)
            .values((
                session_clients::sid.eq(sid),
                session_clients::client_id.eq(client_id),
                session_clients::first_at.eq(at),
                session_clients::saml_name_id.eq(name_id),
                session_clients::saml_name_id_format.eq(format),
            ))
            .execute(conn);
        match inserted.map_err(crate::convert::DbError::from) {
            // Another request recorded it first.
            Err(crate::convert::DbError(StoreError::Conflict(_))) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

impl Database {
    /// Whether impersonation notices go to the impersonated user by email (SMTP
    /// configured and the `impersonation_notify` policy on); set once at start.
    pub fn set_mail_notices(&self, on: bool) {
        self.mail_notices.store(on, Ordering::Relaxed);
    }

    pub(crate) fn mail_notices(&self) -> bool {
        self.mail_notices.load(Ordering::Relaxed)
    }
}

fn load_delivery(conn: &mut AnyConnection, id: &str) -> DbResult<Delivery> {
    let row: DeliveryRow = outbox::table.find(id).select(DeliveryRow::as_select()).first(conn)?;
    Ok(row.into())
}

impl OutboxStore for Database {
    fn claim_delivery(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> StoreResult<Option<Delivery>> {
        let (now, lease) = (millis(now), millis(lease_until));
        let is_due = || {
            outbox::status
                .eq(DeliveryStatus::Pending.as_str())
                .and(outbox::next_attempt_at.le(now))
                .and(outbox::leased_until.is_null().or(outbox::leased_until.lt(now)))
        };
        self.run(|| {
            let mut conn = self.conn()?;
            let claimed: Option<String> = match &mut *conn {
                AnyConnection::Postgresql(pg) => pg.transaction(|pg| {
                    let id: Option<String> = outbox::table
                        .filter(is_due())
                        .order(outbox::next_attempt_at.asc())
                        .select(outbox::id)
                        .limit(1)
                        .for_update()
                        .skip_locked()
                        .first(pg)
                        .optional()?;
                    if let Some(id) = &id {
                        diesel::update(outbox::table.find(id))
                            .set((outbox::leased_until.eq(lease), outbox::attempts.eq(outbox::attempts + 1)))
                            .execute(pg)?;
                    }
                    Ok::<_, diesel::result::Error>(id)
                })?,
                AnyConnection::Sqlite(lite) => {
                    // One writer at a time: a compare-and-set on the lease claims it.
                    let mut claimed = None;
                    for _ in 0..3 {
                        let Some(id) = outbox::table
                            .filter(is_due())
                            .order(outbox::next_attempt_at.asc())
                            .select(outbox::id)
                            .first::<String>(lite)
                            .optional()?
                        else {
                            break;
                        };
                        let won = diesel::update(outbox::table.find(&id).filter(is_due()))
                            .set((outbox::leased_until.eq(lease), outbox::attempts.eq(outbox::attempts + 1)))
                            .execute(lite)?;
                        if won == 1 {
                            claimed = Some(id);
                            break;
                        }
                    }
                    claimed
                }
            };
            claimed.map(|id| load_delivery(&mut conn, &id)).transpose()
        })
    }

    fn record_attempt(
        &self,
        id: &str,
        outcome: &AttemptOutcome,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = millis(now);
        self.run(|| {
            let target = outbox::table.find(id);
            let mut conn = self.conn()?;
            match outcome {
                AttemptOutcome::Delivered => diesel::update(target)
                    .set((
                        outbox::status.eq(DeliveryStatus::Delivered.as_str()),
                        outbox::leased_until.eq(None::<i64>),
                        outbox::delivered_at.eq(Some(now)),
                        outbox::last_error.eq(None::<String>),
                    ))
                    .execute(&mut conn)?,
                AttemptOutcome::Failed(error) => {
                    let error: String = error.chars().take(500).collect();
                    let (status, next) = match retry_at {
                        Some(at) => (DeliveryStatus::Pending, millis(at)),
                        None => (DeliveryStatus::Failed, now),
                    };
                    diesel::update(target)
                        .set((
                            outbox::status.eq(status.as_str()),
                            outbox::leased_until.eq(None::<i64>),
                            outbox::next_attempt_at.eq(next),
                            outbox::last_error.eq(Some(error)),
                        ))
                        .execute(&mut conn)?
                }
            };
            Ok(())
        })
    }

    fn deliveries(&self, filter: &DeliveryFilter, page: PageRequest) -> StoreResult<Page<Delivery>> {
        self.run(|| {
            let mut query = outbox::table.into_boxed();
            if let Some(target) = &filter.target {
                query = query.filter(outbox::target.eq(target.clone()));
            }
            if let Some(status) = filter.status {
                query = query.filter(outbox::status.eq(status.as_str()));
            }
            if let Some(kind) = filter.kind {
                query = query.filter(outbox::kind.eq(kind.as_str()));
            }
            let rows: Vec<DeliveryRow> = query
                .order((outbox::created_at.desc(), outbox::id.asc()))
                .offset(page.offset())
                .limit(page.limit())
                .select(DeliveryRow::as_select())
                .load(&mut self.conn()?)?;
            let mut count = outbox::table.into_boxed();
            if let Some(target) = &filter.target {
                count = count.filter(outbox::target.eq(target.clone()));
            }
            if let Some(status) = filter.status {
                count = count.filter(outbox::status.eq(status.as_str()));
            }
            if let Some(kind) = filter.kind {
                count = count.filter(outbox::kind.eq(kind.as_str()));
            }
            let total = count.count().get_result(&mut self.conn()?)?;
            Ok(Page { items: rows.into_iter().map(Delivery::from).collect(), request: page, total })
        })
    }

    fn delivery(&self, id: &str) -> StoreResult<Delivery> {
        self.run(|| load_delivery(&mut *self.conn()?, id))
    }

    fn retry_delivery(&self, id: &str, now: DateTime<Utc>, audit: AuditEvent) -> StoreResult<Delivery> {
        let now = millis(now);
        self.run(|| {
            let (delivery, _) = self.write(vec![audit.clone()], |conn| {
                let changed = diesel::update(
                    outbox::table.find(id).filter(outbox::status.ne(DeliveryStatus::Delivered.as_str())),
                )
                .set((
                    outbox::status.eq(DeliveryStatus::Pending.as_str()),
                    outbox::attempts.eq(0),
                    outbox::next_attempt_at.eq(now),
                ))
                .execute(conn)?;
                if changed == 0 {
                    // Unknown, or delivered already (a delivered message is not sent twice).
                    return match load_delivery(conn, id) {
                        Ok(_) => Err(StoreError::Conflict("the delivery was delivered".into()).into()),
                        Err(e) => Err(e),
                    };
                }
                load_delivery(conn, id)
            })?;
            Ok(delivery)
        })
    }
}

impl WebhookStore for Database {
    fn create_webhook(&self, webhook: Webhook, audit: AuditEvent) -> StoreResult<Webhook> {
        let row = WebhookRow::from(&webhook);
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                diesel::insert_into(webhooks::table).values(&row).execute(conn)?;
                Ok(())
            })?;
            Ok(webhook.clone())
        })
    }

    fn webhook(&self, id: &str) -> StoreResult<Webhook> {
        self.run(|| {
            let row: WebhookRow = webhooks::table.find(id).select(WebhookRow::as_select()).first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn list_webhooks(&self, page: PageRequest) -> StoreResult<Page<Webhook>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let rows: Vec<WebhookRow> = webhooks::table
                .order((webhooks::created_at.asc(), webhooks::id.asc()))
                .offset(page.offset())
                .limit(page.limit())
                .select(WebhookRow::as_select())
                .load(&mut conn)?;
            let total = webhooks::table.count().get_result(&mut conn)?;
            Ok(Page { items: rows.into_iter().map(Webhook::from).collect(), request: page, total })
        })
    }

    fn update_webhook(
        &self,
        id: &str,
        patch: WebhookPatch,
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<Webhook> {
        self.run(|| {
            let (webhook, _) = self.write(vec![audit.clone()], |conn| {
                let row: WebhookRow = webhooks::table.find(id).select(WebhookRow::as_select()).first(conn)?;
                let mut webhook = Webhook::from(row);
                patch.clone().apply_to(&mut webhook);
                webhook.updated_at = at;
                diesel::update(webhooks::table.find(id)).set(&WebhookRow::from(&webhook)).execute(conn)?;
                Ok(webhook)
            })?;
            Ok(webhook)
        })
    }

    fn delete_webhook(&self, id: &str, audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| match diesel::delete(webhooks::table.find(id)).execute(conn)? {
                0 => Err(StoreError::NotFound.into()),
                _ => {
                    // Undelivered messages to it go with it; delivered ones stay as the record.
                    diesel::delete(
                        outbox::table
                            .filter(outbox::target.eq(id))
                            .filter(outbox::status.ne(DeliveryStatus::Delivered.as_str())),
                    )
                    .execute(conn)?;
                    Ok(())
                }
            })?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::connection::DatabaseUrl;
    use diesel::connection::InstrumentationEvent;
    use guise_core::audit::{Actor, event_type};
    use std::sync::{Arc, Mutex};

    /// Every statement run on a connection, as SQL.
    fn record_statements(conn: &mut AnyConnection) -> Arc<Mutex<Vec<String>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let recorder = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                sink.lock().unwrap().push(query.to_string());
            }
        };
        match conn {
            AnyConnection::Sqlite(c) => c.set_instrumentation(recorder),
            AnyConnection::Postgresql(c) => c.set_instrumentation(recorder),
        }
        seen
    }

    fn impersonation_ended(seq: i64) -> AuditRecord {
        let event =
            AuditEvent::new(event_type::IMPERSONATION_ENDED, Utc::now(), Actor::User("guise|admin".into()), "ended")
                .subject("guise|alice")
                .client("app")
                .details(json!({ "sid": "sid-1", "reason": "ended" }));
        AuditRecord { seq, event, details_text: String::new(), prev_hash: String::new(), hash: String::new() }
    }

    fn webhook(id: &str, event_types: &[&str]) -> Webhook {
        Webhook {
            id: id.into(),
            url: "https://hooks.example.com/".into(),
            secret: "whsec_c2VjcmV0".into(),
            event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
            description: String::new(),
            enabled: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// The statements that looked something up for a notice's payload.
    fn lookups(statements: &[String]) -> Vec<String> {
        let tables = ["`users`", "`clients`", "`sessions`", "`session_clients`"];
        statements.iter().filter(|s| tables.iter().any(|t| s.contains(t))).cloned().collect()
    }

    #[test]
    fn a_notice_nobody_wants_is_not_built() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("guise.db"));
        let db = Database::connect(&url, 2, std::time::Duration::from_secs(5)).unwrap();
        let mut conn = db.conn().unwrap();
        let statements = record_statements(&mut conn);

        // No webhook, no email: the subscribers are read, and nothing is looked up.
        enqueue_for_records(&mut conn, &[impersonation_ended(1)], false).unwrap();
        assert_eq!(lookups(&statements.lock().unwrap()), Vec::<String>::new());
        assert!(statements.lock().unwrap().iter().any(|s| s.contains("`webhooks`")));

        // A webhook of another event: still nothing.
        diesel::insert_into(webhooks::table)
            .values(WebhookRow::from(&webhook("wh1", &["user.blocked"])))
            .execute(&mut *conn)
            .unwrap();
        statements.lock().unwrap().clear();
        enqueue_for_records(&mut conn, &[impersonation_ended(2)], false).unwrap();
        assert_eq!(lookups(&statements.lock().unwrap()), Vec::<String>::new());
        let queued: i64 = outbox::table.count().get_result(&mut *conn).unwrap();
        assert_eq!(queued, 0);

        // Someone wants it (an email, then a webhook): the notice is built and queued.
        enqueue_for_records(&mut conn, &[impersonation_ended(3)], true).unwrap();
        assert!(!lookups(&statements.lock().unwrap()).is_empty());
        diesel::insert_into(webhooks::table)
            .values(WebhookRow::from(&webhook("wh2", &["impersonation.ended"])))
            .execute(&mut *conn)
            .unwrap();
        enqueue_for_records(&mut conn, &[impersonation_ended(4)], false).unwrap();
        let queued: Vec<(String, String)> =
            outbox::table.order(outbox::kind.asc()).select((outbox::kind, outbox::target)).load(&mut *conn).unwrap();
        assert_eq!(
            queued,
            vec![("email".to_owned(), "guise|alice".to_owned()), ("webhook".to_owned(), "wh2".to_owned())]
        );
    }
}
