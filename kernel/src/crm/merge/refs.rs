//! Moving what refers to merged records over to the survivor, and back on
//! undo. Records that move (deals, activities, child accounts) take the
//! ordinary write path's bookkeeping: a new version, an audit entry, search
//! and after-write hooks. Links, relationships and consents move as rows.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Snapshot;
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::activities::Activities;
use crate::crm::custom_fields::{self, FieldType};
use crate::crm::deals::Deals;
use crate::crm::links;
use crate::crm::records::{self, Record, with_record_type};
use crate::db::dialect::{Dialect, JsonKind};
use crate::entities::{account, consent, contact_account, contact_relationship};
use crate::error::{Error, Result};
use crate::permissions::ObjectType;

/// A row that pointed at `from` and now points at the survivor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Moved {
    pub id: Uuid,
    pub from: Uuid,
}

/// Moves every reference to `merged` over to `survivor`, noting each in
/// the snapshot.
pub(crate) async fn move_all(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    object: ObjectType,
    survivor: Uuid,
    merged: &[Uuid],
    snapshot: &mut Snapshot,
) -> Result<()> {
    let column = match object {
        ObjectType::Contact => "contact_id",
        _ => "account_id",
    };
    let moves = [
        (
            "deals",
            repoint::<Deals>(tx, ctx, column, merged, None, survivor).await?,
        ),
        (
            "activities",
            repoint::<Activities>(tx, ctx, column, merged, None, survivor).await?,
        ),
    ];
    for (kind, moved) in moves {
        snapshot.moved.insert(kind.to_owned(), moved);
    }
    let (links, dropped) = move_links(tx, ctx, object, survivor, merged).await?;
    snapshot.moved.insert("links".to_owned(), links);
    snapshot.dropped.insert("links".to_owned(), dropped);
    if object == ObjectType::Contact {
        let (from, to, dropped) = move_relationships(tx, ctx, survivor, merged).await?;
        snapshot.moved.insert("relationships_from".to_owned(), from);
        snapshot.moved.insert("relationships_to".to_owned(), to);
        snapshot.dropped.insert("relationships".to_owned(), dropped);
        let consents = consent::Entity::find()
            .filter(consent::Column::TenantId.eq(ctx.tenant_id))
            .filter(consent::Column::ContactId.is_in(merged.to_vec()))
            .all(tx)
            .await?;
        consent::Entity::update_many()
            .col_expr(consent::Column::ContactId, Expr::value(survivor))
            .filter(consent::Column::TenantId.eq(ctx.tenant_id))
            .filter(consent::Column::ContactId.is_in(merged.to_vec()))
            .exec(tx)
            .await?;
        snapshot.moved.insert(
            "consents".to_owned(),
            consents
                .into_iter()
                .map(|c| Moved {
                    id: c.id,
                    from: c.contact_id,
                })
                .collect(),
        );
    } else {
        let mut skip = merged.to_vec();
        skip.push(survivor);
        let children =
            repoint_skipping::<Accounts>(tx, ctx, "parent_id", merged, None, &skip, survivor)
                .await?;
        snapshot.moved.insert("child_accounts".to_owned(), children);
    }
    for (holder, key) in reference_fields(tx, ctx, object).await? {
        // The survivor's own references are its chosen values' business.
        let moved = with_record_type!(holder, R => repoint_by::<R>(
            tx, ctx, Pointer::Custom(&key), merged, None, &[survivor], survivor,
        )
        .await?);
        snapshot.moved.insert(custom_kind(holder, &key), moved);
    }
    Ok(())
}

