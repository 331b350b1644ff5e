//! Pending authorization requests, consents and authorization codes on diesel.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, json_strings, millis, to_json};
use crate::schema::{access_tokens, authorization_codes, authorization_requests, consents, refresh_tokens};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::StoreError;
use guise_core::audit::AuditEvent;
use guise_core::authorization::{AuthorizationCode, AuthorizationRequestRecord, CodeRedemption};
use guise_core::store::{AuthorizationCodeStore, AuthorizationRequestStore, ConsentStore, StoreResult};

impl AuthorizationRequestStore for Database {
    fn save_authorization_request(&self, record: AuthorizationRequestRecord) -> StoreResult<()> {
        self.run(|| {
            diesel::insert_into(authorization_requests::table)
                .values((
                    authorization_requests::id.eq(&record.id),
                    authorization_requests::client_id.eq(&record.request.client_id),
                    authorization_requests::params.eq(to_json(&record.request)),
                    authorization_requests::csrf_token.eq(&record.csrf_token),
                    authorization_requests::created_at.eq(millis(record.created_at)),
                    authorization_requests::expires_at.eq(millis(record.expires_at)),
                ))
                .execute(&mut self.conn()?)?;
            Ok(())
        })
    }

    fn authorization_request(&self, id: &str) -> StoreResult<AuthorizationRequestRecord> {
        self.run(|| {
            let (id, params, csrf_token, created_at, expires_at): (String, String, String, i64, i64) =
                authorization_requests::table
                    .find(id)
                    .select((
                        authorization_requests::id,
                        authorization_requests::params,
                        authorization_requests::csrf_token,
                        authorization_requests::created_at,
                        authorization_requests::expires_at,
                    ))
                    .first(&mut self.conn()?)?;
            let request = serde_json::from_str(&params)
                .map_err(|e| StoreError::Backend(format!("stored authorization request unreadable: {e}")))?;
            Ok(AuthorizationRequestRecord {
                id,
                request,
                csrf_token,
                created_at: from_millis(created_at),
                expires_at: from_millis(expires_at),
            })
        })
    }

    fn delete_authorization_request(&self, id: &str) -> StoreResult<()> {
        self.run(|| {
            diesel::delete(authorization_requests::table.find(id)).execute(&mut self.conn()?)?;
            Ok(())
        })
    }
}

impl ConsentStore for Database {
    fn consented_scopes(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Vec<String>>> {
        self.run(|| {
            let scope: Option<String> = consents::table
                .find((user_id, client_id))
                .select(consents::scope)
                .first(&mut self.conn()?)
                .optional()?;
            Ok(scope.as_deref().map(json_strings))
        })
    }

    fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &[String],
        at: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                diesel::delete(consents::table.find((user_id, client_id))).execute(conn)?;
                diesel::insert_into(consents::table)
                    .values((
                        consents::user_id.eq(user_id),
                        consents::client_id.eq(client_id),
                        consents::scope.eq(to_json(&scope)),
                        consents::granted_at.eq(millis(at)),
                    ))
                    .execute(conn)?;
                Ok(())
            })?;
            Ok(())
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = authorization_codes)]
struct CodeRow {
    code_hash: String,
    client_id: String,
    user_id: String,
    sid: String,
    redirect_uri: String,
    scope: String,
    audience: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
}

impl From<CodeRow> for AuthorizationCode {
    fn from(r: CodeRow) -> Self {
        AuthorizationCode {
            code_hash: r.code_hash,
            client_id: r.client_id,
            user_id: r.user_id,
            sid: r.sid,
            redirect_uri: r.redirect_uri,
            scope: json_strings(&r.scope),
            audience: r.audience,
            nonce: r.nonce,
            code_challenge: r.code_challenge,
            auth_time: from_millis(r.auth_time),
            created_at: from_millis(r.created_at),
            expires_at: from_millis(r.expires_at),
            consumed_at: r.consumed_at.map(from_millis),
        }
    }
}

