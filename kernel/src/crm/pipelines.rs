//! Pipelines and their ordered stages. A tenant has several pipelines; each
//! stage has a win probability and a kind (open, won, lost) that deals and
//! forecasts read.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::checks::Checks;
use crate::entities::{deal, pipeline, stage};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// Whether a stage is still open, or closes the deal as won or lost.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Open,
    Won,
    Lost,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Open => "open",
            StageKind::Won => "won",
            StageKind::Lost => "lost",
        }
    }
    pub fn parse(s: &str) -> StageKind {
        match s {
            "won" => StageKind::Won,
            "lost" => StageKind::Lost,
            _ => StageKind::Open,
        }
    }
}

/// A stage as sent by clients. `id` names an existing stage to keep (on
/// update); stages without an id are new.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    #[serde(default)]
    pub id: Option<Uuid>,
    pub name: String,
    /// Win probability in percent, 0-100.
    pub probability: i32,
    pub kind: StageKind,
}

/// A pipeline as sent by clients; stages are listed in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    pub name: String,
    #[serde(default)]
    pub position: i32,
    pub stages: Vec<StageInput>,
}

/// A stage as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stage {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub probability: i32,
    pub kind: StageKind,
}

/// A pipeline with its stages in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pipeline {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub stages: Vec<Stage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

fn stage_out(s: stage::Model) -> Stage {
    Stage {
        id: s.id,
        name: s.name,
        position: s.position,
        probability: s.probability,
        kind: StageKind::parse(&s.kind),
    }
}

async fn stages_of<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    pipeline_id: Uuid,
) -> Result<Vec<stage::Model>> {
    Ok(stage::Entity::find()
        .filter(stage::Column::TenantId.eq(ctx.tenant_id))
        .filter(stage::Column::PipelineId.eq(pipeline_id))
        .order_by_asc(stage::Column::Position)
        .all(db)
        .await?)
}

async fn output<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    p: pipeline::Model,
) -> Result<Pipeline> {
    let stages = stages_of(db, ctx, p.id)
        .await?
        .into_iter()
        .map(stage_out)
        .collect();
    Ok(Pipeline {
        id: p.id,
        name: p.name,
        position: p.position,
        stages,
        created_at: p.created_at,
        updated_at: p.updated_at,
        version: p.version,
    })
}