/// Puts back what a merge moved, where it still points at the survivor
/// (a deal moved on since then stays where it is now).
pub(crate) async fn restore_all(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    object: ObjectType,
    survivor: Uuid,
    snapshot: &Snapshot,
) -> Result<()> {
    let column = match object {
        ObjectType::Contact => "contact_id",
        _ => "account_id",
    };
    let moved = |kind: &str| snapshot.moved.get(kind).cloned().unwrap_or_default();
    for (from, ids) in by_origin(&moved("deals")) {
        repoint::<Deals>(tx, ctx, column, &[survivor], Some(&ids), from).await?;
    }
    for (from, ids) in by_origin(&moved("activities")) {
        repoint::<Activities>(tx, ctx, column, &[survivor], Some(&ids), from).await?;
    }
    for (from, ids) in by_origin(&moved("child_accounts")) {
        repoint::<Accounts>(tx, ctx, "parent_id", &[survivor], Some(&ids), from).await?;
    }
    for (holder, key) in reference_fields(tx, ctx, object).await? {
        for (from, ids) in by_origin(&moved(&custom_kind(holder, &key))) {
            with_record_type!(holder, R => repoint_by::<R>(
                tx, ctx, Pointer::Custom(&key), &[survivor], Some(&ids), &[], from,
            )
            .await?);
        }
    }
    for (from, ids) in by_origin(&moved("links")) {
        let q = contact_account::Entity::update_many()
            .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_account::Column::Id.is_in(ids));
        match object {
            ObjectType::Contact => {
                q.col_expr(contact_account::Column::ContactId, Expr::value(from))
                    .filter(contact_account::Column::ContactId.eq(survivor))
                    .exec(tx)
                    .await?
            }
            _ => {
                q.col_expr(contact_account::Column::AccountId, Expr::value(from))
                    .filter(contact_account::Column::AccountId.eq(survivor))
                    .exec(tx)
                    .await?
            }
        };
    }
    for (from, ids) in by_origin(&moved("relationships_from")) {
        contact_relationship::Entity::update_many()
            .col_expr(
                contact_relationship::Column::FromContactId,
                Expr::value(from),
            )
            .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_relationship::Column::Id.is_in(ids))
            .filter(contact_relationship::Column::FromContactId.eq(survivor))
            .exec(tx)
            .await?;
    }
    for (from, ids) in by_origin(&moved("relationships_to")) {
        contact_relationship::Entity::update_many()
            .col_expr(contact_relationship::Column::ToContactId, Expr::value(from))
            .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_relationship::Column::Id.is_in(ids))
            .filter(contact_relationship::Column::ToContactId.eq(survivor))
            .exec(tx)
            .await?;
    }
    for (from, ids) in by_origin(&moved("consents")) {
        consent::Entity::update_many()
            .col_expr(consent::Column::ContactId, Expr::value(from))
            .filter(consent::Column::TenantId.eq(ctx.tenant_id))
            .filter(consent::Column::Id.is_in(ids))
            .filter(consent::Column::ContactId.eq(survivor))
            .exec(tx)
            .await?;
    }
    // Rows the merge dropped as repeats come back unless their like exists
    // again (a link made since).
    for row in snapshot.dropped.get("links").into_iter().flatten() {
        let m: contact_account::Model = from_json(row)?;
        if !links::contact_exists(tx, ctx, m.contact_id).await?
            || !links::account_exists(tx, ctx, m.account_id).await?
        {
            continue;
        }
        let exists = contact_account::Entity::find()
            .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_account::Column::ContactId.eq(m.contact_id))
            .filter(contact_account::Column::AccountId.eq(m.account_id))
            .one(tx)
            .await?
            .is_some();
        if !exists {
            contact_account::Entity::insert(sea_orm::IntoActiveModel::into_active_model(m))
                .exec_without_returning(tx)
                .await?;
        }
    }
    for row in snapshot.dropped.get("relationships").into_iter().flatten() {
        let m: contact_relationship::Model = from_json(row)?;
        if !links::contact_exists(tx, ctx, m.from_contact_id).await?
            || !links::contact_exists(tx, ctx, m.to_contact_id).await?
        {
            continue;
        }
        let exists = contact_relationship::Entity::find()
            .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_relationship::Column::FromContactId.eq(m.from_contact_id))
            .filter(contact_relationship::Column::ToContactId.eq(m.to_contact_id))
            .filter(contact_relationship::Column::Kind.eq(m.kind.clone()))
            .one(tx)
            .await?
            .is_some();
        if !exists {
            contact_relationship::Entity::insert(sea_orm::IntoActiveModel::into_active_model(m))
                .exec_without_returning(tx)
                .await?;
        }
    }
    Ok(())
}

/// Moved rows grouped by the record they pointed at.
fn by_origin(moved: &[Moved]) -> BTreeMap<Uuid, Vec<Uuid>> {
    let mut out: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for m in moved {
        out.entry(m.from).or_default().push(m.id);
    }
    out
}

fn from_json<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T> {
    serde_json::from_value(v.clone()).map_err(|e| Error::Internal(e.to_string()))
}

