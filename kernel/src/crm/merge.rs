//! Merging duplicate contacts or accounts into one survivor, and undoing it.
//!
//! A merge is one transaction on the ordinary write path: the merged
//! records' deals, activities, account links, relationships, consents and
//! child accounts move to the survivor; the merged records are deleted
//! (their delete hooks and audit entries run as for any delete); the
//! survivor is updated with the chosen values (validated like any update);
//! and their ids become aliases of the survivor, so reads and updates by
//! an old id still reach it. The merge keeps the merged rows exactly as
//! stored and every reference it moved, so it can be undone until the
//! tenant's undo period ends.

mod fields;
mod refs;
mod undo;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

pub use fields::Rule;
pub(crate) use fields::is_blank;
pub use undo::undo;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::records::{self, Record};
use crate::crm::sensitive;
use crate::entities::{merge, record_alias};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// How long a merge can be undone unless the tenant says otherwise.
pub const DEFAULT_UNDO_DAYS: i32 = 30;
/// Records merged into one survivor at a time, at most.
pub const MAX_MERGED: usize = 9;

/// What to merge, and how to choose the survivor's values.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The record that stays.
    pub survivor_id: Uuid,
    /// The records merged into it (1 to 9).
    pub merged_ids: Vec<Uuid>,
    /// How fields not named in `fields` are filled.
    #[serde(default)]
    pub rule: Rule,
    /// Field (`custom.KEY` for a custom field) → the record whose value the
    /// survivor takes, blank or not.
    #[serde(default)]
    pub fields: BTreeMap<String, Uuid>,
    /// The survivor's version as the client last saw it; a newer one is a
    /// conflict.
    #[serde(default)]
    pub version: Option<i64>,
}

/// A merge, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Merge {
    pub id: Uuid,
    /// `contact` or `account`.
    pub object_type: String,
    pub survivor_id: Uuid,
    pub merged_ids: Vec<Uuid>,
    /// How many references moved to the survivor, by kind.
    #[schema(value_type = Object)]
    pub moved: BTreeMap<String, usize>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Until when `POST /api/v1/merges/{id}/undo` works.
    pub undo_until: DateTime<Utc>,
    pub undone_at: Option<DateTime<Utc>>,
    pub undone_by: Option<Uuid>,
}

/// A merge and the survivor as it now is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeOutcome {
    pub merge: Merge,
    /// The survivor, as the caller may see it.
    #[schema(value_type = Object)]
    pub record: Value,
}

/// Everything an undo needs, stored with the merge.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Snapshot {
    /// The survivor as stored before and after the merge.
    survivor_before: Value,
    survivor_after: Value,
    /// The merged records as stored (ciphertext included).
    records: Vec<Value>,
    /// References moved, by kind (`deals`, `activities`, `links`...).
    moved: BTreeMap<String, Vec<refs::Moved>>,
    /// Rows removed because the survivor already had their like (a link
    /// to the same account), as stored.
    dropped: BTreeMap<String, Vec<Value>>,
}

/// The record `id` was merged into, if it was.
pub async fn alias_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    object: ObjectType,
    id: Uuid,
) -> Result<Option<Uuid>> {
    Ok(record_alias::Entity::find()
        .filter(record_alias::Column::TenantId.eq(tenant_id))
        .filter(record_alias::Column::ObjectType.eq(object.as_str()))
        .filter(record_alias::Column::AliasId.eq(id))
        .one(db)
        .await?
        .map(|a| a.record_id))
}

/// The ids merged into `id` (its aliases).
pub async fn aliases<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    object: ObjectType,
    id: Uuid,
) -> Result<Vec<Uuid>> {
    Ok(record_alias::Entity::find()
        .filter(record_alias::Column::TenantId.eq(tenant_id))
        .filter(record_alias::Column::ObjectType.eq(object.as_str()))
        .filter(record_alias::Column::RecordId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.alias_id)
        .collect())
}

