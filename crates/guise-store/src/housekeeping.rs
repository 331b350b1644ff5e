//! `Housekeeping` on diesel: deleting what has expired.

use crate::connection::Database;
use crate::convert::millis;
use crate::schema::{
    access_tokens, authorization_codes, authorization_requests, login_throttle, outbox, refresh_tokens,
    session_clients, sessions,
};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use guise_core::store::{Housekeeping, StoreResult};

/// Consumed codes are kept a day past expiry so that a late replay still revokes.
const CODE_GRACE_MS: i64 = 86_400_000;

impl Housekeeping for Database {
    fn purge_expired(&self, now: DateTime<Utc>, keep_sessions_for: Duration) -> StoreResult<usize> {
        let now = millis(now);
        let session_cutoff = now - keep_sessions_for.num_milliseconds();
        self.run(|| {
            let mut conn = self.conn()?;
            let mut removed = 0;
            removed += diesel::delete(authorization_requests::table.filter(authorization_requests::expires_at.lt(now)))
                .execute(&mut conn)?;
            removed += diesel::delete(
                authorization_codes::table.filter(authorization_codes::expires_at.lt(now - CODE_GRACE_MS)),
            )
            .execute(&mut conn)?;
            removed +=
                diesel::delete(access_tokens::table.filter(access_tokens::expires_at.lt(now))).execute(&mut conn)?;
            removed += diesel::delete(refresh_tokens::table.filter(refresh_tokens::family_expires_at.lt(now)))
                .execute(&mut conn)?;
            removed +=
                diesel::delete(login_throttle::table.filter(login_throttle::locked_until.lt(now).or(
                    login_throttle::locked_until.is_null().and(login_throttle::window_started_at.lt(session_cutoff)),
                )))
                .execute(&mut conn)?;
            removed += diesel::delete(sessions::table.filter(sessions::absolute_expires_at.lt(session_cutoff)))
                .execute(&mut conn)?;
            // Which clients a session logged into goes with the session; delivered
            // outbox messages are kept as long as sessions are.
            removed += diesel::delete(session_clients::table.filter(diesel::dsl::not(diesel::dsl::exists(
                sessions::table.filter(sessions::sid.eq(session_clients::sid)),
            ))))
            .execute(&mut conn)?;
            removed += diesel::delete(
                outbox::table.filter(outbox::status.eq("delivered")).filter(outbox::created_at.lt(session_cutoff)),
            )
            .execute(&mut conn)?;
            Ok(removed)
        })
    }
}
