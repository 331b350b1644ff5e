//! Group commit for audit appends: callers that append at the same time share one
//! transaction and one take of the `audit_head` lock. Each caller still returns only
//! after the transaction holding its events has committed, so "answered only after its
//! audit event is durable and chained" holds; what changes is that N concurrent
//! appends cost one commit (one fsync on PostgreSQL) instead of N serialised ones.
//!
//! Leader/follower: a caller queues its events; if no batch is being written it becomes
//! the leader, takes the whole queue (up to [`MAX_BATCH_EVENTS`]), writes it and hands
//! each caller its records; callers that queued meanwhile wait, and one of them leads
//! the next batch. No thread of its own, no timer: a lone append commits at once.

use guise_core::StoreError;
use guise_core::audit::{AuditEvent, AuditRecord};
use guise_core::store::StoreResult;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The most events one transaction takes; the rest wait for the next batch. Bounds how
/// long the head lock is held (and the transaction's size).
pub(crate) const MAX_BATCH_EVENTS: usize = 256;

/// Upper bounds of the batch-size histogram buckets (events per batch).
pub const BATCH_SIZE_BUCKETS: [u64; 8] = [1, 2, 4, 8, 16, 32, 64, 256];

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    pending: Vec<(u64, Vec<AuditEvent>)>,
    leading: bool,
    done: HashMap<u64, StoreResult<Vec<AuditRecord>>>,
}

/// Counters of the batches written so far (for `/metrics` and `docs/scaling.md`).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Batches committed or failed.
    pub batches: AtomicU64,
    /// Events in those batches.
    pub events: AtomicU64,
    /// Batches per size bucket ([`BATCH_SIZE_BUCKETS`]; per bucket, not cumulative).
    pub size_buckets: [AtomicU64; 8],
    /// Total time the head lock was held, lock to commit, in microseconds.
    pub lock_held_micros: AtomicU64,
    /// The longest single hold, in microseconds.
    pub lock_held_max_micros: AtomicU64,
}

impl BatchStats {
    fn record(&self, events: usize, held: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        // A batch above the last bound (one oversized append) is only in `batches`.
        if let Some(bucket) = BATCH_SIZE_BUCKETS.iter().position(|&b| events as u64 <= b) {
            self.size_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        self.lock_held_micros.fetch_add(micros, Ordering::Relaxed);
        self.lock_held_max_micros.fetch_max(micros, Ordering::Relaxed);
    }
}

/// The queue of appends waiting for a batch, shared by every clone of a `Database`.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    turn: Condvar,
    pub(crate) stats: BatchStats,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

/// A copy of a batch's error for each caller in it.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::InvalidReference(m) => StoreError::InvalidReference(m.clone()),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
    }
}

impl GroupCommit {
    /// Append `events` in whichever batch takes them. `write_batch` writes one batch (all
    /// events, in order, in one transaction) and returns the records with the time the
    /// head lock was held; it runs on the calling thread of the batch's leader.
    pub(crate) fn append(
        &self,
        events: Vec<AuditEvent>,
        write_batch: impl Fn(Vec<AuditEvent>) -> (StoreResult<Vec<AuditRecord>>, Duration),
    ) -> StoreResult<Vec<AuditRecord>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push((ticket, events));
        loop {
            if let Some(result) = queue.done.remove(&ticket) {
                return result;
            }
            if queue.leading {
                queue = self.turn.wait(queue).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            queue.leading = true;
            let batch = take_batch(&mut queue.pending);
            drop(queue);
            let sizes: Vec<(u64, usize)> = batch.iter().map(|(t, e)| (*t, e.len())).collect();
            let all: Vec<AuditEvent> = batch.into_iter().flat_map(|(_, e)| e).collect();
            let count = all.len();
            // A panic while writing must not leave `leading` set (every later append
            // would wait for ever): it fails this batch's callers instead.
            let (outcome, held) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_batch(all)))
                .unwrap_or_else(|_| (Err(StoreError::Backend("audit batch write panicked".into())), Duration::ZERO));
            self.stats.record(count, held);
            queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            match outcome {
                Ok(records) => {
                    let mut records = records.into_iter();
                    for (t, n) in sizes {
                        queue.done.insert(t, Ok(records.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    for (t, _) in sizes {
                        queue.done.insert(t, Err(copy_error(&e)));
                    }
                }
            }
            queue.leading = false;
            self.turn.notify_all();
        }
    }
}

/// The oldest pending appends, up to [`MAX_BATCH_EVENTS`] events (always at least one
/// append, however large).
fn take_batch(pending: &mut Vec<(u64, Vec<AuditEvent>)>) -> Vec<(u64, Vec<AuditEvent>)> {
    let mut events = 0;
    let mut split = 0;
    for (_, e) in pending.iter() {
        if split > 0 && events + e.len() > MAX_BATCH_EVENTS {
            break;
        }
        events += e.len();
        split += 1;
    }
    let rest = pending.split_off(split);
    std::mem::replace(pending, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guise_core::audit::Actor;
    use std::sync::Arc;

    fn event(n: usize) -> AuditEvent {
        AuditEvent::new("t", chrono::Utc::now(), Actor::System, format!("event {n}"))
    }

    fn fake_records(events: Vec<AuditEvent>, first_seq: i64) -> Vec<AuditRecord> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| AuditRecord {
                seq: first_seq + i as i64,
                details_text: event.details.to_string(),
                event,
                prev_hash: String::new(),
                hash: String::new(),
            })
            .collect()
    }

