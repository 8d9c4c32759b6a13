//! The pipeline board: a column per stage, a card per deal. Cards move by
//! drag-and-drop (the one script) or, without a pointer or script, by each
//! card's "Move to" form; both post to the same handler, which moves the
//! deal through the deal service (so stage history, audit and plugin hooks
//! follow).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::crm::deals::{self, Deals};
use crate::crm::pipelines;
use crate::crm::records::{self, Record};
use crate::error::Error;
use crate::permissions::{Action, ObjectType};
use crate::web::forms::FormData;
use crate::web::{PageError, Ui};

/// Cards shown per column (the most recently changed first).
const PER_COLUMN: u64 = 50;

#[derive(Debug, Deserialize)]
pub struct BoardParams {
    pub pipeline: Option<Uuid>,
}

pub async fn page(
    State(state): State<AppState>,
    ui: Ui,
    Query(p): Query<BoardParams>,
) -> Result<Response, PageError> {
    ui.ctx.require(ObjectType::Deal, Action::Read)?;
    let all = pipelines::list(&state.db, &ui.ctx).await?;
    let Some(pipeline) = chosen(&state, &ui.ctx, &all, p.pipeline).await? else {
        return Ok(ui.render(
            &state,
            "board.html",
            json!({"title": "Pipeline", "pipelines": [], "pipeline": null, "columns": [], "currency": null}),
        ));
    };
    let stages: Vec<Value> = pipeline
        .stages
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name, "kind": s.kind}))
        .collect();
    // How many deals each column holds, and their value, in one grouped
    // query (by currency: a column may mix them).
    let totals = crate::web::dashboard::stage_totals(&state, &ui.ctx, None).await?;
    let amount_visible = ui.ctx.policy.field_access(ObjectType::Deal, "amount")
        != Some(crate::permissions::FieldAccess::Hidden);
    let mut columns = Vec::new();
    for s in &pipeline.stages {
        let mut count = 0i64;
        let mut sums: Vec<String> = Vec::new();
        for ((stage, currency, _), (minor, n)) in &totals {
            if *stage == s.id {
                count += n;
                sums.push(format!(
                    "{currency} {}",
                    crate::crm::listing::minor_to_decimal(*minor).round_dp(2)
                ));
            }
        }
        let q = format!(
            "filter=pipeline_id:eq:{}&filter=stage_id:eq:{}&sort=-updated_at&limit={PER_COLUMN}",
            pipeline.id, s.id
        );
        let page = records::list::<Deals>(&state.db, &ui.ctx, Some(&q)).await?;
        let cards: Vec<Value> = page
            .data
            .iter()
            .map(|d| {
                json!({
                    "id": d.get("id"),
                    "name": d.get("name"),
                    "amount": d.get("amount"),
                    "currency": d.get("currency"),
                    "version": d.get("version"),
                    "expected_close_date": d.get("expected_close_date"),
                })
            })
            .collect();
        columns.push(json!({
            "id": s.id,
            "name": s.name,
            "kind": s.kind,
            "probability": s.probability,
            "total": count,
            "value": if amount_visible { sums.join(" + ") } else { String::new() },
            "cards": cards,
        }));
    }
    Ok(ui.render(
        &state,
        "board.html",
        json!({
            "title": format!("Pipeline: {}", pipeline.name),
            "pipelines": all.iter().map(|x| json!({"id": x.id, "name": x.name, "selected": x.id == pipeline.id})).collect::<Vec<_>>(),
            "pipeline": {"id": pipeline.id, "name": pipeline.name, "stages": stages},
            "columns": columns,
            "currency": Value::Null,
        }),
    ))
}

/// The pipeline asked for, else the first one holding a deal (a tenant's
/// first pipeline may be one an edition added and nobody uses yet), else
/// the first. One indexed probe per pipeline, not a count of every deal.
pub async fn chosen(
    state: &AppState,
    ctx: &crate::context::RequestContext,
    all: &[pipelines::Pipeline],
    asked: Option<Uuid>,
) -> Result<Option<pipelines::Pipeline>, Error> {
    use crate::entities::deal;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    if let Some(p) = asked.and_then(|id| all.iter().find(|x| x.id == id)) {
        return Ok(Some(p.clone()));
    }
    for p in all {
        let any: Option<Uuid> = deal::Entity::find()
            .select_only()
            .column(deal::Column::Id)
            .filter(deal::Column::TenantId.eq(ctx.tenant_id))
            .filter(deal::Column::PipelineId.eq(p.id))
            .limit(1)
            .into_tuple()
            .one(&state.db)
            .await?;
        if any.is_some() {
            return Ok(Some(p.clone()));
        }
    }
    Ok(all.first().cloned())
}

/// Moves a deal to another stage. A form post is answered with a redirect
/// back to the board; the script's post (`Accept: application/json`) with
/// the deal's new version, or a problem it shows on the card.
pub async fn move_deal(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let result = async {
        ui.check_csrf(&form)?;
        let stage_id = form
            .get("stage_id")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| Error::field("stage_id", "required", "choose a stage"))?;
        let version: i64 = form
            .get("version")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::field("version", "required", "the deal's version is missing"))?;
        let m = deals::move_stage(
            &state.db,
            &ui.ctx,
            id,
            stage_id,
            form.text("lost_reason"),
            version,
            false,
        )
        .await?;
        Ok::<_, PageError>(m)
    }
    .await;
    match (result, wants_json) {
        (Ok(m), true) => Ok(Json(
            json!({"id": m.id, "stage_id": m.stage_id, "version": Deals::version(&m)}),
        )
        .into_response()),
        (Ok(m), false) => {
            Ok(Redirect::to(&format!("/board?pipeline={}", m.pipeline_id)).into_response())
        }
        (Err(PageError(e)), true) => {
            let status = e.status();
            let message = e.summary();
            let status = if status.is_server_error() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                status
            };
            Ok((status, Json(json!({"code": e.code(), "message": message}))).into_response())
        }
        (Err(e), false) => Err(e),
    }
}
