//! The audit trail: every write leaves a row saying who changed what, when,
//! with the before and after of each changed field. Services write it in the
//! same transaction as the change, so a change without its record cannot
//! exist. The record timeline is read from here too.

use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::entities::audit_log;
use crate::error::Result;
use crate::permissions::ObjectType;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    Link,
    Unlink,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
            AuditAction::Link => "link",
            AuditAction::Unlink => "unlink",
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

/// Writes the entries, in the caller's transaction.
pub async fn write<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    entries: Vec<AuditEntry>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let at = crate::clock::now();
    let rows: Vec<audit_log::ActiveModel> = entries
        .into_iter()
        .map(|e| audit_log::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7()),
            tenant_id: sea_orm::Set(ctx.tenant_id),
            object_type: sea_orm::Set(e.object_type.as_str().to_owned()),
            record_id: sea_orm::Set(e.record_id),
            action: sea_orm::Set(e.action.as_str().to_owned()),
            changes: sea_orm::Set(e.changes),
            actor_kind: sea_orm::Set(ctx.actor_kind.as_str().to_owned()),
            actor_id: sea_orm::Set(ctx.actor_id),
            request_id: sea_orm::Set(ctx.request_id.clone()),
            at: sea_orm::Set(at),
        })
        .collect();
    // 10 values per row: 1,000 rows stay under PostgreSQL's 65,535 binds.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        audit_log::Entity::insert_many(chunk).exec(db).await?;
    }
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
