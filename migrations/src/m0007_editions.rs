//! Which editions each tenant has had applied, and the natural keys of the
//! items each created or adopted (so re-applying never touches them again).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = tenant_table("tenant_editions");
        t.col(string("edition_id"))
            .col(string("version"))
            .col(json("applied"))
            .col(timestamp_with_time_zone("applied_at"));
        manager.create_table(t).await?;
        let mut unique = index(
            "tenant_editions",
            "ux_tenant_editions_tenant_edition",
            &["tenant_id", "edition_id"],
        );
        manager.create_index(unique.unique().to_owned()).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&tenant_wall_sql("tenant_editions"))
                .await?;
        }
        Ok(())
    }
}
