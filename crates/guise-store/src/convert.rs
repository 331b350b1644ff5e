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

/// How a `StoreError::Backend` for a lost connection begins: the operation is retried
/// once on a checked connection (`Database::run`).
pub(crate) const CONNECTION_LOST: &str = "database connection lost";

/// Whether a driver message says the connection itself is gone (the server ended it,
/// the network reset it), as opposed to a failed statement.
pub(crate) fn is_connection_lost_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "terminating connection",
        "server closed the connection",
        "connection reset",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "broken pipe",
        "ssl connection has been closed",
        "connection to server was lost",
        "server conn crashed",
        "the database system is shutting down",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Whether a store error is a lost connection (see [`CONNECTION_LOST`]).
pub(crate) fn is_connection_lost(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(message) if message.starts_with(CONNECTION_LOST))
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        DbError(match e {
            DieselError::DatabaseError(kind, info)
                if matches!(kind, DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand)
                    || is_connection_lost_message(info.message()) =>
            {
                StoreError::Backend(format!("{CONNECTION_LOST}: {}", info.message().trim()))
            }
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.constraint_name().unwrap_or(info.message()).to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
                StoreError::InvalidReference(info.constraint_name().unwrap_or("reference").to_owned())
            }
            other if is_connection_lost_message(&other.to_string()) => {
                StoreError::Backend(format!("{CONNECTION_LOST}: {}", other.to_string().trim()))
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
