//! Undoing a merge: the merged records come back exactly as they were
//! stored, with their ids; what moved to the survivor moves back where it
//! still points at the survivor; the survivor's fields the merge changed
//! return to their old values unless someone has changed them since.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Merge, Snapshot, find, object_of, out, refs, reinsert};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::records::{self, Record, with_record_type};
use crate::entities::{merge, record_alias};
use crate::error::{Error, Result};
use crate::permissions::Action;

/// Undoes the merge `id` (within its undo period, once).
pub async fn undo(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<Merge> {
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let row = find(&tx, ctx, id).await?;
    let object = object_of(&row)?;
    ctx.require(object, Action::Create)?;
    ctx.require(object, Action::Update)?;
    if row.undone_at.is_some() {
        return Err(Error::Conflict {
            code: "merge_undone",
            message: "this merge was undone already".to_owned(),
        });
    }
    let now = crate::clock::now();
    if now >= row.undo_until {
        return Err(Error::Conflict {
            code: "undo_period_over",
            message: format!(
                "this merge could be undone until {}",
                row.undo_until.to_rfc3339()
            ),
        });
    }
    // The claim: of two undos racing, one wins.
    // The copies are spent once undone: they go with the claim.
    let claimed = merge::Entity::update_many()
        .col_expr(merge::Column::UndoneAt, Expr::value(now))
        .col_expr(merge::Column::UndoneBy, Expr::value(ctx.user_id))
        .col_expr(merge::Column::Snapshot, Expr::value(json!({})))
        .filter(merge::Column::TenantId.eq(ctx.tenant_id))
        .filter(merge::Column::Id.eq(id))
        .filter(merge::Column::UndoneAt.is_null())
        .exec(&tx)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(Error::Conflict {
            code: "merge_undone",
            message: "this merge was undone already".to_owned(),
        });
    }
    let snapshot: Snapshot =
        serde_json::from_value(row.snapshot.clone()).map_err(|e| Error::Internal(e.to_string()))?;
    with_record_type!(object, R => undo_typed::<R>(&tx, ctx, &row, &snapshot).await?);
    let mut undone = row;
    undone.undone_at = Some(now);
    undone.undone_by = ctx.user_id;
    tx.commit().await?;
    records::kick_jobs(ctx);
    out(undone)
}

