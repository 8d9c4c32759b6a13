//! Custom fields: definitions a tenant adds to contacts, accounts, deals and
//! activities, and the validation every write of their values goes through.
//!
//! Values live in the record's JSON `custom` column, keyed by the field key.
//! Canonical storage per type: text-like types as strings, integers as JSON
//! integers, decimals and currency amounts as decimal strings (exact, never
//! floats), dates as `YYYY-MM-DD`, datetimes as RFC 3339 UTC at whole
//! seconds, booleans as booleans, multi selects as arrays of option values,
//! references as record ids.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::dialect::JsonKind;
use crate::entities::custom_field;
use crate::error::{FieldError, Result};
use crate::permissions::ObjectType;

/// The type of a custom field.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    Integer,
    Decimal,
    Currency,
    Date,
    Datetime,
    Boolean,
    SingleSelect,
    MultiSelect,
    Email,
    Phone,
    Url,
    Reference,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Currency => "currency",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Boolean => "boolean",
            FieldType::SingleSelect => "single_select",
            FieldType::MultiSelect => "multi_select",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Reference => "reference",
        }
    }

    fn parse(s: &str) -> Option<FieldType> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }

    /// Types whose `min`/`max` bound the numeric value.
    fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Integer | FieldType::Decimal | FieldType::Currency
        )
    }

    /// Types whose `min`/`max` bound the text length.
    fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::LongText
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
        )
    }
}

/// Longest value of a one-line custom field, in characters. Such values are
/// indexed, and a PostgreSQL B-tree entry holds at most about 2.7 kB (four
/// bytes a character at worst).
pub const MAX_TEXT: usize = 500;

/// Longest `long_text` value, in characters (not indexed).
pub const MAX_LONG_TEXT: usize = 100_000;

/// A custom field definition, parsed and ready to validate values.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub id: Uuid,
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
    pub required: bool,
    pub unique: bool,
    pub default: Option<Value>,
    pub options: Vec<String>,
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
    pub pattern: Option<Regex>,
    pub reference_type: Option<ObjectType>,
    /// Values are encrypted at rest and their reads audited.
    pub sensitive: bool,
    /// A sensitive field that keeps an exact-match blind index.
    pub blind_index: bool,
}

impl FieldDef {
    /// Parses a stored definition. Stored rows were validated on write, so a
    /// failure here means the database was edited by hand.
    pub fn from_model(m: &custom_field::Model) -> Result<FieldDef> {
        let bad = |what: &str| {
            crate::error::Error::Internal(format!("custom field {} has an invalid {what}", m.key))
        };
        let field_type = FieldType::parse(&m.field_type).ok_or_else(|| bad("type"))?;
        let decimal = |v: &Option<String>| -> Result<Option<Decimal>> {
            v.as_deref()
                .map(|s| Decimal::from_str(s).map_err(|_| bad("bound")))
                .transpose()
        };
        Ok(FieldDef {
            id: m.id,
            key: m.key.clone(),
            label: m.label.clone(),
            field_type,
            required: m.required,
            unique: m.is_unique,
            default: m.default_value.clone().filter(|v| !v.is_null()),
            options: serde_json::from_value(m.options.clone()).map_err(|_| bad("options"))?,
            min: decimal(&m.min_value)?,
            max: decimal(&m.max_value)?,
            pattern: m
                .pattern
                .as_deref()
                .map(|p| Regex::new(&anchored(p)).map_err(|_| bad("pattern")))
                .transpose()?,
            reference_type: m.reference_type.as_deref().and_then(ObjectType::parse),
            sensitive: m.sensitive,
            blind_index: m.blind_index,
        })
    }

    /// How the value compares in SQL filters and sorts.
    pub fn json_kind(&self) -> JsonKind {
        match self.field_type {
            FieldType::Integer => JsonKind::Integer,
            FieldType::Decimal | FieldType::Currency => JsonKind::Decimal,
            FieldType::Boolean => JsonKind::Boolean,
            _ => JsonKind::Text,
        }
    }

