//! The `duplicate_pairs` table: the review queue of likely duplicates.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "duplicate_pairs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub object_type: String,
    /// The smaller id of the pair.
    pub record_id: Uuid,
    pub other_id: Uuid,
    pub score: f64,
    pub reasons: Json,
    /// `open`, `dismissed` or `merged`.
    pub status: String,
    pub found_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    pub resolved_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
