//! Bewit keys, the bewit replay store and impersonation-session queries on diesel.

use crate::connection::{AnyConnection, Database};
use crate::convert::millis;
use crate::schema::{bewit_keys, bewit_redemptions, sessions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::bewit::{BewitKey, MAX_CLOCK_SKEW_SECS};
use guise_core::session::Session;
use guise_core::store::{BewitStore, ImpersonationFilter, ImpersonationSessionStore, SessionStore, StoreResult};

const ACTIVE: &str = "active";
const RETIRED: &str = "retired";

/// Store `key` as the active bewit key.
fn insert_active(conn: &mut AnyConnection, key: &BewitKey, at: DateTime<Utc>) -> QueryResult<usize> {
    diesel::insert_into(bewit_keys::table)
        .values((
            bewit_keys::kid.eq(&key.id),
            bewit_keys::key_material.eq(STANDARD.encode(&key.key)),
            bewit_keys::state.eq(ACTIVE),
            bewit_keys::created_at.eq(millis(at)),
        ))
        .execute(conn)
}

impl BewitStore for Database {
    fn bewit_keys(&self) -> StoreResult<Vec<(BewitKey, bool)>> {
        self.run(|| {
            let rows: Vec<(String, String, String)> = bewit_keys::table
                .order(bewit_keys::created_at.desc())
                .select((bewit_keys::kid, bewit_keys::key_material, bewit_keys::state))
                .load(&mut self.conn()?)?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, material, state)| {
                    let key = STANDARD.decode(material).ok()?;
                    Some((BewitKey { id, key }, state == ACTIVE))
                })
                .collect())
        })
    }

    fn install_first_bewit_key(&self, key: BewitKey, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<bool> {
        self.run(|| {
            let (installed, _) = self.write_deciding(|conn| {
                let active: i64 = bewit_keys::table.filter(bewit_keys::state.eq(ACTIVE)).count().get_result(conn)?;
                if active > 0 {
                    return Ok((false, vec![]));
                }
                insert_active(conn, &key, at)?;
                Ok((true, vec![audit.clone()]))
            })?;
            Ok(installed)
        })
    }

    fn rotate_bewit_key(&self, key: BewitKey, at: DateTime<Utc>, audit: AuditEvent) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                diesel::update(bewit_keys::table.filter(bewit_keys::state.eq(ACTIVE)))
                    .set(bewit_keys::state.eq(RETIRED))
                    .execute(conn)?;
                insert_active(conn, &key, at)?;
                Ok(())
            })?;
            Ok(())
        })
    }

    fn redeem_once(&self, jti: &str, at: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<bool> {
        let inserted = self.run(|| {
            let mut conn = self.conn()?;
            // Forget redemptions whose bewits no node can verify any more: `at` is this
            // node's clock, and a node whose clock is behind by up to the maximum skew
            // still accepts the bewit until its own clock reaches `exp`.
            let forget_before = millis(at) - MAX_CLOCK_SKEW_SECS * 1000;
            diesel::delete(bewit_redemptions::table.filter(bewit_redemptions::expires_at.lt(forget_before)))
                .execute(&mut conn)?;
            diesel::insert_into(bewit_redemptions::table)
                .values((
                    bewit_redemptions::jti.eq(jti),
                    bewit_redemptions::redeemed_at.eq(millis(at)),
                    bewit_redemptions::expires_at.eq(millis(expires_at)),
                ))
                .execute(&mut conn)?;
            Ok(())
        });
        match inserted {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl ImpersonationSessionStore for Database {
    fn impersonation_sessions(&self, filter: &ImpersonationFilter, now: DateTime<Utc>) -> StoreResult<Vec<Session>> {
        let sids = self.run(|| {
            let mut query = sessions::table
                .filter(sessions::impersonator_id.is_not_null())
                .filter(sessions::ended_at.is_null())
                .filter(sessions::absolute_expires_at.gt(millis(now)))
                .filter(sessions::idle_expires_at.gt(millis(now)))
                .into_boxed();
            if let Some(impersonator) = &filter.impersonator_id {
                query = query.filter(sessions::impersonator_id.eq(impersonator.clone()));
            }
            if let Some(user) = &filter.user_id {
                query = query.filter(sessions::user_id.eq(user.clone()));
            }
            Ok(query
                .order(sessions::created_at.desc())
                .limit(1000)
                .select(sessions::sid)
                .load::<String>(&mut self.conn()?)?)
        })?;
        sids.iter().map(|sid| self.session_by_sid(sid)).collect()
    }
}
