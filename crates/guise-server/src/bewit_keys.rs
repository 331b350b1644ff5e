//! Bewit keys: from configuration (`GUISE_BEWIT_KEY_ID` + `GUISE_BEWIT_KEY`, shared by
//! every node from a secrets manager) or else the database's rotating keys.

use crate::config::Config;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::bewit::BewitKey;
use guise_core::ids::new_key_id;
use guise_core::store::BewitStore;
use rand_core::{OsRng, RngCore};

#[derive(Debug, thiserror::Error)]
pub enum BewitKeyError {
    #[error("bewit_key_id and bewit_key must be set together, the key as base64 of at least 32 bytes")]
    BadConfiguration,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The configured key, if any.
pub fn configured(config: &Config) -> Result<Option<BewitKey>, BewitKeyError> {
    match (&config.bewit_key_id, &config.bewit_key) {
        (None, None) => Ok(None),
        (Some(id), Some(key)) if !id.is_empty() => {
            let key = STANDARD.decode(key.trim()).map_err(|_| BewitKeyError::BadConfiguration)?;
            if key.len() < 32 {
                return Err(BewitKeyError::BadConfiguration);
            }
            Ok(Some(BewitKey { id: id.clone(), key }))
        }
        _ => Err(BewitKeyError::BadConfiguration),
    }
}

fn random_key() -> BewitKey {
    let mut key = vec![0u8; 32];
    OsRng.fill_bytes(&mut key);
    BewitKey { id: new_key_id(), key }
}

fn event(key: &BewitKey, at: DateTime<Utc>, description: &str) -> AuditEvent {
    AuditEvent::new(event_type::BEWIT_KEY_ROTATED, at, Actor::System, description)
        .details(serde_json::json!({ "kid": key.id }))
}

/// Create the first database key unless one is active.
pub fn ensure(db: &dyn BewitStore, at: DateTime<Utc>) -> Result<(), StoreError> {
    let key = random_key();
    let audit = event(&key, at, "First bewit key created");
    db.install_first_bewit_key(key, at, audit).map(drop)
}

/// A new active database key; URLs signed with older keys still verify until they expire.
pub fn rotate(db: &dyn BewitStore, at: DateTime<Utc>) -> Result<String, StoreError> {
    let key = random_key();
    let id = key.id.clone();
    let audit = event(&key, at, "Bewit key rotated");
    db.rotate_bewit_key(key, at, audit)?;
    Ok(id)
}

/// The key to sign with.
pub fn signing_key(config: &Config, db: &dyn BewitStore) -> Result<BewitKey, BewitKeyError> {
    if let Some(key) = configured(config)? {
        return Ok(key);
    }
    db.bewit_keys()?
        .into_iter()
        .find(|(_, active)| *active)
        .map(|(k, _)| k)
        .ok_or(BewitKeyError::Store(StoreError::NotFound))
}

/// The key a bewit names, if guise knows it.
pub fn verification_key(config: &Config, db: &dyn BewitStore, id: &str) -> Result<Option<BewitKey>, BewitKeyError> {
    if let Some(key) = configured(config)? {
        return Ok((key.id == id).then_some(key));
    }
    Ok(db.bewit_keys()?.into_iter().map(|(k, _)| k).find(|k| k.id == id))
}
