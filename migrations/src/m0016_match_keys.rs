//! Exact keys for duplicate detection (and the count of likely
//! duplicates an import queued): each contact's and account's
//! normalised email addresses, phone numbers, domain and name key, so the
//! check that runs on every create is one indexed look-up rather than
//! full-text queries whose cost grew with the tenant. Written with the
//! search document, in the record's transaction.
//!
//! Existing records get their keys from the kernel's index rebuild (the
//! derivation lives in the kernel, once): this migration queues it in
//! `pending_rebuilds`, which the kernel drains at start.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("match_keys")
                    .if_not_exists()
                    .col(uuid("tenant_id"))
                    .col(string("object_type"))
                    // `email:…`, `phone:…` (last nine digits), `domain:…`,
                    // `name:…` (word beginnings).
                    .col(text("key"))
                    .col(uuid("record_id"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("object_type")
                            .col("key")
                            .col("record_id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("match_keys", "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "match_keys",
                "ix_match_keys_record",
                &["tenant_id", "record_id"],
            ))
            .await?;
        // Derived data the kernel rebuilds at its next start (`search`:
        // search documents and match keys of every record).
        manager
            .create_table(
                Table::create()
                    .table("pending_rebuilds")
                    .if_not_exists()
                    .col(string("name").primary_key())
                    .to_owned(),
            )
            .await?;
        // Pairs of likely duplicates an import queued for review.
        manager
            .alter_table(
                Table::alter()
                    .table("imports")
                    .add_column(big_integer("duplicate_count").default(0))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("INSERT INTO pending_rebuilds (name) VALUES ('search')")
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&tenant_wall_sql("match_keys"))
                .await?;
            // The platform's own bookkeeping: not the tenant role's to touch.
            db.execute_unprepared("REVOKE ALL ON pending_rebuilds FROM trellis_tenant")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("imports")
                    .drop_column("duplicate_count")
                    .to_owned(),
            )
            .await?;
        for table in ["pending_rebuilds", "match_keys"] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
