//! The review queue: a background scan of a tenant's contacts or accounts
//! stores each pair of likely duplicates once, for a person to merge or
//! dismiss. A dismissed pair stays dismissed when later scans find it
//! again; merging resolves the pairs of the records merged away.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Candidate, Reason};
use crate::AppState;
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::contacts::Contacts;
use crate::crm::records::{self, Record};
use crate::entities::duplicate_pair;
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// Records read per step of a scan.
const SCAN_BATCH: u64 = 200;

/// A pair of likely duplicates in the queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pair {
    pub id: Uuid,
    pub object_type: String,
    pub record_id: Uuid,
    pub record_name: String,
    pub other_id: Uuid,
    pub other_name: String,
    /// 0 to 1.
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// `open`, `dismissed` or `merged`.
    pub status: String,
    pub found_at: chrono::DateTime<chrono::Utc>,
}

/// Marks the open pairs of `ids` resolved (`merged`), in the merge's
/// transaction.
pub async fn resolve<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
    ids: &[Uuid],
    status: &str,
) -> Result<()> {
    duplicate_pair::Entity::update_many()
        .col_expr(duplicate_pair::Column::Status, Expr::value(status))
        .col_expr(
            duplicate_pair::Column::ResolvedAt,
            Expr::value(crate::clock::now()),
        )
        .col_expr(duplicate_pair::Column::ResolvedBy, Expr::value(ctx.user_id))
        .filter(duplicate_pair::Column::TenantId.eq(ctx.tenant_id))
        .filter(duplicate_pair::Column::ObjectType.eq(object.as_str()))
        .filter(duplicate_pair::Column::Status.eq("open"))
        .filter(
            Condition::any()
                .add(duplicate_pair::Column::RecordId.is_in(ids.to_vec()))
                .add(duplicate_pair::Column::OtherId.is_in(ids.to_vec())),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Queues a scan of the tenant's records of `object`, run with the
/// caller's rights; returns the job's id.
pub async fn start_scan(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Uuid> {
    scannable(object)?;
    ctx.require(object, Action::Read)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let job = crate::jobs::enqueue(
        &tx,
        ctx.tenant_id,
        crate::jobs::Kind::DuplicateScan,
        None,
        object.as_str(),
        json!({"object_type": object.as_str(), "actor": crate::auth::Acting::of(ctx)}),
        crate::clock::now(),
    )
    .await?;
    tx.commit().await?;
    records::kick_jobs(ctx);
    Ok(job)
}

fn scannable(object: ObjectType) -> Result<()> {
    if matches!(object, ObjectType::Contact | ObjectType::Account) {
        Ok(())
    } else {
        Err(Error::field(
            "object_type",
            "invalid_value",
            "duplicates are found among contacts and accounts",
        ))
    }
}

/// Runs a queued scan (from the job runner): every record the user may
/// read, its candidates scored, each pair stored once.
pub async fn run_scan(
    state: &AppState,
    tenant_id: Uuid,
    job: Option<Uuid>,
    payload: &Value,
) -> Result<u64> {
    let acting: crate::auth::Acting =
        serde_json::from_value(payload.get("actor").cloned().unwrap_or(Value::Null))
            .map_err(|e| Error::Internal(format!("the scan's actor: {e}")))?;
    let ctx = crate::auth::resume(state, tenant_id, &acting).await?;
    let object = payload
        .get("object_type")
        .and_then(Value::as_str)
        .and_then(ObjectType::parse)
        .ok_or_else(|| Error::Internal("the scan's object type".to_owned()))?;
    scannable(object)?;
    ctx.require(object, Action::Read)?;
    match object {
        ObjectType::Contact => scan::<Contacts>(&state.db, &ctx, job).await,
        _ => scan::<Accounts>(&state.db, &ctx, job).await,
    }
}

async fn scan<R: Record>(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    job: Option<Uuid>,
) -> Result<u64> {
    let mut after: Option<Uuid> = None;
    let mut found = 0;
    loop {
        let mut q = R::Entity::find()
            .select_only()
            .column_as(Expr::col("id"), "id")
            .filter(Expr::col("tenant_id").eq(ctx.tenant_id));
        if let Some(a) = after {
            q = q.filter(Expr::col("id").gt(a));
        }
        let ids: Vec<Uuid> = q
            .order_by_asc(Expr::col("id"))
            .limit(SCAN_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = ids.last().copied() else {
            return Ok(found);
        };
        after = Some(last);
        if let Some(job) = job {
            // A long scan keeps its claim on the job.
            crate::jobs::renew(db, job).await?;
        }
        for id in ids {
            let candidates = match R::OBJECT {
                ObjectType::Contact => super::contacts(db, ctx, id).await,
                _ => super::accounts(db, ctx, id).await,
            };
            let candidates = match candidates {
                Ok(c) => c,
                // Out of the user's scope, or deleted since.
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            for c in candidates {
                found += u64::from(store(db, ctx, R::OBJECT, id, &c).await?);
            }
        }
    }
}

/// Stores pairs found while writing (an import's batch), in the writer's
/// transaction; pairs already known are left as they are. Returns the
/// pairs new to the queue.
pub async fn store_found<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    object: ObjectType,
    pairs: &[(Uuid, Uuid, f64, Vec<Reason>)],
) -> Result<u64> {
    let now = crate::clock::now();
    let mut rows = Vec::with_capacity(pairs.len());
    for (x, y, score, reasons) in pairs {
        let (a, b) = if x < y { (*x, *y) } else { (*y, *x) };
        rows.push(duplicate_pair::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id),
            object_type: Set(object.as_str().to_owned()),
            record_id: Set(a),
            other_id: Set(b),
            score: Set(*score),
            reasons: Set(serde_json::to_value(reasons).map_err(|e| Error::Internal(e.to_string()))?),
            status: Set("open".to_owned()),
            found_at: Set(now),
            resolved_at: Set(None),
            resolved_by: Set(None),
        });
    }
    let mut stored = 0;
    for chunk in rows.chunks(200) {
        stored += duplicate_pair::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    duplicate_pair::Column::TenantId,
                    duplicate_pair::Column::ObjectType,
                    duplicate_pair::Column::RecordId,
                    duplicate_pair::Column::OtherId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(stored)
}

/// Stores a pair found (once per pair: the smaller id first); a pair
/// already known keeps its status and gets the new score. True if new.
async fn store(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    id: Uuid,
    c: &Candidate,
) -> Result<bool> {
    let (a, b) = if id < c.id { (id, c.id) } else { (c.id, id) };
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let known = duplicate_pair::Entity::find()
        .filter(duplicate_pair::Column::TenantId.eq(ctx.tenant_id))
        .filter(duplicate_pair::Column::ObjectType.eq(object.as_str()))
        .filter(duplicate_pair::Column::RecordId.eq(a))
        .filter(duplicate_pair::Column::OtherId.eq(b))
        .one(&tx)
        .await?;
    let reasons = serde_json::to_value(&c.reasons).map_err(|e| Error::Internal(e.to_string()))?;
    let new = match known {
        Some(k) => {
            let mut k: duplicate_pair::ActiveModel = k.into();
            k.score = Set(c.score);
            k.reasons = Set(reasons);
            k.update(&tx).await?;
            false
        }
        None => {
            let inserted = duplicate_pair::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                object_type: Set(object.as_str().to_owned()),
                record_id: Set(a),
                other_id: Set(b),
                score: Set(c.score),
                reasons: Set(reasons),
                status: Set("open".to_owned()),
                found_at: Set(crate::clock::now()),
                resolved_at: Set(None),
                resolved_by: Set(None),
            }
            .insert(&tx)
            .await;
            match inserted {
                Ok(_) => true,
                // Another scan stored it a moment ago.
                Err(e) if crate::db::is_unique_violation(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    };
    tx.commit().await?;
    Ok(new)
}

/// The queue: pairs of `status` (default open), most likely first; only
/// pairs whose both records the caller may read.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<Pair>> {
    scannable(object)?;
    ctx.require(object, Action::Read)?;
    let status = status.unwrap_or("open");
    if !["open", "dismissed", "merged"].contains(&status) {
        return Err(Error::field(
            "status",
            "invalid_value",
            "use open, dismissed or merged",
        ));
    }
    let rows = duplicate_pair::Entity::find()
        .filter(duplicate_pair::Column::TenantId.eq(ctx.tenant_id))
        .filter(duplicate_pair::Column::ObjectType.eq(object.as_str()))
        .filter(duplicate_pair::Column::Status.eq(status))
        .order_by_desc(duplicate_pair::Column::Score)
        .order_by_asc(duplicate_pair::Column::Id)
        .limit(limit.clamp(1, 200))
        .all(db)
        .await?;
    let mut ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|r| [r.record_id, r.other_id])
        .collect();
    ids.sort();
    ids.dedup();
    let mut visible = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(crate::crm::listing::MAX_LIMIT as usize) {
        visible.extend(match object {
            ObjectType::Contact => records::among_sealed::<Contacts>(db, ctx, chunk).await?,
            _ => records::among_sealed::<Accounts>(db, ctx, chunk).await?,
        });
    }
    let name_of = |id: Uuid| -> Option<String> {
        visible
            .iter()
            .find(|v| v.get("id").and_then(Value::as_str) == Some(id.to_string().as_str()))
            .map(|v| {
                v.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let record_name = name_of(r.record_id)?;
            let other_name = name_of(r.other_id)?;
            Some(Pair {
                id: r.id,
                object_type: r.object_type,
                record_id: r.record_id,
                record_name,
                other_id: r.other_id,
                other_name,
                score: r.score,
                reasons: serde_json::from_value(r.reasons).unwrap_or_default(),
                status: r.status,
                found_at: r.found_at,
            })
        })
        .collect())
}

/// Dismisses a pair: not duplicates; later scans leave it dismissed.
pub async fn dismiss(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<()> {
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let row = duplicate_pair::Entity::find()
        .filter(duplicate_pair::Column::TenantId.eq(ctx.tenant_id))
        .filter(duplicate_pair::Column::Id.eq(id))
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("duplicate pair"))?;
    let object = ObjectType::parse(&row.object_type)
        .ok_or_else(|| Error::Internal("a pair's object type".to_owned()))?;
    ctx.require(object, Action::Update)?;
    let mut a: duplicate_pair::ActiveModel = row.into();
    a.status = Set("dismissed".to_owned());
    a.resolved_at = Set(Some(crate::clock::now()));
    a.resolved_by = Set(ctx.user_id);
    a.update(&tx).await?;
    tx.commit().await?;
    Ok(())
}
