//! Custom objects: record types a tenant or a plugin defines (a real-estate
//! `listing`, a healthcare `appointment`), with fields of the same types
//! and checks as custom fields, and records that get the built-in types'
//! treatment: tenant and record scope, validation, optimistic versions,
//! list filters, sort and cursor paging on any field, encrypted sensitive
//! fields, the audit trail, and plugin hooks.
//!
//! Every field of a custom object is a custom field: records carry their
//! values in `custom`, and lists filter and sort as `custom.KEY`.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::custom_fields::{self, CustomFieldInput, FieldDef};
use crate::crm::listing::{FieldSpec, Kind, ListQuery};
use crate::crm::records::{self, Page};
use crate::crm::sensitive;
use crate::db::dialect::Dialect;
use crate::entities::{custom_object, object_record};
use crate::error::{Error, FieldError, Result};
use crate::permissions::{Action, ObjectType};
use crate::plugins::hooks::{self, Op};

/// Built-in fields of every custom object's records.
const FIELDS: &[FieldSpec] = &[
    FieldSpec::new("id", Kind::Uuid).required(),
    FieldSpec::new("owner_id", Kind::Uuid),
    FieldSpec::new("created_at", Kind::Timestamp).required(),
    FieldSpec::new("updated_at", Kind::Timestamp).required(),
];

/// Names that would shadow a built-in record type or route.
const RESERVED: &[&str] = &[
    "contact",
    "contacts",
    "account",
    "accounts",
    "deal",
    "deals",
    "activity",
    "activities",
    "pipeline",
    "user",
    "role",
    "team",
    "tenant",
    "plugin",
    "object",
    "objects",
    "custom_object",
];

/// A custom object's definition, as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectInput {
    pub label: String,
    pub plural_label: String,
    /// Field definitions as `POST /api/v1/custom-fields` takes them, without
    /// `object_type`. Existing fields keep their type; new ones are added;
    /// fields left out are kept (their values too).
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<Value>,
}

/// A custom object as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObjectOut {
    pub key: String,
    pub label: String,
    pub plural_label: String,
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn out(m: &custom_object::Model) -> ObjectOut {
    ObjectOut {
        key: m.key.clone(),
        label: m.label.clone(),
        plural_label: m.plural_label.clone(),
        fields: serde_json::from_value(m.fields.clone()).unwrap_or_default(),
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 40
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&key);
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            "key",
            "invalid_value",
            "lower-case letters, digits and `_`, starting with a letter, at most 40, not a built-in type",
        ))
    }
}

/// Parses field declarations into definitions, naming each bad one.
fn parse_fields(fields: &[Value]) -> Result<Vec<(CustomFieldInput, FieldDef)>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let mut f = f.clone();
        if let Some(o) = f.as_object_mut() {
            o.insert("object_type".to_owned(), json!("custom_object"));
        }
        let input: CustomFieldInput = match serde_json::from_value(f) {
            Ok(x) => x,
            Err(e) => {
                errors.push(FieldError::new(
                    format!("fields[{i}]"),
                    "invalid_value",
                    e.to_string(),
                ));
                continue;
            }
        };
        match custom_fields::check_definition(&input, Uuid::nil()) {
            Ok(def) => {
                if out
                    .iter()
                    .any(|(_, d): &(CustomFieldInput, FieldDef)| d.key == def.key)
                {
                    errors.push(FieldError::new(
                        format!("fields[{i}].key"),
                        "not_unique",
                        "two fields have this key",
                    ));
                } else {
                    out.push((input, def));
                }
            }
            Err(errs) => errors.extend(errs.into_iter().map(|mut e| {
                e.field = format!("fields[{i}].{}", e.field);
                e
            })),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Validation(errors))
    }
}

/// The field definitions of a tenant's object, or 404.
pub async fn definition<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    key: &str,
) -> Result<(custom_object::Model, Vec<FieldDef>)> {
    let m = custom_object::Entity::find()
        .filter(custom_object::Column::TenantId.eq(tenant_id))
        .filter(custom_object::Column::Key.eq(key))
        .one(db)
        .await?
        .ok_or(Error::NotFound("object"))?;
    let fields: Vec<Value> = serde_json::from_value(m.fields.clone()).unwrap_or_default();
    let defs = parse_fields(&fields)?.into_iter().map(|(_, d)| d).collect();
    Ok((m, defs))
}

