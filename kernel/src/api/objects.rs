//! Custom objects: `/api/v1/objects/{key}` defines one, and
//! `/api/v1/objects/{key}/records` is its records' API, shaped like the
//! built-in types' (fields under `custom`, the same list parameters).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::{JsonBody, expected_version};
use crate::context::RequestContext;
use crate::crm::objects::{self, ObjectInput, ObjectOut, RecordInput};
use crate::crm::records::{Page, from_json};
use crate::error::{Problem, Result};

/// The tenant's custom objects.
#[utoipa::path(get, path = "/api/v1/objects", tag = "custom objects",
    responses((status = 200, body = Vec<ObjectOut>)))]
pub async fn list_objects(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<ObjectOut>>> {
    Ok(Json(objects::list_objects(&state.db, &ctx).await?))
}

/// One custom object.
#[utoipa::path(get, path = "/api/v1/objects/{key}", tag = "custom objects",
    responses((status = 200, body = ObjectOut), (status = 404, body = Problem)))]
pub async fn get_object(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(key): Path<String>,
) -> Result<Json<ObjectOut>> {
    Ok(Json(objects::get_object(&state.db, &ctx, &key).await?))
}

/// Defines a custom object, or adds fields to it (a field's type is fixed
/// once created; fields left out are kept).
#[utoipa::path(put, path = "/api/v1/objects/{key}", tag = "custom objects", request_body = ObjectInput,
    responses((status = 200, body = ObjectOut), (status = 422, body = Problem)))]
pub async fn put_object(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(key): Path<String>,
    JsonBody(input): JsonBody<ObjectInput>,
) -> Result<Json<ObjectOut>> {
    Ok(Json(
        objects::put_object(&state.db, &ctx, &key, input).await?,
    ))
}

/// A page of the object's records: `filter=custom.KEY:OP:VALUE`,
/// `sort=custom.KEY`, `limit`, `cursor`, `count`, as for contacts.
#[utoipa::path(get, path = "/api/v1/objects/{key}/records", tag = "custom objects",
    responses((status = 200, body = Page<Object>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_records(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Page<Value>>> {
    Ok(Json(
        objects::list(&state.db, &ctx, &key, q.as_deref()).await?,
    ))
}

/// Creates a record.
#[utoipa::path(post, path = "/api/v1/objects/{key}/records", tag = "custom objects", request_body = RecordInput,
    responses((status = 201, body = Object), (status = 422, body = Problem)))]
pub async fn create_record(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(key): Path<String>,
    JsonBody(input): JsonBody<RecordInput>,
) -> Result<(StatusCode, Json<Value>)> {
    Ok((
        StatusCode::CREATED,
        Json(objects::create(&state.db, &ctx, &key, input).await?),
    ))
}

/// One record.
#[utoipa::path(get, path = "/api/v1/objects/{key}/records/{id}", tag = "custom objects",
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn get_record(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((key, id)): Path<(String, Uuid)>,
) -> Result<Json<Value>> {
    Ok(Json(objects::get(&state.db, &ctx, &key, id).await?))
}

/// Changes the values sent (others stay). Send the version you read as
/// `If-Match: "N"` or a `version` member.
#[utoipa::path(patch, path = "/api/v1/objects/{key}/records/{id}", tag = "custom objects", request_body = Object,
    responses((status = 200, body = Object), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_record(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((key, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let (version, _) = expected_version(&headers, Some(&mut body))?;
    let input: RecordInput = from_json(body)?;
    Ok(Json(
        objects::update(&state.db, &ctx, &key, id, input, version).await?,
    ))
}

/// Deletes a record.
#[utoipa::path(delete, path = "/api/v1/objects/{key}/records/{id}", tag = "custom objects",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_record(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((key, id)): Path<(String, Uuid)>,
) -> Result<StatusCode> {
    objects::delete(&state.db, &ctx, &key, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
