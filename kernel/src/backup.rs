//! A tenant's full backup, and its restore into a new tenant.
//!
//! The backup is JSON lines: a header (format, version, the tenant's
//! settings), then every row of the tenant's data, table by table in an
//! order where each row's references come before it, then an end line with
//! the count of each table (a file cut short is refused). Rows are the
//! stored rows, except that encrypted custom values are written decrypted
//! (the new tenant has its own keys): the file holds personal data in
//! clear and must be kept like the database itself.
//!
//! A restore creates the tenant and writes every row in one transaction,
//! so it lands whole or not at all. Ids are translated: each id of the
//! backup becomes a new one derived from it and the new tenant, and every
//! value that is such an id (a foreign key, a custom reference, an id in
//! a list) is translated the same way, so a tenant can be restored beside
//! its original in the same database.
//!
//! Left out: the audit trail (its hash chain belongs to the tenant it
//! records; the restore is audited in the new one), sessions, API keys,
//! MFA enrolments (users enrol again), jobs, imports, merges and their
//! aliases, the duplicates queue, bulk actions and the trash. The search
//! index and usage counters are rebuilt.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::sensitive;
use crate::entities::{
    account, activity, consent, contact, contact_account, contact_relationship, custom_field,
    custom_object, deal, deal_stage_history, import_template, object_record, pipeline, plugin_kv,
    role, saved_view, stage, team, team_member, tenant, tenant_plugin, user,
};
use crate::error::{Error, Result};
use crate::permissions::ObjectType;

/// What the header's `format` says.
pub const FORMAT: &str = "trellis-tenant-backup";
/// The version of the format this kernel writes and reads.
pub const VERSION: u32 = 1;
/// Rows read per query while exporting.
const PAGE: u64 = 1000;

/// The first line of a backup.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at: chrono::DateTime<chrono::Utc>,
    source_tenant: Uuid,
    slug: String,
    name: String,
    plan: String,
    mfa_required: bool,
    session_idle_seconds: i64,
    session_absolute_seconds: i64,
    theme: Option<String>,
    duplicate_policy: String,
    merge_undo_days: i32,
}

/// How many rows of each table a backup or restore held.
pub type Counts = BTreeMap<String, u64>;

/// Calls `$m!(table name, entity module, record type)` for every table a
/// backup holds, in restore order. The record type (for encrypted custom
/// values) is `None` for tables without them.
macro_rules! each_table {
    ($m:ident) => {
        $m!("users", user, None);
        $m!("roles", role, None);
        $m!("teams", team, None);
        $m!("team_members", team_member, None);
        $m!("custom_fields", custom_field, None);
        $m!("custom_objects", custom_object, None);
        $m!("pipelines", pipeline, None);
        $m!("stages", stage, None);
        $m!("accounts", account, Some(ObjectType::Account));
        $m!("contacts", contact, Some(ObjectType::Contact));
        $m!("contact_accounts", contact_account, None);
        $m!("contact_relationships", contact_relationship, None);
        $m!("consents", consent, None);
        $m!("deals", deal, Some(ObjectType::Deal));
        $m!("deal_stage_history", deal_stage_history, None);
        $m!("activities", activity, Some(ObjectType::Activity));
        $m!("object_records", object_record, None);
        $m!("saved_views", saved_view, None);
        $m!("import_templates", import_template, None);
        $m!("tenant_plugins", tenant_plugin, None);
        $m!("plugin_kv", plugin_kv, None);
    };
}

