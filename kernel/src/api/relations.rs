//! Handlers around records: search, timelines, deal stage moves, the account
//! hierarchy, and contact links and relationships.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::{JsonBody, expected_version};
use crate::api::records::{TimelineParams, with_etag};
use crate::context::RequestContext;
use crate::crm::accounts::{self, Hierarchy};
use crate::crm::deals::{self, Deals, StageMove};
use crate::crm::links::{self, AccountLink, AccountLinkInput, Relationship, RelationshipInput};
use crate::crm::timeline::{self, TimelineEntry};
use crate::db::search::SearchHit;
use crate::error::{Error, Problem, Result};
use crate::permissions::{Action, ObjectType};

/// Search query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words or word beginnings: names, emails, phones, domains.
    pub q: String,
    /// Comma-separated: contact, account, deal (default all three).
    pub types: Option<String>,
    /// 1-100, default 20.
    pub limit: Option<u64>,
}

/// Ranked search across contacts, accounts and deals.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = Vec<SearchHit>), (status = 422, body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(p): Query<SearchParams>,
) -> Result<Json<Vec<SearchHit>>> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Error::field("limit", "invalid_value", "expected 1 to 100"));
    }
    let requested = p.types.as_deref().unwrap_or("contact,account,deal");
    let mut types = Vec::new();
    for t in requested.split(',').map(str::trim) {
        let object = match t {
            "contact" => ObjectType::Contact,
            "account" => ObjectType::Account,
            "deal" => ObjectType::Deal,
            _ => {
                return Err(Error::field(
                    "types",
                    "invalid_value",
                    format!("`{t}` is not searchable: use contact, account, deal"),
                ));
            }
        };
        // Types the caller may not read are left out, not an error.
        if ctx.require(object, Action::Read).is_ok() {
            types.push(object.as_str());
        }
    }
    let types: Vec<ObjectType> = types.iter().filter_map(|t| ObjectType::parse(t)).collect();
    Ok(Json(
        crate::crm::search::records(&state.db, &ctx, &p.q, &types, limit).await?,
    ))
}

fn timeline_limit(p: &TimelineParams) -> Result<u64> {
    let limit = p.limit.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::field("limit", "invalid_value", "expected 1 to 200"))
    }
}

macro_rules! timeline_handler {
    ($name:ident, $object:expr, $path:literal, $tag:literal) => {
        /// The record's activities and changes, newest first.
        #[utoipa::path(get, path = $path, tag = $tag, params(TimelineParams),
            responses((status = 200, body = Vec<TimelineEntry>), (status = 404, body = Problem)))]
        pub async fn $name(
            State(state): State<AppState>,
            ctx: RequestContext,
            Path(id): Path<Uuid>,
            Query(p): Query<TimelineParams>,
        ) -> Result<Json<Vec<TimelineEntry>>> {
            Ok(Json(timeline::timeline(&state.db, &ctx, $object, id, timeline_limit(&p)?).await?))
        }
    };
}

timeline_handler!(
    contact_timeline,
    ObjectType::Contact,
    "/api/v1/contacts/{id}/timeline",
    "contacts"
);
timeline_handler!(
    account_timeline,
    ObjectType::Account,
    "/api/v1/accounts/{id}/timeline",
    "accounts"
);
timeline_handler!(
    deal_timeline,
    ObjectType::Deal,
    "/api/v1/deals/{id}/timeline",
    "deals"
);

/// Body of a stage move.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveInput {
    /// The target stage (of the deal's pipeline, or of another pipeline to
    /// move the deal there).
    pub stage_id: Uuid,
    /// Required when moving to a lost stage.
    #[serde(default)]
    pub lost_reason: Option<String>,
    /// The version you read (or send If-Match).
    #[serde(default)]
    pub version: Option<i64>,
}

