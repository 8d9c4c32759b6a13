//! The web UI's tables: white-label themes (a tenant's own choice, else its
//! reseller's), saved list views, and indexes for the dashboard and board.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["tenants", "resellers"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(string_null("theme"))
                        .to_owned(),
                )
                .await?;
        }
        // A named list query (filters and sort) of one object type; a view
        // without a user is shared with the whole tenant.
        let mut views = tenant_table("saved_views");
        views
            .col(uuid_null("user_id"))
            .col(string("object_type"))
            .col(string("name"))
            .col(text("query"))
            .col(timestamp_with_time_zone("created_at"));
        manager.create_table(views).await?;
        manager
            .create_index(index(
                "saved_views",
                "ix_saved_views_tenant_object",
                &["tenant_id", "object_type"],
            ))
            .await?;
        // The dashboard and the pipeline board: sums by stage read from the
        // index alone, won deals by close date, a column's newest cards.
        for (name, cols) in [
            (
                "ix_deals_tenant_stage_amount",
                &["tenant_id", "stage_id", "currency", "amount_minor"][..],
            ),
            ("ix_deals_tenant_closed", &["tenant_id", "closed_at"][..]),
            (
                "ix_deals_tenant_stage_updated",
                &["tenant_id", "stage_id", "updated_at", "id"][..],
            ),
        ] {
            manager.create_index(index("deals", name, cols)).await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&tenant_wall_sql("saved_views"))
                .await?;
        }
        Ok(())
    }
}