/// Where a record points at another: a column, or a custom reference field.
#[derive(Debug, Clone, Copy)]
enum Pointer<'a> {
    Column(&'static str),
    Custom(&'a str),
}

/// Points `column` of the `R` records that point at one of `pointing_at`
/// (only the records `only`) at `to`, as ordinary updates: new version,
/// audit entry, search, hooks.
async fn repoint<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    column: &'static str,
    pointing_at: &[Uuid],
    only: Option<&[Uuid]>,
    to: Uuid,
) -> Result<Vec<Moved>> {
    repoint_by::<R>(tx, ctx, Pointer::Column(column), pointing_at, only, &[], to).await
}

/// As [`repoint`], never touching the records `skip`.
async fn repoint_skipping<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    column: &'static str,
    pointing_at: &[Uuid],
    only: Option<&[Uuid]>,
    skip: &[Uuid],
    to: Uuid,
) -> Result<Vec<Moved>> {
    repoint_by::<R>(
        tx,
        ctx,
        Pointer::Column(column),
        pointing_at,
        only,
        skip,
        to,
    )
    .await
}

async fn repoint_by<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    pointer: Pointer<'_>,
    pointing_at: &[Uuid],
    only: Option<&[Uuid]>,
    skip: &[Uuid],
    to: Uuid,
) -> Result<Vec<Moved>> {
    let mut q = R::Entity::find().filter(Expr::col("tenant_id").eq(ctx.tenant_id));
    q = match pointer {
        Pointer::Column(c) => q.filter(Expr::col(c).is_in(pointing_at.to_vec())),
        Pointer::Custom(key) => {
            let value = Dialect(tx.get_database_backend()).custom_value(key, JsonKind::Text);
            q.filter(
                Expr::cust(value)
                    .is_in(pointing_at.iter().map(Uuid::to_string).collect::<Vec<_>>()),
            )
        }
    };
    if let Some(ids) = only {
        q = q.filter(Expr::col("id").is_in(ids.to_vec()));
    }
    if !skip.is_empty() {
        q = q.filter(Expr::col("id").is_not_in(skip.to_vec()));
    }
    let rows = q.all(tx).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let now = crate::clock::now();
    let mut moved = Vec::with_capacity(rows.len());
    let mut written = Vec::with_capacity(rows.len());
    for before in rows {
        let mut row = serde_json::to_value(&before).map_err(|e| Error::Internal(e.to_string()))?;
        let slot = match pointer {
            Pointer::Column(c) => row.get_mut(c),
            Pointer::Custom(key) => row.get_mut("custom").and_then(|c| c.get_mut(key)),
        }
        .ok_or_else(|| Error::Internal(format!("{pointer:?} is missing")))?;
        let from = serde_json::from_value::<Uuid>(slot.clone())
            .map_err(|_| Error::Internal(format!("{pointer:?} is not an id")))?;
        *slot = json!(to);
        row["version"] = json!(R::version(&before) + 1);
        row["updated_at"] = json!(now);
        let after: R::Model = from_json(&row)?;
        if let Pointer::Custom(_) = pointer {
            // Each record's custom values differ: one write each.
            R::Entity::update_many()
                .col_expr(Alias::new("custom"), Expr::value(row["custom"].clone()))
                .col_expr(Alias::new("version"), Expr::col("version").add(1))
                .col_expr(Alias::new("updated_at"), Expr::value(now))
                .filter(Expr::col("tenant_id").eq(ctx.tenant_id))
                .filter(Expr::col("id").eq(R::id(&before)))
                .exec(tx)
                .await?;
        }
        moved.push(Moved {
            id: R::id(&before),
            from,
        });
        written.push((after, Some(before)));
    }
    if let Pointer::Column(column) = pointer {
        R::Entity::update_many()
            .col_expr(Alias::new(column), Expr::value(to))
            .col_expr(Alias::new("version"), Expr::col("version").add(1))
            .col_expr(Alias::new("updated_at"), Expr::value(now))
            .filter(Expr::col("tenant_id").eq(ctx.tenant_id))
            .filter(Expr::col("id").is_in(moved.iter().map(|m| m.id).collect::<Vec<_>>()))
            .exec(tx)
            .await?;
    }
    records::finish_writes::<R>(tx, ctx, &written).await?;
    Ok(moved)
}

