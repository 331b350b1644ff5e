//! Refresh-token families and issued access tokens on diesel: rotation, reuse
//! detection and revocation.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, json_strings, millis, to_json};
use crate::schema::{access_tokens, refresh_tokens};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::authorization::{AccessTokenRecord, RefreshRedemption, RefreshTokenRecord};
use guise_core::store::{StoreResult, TokenStore};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
struct RefreshRow {
    token_hash: String,
    family_id: String,
    client_id: String,
    user_id: String,
    sid: String,
    scope: String,
    audience: Option<String>,
    code_hash: Option<String>,
    auth_time: i64,
    created_at: i64,
    family_expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<RefreshRow> for RefreshTokenRecord {
    fn from(r: RefreshRow) -> Self {
        RefreshTokenRecord {
            token_hash: r.token_hash,
            family_id: r.family_id,
            client_id: r.client_id,
            user_id: r.user_id,
            sid: r.sid,
            scope: json_strings(&r.scope),
            audience: r.audience,
            code_hash: r.code_hash,
            auth_time: from_millis(r.auth_time),
            created_at: from_millis(r.created_at),
            family_expires_at: from_millis(r.family_expires_at),
            used_at: r.used_at.map(from_millis),
            revoked_at: r.revoked_at.map(from_millis),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
struct AccessRow {
    jti: String,
    client_id: String,
    user_id: String,
    sid: String,
    family_id: Option<String>,
    code_hash: Option<String>,
    expires_at: i64,
    revoked_at: Option<i64>,
}

fn revoke_family(conn: &mut AnyConnection, family_id: &str, at: i64) -> DbResult<()> {
    diesel::update(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .filter(refresh_tokens::revoked_at.is_null())
        .set(refresh_tokens::revoked_at.eq(at))
        .execute(conn)?;
    diesel::update(access_tokens::table.filter(access_tokens::family_id.eq(family_id)))
        .filter(access_tokens::revoked_at.is_null())
        .set(access_tokens::revoked_at.eq(at))
        .execute(conn)?;
    Ok(())
}

impl TokenStore for Database {
    fn save_refresh_token(&self, r: RefreshTokenRecord) -> StoreResult<()> {
        let row = RefreshRow {
            token_hash: r.token_hash,
            family_id: r.family_id,
            client_id: r.client_id,
            user_id: r.user_id,
            sid: r.sid,
            scope: to_json(&r.scope),
            audience: r.audience,
            code_hash: r.code_hash,
            auth_time: millis(r.auth_time),
            created_at: millis(r.created_at),
            family_expires_at: millis(r.family_expires_at),
            used_at: None,
            revoked_at: None,
        };
        self.run(|| {
            diesel::insert_into(refresh_tokens::table).values(&row).execute(&mut self.conn()?)?;
            Ok(())
        })
    }

    fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshRedemption> {
        let now = millis(now);
        self.run(|| {
            let mut conn = self.conn()?;
            conn.transaction(|conn| {
                let claimed = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::token_hash.eq(token_hash))
                        .filter(refresh_tokens::used_at.is_null())
                        .filter(refresh_tokens::revoked_at.is_null())
                        .filter(refresh_tokens::family_expires_at.gt(now)),
                )
                .set(refresh_tokens::used_at.eq(now))
                .execute(conn)?;
                let row: RefreshRow =
                    refresh_tokens::table.find(token_hash).select(RefreshRow::as_select()).first(conn)?;
                if claimed == 1 {
                    return Ok(RefreshRedemption::Rotated(row.into()));
                }
                if row.revoked_at.is_none() && row.used_at.is_some() {
                    // Twice: the first pass locks every member it sees — among them the
                    // parent of a rotation in flight, whose `confirm_rotation` then waits
                    // and finds it revoked — and the second, a later snapshot on
                    // PostgreSQL, finds what a rotation recorded before confirming ahead
                    // of the first pass.
                    revoke_family(conn, &row.family_id, now)?;
                    revoke_family(conn, &row.family_id, now)?;
                    return Ok(RefreshRedemption::Reused(row.into()));
                }
                Ok(RefreshRedemption::Dead(row.into()))
            })
        })
    }

    fn confirm_rotation(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let now = millis(now);
        self.run(|| {
            let mut conn = self.conn()?;
            conn.transaction(|conn| {
                // Touch the rotated token unless revoked: waits for a reuse's transaction
                // that locked it, then sees its revocation.
                let live =
                    diesel::update(refresh_tokens::table.find(token_hash).filter(refresh_tokens::revoked_at.is_null()))
                        .set(refresh_tokens::used_at.eq(refresh_tokens::used_at))
                        .execute(conn)?;
                if live == 1 {
                    return Ok(true);
                }
                let family: String =
                    refresh_tokens::table.find(token_hash).select(refresh_tokens::family_id).first(conn)?;
                revoke_family(conn, &family, now)?;
                Ok(false)
            })
        })
    }

    fn refresh_token(&self, token_hash: &str) -> StoreResult<RefreshTokenRecord> {
        self.run(|| {
            let row: RefreshRow =
                refresh_tokens::table.find(token_hash).select(RefreshRow::as_select()).first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn revoke_refresh_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(|| {
            let mut conn = self.conn()?;
            conn.transaction(|conn| revoke_family(conn, family_id, millis(now)))
        })
    }

    fn record_access_token(&self, r: AccessTokenRecord) -> StoreResult<()> {
        let row = AccessRow {
            jti: r.jti,
            client_id: r.client_id,
            user_id: r.user_id,
            sid: r.sid,
            family_id: r.family_id,
            code_hash: r.code_hash,
            expires_at: millis(r.expires_at),
            revoked_at: None,
        };
        self.run(|| {
            diesel::insert_into(access_tokens::table).values(&row).execute(&mut self.conn()?)?;
            Ok(())
        })
    }

    fn access_token_record(&self, jti: &str) -> StoreResult<AccessTokenRecord> {
        self.run(|| {
            let r: AccessRow =
                access_tokens::table.find(jti).select(AccessRow::as_select()).first(&mut self.conn()?)?;
            Ok(AccessTokenRecord {
                jti: r.jti,
                client_id: r.client_id,
                user_id: r.user_id,
                sid: r.sid,
                family_id: r.family_id,
                code_hash: r.code_hash,
                expires_at: from_millis(r.expires_at),
                revoked_at: r.revoked_at.map(from_millis),
            })
        })
    }

    fn revoke_access_token(&self, jti: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(|| {
            diesel::update(access_tokens::table.find(jti).filter(access_tokens::revoked_at.is_null()))
                .set(access_tokens::revoked_at.eq(millis(now)))
                .execute(&mut self.conn()?)?;
            Ok(())
        })
    }
}
