//! The `audit_log` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub object_type: String,
    pub record_id: Uuid,
    pub action: String,
    pub changes: Json,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub at: DateTimeUtc,
    pub seq: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub changes_hash: String,
    pub prev_hash: String,
    pub hash: String,
    pub redacted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
