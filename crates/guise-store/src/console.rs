//! `ConsoleSessionStore` on diesel: the support console's sessions.

use crate::connection::Database;
use crate::convert::{from_millis, millis};
use crate::schema::console_sessions;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::console::ConsoleSession;
use guise_core::store::{ConsoleSessionStore, StoreResult};

type Row = (String, String, String, String, i64, i64, i64);

fn from_row((id_hash, user_id, label, sealed_token, auth_time, created_at, expires_at): Row) -> ConsoleSession {
    ConsoleSession {
        id_hash,
        user_id,
        label,
        sealed_token,
        auth_time: from_millis(auth_time),
        created_at: from_millis(created_at),
        expires_at: from_millis(expires_at),
    }
}

impl ConsoleSessionStore for Database {
    fn create_console_session(&self, session: &ConsoleSession, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(|| {
            let mut conn = self.conn()?;
            diesel::delete(console_sessions::table.filter(console_sessions::expires_at.lt(millis(now))))
                .execute(&mut conn)?;
            diesel::insert_into(console_sessions::table)
                .values((
                    console_sessions::id_hash.eq(&session.id_hash),
                    console_sessions::user_id.eq(&session.user_id),
                    console_sessions::label.eq(&session.label),
                    console_sessions::sealed_token.eq(&session.sealed_token),
                    console_sessions::auth_time.eq(millis(session.auth_time)),
                    console_sessions::created_at.eq(millis(session.created_at)),
                    console_sessions::expires_at.eq(millis(session.expires_at)),
                ))
                .execute(&mut conn)?;
            Ok(())
        })
    }

    fn console_session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<ConsoleSession>> {
        self.run(|| {
            let row: Option<Row> = console_sessions::table
                .find(id_hash)
                .filter(console_sessions::expires_at.gt(millis(now)))
                .select((
                    console_sessions::id_hash,
                    console_sessions::user_id,
                    console_sessions::label,
                    console_sessions::sealed_token,
                    console_sessions::auth_time,
                    console_sessions::created_at,
                    console_sessions::expires_at,
                ))
                .first(&mut self.conn()?)
                .optional()?;
            Ok(row.map(from_row))
        })
    }

    fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        self.run(|| {
            diesel::delete(console_sessions::table.find(id_hash)).execute(&mut self.conn()?)?;
            Ok(())
        })
    }
}
