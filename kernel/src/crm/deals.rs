//! Deals (opportunities): an amount in a currency moving through the stages
//! of a pipeline. Every stage change is kept in the stage history, which
//! velocity and forecasting read.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::crm::checks::Checks;
use crate::crm::listing::{FieldSpec, Kind, decimal_to_minor, minor_to_decimal};
use crate::crm::pipelines::{self, StageKind};
use crate::crm::records::{self, Record};
use crate::db::search::SearchDocument;
use crate::entities::{deal, deal_stage_history, pipeline};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

/// Accepts an amount as a decimal string or a JSON integer; refuses JSON
/// fractions, which may already have lost digits in the client.
fn amount_de<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Decimal, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        Value::String(s) => Decimal::from_str_exact(s.trim())
            .map_err(|_| D::Error::custom("expected a decimal amount such as \"1250.00\"")),
        Value::Number(n) if n.is_i64() || n.is_u64() => Decimal::from_str_exact(&n.to_string())
            .map_err(|_| D::Error::custom("amount out of range")),
        _ => Err(D::Error::custom(
            "expected a decimal amount as a string, such as \"1250.00\"",
        )),
    }
}

fn zero() -> Decimal {
    Decimal::ZERO
}

/// The writable fields of a deal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    pub name: String,
    /// Exact decimal amount as a string (up to 4 decimals), e.g. `"1250.00"`.
    #[serde(default = "zero", deserialize_with = "amount_de")]
    #[schema(value_type = String)]
    #[schemars(with = "String")]
    pub amount: Decimal,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// Defaults to the tenant's first pipeline.
    #[serde(default)]
    pub pipeline_id: Option<Uuid>,
    /// Defaults to the pipeline's first stage. Must belong to the pipeline.
    #[serde(default)]
    pub stage_id: Option<Uuid>,
    #[serde(default)]
    pub expected_close_date: Option<NaiveDate>,
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// The primary contact.
    #[serde(default)]
    pub contact_id: Option<Uuid>,
    #[serde(default)]
    pub account_id: Option<Uuid>,
    /// Required when the stage is a lost stage.
    #[serde(default)]
    pub lost_reason: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: Value,
}

/// A deal as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deal {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub currency: String,
    pub pipeline_id: Uuid,
    pub stage_id: Uuid,
    pub expected_close_date: Option<NaiveDate>,
    pub owner_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub lost_reason: Option<String>,
    /// When the deal entered its current stage.
    pub stage_changed_at: DateTime<Utc>,
    /// When the deal reached a won or lost stage.
    pub closed_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub custom: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// One move of a deal between stages.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageMove {
    pub from_stage_id: Option<Uuid>,
    pub to_stage_id: Uuid,
    pub moved_by: Option<Uuid>,
    pub moved_at: DateTime<Utc>,
}

pub struct Deals;

const FIELDS: &[FieldSpec] = &[
    FieldSpec::new("id", Kind::Uuid).required(),
    FieldSpec::new("name", Kind::Text).required(),
    FieldSpec::new("amount", Kind::Money)
        .column("amount_minor")
        .required(),
    FieldSpec::new("currency", Kind::Text).required(),
    FieldSpec::new("pipeline_id", Kind::Uuid).required(),
    FieldSpec::new("stage_id", Kind::Uuid).required(),
    FieldSpec::new("expected_close_date", Kind::Date),
    FieldSpec::new("owner_id", Kind::Uuid),
    FieldSpec::new("contact_id", Kind::Uuid),
    FieldSpec::new("account_id", Kind::Uuid),
    FieldSpec::new("stage_changed_at", Kind::Timestamp).required(),
    FieldSpec::new("closed_at", Kind::Timestamp),
    FieldSpec::new("lost_reason", Kind::Text),
    FieldSpec::new("created_at", Kind::Timestamp).required(),
    FieldSpec::new("updated_at", Kind::Timestamp).required(),
];

#[async_trait]
impl Record for Deals {
    const OBJECT: ObjectType = ObjectType::Deal;

    fn owner(m: &Self::Model) -> Option<Uuid> {
        m.owner_id
    }

