//! Handlers for following, cancelling and restoring bulk actions, and for
//! the trash. Starting one is `POST /api/v1/{type}/bulk-actions`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::context::RequestContext;
use crate::crm::bulk::{self, BulkAction};
use crate::crm::trash::{self, Trashed};
use crate::error::{Error, Problem, Result};
use crate::permissions::ObjectType;

/// A bulk action's progress (percent, counts, the first failures).
#[utoipa::path(get, path = "/api/v1/bulk-actions/{id}", tag = "bulk actions",
    responses((status = 200, body = BulkAction), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<BulkAction>> {
    Ok(Json(bulk::get(&state.db, &ctx, id).await?))
}

/// Stops a bulk action after its current batch; what is done stays done.
#[utoipa::path(post, path = "/api/v1/bulk-actions/{id}/cancel", tag = "bulk actions",
    responses((status = 200, body = BulkAction), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<BulkAction>> {
    Ok(Json(bulk::cancel(&state.db, &ctx, id).await?))
}

/// Brings back, in the background, every record a bulk delete put in the
/// trash, with its links and references.
#[utoipa::path(post, path = "/api/v1/bulk-actions/{id}/restore", tag = "bulk actions",
    responses((status = 202, body = BulkAction), (status = 409, body = Problem)))]
pub async fn restore(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<BulkAction>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(bulk::restore(&state.db, &ctx, id).await?),
    ))
}

/// Which trash.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrashQuery {
    /// `contact`, `account`, `deal` or `activity`.
    pub object_type: String,
    /// 1-200, default 50.
    pub limit: Option<u64>,
}

fn record_type(s: &str, field: &str) -> Result<ObjectType> {
    match ObjectType::parse(s) {
        Some(
            o @ (ObjectType::Contact
            | ObjectType::Account
            | ObjectType::Deal
            | ObjectType::Activity),
        ) => Ok(o),
        _ => Err(Error::field(
            field,
            "invalid_value",
            "use contact, account, deal or activity",
        )),
    }
}

/// Records bulk deletes put in the trash, newest first.
#[utoipa::path(get, path = "/api/v1/trash", tag = "bulk actions", params(TrashQuery),
    responses((status = 200, body = Vec<Trashed>), (status = 422, body = Problem)))]
pub async fn trash(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<TrashQuery>,
) -> Result<Json<Vec<Trashed>>> {
    let object = record_type(&q.object_type, "object_type")?;
    Ok(Json(
        trash::list(&state.db, &ctx, object, q.limit.unwrap_or(50)).await?,
    ))
}

/// Records to bring back from the trash.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub object_type: String,
    /// The records' own ids (1 to 1,000).
    pub record_ids: Vec<Uuid>,
}

/// How many came back.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    pub restored: usize,
}

/// Restores records from the trash, all or none.
#[utoipa::path(post, path = "/api/v1/trash/restore", tag = "bulk actions", request_body = RestoreRequest,
    responses((status = 200, body = Restored), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn restore_trashed(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(req): JsonBody<RestoreRequest>,
) -> Result<Json<Restored>> {
    let object = record_type(&req.object_type, "object_type")?;
    Ok(Json(Restored {
        restored: trash::restore_ids(&state.db, &ctx, object, &req.record_ids).await?,
    }))
}
