//! The `saved_views` table: named list queries of the web UI.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "saved_views")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The user it belongs to; none: shared with the tenant.
    pub user_id: Option<Uuid>,
    pub object_type: String,
    pub name: String,
    /// The list's query string (`filter=...&sort=...`).
    pub query: String,
    /// Shown on the dashboard as a count (shared views only).
    #[serde(default)]
    pub on_dashboard: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
