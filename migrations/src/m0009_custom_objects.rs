//! Custom objects: record types a tenant (or a plugin) defines, with their
//! fields, and their records, whose values live in a JSON column like the
//! custom fields of the built-in types.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut objects = tenant_table("custom_objects");
        objects
            .col(string("key"))
            .col(string("label"))
            .col(string("plural_label"))
            .col(json("fields"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("updated_at"));
        manager.create_table(objects).await?;
        let mut unique = index(
            "custom_objects",
            "ux_custom_objects_tenant_key",
            &["tenant_id", "key"],
        );
        manager.create_index(unique.unique().to_owned()).await?;

        let mut records = tenant_table("object_records");
        records
            .col(string("object_key"))
            .col(uuid_null("owner_id"))
            .col(json_binary("custom"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("updated_at"))
            .col(big_integer("version"));
        manager.create_table(records).await?;
        manager
            .create_index(index(
                "object_records",
                "ix_object_records_tenant_object_created",
                &["tenant_id", "object_key", "created_at"],
            ))
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for t in ["custom_objects", "object_records"] {
                db.execute_unprepared(&tenant_wall_sql(t)).await?;
            }
        }
        Ok(())
    }
}
