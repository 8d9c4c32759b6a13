//! The `trash` table: deleted records that can be restored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "trash")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub object_type: String,
    pub record_id: Uuid,
    pub row: Json,
    pub dependents: Json,
    pub bulk_action_id: Option<Uuid>,
    pub deleted_by: Option<Uuid>,
    pub deleted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
