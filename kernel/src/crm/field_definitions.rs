//! Managing custom field definitions, and the JSON Schema of each object
//! (built-in fields plus the tenant's custom fields).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};
use serde_json::{Value, json};
use sha2::Digest;
use uuid::Uuid;

use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::crm::custom_fields::{self, CustomField, CustomFieldInput, FieldDef};
use crate::db::dialect::Dialect;
use crate::entities::custom_field;
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};

fn to_row(
    def: &FieldDef,
    input: &CustomFieldInput,
    ctx: &RequestContext,
    existing: Option<&custom_field::Model>,
) -> custom_field::Model {
    let now = crate::clock::now();
    custom_field::Model {
        id: def.id,
        tenant_id: ctx.tenant_id,
        object_type: input.object_type.as_str().to_owned(),
        key: def.key.clone(),
        label: def.label.clone(),
        field_type: def.field_type.as_str().to_owned(),
        required: def.required,
        is_unique: def.unique,
        default_value: def.default.clone(),
        options: json!(def.options),
        min_value: def.min.map(|d| d.normalize().to_string()),
        max_value: def.max.map(|d| d.normalize().to_string()),
        pattern: input.pattern.clone(),
        reference_type: def.reference_type.map(|t| t.as_str().to_owned()),
        position: input.position,
        created_at: existing.map(|e| e.created_at).unwrap_or(now),
        updated_at: now,
        version: existing.map(|e| e.version + 1).unwrap_or(1),
        sensitive: def.sensitive,
        blind_index: def.blind_index,
    }
}