    /// The JSON Schema of this field's value.
    pub fn json_schema(&self) -> Value {
        let mut s = match self.field_type {
            FieldType::Text | FieldType::LongText | FieldType::Phone => json!({"type": "string"}),
            FieldType::Email => json!({"type": "string", "format": "email"}),
            FieldType::Url => json!({"type": "string", "format": "uri"}),
            FieldType::Integer => json!({"type": "integer"}),
            FieldType::Decimal | FieldType::Currency => {
                json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "exact decimal as a string"})
            }
            FieldType::Date => json!({"type": "string", "format": "date"}),
            FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
            FieldType::Boolean => json!({"type": "boolean"}),
            FieldType::SingleSelect => json!({"type": "string", "enum": self.options}),
            FieldType::MultiSelect => {
                json!({"type": "array", "items": {"type": "string", "enum": self.options}, "uniqueItems": true})
            }
            FieldType::Reference => json!({"type": "string", "format": "uuid"}),
        };
        let obj = s.as_object_mut();
        if let Some(obj) = obj {
            obj.insert("title".into(), json!(self.label));
            if self.field_type == FieldType::Integer {
                if let Some(min) = self.min {
                    obj.insert(
                        "minimum".into(),
                        json!(min.to_string().parse::<i64>().unwrap_or(0)),
                    );
                }
                if let Some(max) = self.max {
                    obj.insert(
                        "maximum".into(),
                        json!(max.to_string().parse::<i64>().unwrap_or(0)),
                    );
                }
            } else if self.field_type.is_textual() {
                if let Some(min) = self.min {
                    obj.insert(
                        "minLength".into(),
                        json!(min.to_string().parse::<u64>().unwrap_or(0)),
                    );
                }
                if let Some(max) = self.max {
                    obj.insert(
                        "maxLength".into(),
                        json!(max.to_string().parse::<u64>().unwrap_or(0)),
                    );
                }
            }
            if let Some(p) = &self.pattern {
                obj.insert("pattern".into(), json!(p.as_str()));
            }
            if let Some(d) = &self.default {
                obj.insert("default".into(), d.clone());
            }
        }
        if !self.required {
            s = json!({"anyOf": [s, {"type": "null"}]});
        }
        s
    }

    /// Checks one value and returns its canonical form. `Null` is accepted
    /// here; whether the field may be empty is checked by the caller.
    pub fn check(&self, value: &Value) -> std::result::Result<Value, FieldError> {
        let field = &self.key;
        let invalid = |expected: &str| {
            FieldError::new(
                field.as_str(),
                "invalid_type",
                format!("expected {expected}"),
            )
        };
        if value.is_null() {
            return Ok(Value::Null);
        }
        if let Some(s) = value.as_str() {
            let limit = if self.field_type == FieldType::LongText {
                MAX_LONG_TEXT
            } else {
                MAX_TEXT
            };
            if s.chars().count() > limit {
                return Err(FieldError::new(
                    field.as_str(),
                    "too_long",
                    format!("at most {limit} characters"),
                ));
            }
        }
        let canonical = match self.field_type {
            FieldType::Text | FieldType::LongText => {
                let s = value.as_str().ok_or_else(|| invalid("a string"))?;
                if self.field_type == FieldType::Text && s.contains('\n') {
                    return Err(FieldError::new(
                        field.as_str(),
                        "invalid_value",
                        "text fields are one line; use long_text",
                    ));
                }
                Value::String(s.to_owned())
            }
            FieldType::Email => {
                let s = value
                    .as_str()
                    .ok_or_else(|| invalid("an email address"))?
                    .trim()
                    .to_lowercase();
                if !is_email(&s) {
                    return Err(FieldError::new(
                        field.as_str(),
                        "invalid_format",
                        "not a valid email address",
                    ));
                }
                Value::String(s)
            }
            FieldType::Phone => {
                let s = value
                    .as_str()
                    .ok_or_else(|| invalid("a phone number"))?
                    .trim();
                let digits = s.chars().filter(char::is_ascii_digit).count();
                if !(4..=20).contains(&digits)
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_digit() || " +-().x".contains(c))
                {
                    return Err(FieldError::new(
                        field.as_str(),
                        "invalid_format",
                        "not a valid phone number",
                    ));
                }
                Value::String(s.to_owned())
            }
            FieldType::Url => {
                let s = value.as_str().ok_or_else(|| invalid("a URL"))?.trim();
                let rest = s
                    .strip_prefix("https://")
                    .or_else(|| s.strip_prefix("http://"));
                match rest {
                    Some(r)
                        if !r.is_empty()
                            && !r.starts_with('/')
                            && !r.contains(char::is_whitespace) => {}
                    _ => {
                        return Err(FieldError::new(
                            field.as_str(),
                            "invalid_format",
                            "not an http(s) URL",
                        ));
                    }
                }
                Value::String(s.to_owned())
            }
            FieldType::Integer => {
                let n = value.as_i64().ok_or_else(|| invalid("an integer"))?;
                Value::from(n)
            }
            FieldType::Decimal | FieldType::Currency => {
                let d = match value {
                    Value::String(s) => Decimal::from_str_exact(s.trim())
                        .map_err(|_| invalid("a decimal number"))?,
                    Value::Number(n) if n.is_i64() || n.is_u64() => {
                        Decimal::from_str_exact(&n.to_string())
                            .map_err(|_| invalid("a decimal number"))?
                    }
                    // A JSON float may already have lost digits; demand a string.
                    Value::Number(_) => {
                        return Err(invalid("a decimal as a string, e.g. \"12.50\""));
                    }
                    _ => return Err(invalid("a decimal number")),
                };
                if self.field_type == FieldType::Currency && d.scale() > 4 {
                    return Err(FieldError::new(
                        field.as_str(),
                        "invalid_value",
                        "at most 4 decimal places",
                    ));
                }
                Value::String(d.normalize().to_string())
            }
            FieldType::Date => {
                let s = value
                    .as_str()
                    .ok_or_else(|| invalid("a date (YYYY-MM-DD)"))?;
                let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| invalid("a date (YYYY-MM-DD)"))?;
                Value::String(d.format("%Y-%m-%d").to_string())
            }
            FieldType::Datetime => {
                let s = value
                    .as_str()
                    .ok_or_else(|| invalid("an RFC 3339 date-time"))?;
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| invalid("an RFC 3339 date-time"))?;
                let t = crate::clock::truncate(t.with_timezone(&Utc));
                Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            FieldType::Boolean => {
                Value::Bool(value.as_bool().ok_or_else(|| invalid("true or false"))?)
            }
            FieldType::SingleSelect => {
                let s = value
                    .as_str()
                    .ok_or_else(|| invalid("one of the options"))?;
                if !self.options.iter().any(|o| o == s) {
                    return Err(FieldError::new(
                        field.as_str(),
                        "invalid_option",
                        format!("`{s}` is not one of: {}", self.options.join(", ")),
                    ));
                }
                Value::String(s.to_owned())
            }
            FieldType::MultiSelect => {
                let items = value
                    .as_array()
                    .ok_or_else(|| invalid("a list of options"))?;
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for item in items {
                    let s = item.as_str().ok_or_else(|| invalid("a list of options"))?;
                    if !self.options.iter().any(|o| o == s) {
                        return Err(FieldError::new(
                            field.as_str(),
                            "invalid_option",
                            format!("`{s}` is not one of: {}", self.options.join(", ")),
                        ));
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_owned());
                    }
                }
                json!(out)
            }
            FieldType::Reference => {
                let s = value.as_str().ok_or_else(|| invalid("a record id"))?;
                let id = Uuid::parse_str(s).map_err(|_| invalid("a record id"))?;
                Value::String(id.to_string())
            }
        };
        self.check_bounds(&canonical)?;
        Ok(canonical)
    }

    fn check_bounds(&self, v: &Value) -> std::result::Result<(), FieldError> {
        let field = self.key.as_str();
        let measure = if self.field_type.is_numeric() {
            match v {
                Value::String(s) => Decimal::from_str(s).ok(),
                Value::Number(n) => n.as_i64().map(Decimal::from),
                _ => None,
            }
        } else if self.field_type.is_textual() {
            v.as_str().map(|s| Decimal::from(s.chars().count()))
        } else {
            None
        };
        if let Some(m) = measure {
            let what = if self.field_type.is_numeric() {
                "value"
            } else {
                "length"
            };
            if let Some(min) = self.min.filter(|min| m < *min) {
                return Err(FieldError::new(
                    field,
                    "too_small",
                    format!("{what} must be at least {min}"),
                ));
            }
            if let Some(max) = self.max.filter(|max| m > *max) {
                return Err(FieldError::new(
                    field,
                    "too_large",
                    format!("{what} must be at most {max}"),
                ));
            }
        }
        if let (Some(p), Some(s)) = (&self.pattern, v.as_str())
            && !p.is_match(s)
        {
            return Err(FieldError::new(
                field,
                "pattern_mismatch",
                format!("must match {}", p.as_str()),
            ));
        }
        Ok(())
    }
}

