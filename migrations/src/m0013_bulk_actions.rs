//! Bulk actions on a list's whole result set, run as background jobs, and
//! the trash: records a bulk delete removed, kept with what referred to
//! them so they can be restored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut actions = tenant_table("bulk_actions");
        actions
            .col(string("object_type"))
            // update, assign_owner, add_tags, remove_tags, delete, restore
            .col(string("action"))
            // The list filters chosen (`field:op:value`).
            .col(json("filters"))
            .col(json("params"))
            // queued, running, done, failed, cancelled
            .col(string("status"))
            .col(big_integer("total").default(0))
            .col(big_integer("processed").default(0))
            .col(big_integer("succeeded").default(0))
            .col(big_integer("failed").default(0))
            // The first failures: [{id, code, message}].
            .col(json("errors"))
            // Records after this id are still to do; none above `upper`
            // (the newest matching when the action started) are touched.
            .col(uuid_null("cursor"))
            .col(uuid_null("upper"))
            .col(json("actor"))
            .col(uuid_null("job_id"))
            .col(text_null("error"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("updated_at"))
            .col(timestamp_with_time_zone_null("finished_at"));
        manager.create_table(actions).await?;
        manager
            .create_index(index(
                "bulk_actions",
                "ix_bulk_actions_tenant_created",
                &["tenant_id", "created_at"],
            ))
            .await?;

        let mut trash = tenant_table("trash");
        trash
            .col(string("object_type"))
            .col(uuid("record_id"))
            // The row as stored, and the links and references its delete
            // removed or cleared.
            .col(json("row"))
            .col(json("dependents"))
            .col(uuid_null("bulk_action_id"))
            .col(uuid_null("deleted_by"))
            .col(timestamp_with_time_zone("deleted_at"));
        manager.create_table(trash).await?;
        for (name, cols, unique) in [
            ("ux_trash_record", &["tenant_id", "record_id"][..], true),
            (
                "ix_trash_tenant_object_deleted",
                &["tenant_id", "object_type", "deleted_at"][..],
                false,
            ),
            (
                "ix_trash_bulk_action",
                &["tenant_id", "bulk_action_id"][..],
                false,
            ),
        ] {
            let mut idx = index("trash", name, cols);
            if unique {
                idx.unique();
            }
            manager.create_index(idx).await?;
        }

        if manager.get_database_backend() == DbBackend::Postgres {
            for table in ["bulk_actions", "trash"] {
                manager
                    .get_connection()
                    .execute_unprepared(&tenant_wall_sql(table))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["trash", "bulk_actions"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
