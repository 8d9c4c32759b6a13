//! The `trellis_tenant` role (row security, m0003) acts for one tenant: it
//! may not write the platform's own tables (operators, resellers, signing
//! keys, login throttling), nor create or delete tenants, and it sees and
//! updates only its own tenant row. The kernel's own connection role is
//! unaffected; these walls hold if an application check is ever missed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "REVOKE INSERT, UPDATE, DELETE ON operators, resellers, signing_keys, auth_throttle
                   FROM trellis_tenant;
                 REVOKE INSERT, DELETE ON tenants FROM trellis_tenant;
                 ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
                 DROP POLICY IF EXISTS tenant_self ON tenants;
                 CREATE POLICY tenant_self ON tenants TO trellis_tenant
                   USING (id = NULLIF(current_setting('trellis.tenant_id', true), '')::uuid)
                   WITH CHECK (id = NULLIF(current_setting('trellis.tenant_id', true), '')::uuid);",
            )
            .await?;
        Ok(())
    }
}
