//! The audit trail: every write leaves a row saying who changed what, when,
//! with the before and after of each changed field. Services write it in the
//! same transaction as the change, so a change without its record cannot
//! exist. The record timeline is read from here too.

pub mod chain;
pub mod query;

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryTrait, Statement};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::entities::audit_log;
use crate::error::Result;
use crate::permissions::ObjectType;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    Link,
    Unlink,
    /// A read of fields marked sensitive.
    Read,
    Login,
    LoginFailed,
    Logout,
    Revoke,
    Export,
    /// A data subject's personal data erased (GDPR).
    Erase,
    /// A plugin's host call refused for want of a grant.
    Denied,
    /// A plugin enabled, disabled (by an admin or its circuit breaker),
    /// granted or configured.
    Configure,
    /// Records merged into a survivor (on the survivor and on each merged
    /// record).
    Merge,
    /// A merge undone.
    Unmerge,
    /// A deleted record brought back from the trash.
    Restore,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
            AuditAction::Link => "link",
            AuditAction::Unlink => "unlink",
            AuditAction::Read => "read",
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Logout => "logout",
            AuditAction::Revoke => "revoke",
            AuditAction::Export => "export",
            AuditAction::Erase => "erase",
            AuditAction::Denied => "denied",
            AuditAction::Configure => "configure",
            AuditAction::Merge => "merge",
            AuditAction::Unmerge => "unmerge",
            AuditAction::Restore => "restore",
        }
    }
}

/// One entry to write.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub object_type: ObjectType,
    pub record_id: Uuid,
    pub action: AuditAction,
    pub changes: Value,
}

impl AuditEntry {
    pub fn new(
        object_type: ObjectType,
        record_id: Uuid,
        action: AuditAction,
        changes: Value,
    ) -> Self {
        AuditEntry {
            object_type,
            record_id,
            action,
            changes,
        }
    }
}

/// The fields that differ between two JSON objects, as
/// `{"field": {"before": .., "after": ..}}`; nested objects (custom fields)
/// are compared key by key.
pub fn diff(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for key in b.keys().chain(a.keys().filter(|k| !b.contains_key(*k))) {
        let (bv, av) = (
            b.get(key).unwrap_or(&Value::Null),
            a.get(key).unwrap_or(&Value::Null),
        );
        if bv == av {
            continue;
        }
        if let (Value::Object(_), Value::Object(_)) = (bv, av) {
            if let Value::Object(inner) = diff(bv, av) {
                for (k, v) in inner {
                    out.insert(format!("{key}.{k}"), v);
                }
            }
        } else {
            out.insert(key.clone(), json!({"before": bv, "after": av}));
        }
    }
    Value::Object(out)
}

/// Writes the entries, in the caller's transaction, chained to the tenant's
/// previous entry.
///
/// The chain needs one writer per tenant at a time: claiming sequence
/// numbers locks the tenant's head row until the transaction ends. It is
/// claimed late in the transaction, so the lock is held only for the
/// statements that follow. On PostgreSQL the entries and the new head go in
/// one statement.
pub async fn write<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    entries: Vec<AuditEntry>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = chain::claim(db, ctx.tenant_id, entries.len() as i64).await?;
    let at = crate::clock::now();
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let mut row = audit_log::Model {
            id: Uuid::now_v7(),
            tenant_id: ctx.tenant_id,
            object_type: e.object_type.as_str().to_owned(),
            record_id: e.record_id,
            action: e.action.as_str().to_owned(),
            changes_hash: chain::changes_hash(&e.changes),
            changes: e.changes,
            actor_kind: ctx.actor_kind.as_str().to_owned(),
            actor_id: ctx.actor_id,
            request_id: ctx.request_id.clone(),
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
            at,
            seq,
            prev_hash: prev,
            hash: String::new(),
            redacted_at: None,
        };
        row.hash = chain::entry_hash(&row);
        prev = row.hash.clone();
        rows.push(audit_log::ActiveModel::from(row));
    }
    // 17 values per row: 500 rows stay under PostgreSQL's 65,535 binds.
    let backend = db.get_database_backend();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(500).collect();
        let insert = audit_log::Entity::insert_many(chunk).build(backend);
        if rows.peek().is_none() && backend == DbBackend::Postgres {
            // The last chunk and the head in one round trip.
            let mut values = insert.values.map(|v| v.0).unwrap_or_default();
            let n = values.len();
            values.push(prev.clone().into());
            values.push(ctx.tenant_id.into());
            let sql = format!(
                "WITH written AS ({}) UPDATE audit_heads SET hash = ${} WHERE tenant_id = ${}",
                insert.sql,
                n + 1,
                n + 2
            );
            db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            return Ok(());
        }
        db.execute_raw(insert).await?;
    }
    chain::set_head(db, ctx.tenant_id, &prev).await?;
    Ok(())
}

/// Writes entries in a transaction of their own (logins, reads, exports:
/// events that are not part of a write).
pub async fn record(
    db: &sea_orm::DatabaseConnection,
    ctx: &RequestContext,
    entries: Vec<AuditEntry>,
) -> Result<()> {
    let tx = crate::db::tenant_tx(db, ctx).await?;
    write(&tx, ctx, entries).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_changed_fields_only_including_custom_keys() {
        let before = json!({"a": 1, "b": "x", "custom": {"score": 1, "tier": "gold"}});
        let after = json!({"a": 1, "b": "y", "custom": {"score": 2, "tier": "gold"}});
        assert_eq!(
            diff(&before, &after),
            json!({"b": {"before": "x", "after": "y"}, "custom.score": {"before": 1, "after": 2}})
        );
    }
}