/// The custom reference fields (of every record type) that can point at
/// records of `object`: `(holder type, key)`. Encrypted ones cannot be
/// searched, so they keep pointing at the merged id (which resolves).
async fn reference_fields(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Vec<(ObjectType, String)>> {
    let mut out = Vec::new();
    for holder in [
        ObjectType::Contact,
        ObjectType::Account,
        ObjectType::Deal,
        ObjectType::Activity,
    ] {
        for d in custom_fields::definitions(tx, ctx.tenant_id, holder).await? {
            if d.field_type == FieldType::Reference
                && d.reference_type == Some(object)
                && !d.sensitive
            {
                out.push((holder, d.key));
            }
        }
    }
    Ok(out)
}

/// The snapshot's name of a custom reference field's moves.
fn custom_kind(holder: ObjectType, key: &str) -> String {
    format!("custom.{}.{key}", holder.as_str())
}

/// Moves contact–account links of the merged records to the survivor; a
/// link the survivor already has (to the same account, or from the same
/// contact) is dropped instead, kept in the snapshot.
async fn move_links(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    object: ObjectType,
    survivor: Uuid,
    merged: &[Uuid],
) -> Result<(Vec<Moved>, Vec<Value>)> {
    let is_contact = object == ObjectType::Contact;
    let (mine, own_col) = if is_contact {
        (
            contact_account::Column::ContactId,
            contact_account::Column::ContactId,
        )
    } else {
        (
            contact_account::Column::AccountId,
            contact_account::Column::AccountId,
        )
    };
    let other = |l: &contact_account::Model| {
        if is_contact {
            l.account_id
        } else {
            l.contact_id
        }
    };
    let mine_of = |l: &contact_account::Model| {
        if is_contact {
            l.contact_id
        } else {
            l.account_id
        }
    };
    let mut taken: Vec<Uuid> = contact_account::Entity::find()
        .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
        .filter(mine.eq(survivor))
        .all(tx)
        .await?
        .iter()
        .map(other)
        .collect();
    let theirs = contact_account::Entity::find()
        .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
        .filter(mine.is_in(merged.to_vec()))
        .all(tx)
        .await?;
    let mut moved = Vec::new();
    let mut dropped = Vec::new();
    for link in theirs {
        if taken.contains(&other(&link)) {
            // Goes with the merged record's delete (cascade).
            dropped.push(serde_json::to_value(&link).map_err(|e| Error::Internal(e.to_string()))?);
            continue;
        }
        taken.push(other(&link));
        moved.push(Moved {
            id: link.id,
            from: mine_of(&link),
        });
    }
    if !moved.is_empty() {
        contact_account::Entity::update_many()
            .col_expr(own_col, Expr::value(survivor))
            .filter(contact_account::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_account::Column::Id.is_in(moved.iter().map(|m| m.id)))
            .exec(tx)
            .await?;
    }
    Ok((moved, dropped))
}

/// Moves the merged contacts' relationships to the survivor. A
/// relationship between records of the merge, or one the survivor already
/// has, is dropped (kept in the snapshot).
async fn move_relationships(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    survivor: Uuid,
    merged: &[Uuid],
) -> Result<(Vec<Moved>, Vec<Moved>, Vec<Value>)> {
    let map = |id: Uuid| {
        if merged.contains(&id) { survivor } else { id }
    };
    let mut all = merged.to_vec();
    all.push(survivor);
    let rows = contact_relationship::Entity::find()
        .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
        .filter(
            sea_orm::Condition::any()
                .add(contact_relationship::Column::FromContactId.is_in(all.clone()))
                .add(contact_relationship::Column::ToContactId.is_in(all)),
        )
        .all(tx)
        .await?;
    // The survivor's own relationships are the ones to keep.
    let mut kept: Vec<(Uuid, Uuid, String)> = rows
        .iter()
        .filter(|r| !merged.contains(&r.from_contact_id) && !merged.contains(&r.to_contact_id))
        .map(|r| (r.from_contact_id, r.to_contact_id, r.kind.clone()))
        .collect();
    let (mut from, mut to, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows
        .iter()
        .filter(|r| merged.contains(&r.from_contact_id) || merged.contains(&r.to_contact_id))
    {
        let key = (map(r.from_contact_id), map(r.to_contact_id), r.kind.clone());
        if key.0 == key.1 || kept.contains(&key) {
            dropped.push(serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))?);
            continue;
        }
        kept.push(key.clone());
        if key.0 != r.from_contact_id {
            from.push(Moved {
                id: r.id,
                from: r.from_contact_id,
            });
        }
        if key.1 != r.to_contact_id {
            to.push(Moved {
                id: r.id,
                from: r.to_contact_id,
            });
        }
    }
    if !from.is_empty() {
        contact_relationship::Entity::update_many()
            .col_expr(
                contact_relationship::Column::FromContactId,
                Expr::value(survivor),
            )
            .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_relationship::Column::Id.is_in(from.iter().map(|m| m.id)))
            .exec(tx)
            .await?;
    }
    if !to.is_empty() {
        contact_relationship::Entity::update_many()
            .col_expr(
                contact_relationship::Column::ToContactId,
                Expr::value(survivor),
            )
            .filter(contact_relationship::Column::TenantId.eq(ctx.tenant_id))
            .filter(contact_relationship::Column::Id.is_in(to.iter().map(|m| m.id)))
            .exec(tx)
            .await?;
    }
    Ok((from, to, dropped))
}