async fn load<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<pipeline::Model> {
    pipeline::Entity::find_by_id(id)
        .filter(pipeline::Column::TenantId.eq(ctx.tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("pipeline"))
}

fn check_input(input: &PipelineInput) -> Result<String> {
    let mut checks = Checks::default();
    let name = checks.required_text("name", input.name.clone(), 100);
    if input.stages.is_empty() {
        checks.fail("stages", "required", "a pipeline needs at least one stage");
    }
    if input.stages.len() > 50 {
        checks.fail("stages", "too_many", "at most 50 stages");
    }
    for (i, s) in input.stages.iter().enumerate() {
        checks.required_text(&format!("stages[{i}].name"), s.name.clone(), 100);
        if !(0..=100).contains(&s.probability) {
            checks.fail(
                &format!("stages[{i}].probability"),
                "out_of_range",
                "a probability is 0 to 100",
            );
        }
        let expected = match s.kind {
            StageKind::Won => Some(100),
            StageKind::Lost => Some(0),
            StageKind::Open => None,
        };
        if expected.is_some_and(|p| p != s.probability) {
            checks.fail(
                &format!("stages[{i}].probability"),
                "invalid_value",
                "won stages have probability 100, lost stages 0",
            );
        }
        if input.stages[..i]
            .iter()
            .any(|o| o.name.trim().eq_ignore_ascii_case(s.name.trim()))
        {
            checks.fail(
                &format!("stages[{i}].name"),
                "duplicate",
                "stage names are distinct within a pipeline",
            );
        }
    }
    if !input.stages.iter().any(|s| s.kind == StageKind::Open) && !input.stages.is_empty() {
        checks.fail(
            "stages",
            "invalid_value",
            "a pipeline needs at least one open stage",
        );
    }
    checks.finish()?;
    Ok(name)
}

fn name_taken(e: sea_orm::DbErr) -> Error {
    if crate::db::is_unique_violation(&e) {
        Error::field("name", "not_unique", "another pipeline has this name")
    } else {
        e.into()
    }
}

/// All pipelines of the tenant with their stages.
pub async fn list(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<Pipeline>> {
    ctx.require(ObjectType::Pipeline, Action::Read)?;
    let rows = pipeline::Entity::find()
        .filter(pipeline::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(pipeline::Column::Position)
        .order_by_asc(pipeline::Column::Name)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for p in rows {
        out.push(output(db, ctx, p).await?);
    }
    Ok(out)
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<Pipeline> {
    ctx.require(ObjectType::Pipeline, Action::Read)?;
    let p = load(db, ctx, id).await?;
    output(db, ctx, p).await
}

/// Creates a pipeline with its stages.
pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    input: PipelineInput,
) -> Result<Pipeline> {
    ctx.require(ObjectType::Pipeline, Action::ManageSettings)?;
    let name = check_input(&input)?;
    if input.stages.iter().any(|s| s.id.is_some()) {
        return Err(Error::field(
            "stages",
            "not_allowed",
            "new pipelines have new stages: leave out `id`",
        ));
    }
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let p = create_in(&tx, ctx, name, input).await?;
    tx.commit().await?;
    Ok(p)
}

pub(crate) async fn create_in(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    name: String,
    input: PipelineInput,
) -> Result<Pipeline> {
    let now = crate::clock::now();
    let model = pipeline::Model {
        id: Uuid::now_v7(),
        tenant_id: ctx.tenant_id,
        name,
        position: input.position,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    pipeline::ActiveModel::from(model.clone())
        .insert(tx)
        .await
        .map_err(name_taken)?;
    for (i, s) in input.stages.into_iter().enumerate() {
        stage::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id),
            pipeline_id: Set(model.id),
            name: Set(s.name.trim().to_owned()),
            position: Set(i as i32),
            probability: Set(s.probability),
            kind: Set(s.kind.as_str().to_owned()),
        }
        .insert(tx)
        .await?;
    }
    let out = output(tx, ctx, model).await?;
    audit::write(
        tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Pipeline,
            out.id,
            AuditAction::Create,
            serde_json::json!({"after": out}),
        )],
    )
    .await?;
    Ok(out)
}

