//! The CRM core: tenants, users, contacts, accounts, pipelines, deals,
//! activities, custom fields, the audit trail and the search index.
//!
//! Every table of tenant data carries `tenant_id`, and every index on such a
//! table starts with it, so a query scoped to one tenant never scans another's
//! rows. Timestamps are stored at whole-second precision (see
//! `docs/architecture.md`), ids are UUID v7.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::helpers::{index, tenant_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created/updated timestamps and the optimistic-concurrency version.
fn with_lifecycle(mut table: TableCreateStatement) -> TableCreateStatement {
    table
        .col(timestamp_with_time_zone("created_at"))
        .col(timestamp_with_time_zone("updated_at"))
        .col(big_integer("version").default(1));
    table
}

fn references(
    table: &mut TableCreateStatement,
    from: &'static str,
    col: &'static str,
    to: &'static str,
    on_delete: ForeignKeyAction,
) {
    table.foreign_key(
        ForeignKey::create()
            .from(from, col)
            .to(to, "id")
            .on_delete(on_delete),
    );
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenants")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string("slug").unique_key())
                    .col(string("name"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        let mut users = tenant_table("users");
        users
            .col(string("email"))
            .col(string("name"))
            .col(timestamp_with_time_zone("created_at"));
        manager.create_table(users).await?;
        manager
            .create_index(
                index("users", "ux_users_tenant_email", &["tenant_id", "email"])
                    .unique()
                    .to_owned(),
            )
            .await?;

        let mut tokens = tenant_table("api_tokens");
        tokens
            .col(uuid("user_id"))
            .col(string("name"))
            .col(string("token_hash").unique_key())
            .col(json_binary("roles"))
            .col(timestamp_with_time_zone("created_at"))
            .col(timestamp_with_time_zone_null("revoked_at"));
        references(
            &mut tokens,
            "api_tokens",
            "user_id",
            "users",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(tokens).await?;

        let mut contacts = tenant_table("contacts");
        contacts
            .col(string_null("first_name"))
            .col(string_null("last_name"))
            .col(string_null("email"))
            .col(json_binary("emails"))
            .col(json_binary("phones"))
            .col(string_null("job_title"))
            .col(string("lifecycle_stage"))
            .col(string_null("lead_source"))
            .col(uuid_null("owner_id"))
            .col(json_binary("tags"))
            .col(boolean("do_not_email").default(false))
            .col(boolean("do_not_call").default(false))
            .col(string_null("preferred_channel"))
            .col(json_binary("custom"));
        references(
            &mut contacts,
            "contacts",
            "owner_id",
            "users",
            ForeignKeyAction::SetNull,
        );
        manager.create_table(with_lifecycle(contacts)).await?;
        for (name, cols) in [
            (
                "ix_contacts_tenant_name",
                &["tenant_id", "last_name", "first_name", "id"][..],
            ),
            ("ix_contacts_tenant_email", &["tenant_id", "email"][..]),
            (
                "ix_contacts_tenant_created",
                &["tenant_id", "created_at", "id"][..],
            ),
            (
                "ix_contacts_tenant_updated",
                &["tenant_id", "updated_at", "id"][..],
            ),
            ("ix_contacts_tenant_owner", &["tenant_id", "owner_id"][..]),
            (
                "ix_contacts_tenant_stage",
                &["tenant_id", "lifecycle_stage", "id"][..],
            ),
        ] {
            manager.create_index(index("contacts", name, cols)).await?;
        }

        let mut accounts = tenant_table("accounts");
        accounts
            .col(string("name"))
            .col(string_null("domain"))
            .col(string_null("industry"))
            .col(string_null("size"))
            .col(string_null("territory"))
            .col(uuid_null("owner_id"))
            .col(uuid_null("parent_id"))
            .col(json_binary("custom"));
        references(
            &mut accounts,
            "accounts",
            "owner_id",
            "users",
            ForeignKeyAction::SetNull,
        );
        references(
            &mut accounts,
            "accounts",
            "parent_id",
            "accounts",
            ForeignKeyAction::Restrict,
        );
        manager.create_table(with_lifecycle(accounts)).await?;
        for (name, cols) in [
            ("ix_accounts_tenant_name", &["tenant_id", "name", "id"][..]),
            ("ix_accounts_tenant_domain", &["tenant_id", "domain"][..]),
            ("ix_accounts_tenant_parent", &["tenant_id", "parent_id"][..]),
            (
                "ix_accounts_tenant_created",
                &["tenant_id", "created_at", "id"][..],
            ),
        ] {
            manager.create_index(index("accounts", name, cols)).await?;
        }

        let mut links = tenant_table("contact_accounts");
        links
            .col(uuid("contact_id"))
            .col(uuid("account_id"))
            .col(string_null("role"))
            .col(timestamp_with_time_zone("created_at"));
        references(
            &mut links,
            "contact_accounts",
            "contact_id",
            "contacts",
            ForeignKeyAction::Cascade,
        );
        references(
            &mut links,
            "contact_accounts",
            "account_id",
            "accounts",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(links).await?;
        manager
            .create_index(
                index(
                    "contact_accounts",
                    "ux_contact_accounts_pair",
                    &["tenant_id", "contact_id", "account_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "contact_accounts",
                "ix_contact_accounts_account",
                &["tenant_id", "account_id"],
            ))
            .await?;

        let mut rels = tenant_table("contact_relationships");
        rels.col(uuid("from_contact_id"))
            .col(uuid("to_contact_id"))
            .col(string("kind"))
            .col(timestamp_with_time_zone("created_at"));
        references(
            &mut rels,
            "contact_relationships",
            "from_contact_id",
            "contacts",
            ForeignKeyAction::Cascade,
        );
        references(
            &mut rels,
            "contact_relationships",
            "to_contact_id",
            "contacts",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(rels).await?;
        manager
            .create_index(
                index(
                    "contact_relationships",
                    "ux_contact_relationships_triple",
                    &["tenant_id", "from_contact_id", "to_contact_id", "kind"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "contact_relationships",
                "ix_contact_relationships_to",
                &["tenant_id", "to_contact_id"],
            ))
            .await?;

        let mut pipelines = tenant_table("pipelines");
        pipelines
            .col(string("name"))
            .col(integer("position").default(0));
        manager.create_table(with_lifecycle(pipelines)).await?;
        manager
            .create_index(
                index(
                    "pipelines",
                    "ux_pipelines_tenant_name",
                    &["tenant_id", "name"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        let mut stages = tenant_table("stages");
        stages
            .col(uuid("pipeline_id"))
            .col(string("name"))
            .col(integer("position"))
            .col(integer("probability"))
            .col(string("kind"));
        references(
            &mut stages,
            "stages",
            "pipeline_id",
            "pipelines",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(stages).await?;
        manager
            .create_index(index(
                "stages",
                "ix_stages_pipeline",
                &["tenant_id", "pipeline_id", "position"],
            ))
            .await?;

        let mut deals = tenant_table("deals");
        deals
            .col(string("name"))
            .col(big_integer("amount_minor"))
            .col(char_len("currency", 3))
            .col(uuid("pipeline_id"))
            .col(uuid("stage_id"))
            .col(date_null("expected_close_date"))
            .col(uuid_null("owner_id"))
            .col(uuid_null("contact_id"))
            .col(uuid_null("account_id"))
            .col(string_null("lost_reason"))
            .col(timestamp_with_time_zone("stage_changed_at"))
            .col(timestamp_with_time_zone_null("closed_at"))
            .col(json_binary("custom"));
        references(
            &mut deals,
            "deals",
            "pipeline_id",
            "pipelines",
            ForeignKeyAction::Restrict,
        );
        references(
            &mut deals,
            "deals",
            "stage_id",
            "stages",
            ForeignKeyAction::Restrict,
        );
        references(
            &mut deals,
            "deals",
            "owner_id",
            "users",
            ForeignKeyAction::SetNull,
        );
        references(
            &mut deals,
            "deals",
            "contact_id",
            "contacts",
            ForeignKeyAction::SetNull,
        );
        references(
            &mut deals,
            "deals",
            "account_id",
            "accounts",
            ForeignKeyAction::SetNull,
        );
        manager.create_table(with_lifecycle(deals)).await?;
        for (name, cols) in [
            (
                "ix_deals_tenant_stage",
                &["tenant_id", "stage_id", "id"][..],
            ),
            (
                "ix_deals_tenant_pipeline",
                &["tenant_id", "pipeline_id", "id"][..],
            ),
            (
                "ix_deals_tenant_created",
                &["tenant_id", "created_at", "id"][..],
            ),
            (
                "ix_deals_tenant_close",
                &["tenant_id", "expected_close_date", "id"][..],
            ),
            ("ix_deals_tenant_contact", &["tenant_id", "contact_id"][..]),
            ("ix_deals_tenant_account", &["tenant_id", "account_id"][..]),
        ] {
            manager.create_index(index("deals", name, cols)).await?;
        }

        let mut history = tenant_table("deal_stage_history");
        history
            .col(uuid("deal_id"))
            .col(uuid_null("from_stage_id"))
            .col(uuid("to_stage_id"))
            .col(uuid_null("moved_by"))
            .col(timestamp_with_time_zone("moved_at"));
        references(
            &mut history,
            "deal_stage_history",
            "deal_id",
            "deals",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(history).await?;
        manager
            .create_index(index(
                "deal_stage_history",
                "ix_deal_stage_history_deal",
                &["tenant_id", "deal_id", "moved_at"],
            ))
            .await?;

        // Deleting a contact, account or deal unlinks its activities rather
        // than deleting them unseen: only the record's own delete is audited.
        let mut activities = tenant_table("activities");
        activities
            .col(string("kind"))
            .col(string("subject"))
            .col(text_null("body"))
            .col(timestamp_with_time_zone_null("due_at"))
            .col(timestamp_with_time_zone_null("starts_at"))
            .col(timestamp_with_time_zone_null("ends_at"))
            .col(boolean("done").default(false))
            .col(timestamp_with_time_zone_null("done_at"))
            .col(string_null("outcome"))
            .col(uuid_null("owner_id"))
            .col(uuid_null("contact_id"))
            .col(uuid_null("account_id"))
            .col(uuid_null("deal_id"))
            .col(json_binary("custom"));
        references(
            &mut activities,
            "activities",
            "owner_id",
            "users",
            ForeignKeyAction::SetNull,
        );
        references(
            &mut activities,
            "activities",
            "contact_id",
            "contacts",
            ForeignKeyAction::SetNull,
        );
        references(
            &mut activities,
            "activities",
            "account_id",
            "accounts",
            ForeignKeyAction::SetNull,
        );
        references(
            &mut activities,
            "activities",
            "deal_id",
            "deals",
            ForeignKeyAction::SetNull,
        );
        manager.create_table(with_lifecycle(activities)).await?;
        for (name, cols) in [
            (
                "ix_activities_tenant_contact",
                &["tenant_id", "contact_id", "created_at"][..],
            ),
            (
                "ix_activities_tenant_account",
                &["tenant_id", "account_id", "created_at"][..],
            ),
            (
                "ix_activities_tenant_deal",
                &["tenant_id", "deal_id", "created_at"][..],
            ),
            (
                "ix_activities_tenant_due",
                &["tenant_id", "due_at", "id"][..],
            ),
            (
                "ix_activities_tenant_created",
                &["tenant_id", "created_at", "id"][..],
            ),
        ] {
            manager
                .create_index(index("activities", name, cols))
                .await?;
        }

        let mut fields = tenant_table("custom_fields");
        fields
            .col(string("object_type"))
            .col(string("key"))
            .col(string("label"))
            .col(string("field_type"))
            .col(boolean("required").default(false))
            .col(boolean("is_unique").default(false))
            .col(json_binary_null("default_value"))
            .col(json_binary("options"))
            .col(string_null("min_value"))
            .col(string_null("max_value"))
            .col(string_null("pattern"))
            .col(string_null("reference_type"))
            .col(integer("position").default(0));
        manager.create_table(with_lifecycle(fields)).await?;
        manager
            .create_index(
                index(
                    "custom_fields",
                    "ux_custom_fields_key",
                    &["tenant_id", "object_type", "key"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        let mut audit = tenant_table("audit_log");
        audit
            .col(string("object_type"))
            .col(uuid("record_id"))
            .col(string("action"))
            .col(json_binary("changes"))
            .col(string("actor_kind"))
            .col(uuid_null("actor_id"))
            .col(string_null("request_id"))
            .col(timestamp_with_time_zone("at"));
        manager.create_table(audit).await?;
        manager
            .create_index(index(
                "audit_log",
                "ix_audit_log_record",
                &["tenant_id", "record_id", "at"],
            ))
            .await?;
        manager
            .create_index(index(
                "audit_log",
                "ix_audit_log_tenant_at",
                &["tenant_id", "at"],
            ))
            .await?;

        create_search_index(manager).await
    }
}

/// The search index: an FTS5 table on SQLite, a tsvector table with a GIN index
/// on PostgreSQL. Both hold one document per record (title plus searchable
/// text) and are written by the kernel's search backend in the same
/// transaction as the record.
async fn create_search_index(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Sqlite => {
            // An external-content FTS5 table over a plain table, kept in step by
            // triggers (the pattern of SQLite's FTS5 documentation): the plain
            // table gives indexed look-ups by tenant and record for updates.
            for sql in [
                "CREATE TABLE IF NOT EXISTS search_documents (
                    rowid INTEGER PRIMARY KEY,
                    tenant_id BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    object_type TEXT NOT NULL,
                    record_id BLOB NOT NULL,
                    title TEXT NOT NULL,
                    subtitle TEXT,
                    body TEXT NOT NULL
                )",
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_search_documents_record
                    ON search_documents (tenant_id, record_id)",
                "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
                    title, body,
                    content = 'search_documents', content_rowid = 'rowid',
                    tokenize = 'unicode61 remove_diacritics 2',
                    prefix = '2 3'
                )",
                "CREATE TRIGGER IF NOT EXISTS search_documents_ai AFTER INSERT ON search_documents BEGIN
                    INSERT INTO search_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
                 END",
                "CREATE TRIGGER IF NOT EXISTS search_documents_ad AFTER DELETE ON search_documents BEGIN
                    INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
                 END",
                "CREATE TRIGGER IF NOT EXISTS search_documents_au AFTER UPDATE ON search_documents BEGIN
                    INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body);
                    INSERT INTO search_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
                 END",
            ] {
                db.execute_unprepared(sql).await?;
            }
        }
        DbBackend::Postgres => {
            db.execute_unprepared(
                "CREATE TABLE IF NOT EXISTS search_documents (
                    tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    object_type text NOT NULL,
                    record_id uuid NOT NULL,
                    title text NOT NULL,
                    subtitle text,
                    body text NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('simple', regexp_replace(title, '[^[:alnum:]]+', ' ', 'g')), 'A')
                        || setweight(to_tsvector('simple', regexp_replace(body, '[^[:alnum:]]+', ' ', 'g')), 'B')
                    ) STORED,
                    PRIMARY KEY (tenant_id, record_id)
                )",
            )
            .await?;
            db.execute_unprepared(
                // A small pending list: every search scans it linearly, and after a
                // bulk load the default 4 MB cost 6 ms per query (measured in
                // docs/benchmarks.md); 512 kB bounds that below 1 ms.
                "CREATE INDEX IF NOT EXISTS ix_search_documents_tsv ON search_documents USING gin (tsv) \
                 WITH (gin_pending_list_limit = 512)",
            )
            .await?;
        }
        other => {
            return Err(DbErr::Migration(format!(
                "unsupported database backend {other:?}: Trellis runs on SQLite or PostgreSQL"
            )));
        }
    }
    Ok(())
}