/// For an erasure: the merges into record `id` lose the copies of the
/// records they merged (so they can no longer be undone). Returns the ids
/// merged into it, whose history is the same person's.
pub async fn forget<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
    id: Uuid,
) -> Result<Vec<Uuid>> {
    let merged_in = aliases(db, ctx.tenant_id, object, id).await?;
    let now = crate::clock::now();
    merge::Entity::update_many()
        .col_expr(merge::Column::Snapshot, Expr::value(json!({})))
        .col_expr(merge::Column::UndoUntil, Expr::value(now))
        .filter(merge::Column::TenantId.eq(ctx.tenant_id))
        .filter(merge::Column::ObjectType.eq(object.as_str()))
        .filter(merge::Column::SurvivorId.eq(id))
        .exec(db)
        .await?;
    Ok(merged_in)
}

/// Merges records of type `R` (contacts or accounts) into a survivor.
pub async fn merge<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    req: MergeRequest,
) -> Result<MergeOutcome> {
    if !matches!(R::OBJECT, ObjectType::Contact | ObjectType::Account) {
        return Err(Error::BadRequest(format!(
            "{} records cannot be merged",
            R::OBJECT.as_str()
        )));
    }
    ctx.require(R::OBJECT, Action::Update)?;
    ctx.require(R::OBJECT, Action::Delete)?;
    check_request(&req)?;
    let keys = sensitive::keys(db, ctx).await?;
    let undo_days = crate::entities::tenant::Entity::find_by_id(ctx.tenant_id)
        .one(db)
        .await?
        .map_or(DEFAULT_UNDO_DAYS, |t| t.merge_undo_days);
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let survivor = records::load::<R, _>(&tx, ctx, req.survivor_id)
        .await
        .map_err(|e| not_found_as_field(e, "survivor_id"))?;
    if let Some(v) = req.version
        && v != R::version(&survivor)
    {
        return Err(Error::VersionConflict {
            current: R::version(&survivor),
        });
    }
    let mut merged = Vec::with_capacity(req.merged_ids.len());
    for (i, id) in req.merged_ids.iter().enumerate() {
        merged.push(
            records::load::<R, _>(&tx, ctx, *id)
                .await
                .map_err(|e| not_found_as_field(e, &format!("merged_ids[{i}]")))?,
        );
        if R::OBJECT == ObjectType::Contact {
            crate::crm::privacy::refuse_if_held(&tx, ctx, *id, "merging it away").await?;
        }
    }

    // The survivor's new values, chosen on plaintext.
    let mut sources = Vec::with_capacity(merged.len() + 1);
    for m in std::iter::once(&survivor).chain(&merged) {
        let mut plain = m.clone();
        let stored = R::custom_mut(&mut plain).clone();
        let k = sensitive::keys_covering(&tx, ctx, Some(&stored)).await?;
        sensitive::open_all(
            k.as_deref().or(keys.as_deref()),
            ctx.tenant_id,
            R::OBJECT,
            R::custom_mut(&mut plain),
        )?;
        sources.push(fields::Source {
            id: R::id(m),
            input: serde_json::to_value(R::input(&plain))
                .map_err(|e| Error::Internal(e.to_string()))?,
            updated_at: updated_at(&stored_json::<R>(m)?),
        });
    }
    let mut chosen = fields::choose(&sources, req.rule, &req.fields)?;
    // A chosen reference to a record merged away points at the survivor.
    if let Some(custom) = chosen.get_mut("custom").and_then(Value::as_object_mut) {
        for v in custom.values_mut() {
            if let Some(id) = v.as_str().and_then(|s| Uuid::parse_str(s).ok())
                && req.merged_ids.contains(&id)
            {
                *v = json!(req.survivor_id);
            }
        }
    }

    let survivor_id = R::id(&survivor);
    let merged_ids: Vec<Uuid> = merged.iter().map(R::id).collect();
    let mut snapshot = Snapshot {
        survivor_before: stored_json::<R>(&survivor)?,
        records: merged.iter().map(stored_json::<R>).collect::<Result<_>>()?,
        ..Snapshot::default()
    };
    if R::OBJECT == ObjectType::Account {
        refs::settle_account_tree(&tx, ctx, &survivor_id, &merged_ids, &mut chosen).await?;
    }
    refs::move_all(&tx, ctx, R::OBJECT, survivor_id, &merged_ids, &mut snapshot).await?;

    // Children first, so no merged account is deleted while another still
    // hangs below it.
    for m in refs::leaves_first(&snapshot.records, &merged_ids) {
        records::delete_in::<R>(&tx, ctx, m, None).await?;
    }
    let (after, previous) = records::update_in::<R>(
        &tx,
        ctx,
        keys.as_deref(),
        &crate::crm::custom_fields::definitions(&tx, ctx.tenant_id, R::OBJECT).await?,
        (survivor_id, chosen, R::version(&survivor), false),
    )
    .await
    .map_err(|e| match e {
        // A value chosen that the survivor cannot hold: say which choice.
        Error::Validation(errs) => {
            Error::Validation(errs.into_iter().map(|e| e.nested("fields")).collect())
        }
        other => other,
    })?;
    records::finish_writes::<R>(&tx, ctx, &[(after.clone(), Some(previous))]).await?;
    snapshot.survivor_after = stored_json::<R>(&after)?;

    // Ids merged into the merged records now lead to the survivor too.
    let chained = record_alias::Entity::find()
        .filter(record_alias::Column::TenantId.eq(ctx.tenant_id))
        .filter(record_alias::Column::ObjectType.eq(R::OBJECT.as_str()))
        .filter(record_alias::Column::RecordId.is_in(merged_ids.clone()))
        .all(&tx)
        .await?;
    snapshot.moved.insert(
        "aliases".to_owned(),
        chained
            .iter()
            .map(|a| refs::Moved {
                id: a.id,
                from: a.record_id,
            })
            .collect(),
    );
    if !chained.is_empty() {
        record_alias::Entity::update_many()
            .col_expr(record_alias::Column::RecordId, Expr::value(survivor_id))
            .filter(record_alias::Column::TenantId.eq(ctx.tenant_id))
            .filter(record_alias::Column::Id.is_in(chained.iter().map(|a| a.id)))
            .exec(&tx)
            .await?;
    }

    let now = crate::clock::now();
    let row = merge::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        object_type: Set(R::OBJECT.as_str().to_owned()),
        survivor_id: Set(survivor_id),
        merged_ids: Set(json!(merged_ids)),
        snapshot: Set(serde_json::to_value(&snapshot).map_err(|e| Error::Internal(e.to_string()))?),
        created_by: Set(ctx.user_id),
        created_at: Set(now),
        undo_until: Set(now + chrono::Duration::days(i64::from(undo_days.max(0)))),
        undone_at: Set(None),
        undone_by: Set(None),
    }
    .insert(&tx)
    .await?;
    for alias in &merged_ids {
        record_alias::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id),
            object_type: Set(R::OBJECT.as_str().to_owned()),
            alias_id: Set(*alias),
            record_id: Set(survivor_id),
            merge_id: Set(row.id),
        }
        .insert(&tx)
        .await?;
    }
    crate::crm::duplicates::queue::resolve(&tx, ctx, R::OBJECT, &merged_ids, "merged").await?;

    let moved = moved_counts(&snapshot);
    let mut entries = vec![AuditEntry::new(
        R::OBJECT,
        survivor_id,
        AuditAction::Merge,
        json!({
            "merge_id": row.id,
            "merged_ids": merged_ids,
            "moved": moved,
            "changes": audit::diff(
                &records::to_json::<R>(&survivor),
                &records::to_json::<R>(&after),
            ),
        }),
    )];
    entries.extend(merged_ids.iter().map(|id| {
        AuditEntry::new(
            R::OBJECT,
            *id,
            AuditAction::Merge,
            json!({"merge_id": row.id, "merged_into": survivor_id}),
        )
    }));
    audit::write(&tx, ctx, entries).await?;
    tx.commit().await?;
    records::kick_jobs(ctx);

    let record = records::reveal_many::<R>(db, ctx, std::slice::from_ref(&after), false)
        .await?
        .pop()
        .unwrap_or(Value::Null);
    Ok(MergeOutcome {
        merge: out(row)?,
        record,
    })
}

