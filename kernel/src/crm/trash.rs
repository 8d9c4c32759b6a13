//! The trash: a bulk delete keeps each record it removes, exactly as
//! stored, with what its delete took along (account links, relationships,
//! consents, stage history) and the references it cleared (a deal's
//! contact), so the record can be restored with them.
//!
//! The delete itself is the ordinary one (hooks, search, audit); restoring
//! is a create of the same row under the same id.

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::links;
use crate::crm::records::{self, Record, with_record_type};
use crate::entities::{consent, contact_account, contact_relationship, deal_stage_history, trash};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// What a record's delete took along or cleared.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Dependents {
    /// Rows deleted with it (by cascade), by table, as stored.
    rows: Map<String, Value>,
    /// Records whose reference to it was cleared: `table.column` → ids.
    cleared: Map<String, Value>,
}

/// A record in the trash, as the API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trashed {
    pub id: Uuid,
    pub object_type: String,
    pub record_id: Uuid,
    /// The record as it was (as the caller may see it).
    #[schema(value_type = Object)]
    pub record: Value,
    pub bulk_action_id: Option<Uuid>,
    pub deleted_by: Option<Uuid>,
    pub deleted_at: chrono::DateTime<chrono::Utc>,
}

/// The references that point at a record of `object` and are cleared
/// (set null) when it is deleted.
fn cleared_by(object: ObjectType) -> &'static [(ObjectType, &'static str)] {
    match object {
        ObjectType::Contact => &[
            (ObjectType::Deal, "contact_id"),
            (ObjectType::Activity, "contact_id"),
        ],
        ObjectType::Account => &[
            (ObjectType::Deal, "account_id"),
            (ObjectType::Activity, "account_id"),
        ],
        ObjectType::Deal => &[(ObjectType::Activity, "deal_id")],
        _ => &[],
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))
}

fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| Error::Internal(e.to_string()))
}

/// Deletes record `id` of type `R` into the trash.
pub async fn bury<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    id: Uuid,
    bulk_action_id: Option<Uuid>,
) -> Result<()> {
    let m = records::load::<R, _>(tx, ctx, id).await?;
    if R::OBJECT == ObjectType::Contact {
        crate::crm::privacy::refuse_if_held(tx, ctx, id, "deleting it into the trash").await?;
    }
    let mut deps = Dependents::default();
    let t = ctx.tenant_id;
    match R::OBJECT {
        ObjectType::Contact => {
            let links = contact_account::Entity::find()
                .filter(contact_account::Column::TenantId.eq(t))
                .filter(contact_account::Column::ContactId.eq(id))
                .all(tx)
                .await?;
            deps.rows
                .insert("contact_accounts".into(), to_value(&links)?);
            let rels = contact_relationship::Entity::find()
                .filter(contact_relationship::Column::TenantId.eq(t))
                .filter(
                    sea_orm::Condition::any()
                        .add(contact_relationship::Column::FromContactId.eq(id))
                        .add(contact_relationship::Column::ToContactId.eq(id)),
                )
                .all(tx)
                .await?;
            deps.rows
                .insert("contact_relationships".into(), to_value(&rels)?);
            let consents = consent::Entity::find()
                .filter(consent::Column::TenantId.eq(t))
                .filter(consent::Column::ContactId.eq(id))
                .all(tx)
                .await?;
            deps.rows.insert("consents".into(), to_value(&consents)?);
        }
        ObjectType::Account => {
            let links = contact_account::Entity::find()
                .filter(contact_account::Column::TenantId.eq(t))
                .filter(contact_account::Column::AccountId.eq(id))
                .all(tx)
                .await?;
            deps.rows
                .insert("contact_accounts".into(), to_value(&links)?);
        }
        ObjectType::Deal => {
            let history = deal_stage_history::Entity::find()
                .filter(deal_stage_history::Column::TenantId.eq(t))
                .filter(deal_stage_history::Column::DealId.eq(id))
                .all(tx)
                .await?;
            deps.rows
                .insert("deal_stage_history".into(), to_value(&history)?);
        }
        _ => {}
    }
    for (holder, column) in cleared_by(R::OBJECT) {
        let ids: Vec<Uuid> = with_record_type!(*holder, H => {
            <H as Record>::Entity::find()
                .select_only()
                .column_as(Expr::col("id"), "id")
                .filter(Expr::col("tenant_id").eq(t))
                .filter(Expr::col(*column).eq(id))
                .into_tuple()
                .all(tx)
                .await?
        });
        deps.cleared
            .insert(format!("{}.{column}", holder.as_str()), json!(ids));
    }
    records::delete_in::<R>(tx, ctx, id, None).await?;
    trash::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t),
        object_type: Set(R::OBJECT.as_str().to_owned()),
        record_id: Set(id),
        row: Set(to_value(&m)?),
        dependents: Set(to_value(&deps)?),
        bulk_action_id: Set(bulk_action_id),
        deleted_by: Set(ctx.user_id),
        deleted_at: Set(crate::clock::now()),
    }
    .insert(tx)
    .await?;
    Ok(())
}