    fn set_owner(m: &mut Self::Model, owner: Option<Uuid>) {
        m.owner_id = owner;
    }

    fn custom_mut(m: &mut Self::Model) -> &mut Value {
        &mut m.custom
    }
    type Entity = deal::Entity;
    type Model = deal::Model;
    type Active = deal::ActiveModel;
    type Input = DealInput;
    type Output = Deal;

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }
    fn id(m: &deal::Model) -> Uuid {
        m.id
    }
    fn version(m: &deal::Model) -> i64 {
        m.version
    }

    fn output(m: deal::Model) -> Deal {
        Deal {
            id: m.id,
            name: m.name,
            amount: minor_to_decimal(m.amount_minor),
            currency: m.currency,
            pipeline_id: m.pipeline_id,
            stage_id: m.stage_id,
            expected_close_date: m.expected_close_date,
            owner_id: m.owner_id,
            contact_id: m.contact_id,
            account_id: m.account_id,
            lost_reason: m.lost_reason,
            stage_changed_at: m.stage_changed_at,
            closed_at: m.closed_at,
            custom: m.custom,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }

    fn input(m: &deal::Model) -> DealInput {
        DealInput {
            name: m.name.clone(),
            amount: minor_to_decimal(m.amount_minor),
            currency: m.currency.clone(),
            pipeline_id: Some(m.pipeline_id),
            stage_id: Some(m.stage_id),
            expected_close_date: m.expected_close_date,
            owner_id: m.owner_id,
            contact_id: m.contact_id,
            account_id: m.account_id,
            lost_reason: m.lost_reason.clone(),
            custom: m.custom.clone(),
        }
    }

    fn custom_of(input: &DealInput) -> Value {
        input.custom.clone()
    }

    async fn build(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        input: DealInput,
        custom: Value,
        existing: Option<&deal::Model>,
    ) -> Result<deal::Model> {
        let mut checks = Checks::default();
        let name = checks.required_text("name", input.name, 200);
        let amount_minor = match decimal_to_minor(input.amount) {
            Ok(v) if v >= 0 => v,
            Ok(_) => {
                checks.fail("amount", "out_of_range", "amounts are not negative");
                0
            }
            Err(m) => {
                checks.fail("amount", "invalid_value", m);
                0
            }
        };
        let currency = input.currency.trim().to_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            checks.fail("currency", "invalid_format", "an ISO 4217 code such as USD");
        }
        let given_stage = match input.stage_id {
            Some(s) => pipelines::stage(tx, ctx, s).await?,
            None => None,
        };
        let pipeline_id = match (input.pipeline_id, &given_stage) {
            (Some(p), _) => p,
            // A stage names its pipeline.
            (None, Some(s)) => s.pipeline_id,
            (None, None) => pipeline::Entity::find()
                .filter(pipeline::Column::TenantId.eq(ctx.tenant_id))
                .order_by_asc(pipeline::Column::Position)
                .order_by_asc(pipeline::Column::Name)
                .one(tx)
                .await?
                .map(|p| p.id)
                .ok_or_else(|| {
                    Error::field("pipeline_id", "required", "the tenant has no pipeline yet")
                })?,
        };
        let stage = match input.stage_id {
            Some(_) => given_stage,
            None => pipelines::first_stage(tx, ctx, pipeline_id).await?,
        };
        let mut stage_kind = StageKind::Open;
        let stage_id = match stage {
            Some(s) if s.pipeline_id == pipeline_id => {
                stage_kind = StageKind::parse(&s.kind);
                s.id
            }
            Some(_) => {
                checks.fail(
                    "stage_id",
                    "invalid_value",
                    "this stage belongs to another pipeline",
                );
                Uuid::nil()
            }
            None if input.stage_id.is_some() => {
                checks.fail("stage_id", "not_found", "no stage with this id");
                Uuid::nil()
            }
            None => {
                checks.fail("pipeline_id", "not_found", "no pipeline with this id");
                Uuid::nil()
            }
        };
        let lost_reason = checks.text("lost_reason", input.lost_reason, 500);
        if stage_kind == StageKind::Lost && lost_reason.is_none() {
            checks.fail("lost_reason", "required", "say why the deal was lost");
        }
        let linked = [
            ("contact_id", ObjectType::Contact, input.contact_id),
            ("account_id", ObjectType::Account, input.account_id),
        ];
        checks.links(tx, ctx, input.owner_id, &linked).await?;
        checks.finish()?;
        let now = crate::clock::now();
        let moved = existing.is_none_or(|e| e.stage_id != stage_id);
        let closed_at = match stage_kind {
            StageKind::Open => None,
            _ if !moved => existing.and_then(|e| e.closed_at).or(Some(now)),
            _ => Some(now),
        };
        Ok(deal::Model {
            id: existing.map(|e| e.id).unwrap_or_else(Uuid::now_v7),
            tenant_id: ctx.tenant_id,
            name,
            amount_minor,
            currency,
            pipeline_id,
            stage_id,
            expected_close_date: input.expected_close_date,
            owner_id: input.owner_id,
            contact_id: input.contact_id,
            account_id: input.account_id,
            lost_reason: if stage_kind == StageKind::Lost {
                lost_reason
            } else {
                None
            },
            stage_changed_at: match existing {
                Some(e) if !moved => e.stage_changed_at,
                _ => now,
            },
            closed_at,
            custom,
            created_at: existing.map(|e| e.created_at).unwrap_or(now),
            updated_at: now,
            version: existing.map(|e| e.version + 1).unwrap_or(1),
        })
    }

    async fn after_write(
        tx: &DatabaseTransaction,
        ctx: &RequestContext,
        m: &deal::Model,
        previous: Option<&deal::Model>,
    ) -> Result<()> {
        if previous.is_some_and(|p| p.stage_id == m.stage_id) {
            return Ok(());
        }
        deal_stage_history::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id),
            deal_id: Set(m.id),
            from_stage_id: Set(previous.map(|p| p.stage_id)),
            to_stage_id: Set(m.stage_id),
            moved_by: Set(ctx.user_id),
            moved_at: Set(m.stage_changed_at),
        }
        .insert(tx)
        .await?;
        Ok(())
    }

    fn search_document(m: &deal::Model) -> Option<SearchDocument> {
        Some(SearchDocument {
            tenant_id: m.tenant_id,
            object_type: "deal",
            record_id: m.id,
            title: m.name.clone(),
            subtitle: Some(format!(
                "{} {}",
                minor_to_decimal(m.amount_minor),
                m.currency
            )),
            body: String::new(),
            match_keys: Vec::new(),
        })
    }
}