/// Revoke every refresh token (with its family) and access token descended from a code.
fn revoke_descendants_of_code(conn: &mut AnyConnection, code_hash: &str, at: i64) -> DbResult<()> {
    let families: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::code_hash.eq(code_hash))
        .select(refresh_tokens::family_id)
        .load(conn)?;
    diesel::update(refresh_tokens::table.filter(refresh_tokens::family_id.eq_any(&families)))
        .filter(refresh_tokens::revoked_at.is_null())
        .set(refresh_tokens::revoked_at.eq(at))
        .execute(conn)?;
    diesel::update(
        access_tokens::table
            .filter(access_tokens::code_hash.eq(code_hash).or(access_tokens::family_id.eq_any(&families)))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(at))
    .execute(conn)?;
    Ok(())
}

/// Revoke what a code issued, twice: on PostgreSQL the first pass locks the rows it
/// sees (among them the parent of any rotation in flight, whose confirmation then waits
/// and finds it revoked); the second, a later snapshot, finds the rows a rotation recorded
/// before confirming ahead of the first pass.
fn revoke_code_descendants_twice(conn: &mut AnyConnection, code_hash: &str, at: i64) -> DbResult<()> {
    revoke_descendants_of_code(conn, code_hash, at)?;
    revoke_descendants_of_code(conn, code_hash, at)
}

impl AuthorizationCodeStore for Database {
    fn save_code(&self, c: AuthorizationCode) -> StoreResult<()> {
        let row = CodeRow {
            code_hash: c.code_hash,
            client_id: c.client_id,
            user_id: c.user_id,
            sid: c.sid,
            redirect_uri: c.redirect_uri,
            scope: to_json(&c.scope),
            audience: c.audience,
            nonce: c.nonce,
            code_challenge: c.code_challenge,
            auth_time: millis(c.auth_time),
            created_at: millis(c.created_at),
            expires_at: millis(c.expires_at),
            consumed_at: None,
        };
        self.run(|| {
            let mut conn = self.conn()?;
            diesel::insert_into(authorization_codes::table).values(&row).execute(&mut conn)?;
            // The session logged into this client (its logouts will go there too).
            crate::outbox::record_session_client(&mut conn, &row.sid, &row.client_id, row.created_at, None)?;
            Ok(())
        })
    }

    fn consume_code(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<CodeRedemption> {
        let now = millis(now);
        self.run(|| {
            let mut conn = self.conn()?;
            conn.transaction(|conn| {
                // The conditional update is the single-use guarantee, even across nodes.
                let claimed = diesel::update(
                    authorization_codes::table
                        .filter(authorization_codes::code_hash.eq(code_hash))
                        .filter(authorization_codes::consumed_at.is_null()),
                )
                .set(authorization_codes::consumed_at.eq(now))
                .execute(conn)?;
                let row: CodeRow =
                    authorization_codes::table.find(code_hash).select(CodeRow::as_select()).first(conn)?;
                if claimed == 1 {
                    Ok(CodeRedemption::Redeemed(row.into()))
                } else {
                    // Mark the replay first: the row lock orders it against the winner's
                    // `confirm_code_issue`, so either the winner sees the mark, or the
                    // revocation below (later statements) sees the winner's rows.
                    diesel::update(authorization_codes::table.find(code_hash))
                        .set(authorization_codes::replayed_at.eq(now))
                        .execute(conn)?;
                    revoke_code_descendants_twice(conn, code_hash, now)?;
                    Ok(CodeRedemption::Replayed(row.into()))
                }
            })
        })
    }

    fn confirm_code_issue(&self, code_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let now = millis(now);
        self.run(|| {
            let mut conn = self.conn()?;
            conn.transaction(|conn| {
                // Touch the row: this waits for a replay's transaction holding it.
                diesel::update(authorization_codes::table.find(code_hash))
                    .set(authorization_codes::consumed_at.eq(authorization_codes::consumed_at))
                    .execute(conn)?;
                let replayed: Option<i64> =
                    authorization_codes::table.find(code_hash).select(authorization_codes::replayed_at).first(conn)?;
                if replayed.is_some() {
                    revoke_descendants_of_code(conn, code_hash, now)?;
                    return Ok(false);
                }
                Ok(true)
            })
        })
    }
}
