//! `SigningKeyStore` on diesel.

use crate::connection::{AnyConnection, Database};
use crate::convert::{DbResult, from_millis, millis};
use crate::schema::signing_keys;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use guise_core::audit::AuditEvent;
use guise_core::signing_key::{KeyState, SigningKey};
use guise_core::store::{SigningKeyStore, StoreResult};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
struct KeyRow {
    kid: String,
    alg: String,
    private_key_pem: String,
    public_jwk: String,
    state: String,
    created_at: i64,
    retire_after: Option<i64>,
    certificate_pem: Option<String>,
}

impl From<KeyRow> for SigningKey {
    fn from(row: KeyRow) -> Self {
        SigningKey {
            kid: row.kid,
            alg: row.alg,
            private_key_pem: row.private_key_pem,
            public_jwk: serde_json::from_str(&row.public_jwk).unwrap_or_default(),
            state: KeyState::parse(&row.state).unwrap_or(KeyState::Retired),
            created_at: from_millis(row.created_at),
            retire_after: row.retire_after.map(from_millis),
            certificate_pem: row.certificate_pem,
        }
    }
}

fn insert_active(conn: &mut AnyConnection, key: &SigningKey) -> DbResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(KeyRow {
            kid: key.kid.clone(),
            alg: key.alg.clone(),
            private_key_pem: key.private_key_pem.clone(),
            public_jwk: key.public_jwk.to_string(),
            state: KeyState::Active.as_str().to_owned(),
            created_at: millis(key.created_at),
            retire_after: None,
            certificate_pem: key.certificate_pem.clone(),
        })
        .execute(conn)?;
    Ok(())
}

impl SigningKeyStore for Database {
    fn published_keys(&self) -> StoreResult<Vec<SigningKey>> {
        self.run(|| {
            let rows: Vec<KeyRow> = signing_keys::table
                .filter(signing_keys::state.ne(KeyState::Retired.as_str()))
                .order(signing_keys::created_at.desc())
                .select(KeyRow::as_select())
                .load(&mut self.conn()?)?;
            Ok(rows.into_iter().map(SigningKey::from).collect())
        })
    }

    fn rotate_in(
        &self,
        new_key: SigningKey,
        retire_previous_after: DateTime<Utc>,
        audit: AuditEvent,
    ) -> StoreResult<()> {
        self.run(|| {
            self.write(vec![audit.clone()], |conn| {
                diesel::update(
                    signing_keys::table
                        .filter(signing_keys::alg.eq(&new_key.alg))
                        .filter(signing_keys::state.eq(KeyState::Active.as_str())),
                )
                .set((
                    signing_keys::state.eq(KeyState::Retiring.as_str()),
                    signing_keys::retire_after.eq(Some(millis(retire_previous_after))),
                ))
                .execute(conn)?;
                insert_active(conn, &new_key)
            })?;
            Ok(())
        })
    }

    fn install_first_key(&self, key: SigningKey, audit: AuditEvent) -> StoreResult<bool> {
        self.run(|| {
            let (installed, _) = self.write_deciding(|conn| {
                let active: i64 = signing_keys::table
                    .filter(signing_keys::alg.eq(&key.alg))
                    .filter(signing_keys::state.eq(KeyState::Active.as_str()))
                    .count()
                    .get_result(conn)?;
                if active > 0 {
                    return Ok((false, vec![]));
                }
                insert_active(conn, &key)?;
                Ok((true, vec![audit.clone()]))
            })?;
            Ok(installed)
        })
    }

    fn set_certificate(&self, kid: &str, certificate_pem: &str) -> StoreResult<()> {
        self.run(|| {
            diesel::update(signing_keys::table.find(kid).filter(signing_keys::certificate_pem.is_null()))
                .set(signing_keys::certificate_pem.eq(certificate_pem))
                .execute(&mut self.conn()?)?;
            Ok(())
        })
    }

    fn retire_expired(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        self.run(|| {
            Ok(diesel::update(
                signing_keys::table
                    .filter(signing_keys::state.eq(KeyState::Retiring.as_str()))
                    .filter(signing_keys::retire_after.le(millis(now))),
            )
            .set(signing_keys::state.eq(KeyState::Retired.as_str()))
            .execute(&mut self.conn()?)?)
        })
    }
}