/// The tenant's custom objects.
pub async fn list_objects(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<ObjectOut>> {
    ctx.require(ObjectType::CustomObject, Action::Read)?;
    Ok(custom_object::Entity::find()
        .filter(custom_object::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(custom_object::Column::Key)
        .all(db)
        .await?
        .iter()
        .map(out)
        .collect())
}

/// One custom object.
pub async fn get_object(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
) -> Result<ObjectOut> {
    ctx.require(ObjectType::CustomObject, Action::Read)?;
    Ok(out(&definition(db, ctx.tenant_id, key).await?.0))
}

/// Defines a custom object, or adds to one: new fields are added, existing
/// fields keep their key and type (a changed type is refused), and fields
/// left out are kept.
pub async fn put_object(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    input: ObjectInput,
) -> Result<ObjectOut> {
    ctx.require(ObjectType::CustomField, Action::ManageSettings)?;
    check_key(key)?;
    if input.label.trim().is_empty() || input.plural_label.trim().is_empty() {
        return Err(Error::field("label", "required", "name the object"));
    }
    let parsed = parse_fields(&input.fields)?;
    // Outside the tenant's transaction: its role does not own the table.
    // Creating an index that exists is a no-op.
    for (_, def) in &parsed {
        crate::crm::field_definitions::ensure_index(db, ObjectType::CustomObject, def).await?;
    }
    let tx = crate::db::tenant_tx(db, ctx).await?;
    crate::db::lock_scope(&tx, ctx.tenant_id, "custom_objects").await?;
    let existing = custom_object::Entity::find()
        .filter(custom_object::Column::TenantId.eq(ctx.tenant_id))
        .filter(custom_object::Column::Key.eq(key))
        .one(&tx)
        .await?;
    let now = crate::clock::now();
    let mut fields: Vec<Value> = existing
        .as_ref()
        .and_then(|e| serde_json::from_value(e.fields.clone()).ok())
        .unwrap_or_default();
    for (i, (f, def)) in parsed.iter().enumerate() {
        let mut v = serde_json::to_value(f).map_err(|e| Error::Internal(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("object_type");
        }
        match fields
            .iter()
            .position(|x| x.get("key").and_then(Value::as_str) == Some(def.key.as_str()))
        {
            Some(at) => {
                let old_type = fields[at].get("field_type").cloned();
                if old_type != v.get("field_type").cloned() {
                    return Err(Error::field(
                        format!("fields[{i}].field_type"),
                        "fixed",
                        "a field's type is fixed once created",
                    ));
                }
                fields[at] = v;
            }
            None => fields.push(v),
        }
    }
    let saved = match existing {
        Some(e) => {
            let before = out(&e);
            let mut a: custom_object::ActiveModel = e.into();
            a.label = Set(input.label.trim().to_owned());
            a.plural_label = Set(input.plural_label.trim().to_owned());
            a.fields = Set(json!(fields));
            a.updated_at = Set(now);
            let saved = a.update(&tx).await?;
            audit::write(
                &tx,
                ctx,
                vec![AuditEntry::new(
                    ObjectType::CustomField,
                    saved.id,
                    AuditAction::Update,
                    audit::diff(&json!(before), &json!(out(&saved))),
                )],
            )
            .await?;
            saved
        }
        None => {
            let saved = custom_object::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                key: Set(key.to_owned()),
                label: Set(input.label.trim().to_owned()),
                plural_label: Set(input.plural_label.trim().to_owned()),
                fields: Set(json!(fields)),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&tx)
            .await?;
            audit::write(
                &tx,
                ctx,
                vec![AuditEntry::new(
                    ObjectType::CustomField,
                    saved.id,
                    AuditAction::Create,
                    json!({"after": out(&saved)}),
                )],
            )
            .await?;
            saved
        }
    };
    tx.commit().await?;
    Ok(out(&saved))
}

/// A record of a custom object as the API returns it.
fn record_json(m: &object_record::Model) -> Value {
    json!({
        "id": m.id,
        "object": m.object_key,
        "owner_id": m.owner_id,
        "custom": m.custom,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "version": m.version,
    })
}

/// What a client sends for a record.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// Field values by key.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: Value,
}

/// Records the caller may reach: the tenant's, of this object, within its
/// record scope.
async fn visible<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    key: &str,
) -> Result<sea_orm::Select<object_record::Entity>> {
    let mut q = object_record::Entity::find()
        .filter(object_record::Column::TenantId.eq(ctx.tenant_id))
        .filter(object_record::Column::ObjectKey.eq(key));
    if let Some(owners) = records::reachable_owners(db, ctx, ObjectType::CustomObject).await? {
        q = q.filter(object_record::Column::OwnerId.is_in(owners));
    }
    Ok(q)
}