/// Writes the backup of tenant `ctx.tenant_id` to `out`.
pub async fn export(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    out: &mut impl Write,
) -> Result<Counts> {
    // One snapshot for the whole file: rows written meanwhile cannot leave
    // a reference without its row.
    let db = &if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.begin_with_config(
            Some(sea_orm::IsolationLevel::RepeatableRead),
            Some(sea_orm::AccessMode::ReadOnly),
        )
        .await?
    } else {
        db.begin().await?
    };
    let t = tenant::Entity::find_by_id(ctx.tenant_id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let header = Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: crate::clock::now(),
        source_tenant: t.id,
        slug: t.slug.clone(),
        name: t.name.clone(),
        plan: t.plan.clone(),
        mfa_required: t.mfa_required,
        session_idle_seconds: t.session_idle_seconds,
        session_absolute_seconds: t.session_absolute_seconds,
        theme: t.theme.clone(),
        duplicate_policy: t.duplicate_policy.clone(),
        merge_undo_days: t.merge_undo_days,
    };
    line(out, &serde_json::to_value(&header).map_err(internal)?)?;
    let mut counts = Counts::new();
    macro_rules! dump {
        ($name:literal, $module:ident, $object:expr) => {{
            let mut after: Option<Uuid> = None;
            let mut n = 0u64;
            loop {
                let mut q = $module::Entity::find()
                    .filter(Expr::col("tenant_id").eq(ctx.tenant_id));
                if let Some(a) = after {
                    q = q.filter(Expr::col("id").gt(a));
                }
                let rows = q
                    .order_by_asc(Expr::col("id"))
                    .limit(PAGE)
                    .all(db)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id);
                for row in rows {
                    let mut v = serde_json::to_value(&row).map_err(internal)?;
                    opened(db, ctx, $object, $name, &mut v).await?;
                    line(out, &json!({"t": $name, "r": v}))?;
                    n += 1;
                }
            }
            counts.insert($name.to_owned(), n);
        }};
    }
    each_table!(dump);
    // Contacts' privacy marks live beside the row (not in its model).
    let backend = db.get_database_backend();
    let marked = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id, legal_hold, erased_at FROM contacts WHERE tenant_id = {} \
                 AND (legal_hold OR erased_at IS NOT NULL) ORDER BY id",
                crate::db::dialect::param(backend, 1)
            ),
            [ctx.tenant_id.into()],
        ))
        .await?;
    let mut n = 0u64;
    for r in marked {
        let id: Uuid = r.try_get("", "id")?;
        let hold: bool = r.try_get("", "legal_hold")?;
        let erased: Option<chrono::DateTime<chrono::Utc>> = r.try_get("", "erased_at")?;
        line(
            out,
            &json!({"t": "contact_flags", "r": {"id": id, "legal_hold": hold, "erased_at": erased}}),
        )?;
        n += 1;
    }
    counts.insert("contact_flags".to_owned(), n);
    line(out, &json!({"end": true, "rows": counts}))?;
    out.flush().map_err(io)?;
    Ok(counts)
}

/// A row's encrypted custom values, decrypted; users lose their MFA
/// secret (sealed for the user it belongs to).
async fn opened(
    db: &DatabaseTransaction,
    ctx: &RequestContext,
    object: Option<ObjectType>,
    table: &str,
    row: &mut Value,
) -> Result<()> {
    if table == "users" {
        row["totp_secret"] = Value::Null;
        row["mfa_enabled_at"] = Value::Null;
        row["totp_last_step"] = Value::Null;
    }
    if table == "tenant_plugins" && row["config"].to_string().contains("\"$sealed\"") {
        let keyring = ctx.keyring.clone().ok_or_else(|| {
            Error::Internal("backing up plugin secrets needs the keyring".to_owned())
        })?;
        let plugin_id = row["plugin_id"].as_str().unwrap_or_default().to_owned();
        row["config"] = crate::plugins::secrets::for_backup(
            &keyring,
            db,
            (ctx.tenant_id, &plugin_id),
            &row["config"],
        )
        .await?;
    }
    let Some(custom) = row.get_mut("custom") else {
        return Ok(());
    };
    if !sensitive::any_sealed(&json!({ "custom": custom })) {
        return Ok(());
    }
    let Some(object) = object else {
        return Err(Error::BadRequest(format!(
            "{table} holds encrypted values this version cannot back up"
        )));
    };
    let keys = sensitive::keys_covering(db, ctx, Some(custom)).await?;
    sensitive::open_all(keys.as_deref(), ctx.tenant_id, object, custom)
}

fn line(out: &mut impl Write, v: &Value) -> Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(internal)?;
    out.write_all(b"\n").map_err(io)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!("writing the backup: {e}"))
}