/// A minimal, deliberately strict address check: one `@`, a dotted domain, no
/// spaces. Deliverability is the mail system's business.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 253
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !s.contains(char::is_whitespace)
        && !domain.contains('@')
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Validates the `custom` object of a write against the definitions.
///
/// On create, absent fields take their default and required fields must end
/// up with a value. On update, `custom` is the merged object (the stored
/// values with the patch applied), so the same rules hold. Unknown keys are
/// rejected. Errors name `custom.<key>`.
///
/// Returns the canonical values that passed and the failures, so callers can
/// run their database checks on the former and report everything at once.
pub fn check_values(
    defs: &[FieldDef],
    custom: &Value,
    creating: bool,
) -> (Map<String, Value>, Vec<FieldError>) {
    let mut errors = Vec::new();
    let empty = Map::new();
    let given = match custom {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => {
            return (
                Map::new(),
                vec![FieldError::new(
                    "custom",
                    "invalid_type",
                    "expected an object of custom field values",
                )],
            );
        }
    };
    for key in given.keys() {
        if !defs.iter().any(|d| &d.key == key) {
            errors.push(FieldError::new(
                format!("custom.{key}"),
                "unknown_field",
                "no such custom field",
            ));
        }
    }
    let mut out = Map::new();
    for def in defs {
        let value = match given.get(&def.key) {
            Some(v) => v.clone(),
            None if creating => def.default.clone().unwrap_or(Value::Null),
            None => Value::Null,
        };
        match def.check(&value) {
            Ok(Value::Null) => {
                if def.required {
                    errors.push(FieldError::new(
                        format!("custom.{}", def.key),
                        "required",
                        format!("{} is required", def.label),
                    ));
                }
            }
            Ok(Value::Array(a)) if a.is_empty() && def.required => {
                errors.push(FieldError::new(
                    format!("custom.{}", def.key),
                    "required",
                    format!("{} is required", def.label),
                ));
            }
            Ok(v) => {
                out.insert(def.key.clone(), v);
            }
            Err(e) => errors.push(e.nested("custom")),
        }
    }
    (out, errors)
}