/// Account merges: the survivor's parent cannot be one of the merged
/// accounts (nor itself). A chosen parent among them is replaced by the
/// nearest ancestor outside the merge; and the survivor is detached from
/// a merged parent now, so the merged accounts can be deleted before its
/// new parent is written (and cycle-checked) by the update.
pub(crate) async fn settle_account_tree(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    survivor: &Uuid,
    merged: &[Uuid],
    chosen: &mut Value,
) -> Result<()> {
    let mut all = merged.to_vec();
    all.push(*survivor);
    let parents: BTreeMap<Uuid, Option<Uuid>> = account::Entity::find()
        .filter(account::Column::TenantId.eq(ctx.tenant_id))
        .filter(account::Column::Id.is_in(all.clone()))
        .all(tx)
        .await?
        .into_iter()
        .map(|a| (a.id, a.parent_id))
        .collect();
    // A merged account's child moves below the survivor: that child must
    // not be above the survivor already.
    let children = account::Entity::find()
        .filter(account::Column::TenantId.eq(ctx.tenant_id))
        .filter(account::Column::ParentId.is_in(merged.to_vec()))
        .filter(account::Column::Id.is_not_in(all.clone()))
        .all(tx)
        .await?;
    for c in children {
        let (above, _) =
            crate::crm::accounts::is_ancestor_or_self(tx, ctx.tenant_id, *survivor, c.id).await?;
        if above {
            return Err(Error::Conflict {
                code: "merge_would_cycle",
                message: format!(
                    "`{}` is below a merged account and above the survivor: keep it instead, or move it first",
                    c.name
                ),
            });
        }
    }
    let mut parent: Option<Uuid> = chosen
        .get("parent_id")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    for _ in 0..=all.len() {
        match parent {
            Some(p) if all.contains(&p) => parent = parents.get(&p).copied().flatten(),
            _ => break,
        }
    }
    if parent.is_some_and(|p| all.contains(&p)) {
        parent = None;
    }
    chosen["parent_id"] = json!(parent);
    if parents
        .get(survivor)
        .copied()
        .flatten()
        .is_some_and(|p| merged.contains(&p))
    {
        account::Entity::update_many()
            .col_expr(account::Column::ParentId, Expr::value(Option::<Uuid>::None))
            .filter(account::Column::TenantId.eq(ctx.tenant_id))
            .filter(account::Column::Id.eq(*survivor))
            .exec(tx)
            .await?;
    }
    Ok(())
}

/// The merged records in an order that deletes an account's children
/// (among them) before it.
pub(crate) fn leaves_first(rows: &[Value], merged: &[Uuid]) -> Vec<Uuid> {
    let parent_of = |id: &Uuid| -> Option<Uuid> {
        rows.iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id.to_string().as_str()))
            .and_then(|r| r.get("parent_id").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
    };
    let mut left: Vec<Uuid> = merged.to_vec();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let before = left.len();
        let mut i = 0;
        while i < left.len() {
            let id = left[i];
            let has_child = left.iter().any(|o| parent_of(o) == Some(id));
            if has_child {
                i += 1;
            } else {
                out.push(id);
                left.remove(i);
            }
        }
        if left.len() == before {
            // Not a tree (cannot happen: the hierarchy has no cycles).
            out.append(&mut left);
        }
    }
    out
}
