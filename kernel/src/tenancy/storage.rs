//! The plan's storage limit: what a tenant stores, measured in the
//! database, and writes refused (402 naming `storage_bytes`) once the last
//! measurement reached the limit.
//!
//! Storage is measured, not counted per write: summing row sizes on every
//! write would tax every write for a limit measured in gigabytes. A
//! measurement sums the stored size of the tenant's rows in the tables that
//! hold its data (records, links, stage history, plugin data, uploaded
//! import files, the trash and merge copies; not the audit trail, jobs,
//! logs or sessions, which the platform keeps for its own reasons).
//! PostgreSQL reports each row's stored size (`pg_column_size`), SQLite the
//! bytes of each value. Measurements run in the background at most hourly
//! per tenant, claimed through `storage_measured_at` so several kernel
//! processes share the work; an admin can read the figure at
//! `GET /api/v1/tenant/usage`, which measures when the last figure is
//! older than [`STALE_AFTER`]. Between measurements a tenant can exceed
//! its limit by what it writes in that time; the next write after the
//! measurement is refused.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use crate::context::RequestContext;
use crate::db::dialect::param;
use crate::entities::tenant;
use crate::error::{Error, Result};

/// How old a measurement may be before the next one is due.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// The tables whose rows are the tenant's stored data.
const TABLES: &[&str] = &[
    "contacts",
    "accounts",
    "deals",
    "activities",
    "object_records",
    "contact_accounts",
    "contact_relationships",
    "consents",
    "deal_stage_history",
    "pipelines",
    "stages",
    "custom_fields",
    "custom_objects",
    "saved_views",
    "plugin_kv",
    "import_chunks",
    "trash",
    "merges",
];

/// Fails with 402 (`storage_bytes`) when the tenant's last measurement
/// reached its plan's storage limit: called where records are created.
pub fn check(ctx: &RequestContext) -> Result<()> {
    match ctx.limits.storage_bytes {
        Some(max) if ctx.storage_used >= max => Err(Error::PlanLimit {
            limit: "storage_bytes",
            max,
        }),
        _ => Ok(()),
    }
}

/// The bytes the tenant stores now.
pub async fn measure(db: &DatabaseConnection, tenant_id: Uuid) -> Result<i64> {
    let backend = db.get_database_backend();
    let mut total = 0i64;
    match backend {
        DbBackend::Postgres => {
            // Row-level security shows a tenant's rows only inside its own
            // transaction.
            let tx = crate::db::tenant_tx(db, &RequestContext::system(tenant_id)).await?;
            for table in TABLES {
                total += sum(
                    &tx,
                    backend,
                    &format!("SELECT CAST(COALESCE(SUM(pg_column_size(t.*)), 0) AS BIGINT) AS n FROM {table} t WHERE t.tenant_id = $1"),
                    tenant_id,
                )
                .await?;
            }
            tx.commit().await?;
        }
        _ => {
            for table in TABLES {
                let columns = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await?;
                let sizes: Vec<String> = columns
                    .iter()
                    .filter_map(|r| r.try_get::<String>("", "name").ok())
                    .map(|c| format!("COALESCE(LENGTH(CAST(\"{c}\" AS BLOB)), 0)"))
                    .collect();
                if sizes.is_empty() {
                    continue;
                }
                total += sum(
                    db,
                    backend,
                    &format!(
                        "SELECT COALESCE(SUM({}), 0) AS n FROM {table} WHERE tenant_id = ?",
                        sizes.join(" + ")
                    ),
                    tenant_id,
                )
                .await?;
            }
        }
    }
    Ok(total)
}

async fn sum<C: ConnectionTrait>(
    db: &C,
    backend: DbBackend,
    sql: &str,
    tenant_id: Uuid,
) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tenant_id.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

/// Measures the tenant now and keeps the figure.
pub async fn refresh(db: &DatabaseConnection, tenant_id: Uuid) -> Result<i64> {
    let bytes = measure(db, tenant_id).await?;
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE tenants SET storage_bytes = {}, storage_measured_at = {} WHERE id = {}",
            param(backend, 1),
            param(backend, 2),
            param(backend, 3)
        ),
        [bytes.into(), crate::clock::now().into(), tenant_id.into()],
    ))
    .await?;
    Ok(bytes)
}

/// Measures up to `batch` active tenants on limited plans whose figure is
/// older than [`STALE_AFTER`] (or missing), each claimed first so that
/// another process skips it. Returns how many were measured.
pub async fn measure_due(db: &DatabaseConnection, batch: u64) -> Result<usize> {
    let now = crate::clock::now();
    let cutoff = now - STALE_AFTER;
    let due: Vec<(Uuid, Option<chrono::DateTime<chrono::Utc>>)> = tenant::Entity::find()
        .select_only()
        .column(tenant::Column::Id)
        .column(tenant::Column::StorageMeasuredAt)
        .filter(tenant::Column::Status.eq("active"))
        .filter(tenant::Column::Plan.ne(crate::tenancy::plans::Plan::Custom.as_str()))
        .filter(
            sea_orm::Condition::any()
                .add(tenant::Column::StorageMeasuredAt.is_null())
                .add(tenant::Column::StorageMeasuredAt.lt(cutoff)),
        )
        .order_by_asc(tenant::Column::StorageMeasuredAt)
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    let mut measured = 0;
    for (id, seen) in due {
        // The claim: only the process that moves the time on measures.
        let mut claim = tenant::Entity::update_many()
            .col_expr(
                tenant::Column::StorageMeasuredAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(tenant::Column::Id.eq(id));
        claim = match seen {
            Some(at) => claim.filter(tenant::Column::StorageMeasuredAt.eq(at)),
            None => claim.filter(tenant::Column::StorageMeasuredAt.is_null()),
        };
        if claim.exec(db).await?.rows_affected != 1 {
            continue;
        }
        refresh(db, id).await?;
        measured += 1;
    }
    Ok(measured)
}
