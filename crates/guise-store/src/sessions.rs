//! `SessionStore` on diesel. Sessions are found by the SHA-256 of their cookie value.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, millis};
use crate::schema::{access_tokens, clients, refresh_tokens, session_clients, sessions};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::session::Session;
use guise_core::store::{SessionStore, StoreResult};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id_hash: String,
    sid: String,
    user_id: String,
    created_at: i64,
    auth_time: i64,
    last_seen: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    source_ip: Option<String>,
    user_agent: Option<String>,
    ended_at: Option<i64>,
    impersonator_id: Option<String>,
    impersonation_reason: Option<String>,
    impersonation_minted_by: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            sid: row.sid,
            user_id: row.user_id,
            created_at: from_millis(row.created_at),
            auth_time: from_millis(row.auth_time),
            last_seen: from_millis(row.last_seen),
            idle_expires_at: from_millis(row.idle_expires_at),
            absolute_expires_at: from_millis(row.absolute_expires_at),
            source_ip: row.source_ip,
            user_agent: row.user_agent,
            ended_at: row.ended_at.map(from_millis),
            impersonator_id: row.impersonator_id,
            impersonation_reason: row.impersonation_reason,
            impersonation_minted_by: row.impersonation_minted_by,
        }
    }
}

/// What ending a session means besides its `ended_at`: every token minted from it is
/// revoked, and every client it logged into is told (the outbox).
fn end_one(conn: &mut AnyConnection, sid: &str, at: i64) -> DbResult<()> {
    diesel::update(sessions::table.filter(sessions::sid.eq(sid)).filter(sessions::ended_at.is_null()))
        .set(sessions::ended_at.eq(at))
        .execute(conn)?;
    crate::outbox::sessions_ended(conn, &[sid.to_owned()], at)?;
    diesel::update(
        refresh_tokens::table.filter(refresh_tokens::sid.eq(sid)).filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(at))
    .execute(conn)?;
    diesel::update(access_tokens::table.filter(access_tokens::sid.eq(sid)).filter(access_tokens::revoked_at.is_null()))
        .set(access_tokens::revoked_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// The event of a session the sweep ended because it expired.
fn expiry_event(row: &SessionRow, at: DateTime<Utc>) -> AuditEvent {
    let details = serde_json::json!({ "sid": row.sid, "reason": "expired" });
    match &row.impersonator_id {
        Some(impersonator) => {
            let mut event = AuditEvent::new(
                event_type::IMPERSONATION_ENDED,
                at,
                Actor::System,
                "Impersonation session ended: expired",
            )
            .subject(row.user_id.clone())
            .details(details);
            event.on_behalf_of = Some(impersonator.clone());
            event
        }
        None => AuditEvent::new(event_type::SESSION_EXPIRED, at, Actor::System, "Session expired")
            .subject(row.user_id.clone())
            .details(details),
    }
}

impl SessionStore for Database {
    fn create_session(&self, id_hash: &str, s: Session, audit: AuditEvent) -> StoreResult<()> {
        let row = SessionRow {
            id_hash: id_hash.to_owned(),
            sid: s.sid,
            user_id: s.user_id,
            created_at: millis(s.created_at),
            auth_time: millis(s.auth_time),
            last_seen: millis(s.last_seen),
            idle_expires_at: millis(s.idle_expires_at),
            absolute_expires_at: millis(s.absolute_expires_at),
            source_ip: s.source_ip,
            user_agent: s.user_agent,
            ended_at: None,
            impersonator_id: s.impersonator_id,
            impersonation_reason: s.impersonation_reason,
            impersonation_minted_by: s.impersonation_minted_by,
        };
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                diesel::insert_into(sessions::table).values(&row).execute(conn)?;
                Ok(())
            })?;
            Ok(())
        })
    }

    fn session_by_cookie_hash(&self, id_hash: &str) -> StoreResult<Session> {
        self.run(|| {
            let row: SessionRow =
                sessions::table.find(id_hash).select(SessionRow::as_select()).first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn session_by_sid(&self, sid: &str) -> StoreResult<Session> {
        self.run(|| {
            let row: SessionRow = sessions::table
                .filter(sessions::sid.eq(sid))
                .select(SessionRow::as_select())
                .first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn touch_session(&self, sid: &str, last_seen: DateTime<Utc>, idle_expires_at: DateTime<Utc>) -> StoreResult<()> {
        self.run(|| {
            diesel::update(sessions::table.filter(sessions::sid.eq(sid)))
                .set((sessions::last_seen.eq(millis(last_seen)), sessions::idle_expires_at.eq(millis(idle_expires_at))))
                .execute(&mut self.conn()?)?;
            Ok(())
        })
    }

    fn end_session(&self, sid: &str, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<()> {
        let at = millis(at);
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                let ended =
                    diesel::update(sessions::table.filter(sessions::sid.eq(sid)).filter(sessions::ended_at.is_null()))
                        .set(sessions::ended_at.eq(at))
                        .execute(conn)?;
                if ended == 0 {
                    return Err(StoreError::NotFound.into());
                }
                end_one(conn, sid, at)
            })?;
            Ok(())
        })
    }

    fn end_expired_sessions(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<usize> {
        let now = millis(now);
        self.run(|| {
            let (ended, _) = self.write_deciding(|conn| {
                let tell_clients = session_clients::table
                    .inner_join(clients::table.on(clients::client_id.eq(session_clients::client_id)))
                    .filter(session_clients::sid.eq(sessions::sid))
                    // A back-channel URI, or a SAML login (whether its client has a
                    // logout URL is decided by `outbox::sessions_ended`).
                    .filter(
                        clients::backchannel_logout_uri.is_not_null().or(session_clients::saml_name_id.is_not_null()),
                    );
                let expired: Vec<SessionRow> = sessions::table
                    .filter(sessions::ended_at.is_null())
                    .filter(sessions::idle_expires_at.le(now).or(sessions::absolute_expires_at.le(now)))
                    .filter(sessions::impersonator_id.is_not_null().or(diesel::dsl::exists(tell_clients)))
                    .order(sessions::absolute_expires_at.asc())
                    .limit(limit)
                    .select(SessionRow::as_select())
                    .load(conn)?;
                let mut events = Vec::with_capacity(expired.len());
                for row in &expired {
                    let at = row.idle_expires_at.min(row.absolute_expires_at);
                    end_one(conn, &row.sid, at)?;
                    events.push(expiry_event(row, from_millis(at)));
                }
                Ok((expired.len(), events))
            })?;
            Ok(ended)
        })
    }

    fn sessions_of_user(&self, user_id: &str) -> StoreResult<Vec<Session>> {
        self.run(|| {
            let rows: Vec<SessionRow> = sessions::table
                .filter(sessions::user_id.eq(user_id))
                .order(sessions::created_at.desc())
                .select(SessionRow::as_select())
                .load(&mut self.conn()?)?;
            Ok(rows.into_iter().map(Session::from).collect())
        })
    }
}
