//! Saved views pinned to the dashboard: a shared view with `on_dashboard`
//! shows there as a count of the records it finds (editions declare them
//! as dashboard widgets).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SavedViews {
    Table,
    OnDashboard,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SavedViews::Table)
                    .add_column(boolean(SavedViews::OnDashboard).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SavedViews::Table)
                    .drop_column(SavedViews::OnDashboard)
                    .to_owned(),
            )
            .await
    }
}
