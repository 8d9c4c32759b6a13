//! Imports: an uploaded file (kept in the database in chunks, so whichever
//! kernel process runs the import can read it), the import's options and
//! progress, the rows it rejected, and saved column mappings.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table, tenant_wall_sql};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut imports = tenant_table("imports");
        imports
            .col(string("object_type"))
            .col(string("format"))
            .col(string("filename"))
            .col(big_integer("size_bytes"))
            // uploaded, queued, running, done, failed, cancelled
            .col(string("status"))
            .col(boolean("dry_run").default(false))
            // What the file looked like: encoding, delimiter, headers.
            .col(json("source"))
            // Mapping, mode, matching and linking options.
            .col(json("options"))
            .col(big_integer_null("total_rows"))
            // Source rows dealt with by committed batches: where a resumed
            // import starts.
            .col(big_integer("committed_rows").default(0))
            .col(big_integer("created_count").default(0))
            .col(big_integer("updated_count").default(0))
            .col(big_integer("rejected_count").default(0))
            // Who started it, so a resumed run acts with their rights.
            .col(json("actor"))
            .col(uuid_null("job_id"))
            .col(text_null("error"))
            .col(timestamp_with_time_zone_null("run_started_at"))
            .col(big_integer("run_start_rows").default(0))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("updated_at"))
            .col(timestamp_with_time_zone_null("finished_at"));
        manager.create_table(imports).await?;
        manager
            .create_index(index(
                "imports",
                "ix_imports_tenant_created",
                &["tenant_id", "created_at"],
            ))
            .await?;

        let mut chunks = tenant_table("import_chunks");
        chunks
            .col(uuid("import_id"))
            .col(integer("seq"))
            .col(blob("data"))
            .foreign_key(
                ForeignKey::create()
                    .from("import_chunks", "import_id")
                    .to("imports", "id")
                    .on_delete(ForeignKeyAction::Cascade),
            );
        manager.create_table(chunks).await?;
        manager
            .create_index(
                index(
                    "import_chunks",
                    "ux_import_chunks_import_seq",
                    &["import_id", "seq"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        let mut rejects = tenant_table("import_rejects");
        rejects
            .col(uuid("import_id"))
            .col(big_integer("row_number"))
            // The row as it was in the file (cells, a JSON line, a card).
            .col(json("raw"))
            .col(json("errors"))
            .foreign_key(
                ForeignKey::create()
                    .from("import_rejects", "import_id")
                    .to("imports", "id")
                    .on_delete(ForeignKeyAction::Cascade),
            );
        manager.create_table(rejects).await?;
        manager
            .create_index(
                index(
                    "import_rejects",
                    "ux_import_rejects_import_row",
                    &["import_id", "row_number"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        let mut templates = tenant_table("import_templates");
        templates
            .col(string("object_type"))
            .col(string("name"))
            .col(json("options"))
            .col(uuid_null("created_by"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("updated_at"));
        manager.create_table(templates).await?;
        manager
            .create_index(
                index(
                    "import_templates",
                    "ux_import_templates_tenant_name",
                    &["tenant_id", "object_type", "name"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        if manager.get_database_backend() == DbBackend::Postgres {
            for table in [
                "imports",
                "import_chunks",
                "import_rejects",
                "import_templates",
            ] {
                manager
                    .get_connection()
                    .execute_unprepared(&tenant_wall_sql(table))
                    .await?;
            }
        }
        Ok(())
    }
}
