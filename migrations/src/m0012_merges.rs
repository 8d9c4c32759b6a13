//! Merging duplicates: each merge with what it needs to be undone, the ids
//! merged away (aliases, so old links and integrations still resolve), the
//! review queue of likely duplicates a scan found, and the tenant's
//! duplicate policy and undo period.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    // off, warn or block: what creating a likely duplicate does.
                    .add_column(string("duplicate_policy").default("warn"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    .add_column(integer("merge_undo_days").default(30))
                    .to_owned(),
            )
            .await?;

        let mut merges = tenant_table("merges");
        merges
            .col(string("object_type"))
            .col(uuid("survivor_id"))
            .col(json("merged_ids"))
            // The merged records as stored, their links and relationships,
            // the references moved and the survivor before and after: all
            // an undo needs.
            .col(json("snapshot"))
            .col(uuid_null("created_by"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("undo_until"))
            .col(timestamp_with_time_zone_null("undone_at"))
            .col(uuid_null("undone_by"));
        manager.create_table(merges).await?;
        for (name, cols) in [
            ("ix_merges_tenant_created", &["tenant_id", "created_at"][..]),
            (
                "ix_merges_tenant_survivor",
                &["tenant_id", "survivor_id"][..],
            ),
        ] {
            manager.create_index(index("merges", name, cols)).await?;
        }

        let mut aliases = tenant_table("record_aliases");
        aliases
            .col(string("object_type"))
            .col(uuid("alias_id"))
            .col(uuid("record_id"))
            .col(uuid("merge_id"))
            .foreign_key(
                ForeignKey::create()
                    .from("record_aliases", "merge_id")
                    .to("merges", "id")
                    .on_delete(ForeignKeyAction::Cascade),
            );
        manager.create_table(aliases).await?;
        manager
            .create_index(
                index(
                    "record_aliases",
                    "ux_record_aliases_alias",
                    &["tenant_id", "object_type", "alias_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "record_aliases",
                "ix_record_aliases_record",
                &["tenant_id", "record_id"],
            ))
            .await?;

        // A pair of likely duplicates a scan found; `record_id` < `other_id`
        // so a pair is stored once.
        let mut pairs = tenant_table("duplicate_pairs");
        pairs
            .col(string("object_type"))
            .col(uuid("record_id"))
            .col(uuid("other_id"))
            .col(double("score"))
            .col(json("reasons"))
            // open, dismissed or merged
            .col(string("status"))
            .col(timestamp_with_time_zone("found_at"))
            .col(timestamp_with_time_zone_null("resolved_at"))
            .col(uuid_null("resolved_by"));
        manager.create_table(pairs).await?;
        manager
            .create_index(
                index(
                    "duplicate_pairs",
                    "ux_duplicate_pairs_pair",
                    &["tenant_id", "object_type", "record_id", "other_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "duplicate_pairs",
                "ix_duplicate_pairs_queue",
                &["tenant_id", "object_type", "status", "score"],
            ))
            .await?;

        if manager.get_database_backend() == DbBackend::Postgres {
            for table in ["merges", "record_aliases", "duplicate_pairs"] {
                manager
                    .get_connection()
                    .execute_unprepared(&tenant_wall_sql(table))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["duplicate_pairs", "record_aliases", "merges"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        for column in ["duplicate_policy", "merge_undo_days"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("tenants")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
