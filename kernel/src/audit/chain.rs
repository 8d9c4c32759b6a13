//! Tamper evidence: every audit entry carries a SHA-256 hash over its own
//! content and the previous entry's hash, per tenant, in `seq` order.
//!
//! Changing any column of an entry breaks its hash; deleting an entry leaves
//! a gap in `seq` and breaks the next entry's `prev_hash`. What the chain
//! cannot show is the removal of the newest entries (the head): keep the
//! head hash that `trellis audit verify` prints somewhere the database's
//! administrators cannot write, to anchor it.
//!
//! The hash covers a hash of `changes`, not `changes` itself, so that GDPR
//! erasure can blank personal data in old entries (setting `redacted_at`)
//! and the chain still verifies; every redacted entry must be named by a
//! later `erase` entry, or verification reports it.

use std::collections::HashSet;

use sea_orm::Statement;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::dialect::param;
use crate::entities::{audit_log, tenant};
use crate::error::Result;

/// The hash of the chain's start, before any entry.
pub const GENESIS: &str = "";

/// Claims `n` sequence numbers of a tenant's chain: returns the sequence
/// number and hash of the entry before them. The head row stays locked
/// until the transaction ends, so writers of one tenant take turns (SQLite
/// write transactions are serial anyway) and each sees the previous
/// writer's entries. The caller writes the entries and then [`set_head`].
pub async fn claim<C: ConnectionTrait>(db: &C, tenant_id: Uuid, n: i64) -> Result<(i64, String)> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ({t}, {n}, '') \
                 ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq + {n} \
                 RETURNING seq - {n} AS prev_seq, hash",
                t = param(backend, 1),
                n = param(backend, 2),
            ),
            [tenant_id.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| crate::error::Error::Internal("audit head not returned".to_owned()))?;
    Ok((row.try_get("", "prev_seq")?, row.try_get("", "hash")?))
}

/// Records the hash of the newest entry as the chain's head.
pub async fn set_head<C: ConnectionTrait>(db: &C, tenant_id: Uuid, hash: &str) -> Result<()> {
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE audit_heads SET hash = {} WHERE tenant_id = {}",
            param(backend, 1),
            param(backend, 2)
        ),
        [hash.into(), tenant_id.into()],
    ))
    .await?;
    Ok(())
}

/// SHA-256 of the canonical JSON of `changes` (object keys sorted: serde_json
/// maps are ordered maps in this build, which a unit test guards).
pub fn changes_hash(changes: &Value) -> String {
    hex(&Sha256::digest(changes.to_string().as_bytes()))
}