async fn load<C: ConnectionTrait>(
    db: &C,
    ctx: &RequestContext,
    id: Uuid,
) -> Result<custom_field::Model> {
    custom_field::Entity::find_by_id(id)
        .filter(custom_field::Column::TenantId.eq(ctx.tenant_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("custom field"))
}

/// The definitions of the tenant, optionally of one object type.
pub async fn list(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: Option<ObjectType>,
) -> Result<Vec<CustomField>> {
    ctx.require(ObjectType::CustomField, Action::Read)?;
    let mut q =
        custom_field::Entity::find().filter(custom_field::Column::TenantId.eq(ctx.tenant_id));
    if let Some(o) = object {
        q = q.filter(custom_field::Column::ObjectType.eq(o.as_str()));
    }
    Ok(q.order_by_asc(custom_field::Column::ObjectType)
        .order_by_asc(custom_field::Column::Position)
        .order_by_asc(custom_field::Column::Key)
        .all(db)
        .await?
        .into_iter()
        .map(CustomField::from_model)
        .collect())
}

pub async fn get(db: &DatabaseConnection, ctx: &RequestContext, id: Uuid) -> Result<CustomField> {
    ctx.require(ObjectType::CustomField, Action::Read)?;
    Ok(CustomField::from_model(load(db, ctx, id).await?))
}

/// Defines a new custom field. Existing records are not rewritten: a
/// required field applies to writes from now on.
pub async fn create(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    input: CustomFieldInput,
) -> Result<CustomField> {
    ctx.require(ObjectType::CustomField, Action::ManageSettings)?;
    let def = custom_fields::check_definition(&input, Uuid::now_v7()).map_err(Error::Validation)?;
    let tx = crate::db::write_tx(db).await?;
    let row = to_row(&def, &input, ctx, None);
    custom_field::ActiveModel::from(row.clone())
        .insert(&tx)
        .await
        .map_err(|e| {
            if crate::db::is_unique_violation(&e) {
                Error::field(
                    "key",
                    "not_unique",
                    format!(
                        "{} already has a custom field `{}`",
                        input.object_type.as_str(),
                        input.key
                    ),
                )
            } else {
                e.into()
            }
        })?;
    ensure_index(&tx, input.object_type, &def).await?;
    let out = CustomField::from_model(row);
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::CustomField,
            def.id,
            AuditAction::Create,
            json!({"after": out}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// An index on `(tenant_id, value, id)` for the field's SQL expression
/// (`(tenant_id, object_key, value, id)` for custom objects' records), so
/// filters on the field, unique checks, and pages sorted by id within a
/// filter are index look-ups. One index serves every tenant using the same
/// key and type; it is kept when a definition is deleted (another tenant
/// may use it).
pub(crate) async fn ensure_index<C: ConnectionTrait>(
    db: &C,
    object: ObjectType,
    def: &FieldDef,
) -> Result<()> {
    // Lists cannot be B-tree indexed, and long text could exceed PostgreSQL's
    // index entry limit (about 2.7 kB).
    // Encrypted values are never compared in SQL except through the blind
    // index, which equality on the JSON member serves without an index here.
    if def.sensitive
        || matches!(
            def.field_type,
            custom_fields::FieldType::MultiSelect | custom_fields::FieldType::LongText
        )
    {
        return Ok(());
    }
    let kind = def.json_kind();
    let expr = Dialect(db.get_database_backend()).custom_value(&def.key, kind);
    let table = object.table();
    // Keys are up to 63 characters, as are PostgreSQL identifiers: name the
    // index by a digest of what it covers rather than risk truncation.
    let digest = sha2::Sha256::digest(format!("{table}/{}/{kind:?}", def.key).as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let leading = match object {
        ObjectType::CustomObject => "tenant_id, object_key",
        _ => "tenant_id",
    };
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS ix_cf_{table}_{name} ON {table} ({leading}, ({expr}), id)"
    );
    db.execute_unprepared(&sql).await?;
    Ok(())
}

/// Redefines a field. Object type, key and field type are fixed: changing
/// them would silently reinterpret stored values.
pub async fn update(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    input: CustomFieldInput,
    expected_version: i64,
) -> Result<CustomField> {
    ctx.require(ObjectType::CustomField, Action::ManageSettings)?;
    let tx = crate::db::write_tx(db).await?;
    let existing = load(&tx, ctx, id).await?;
    if existing.version != expected_version {
        return Err(Error::PreconditionFailed {
            current: existing.version,
        });
    }
    let mut fixed = Vec::new();
    if existing.object_type != input.object_type.as_str() {
        fixed.push("object_type");
    }
    if existing.key != input.key {
        fixed.push("key");
    }
    if existing.field_type != input.field_type.as_str() {
        fixed.push("field_type");
    }
    if existing.reference_type.as_deref() != input.reference_type.map(ObjectType::as_str) {
        fixed.push("reference_type");
    }
    // Changing these would mean re-encrypting or decrypting stored values.
    if existing.sensitive != input.sensitive {
        fixed.push("sensitive");
    }
    if existing.blind_index != input.blind_index {
        fixed.push("blind_index");
    }
    if !fixed.is_empty() {
        return Err(Error::Validation(
            fixed
                .into_iter()
                .map(|f| {
                    crate::error::FieldError::new(f, "immutable", "fixed once the field is created")
                })
                .collect(),
        ));
    }
    let def = custom_fields::check_definition(&input, id).map_err(Error::Validation)?;
    let row = to_row(&def, &input, ctx, Some(&existing));
    let written = crate::crm::records::update_if_version(
        &tx,
        ctx,
        id,
        expected_version,
        custom_field::ActiveModel::from(row.clone()),
    )
    .await?;
    if !written {
        return Err(Error::PreconditionFailed {
            current: expected_version + 1,
        });
    }
    let (before, after) = (
        CustomField::from_model(existing),
        CustomField::from_model(row),
    );
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::CustomField,
            id,
            AuditAction::Update,
            audit::diff(
                &serde_json::to_value(&before).unwrap_or_default(),
                &serde_json::to_value(&after).unwrap_or_default(),
            ),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes a definition and removes its values from every record, in one
/// transaction.
pub async fn delete(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<()> {
    ctx.require(ObjectType::CustomField, Action::ManageSettings)?;
    let tx = crate::db::write_tx(db).await?;
    let existing = load(&tx, ctx, id).await?;
    if expected_version.is_some_and(|v| v != existing.version) {
        return Err(Error::PreconditionFailed {
            current: existing.version,
        });
    }
    let object = ObjectType::parse(&existing.object_type)
        .ok_or_else(|| Error::Internal("bad object type".into()))?;
    let backend = tx.get_database_backend();
    let dialect = Dialect(backend);
    let sql = format!(
        "UPDATE {} SET custom = {} WHERE tenant_id = {}",
        object.table(),
        dialect.custom_without(&existing.key),
        crate::db::dialect::param(backend, 1)
    );
    tx.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        vec![ctx.tenant_id.into()],
    ))
    .await?;
    custom_field::Entity::delete_many()
        .filter(custom_field::Column::Id.eq(id))
        .filter(custom_field::Column::TenantId.eq(ctx.tenant_id))
        .exec(&tx)
        .await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::CustomField,
            id,
            AuditAction::Delete,
            json!({"before": CustomField::from_model(existing)}),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The JSON Schema (draft 2020-12) of an object's writable fields: the
/// built-in fields from the code (schemars) with `custom` described by the
/// tenant's definitions.
pub async fn object_schema(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    object: ObjectType,
) -> Result<Value> {
    ctx.require(object, Action::Read)?;
    let mut schema = match object {
        ObjectType::Contact => {
            serde_json::to_value(schemars::schema_for!(crate::crm::contacts::ContactInput))
        }
        ObjectType::Account => {
            serde_json::to_value(schemars::schema_for!(crate::crm::accounts::AccountInput))
        }
        ObjectType::Deal => {
            serde_json::to_value(schemars::schema_for!(crate::crm::deals::DealInput))
        }
        ObjectType::Activity => {
            serde_json::to_value(schemars::schema_for!(crate::crm::activities::ActivityInput))
        }
        _ => return Err(Error::NotFound("schema")),
    }
    .map_err(|e| Error::Internal(e.to_string()))?;
    let defs = custom_fields::definitions(db, ctx.tenant_id, object).await?;
    let properties: serde_json::Map<String, Value> = defs
        .iter()
        .map(|d| (d.key.clone(), d.json_schema()))
        .collect();
    let required: Vec<&str> = defs
        .iter()
        .filter(|d| d.required && d.default.is_none())
        .map(|d| d.key.as_str())
        .collect();
    let custom = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("custom".to_owned(), custom);
    }
    Ok(schema)
}
