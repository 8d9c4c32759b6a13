//! Searching the audit trail: by record, actor, action and time range,
//! newest first, in keyset pages over the per-tenant sequence.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::entities::audit_log;
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType, Scope};

/// Filters of an audit search.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries about this record.
    pub record_id: Option<Uuid>,
    /// `contact`, `deal`, `user`, `session`...
    pub object_type: Option<String>,
    /// The user, API key or operator that acted.
    pub actor_id: Option<Uuid>,
    /// `create`, `update`, `delete`, `read`, `login`, `login_failed`...
    pub action: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Entries with a sequence number below this (the previous page's `next_before`).
    pub before: Option<i64>,
    /// 1-1000, default 100.
    pub limit: Option<u64>,
}

/// One audit entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub id: Uuid,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub object_type: String,
    pub record_id: Uuid,
    pub action: String,
    pub changes: serde_json::Value,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub hash: String,
    pub redacted: bool,
}

impl From<audit_log::Model> for AuditEntryOut {
    fn from(m: audit_log::Model) -> Self {
        AuditEntryOut {
            id: m.id,
            seq: m.seq,
            at: m.at,
            object_type: m.object_type,
            record_id: m.record_id,
            action: m.action,
            changes: m.changes,
            actor_kind: m.actor_kind,
            actor_id: m.actor_id,
            request_id: m.request_id,
            ip: m.ip,
            user_agent: m.user_agent,
            hash: m.hash,
            redacted: m.redacted_at.is_some(),
        }
    }
}

impl AuditEntryOut {
    /// An entry as `ctx` may see it. Its `changes` show only for object types
    /// the caller may read with an `all` record scope (or, with `in_scope`,
    /// about a record the caller already reached), minus the caller's hidden
    /// fields; otherwise they are withheld. Entries about everything else keep
    /// their who/when/what, which audit readers need.
    pub fn visible_to(m: audit_log::Model, ctx: &RequestContext, in_scope: bool) -> Self {
        let mut out = AuditEntryOut::from(m);
        match ObjectType::parse(&out.object_type) {
            Some(o)
                if ctx.can(o, Action::Read) && (in_scope || ctx.policy.scope(o) == Scope::All) =>
            {
                ctx.policy.redact_changes(o, &mut out.changes);
            }
            _ if out.redacted => {}
            _ => {
                out.changes = serde_json::json!({
                    "withheld": "outside your read permission or record scope"
                });
            }
        }
        out
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEntryOut>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next_before: Option<i64>,
}

/// Entries of the caller's tenant matching `q`, newest first.
pub async fn search<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    q: &AuditQuery,
) -> Result<AuditPage> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::field("limit", "out_of_range", "use 1 to 1000"));
    }
    let mut select =
        audit_log::Entity::find().filter(audit_log::Column::TenantId.eq(ctx.tenant_id));
    if let Some(id) = q.record_id {
        select = select.filter(audit_log::Column::RecordId.eq(id));
    }
    if let Some(t) = &q.object_type {
        select = select.filter(audit_log::Column::ObjectType.eq(t.as_str()));
    }
    if let Some(a) = q.actor_id {
        select = select.filter(audit_log::Column::ActorId.eq(a));
    }
    if let Some(a) = &q.action {
        select = select.filter(audit_log::Column::Action.eq(a.as_str()));
    }
    if let Some(from) = q.from {
        select = select.filter(audit_log::Column::At.gte(from));
    }
    if let Some(to) = q.to {
        select = select.filter(audit_log::Column::At.lt(to));
    }
    if let Some(before) = q.before {
        select = select.filter(audit_log::Column::Seq.lt(before));
    }
    let mut rows = select
        .order_by_desc(audit_log::Column::Seq)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(AuditPage {
        data: rows
            .into_iter()
            .map(|r| AuditEntryOut::visible_to(r, ctx, false))
            .collect(),
        next_before,
    })
}