async fn load<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    key: &str,
    id: Uuid,
) -> Result<object_record::Model> {
    visible(db, ctx, key)
        .await?
        .filter(object_record::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("record"))
}

/// Records as the caller may see them (sensitive values revealed, each read
/// audited).
async fn reveal(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    rows: &[object_record::Model],
    audit_reads: bool,
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(rows.len());
    let mut entries = Vec::new();
    let mut keys = None;
    for m in rows {
        let mut v = record_json(m);
        if sensitive::any_sealed(&v) {
            if keys.is_none() {
                keys = sensitive::keys_covering(db, ctx, v.get("custom")).await?;
            }
            let revealed =
                sensitive::reveal(keys.as_deref(), ctx, ObjectType::CustomObject, &mut v)?;
            if audit_reads && !revealed.is_empty() {
                entries.push(AuditEntry::new(
                    ObjectType::CustomObject,
                    m.id,
                    AuditAction::Read,
                    json!({"object": m.object_key, "fields": revealed}),
                ));
            }
        }
        ctx.policy.redact(ObjectType::CustomObject, &mut v);
        out.push(v);
    }
    if !entries.is_empty() {
        audit::record(db, ctx, entries).await?;
    }
    Ok(out)
}

/// The record a write starts from: its values in plaintext (to validate
/// and merge) and as stored (to keep unchanged ciphertext).
struct Previous<'a> {
    id: Uuid,
    plain: &'a Value,
    stored: &'a Value,
}

/// Checks and seals a record's values; returns the owner asked for and the
/// `custom` to store.
async fn checked_values(
    tx: &sea_orm::DatabaseTransaction,
    ctx: &RequestContext,
    defs: &[FieldDef],
    key: &str,
    previous: Option<Previous<'_>>,
    input: RecordInput,
) -> Result<(Option<Uuid>, Value)> {
    let (op, id) = match &previous {
        Some(p) => (Op::Update, Some(p.id)),
        None => (Op::Create, None),
    };
    // Plugins' before-write hooks see and may patch the input.
    let mut after = serde_json::to_value(&input).map_err(|e| Error::Internal(e.to_string()))?;
    let target = hooks::Target::custom(key);
    if hooks::subscribed(tx, ctx, &target, true).await? {
        let before = previous.as_ref().map(|p| json!({"custom": p.plain}));
        hooks::before_write(tx, ctx, &target, op, id, before.as_ref(), &mut after).await?;
    }
    let input: RecordInput = records::from_json(after)?;
    if !input.custom.is_object() && !input.custom.is_null() {
        return Err(Error::field("custom", "invalid_type", "expected an object"));
    }
    // The values sent over the stored ones (a JSON merge patch), checked
    // whole, as a create checks what it is sent.
    let mut whole = previous
        .as_ref()
        .map(|p| p.plain.clone())
        .unwrap_or_else(|| json!({}));
    if input.custom.is_object() {
        records::merge_patch(&mut whole, &input.custom);
    }
    let (values, mut errors) = custom_fields::check_values(defs, &whole, previous.is_none());
    // Unique and reference values are checked where they change.
    let changed: serde_json::Map<String, Value> = values
        .iter()
        .filter(|(k, v)| previous.as_ref().and_then(|p| p.plain.get(k.as_str())) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    errors.extend(
        custom_fields::check_unique_and_references(
            tx,
            ctx,
            (ObjectType::CustomObject, Some(key)),
            defs,
            &changed,
            id,
        )
        .await?,
    );
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let mut merged = Value::Object(values);
    let keys = sensitive::keys(tx, ctx).await?;
    sensitive::seal(
        keys.as_deref(),
        ctx.tenant_id,
        ObjectType::CustomObject,
        defs,
        &mut merged,
        previous.as_ref().map(|p| p.stored),
    )?;
    Ok((input.owner_id, merged))
}

/// Creates a record of a custom object.
pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    input: RecordInput,
) -> Result<Value> {
    ctx.require(ObjectType::CustomObject, Action::Create)?;
    crate::tenancy::storage::check(ctx)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let (_, defs) = definition(&tx, ctx.tenant_id, key).await?;
    let (owner, custom) = checked_values(&tx, ctx, &defs, key, None, input).await?;
    let owner = owner.or(ctx.user_id);
    if let Some(owners) = records::reachable_owners(&tx, ctx, ObjectType::CustomObject).await?
        && !owner.is_some_and(|o| owners.contains(&o))
    {
        return Err(Error::field(
            "owner_id",
            "out_of_scope",
            "you may create records only for owners within your record scope",
        ));
    }
    let now = crate::clock::now();
    let m = object_record::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id),
        object_key: Set(key.to_owned()),
        owner_id: Set(owner),
        custom: Set(custom),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&tx)
    .await?;
    finish(tx, ctx, key, None, Some(&m)).await?;
    Ok(reveal(db, ctx, std::slice::from_ref(&m), false)
        .await?
        .remove(0))
}