/// One merge of the caller's tenant.
pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<Merge> {
    let row = find(db, ctx, id).await?;
    out(row)
}

/// The tenant's merges of one object type, newest first.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    record: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Merge>> {
    ctx.require(object, Action::Read)?;
    let mut q = merge::Entity::find()
        .filter(merge::Column::TenantId.eq(ctx.tenant_id))
        .filter(merge::Column::ObjectType.eq(object.as_str()));
    if let Some(r) = record {
        q = q.filter(merge::Column::SurvivorId.eq(r));
    }
    q.order_by_desc(merge::Column::CreatedAt)
        .limit(limit.clamp(1, 200))
        .all(db)
        .await?
        .into_iter()
        .map(out)
        .collect()
}

/// The merge `id`, if the caller may read its object type.
async fn find<C: ConnectionTrait>(db: &C, ctx: &RequestContext, id: Uuid) -> Result<merge::Model> {
    let row = merge::Entity::find()
        .filter(merge::Column::TenantId.eq(ctx.tenant_id))
        .filter(merge::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("merge"))?;
    ctx.require(object_of(&row)?, Action::Read)?;
    Ok(row)
}

fn object_of(row: &merge::Model) -> Result<ObjectType> {
    match row.object_type.as_str() {
        "contact" => Ok(ObjectType::Contact),
        "account" => Ok(ObjectType::Account),
        other => Err(Error::Internal(format!("a merge of `{other}` records"))),
    }
}

