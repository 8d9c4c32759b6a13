//! The durable job queue: after-write plugin hooks, jobs plugins enqueue,
//! and their schedules. Rows in `jobs` are the only state, so any kernel
//! process may run any job, and a process that dies mid-job leaves a lease
//! that expires and lets another take it over.
//!
//! A job is claimed by a conditional update (queued, or running with an
//! expired lease → running with a new lease), which exactly one process wins
//! on SQLite and PostgreSQL alike. Failures retry with exponential backoff
//! up to `max_attempts`, then the job is `failed` with its last error.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::entities::job;
use crate::error::Result;

/// How long a claimed job is reserved for the process that claimed it.
const LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Deliver an after-write hook to a plugin.
    AfterWrite,
    /// Run a plugin's job (enqueued by the plugin, or by its schedule).
    PluginJob,
    /// Run (or resume) an import.
    Import,
    /// Scan a tenant's contacts or accounts for likely duplicates.
    DuplicateScan,
    /// Run (or resume) a bulk action.
    BulkAction,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AfterWrite => "after_write",
            Kind::PluginJob => "plugin_job",
            Kind::Import => "import",
            Kind::DuplicateScan => "duplicate_scan",
            Kind::BulkAction => "bulk_action",
        }
    }
}

/// Queues a job; returns its id.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    kind: Kind,
    plugin_id: Option<&str>,
    name: &str,
    payload: Value,
    run_at: DateTime<Utc>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    job::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        kind: Set(kind.as_str().to_owned()),
        plugin_id: Set(plugin_id.map(str::to_owned)),
        name: Set(name.to_owned()),
        payload: Set(payload),
        status: Set("queued".to_owned()),
        run_at: Set(run_at),
        attempts: Set(0),
        max_attempts: Set(5),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(crate::clock::now()),
        finished_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(id)
}

/// Runs up to `max` jobs that are due; returns how many ran. With
/// `detach`, long jobs (imports) run on their own task so that hooks and
/// plugin jobs do not wait behind them.
pub async fn run_due(state: &AppState, max: u64, detach: bool) -> Result<usize> {
    let db = &state.db;
    let now = crate::clock::now();
    let due = job::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq("queued"))
                        .add(job::Column::RunAt.lte(now)),
                )
                .add(
                    Condition::all()
                        .add(job::Column::Status.eq("running"))
                        .add(job::Column::LockedUntil.lt(now)),
                ),
        )
        .order_by_asc(job::Column::RunAt)
        .limit(max)
        .all(db)
        .await?;
    let mut ran = 0;
    for j in due {
        if !claim(db, &j, now).await? {
            continue;
        }
        ran += 1;
        // Long jobs run beside the runner's loop.
        if detach
            && [Kind::Import, Kind::DuplicateScan, Kind::BulkAction]
                .iter()
                .any(|k| j.kind == k.as_str())
        {
            let state = state.clone();
            tokio::spawn(async move {
                let outcome = run_one(&state, &j).await;
                if let Err(e) = finish(&state.db, &j, outcome).await {
                    tracing::error!("finishing job {}: {e}", j.id);
                }
            });
            continue;
        }
        let outcome = run_one(state, &j).await;
        finish(db, &j, outcome).await?;
    }
    Ok(ran)
}

