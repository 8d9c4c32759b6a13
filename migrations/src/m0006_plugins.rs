//! The plugin platform and the job queue.
//!
//! - `plugin_packages`: installed plugin versions (manifest and component
//!   bytes), shared by every tenant and every kernel process.
//! - `tenant_plugins`: a plugin enabled for a tenant, with the capabilities
//!   the tenant's admin granted, its configuration, and its circuit breaker.
//! - `plugin_kv`: each plugin's key-value store, per tenant.
//! - `plugin_logs`: what plugins logged and every error they raised.
//! - `jobs`: work to run later (after-write hooks, scheduled and enqueued
//!   plugin jobs), claimed by any kernel process.
//! - `events`: what plugins emit, for webhooks and other plugins.

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
            .create_table(
                Table::create()
                    .table("plugin_packages")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string("plugin_id"))
                    .col(string("version"))
                    .col(string("contract"))
                    .col(json("manifest"))
                    .col(blob("component"))
                    .col(string("sha256"))
                    .col(timestamp_with_time_zone("installed_at"))
                    .to_owned(),
            )
            .await?;
        let mut unique = index(
            "plugin_packages",
            "ux_plugin_packages_id_version",
            &["plugin_id", "version"],
        );
        manager.create_index(unique.unique().to_owned()).await?;

        let mut tp = tenant_table("tenant_plugins");
        tp.col(string("plugin_id"))
            .col(string("version"))
            .col(boolean("enabled"))
            .col(json("grants"))
            .col(json("config"))
            .col(json("limits"))
            .col(string_null("installed_version"))
            .col(integer("consecutive_failures").default(0))
            .col(string_null("disabled_reason"))
            .col(timestamp_with_time_zone("updated_at"));
        manager.create_table(tp).await?;
        let mut unique = index(
            "tenant_plugins",
            "ux_tenant_plugins_tenant_plugin",
            &["tenant_id", "plugin_id"],
        );
        manager.create_index(unique.unique().to_owned()).await?;

        let mut kv = tenant_table("plugin_kv");
        kv.col(string("plugin_id"))
            .col(string("key"))
            .col(blob("value"))
            .col(timestamp_with_time_zone("updated_at"));
        manager.create_table(kv).await?;
        let mut unique = index(
            "plugin_kv",
            "ux_plugin_kv_tenant_plugin_key",
            &["tenant_id", "plugin_id", "key"],
        );
        manager.create_index(unique.unique().to_owned()).await?;

        let mut logs = tenant_table("plugin_logs");
        logs.col(string("plugin_id"))
            .col(string("version"))
            .col(string("level"))
            .col(text("message"))
            .col(timestamp_with_time_zone("at"));
        manager.create_table(logs).await?;
        manager
            .create_index(index(
                "plugin_logs",
                "ix_plugin_logs_tenant_plugin_at",
                &["tenant_id", "plugin_id", "at"],
            ))
            .await?;

        let mut jobs = tenant_table("jobs");
        jobs.col(string("kind"))
            .col(string_null("plugin_id"))
            .col(string("name"))
            .col(json("payload"))
            .col(string("status"))
            .col(timestamp_with_time_zone("run_at"))
            .col(integer("attempts").default(0))
            .col(integer("max_attempts").default(5))
            .col(timestamp_with_time_zone_null("locked_until"))
            .col(text_null("last_error"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone_null("finished_at"));
        manager.create_table(jobs).await?;
        manager
            .create_index(index(
                "jobs",
                "ix_jobs_status_run_at",
                &["status", "run_at"],
            ))
            .await?;
        manager
            .create_index(index(
                "jobs",
                "ix_jobs_tenant_status",
                &["tenant_id", "status"],
            ))
            .await?;

        let mut events = tenant_table("events");
        events
            .col(string("source"))
            .col(string("name"))
            .col(json("payload"))
            .col(timestamp_with_time_zone("at"));
        manager.create_table(events).await?;
        manager
            .create_index(index("events", "ix_events_tenant_at", &["tenant_id", "at"]))
            .await?;

        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            for table in [
                "tenant_plugins",
                "plugin_kv",
                "plugin_logs",
                "jobs",
                "events",
            ] {
                db.execute_unprepared(&tenant_wall_sql(table)).await?;
            }
            // Packages are the platform's: tenant transactions read them only.
            db.execute_unprepared(
                "REVOKE INSERT, UPDATE, DELETE ON plugin_packages FROM trellis_tenant",
            )
            .await?;
        }
        Ok(())
    }
}