/// Replaces a pipeline's name and stage list. Stages named by id are kept
/// (their deals stay); stages left out are removed, which is refused while
/// deals are in them.
pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    input: PipelineInput,
    expected_version: i64,
) -> Result<Pipeline> {
    ctx.require(ObjectType::Pipeline, Action::ManageSettings)?;
    let name = check_input(&input)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let existing = load(&tx, ctx, id).await?;
    if existing.version != expected_version {
        return Err(Error::PreconditionFailed {
            current: existing.version,
        });
    }
    let before = output(&tx, ctx, existing.clone()).await?;
    let current = stages_of(&tx, ctx, id).await?;
    let mut checks = Checks::default();
    for (i, s) in input.stages.iter().enumerate() {
        if let Some(sid) = s.id
            && !current.iter().any(|c| c.id == sid)
        {
            checks.fail(
                &format!("stages[{i}].id"),
                "not_found",
                "no such stage in this pipeline",
            );
        }
        if s.id.is_some() && input.stages[..i].iter().any(|o| o.id == s.id) {
            checks.fail(
                &format!("stages[{i}].id"),
                "duplicate",
                "this stage is listed twice",
            );
        }
    }
    checks.finish()?;
    // A stage holding deals keeps its kind: turning an open stage into a
    // won or lost one would close its deals without closing dates or reasons.
    for s in &input.stages {
        let Some(old) = current.iter().find(|c| Some(c.id) == s.id) else {
            continue;
        };
        if StageKind::parse(&old.kind) != s.kind && deals_in_stage(&tx, ctx, old.id).await? > 0 {
            return Err(Error::Conflict {
                code: "stage_in_use",
                message: format!("stage `{}` holds deals: its kind cannot change", old.name),
            });
        }
    }
    for old in &current {
        if input.stages.iter().any(|s| s.id == Some(old.id)) {
            continue;
        }
        let in_use = deals_in_stage(&tx, ctx, old.id).await?;
        if in_use > 0 {
            return Err(Error::Conflict {
                code: "stage_in_use",
                message: format!(
                    "stage `{}` still holds {in_use} deals: move them first",
                    old.name
                ),
            });
        }
        stage::Entity::delete_by_id(old.id).exec(&tx).await?;
    }
    for (i, s) in input.stages.into_iter().enumerate() {
        let model = stage::ActiveModel {
            id: Set(s.id.unwrap_or_else(Uuid::now_v7)),
            tenant_id: Set(ctx.tenant_id),
            pipeline_id: Set(id),
            name: Set(s.name.trim().to_owned()),
            position: Set(i as i32),
            probability: Set(s.probability),
            kind: Set(s.kind.as_str().to_owned()),
        };
        if s.id.is_some() {
            model.update(&tx).await?;
        } else {
            model.insert(&tx).await?;
        }
    }
    let mut updated = existing;
    updated.name = name;
    updated.position = input.position;
    updated.updated_at = crate::clock::now();
    updated.version = expected_version + 1;
    let written = crate::crm::records::update_if_version(
        &tx,
        ctx,
        id,
        expected_version,
        pipeline::ActiveModel::from(updated.clone()),
    )
    .await
    .map_err(name_taken)?;
    if !written {
        return Err(Error::PreconditionFailed {
            current: expected_version + 1,
        });
    }
    let after = output(&tx, ctx, updated).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Pipeline,
            id,
            AuditAction::Update,
            audit::diff(
                &serde_json::to_value(&before).unwrap_or_default(),
                &serde_json::to_value(&after).unwrap_or_default(),
            ),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

async fn deals_in_stage(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    stage_id: Uuid,
) -> Result<u64> {
    Ok(deal::Entity::find()
        .filter(deal::Column::TenantId.eq(ctx.tenant_id))
        .filter(deal::Column::StageId.eq(stage_id))
        .count(tx)
        .await?)
}

/// Deletes a pipeline that holds no deals.
pub async fn delete(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<()> {
    ctx.require(ObjectType::Pipeline, Action::ManageSettings)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let existing = load(&tx, ctx, id).await?;
    if expected_version.is_some_and(|v| v != existing.version) {
        return Err(Error::PreconditionFailed {
            current: existing.version,
        });
    }
    let deals = deal::Entity::find()
        .filter(deal::Column::TenantId.eq(ctx.tenant_id))
        .filter(deal::Column::PipelineId.eq(id))
        .count(&tx)
        .await?;
    if deals > 0 {
        return Err(Error::Conflict {
            code: "pipeline_in_use",
            message: format!("this pipeline holds {deals} deals"),
        });
    }
    let before = output(&tx, ctx, existing).await?;
    pipeline::Entity::delete_by_id(id).exec(&tx).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Pipeline,
            id,
            AuditAction::Delete,
            serde_json::json!({"before": before}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The stage, if it belongs to the tenant.
pub async fn stage<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Option<stage::Model>> {
    Ok(stage::Entity::find_by_id(id)
        .filter(stage::Column::TenantId.eq(ctx.tenant_id))
        .one(db)
        .await?)
}

/// The first open stage of a pipeline: where new deals start by default.
pub async fn first_stage<C: sea_orm::ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    pipeline_id: Uuid,
) -> Result<Option<stage::Model>> {
    Ok(stages_of(db, ctx, pipeline_id)
        .await?
        .into_iter()
        .find(|s| StageKind::parse(&s.kind) == StageKind::Open))
}
