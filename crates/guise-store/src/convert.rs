//! Conversions between stored columns (millisecond integers, JSON text) and domain types,
//! and from diesel errors to `StoreError`.

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use guise_core::StoreError;
use serde_json::{Map, Value};

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn json_object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn json_strings(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The error type inside this crate: a `StoreError` that diesel errors convert into, so
/// `?` works on queries and inside transactions.
#[derive(Debug)]
pub(crate) struct DbError(pub StoreError);

pub(crate) type DbResult<T> = Result<T, DbError>;

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        DbError(match e {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.constraint_name().unwrap_or(info.message()).to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                StoreError::InvalidReference(info.constraint_name().unwrap_or("reference").to_owned())
            }
            other => StoreError::Backend(other.to_string()),
        })
    }
}

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError(e)
    }
}

/// Run a store operation written with `?` over diesel errors, returning a `StoreResult`.
pub(crate) fn run<T>(operation: impl FnOnce() -> DbResult<T>) -> guise_core::store::StoreResult<T> {
    operation().map_err(|e| e.0)
}
