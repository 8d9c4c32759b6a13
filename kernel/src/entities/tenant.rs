//! The `tenants` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: DateTimeUtc,
    pub reseller_id: Option<Uuid>,
    pub plan: String,
    pub status: String,
    pub hostname: Option<String>,
    pub mfa_required: bool,
    pub session_idle_seconds: i64,
    pub session_absolute_seconds: i64,
    /// Until when the tenant lets its operators (its reseller's, or the
    /// platform's) act inside it.
    pub support_access_until: Option<DateTimeUtc>,
    /// The tenant's role those operators act with.
    pub support_access_role: Option<String>,
    /// The white-label theme (a folder of `themes/`); none: the default
    /// (for a tenant: its reseller's).
    pub theme: Option<String>,
    /// `off`, `warn` or `block`: what creating a likely duplicate does.
    pub duplicate_policy: String,
    /// How long a merge can be undone.
    pub merge_undo_days: i32,
    /// What the tenant stored at the last measurement (see
    /// `tenancy::storage`), held against the plan's storage limit.
    pub storage_bytes: i64,
    pub storage_measured_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