/// The hash of an entry: its columns, as a JSON array in a fixed order,
/// with the previous hash.
pub fn entry_hash(e: &audit_log::Model) -> String {
    let canonical = json!([
        "trellis-audit-v1",
        e.tenant_id,
        e.seq,
        e.prev_hash,
        e.id,
        e.object_type,
        e.record_id,
        e.action,
        e.actor_kind,
        e.actor_id,
        e.request_id,
        e.ip,
        e.user_agent,
        e.at.timestamp(),
        e.changes_hash,
    ]);
    hex(&Sha256::digest(canonical.to_string().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One finding of a verification.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub tenant_id: Uuid,
    pub seq: i64,
    pub entry_id: Option<Uuid>,
    /// `altered`, `missing`, `broken_link`, `unsealed` or `redacted_without_erasure`.
    pub kind: &'static str,
    pub detail: String,
}

/// What a verification saw.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub tenants: usize,
    pub entries: u64,
    pub findings: Vec<Finding>,
    /// Per tenant, the newest sequence number and hash: the anchors to keep.
    pub heads: Vec<(Uuid, i64, String)>,
}

const PAGE: u64 = 5_000;

/// Verifies the chain of one tenant or of all.
pub async fn verify(db: &DatabaseConnection, only: Option<Uuid>) -> Result<Report> {
    let mut tenants: Vec<Uuid> = tenant::Entity::find()
        .select_only()
        .column(tenant::Column::Id)
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    if let Some(t) = only {
        tenants.retain(|id| *id == t);
    }
    let mut report = Report {
        tenants: tenants.len(),
        ..Report::default()
    };
    for t in tenants {
        verify_tenant(db, t, &mut report).await?;
    }
    Ok(report)
}

async fn verify_tenant(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    report: &mut Report,
) -> Result<()> {
    let unsealed = audit_log::Entity::find()
        .filter(audit_log::Column::TenantId.eq(tenant_id))
        .filter(audit_log::Column::Seq.lte(0))
        .count(db)
        .await?;
    if unsealed > 0 {
        report.findings.push(Finding {
            tenant_id,
            seq: 0,
            entry_id: None,
            kind: "unsealed",
            detail: format!("{unsealed} entries carry no sequence number"),
        });
    }
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_owned();
    let mut redacted: Vec<(i64, Uuid)> = Vec::new();
    let mut erased: HashSet<Uuid> = HashSet::new();
    loop {
        let page = audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(tenant_id))
            .filter(audit_log::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_log::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await?;
        let done = (page.len() as u64) < PAGE;
        for e in page {
            report.entries += 1;
            if e.seq != expected_seq {
                report.findings.push(Finding {
                    tenant_id,
                    seq: expected_seq,
                    entry_id: None,
                    kind: "missing",
                    detail: format!(
                        "entries {expected_seq} to {} are missing (deleted)",
                        e.seq - 1
                    ),
                });
            } else if e.prev_hash != prev {
                report.findings.push(Finding {
                    tenant_id,
                    seq: e.seq,
                    entry_id: Some(e.id),
                    kind: "broken_link",
                    detail: "prev_hash does not match the previous entry's hash".to_owned(),
                });
            }
            let content_ok = e.redacted_at.is_some() || changes_hash(&e.changes) == e.changes_hash;
            if !content_ok || entry_hash(&e) != e.hash {
                report.findings.push(Finding {
                    tenant_id,
                    seq: e.seq,
                    entry_id: Some(e.id),
                    kind: "altered",
                    detail: format!(
                        "entry {} ({} {} {}) does not match its hash",
                        e.seq, e.action, e.object_type, e.record_id
                    ),
                });
            }
            if e.redacted_at.is_some() {
                redacted.push((e.seq, e.id));
            }
            if e.action == "erase"
                && let Some(ids) = e.changes.get("redacted_entries").and_then(Value::as_array)
            {
                erased.extend(
                    ids.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|s| Uuid::parse_str(s).ok()),
                );
            }
            expected_seq = e.seq + 1;
            prev = e.hash;
        }
        if done {
            break;
        }
    }
    for (seq, id) in redacted.into_iter().filter(|(_, id)| !erased.contains(id)) {
        report.findings.push(Finding {
            tenant_id,
            seq,
            entry_id: Some(id),
            kind: "redacted_without_erasure",
            detail: format!("entry {seq} is marked redacted but no erase entry names it"),
        });
    }
    // The head row names the newest entry: entries deleted from the end of
    // the chain show here (unless the head row was rewritten as well).
    let head: Option<(i64, String)> = audit_heads_row(db, tenant_id).await?;
    let (last_seq, last_hash) = (expected_seq - 1, prev.clone());
    if let Some((seq, hash)) = head
        && (seq != last_seq || hash != last_hash)
    {
        report.findings.push(Finding {
            tenant_id,
            seq: last_seq,
            entry_id: None,
            kind: "head_mismatch",
            detail: format!(
                "the chain ends at entry {last_seq} but its head names entry {seq}: entries were removed from the end or the head was altered"
            ),
        });
    }
    report.heads.push((tenant_id, last_seq, prev));
    Ok(())
}

async fn audit_heads_row(
    db: &DatabaseConnection,
    tenant_id: Uuid,
) -> Result<Option<(i64, String)>> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT seq, hash FROM audit_heads WHERE tenant_id = {}",
                param(backend, 1)
            ),
            [tenant_id.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("", "seq")?, r.try_get("", "hash")?)),
        None => None,
    })
}

/// Chains entries written before the chain existed (sequence 0), oldest
/// first, after the tenant's current head. Runs at start-up; a no-op once
/// every entry is sealed.
pub async fn seal_unsealed(db: &DatabaseConnection) -> Result<u64> {
    let tenants: Vec<Uuid> = audit_log::Entity::find()
        .select_only()
        .column(audit_log::Column::TenantId)
        .filter(audit_log::Column::Seq.lte(0))
        .distinct()
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    let mut sealed = 0;
    for tenant_id in tenants {
        let tx = crate::db::write_tx(db).await?;
        let rows = audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(tenant_id))
            .filter(audit_log::Column::Seq.lte(0))
            .order_by_asc(audit_log::Column::At)
            .order_by_asc(audit_log::Column::Id)
            .all(&tx)
            .await?;
        let (mut seq, mut prev) = claim(&tx, tenant_id, rows.len() as i64).await?;
        for mut row in rows {
            seq += 1;
            row.seq = seq;
            row.prev_hash = prev;
            row.changes_hash = changes_hash(&row.changes);
            row.hash = entry_hash(&row);
            prev = row.hash.clone();
            audit_log::Entity::update_many()
                .col_expr(audit_log::Column::Seq, Expr::value(row.seq))
                .col_expr(audit_log::Column::PrevHash, Expr::value(row.prev_hash))
                .col_expr(
                    audit_log::Column::ChangesHash,
                    Expr::value(row.changes_hash),
                )
                .col_expr(audit_log::Column::Hash, Expr::value(row.hash))
                .filter(audit_log::Column::Id.eq(row.id))
                .exec(&tx)
                .await?;
            sealed += 1;
        }
        set_head(&tx, tenant_id, &prev).await?;
        tx.commit().await?;
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_hash_does_not_depend_on_key_order() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": {"x": 3, "y": 2}, "b": 1}"#).unwrap();
        assert_eq!(changes_hash(&a), changes_hash(&b));
        assert_ne!(changes_hash(&a), changes_hash(&json!({"b": 2})));
    }
}
