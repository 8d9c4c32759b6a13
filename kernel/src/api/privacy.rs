//! Handlers for data-subject rights: export, erasure, legal hold, consent.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::context::RequestContext;
use crate::crm::privacy::{self, Consent, ConsentInput, EraseRequest, Erasure};
use crate::error::{Problem, Result};

/// Everything held about a contact (GDPR article 15/20), as one JSON document.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/personal-data", tag = "privacy",
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn export(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>> {
    Ok(Json(privacy::export(&state.db, &ctx, id).await?))
}

/// Erases the contact's personal data (GDPR article 17), keeping a tombstone
/// and a verifiable audit trail. Refused under legal hold.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/erase", tag = "privacy", request_body = EraseRequest,
    responses((status = 200, body = Erasure), (status = 409, body = Problem)))]
pub async fn erase(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(req): JsonBody<EraseRequest>,
) -> Result<Json<Erasure>> {
    Ok(Json(
        privacy::erase(&state.db, &ctx, id, &req.reason).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalHold {
    pub legal_hold: bool,
}

/// Sets or lifts a legal hold, which blocks erasure.
#[utoipa::path(put, path = "/api/v1/contacts/{id}/legal-hold", tag = "privacy", request_body = LegalHold,
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn legal_hold(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(req): JsonBody<LegalHold>,
) -> Result<StatusCode> {
    privacy::set_legal_hold(&state.db, &ctx, id, req.legal_hold).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The contact's consent history, oldest first.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/consents", tag = "privacy",
    responses((status = 200, body = Vec<Consent>)))]
pub async fn list_consents(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Consent>>> {
    crate::crm::records::get::<crate::crm::contacts::Contacts>(&state.db, &ctx, id).await?;
    Ok(Json(privacy::consent_history(&state.db, &ctx, id).await?))
}

/// Records consent given or withdrawn for a purpose.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/consents", tag = "privacy", request_body = ConsentInput,
    responses((status = 201, body = Consent), (status = 422, body = Problem)))]
pub async fn record_consent(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(input): JsonBody<ConsentInput>,
) -> Result<(StatusCode, Json<Consent>)> {
    Ok((
        StatusCode::CREATED,
        Json(privacy::record_consent(&state.db, &ctx, id, input).await?),
    ))
}
