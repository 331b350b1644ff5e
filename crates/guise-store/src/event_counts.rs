//! How many audit events of each type this process has committed (for `/metrics`:
//! tokens issued per grant type, impersonations, login failures and lockouts all
//! have their own event type, so counting committed events counts them exactly once).

use guise_core::audit::AuditRecord;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct EventCounts(Mutex<BTreeMap<String, u64>>);

impl EventCounts {
    /// Count records whose transaction committed.
    pub(crate) fn committed(&self, records: &[AuditRecord]) {
        if records.is_empty() {
            return;
        }
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for record in records {
            match counts.get_mut(&record.event.event_type) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(record.event.event_type.clone(), 1);
                }
            }
        }
    }

    /// Event type → committed events, sorted by type.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}
