//! Identity and the security core: resellers and plans on tenants, users
//! with passwords and MFA, per-tenant roles and teams, browser sessions,
//! scoped API keys, one-time tokens, the email outbox, login throttling,
//! usage counters for plan limits, signing and data keys, consent records,
//! and the columns that chain the audit log.
//!
//! Columns added to existing tables come one per `ALTER TABLE`, the only form
//! SQLite accepts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::helpers::{index, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn belongs_to_user(table: &mut TableCreateStatement, name: &'static str) {
    table.col(uuid("user_id")).foreign_key(
        ForeignKey::create()
            .from(name, "user_id")
            .to("users", "id")
            .on_delete(ForeignKeyAction::Cascade),
    );
}

async fn add_columns(
    manager: &SchemaManager<'_>,
    table: &'static str,
    cols: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    for mut col in cols {
        manager
            .alter_table(Table::alter().table(table).add_column(&mut col).to_owned())
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("resellers")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string("slug").unique_key())
                    .col(string("name"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        // Platform and reseller administrators: they manage tenants from
        // outside and hold no rights inside any tenant.
        manager
            .create_table(
                Table::create()
                    .table("operators")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string("kind"))
                    .col(uuid_null("reseller_id"))
                    .col(string("name"))
                    .col(string("token_hash").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("operators", "reseller_id")
                            .to("resellers", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        add_columns(
            manager,
            "tenants",
            vec![
                uuid_null("reseller_id"),
                string("plan").default("custom").to_owned(),
                string("status").default("active").to_owned(),
                string_null("hostname"),
                boolean("mfa_required").default(false).to_owned(),
                big_integer("session_idle_seconds").default(1800).to_owned(),
                big_integer("session_absolute_seconds")
                    .default(43_200)
                    .to_owned(),
            ],
        )
        .await?;
        manager
            .create_index(
                index("tenants", "ux_tenants_hostname", &["hostname"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("tenants", "ix_tenants_reseller", &["reseller_id"]))
            .await?;

        add_columns(
            manager,
            "users",
            vec![
                string_null("password_hash"),
                string("status").default("active").to_owned(),
                json_binary("roles").default("[]").to_owned(),
                string_null("totp_secret"),
                timestamp_with_time_zone_null("mfa_enabled_at"),
                timestamp_with_time_zone_null("last_login_at"),
                big_integer_null("totp_last_step"),
            ],
        )
        .await?;

        let mut codes = tenant_table("mfa_recovery_codes");
        belongs_to_user(&mut codes, "mfa_recovery_codes");
        codes
            .col(string("code_hash"))
            .col(timestamp_with_time_zone_null("used_at"));
        manager.create_table(codes).await?;
        manager
            .create_index(index(
                "mfa_recovery_codes",
                "ix_mfa_recovery_codes_user",
                &["tenant_id", "user_id"],
            ))
            .await?;

        let mut roles = tenant_table("roles");
        roles
            .col(string("key"))
            .col(string("name"))
            .col(json_binary("permissions"))
            .col(json_binary("field_rules"))
            .col(boolean("mfa_required").default(false))
            .col(boolean("built_in").default(false))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("updated_at"));
        manager.create_table(roles).await?;
        manager
            .create_index(
                index("roles", "ux_roles_tenant_key", &["tenant_id", "key"])
                    .unique()
                    .to_owned(),
            )
            .await?;

        let mut teams = tenant_table("teams");
        teams
            .col(string("name"))
            .col(string_null("territory"))
            .col(timestamp_with_time_zone("created_at"));
        manager.create_table(teams).await?;
        manager
            .create_index(
                index("teams", "ux_teams_tenant_name", &["tenant_id", "name"])
                    .unique()
                    .to_owned(),
            )
            .await?;

        let mut members = tenant_table("team_members");
        belongs_to_user(&mut members, "team_members");
        members.col(uuid("team_id")).foreign_key(
            ForeignKey::create()
                .from("team_members", "team_id")
                .to("teams", "id")
                .on_delete(ForeignKeyAction::Cascade),
        );
        manager.create_table(members).await?;
        manager
            .create_index(
                index(
                    "team_members",
                    "ux_team_members_team_user",
                    &["tenant_id", "team_id", "user_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "team_members",
                "ix_team_members_user",
                &["tenant_id", "user_id"],
            ))
            .await?;

        let mut sessions = tenant_table("sessions");
        belongs_to_user(&mut sessions, "sessions");
        sessions
            .col(string("token_hash").unique_key())
            .col(boolean("mfa_verified").default(false))
            .col(string_null("ip"))
            .col(string_null("user_agent"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("last_seen_at"))
            .col(timestamp_with_time_zone("expires_at"))
            .col(timestamp_with_time_zone_null("revoked_at"));
        manager.create_table(sessions).await?;
        manager
            .create_index(index(
                "sessions",
                "ix_sessions_user",
                &["tenant_id", "user_id"],
            ))
            .await?;

        add_columns(
            manager,
            "api_tokens",
            vec![
                json_binary("scopes").default("[]").to_owned(),
                timestamp_with_time_zone_null("expires_at"),
                timestamp_with_time_zone_null("last_used_at"),
            ],
        )
        .await?;

        let mut one_time = tenant_table("one_time_tokens");
        belongs_to_user(&mut one_time, "one_time_tokens");
        one_time
            .col(string("purpose"))
            .col(string("token_hash").unique_key())
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone("expires_at"))
            .col(timestamp_with_time_zone_null("used_at"));
        manager.create_table(one_time).await?;

        let mut outbox = tenant_table("outbox");
        outbox
            .col(string("recipient"))
            .col(string("subject"))
            .col(text("body"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone_null("sent_at"));
        manager.create_table(outbox).await?;
        manager
            .create_index(index(
                "outbox",
                "ix_outbox_tenant_created",
                &["tenant_id", "created_at"],
            ))
            .await?;

        // Failed logins and MFA attempts per account and per IP address.
        manager
            .create_table(
                Table::create()
                    .table("auth_throttle")
                    .if_not_exists()
                    .col(string("key").primary_key())
                    .col(integer("failures").default(0))
                    .col(timestamp_with_time_zone("window_started_at"))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .to_owned(),
            )
            .await?;

        // Counters behind plan limits that are rates (API requests per minute).
        manager
            .create_table(
                Table::create()
                    .table("usage_counters")
                    .if_not_exists()
                    .col(uuid("tenant_id"))
                    .col(string("metric"))
                    .col(big_integer("window_start"))
                    .col(big_integer("count").default(0))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("metric")
                            .col("window_start"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("usage_counters", "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Keys that sign access tokens; private halves encrypted with the
        // master key so that every kernel process can sign and verify.
        manager
            .create_table(
                Table::create()
                    .table("signing_keys")
                    .if_not_exists()
                    .col(string("kid").primary_key())
                    .col(string("algorithm"))
                    .col(text("private_key"))
                    .col(text("public_key"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("retired_at"))
                    .to_owned(),
            )
            .await?;

        // Per-tenant data keys for field encryption, wrapped by the master key.
        let mut keys = tenant_table("tenant_keys");
        keys.col(integer("version"))
            .col(text("wrapped_key"))
            .col(string("master_key_id"))
            .col(timestamp_with_time_zone("created_at"));
        manager.create_table(keys).await?;
        manager
            .create_index(
                index(
                    "tenant_keys",
                    "ux_tenant_keys_version",
                    &["tenant_id", "version"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        let mut consents = tenant_table("consents");
        consents
            .col(uuid("contact_id"))
            .col(string("purpose"))
            .col(boolean("granted"))
            .col(string("source"))
            .col(string("actor_kind"))
            .col(uuid_null("actor_id"))
            .col(timestamp_with_time_zone("recorded_at"))
            .foreign_key(
                ForeignKey::create()
                    .from("consents", "contact_id")
                    .to("contacts", "id")
                    .on_delete(ForeignKeyAction::Cascade),
            );
        manager.create_table(consents).await?;
        manager
            .create_index(index(
                "consents",
                "ix_consents_contact",
                &["tenant_id", "contact_id", "purpose"],
            ))
            .await?;

        add_columns(
            manager,
            "contacts",
            vec![
                boolean("legal_hold").default(false).to_owned(),
                timestamp_with_time_zone_null("erased_at"),
            ],
        )
        .await?;
        add_columns(
            manager,
            "custom_fields",
            vec![
                boolean("sensitive").default(false).to_owned(),
                boolean("blind_index").default(false).to_owned(),
            ],
        )
        .await?;

        add_columns(
            manager,
            "audit_log",
            vec![
                big_integer("seq").default(0).to_owned(),
                string_null("ip"),
                string_null("user_agent"),
                string("changes_hash").default("").to_owned(),
                string("prev_hash").default("").to_owned(),
                string("hash").default("").to_owned(),
                timestamp_with_time_zone_null("redacted_at"),
            ],
        )
        .await?;
        manager
            .create_index(index(
                "audit_log",
                "ix_audit_log_tenant_seq",
                &["tenant_id", "seq"],
            ))
            .await?;
        manager
            .create_index(index(
                "audit_log",
                "ix_audit_log_tenant_actor",
                &["tenant_id", "actor_id", "at"],
            ))
            .await?;
        Ok(())
    }
}
