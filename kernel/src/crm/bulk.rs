//! Bulk actions on a list's whole result set (not the page on screen):
//! update a field, give records an owner, add or remove tags, delete into
//! the trash, or restore what a bulk delete removed. Each runs as a
//! background job, in batches; a batch's changes and the progress that
//! counts them commit together, so a crashed run resumes after its last
//! batch. Every record goes through the ordinary write path (validation,
//! field rules, hooks, audit); a record that fails is counted and named,
//! and the others go on.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::context::RequestContext;
use crate::crm::records::{self, Record, with_record_type};
use crate::crm::{custom_fields, sensitive, trash};
use crate::entities::{bulk_action, trash as trash_row};
use crate::error::{Error, FieldError, Result};
use crate::permissions::{Action, ObjectType};

/// Records per batch (one transaction each).
const BATCH: u64 = 200;
/// Failures named in the action's report; the rest are counted.
const MAX_ERRORS: usize = 100;

/// What to do to each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Apply `patch` (a JSON merge patch of fields).
    Update,
    /// Give the records to `owner_id`.
    AssignOwner,
    /// Add `tags` (contacts).
    AddTags,
    /// Remove `tags` (contacts).
    RemoveTags,
    /// Delete into the trash.
    Delete,
    /// Bring back what a bulk delete removed (`POST .../restore`).
    Restore,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::AssignOwner => "assign_owner",
            Kind::AddTags => "add_tags",
            Kind::RemoveTags => "remove_tags",
            Kind::Delete => "delete",
            Kind::Restore => "restore",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }

    fn needs(self) -> Action {
        match self {
            Kind::Delete => Action::Delete,
            Kind::Restore => Action::Create,
            _ => Action::Update,
        }
    }
}

/// A bulk action to start.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkActionRequest {
    /// List filters (`field:op:value`, as the list's `filter` takes);
    /// none: every record the caller may reach.
    #[serde(default)]
    pub filter: Vec<String>,
    /// `update`, `assign_owner`, `add_tags`, `remove_tags` or `delete`.
    pub action: Kind,
    /// For `update`: the fields to set (JSON merge patch).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub patch: Option<Value>,
    /// For `assign_owner`.
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// For `add_tags` and `remove_tags`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A bulk action and its progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkAction {
    pub id: Uuid,
    pub object_type: String,
    pub action: Kind,
    pub filter: Vec<String>,
    /// queued, running, done, failed or cancelled.
    pub status: String,
    /// Records matching when the action started.
    pub total: i64,
    pub processed: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// 0 to 100.
    pub percent: f64,
    /// The first failures: record `id`, `code`, `message` and the failing
    /// `fields`.
    #[schema(value_type = Vec<Object>)]
    pub errors: Value,
    /// Why the whole action failed, if it did.
    pub error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn out(m: bulk_action::Model) -> BulkAction {
    let percent = if m.total > 0 {
        ((m.processed as f64 / m.total as f64) * 1000.0).round() / 10.0
    } else if m.status == "done" {
        100.0
    } else {
        0.0
    };
    BulkAction {
        id: m.id,
        object_type: m.object_type,
        action: Kind::parse(&m.action).unwrap_or(Kind::Update),
        filter: serde_json::from_value(m.filters).unwrap_or_default(),
        status: m.status,
        total: m.total,
        processed: m.processed,
        succeeded: m.succeeded,
        failed: m.failed,
        percent,
        errors: m.errors,
        error: m.error,
        created_at: m.created_at,
        finished_at: m.finished_at,
    }
}

/// The list query of `filters`, as the list endpoint takes it.
fn query_of(filters: &[String]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for f in filters {
        s.append_pair("filter", f);
    }
    s.finish()
}

/// Checks a request and queues it.
pub async fn start<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    req: BulkActionRequest,
) -> Result<BulkAction> {
    ctx.require(R::OBJECT, req.action.needs())?;
    let params = params_of::<R>(db, ctx, &req).await?;
    let raw = query_of(&req.filter);
    let (_, filters) = records::list_filters::<R>(db, ctx, Some(&raw)).await?;
    let matching = records::visible::<R, _>(db, ctx).await?.filter(filters);
    let total = matching.clone().count(db).await?;
    let upper: Option<Uuid> = matching
        .select_only()
        .column_as(Expr::col("id"), "id")
        .order_by_desc(Expr::col("id"))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    queue(
        db,
        ctx,
        R::OBJECT,
        req.action,
        &req.filter,
        params,
        total as i64,
        upper,
    )
    .await
}