/// The parsed definitions of one object type, in display order.
pub async fn definitions<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    object: ObjectType,
) -> Result<Vec<FieldDef>> {
    custom_field::Entity::find()
        .filter(custom_field::Column::TenantId.eq(tenant_id))
        .filter(custom_field::Column::ObjectType.eq(object.as_str()))
        .order_by_asc(custom_field::Column::Position)
        .order_by_asc(custom_field::Column::Key)
        .all(db)
        .await?
        .iter()
        .map(FieldDef::from_model)
        .collect()
}

/// The request body that defines or redefines a custom field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldInput {
    /// `contact`, `account`, `deal` or `activity`. Fixed once created.
    pub object_type: ObjectType,
    /// Key in the record's `custom` object: lower case letters, digits and
    /// `_`, starting with a letter, at most 63 characters. Fixed once created.
    pub key: String,
    /// Name shown to users.
    pub label: String,
    /// Fixed once created.
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    /// No two records of the tenant may hold the same value.
    #[serde(default)]
    pub unique: bool,
    /// Value used when a new record leaves the field out.
    #[serde(default)]
    pub default: Option<Value>,
    /// Allowed values of select fields.
    #[serde(default)]
    pub options: Vec<String>,
    /// Lower bound: the value for numbers, the length for text.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[schemars(with = "Option<String>")]
    pub min: Option<Decimal>,
    /// Upper bound: the value for numbers, the length for text.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[schemars(with = "Option<String>")]
    pub max: Option<Decimal>,
    /// Regular expression the whole text value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// For references: the object type referred to.
    #[serde(default)]
    pub reference_type: Option<ObjectType>,
    /// Display order.
    #[serde(default)]
    pub position: i32,
    /// Encrypt values at rest (AES-256-GCM, per-tenant key) and audit every
    /// read. Encrypted fields cannot be unique, sorted or searched. Fixed
    /// once created.
    #[serde(default)]
    pub sensitive: bool,
    /// For sensitive fields: keep a blind index so `eq` filters work.
    /// Fixed once created.
    #[serde(default)]
    pub blind_index: bool,
}