/// Moves a deal to another stage and records the move in its history.
#[utoipa::path(post, path = "/api/v1/deals/{id}/move", tag = "deals", request_body = MoveInput,
    responses((status = 200, body = crate::crm::deals::Deal), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn move_deal(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MoveInput>,
) -> Result<Response> {
    let mut version_holder = body.version.map(|v| serde_json::json!({ "version": v }));
    let (version, via_if_match) = expected_version(&headers, version_holder.as_mut())?;
    let m = deals::move_stage(
        &state.db,
        &ctx,
        id,
        body.stage_id,
        body.lost_reason,
        version,
        via_if_match,
    )
    .await?;
    with_etag::<Deals>(&state, &ctx, StatusCode::OK, m, false).await
}

/// The deal's stage moves, oldest first.
#[utoipa::path(get, path = "/api/v1/deals/{id}/stage-history", tag = "deals",
    responses((status = 200, body = Vec<StageMove>), (status = 404, body = Problem)))]
pub async fn deal_stage_history(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<StageMove>>> {
    Ok(Json(deals::stage_history(&state.db, &ctx, id).await?))
}

/// The account's ancestors and direct children.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/hierarchy", tag = "accounts",
    responses((status = 200, body = Hierarchy), (status = 404, body = Problem)))]
pub async fn account_hierarchy(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Hierarchy>> {
    Ok(Json(accounts::hierarchy(&state.db, &ctx, id).await?))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/accounts", tag = "contacts",
    responses((status = 200, body = Vec<AccountLink>), (status = 404, body = Problem)))]
pub async fn list_account_links(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<AccountLink>>> {
    Ok(Json(links::account_links(&state.db, &ctx, id).await?))
}

/// Links the contact to an account with a role.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/accounts", tag = "contacts", request_body = AccountLinkInput,
    responses((status = 201, body = AccountLink), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn link_account(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(input): JsonBody<AccountLinkInput>,
) -> Result<(StatusCode, Json<AccountLink>)> {
    Ok((
        StatusCode::CREATED,
        Json(links::link_account(&state.db, &ctx, id, input).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}/accounts/{account_id}", tag = "contacts",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unlink_account(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, account_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    links::unlink_account(&state.db, &ctx, id, account_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}/relationships", tag = "contacts",
    responses((status = 200, body = Vec<Relationship>), (status = 404, body = Problem)))]
pub async fn list_relationships(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Relationship>>> {
    Ok(Json(links::relationships(&state.db, &ctx, id).await?))
}

/// Relates the contact to another contact (spouse, assistant, referred_by...).
#[utoipa::path(post, path = "/api/v1/contacts/{id}/relationships", tag = "contacts", request_body = RelationshipInput,
    responses((status = 201, body = Relationship), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn relate(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(input): JsonBody<RelationshipInput>,
) -> Result<(StatusCode, Json<Relationship>)> {
    Ok((
        StatusCode::CREATED,
        Json(links::relate(&state.db, &ctx, id, input).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}/relationships/{relationship_id}", tag = "contacts",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unrelate(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, rel)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    links::unrelate(&state.db, &ctx, id, rel).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/api/health", tag = "meta", responses((status = 200, body = Object)))]
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>> {
    crate::db::ping(&state.db).await?;
    Ok(Json(serde_json::json!({"status": "ok"})))
}

/// The contact's likely duplicates (same email, same phone number, a name
/// alike), each with a confidence from 0 to 1 and its reasons, most likely
/// first; only records the caller may read.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/duplicates", tag = "contacts",
    responses((status = 200, body = Vec<crate::crm::duplicates::Candidate>), (status = 404, body = Problem)))]
pub async fn contact_duplicates(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<crate::crm::duplicates::Candidate>>> {
    Ok(Json(
        crate::crm::duplicates::contacts(&state.db, &ctx, id).await?,
    ))
}

/// The account's likely duplicates (same domain, a name alike), each with a
/// confidence from 0 to 1 and its reasons, most likely first.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/duplicates", tag = "accounts",
    responses((status = 200, body = Vec<crate::crm::duplicates::Candidate>), (status = 404, body = Problem)))]
pub async fn account_duplicates(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<crate::crm::duplicates::Candidate>>> {
    Ok(Json(
        crate::crm::duplicates::accounts(&state.db, &ctx, id).await?,
    ))
}
