//! Bewit keys: the one from configuration (`GUISE_BEWIT_KEY_ID` + `GUISE_BEWIT_KEY`,
//! shared by every node from a secrets manager) or else the database's rotating keys.

use crate::{FlowContext, FlowError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use guise_core::StoreError;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::bewit::BewitKey;
use guise_core::ids::new_key_id;
use guise_core::store::BewitStore;
use rand_core::{OsRng, RngCore};

/// A configured key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bewit_key_id and bewit_key must be set together, the key as base64 of at least 32 bytes")]
pub struct BadBewitKey;

/// The configured key (its id and its base64 secret), if any: both or neither.
pub fn configured(id: Option<&str>, key: Option<&str>) -> Result<Option<BewitKey>, BadBewitKey> {
    match (id, key) {
        (None, None) => Ok(None),
        (Some(id), Some(key)) if !id.is_empty() => {
            let key = STANDARD.decode(key.trim()).map_err(|_| BadBewitKey)?;
            if key.len() < 32 {
                return Err(BadBewitKey);
            }
            Ok(Some(BewitKey { id: id.to_owned(), key }))
        }
        _ => Err(BadBewitKey),
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
pub fn signing_key(ctx: &FlowContext<'_>) -> Result<BewitKey, FlowError> {
    if let Some(key) = ctx.bewit_key {
        return Ok(key.clone());
    }
    ctx.store
        .bewit_keys()?
        .into_iter()
        .find(|(_, active)| *active)
        .map(|(k, _)| k)
        .ok_or_else(|| FlowError::Internal("no active bewit key".into()))
}

/// The key a bewit names, if guise knows it.
pub fn verification_key(ctx: &FlowContext<'_>, id: &str) -> Result<Option<BewitKey>, StoreError> {
    if let Some(key) = ctx.bewit_key {
        return Ok((key.id == id).then(|| key.clone()));
    }
    Ok(ctx.store.bewit_keys()?.into_iter().map(|(k, _)| k).find(|k| k.id == id))
}
