//! Row-level security on PostgreSQL: a second wall behind the kernel's own
//! tenant filter.
//!
//! Every table holding tenant rows gets a policy admitting only rows of the
//! tenant named by the transaction's `trellis.tenant_id` setting. The
//! kernel switches each tenant transaction to the `trellis_tenant` role
//! (`SET LOCAL ROLE`) and sets the tenant (`set_config(.., true)`), so even
//! a query that forgot its `tenant_id` condition sees one tenant only. The
//! policies bind `trellis_tenant` only: the connecting role (the tables'
//! owner) keeps full access for migrations and cross-tenant work (token
//! look-up, operators, audit verification). SQLite has no row security.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Tables with a `tenant_id` column.
pub const TENANT_TABLES: &[&str] = &[
    "users",
    "api_tokens",
    "contacts",
    "accounts",
    "contact_accounts",
    "contact_relationships",
    "pipelines",
    "stages",
    "deals",
    "deal_stage_history",
    "activities",
    "custom_fields",
    "audit_log",
    "search_documents",
    "mfa_recovery_codes",
    "roles",
    "teams",
    "team_members",
    "sessions",
    "one_time_tokens",
    "outbox",
    "usage_counters",
    "tenant_keys",
    "consents",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // Roles belong to the cluster, not the database: create it once,
        // tolerating a concurrent creator (tests migrate databases in parallel).
        db.execute_unprepared(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trellis_tenant') THEN
                 CREATE ROLE trellis_tenant NOLOGIN;
               END IF;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;",
        )
        .await?;
        // The connecting role must be allowed to SET ROLE to it.
        db.execute_unprepared(
            "DO $$ BEGIN
               IF NOT pg_has_role(current_user, 'trellis_tenant', 'MEMBER') THEN
                 EXECUTE format('GRANT trellis_tenant TO %I', current_user);
               END IF;
             EXCEPTION WHEN OTHERS THEN
               RAISE WARNING 'could not grant trellis_tenant to %: %', current_user, SQLERRM;
             END $$;",
        )
        .await?;
        db.execute_unprepared(
            "GRANT USAGE ON SCHEMA public TO trellis_tenant;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO trellis_tenant;
             ALTER DEFAULT PRIVILEGES IN SCHEMA public
               GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO trellis_tenant;",
        )
        .await?;
        for table in TENANT_TABLES {
            db.execute_unprepared(&crate::helpers::tenant_wall_sql(table))
                .await?;
        }
        Ok(())
    }
}