/// One record.
pub async fn get(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    id: Uuid,
) -> Result<Value> {
    ctx.require(ObjectType::CustomObject, Action::Read)?;
    definition(db, ctx.tenant_id, key).await?;
    let m = load(db, ctx, key, id).await?;
    Ok(reveal(db, ctx, std::slice::from_ref(&m), true)
        .await?
        .remove(0))
}

/// One record with its sensitive values still sealed, for callers that
/// drop them (plugin panels): no read of a protected field happens, so
/// none is audited.
pub async fn get_sealed(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    id: Uuid,
) -> Result<Value> {
    ctx.require(ObjectType::CustomObject, Action::Read)?;
    definition(db, ctx.tenant_id, key).await?;
    Ok(record_json(&load(db, ctx, key, id).await?))
}

/// Changes a record's values (those sent; others stay) at `version`.
pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    id: Uuid,
    input: RecordInput,
    version: i64,
) -> Result<Value> {
    ctx.require(ObjectType::CustomObject, Action::Update)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    let (_, defs) = definition(&tx, ctx.tenant_id, key).await?;
    let existing = load(&tx, ctx, key, id).await?;
    if existing.version != version {
        return Err(Error::VersionConflict {
            current: existing.version,
        });
    }
    let keys = sensitive::keys_covering(&tx, ctx, Some(&existing.custom)).await?;
    let mut plain = existing.custom.clone();
    sensitive::open_all(
        keys.as_deref(),
        ctx.tenant_id,
        ObjectType::CustomObject,
        &mut plain,
    )?;
    let previous = Previous {
        id,
        plain: &plain,
        stored: &existing.custom,
    };
    let (owner, stored) = checked_values(&tx, ctx, &defs, key, Some(previous), input).await?;
    let now = crate::clock::now();
    let written = object_record::Entity::update_many()
        .col_expr(object_record::Column::Custom, Expr::value(stored.clone()))
        .col_expr(
            object_record::Column::OwnerId,
            Expr::value(owner.or(existing.owner_id)),
        )
        .col_expr(object_record::Column::UpdatedAt, Expr::value(now))
        .col_expr(object_record::Column::Version, Expr::value(version + 1))
        .filter(object_record::Column::TenantId.eq(ctx.tenant_id))
        .filter(object_record::Column::Id.eq(id))
        .filter(object_record::Column::Version.eq(version))
        .exec(&tx)
        .await?;
    if written.rows_affected != 1 {
        return Err(Error::VersionConflict {
            current: version + 1,
        });
    }
    let m = object_record::Model {
        custom: stored,
        owner_id: owner.or(existing.owner_id),
        updated_at: now,
        version: version + 1,
        ..existing.clone()
    };
    finish(tx, ctx, key, Some(&existing), Some(&m)).await?;
    Ok(reveal(db, ctx, std::slice::from_ref(&m), false)
        .await?
        .remove(0))
}

