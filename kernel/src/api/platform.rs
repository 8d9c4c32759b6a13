//! Handlers for operators: resellers (platform administrator only) and
//! tenants (the platform's, or a reseller's own).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::error::{Problem, Result};
use crate::tenancy::operators::{
    self, NewTenant, Operator, ResellerInput, ResellerOut, TenantOut, TenantPatch,
};

#[utoipa::path(get, path = "/api/v1/platform/resellers", tag = "platform", responses((status = 200, body = Vec<ResellerOut>), (status = 403, body = Problem)))]
pub async fn list_resellers(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Json<Vec<ResellerOut>>> {
    Ok(Json(operators::list_resellers(&state.db, &op).await?))
}

#[utoipa::path(post, path = "/api/v1/platform/resellers", tag = "platform", request_body = ResellerInput,
    responses((status = 201, body = ResellerOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_reseller(
    State(state): State<AppState>,
    op: Operator,
    JsonBody(input): JsonBody<ResellerInput>,
) -> Result<(StatusCode, Json<ResellerOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(operators::create_reseller(&state.db, &op, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/platform/tenants", tag = "platform", responses((status = 200, body = Vec<TenantOut>)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    op: Operator,
) -> Result<Json<Vec<TenantOut>>> {
    Ok(Json(operators::list_tenants(&state.db, &op).await?))
}

/// Creates a tenant with an invited administrator.
#[utoipa::path(post, path = "/api/v1/platform/tenants", tag = "platform", request_body = NewTenant,
    responses((status = 201, body = TenantOut), (status = 422, body = Problem)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    op: Operator,
    JsonBody(input): JsonBody<NewTenant>,
) -> Result<(StatusCode, Json<TenantOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(operators::create_tenant(&state, &op, input).await?),
    ))
}

/// Changes a tenant's plan, status (suspend/resume), name or domain.
#[utoipa::path(patch, path = "/api/v1/platform/tenants/{id}", tag = "platform", request_body = TenantPatch,
    responses((status = 200, body = TenantOut), (status = 404, body = Problem)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<Uuid>,
    JsonBody(patch): JsonBody<TenantPatch>,
) -> Result<Json<TenantOut>> {
    Ok(Json(
        operators::update_tenant(&state, &op, id, patch).await?,
    ))
}
