//! The `tenant_plugins` table: a plugin enabled for a tenant.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "tenant_plugins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub plugin_id: String,
    pub version: String,
    pub enabled: bool,
    /// Capabilities the tenant's admin granted (a subset of the manifest's).
    pub grants: Json,
    pub config: Json,
    /// Overrides of the default per-invocation limits.
    pub limits: Json,
    /// The version whose `install` export last ran for this tenant.
    pub installed_version: Option<String>,
    pub consecutive_failures: i32,
    /// Why the circuit breaker (or an admin) disabled the plugin.
    pub disabled_reason: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