/// Checks a definition and returns it parsed.
pub fn check_definition(
    input: &CustomFieldInput,
    id: Uuid,
) -> std::result::Result<FieldDef, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !input.object_type.has_custom_fields() && input.object_type != ObjectType::CustomObject {
        errors.push(FieldError::new(
            "object_type",
            "invalid_value",
            "custom fields exist on contact, account, deal and activity",
        ));
    }
    // Custom objects may keep a standard's field names (RESO's `ListPrice`,
    // FHIR's `birthDate`): upper-case letters are allowed there. Keys reach
    // SQL only inside quoted JSON paths, so the character set stays this
    // narrow either way.
    let upper = input.object_type == ObjectType::CustomObject;
    let key_ok = input.key.len() <= 63
        && input
            .key
            .starts_with(|c: char| c.is_ascii_lowercase() || (upper && c.is_ascii_uppercase()))
        && input.key.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '_'
                || (upper && c.is_ascii_uppercase())
        });
    if !key_ok {
        errors.push(FieldError::new(
            "key",
            "invalid_format",
            if upper {
                "use letters, digits and _, starting with a letter (at most 63)"
            } else {
                "use lower case letters, digits and _, starting with a letter (at most 63)"
            },
        ));
    }
    if input.label.trim().is_empty() {
        errors.push(FieldError::new("label", "required", "a label is required"));
    }
    let selects = matches!(
        input.field_type,
        FieldType::SingleSelect | FieldType::MultiSelect
    );
    if selects && input.options.is_empty() {
        errors.push(FieldError::new(
            "options",
            "required",
            "select fields need at least one option",
        ));
    }
    if !selects && !input.options.is_empty() {
        errors.push(FieldError::new(
            "options",
            "not_allowed",
            "only select fields have options",
        ));
    }
    for (i, o) in input.options.iter().enumerate() {
        if o.trim().is_empty() || input.options[..i].contains(o) {
            errors.push(FieldError::new(
                format!("options[{i}]"),
                "invalid_value",
                "options must be non-empty and distinct",
            ));
        }
    }
    let bounded = input.field_type.is_numeric() || input.field_type.is_textual();
    for (name, b) in [("min", input.min), ("max", input.max)] {
        if b.is_some() && !bounded {
            errors.push(FieldError::new(
                name,
                "not_allowed",
                "only number and text fields have bounds",
            ));
        }
        if let Some(b) = b
            && input.field_type.is_textual()
            && (b.is_sign_negative() || !b.fract().is_zero())
        {
            errors.push(FieldError::new(
                name,
                "invalid_value",
                "a length bound is a whole number ≥ 0",
            ));
        }
    }
    if let (Some(min), Some(max)) = (input.min, input.max)
        && min > max
    {
        errors.push(FieldError::new(
            "min",
            "invalid_value",
            "min is greater than max",
        ));
    }
    let pattern = match &input.pattern {
        Some(p) if !input.field_type.is_textual() => {
            errors.push(FieldError::new(
                "pattern",
                "not_allowed",
                "only text fields have a pattern",
            ));
            let _ = p;
            None
        }
        Some(p) => match Regex::new(&anchored(p)) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(FieldError::new(
                    "pattern",
                    "invalid_value",
                    format!("not a valid regular expression: {e}"),
                ));
                None
            }
        },
        None => None,
    };
    match (input.field_type, input.reference_type) {
        (FieldType::Reference, None) => errors.push(FieldError::new(
            "reference_type",
            "required",
            "reference fields name the object type they refer to",
        )),
        (FieldType::Reference, Some(t)) if !t.has_custom_fields() => errors.push(FieldError::new(
            "reference_type",
            "invalid_value",
            "references point to contact, account, deal or activity",
        )),
        (FieldType::Reference, Some(_)) => {}
        (_, Some(_)) => errors.push(FieldError::new(
            "reference_type",
            "not_allowed",
            "only reference fields have a reference type",
        )),
        (_, None) => {}
    }
    if input.unique
        && matches!(
            input.field_type,
            FieldType::MultiSelect | FieldType::Boolean | FieldType::LongText
        )
    {
        errors.push(FieldError::new(
            "unique",
            "not_allowed",
            "this field type cannot be unique",
        ));
    }
    if input.sensitive {
        if !matches!(
            input.field_type,
            FieldType::Text
                | FieldType::LongText
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Date
                | FieldType::Integer
                | FieldType::Decimal
        ) {
            errors.push(FieldError::new(
                "sensitive",
                "not_allowed",
                "only text, email, phone, URL, date and number fields can be encrypted",
            ));
        }
        if input.unique {
            errors.push(FieldError::new(
                "unique",
                "not_allowed",
                "encrypted fields cannot be unique",
            ));
        }
    } else if input.blind_index {
        errors.push(FieldError::new(
            "blind_index",
            "not_allowed",
            "only sensitive fields have a blind index",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut def = FieldDef {
        id,
        key: input.key.clone(),
        label: input.label.trim().to_owned(),
        field_type: input.field_type,
        required: input.required,
        unique: input.unique,
        default: None,
        options: input.options.clone(),
        min: input.min,
        max: input.max,
        pattern,
        reference_type: input.reference_type,
        sensitive: input.sensitive,
        blind_index: input.blind_index,
    };
    if let Some(d) = input.default.as_ref().filter(|d| !d.is_null()) {
        match def.check(d) {
            Ok(v) => def.default = Some(v),
            Err(e) => errors.push(FieldError::new("default", e.code.as_str(), e.message)),
        }
    }
    if errors.is_empty() {
        Ok(def)
    } else {
        Err(errors)
    }
}

/// The stored form of a custom field definition, as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomField {
    pub id: Uuid,
    pub object_type: String,
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
    pub required: bool,
    pub unique: bool,
    pub default: Option<Value>,
    pub options: Vec<String>,
    pub min: Option<String>,
    pub max: Option<String>,
    pub pattern: Option<String>,
    pub reference_type: Option<String>,
    pub position: i32,
    pub sensitive: bool,
    pub blind_index: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl CustomField {
    pub fn from_model(m: custom_field::Model) -> Self {
        CustomField {
            id: m.id,
            field_type: FieldType::parse(&m.field_type).unwrap_or(FieldType::Text),
            object_type: m.object_type,
            key: m.key,
            label: m.label,
            required: m.required,
            unique: m.is_unique,
            default: m.default_value.filter(|v| !v.is_null()),
            options: serde_json::from_value(m.options).unwrap_or_default(),
            min: m.min_value,
            max: m.max_value,
            pattern: m.pattern,
            reference_type: m.reference_type,
            position: m.position,
            sensitive: m.sensitive,
            blind_index: m.blind_index,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

/// Checks the values that need the database: unique fields against the
/// tenant's other records (of the same custom object, `object_key`, when the
/// type is a custom object), references against existing records of the
/// tenant.
pub async fn check_unique_and_references<C: ConnectionTrait>(
    db: &C,
    ctx: &crate::context::RequestContext,
    (object, object_key): (ObjectType, Option<&str>),
    defs: &[FieldDef],
    values: &Map<String, Value>,
    record_id: Option<Uuid>,
) -> Result<Vec<FieldError>> {
    use sea_orm::{Statement, Value as DbValue};
    let backend = db.get_database_backend();
    let dialect = crate::db::dialect::Dialect(backend);
    let ph = |n| crate::db::dialect::param(backend, n);
    let mut errors = Vec::new();
    for def in defs {
        let Some(value) = values.get(&def.key).filter(|v| !v.is_null()) else {
            continue;
        };
        if def.unique {
            crate::db::lock_scope(
                db,
                ctx.tenant_id,
                &format!(
                    "unique/{}/{}/{}",
                    object.as_str(),
                    object_key.unwrap_or_default(),
                    def.key
                ),
            )
            .await?;
            // Decimals compare exactly: as numeric on PostgreSQL, as their
            // canonical text on SQLite (whose numeric cast is a float).
            let mut kind = def.json_kind();
            let bound: DbValue = match value {
                Value::Number(n) => n.as_i64().unwrap_or_default().into(),
                Value::Bool(b) => (*b).into(),
                Value::String(s) if kind == JsonKind::Decimal => match backend {
                    sea_orm::DbBackend::Postgres => s.parse::<Decimal>().unwrap_or_default().into(),
                    _ => {
                        kind = JsonKind::Text;
                        s.clone().into()
                    }
                },
                Value::String(s) => s.clone().into(),
                other => other.to_string().into(),
            };
            let of_object = match object_key {
                Some(_) => format!(" AND object_key = {}", ph(4)),
                None => String::new(),
            };
            let sql = format!(
                "SELECT 1 AS hit FROM {} WHERE tenant_id = {}{of_object} AND {} = {} AND id <> {} LIMIT 1",
                object.table(),
                ph(1),
                dialect.custom_value(&def.key, kind),
                ph(2),
                ph(3)
            );
            let mut values: Vec<DbValue> = vec![
                ctx.tenant_id.into(),
                bound,
                record_id.unwrap_or(Uuid::nil()).into(),
            ];
            if let Some(k) = object_key {
                values.push(k.to_owned().into());
            }
            // Outside row security, so the field's expression index serves
            // (see `db::leave_tenant_role`); the query names its tenant.
            let left = crate::db::leave_tenant_role(db).await?;
            let hit = db
                .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
                .await;
            crate::db::resume_tenant_role(db, left).await?;
            if hit?.is_some() {
                errors.push(FieldError::new(
                    format!("custom.{}", def.key),
                    "not_unique",
                    format!("another {} already has this {}", object.as_str(), def.label),
                ));
            }
        }
        if let (FieldType::Reference, Some(target)) = (def.field_type, def.reference_type) {
            let id = value
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .unwrap_or(Uuid::nil());
            let found = crate::crm::checks::record_exists(db, ctx, target.table(), id).await?;
            if !found {
                errors.push(FieldError::new(
                    format!("custom.{}", def.key),
                    "not_found",
                    format!("no {} with this id", target.as_str()),
                ));
            }
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(field_type: FieldType) -> FieldDef {
        FieldDef {
            id: Uuid::nil(),
            key: "f".into(),
            label: "F".into(),
            field_type,
            required: false,
            unique: false,
            default: None,
            options: vec!["a".into(), "b".into()],
            min: None,
            max: None,
            pattern: None,
            reference_type: None,
            sensitive: false,
            blind_index: false,
        }
    }

    #[test]
    fn decimals_are_exact_strings_and_floats_are_refused() {
        let d = def(FieldType::Decimal);
        assert_eq!(d.check(&json!("0.10")).unwrap(), json!("0.1"));
        assert_eq!(d.check(&json!(12)).unwrap(), json!("12"));
        assert_eq!(d.check(&json!(0.1)).unwrap_err().code, "invalid_type");
    }

    #[test]
    fn bounds_patterns_and_options_are_enforced() {
        let mut d = def(FieldType::Integer);
        d.min = Some(Decimal::from(1));
        d.max = Some(Decimal::from(5));
        assert_eq!(d.check(&json!(0)).unwrap_err().code, "too_small");
        assert_eq!(d.check(&json!(6)).unwrap_err().code, "too_large");
        assert_eq!(d.check(&json!("3")).unwrap_err().code, "invalid_type");
        let mut t = def(FieldType::Text);
        t.pattern = Some(Regex::new(&anchored("[A-Z]{3}")).unwrap());
        assert!(t.check(&json!("ABC")).is_ok());
        assert_eq!(
            t.check(&json!("ABCD")).unwrap_err().code,
            "pattern_mismatch"
        );
        assert_eq!(
            def(FieldType::SingleSelect)
                .check(&json!("c"))
                .unwrap_err()
                .code,
            "invalid_option"
        );
        assert_eq!(
            def(FieldType::MultiSelect)
                .check(&json!(["b", "a", "b"]))
                .unwrap(),
            json!(["b", "a"])
        );
    }

    #[test]
    fn check_values_applies_defaults_and_names_unknown_and_required_keys() {
        let mut required = def(FieldType::Text);
        required.key = "must".into();
        required.required = true;
        let mut defaulted = def(FieldType::Boolean);
        defaulted.key = "flag".into();
        defaulted.default = Some(json!(true));
        let defs = vec![required, defaulted];
        let (_, errs) = check_values(&defs, &json!({"nope": 1}), true);
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["custom.nope", "custom.must"]);
        let (ok, errs) = check_values(&defs, &json!({"must": "x"}), true);
        assert!(errs.is_empty());
        assert_eq!(Value::Object(ok), json!({"must": "x", "flag": true}));
    }

    #[test]
    fn definitions_are_checked() {
        let input = CustomFieldInput {
            object_type: ObjectType::Pipeline,
            key: "Bad Key".into(),
            label: "".into(),
            field_type: FieldType::SingleSelect,
            required: false,
            unique: false,
            default: Some(json!("zzz")),
            options: vec![],
            min: Some(Decimal::from(3)),
            max: Some(Decimal::from(1)),
            pattern: Some("(".into()),
            reference_type: None,
            position: 0,
            sensitive: false,
            blind_index: false,
        };
        let errs = check_definition(&input, Uuid::nil()).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in ["object_type", "key", "label", "options", "min", "pattern"] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }
}
