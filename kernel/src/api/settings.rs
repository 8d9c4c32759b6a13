//! Handlers for pipelines, custom field definitions and object schemas.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::{JsonBody, expected_version, if_match};
use crate::context::RequestContext;
use crate::crm::custom_fields::{CustomField, CustomFieldInput};
use crate::crm::field_definitions;
use crate::crm::pipelines::{self, Pipeline, PipelineInput};
use crate::error::{Error, Problem, Result};
use crate::permissions::ObjectType;

#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", responses((status = 200, body = Vec<Pipeline>)))]
pub async fn list_pipelines(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<Pipeline>>> {
    Ok(Json(pipelines::list(&state.db, &ctx).await?))
}

#[utoipa::path(post, path = "/api/v1/pipelines", tag = "pipelines", request_body = PipelineInput,
    responses((status = 201, body = Pipeline), (status = 422, body = Problem)))]
pub async fn create_pipeline(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(input): JsonBody<PipelineInput>,
) -> Result<(StatusCode, Json<Pipeline>)> {
    Ok((
        StatusCode::CREATED,
        Json(pipelines::create(&state.db, &ctx, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "pipelines", responses((status = 200, body = Pipeline), (status = 404, body = Problem)))]
pub async fn get_pipeline(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Pipeline>> {
    Ok(Json(pipelines::get(&state.db, &ctx, id).await?))
}

/// Replaces the pipeline's name and stages; keep a stage by sending its id.
#[utoipa::path(put, path = "/api/v1/pipelines/{id}", tag = "pipelines", request_body = PipelineInput,
    responses((status = 200, body = Pipeline), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update_pipeline(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<Pipeline>> {
    let (version, _) = expected_version(&headers, Some(&mut body))?;
    let input: PipelineInput = crate::crm::records::from_json(body)?;
    Ok(Json(
        pipelines::update(&state.db, &ctx, id, input, version).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/pipelines/{id}", tag = "pipelines", responses((status = 204), (status = 409, body = Problem)))]
pub async fn delete_pipeline(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    pipelines::delete(&state.db, &ctx, id, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filter of the custom field list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldListParams {
    /// Only fields of this object type.
    pub object_type: Option<String>,
}

fn object_param(field: &str, raw: &str) -> Result<ObjectType> {
    ObjectType::parse(raw)
        .filter(|o| o.has_custom_fields())
        .ok_or_else(|| {
            Error::field(
                field,
                "invalid_value",
                "expected contact, account, deal or activity",
            )
        })
}

#[utoipa::path(get, path = "/api/v1/custom-fields", tag = "custom fields", params(FieldListParams),
    responses((status = 200, body = Vec<CustomField>)))]
pub async fn list_fields(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(p): Query<FieldListParams>,
) -> Result<Json<Vec<CustomField>>> {
    let object = p
        .object_type
        .as_deref()
        .map(|o| object_param("object_type", o))
        .transpose()?;
    Ok(Json(
        field_definitions::list(&state.db, &ctx, object).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/custom-fields", tag = "custom fields", request_body = CustomFieldInput,
    responses((status = 201, body = CustomField), (status = 422, body = Problem)))]
pub async fn create_field(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(input): JsonBody<CustomFieldInput>,
) -> Result<(StatusCode, Json<CustomField>)> {
    Ok((
        StatusCode::CREATED,
        Json(field_definitions::create(&state.db, &ctx, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/custom-fields/{id}", tag = "custom fields", responses((status = 200, body = CustomField), (status = 404, body = Problem)))]
pub async fn get_field(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<CustomField>> {
    Ok(Json(field_definitions::get(&state.db, &ctx, id).await?))
}

/// Redefines a field (label, constraints, options...); key and type are fixed.
#[utoipa::path(put, path = "/api/v1/custom-fields/{id}", tag = "custom fields", request_body = CustomFieldInput,
    responses((status = 200, body = CustomField), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update_field(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<CustomField>> {
    let (version, _) = expected_version(&headers, Some(&mut body))?;
    let input: CustomFieldInput = crate::crm::records::from_json(body)?;
    Ok(Json(
        field_definitions::update(&state.db, &ctx, id, input, version).await?,
    ))
}

/// Deletes the field and its values on every record.
#[utoipa::path(delete, path = "/api/v1/custom-fields/{id}", tag = "custom fields", responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_field(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    field_definitions::delete(&state.db, &ctx, id, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The JSON Schema of an object's writable fields, custom fields included.
#[utoipa::path(get, path = "/api/v1/schemas/{object_type}", tag = "custom fields",
    params(("object_type" = String, Path, description = "contact, account, deal or activity")),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn object_schema(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(object): Path<String>,
) -> Result<Json<Value>> {
    let object = ObjectType::parse(&object)
        .filter(|o| o.has_custom_fields())
        .ok_or(Error::NotFound("schema"))?;
    Ok(Json(
        field_definitions::object_schema(&state.db, &ctx, object).await?,
    ))
}
