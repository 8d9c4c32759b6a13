//! Handlers for merging duplicates, undoing merges, and the review queue of
//! likely duplicates.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::context::RequestContext;
use crate::crm::accounts::Accounts;
use crate::crm::contacts::Contacts;
use crate::crm::duplicates::queue::{self, Pair};
use crate::crm::merge::{self, Merge, MergeOutcome, MergeRequest};
use crate::error::{Error, Problem, Result};
use crate::permissions::ObjectType;

/// Merges contacts into a survivor: their deals, activities, account links,
/// relationships and consents move to it, their ids keep resolving to it,
/// and the merge can be undone for the tenant's undo period.
#[utoipa::path(post, path = "/api/v1/contacts/merge", tag = "contacts", request_body = MergeRequest,
    responses((status = 201, body = MergeOutcome), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn merge_contacts(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(req): JsonBody<MergeRequest>,
) -> Result<(StatusCode, Json<MergeOutcome>)> {
    Ok((
        StatusCode::CREATED,
        Json(merge::merge::<Contacts>(&state.db, &ctx, req).await?),
    ))
}

/// Merges accounts into a survivor: their deals, activities, contact links
/// and child accounts move to it.
#[utoipa::path(post, path = "/api/v1/accounts/merge", tag = "accounts", request_body = MergeRequest,
    responses((status = 201, body = MergeOutcome), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn merge_accounts(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(req): JsonBody<MergeRequest>,
) -> Result<(StatusCode, Json<MergeOutcome>)> {
    Ok((
        StatusCode::CREATED,
        Json(merge::merge::<Accounts>(&state.db, &ctx, req).await?),
    ))
}

/// Which merges.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MergeQuery {
    /// `contact` or `account`.
    pub object_type: String,
    /// Only merges into this record.
    pub survivor_id: Option<Uuid>,
    /// 1-200, default 50.
    pub limit: Option<u64>,
}

fn object_param(s: &str) -> Result<ObjectType> {
    match ObjectType::parse(s) {
        Some(o @ (ObjectType::Contact | ObjectType::Account)) => Ok(o),
        _ => Err(Error::field(
            "object_type",
            "invalid_value",
            "use contact or account",
        )),
    }
}

/// The tenant's merges, newest first.
#[utoipa::path(get, path = "/api/v1/merges", tag = "merges", params(MergeQuery),
    responses((status = 200, body = Vec<Merge>), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<MergeQuery>,
) -> Result<Json<Vec<Merge>>> {
    let object = object_param(&q.object_type)?;
    Ok(Json(
        merge::list(
            &state.db,
            &ctx,
            object,
            q.survivor_id,
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/merges/{id}", tag = "merges",
    responses((status = 200, body = Merge), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Merge>> {
    Ok(Json(merge::get(&state.db, &ctx, id).await?))
}

/// Undoes a merge within the tenant's undo period: the merged records come
/// back with their ids, what moved moves back, and the survivor's fields
/// the merge changed return (unless changed again since).
#[utoipa::path(post, path = "/api/v1/merges/{id}/undo", tag = "merges",
    responses((status = 200, body = Merge), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn undo(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Merge>> {
    Ok(Json(merge::undo(&state.db, &ctx, id).await?))
}

/// A scan to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// `contact` or `account`.
    pub object_type: String,
}

/// A scan queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanStarted {
    pub job_id: Uuid,
}

/// Scans the tenant's contacts or accounts for likely duplicates in the
/// background; pairs found land in the review queue.
#[utoipa::path(post, path = "/api/v1/duplicates/scan", tag = "duplicates", request_body = ScanRequest,
    responses((status = 202, body = ScanStarted), (status = 422, body = Problem)))]
pub async fn scan(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(req): JsonBody<ScanRequest>,
) -> Result<(StatusCode, Json<ScanStarted>)> {
    let object = object_param(&req.object_type)?;
    let job_id = queue::start_scan(&state.db, &ctx, object).await?;
    Ok((StatusCode::ACCEPTED, Json(ScanStarted { job_id })))
}

/// Which pairs of the queue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// `contact` or `account`.
    pub object_type: String,
    /// `open` (default), `dismissed` or `merged`.
    pub status: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u64>,
}

/// The review queue: pairs of likely duplicates, most likely first.
#[utoipa::path(get, path = "/api/v1/duplicates", tag = "duplicates", params(QueueQuery),
    responses((status = 200, body = Vec<Pair>), (status = 422, body = Problem)))]
pub async fn list_pairs(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Vec<Pair>>> {
    let object = object_param(&q.object_type)?;
    Ok(Json(
        queue::list(
            &state.db,
            &ctx,
            object,
            q.status.as_deref(),
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

/// Marks a pair as not duplicates; later scans leave it dismissed.
#[utoipa::path(post, path = "/api/v1/duplicates/{id}/dismiss", tag = "duplicates",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn dismiss(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    queue::dismiss(&state.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