/// Restores a trashed record with what its delete took along, where the
/// records those refer to still exist.
pub async fn restore<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    entry: &trash::Model,
) -> Result<R::Model> {
    let m: R::Model = from_value(&entry.row)?;
    // Only what the caller's record scope reaches.
    if let Some(owners) = records::reachable_owners(tx, ctx, R::OBJECT).await?
        && !R::owner(&m).is_some_and(|o| owners.contains(&o))
    {
        return Err(Error::NotFound("trashed record"));
    }
    records::reserve_stock::<R>(tx, ctx, 1).await?;
    let restored = crate::crm::merge::reinsert::<R>(tx, std::slice::from_ref(&entry.row))
        .await
        .map_err(|e| match e {
            Error::Database(ref d) if crate::db::is_foreign_key_violation(d) => Error::Conflict {
                code: "cannot_restore",
                message: "a record it belongs to (its parent account) was deleted since".to_owned(),
            },
            other => other,
        })?;
    let deps: Dependents = from_value(&entry.dependents)?;
    let t = ctx.tenant_id;
    let rows = |table: &str| -> Vec<Value> {
        deps.rows
            .get(table)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for row in rows("contact_accounts") {
        let l: contact_account::Model = from_value(&row)?;
        let contact_there = links::contact_exists(tx, ctx, l.contact_id).await?;
        let account_there = links::account_exists(tx, ctx, l.account_id).await?;
        let linked = contact_account::Entity::find()
            .filter(contact_account::Column::TenantId.eq(t))
            .filter(contact_account::Column::ContactId.eq(l.contact_id))
            .filter(contact_account::Column::AccountId.eq(l.account_id))
            .one(tx)
            .await?
            .is_some();
        if contact_there && account_there && !linked {
            l.into_active_model().insert(tx).await?;
        }
    }
    for row in rows("contact_relationships") {
        let r: contact_relationship::Model = from_value(&row)?;
        let other = if r.from_contact_id == entry.record_id {
            r.to_contact_id
        } else {
            r.from_contact_id
        };
        let other_there = links::contact_exists(tx, ctx, other).await?;
        if other_there {
            r.into_active_model().insert(tx).await?;
        }
    }
    for row in rows("consents") {
        let c: consent::Model = from_value(&row)?;
        c.into_active_model().insert(tx).await?;
    }
    for row in rows("deal_stage_history") {
        let h: deal_stage_history::Model = from_value(&row)?;
        h.into_active_model().insert(tx).await?;
    }
    for (holder, column) in cleared_by(R::OBJECT) {
        let ids: Vec<Uuid> = deps
            .cleared
            .get(&format!("{}.{column}", holder.as_str()))
            .map(from_value)
            .transpose()?
            .unwrap_or_default();
        if ids.is_empty() {
            continue;
        }
        // Only where nothing was set since.
        with_record_type!(*holder, H => {
            <H as Record>::Entity::update_many()
                .col_expr(Alias::new(*column), Expr::value(entry.record_id))
                .filter(Expr::col("tenant_id").eq(t))
                .filter(Expr::col("id").is_in(ids))
                .filter(Expr::col(*column).is_null())
                .exec(tx)
                .await?
        });
    }
    records::finish_writes::<R>(
        tx,
        ctx,
        &restored.into_iter().map(|m| (m, None)).collect::<Vec<_>>(),
    )
    .await?;
    trash::Entity::delete_many()
        .filter(trash::Column::TenantId.eq(t))
        .filter(trash::Column::Id.eq(entry.id))
        .exec(tx)
        .await?;
    audit::write(
        tx,
        ctx,
        vec![AuditEntry::new(
            R::OBJECT,
            entry.record_id,
            AuditAction::Restore,
            json!({"trash_id": entry.id}),
        )],
    )
    .await?;
    Ok(m)
}

/// For an erasure: trashed records that name contact `id` (an activity
/// about them, a deal of theirs) go for good.
pub async fn purge_mentions<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<()> {
    trash::Entity::delete_many()
        .filter(trash::Column::TenantId.eq(ctx.tenant_id))
        // A UUID's text is hex and dashes: safe to splice.
        .filter(Expr::cust(format!("CAST(\"row\" AS TEXT) LIKE '%{id}%'")))
        .exec(db)
        .await?;
    Ok(())
}

/// The trash of one record type, newest first.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    limit: u64,
) -> Result<Vec<Trashed>> {
    ctx.require(object, Action::Read)?;
    let rows = trash::Entity::find()
        .filter(trash::Column::TenantId.eq(ctx.tenant_id))
        .filter(trash::Column::ObjectType.eq(object.as_str()))
        .order_by_desc(trash::Column::DeletedAt)
        .order_by_desc(trash::Column::Id)
        .limit(limit.clamp(1, 200))
        .all(db)
        .await?;
    // Within the caller's record scope only.
    let owners = records::reachable_owners(db, ctx, object).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let record = with_record_type!(object, R => {
            let m: <R as Record>::Model = from_value(&r.row)?;
            match &owners {
                Some(owners) if !R::owner(&m).is_some_and(|o| owners.contains(&o)) => continue,
                _ => records::present::<R>(ctx, &m),
            }
        });
        out.push(Trashed {
            id: r.id,
            object_type: r.object_type,
            record_id: r.record_id,
            record,
            bulk_action_id: r.bulk_action_id,
            deleted_by: r.deleted_by,
            deleted_at: r.deleted_at,
        });
    }
    Ok(out)
}