fn out(row: merge::Model) -> Result<Merge> {
    let snapshot: Snapshot =
        serde_json::from_value(row.snapshot).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Merge {
        id: row.id,
        object_type: row.object_type,
        survivor_id: row.survivor_id,
        merged_ids: serde_json::from_value(row.merged_ids).unwrap_or_default(),
        moved: moved_counts(&snapshot),
        created_by: row.created_by,
        created_at: row.created_at,
        undo_until: row.undo_until,
        undone_at: row.undone_at,
        undone_by: row.undone_by,
    })
}

fn moved_counts(s: &Snapshot) -> BTreeMap<String, usize> {
    s.moved
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.len()))
        .collect()
}

fn check_request(req: &MergeRequest) -> Result<()> {
    let mut errors = Vec::new();
    if req.merged_ids.is_empty() || req.merged_ids.len() > MAX_MERGED {
        errors.push(crate::error::FieldError::new(
            "merged_ids",
            "out_of_range",
            format!("merge 1 to {MAX_MERGED} records into the survivor"),
        ));
    }
    for (i, id) in req.merged_ids.iter().enumerate() {
        if *id == req.survivor_id {
            errors.push(crate::error::FieldError::new(
                format!("merged_ids[{i}]"),
                "is_survivor",
                "the survivor cannot be merged into itself",
            ));
        } else if req.merged_ids[..i].contains(id) {
            errors.push(crate::error::FieldError::new(
                format!("merged_ids[{i}]"),
                "duplicate",
                "this record is listed twice",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// A record the caller cannot reach, named by the request field that
/// pointed to it.
fn not_found_as_field(e: Error, field: &str) -> Error {
    match e {
        Error::NotFound(what) => Error::field(field, "not_found", format!("no such {what}")),
        other => other,
    }
}

/// A row as stored, for the snapshot.
fn stored_json<R: Record>(m: &R::Model) -> Result<Value> {
    serde_json::to_value(m).map_err(|e| Error::Internal(e.to_string()))
}

fn updated_at(stored: &Value) -> DateTime<Utc> {
    stored
        .get("updated_at")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Writes `rows` (stored form) back as they were.
pub(crate) async fn reinsert<R: Record>(
    tx: &DatabaseTransaction,
    rows: &[Value],
) -> Result<Vec<R::Model>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let m: R::Model =
            serde_json::from_value(row.clone()).map_err(|e| Error::Internal(e.to_string()))?;
        R::Entity::insert(sea_orm::IntoActiveModel::into_active_model(m.clone()))
            .exec_without_returning(tx)
            .await?;
        out.push(m);
    }
    Ok(out)
}