/// The action's parameters, checked.
async fn params_of<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    req: &BulkActionRequest,
) -> Result<Value> {
    let fail = |field: &str, code: &str, message: &str| {
        Err(Error::Validation(vec![FieldError::new(
            field, code, message,
        )]))
    };
    match req.action {
        Kind::Update => match &req.patch {
            Some(Value::Object(p)) if !p.is_empty() => {
                if let Some(k) = ["id", "version"].iter().find(|k| p.contains_key(**k)) {
                    return fail(
                        &format!("patch.{k}"),
                        "not_allowed",
                        "a bulk update cannot set this",
                    );
                }
                Ok(json!({"patch": p}))
            }
            _ => fail("patch", "required", "give the fields to set as an object"),
        },
        Kind::AssignOwner => {
            let Some(owner) = req.owner_id else {
                return fail("owner_id", "required", "give the new owner");
            };
            let mut checks = crate::crm::checks::Checks::default();
            let tx = crate::db::tenant_tx(db, ctx).await?;
            checks
                .user_exists(&tx, ctx, "owner_id", Some(owner))
                .await?;
            tx.rollback().await?;
            checks.finish()?;
            Ok(json!({"owner_id": owner}))
        }
        Kind::AddTags | Kind::RemoveTags => {
            if !R::fields().iter().any(|f| f.name == "tags") {
                return fail(
                    "action",
                    "invalid_value",
                    &format!("{}s have no tags", R::OBJECT.as_str()),
                );
            }
            let tags: Vec<String> = req
                .tags
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if tags.is_empty() {
                return fail("tags", "required", "give one tag or more");
            }
            Ok(json!({"tags": tags}))
        }
        Kind::Delete => Ok(json!({})),
        Kind::Restore => fail(
            "action",
            "invalid_value",
            "restore a bulk delete with POST /api/v1/bulk-actions/{id}/restore",
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn queue(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    kind: Kind,
    filter: &[String],
    params: Value,
    total: i64,
    upper: Option<Uuid>,
) -> Result<BulkAction> {
    let now = crate::clock::now();
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let id = Uuid::now_v7();
    let job = crate::jobs::enqueue(
        &tx,
        ctx.tenant_id,
        crate::jobs::Kind::BulkAction,
        None,
        kind.as_str(),
        json!({"bulk_action_id": id}),
        now,
    )
    .await?;
    let m = bulk_action::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id),
        object_type: Set(object.as_str().to_owned()),
        action: Set(kind.as_str().to_owned()),
        filters: Set(json!(filter)),
        params: Set(params),
        status: Set("queued".to_owned()),
        total: Set(total),
        processed: Set(0),
        succeeded: Set(0),
        failed: Set(0),
        errors: Set(json!([])),
        cursor: Set(None),
        upper: Set(upper),
        actor: Set(json!(crate::auth::Acting::of(ctx))),
        job_id: Set(Some(job)),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    records::kick_jobs(ctx);
    Ok(out(m))
}

/// Queues the restore of everything bulk delete `id` put in the trash.
pub async fn restore(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<BulkAction> {
    let m = find(db, ctx, id).await?;
    let object = object_of(&m)?;
    ctx.require(object, Action::Create)?;
    if m.action != Kind::Delete.as_str() {
        return Err(Error::Conflict {
            code: "not_a_delete",
            message: "only a bulk delete can be restored".to_owned(),
        });
    }
    if !matches!(m.status.as_str(), "done" | "failed" | "cancelled") {
        return Err(Error::Conflict {
            code: "still_running",
            message: "the delete is still running; cancel it or wait".to_owned(),
        });
    }
    let total = trash_row::Entity::find()
        .filter(trash_row::Column::TenantId.eq(ctx.tenant_id))
        .filter(trash_row::Column::BulkActionId.eq(id))
        .count(db)
        .await?;
    queue(
        db,
        ctx,
        object,
        Kind::Restore,
        &[],
        json!({"of": id}),
        total as i64,
        None,
    )
    .await
}

async fn find(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<bulk_action::Model> {
    let m = bulk_action::Entity::find()
        .filter(bulk_action::Column::TenantId.eq(ctx.tenant_id))
        .filter(bulk_action::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("bulk action"))?;
    ctx.require(object_of(&m)?, Action::Read)?;
    Ok(m)
}

fn object_of(m: &bulk_action::Model) -> Result<ObjectType> {
    ObjectType::parse(&m.object_type)
        .ok_or_else(|| Error::Internal(format!("a bulk action on `{}`", m.object_type)))
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<BulkAction> {
    Ok(out(find(db, ctx, id).await?))
}

/// Stops a queued or running action after its current batch.
pub async fn cancel(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<BulkAction> {
    let m = find(db, ctx, id).await?;
    ctx.require(
        object_of(&m)?,
        Kind::parse(&m.action).unwrap_or(Kind::Update).needs(),
    )?;
    let now = crate::clock::now();
    let res = bulk_action::Entity::update_many()
        .col_expr(bulk_action::Column::Status, Expr::value("cancelled"))
        .col_expr(bulk_action::Column::FinishedAt, Expr::value(now))
        .col_expr(bulk_action::Column::UpdatedAt, Expr::value(now))
        .filter(bulk_action::Column::TenantId.eq(ctx.tenant_id))
        .filter(bulk_action::Column::Id.eq(id))
        .filter(bulk_action::Column::Status.is_in(["queued", "running"]))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(Error::Conflict {
            code: "finished",
            message: format!("the action has ended ({})", m.status),
        });
    }
    get(db, ctx, id).await
}

/// Runs (or resumes) a bulk action, from the job runner.
pub async fn run(state: &AppState, tenant_id: Uuid, payload: &Value) -> Result<()> {
    let id = payload
        .get("bulk_action_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Error::Internal("the job names no bulk action".to_owned()))?;
    let db = &state.db;
    let Some(m) = bulk_action::Entity::find()
        .filter(bulk_action::Column::TenantId.eq(tenant_id))
        .filter(bulk_action::Column::Id.eq(id))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    if !matches!(m.status.as_str(), "queued" | "running") {
        return Ok(());
    }
    let outcome = run_loaded(state, &m).await;
    let now = crate::clock::now();
    let (status, error) = match &outcome {
        Ok(true) => ("done", None),
        // Cancelled, or another run holds it: its status is theirs.
        Ok(false) => return Ok(()),
        Err(e) => ("failed", Some(e.to_string())),
    };
    // A cancel that landed meanwhile stays a cancel.
    bulk_action::Entity::update_many()
        .col_expr(bulk_action::Column::Status, Expr::value(status))
        .col_expr(bulk_action::Column::Error, Expr::value(error))
        .col_expr(bulk_action::Column::FinishedAt, Expr::value(now))
        .col_expr(bulk_action::Column::UpdatedAt, Expr::value(now))
        .filter(bulk_action::Column::TenantId.eq(tenant_id))
        .filter(bulk_action::Column::Id.eq(id))
        .filter(bulk_action::Column::Status.is_in(["queued", "running"]))
        .exec(db)
        .await?;
    Ok(())
}

/// True when the action went through to its end.
async fn run_loaded(state: &AppState, m: &bulk_action::Model) -> Result<bool> {
    let acting: crate::auth::Acting = serde_json::from_value(m.actor.clone())
        .map_err(|e| Error::Internal(format!("the bulk action's actor: {e}")))?;
    let ctx = crate::auth::resume(state, m.tenant_id, &acting).await?;
    let object = object_of(m)?;
    let kind = Kind::parse(&m.action)
        .ok_or_else(|| Error::Internal(format!("bulk action `{}`", m.action)))?;
    // The rights are those the user holds now.
    ctx.require(object, kind.needs())?;
    bulk_action::Entity::update_many()
        .col_expr(bulk_action::Column::Status, Expr::value("running"))
        .filter(bulk_action::Column::TenantId.eq(m.tenant_id))
        .filter(bulk_action::Column::Id.eq(m.id))
        .filter(bulk_action::Column::Status.eq("queued"))
        .exec(&state.db)
        .await?;
    with_record_type!(object, R => run_typed::<R>(state, &ctx, m, kind).await)
}

/// One record's outcome in a batch.
type Failure = (Uuid, Error);

async fn run_typed<R: Record>(
    state: &AppState,
    ctx: &RequestContext,
    m: &bulk_action::Model,
    kind: Kind,
) -> Result<bool> {
    let db = &state.db;
    let filters: Vec<String> = serde_json::from_value(m.filters.clone()).unwrap_or_default();
    let raw = query_of(&filters);
    let mut cursor = m.cursor;
    loop {
        // Re-read: a cancel stops the action between batches.
        let now_row = bulk_action::Entity::find_by_id(m.id)
            .filter(bulk_action::Column::TenantId.eq(m.tenant_id))
            .one(db)
            .await?
            .ok_or(Error::NotFound("bulk action"))?;
        if now_row.status != "running" {
            return Ok(false);
        }
        let ids: Vec<Uuid> = if kind == Kind::Restore {
            let of = m
                .params
                .get("of")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| Error::Internal("the restore names no delete".to_owned()))?;
            // Newest id first: the reverse of the delete's order, so a
            // relationship between two records deleted together comes back
            // with the one whose delete took it along.
            let mut q = trash_row::Entity::find()
                .select_only()
                .column(trash_row::Column::RecordId)
                .filter(trash_row::Column::TenantId.eq(m.tenant_id))
                .filter(trash_row::Column::BulkActionId.eq(of));
            if let Some(c) = cursor {
                q = q.filter(trash_row::Column::RecordId.lt(c));
            }
            q.order_by_desc(trash_row::Column::RecordId)
                .limit(BATCH)
                .into_tuple()
                .all(db)
                .await?
        } else {
            let Some(upper) = m.upper else {
                return Ok(true);
            };
            let (_, filters) = records::list_filters::<R>(db, ctx, Some(&raw)).await?;
            let mut q = records::visible::<R, _>(db, ctx)
                .await?
                .filter(filters)
                .filter(Expr::col("id").lte(upper));
            if let Some(c) = cursor {
                q = q.filter(Expr::col("id").gt(c));
            }
            q.select_only()
                .column_as(Expr::col("id"), "id")
                .order_by_asc(Expr::col("id"))
                .limit(BATCH)
                .into_tuple()
                .all(db)
                .await?
        };
        let Some(last) = ids.last().copied() else {
            return Ok(true);
        };
        let tx = crate::db::tenant_tx(db, ctx).await?;
        let failures = batch::<R>(&tx, ctx, m, kind, &ids).await?;
        let mut errors: Vec<Value> =
            serde_json::from_value(now_row.errors.clone()).unwrap_or_default();
        for (id, e) in &failures {
            if errors.len() < MAX_ERRORS {
                let fields: Vec<&str> = match e {
                    Error::Validation(fe) => fe.iter().map(|f| f.field.as_str()).collect(),
                    _ => Vec::new(),
                };
                errors.push(
                    json!({"id": id, "code": e.code(), "message": e.summary(), "fields": fields}),
                );
            }
        }
        let done = ids.len() as i64;
        let failed = failures.len() as i64;
        // Progress commits with the batch, from where this run found it.
        let moved = bulk_action::Entity::update_many()
            .col_expr(bulk_action::Column::Cursor, Expr::value(last))
            .col_expr(
                bulk_action::Column::Processed,
                Expr::col(bulk_action::Column::Processed).add(done),
            )
            .col_expr(
                bulk_action::Column::Succeeded,
                Expr::col(bulk_action::Column::Succeeded).add(done - failed),
            )
            .col_expr(
                bulk_action::Column::Failed,
                Expr::col(bulk_action::Column::Failed).add(failed),
            )
            .col_expr(bulk_action::Column::Errors, Expr::value(json!(errors)))
            .col_expr(
                bulk_action::Column::UpdatedAt,
                Expr::value(crate::clock::now()),
            )
            .filter(bulk_action::Column::TenantId.eq(m.tenant_id))
            .filter(bulk_action::Column::Id.eq(m.id))
            .filter(match cursor {
                Some(c) => bulk_action::Column::Cursor.eq(c),
                None => bulk_action::Column::Cursor.is_null(),
            })
            .exec(&tx)
            .await?;
        if moved.rows_affected != 1 {
            // Another run got here first; it carries on.
            return Ok(false);
        }
        tx.commit().await?;
        records::kick_jobs(ctx);
        if let Some(job) = m.job_id {
            crate::jobs::renew(db, job).await?;
        }
        cursor = Some(last);
    }
}

/// Applies the action to each record of a batch, each in a savepoint: a
/// record that fails is reported and the others are written.
async fn batch<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    m: &bulk_action::Model,
    kind: Kind,
    ids: &[Uuid],
) -> Result<Vec<Failure>> {
    let keys = sensitive::keys(tx, ctx).await?;
    let defs = custom_fields::definitions(tx, ctx.tenant_id, R::OBJECT).await?;
    let mut failures = Vec::new();
    let mut written = Vec::new();
    for id in ids {
        let sp = tx.begin().await?;
        let result = one::<R>(&sp, ctx, m, kind, *id, keys.as_deref(), &defs).await;
        match result {
            Ok(pair) => {
                sp.commit().await?;
                written.extend(pair);
            }
            Err(e @ Error::Database(_)) | Err(e @ Error::Internal(_)) => return Err(e),
            Err(e) => {
                sp.rollback().await?;
                failures.push((*id, e));
            }
        }
    }
    // Updates' audit entries, search documents and hooks, once a batch.
    records::finish_writes::<R>(tx, ctx, &written).await?;
    Ok(failures)
}

/// An update's record after and before, for the batch's bookkeeping.
type Written<R> = Option<(<R as Record>::Model, Option<<R as Record>::Model>)>;

async fn one<R: Record>(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    m: &bulk_action::Model,
    kind: Kind,
    id: Uuid,
    keys: Option<&crate::keys::TenantKeys>,
    defs: &[custom_fields::FieldDef],
) -> Result<Written<R>> {
    match kind {
        Kind::Delete => trash::bury::<R>(tx, ctx, id, Some(m.id))
            .await
            .map(|_| None),
        Kind::Restore => {
            let entry = trash_row::Entity::find()
                .filter(trash_row::Column::TenantId.eq(ctx.tenant_id))
                .filter(trash_row::Column::RecordId.eq(id))
                .one(tx)
                .await?
                .ok_or(Error::NotFound("trashed record"))?;
            trash::restore::<R>(tx, ctx, &entry).await.map(|_| None)
        }
        _ => {
            let current = records::load::<R, _>(tx, ctx, id).await?;
            let patch = match kind {
                Kind::Update => m.params.get("patch").cloned().unwrap_or(Value::Null),
                Kind::AssignOwner => json!({"owner_id": m.params.get("owner_id")}),
                _ => {
                    let wanted: Vec<String> = m
                        .params
                        .get("tags")
                        .cloned()
                        .and_then(|v| serde_json::from_value(v).ok())
                        .unwrap_or_default();
                    let mut tags: Vec<String> = records::to_json::<R>(&current)
                        .get("tags")
                        .cloned()
                        .and_then(|v| serde_json::from_value(v).ok())
                        .unwrap_or_default();
                    let same = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
                    if kind == Kind::AddTags {
                        for t in wanted {
                            if !tags.iter().any(|x| same(x, &t)) {
                                tags.push(t);
                            }
                        }
                    } else {
                        tags.retain(|x| !wanted.iter().any(|t| same(x, t)));
                    }
                    json!({"tags": tags})
                }
            };
            let (after, before) = records::update_in::<R>(
                tx,
                ctx,
                keys,
                defs,
                (id, patch, R::version(&current), false),
            )
            .await?;
            Ok(Some((after, Some(before))))
        }
    }
}