/// Restores a backup read from `input` into a new tenant `slug` (named
/// `name`, or as in the backup). Returns the new tenant's id and the rows
/// of each table.
pub async fn restore(
    db: &DatabaseConnection,
    keyring: Option<std::sync::Arc<crate::keys::Keyring>>,
    input: impl BufRead,
    slug: &str,
    name: Option<&str>,
) -> Result<(Uuid, Counts)> {
    let mut lines = input.lines();
    let first = lines
        .next()
        .transpose()
        .map_err(|e| Error::BadRequest(format!("reading the backup: {e}")))?
        .ok_or_else(|| Error::BadRequest("the backup is empty".to_owned()))?;
    let header: Header = serde_json::from_str(&first)
        .map_err(|_| Error::BadRequest("this is not a Trellis tenant backup".to_owned()))?;
    if header.format != FORMAT {
        return Err(Error::BadRequest(
            "this is not a Trellis tenant backup".to_owned(),
        ));
    }
    if header.version != VERSION {
        return Err(Error::BadRequest(format!(
            "backup format version {} is not readable by this version (it reads {VERSION})",
            header.version
        )));
    }
    if tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug))
        .one(db)
        .await?
        .is_some()
    {
        return Err(Error::Conflict {
            code: "tenant_exists",
            message: format!("a tenant `{slug}` exists already: restore into a new one"),
        });
    }
    let new_tenant = Uuid::now_v7();
    let ids = Translate {
        from: header.source_tenant,
        to: new_tenant,
    };
    let tx = crate::db::write_tx(db).await?;
    tenant::ActiveModel {
        id: Set(new_tenant),
        slug: Set(slug.to_owned()),
        name: Set(name.unwrap_or(&header.name).to_owned()),
        created_at: Set(crate::clock::now()),
        reseller_id: Set(None),
        plan: Set(header.plan.clone()),
        status: Set("active".to_owned()),
        hostname: Set(None),
        mfa_required: Set(header.mfa_required),
        session_idle_seconds: Set(header.session_idle_seconds),
        session_absolute_seconds: Set(header.session_absolute_seconds),
        support_access_until: Set(None),
        support_access_role: Set(None),
        theme: Set(header.theme.clone()),
        duplicate_policy: Set(header.duplicate_policy.clone()),
        merge_undo_days: Set(header.merge_undo_days),
        storage_bytes: Set(0),
        storage_measured_at: Set(None),
    }
    .insert(&tx)
    .await?;
    crate::directory::roles::ensure_built_in(&tx, new_tenant).await?;
    let mut ctx = RequestContext::system(new_tenant);
    ctx.keyring = keyring;

    let mut counts = Counts::new();
    let mut parents: Vec<(Uuid, Uuid)> = Vec::new();
    let mut ended: Option<Counts> = None;
    let mut pending: Vec<Value> = Vec::new();
    let mut pending_table = String::new();
    for (i, text) in lines.enumerate() {
        let text = text.map_err(|e| Error::BadRequest(format!("reading the backup: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Error::BadRequest(format!("line {} of the backup is not JSON: {e}", i + 2))
        })?;
        if v.get("end").is_some() {
            ended = Some(
                serde_json::from_value(v.get("rows").cloned().unwrap_or(Value::Null)).map_err(
                    |_| Error::BadRequest("the backup's end line is damaged".to_owned()),
                )?,
            );
            break;
        }
        let table = v
            .get("t")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest(format!("line {} names no table", i + 2)))?
            .to_owned();
        let mut row = v.get("r").cloned().unwrap_or(Value::Null);
        ids.apply(&mut row);
        if table != pending_table || pending.len() >= 500 {
            write(
                &tx,
                &ctx,
                &pending_table,
                std::mem::take(&mut pending),
                &mut parents,
            )
            .await?;
            pending_table = table.clone();
        }
        *counts.entry(table).or_default() += 1;
        pending.push(row);
    }
    write(&tx, &ctx, &pending_table, pending, &mut parents).await?;
    let Some(expected) = ended else {
        return Err(Error::BadRequest(
            "the backup is cut short (no end line); nothing was restored".to_owned(),
        ));
    };
    let expected: Counts = expected.into_iter().filter(|(_, n)| *n > 0).collect();
    if expected != counts {
        return Err(Error::BadRequest(format!(
            "the backup's rows do not add up (expected {expected:?}, read {counts:?}); nothing was restored"
        )));
    }
    // The account tree, once every account is there.
    for (id, parent) in parents {
        account::Entity::update_many()
            .col_expr(account::Column::ParentId, Expr::value(parent))
            .filter(account::Column::TenantId.eq(new_tenant))
            .filter(account::Column::Id.eq(id))
            .exec(&tx)
            .await?;
    }
    crate::tenancy::usage::reset_stocks(&tx, new_tenant).await?;
    audit::write(
        &tx,
        &ctx,
        vec![AuditEntry::new(
            ObjectType::Tenant,
            new_tenant,
            AuditAction::Create,
            json!({"restored_from": header.slug, "exported_at": header.exported_at, "rows": counts}),
        )],
    )
    .await?;
    tx.commit().await?;
    crate::crm::search::reindex(db, Some(new_tenant)).await?;
    Ok((new_tenant, counts))
}