    #[test]
    fn concurrent_appends_share_batches_and_each_gets_its_own_records() {
        let group = Arc::new(GroupCommit::default());
        let seq = Arc::new(Mutex::new(0i64));
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let group = Arc::clone(&group);
                let seq = Arc::clone(&seq);
                std::thread::spawn(move || {
                    group.append(vec![event(n), event(n)], |events| {
                        // A slow "transaction": later callers queue up meanwhile.
                        std::thread::sleep(Duration::from_millis(5));
                        let Ok(mut seq) = seq.lock() else {
                            return (Err(StoreError::Backend("poisoned".into())), Duration::ZERO);
                        };
                        let first = *seq + 1;
                        *seq += events.len() as i64;
                        (Ok(fake_records(events, first)), Duration::from_millis(5))
                    })
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for (n, thread) in threads.into_iter().enumerate() {
            let records = thread.join().ok().and_then(Result::ok).unwrap_or_default();
            assert_eq!(records.len(), 2, "caller {n} gets exactly its two records");
            assert!(records.iter().all(|r| r.event.description == format!("event {n}")), "its own events");
            assert_eq!(records[1].seq, records[0].seq + 1, "a caller's events stay adjacent");
            seqs.extend(records.iter().map(|r| r.seq));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=32).collect::<Vec<_>>());
        let batches = group.stats.batches.load(Ordering::Relaxed);
        assert!(batches < 16, "concurrent callers shared batches ({batches} batches for 16 appends)");
        assert_eq!(group.stats.events.load(Ordering::Relaxed), 32);
    }

    #[test]
    fn a_failed_batch_fails_every_caller_in_it() {
        let group = GroupCommit::default();
        let outcome = group.append(vec![event(0)], |_| (Err(StoreError::Backend("down".into())), Duration::ZERO));
        assert!(matches!(outcome, Err(StoreError::Backend(m)) if m == "down"));
    }

    #[test]
    fn a_panicking_batch_fails_its_callers_and_the_next_append_still_leads() {
        let group = GroupCommit::default();
        let outcome = group.append(vec![event(0)], |_| panic!("the database driver fell over"));
        assert!(matches!(outcome, Err(StoreError::Backend(_))));
        let records = group.append(vec![event(1)], |events| (Ok(fake_records(events, 1)), Duration::ZERO));
        assert_eq!(records.map(|r| r.len()).ok(), Some(1));
    }

    #[test]
    fn batches_are_capped_but_never_split_an_append() {
        let mut pending = vec![(0, vec![event(0); 200]), (1, vec![event(1); 100]), (2, vec![event(2)])];
        let batch = take_batch(&mut pending);
        assert_eq!(batch.len(), 1);
        assert_eq!(pending.len(), 2);
        let mut huge = vec![(0, vec![event(0); 300])];
        assert_eq!(take_batch(&mut huge)[0].1.len(), 300, "an oversized append still goes, alone");
    }
}
