//! The `contacts` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "contacts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub emails: Json,
    pub phones: Json,
    pub job_title: Option<String>,
    pub lifecycle_stage: String,
    pub lead_source: Option<String>,
    pub owner_id: Option<Uuid>,
    pub tags: Json,
    pub do_not_email: bool,
    pub do_not_call: bool,
    pub preferred_channel: Option<String>,
    pub custom: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