/// Restores trashed records by their record ids, all or none.
pub async fn restore_ids(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    ids: &[Uuid],
) -> Result<usize> {
    ctx.require(object, Action::Create)?;
    if ids.is_empty() || ids.len() > records::MAX_BULK {
        return Err(Error::field(
            "record_ids",
            "invalid_length",
            format!("send 1 to {} ids", records::MAX_BULK),
        ));
    }
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let rows = trash::Entity::find()
        .filter(trash::Column::TenantId.eq(ctx.tenant_id))
        .filter(trash::Column::ObjectType.eq(object.as_str()))
        .filter(trash::Column::RecordId.is_in(ids.to_vec()))
        .all(&tx)
        .await?;
    if let Some((i, _)) = ids
        .iter()
        .enumerate()
        .find(|(_, id)| !rows.iter().any(|r| r.record_id == **id))
    {
        return Err(Error::field(
            format!("record_ids[{i}]"),
            "not_found",
            "no such record in the trash",
        ));
    }
    // The reverse of the deletes' order: a relationship between two
    // records deleted together comes back with the one that took it along.
    let mut rows = rows;
    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    for r in &rows {
        with_record_type!(object, R => drop(restore::<R>(&tx, ctx, r).await?));
    }
    tx.commit().await?;
    records::kick_jobs(ctx);
    Ok(rows.len())
}