/// Moves a deal to another stage of its pipeline (or, with `pipeline_id`, of
/// another pipeline), recording the move in the stage history.
pub async fn move_stage(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    stage_id: Uuid,
    lost_reason: Option<String>,
    expected_version: i64,
    via_if_match: bool,
) -> Result<deal::Model> {
    let stage = pipelines::stage(db, ctx, stage_id)
        .await?
        .ok_or_else(|| Error::field("stage_id", "not_found", "no stage with this id"))?;
    let mut patch = json!({"stage_id": stage_id, "pipeline_id": stage.pipeline_id});
    if let Some(r) = lost_reason {
        patch["lost_reason"] = json!(r);
    }
    records::update::<Deals>(db, ctx, id, patch, expected_version, via_if_match).await
}

/// A deal's stage moves, oldest first.
pub async fn stage_history(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<Vec<StageMove>> {
    ctx.require(ObjectType::Deal, Action::Read)?;
    records::load::<Deals, _>(db, ctx, id).await?;
    Ok(deal_stage_history::Entity::find()
        .filter(deal_stage_history::Column::TenantId.eq(ctx.tenant_id))
        .filter(deal_stage_history::Column::DealId.eq(id))
        .order_by_asc(deal_stage_history::Column::MovedAt)
        .order_by_asc(deal_stage_history::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|h| StageMove {
            from_stage_id: h.from_stage_id,
            to_stage_id: h.to_stage_id,
            moved_by: h.moved_by,
            moved_at: h.moved_at,
        })
        .collect())
}