/// Writes a run of rows of one table.
async fn write(
    tx: &DatabaseTransaction,
    ctx: &RequestContext,
    table: &str,
    rows: Vec<Value>,
    parents: &mut Vec<(Uuid, Uuid)>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if table == "contact_flags" {
        use crate::crm::privacy::{Flag, set_flag};
        for r in rows {
            let id: Uuid = serde_json::from_value(r["id"].clone()).map_err(internal)?;
            if r["legal_hold"] == Value::Bool(true) {
                set_flag(tx, ctx, id, Flag::LegalHold, true.into()).await?;
            }
            if let Some(at) = r["erased_at"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            {
                let at: chrono::DateTime<chrono::Utc> = at.into();
                set_flag(tx, ctx, id, Flag::ErasedAt, at.into()).await?;
            }
        }
        return Ok(());
    }
    macro_rules! insert {
        ($name:literal, $module:ident, $object:expr) => {
            if table == $name {
                let object: Option<ObjectType> = $object;
                let defs = match object {
                    Some(o) => crate::crm::custom_fields::definitions(tx, ctx.tenant_id, o).await?,
                    None => Vec::new(),
                };
                let keys = if defs.iter().any(|d| d.sensitive) {
                    sensitive::keys(tx, ctx).await?
                } else {
                    None
                };
                let mut models = Vec::with_capacity(rows.len());
                for mut row in rows {
                    if $name == "roles" && row.get("built_in") == Some(&Value::Bool(true)) {
                        // The new tenant has its own built-in roles.
                        continue;
                    }
                    if $name == "accounts" {
                        if let Some(p) = row
                            .get("parent_id")
                            .cloned()
                            .and_then(|p| serde_json::from_value::<Uuid>(p).ok())
                        {
                            let id = serde_json::from_value::<Uuid>(row["id"].clone())
                                .map_err(internal)?;
                            parents.push((id, p));
                        }
                        row["parent_id"] = Value::Null;
                    }
                    if let (Some(o), Some(custom)) = (object, row.get_mut("custom")) {
                        sensitive::seal(keys.as_deref(), ctx.tenant_id, o, &defs, custom, None)?;
                    }
                    if $name == "tenant_plugins"
                        && row["config"].to_string().contains("\"$secret\"")
                    {
                        let keyring = ctx.keyring.clone().ok_or_else(|| {
                            Error::Internal("restoring plugin secrets needs the keyring".to_owned())
                        })?;
                        let plugin_id = row["plugin_id"].as_str().unwrap_or_default().to_owned();
                        crate::plugins::secrets::from_backup(
                            &keyring,
                            tx,
                            (ctx.tenant_id, &plugin_id),
                            &mut row["config"],
                        )
                        .await?;
                    }
                    let m: $module::Model = serde_json::from_value(row).map_err(|e| {
                        Error::BadRequest(format!("a row of `{}` is damaged: {e}", $name))
                    })?;
                    models.push(m.into_active_model());
                }
                if !models.is_empty() {
                    $module::Entity::insert_many(models)
                        .exec_without_returning(tx)
                        .await?;
                }
                return Ok(());
            }
        };
    }
    each_table!(insert);
    Err(Error::BadRequest(format!(
        "the backup holds a table this version does not know: `{table}`"
    )))
}

/// The translation of a backup's ids into the new tenant's.
struct Translate {
    from: Uuid,
    to: Uuid,
}

impl Translate {
    /// The new id of `old`: derived from it and the new tenant, so the same
    /// old id always becomes the same new one.
    fn id(&self, old: Uuid) -> Uuid {
        if old == self.from {
            return self.to;
        }
        let mut h = Sha256::new();
        h.update(self.to.as_bytes());
        h.update(old.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::new_v8(bytes)
    }

    /// Translates every id in `v`.
    fn apply(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if s.len() == 36
                    && let Ok(old) = Uuid::parse_str(s)
                {
                    *s = self.id(old).to_string();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.apply(i)),
            Value::Object(map) => map.values_mut().for_each(|i| self.apply(i)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_translate_alike_everywhere_and_the_tenant_to_the_new_one() {
        let t = Translate {
            from: Uuid::from_u128(1),
            to: Uuid::from_u128(2),
        };
        let a = Uuid::from_u128(77).to_string();
        let mut v = json!({"id": a, "tenant_id": Uuid::from_u128(1).to_string(),
                           "custom": {"ref": a, "list": [a, "not an id"]}, "n": 3});
        t.apply(&mut v);
        assert_eq!(v["tenant_id"], Uuid::from_u128(2).to_string());
        assert_ne!(v["id"], a);
        assert_eq!(v["id"], v["custom"]["ref"]);
        assert_eq!(v["custom"]["list"][0], v["id"]);
        assert_eq!(v["custom"]["list"][1], "not an id");
        assert_eq!(v["n"], 3);
    }
}