/// Runs due jobs until none is left (tests, and draining before exit).
pub async fn drain(state: &AppState) -> Result<usize> {
    let mut total = 0;
    loop {
        let n = run_due(state, 100, false).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Claims one job and runs it here and now (the command line runs its own
/// import this way). False when it is not due or another process holds it.
pub async fn run_now(state: &AppState, job_id: Uuid) -> Result<bool> {
    let Some(j) = job::Entity::find_by_id(job_id).one(&state.db).await? else {
        return Ok(false);
    };
    let now = crate::clock::now();
    let free =
        j.status == "queued" || (j.status == "running" && j.locked_until.is_some_and(|t| t < now));
    if !free || !claim(&state.db, &j, now).await? {
        return Ok(false);
    }
    let outcome = run_one(state, &j).await;
    finish(&state.db, &j, outcome).await?;
    Ok(true)
}

/// Extends a running job's lease (long jobs call it as they progress, so
/// no other process takes them over while they work).
pub async fn renew<C: ConnectionTrait>(db: &C, job_id: Uuid) -> Result<()> {
    job::Entity::update_many()
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(crate::clock::now() + LEASE),
        )
        .filter(job::Column::Id.eq(job_id))
        .filter(job::Column::Status.eq("running"))
        .exec(db)
        .await?;
    Ok(())
}

async fn claim(db: &DatabaseConnection, j: &job::Model, now: DateTime<Utc>) -> Result<bool> {
    let won = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value("running"))
        .col_expr(job::Column::LockedUntil, Expr::value(now + LEASE))
        .col_expr(
            job::Column::Attempts,
            Expr::col(job::Column::Attempts).add(1),
        )
        .filter(job::Column::Id.eq(j.id))
        .filter(job::Column::Status.eq(j.status.as_str()))
        .filter(job::Column::Attempts.eq(j.attempts))
        .exec(db)
        .await?;
    Ok(won.rows_affected == 1)
}

async fn run_one(state: &AppState, j: &job::Model) -> std::result::Result<(), String> {
    let db = &state.db;
    if j.kind == Kind::Import.as_str() {
        let import_id = j
            .payload
            .get("import_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or("the job names no import")?;
        // An import records its own failures; the job is done either way.
        return crate::imports::run::run(state, j.tenant_id, import_id, Some(j.id), None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    if j.kind == Kind::BulkAction.as_str() {
        // A bulk action records its own failure; the job is done either way.
        return crate::crm::bulk::run(state, j.tenant_id, &j.payload)
            .await
            .map_err(|e| e.to_string());
    }
    if j.kind == Kind::DuplicateScan.as_str() {
        return crate::crm::duplicates::queue::run_scan(state, j.tenant_id, Some(j.id), &j.payload)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let rt = state
        .plugins
        .as_ref()
        .ok_or("the plugin host is not running")?;
    let plugin_id = j.plugin_id.as_deref().ok_or("the job names no plugin")?;
    let enabled = rt
        .enabled(j.tenant_id)
        .await
        .map_err(|e| format!("loading plugins: {e}"))?;
    let Some(active) = enabled.iter().find(|a| a.row.plugin_id == plugin_id) else {
        // Disabled since the job was queued: nothing to deliver to.
        return Err(format!("plugin {plugin_id} is not enabled"));
    };
    match j.kind.as_str() {
        "after_write" => {
            crate::plugins::hooks::deliver_after_write(rt, active, &j.name, &j.payload).await
        }
        "plugin_job" => {
            let call = crate::plugins::sandbox::Call::RunJob(j.name.clone(), j.payload.to_string());
            let result = rt.invoke(active, call, 0).await;
            let outcome = match result {
                Ok(crate::plugins::sandbox::Reply::Done(r)) => r,
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            if let Some(every) = j.payload.get("every_seconds").and_then(Value::as_u64) {
                // A schedule's next run is queued whatever this one did.
                let next = crate::clock::now() + chrono::Duration::seconds(every as i64);
                if let Err(e) = enqueue(
                    db,
                    j.tenant_id,
                    Kind::PluginJob,
                    Some(plugin_id),
                    &j.name,
                    json!({"every_seconds": every}),
                    next,
                )
                .await
                {
                    tracing::error!("queueing the next run of {plugin_id}/{}: {e}", j.name);
                }
            }
            outcome
        }
        other => Err(format!("unknown job kind `{other}`")),
    }
}

async fn finish(
    db: &DatabaseConnection,
    j: &job::Model,
    outcome: std::result::Result<(), String>,
) -> Result<()> {
    let now = crate::clock::now();
    let attempts = j.attempts + 1;
    let mut a = job::ActiveModel {
        id: Set(j.id),
        ..Default::default()
    };
    a.locked_until = Set(None);
    match outcome {
        Ok(()) => {
            a.status = Set("done".to_owned());
            a.finished_at = Set(Some(now));
            a.last_error = Set(None);
            // A delivered hook's copy of the record is not kept.
            if j.kind == Kind::AfterWrite.as_str() {
                a.payload = Set(json!({}));
            }
        }
        Err(e) if attempts >= j.max_attempts => {
            a.status = Set("failed".to_owned());
            a.finished_at = Set(Some(now));
            a.last_error = Set(Some(e));
        }
        Err(e) => {
            a.status = Set("queued".to_owned());
            a.run_at = Set(now + chrono::Duration::seconds(1 << attempts.clamp(0, 12)));
            a.last_error = Set(Some(e));
        }
    }
    a.update(db).await?;
    Ok(())
}

/// How long finished jobs, plugin log lines and events are kept.
const KEEP_DONE_JOBS: chrono::Duration = chrono::Duration::days(7);
const KEEP_LOGS_AND_EVENTS: chrono::Duration = chrono::Duration::days(30);
/// How long a bulk delete's records stay restorable in the trash.
pub const KEEP_TRASH: chrono::Duration = chrono::Duration::days(30);

/// Deletes finished jobs, plugin log lines, events and trashed records past
/// their retention (failed jobs are kept as long as done ones: their error
/// is the record), and the copies merges keep once they can no longer be
/// undone.
pub async fn prune(db: &DatabaseConnection) -> Result<u64> {
    let now = crate::clock::now();
    let jobs = job::Entity::delete_many()
        .filter(job::Column::Status.is_in(["done", "failed"]))
        .filter(job::Column::FinishedAt.lt(now - KEEP_DONE_JOBS))
        .exec(db)
        .await?
        .rows_affected;
    let logs = crate::entities::plugin_log::Entity::delete_many()
        .filter(crate::entities::plugin_log::Column::At.lt(now - KEEP_LOGS_AND_EVENTS))
        .exec(db)
        .await?
        .rows_affected;
    let events = crate::entities::event::Entity::delete_many()
        .filter(crate::entities::event::Column::At.lt(now - KEEP_LOGS_AND_EVENTS))
        .exec(db)
        .await?
        .rows_affected;
    let trash = crate::entities::trash::Entity::delete_many()
        .filter(crate::entities::trash::Column::DeletedAt.lt(now - KEEP_TRASH))
        .exec(db)
        .await?
        .rows_affected;
    // A merge past its undo period needs its copies of the merged records
    // no more: data kept for nothing goes.
    let merges = crate::entities::merge::Entity::update_many()
        .col_expr(
            crate::entities::merge::Column::Snapshot,
            Expr::value(json!({})),
        )
        .filter(crate::entities::merge::Column::UndoUntil.lt(now))
        // (JSON has no equality on PostgreSQL; its text has.)
        .filter(Expr::cust("CAST(snapshot AS TEXT) <> '{}'"))
        .exec(db)
        .await?
        .rows_affected;
    Ok(jobs + logs + events + trash + merges)
}

/// Runs jobs in the background until the process ends: when woken by new
/// work, and every second for jobs whose time has come; prunes old rows
/// hourly, and measures tenants' storage when due.
pub fn spawn_runner(state: AppState) {
    tokio::spawn(async move {
        let db = state.db.clone();
        let mut last_prune = std::time::Instant::now();
        // Storage is measured soon after start, then every five minutes
        // for the tenants whose figure is an hour old.
        let mut last_measure = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_secs(240))
            .unwrap_or_else(std::time::Instant::now);
        loop {
            if let Err(e) = run_due(&state, 50, true).await {
                tracing::error!("job runner: {e}");
            }
            if last_prune.elapsed() > std::time::Duration::from_secs(3600) {
                last_prune = std::time::Instant::now();
                if let Err(e) = prune(&db).await {
                    tracing::error!("pruning jobs and logs: {e}");
                }
                if let Err(e) = crate::db::optimize(&db).await {
                    tracing::error!("refreshing the query planner's statistics: {e}");
                }
            }
            if last_measure.elapsed() > std::time::Duration::from_secs(300) {
                last_measure = std::time::Instant::now();
                if let Err(e) = crate::tenancy::storage::measure_due(&db, 100).await {
                    tracing::error!("measuring tenants' storage: {e}");
                }
            }
            // A write that queued work wakes the runner (through the plugin
            // host); else it looks again within a second.
            let wait = std::time::Duration::from_secs(1);
            match &state.plugins {
                Some(rt) => {
                    let _ = tokio::time::timeout(wait, rt.work.notified()).await;
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    });
}
