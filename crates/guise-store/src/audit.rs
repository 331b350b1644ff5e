//! `AuditStore` on diesel: append, filtered reads, and verification of the hash chain.

use crate::connection::{AnyConnection, Database};
use crate::convert::{from_millis, millis};
use crate::schema::{audit_head, audit_log};
use diesel::prelude::*;
use guise_core::audit::{Actor, AuditEvent, AuditRecord, ChainBreak, ChainVerifier};
use guise_core::page::{Page, PageRequest};
use guise_core::store::{AuditFilter, AuditStore, StoreResult};

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct AuditRow {
    seq: i64,
    event_type: String,
    occurred_at: i64,
    actor_type: String,
    actor_id: Option<String>,
    on_behalf_of: Option<String>,
    subject_id: Option<String>,
    client_id: Option<String>,
    source_ip: Option<String>,
    description: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(row: AuditRow) -> Self {
        AuditRecord {
            seq: row.seq,
            event: AuditEvent {
                event_type: row.event_type,
                occurred_at: from_millis(row.occurred_at),
                actor: Actor::from_parts(&row.actor_type, row.actor_id),
                on_behalf_of: row.on_behalf_of,
                subject: row.subject_id,
                client_id: row.client_id,
                source_ip: row.source_ip,
                description: row.description,
                details: serde_json::from_str(&row.details).unwrap_or_default(),
            },
            details_text: row.details,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

type AuditQuery<'a> = audit_log::BoxedQuery<'a, <AnyConnection as diesel::Connection>::Backend>;

fn filtered<'a>(filter: &AuditFilter) -> AuditQuery<'a> {
    let mut query = audit_log::table.into_boxed();
    if let Some(t) = &filter.event_type {
        query = query.filter(audit_log::event_type.eq(t.clone()));
    }
    if let Some(user) = &filter.user_id {
        query = query.filter(
            audit_log::subject_id
                .eq(user.clone())
                .or(audit_log::actor_id.eq(user.clone()))
                .or(audit_log::on_behalf_of.eq(user.clone())),
        );
    }
    if let Some(actor) = &filter.actor_id {
        query = query.filter(audit_log::actor_id.eq(actor.clone()));
    }
    if let Some(user) = &filter.on_behalf_of {
        query = query.filter(audit_log::on_behalf_of.eq(user.clone()));
    }
    if let Some(c) = &filter.client_id {
        query = query.filter(audit_log::client_id.eq(c.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::occurred_at.ge(millis(from)));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::occurred_at.le(millis(to)));
    }
    if let Some(after) = filter.after_seq {
        query = query.filter(audit_log::seq.gt(after));
    }
    query
}

/// Rows read per round trip while verifying the chain.
const VERIFY_BATCH: i64 = 1000;

impl AuditStore for Database {
    fn append(&self, events: Vec<AuditEvent>) -> StoreResult<Vec<AuditRecord>> {
        self.append_grouped(events)
    }

    fn audit_records(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
        with_total: bool,
    ) -> StoreResult<Page<AuditRecord>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let ordered = if filter.ascending {
                filtered(filter).order(audit_log::seq.asc())
            } else {
                filtered(filter).order(audit_log::seq.desc())
            };
            let rows: Vec<AuditRow> =
                ordered.offset(page.offset()).limit(page.limit()).select(AuditRow::as_select()).load(&mut conn)?;
            let total = if with_total { filtered(filter).count().get_result(&mut conn)? } else { rows.len() as i64 };
            Ok(Page { items: rows.into_iter().map(AuditRecord::from).collect(), request: page, total })
        })
    }

    fn audit_record(&self, seq: i64) -> StoreResult<AuditRecord> {
        self.run(|| {
            let row: AuditRow = audit_log::table.find(seq).select(AuditRow::as_select()).first(&mut self.conn()?)?;
            Ok(row.into())
        })
    }

    fn verify_chain(&self) -> StoreResult<Result<u64, ChainBreak>> {
        self.run(|| {
            let mut conn = self.conn()?;
            let mut verifier = ChainVerifier::default();
            let mut after = 0i64;
            loop {
                let rows: Vec<AuditRow> = audit_log::table
                    .filter(audit_log::seq.gt(after))
                    .order(audit_log::seq.asc())
                    .limit(VERIFY_BATCH)
                    .select(AuditRow::as_select())
                    .load(&mut conn)?;
                let Some(last) = rows.last() else { break };
                after = last.seq;
                for row in rows {
                    if let Err(broken) = verifier.check(&row.into()) {
                        return Ok(Err(broken));
                    }
                }
            }
            // Rows cut from the end leave the chain intact but behind its recorded head.
            let (head_seq, head_hash): (i64, String) = audit_head::table
                .filter(audit_head::id.eq(1))
                .select((audit_head::last_seq, audit_head::last_hash))
                .first(&mut conn)?;
            let (seq, hash) = verifier.head();
            if seq != head_seq || hash != head_hash {
                return Ok(Err(ChainBreak::BrokenLink { seq: seq + 1 }));
            }
            Ok(Ok(verifier.rows))
        })
    }
}