async fn undo_typed<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    row: &merge::Model,
    snapshot: &Snapshot,
) -> Result<()> {
    let survivor = row.survivor_id;
    let current = records::load::<R, _>(tx, ctx, survivor)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => Error::Conflict {
                code: "survivor_gone",
                message: "the record merged into was deleted since; the merge cannot be undone"
                    .to_owned(),
            },
            other => other,
        })?;

    // Parents before their children (a merged account may hang below
    // another).
    let ids: Vec<Uuid> = serde_json::from_value(row.merged_ids.clone()).unwrap_or_default();
    let mut order = refs::leaves_first(&snapshot.records, &ids);
    order.reverse();
    let rows: Vec<Value> = order
        .iter()
        .filter_map(|id| {
            snapshot
                .records
                .iter()
                .find(|r| r.get("id").and_then(Value::as_str) == Some(id.to_string().as_str()))
                .cloned()
        })
        .collect();
    records::reserve_stock::<R>(tx, ctx, rows.len() as i64).await?;
    let restored = reinsert::<R>(tx, &rows).await.map_err(|e| match e {
        Error::Database(ref d) if crate::db::is_foreign_key_violation(d) => Error::Conflict {
            code: "merge_cannot_be_undone",
            message: "a record the merged records referred to was deleted since".to_owned(),
        },
        other => other,
    })?;
    records::finish_writes::<R>(
        tx,
        ctx,
        &restored.into_iter().map(|m| (m, None)).collect::<Vec<_>>(),
    )
    .await?;

    // The survivor: each field the merge changed goes back, unless it was
    // changed again since.
    let now_json = serde_json::to_value(&current).map_err(|e| Error::Internal(e.to_string()))?;
    let mut reverted = revert(
        &snapshot.survivor_before,
        &snapshot.survivor_after,
        &now_json,
    );
    reverted["version"] = json!(R::version(&current) + 1);
    reverted["updated_at"] = json!(crate::clock::now());
    let reverted: R::Model =
        serde_json::from_value(reverted).map_err(|e| Error::Internal(e.to_string()))?;
    if !records::update_if_version(
        tx,
        ctx,
        survivor,
        R::version(&current),
        reverted.clone().into_active_model(),
    )
    .await?
    {
        return Err(Error::VersionConflict {
            current: R::version(&current) + 1,
        });
    }
    records::finish_writes::<R>(tx, ctx, &[(reverted, Some(current))]).await?;

    refs::restore_all(tx, ctx, R::OBJECT, survivor, snapshot).await?;
    record_alias::Entity::delete_many()
        .filter(record_alias::Column::TenantId.eq(ctx.tenant_id))
        .filter(record_alias::Column::MergeId.eq(row.id))
        .exec(tx)
        .await?;
    for a in snapshot.moved.get("aliases").into_iter().flatten() {
        record_alias::Entity::update_many()
            .col_expr(record_alias::Column::RecordId, Expr::value(a.from))
            .filter(record_alias::Column::TenantId.eq(ctx.tenant_id))
            .filter(record_alias::Column::Id.eq(a.id))
            .exec(tx)
            .await?;
    }
    let mut entries = vec![AuditEntry::new(
        R::OBJECT,
        survivor,
        AuditAction::Unmerge,
        json!({"merge_id": row.id, "restored_ids": ids}),
    )];
    entries.extend(ids.iter().map(|id| {
        AuditEntry::new(
            R::OBJECT,
            *id,
            AuditAction::Unmerge,
            json!({"merge_id": row.id, "split_from": survivor}),
        )
    }));
    audit::write(tx, ctx, entries).await
}

/// Columns that are bookkeeping, not values.
const BOOKKEEPING: &[&str] = &["id", "tenant_id", "created_at", "updated_at", "version"];

/// Three-way: each column (and custom value) that still holds what the
/// merge wrote takes its value from before the merge; others stay as now.
fn revert(before: &Value, after: &Value, now: &Value) -> Value {
    let mut out = now.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        if BOOKKEEPING.contains(&k.as_str()) {
            continue;
        }
        if k == "custom" {
            let empty = Map::new();
            let (b, a, n) = (
                before
                    .get("custom")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty),
                after
                    .get("custom")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty),
                now.get("custom")
                    .and_then(Value::as_object)
                    .unwrap_or(&empty),
            );
            let mut custom = n.clone();
            for ck in b.keys().chain(a.keys()) {
                if n.get(ck) == a.get(ck) {
                    match b.get(ck) {
                        Some(v) => custom.insert(ck.clone(), v.clone()),
                        None => custom.remove(ck),
                    };
                }
            }
            obj.insert(k, Value::Object(custom));
        } else if now.get(&k) == after.get(&k) {
            obj.insert(k.clone(), before.get(&k).cloned().unwrap_or(Value::Null));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revert_keeps_changes_made_since_the_merge() {
        let before = json!({"id": 1, "job_title": "Dev", "last_name": "Lovelace", "custom": {"a": 1}, "version": 3});
        let after = json!({"id": 1, "job_title": "CTO", "last_name": "Lovelace", "custom": {"a": 2, "b": 5}, "version": 4});
        let now = json!({"id": 1, "job_title": "CTO", "last_name": "King", "custom": {"a": 2, "b": 6}, "version": 5});
        let out = revert(&before, &after, &now);
        assert_eq!(out["job_title"], "Dev");
        assert_eq!(out["last_name"], "King");
        assert_eq!(out["custom"], json!({"a": 1, "b": 6}));
        assert_eq!(out["version"], 5);
    }
}