/// Deletes a record.
pub async fn delete(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    id: Uuid,
) -> Result<()> {
    ctx.require(ObjectType::CustomObject, Action::Delete)?;
    let tx = crate::db::tenant_tx(db, ctx).await?;
    definition(&tx, ctx.tenant_id, key).await?;
    let existing = load(&tx, ctx, key, id).await?;
    let target = hooks::Target::custom(key);
    if hooks::subscribed(&tx, ctx, &target, true).await? {
        let mut none = Value::Null;
        let stored = record_json(&existing);
        hooks::before_write(
            &tx,
            ctx,
            &target,
            Op::Delete,
            Some(id),
            Some(&stored),
            &mut none,
        )
        .await?;
    }
    object_record::Entity::delete_many()
        .filter(object_record::Column::TenantId.eq(ctx.tenant_id))
        .filter(object_record::Column::Id.eq(id))
        .exec(&tx)
        .await?;
    finish(tx, ctx, key, Some(&existing), None).await
}

/// After a record's row was written: its audit entry, its after-write
/// hooks (queued in the same transaction), the commit, and a nudge to the
/// job runner. `before` is absent on create, `after` on delete.
async fn finish(
    tx: sea_orm::DatabaseTransaction,
    ctx: &RequestContext,
    key: &str,
    before: Option<&object_record::Model>,
    after: Option<&object_record::Model>,
) -> Result<()> {
    let (id, op, action, changes) = match (before, after) {
        (None, Some(a)) => (
            a.id,
            Op::Create,
            AuditAction::Create,
            json!({"object": key, "after": record_json(a)}),
        ),
        (Some(b), Some(a)) => (
            a.id,
            Op::Update,
            AuditAction::Update,
            audit::diff(&record_json(b), &record_json(a)),
        ),
        (Some(b), None) => (
            b.id,
            Op::Delete,
            AuditAction::Delete,
            json!({"object": key, "before": record_json(b)}),
        ),
        (None, None) => return Err(Error::Internal("a write with no record".to_owned())),
    };
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::CustomObject,
            id,
            action,
            changes,
        )],
    )
    .await?;
    hooks::queue_after_write(
        &tx,
        ctx,
        &hooks::Target::custom(key),
        op,
        id,
        before.map(record_json),
        after.map(record_json),
    )
    .await?;
    tx.commit().await?;
    records::kick_jobs(ctx);
    Ok(())
}

/// A page of records: `filter=custom.KEY:OP:VALUE`, `sort=custom.KEY`,
/// `limit`, `cursor`, `count` as for the built-in types.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    key: &str,
    raw_query: Option<&str>,
) -> Result<Page<Value>> {
    ctx.require(ObjectType::CustomObject, Action::Read)?;
    let (_, defs) = definition(db, ctx.tenant_id, key).await?;
    if defs.iter().any(|d| d.sensitive) && ListQuery::mentions_custom(raw_query) {
        // Encrypted values cannot be compared in SQL; blind-index filters
        // on custom objects are not supported yet.
        let sensitive_keys: Vec<String> = defs
            .iter()
            .filter(|d| d.sensitive)
            .map(|d| format!("custom.{}", d.key))
            .collect();
        for (k, v) in form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes()) {
            if (k == "filter" || k == "sort")
                && sensitive_keys
                    .iter()
                    .any(|s| v.trim_start_matches('-').starts_with(s.as_str()))
            {
                return Err(Error::field(
                    k.into_owned(),
                    "invalid_value",
                    "encrypted fields cannot be filtered or sorted on",
                ));
            }
        }
    }
    let dialect = Dialect(db.get_database_backend());
    let query = ListQuery::parse(raw_query, FIELDS, &defs, "-created_at")?;
    let filters = query.filter_condition(dialect)?;
    let base = visible(db, ctx, key).await?;
    let (rows, next_cursor, total) =
        records::page_of(db, base, filters, &query, |m| (record_json(m), m.id)).await?;
    Ok(Page {
        data: reveal(db, ctx, &rows, true).await?,
        next_cursor,
        total,
    })
}
