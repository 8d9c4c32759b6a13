//! A tenant may grant its reseller (or the platform's operators) support
//! access: until when, and with which of its roles.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    .add_column(timestamp_with_time_zone_null("support_access_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    .add_column(string_null("support_access_role"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
