//! The signing keys in memory: installs the first key on start, reloads from the
//! database (so a rotation by any node or the CLI is picked up), retires expired keys.

use chrono::{DateTime, Utc};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::signing_key::KeyState;
use guise_core::signing_key::SigningKey;
use guise_core::store::{SigningKeyStore, StoreError};
use guise_oidc::keys::{DEFAULT_ALG, KeyError, KeyRing, SUPPORTED_ALGS, generate};
use guise_saml::dsig::SamlSigner;
use guise_store::Database;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often keys are reloaded in the background.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Least time between reloads triggered by an unknown `kid`.
const MIN_ON_DEMAND_REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KeyCacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("certificate: {0}")]
    Certificate(String),
}

pub struct KeyCache {
    ring: RwLock<Arc<KeyRing>>,
    saml: RwLock<Option<Arc<SamlSigner>>>,
    /// Common name for the certificates SAML and WS-Fed publish.
    certificate_name: String,
    last_refresh: Mutex<Instant>,
}

impl KeyCache {
    /// Load keys, installing a first key of each algorithm when the database has none.
    /// `certificate_name` names the self-signed certificates (the issuer's host).
    pub fn load(db: &Database, now: DateTime<Utc>, certificate_name: &str) -> Result<Self, KeyCacheError> {
        ensure_signing_key(db, now)?;
        let cache = Self {
            ring: RwLock::new(Arc::new(KeyRing::new(&[], now)?)),
            saml: RwLock::new(None),
            certificate_name: certificate_name.to_owned(),
            last_refresh: Mutex::new(Instant::now()),
        };
        cache.refresh(db, now)?;
        Ok(cache)
    }

    pub fn current(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The XML signer (the active RS256 key and its certificate).
    pub fn saml_signer(&self) -> Option<Arc<SamlSigner>> {
        self.saml.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reload from the database (blocking), issuing certificates to keys without one.
    pub fn refresh(&self, db: &Database, now: DateTime<Utc>) -> Result<(), KeyCacheError> {
        db.retire_expired(now)?;
        let mut keys = db.published_keys()?;
        if keys.iter().any(|k| k.alg == DEFAULT_ALG && k.certificate_pem.is_none()) {
            for key in keys.iter().filter(|k| k.alg == DEFAULT_ALG && k.certificate_pem.is_none()) {
                let serial = u64::try_from(key.created_at.timestamp_millis()).unwrap_or(1);
                let pem = guise_saml::cert::self_signed_pem(&key.private_key_pem, &self.certificate_name, serial)
                    .map_err(|e| KeyCacheError::Certificate(e.to_string()))?;
                db.set_certificate(&key.kid, &pem)?;
            }
            // Another node may have won the race: use what the database holds.
            keys = db.published_keys()?;
        }
        let ring = KeyRing::new(&keys, now)?;
        let saml = keys
            .iter()
            .find(|k| k.alg == DEFAULT_ALG && k.state == KeyState::Active)
            .and_then(|k| k.certificate_pem.as_deref().map(|cert| (k, cert)))
            .map(|(k, cert)| SamlSigner::from_pem(&k.private_key_pem, cert))
            .transpose()
            .map_err(|e| KeyCacheError::Certificate(e.to_string()))?;
        *self.ring.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(ring);
        *self.saml.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = saml.map(Arc::new);
        *self.last_refresh.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        Ok(())
    }

    /// Whether an on-demand reload (for an unknown kid) is allowed now.
    pub fn may_refresh_on_demand(&self) -> bool {
        self.last_refresh.lock().map(|t| t.elapsed() >= MIN_ON_DEMAND_REFRESH).unwrap_or(true)
    }
}

/// Install a first key of every supported algorithm that has no active key (safe when
/// nodes start together: the check runs under the write lock).
pub fn ensure_signing_key(db: &Database, now: DateTime<Utc>) -> Result<(), KeyCacheError> {
    let published = db.published_keys()?;
    for alg in SUPPORTED_ALGS {
        if published.iter().any(|k| k.alg == *alg && k.state == KeyState::Active) {
            continue;
        }
        let key = generate(alg, now)?;
        let event = key_event(&key, now, "First signing key created");
        db.install_first_key(key, event)?;
    }
    Ok(())
}

/// Rotate every algorithm: new active keys; the previous ones stay published for
/// `overlap` (the longest lifetime of a token they signed), then retire.
pub fn rotate(db: &Database, now: DateTime<Utc>, overlap: chrono::Duration) -> Result<Vec<SigningKey>, KeyCacheError> {
    let mut rotated = Vec::new();
    for alg in SUPPORTED_ALGS {
        let key = generate(alg, now)?;
        let event = key_event(&key, now, "Signing key rotated");
        db.rotate_in(key.clone(), now + overlap, event)?;
        rotated.push(key);
    }
    Ok(rotated)
}

fn key_event(key: &SigningKey, now: DateTime<Utc>, description: &str) -> AuditEvent {
    AuditEvent::new(event_type::SIGNING_KEY_ROTATED, now, Actor::System, description)
        .details(serde_json::json!({ "kid": key.kid, "alg": key.alg }))
}
