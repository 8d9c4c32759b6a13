//! A record's timeline: its activities and the changes made to it, newest
//! first, from the activities table and the audit trail.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::activities::{Activities, Activity};
use crate::crm::records;
use crate::entities::{activity, audit_log};
use crate::error::Result;
use crate::permissions::{Action, ObjectType};

/// One entry of a timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineEntry {
    /// An activity linked to the record.
    Activity {
        at: DateTime<Utc>,
        #[schema(value_type = Activity)]
        activity: Value,
    },
    /// A change to the record (or to a record merged into it).
    Change {
        at: DateTime<Utc>,
        /// The record changed: this one, or one merged into it.
        record_id: Uuid,
        /// `create`, `update`, `delete`, `link`, `unlink` (a stage move is an update of `stage_id`).
        action: String,
        actor_kind: String,
        actor_id: Option<Uuid>,
        #[schema(value_type = Object)]
        changes: Value,
    },
}

impl TimelineEntry {
    fn at(&self) -> DateTime<Utc> {
        match self {
            TimelineEntry::Activity { at, .. } | TimelineEntry::Change { at, .. } => *at,
        }
    }
}

/// The newest `limit` entries of a record's timeline.
pub async fn timeline(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    id: Uuid,
    limit: u64,
) -> Result<Vec<TimelineEntry>> {
    ctx.require(object, Action::Read)?;
    // The record must exist in the caller's tenant.
    match object {
        ObjectType::Contact => {
            drop(records::load::<crate::crm::contacts::Contacts, _>(db, ctx, id).await?)
        }
        ObjectType::Account => {
            drop(records::load::<crate::crm::accounts::Accounts, _>(db, ctx, id).await?)
        }
        ObjectType::Deal => drop(records::load::<crate::crm::deals::Deals, _>(db, ctx, id).await?),
        _ => drop(records::load::<Activities, _>(db, ctx, id).await?),
    }
    let mut entries = Vec::new();
    if ctx.require(ObjectType::Activity, Action::Read).is_ok() && object != ObjectType::Activity {
        let column = match object {
            ObjectType::Contact => activity::Column::ContactId,
            ObjectType::Account => activity::Column::AccountId,
            _ => activity::Column::DealId,
        };
        let mut q = activity::Entity::find()
            .filter(activity::Column::TenantId.eq(ctx.tenant_id))
            .filter(column.eq(id));
        if let Some(owners) = records::reachable_owners(db, ctx, ObjectType::Activity).await? {
            q = q.filter(activity::Column::OwnerId.is_in(owners));
        }
        let acts = q
            .order_by_desc(activity::Column::CreatedAt)
            .order_by_desc(activity::Column::Id)
            .limit(limit)
            .all(db)
            .await?;
        entries.extend(acts.into_iter().map(|a| TimelineEntry::Activity {
            at: a.created_at,
            activity: records::present::<Activities>(ctx, &a),
        }));
    }
    // The history of records merged into this one is part of its own.
    let mut ids = crate::crm::merge::aliases(db, ctx.tenant_id, object, id).await?;
    ids.push(id);
    let changes = audit_log::Entity::find()
        .filter(audit_log::Column::TenantId.eq(ctx.tenant_id))
        .filter(audit_log::Column::RecordId.is_in(ids))
        .order_by_desc(audit_log::Column::At)
        .order_by_desc(audit_log::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    entries.extend(changes.into_iter().map(|c| {
        let mut changes = c.changes;
        ctx.policy.redact_changes(object, &mut changes);
        TimelineEntry::Change {
            at: c.at,
            record_id: c.record_id,
            action: c.action,
            actor_kind: c.actor_kind,
            actor_id: c.actor_id,
            changes,
        }
    }));
    // Stable: equal times keep activities (newest first) before changes.
    entries.sort_by_key(|e| std::cmp::Reverse(e.at()));
    entries.truncate(limit as usize);
    Ok(entries)
}
