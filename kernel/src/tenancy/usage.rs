//! Usage counters behind plan limits, kept in `usage_counters` so every
//! kernel process sees the same numbers.
//!
//! A stock (contacts) is one row per tenant, adjusted in the same
//! transaction as the rows it counts: the row's lock orders concurrent
//! writers, and a write that would pass the limit fails and rolls back with
//! its increment, so nothing is half-created. The row is created from a
//! `COUNT(*)` the first time it is needed (and again after a plan change).
//! A rate (API requests) is one row per tenant and minute.

use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::db::dialect::param;
use crate::error::{Error, Result};

/// Adds `delta` to a stock counter and returns the new value. The counter
/// starts from `COUNT(*)` of `table` for the tenant, taken before the
/// caller's rows are written.
pub async fn adjust_stock<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    metric: &'static str,
    table: &'static str,
    delta: i64,
) -> Result<i64> {
    let backend = db.get_database_backend();
    let p = |n| param(backend, n);
    let updated = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE usage_counters SET count = count + {} \
                 WHERE tenant_id = {} AND metric = {} AND window_start = 0 RETURNING count",
                p(1),
                p(2),
                p(3)
            ),
            [delta.into(), tenant_id.into(), metric.into()],
        ))
        .await?;
    if let Some(row) = updated {
        return Ok(row.try_get::<i64>("", "count")?);
    }
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO usage_counters (tenant_id, metric, window_start, count) \
                 SELECT {t}, {m}, 0, COUNT(*) + {d} FROM {table} WHERE tenant_id = {t} \
                 ON CONFLICT (tenant_id, metric, window_start) \
                 DO UPDATE SET count = usage_counters.count + {d} RETURNING count",
                t = p(1),
                m = p(2),
                d = p(3),
            ),
            [tenant_id.into(), metric.into(), delta.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "count"))
        .transpose()?
        .unwrap_or(delta))
}

/// Adds `n` new rows to a limited stock, failing (402, naming the limit)
/// when the tenant would exceed `max`. Unlimited stocks are not counted.
pub async fn reserve<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    metric: &'static str,
    table: &'static str,
    n: i64,
    max: Option<i64>,
) -> Result<()> {
    let Some(max) = max else { return Ok(()) };
    let total = adjust_stock(db, tenant_id, metric, table, n).await?;
    if total > max {
        return Err(Error::PlanLimit { limit: metric, max });
    }
    Ok(())
}

/// Forgets a tenant's stock counters (after a plan change: the next write
/// counts afresh).
pub async fn reset_stocks<C: ConnectionTrait>(db: &C, tenant_id: Uuid) -> Result<()> {
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "DELETE FROM usage_counters WHERE tenant_id = {} AND window_start = 0",
            param(backend, 1)
        ),
        [tenant_id.into()],
    ))
    .await?;
    Ok(())
}

/// Counts one API request against the tenant's per-minute limit.
pub async fn hit_rate<C: ConnectionTrait>(db: &C, tenant_id: Uuid, max: Option<i64>) -> Result<()> {
    let Some(max) = max else { return Ok(()) };
    let now = chrono::Utc::now().timestamp();
    let minute = now / 60;
    let backend = db.get_database_backend();
    let p = |n| param(backend, n);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO usage_counters (tenant_id, metric, window_start, count) \
                 VALUES ({t}, 'api_requests', {w}, 1) \
                 ON CONFLICT (tenant_id, metric, window_start) \
                 DO UPDATE SET count = usage_counters.count + 1 RETURNING count",
                t = p(1),
                w = p(2),
            ),
            [tenant_id.into(), minute.into()],
        ))
        .await?;
    let count = row
        .map(|r| r.try_get::<i64>("", "count"))
        .transpose()?
        .unwrap_or(1);
    if count == 1 {
        // First request of a minute: drop this tenant's old windows.
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM usage_counters WHERE tenant_id = {} AND metric = 'api_requests' AND window_start < {}",
                p(1),
                p(2)
            ),
            [tenant_id.into(), (minute - 1).into()],
        ))
        .await?;
    }
    if count > max {
        return Err(Error::RateLimited {
            limit: "api_requests_per_minute",
            max,
            retry_after: (60 - now % 60).max(1) as u64,
        });
    }
    Ok(())
}
