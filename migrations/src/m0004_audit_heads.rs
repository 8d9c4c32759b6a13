//! The head of each tenant's audit chain in a row of its own: writers claim
//! sequence numbers by updating it (the row lock orders them, on every
//! database), and verification compares the chain's end with it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_heads")
                    .if_not_exists()
                    .col(uuid("tenant_id").primary_key())
                    .col(big_integer("seq"))
                    .col(string("hash"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("audit_heads", "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO audit_heads (tenant_id, seq, hash)
             SELECT a.tenant_id, a.seq, a.hash FROM audit_log a
             WHERE a.seq > 0 AND a.seq = (SELECT MAX(b.seq) FROM audit_log b WHERE b.tenant_id = a.tenant_id)",
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON audit_heads TO trellis_tenant; {}",
                crate::helpers::tenant_wall_sql("audit_heads")
            ))
            .await?;
        }
        Ok(())
    }
}
