//! The Trellis database schema as sea-orm migrations.
//!
//! One migrator serves SQLite and PostgreSQL. Tables are described with the
//! portable builder; where the engines truly differ (full-text search), the
//! migration branches on the backend in one place.

use sea_orm_migration::prelude::*;

mod helpers;
mod m0001_core;
mod m0002_identity;
mod m0003_row_security;
mod m0004_audit_heads;
mod m0005_platform_walls;
mod m0006_plugins;
mod m0007_editions;
mod m0008_support_access;
mod m0009_custom_objects;
mod m0010_themes;
mod m0011_imports;
mod m0012_merges;
mod m0013_bulk_actions;
mod m0014_dashboard_views;
mod m0015_storage_usage;
mod m0016_match_keys;

/// Every migration of the kernel, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_core::Migration),
            Box::new(m0002_identity::Migration),
            Box::new(m0003_row_security::Migration),
            Box::new(m0004_audit_heads::Migration),
            Box::new(m0005_platform_walls::Migration),
            Box::new(m0006_plugins::Migration),
            Box::new(m0007_editions::Migration),
            Box::new(m0008_support_access::Migration),
            Box::new(m0009_custom_objects::Migration),
            Box::new(m0010_themes::Migration),
            Box::new(m0011_imports::Migration),
            Box::new(m0012_merges::Migration),
            Box::new(m0013_bulk_actions::Migration),
            Box::new(m0014_dashboard_views::Migration),
            Box::new(m0015_storage_usage::Migration),
            Box::new(m0016_match_keys::Migration),
        ]
    }
}

/// Applies every pending migration.
pub async fn up(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
