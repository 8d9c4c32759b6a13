//! The `imports` table: one import of a file, its options and progress.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub object_type: String,
    pub format: String,
    pub filename: String,
    pub size_bytes: i64,
    /// `uploaded`, `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    pub dry_run: bool,
    pub source: Json,
    pub options: Json,
    pub total_rows: Option<i64>,
    /// Source rows dealt with by committed batches.
    pub committed_rows: i64,
    pub created_count: i64,
    pub updated_count: i64,
    pub rejected_count: i64,
    /// Pairs of likely duplicates the import queued for review.
    pub duplicate_count: i64,
    pub actor: Json,
    pub job_id: Option<Uuid>,
    pub error: Option<String>,
    pub run_started_at: Option<DateTimeUtc>,
    pub run_start_rows: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
