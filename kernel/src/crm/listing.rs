//! List queries shared by every record type: filters on built-in and custom
//! fields, sorting, keyset (cursor) pagination and optional totals.
//!
//! Query string: `filter=FIELD:OP:VALUE` (repeatable; custom fields as
//! `custom.KEY`), `sort=FIELD` or `sort=-FIELD`, `limit` (1-200, default 50),
//! `cursor` (from the previous page's `next_cursor`), `count=true`.
//!
//! Pages are found by keyset on (sort value, id), so page 1,000 costs what
//! page 1 costs. NULL sort values come last in both directions on both
//! databases.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, NullOrdering, Order};
use sea_orm::{Condition, DbBackend, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::crm::custom_fields::{FieldDef, FieldType};
use crate::db::dialect::{Dialect, JsonKind, like_escape};
use crate::error::{Error, FieldError, Result};

/// How a built-in field is typed for filtering and sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Text limited to the listed values.
    Enum(&'static [&'static str]),
    Uuid,
    Integer,
    Bool,
    Timestamp,
    Date,
    /// An exact amount exposed as a decimal string and stored as an integer
    /// count of 1/10,000ths.
    Money,
    /// A JSON array of strings (tags).
    StringArray,
}

/// A built-in field a list can filter or sort on.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// Name in the API.
    pub name: &'static str,
    /// Column in the table.
    pub column: &'static str,
    pub kind: Kind,
    pub sortable: bool,
    pub nullable: bool,
}

impl FieldSpec {
    pub const fn new(name: &'static str, kind: Kind) -> Self {
        FieldSpec {
            name,
            column: name,
            kind,
            sortable: true,
            nullable: true,
        }
    }
    pub const fn required(mut self) -> Self {
        self.nullable = false;
        self
    }
    pub const fn unsortable(mut self) -> Self {
        self.sortable = false;
        self
    }
    pub const fn column(mut self, column: &'static str) -> Self {
        self.column = column;
        self
    }
}

/// Comparison operators of filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Contains,
    StartsWith,
    In,
    IsNull,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "contains" => Op::Contains,
            "starts_with" => Op::StartsWith,
            "in" => Op::In,
            "is_null" => Op::IsNull,
            _ => return None,
        })
    }
}

/// A field resolved against the built-in list and the custom definitions.
#[derive(Debug, Clone)]
enum Target {
    Builtin(FieldSpec),
    Custom(FieldDef),
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::Builtin(f) => f.name.to_owned(),
            Target::Custom(d) => format!("custom.{}", d.key),
        }
    }

    fn nullable(&self) -> bool {
        match self {
            Target::Builtin(f) => f.nullable,
            Target::Custom(_) => true,
        }
    }

    fn expr(&self, dialect: Dialect) -> Expr {
        match self {
            Target::Builtin(f) => Expr::col(f.column),
            Target::Custom(d) => Expr::cust(dialect.custom_value(&d.key, d.json_kind())),
        }
    }

    fn is_array(&self) -> bool {
        match self {
            Target::Builtin(f) => f.kind == Kind::StringArray,
            Target::Custom(d) => d.field_type == FieldType::MultiSelect,
        }
    }

    fn is_text(&self) -> bool {
        match self {
            Target::Builtin(f) => matches!(f.kind, Kind::Text | Kind::Enum(_)),
            Target::Custom(d) => d.json_kind() == JsonKind::Text && !self.is_array(),
        }
    }

    /// Parses a filter or cursor value given as text.
    fn value(&self, raw: &str, dialect: Dialect) -> std::result::Result<Value, String> {
        match self {
            Target::Builtin(f) => match f.kind {
                Kind::Text | Kind::StringArray => Ok(raw.to_owned().into()),
                Kind::Enum(allowed) => {
                    if allowed.contains(&raw) {
                        Ok(raw.to_owned().into())
                    } else {
                        Err(format!("expected one of: {}", allowed.join(", ")))
                    }
                }
                Kind::Uuid => Uuid::parse_str(raw)
                    .map(Value::from)
                    .map_err(|_| "expected a UUID".to_owned()),
                Kind::Integer => raw
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| "expected an integer".to_owned()),
                Kind::Bool => match raw {
                    "true" => Ok(true.into()),
                    "false" => Ok(false.into()),
                    _ => Err("expected true or false".to_owned()),
                },
                Kind::Timestamp => parse_timestamp(raw).map(Value::from),
                Kind::Date => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .map(Value::from)
                    .map_err(|_| "expected a date (YYYY-MM-DD)".to_owned()),
                Kind::Money => money_to_minor(raw).map(Value::from),
            },
            Target::Custom(d) => {
                let json = match d.field_type {
                    FieldType::Integer => raw
                        .parse::<i64>()
                        .map(Json::from)
                        .map_err(|_| "expected an integer".to_owned())?,
                    FieldType::Boolean => match raw {
                        "true" => Json::Bool(true),
                        "false" => Json::Bool(false),
                        _ => return Err("expected true or false".to_owned()),
                    },
                    // Select values are compared as text, not checked against the
                    // current options: records may still hold a removed option,
                    // and a filter or cursor naming it must keep working.
                    FieldType::SingleSelect | FieldType::MultiSelect => {
                        return Ok(Value::from(raw.to_owned()));
                    }
                    _ => Json::String(raw.to_owned()),
                };
                // Filters use the field's own canonical form, but not its
                // bounds: `score:lt:0` is a fine question even if scores are ≥ 0.
                let unbounded = FieldDef {
                    min: None,
                    max: None,
                    pattern: None,
                    ..d.clone()
                };
                let canonical = unbounded.check(&json).map_err(|e| e.message)?;
                Ok(match canonical {
                    Json::Bool(b) => b.into(),
                    Json::Number(n) => n.as_i64().unwrap_or_default().into(),
                    Json::String(s) if d.json_kind() == JsonKind::Decimal => {
                        let dec = s
                            .parse::<Decimal>()
                            .map_err(|_| "expected a decimal number".to_owned())?;
                        if dialect.0 == DbBackend::Postgres {
                            dec.into()
                        } else {
                            // SQLite compares the CAST(... AS REAL) of the value.
                            s.parse::<f64>()
                                .map_err(|_| "expected a decimal number".to_owned())?
                                .into()
                        }
                    }
                    Json::String(s) => s.into(),
                    other => other.to_string().into(),
                })
            }
        }
    }
}

/// Parses a timestamp filter value: RFC 3339, or a bare date meaning midnight UTC.
pub fn parse_timestamp(raw: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(crate::clock::truncate(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| "expected an RFC 3339 date-time or a date".to_owned())
}

/// 1/10,000ths: the precision of stored amounts.
pub const MONEY_SCALE: u32 = 4;

/// Converts a decimal amount to its stored integer form, refusing amounts with
/// more than four decimals or beyond the range of the column.
pub fn money_to_minor(raw: &str) -> std::result::Result<i64, String> {
    let d: Decimal = raw
        .trim()
        .parse()
        .map_err(|_| "expected a decimal amount".to_owned())?;
    decimal_to_minor(d)
}

pub fn decimal_to_minor(d: Decimal) -> std::result::Result<i64, String> {
    if d.normalize().scale() > MONEY_SCALE {
        return Err("at most 4 decimal places".to_owned());
    }
    let scaled = d
        .checked_mul(Decimal::from(10_i64.pow(MONEY_SCALE)))
        .ok_or_else(|| "amount out of range".to_owned())?;
    i64::try_from(scaled.trunc()).map_err(|_| "amount out of range".to_owned())
}

pub fn minor_to_decimal(minor: i64) -> Decimal {
    Decimal::new(minor, MONEY_SCALE).normalize()
}

/// One parsed filter.
#[derive(Debug, Clone)]
struct Filter {
    target: Target,
    op: Op,
    raw: String,
}

/// The sort of a list.
#[derive(Debug, Clone)]
struct Sort {
    target: Target,
    descending: bool,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    filters: Vec<Filter>,
    sort: Sort,
    pub limit: u64,
    cursor: Option<Cursor>,
    pub count: bool,
}

/// Position after the last row of a page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// The sort the cursor was made for (`-created_at`).
    s: String,
    /// The sort value of the last row.
    v: Json,
    /// The id of the last row.
    id: Uuid,
}

pub const MAX_LIMIT: u64 = 200;

impl ListQuery {
    /// The fields the query filters or sorts on (`field` or `custom.key`),
    /// for field-permission checks.
    pub fn fields_used(&self) -> Vec<String> {
        self.filters
            .iter()
            .map(|f| f.target.name())
            .chain(std::iter::once(self.sort.target.name()))
            .collect()
    }

    /// Whether a raw query names custom fields, so the definitions need
    /// loading (a query per list request saved when it does not).
    pub fn mentions_custom(raw_query: Option<&str>) -> bool {
        form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()).any(|(k, v)| {
            (k == "filter" || k == "sort") && v.trim_start_matches('-').starts_with("custom.")
        })
    }

    /// Parses a raw query string against the built-in fields and the custom
    /// definitions. `default_sort` is a sortable built-in field name.
    pub fn parse(
        raw_query: Option<&str>,
        fields: &[FieldSpec],
        defs: &[FieldDef],
        default_sort: &str,
    ) -> Result<ListQuery> {
        let resolve = |name: &str| -> Option<Target> {
            if let Some(key) = name.strip_prefix("custom.") {
                defs.iter()
                    .find(|d| d.key == key)
                    .cloned()
                    .map(Target::Custom)
            } else {
                fields
                    .iter()
                    .find(|f| f.name == name)
                    .copied()
                    .map(Target::Builtin)
            }
        };
        let mut errors = Vec::new();
        let mut filters = Vec::new();
        let mut sort_raw = default_sort.to_owned();
        let mut limit = 50;
        let mut cursor_raw = None;
        let mut count = false;
        for (key, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
            if key.contains('\0') || value.contains('\0') {
                errors.push(FieldError::new(
                    key.as_ref(),
                    "invalid_value",
                    "NUL characters are not allowed",
                ));
                continue;
            }
            match key.as_ref() {
                "filter" => {
                    let mut parts = value.splitn(3, ':');
                    let (field, op, raw) = (parts.next().unwrap_or(""), parts.next(), parts.next());
                    let Some(target) = resolve(field) else {
                        errors.push(FieldError::new(
                            format!("filter.{field}"),
                            "unknown_field",
                            "no such field",
                        ));
                        continue;
                    };
                    let Some(op) = op.and_then(Op::parse) else {
                        errors.push(FieldError::new(
                            format!("filter.{field}"),
                            "invalid_operator",
                            "use FIELD:OP:VALUE with OP one of eq, ne, lt, lte, gt, gte, contains, starts_with, in, is_null",
                        ));
                        continue;
                    };
                    filters.push(Filter {
                        target,
                        op,
                        raw: raw.unwrap_or("").to_owned(),
                    });
                }
                "sort" => sort_raw = value.into_owned(),
                "limit" => match value.parse::<u64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => errors.push(FieldError::new(
                        "limit",
                        "invalid_value",
                        format!("expected 1 to {MAX_LIMIT}"),
                    )),
                },
                "cursor" => cursor_raw = Some(value.into_owned()),
                "count" => match value.as_ref() {
                    "true" => count = true,
                    "false" => count = false,
                    _ => errors.push(FieldError::new(
                        "count",
                        "invalid_value",
                        "expected true or false",
                    )),
                },
                other => errors.push(FieldError::new(
                    other,
                    "unknown_parameter",
                    "unknown query parameter",
                )),
            }
        }
        let (descending, sort_name) = match sort_raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, sort_raw.as_str()),
        };
        let sort_target = match resolve(sort_name) {
            Some(Target::Builtin(f)) if !f.sortable => {
                errors.push(FieldError::new(
                    "sort",
                    "not_sortable",
                    format!("{sort_name} cannot be sorted on"),
                ));
                None
            }
            Some(t) if t.is_array() => {
                errors.push(FieldError::new(
                    "sort",
                    "not_sortable",
                    format!("{sort_name} cannot be sorted on"),
                ));
                None
            }
            Some(t) => Some(t),
            None => {
                errors.push(FieldError::new(
                    "sort",
                    "unknown_field",
                    format!("no such field: {sort_name}"),
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let Some(target) = sort_target else {
            return Err(Error::Validation(errors));
        };
        let sort = Sort { target, descending };
        let cursor = match cursor_raw {
            None => None,
            Some(raw) => {
                let c = decode_cursor(&raw)?;
                if c.s != sort_key(&sort) {
                    return Err(Error::InvalidCursor);
                }
                Some(c)
            }
        };
        Ok(ListQuery {
            filters,
            sort,
            limit,
            cursor,
            count,
        })
    }

    /// The WHERE conditions of the filters (without the cursor).
    pub fn filter_condition(&self, dialect: Dialect) -> Result<Condition> {
        let mut cond = Condition::all();
        let mut errors = Vec::new();
        for f in &self.filters {
            match filter_expr(f, dialect) {
                Ok(e) => cond = cond.add(e),
                Err(msg) => errors.push(FieldError::new(
                    format!("filter.{}", f.target.name()),
                    "invalid_value",
                    msg,
                )),
            }
        }
        if errors.is_empty() {
            Ok(cond)
        } else {
            Err(Error::Validation(errors))
        }
    }

    /// The keyset condition placing the page after the cursor.
    pub fn cursor_condition(&self, dialect: Dialect) -> Result<Option<Condition>> {
        let Some(c) = &self.cursor else {
            return Ok(None);
        };
        let e = self.sort.target.expr(dialect);
        let id = Expr::col("id");
        let desc = self.sort.descending;
        let after_id = if desc {
            id.clone().lt(c.id)
        } else {
            id.clone().gt(c.id)
        };
        if matches!(c.v, Json::Null) {
            return Ok(Some(Condition::all().add(e.is_null()).add(after_id)));
        }
        let raw = match &c.v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let v = self
            .sort
            .target
            .value(&raw, dialect)
            .map_err(|_| Error::InvalidCursor)?;
        if !self.sort.target.nullable() {
            // Row values let PostgreSQL walk the (tenant_id, col, id) index.
            let lhs = Expr::tuple([e, id]);
            let rhs = Expr::tuple([Expr::val(v), Expr::val(c.id)]);
            return Ok(Some(Condition::all().add(if desc {
                lhs.lt(rhs)
            } else {
                lhs.gt(rhs)
            })));
        }
        let beyond = if desc {
            e.clone().lt(v.clone())
        } else {
            e.clone().gt(v.clone())
        };
        Ok(Some(
            Condition::any()
                .add(beyond)
                .add(Condition::all().add(e.clone().eq(v)).add(after_id))
                .add(e.is_null()),
        ))
    }

    /// The ORDER BY terms: the sort expression (NULLs last), then the id.
    pub fn order(&self, dialect: Dialect) -> Vec<(Expr, Order, Option<NullOrdering>)> {
        let ord = if self.sort.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let nulls = self.sort.target.nullable().then_some(NullOrdering::Last);
        vec![
            (self.sort.target.expr(dialect), ord.clone(), nulls),
            (Expr::col("id"), ord, None),
        ]
    }

    /// The cursor of the page that follows a row, from the row's API JSON.
    pub fn next_cursor(&self, last: &Json, last_id: Uuid) -> String {
        let v = match &self.sort.target {
            Target::Builtin(f) => last.get(f.name).cloned().unwrap_or(Json::Null),
            Target::Custom(d) => last
                .get("custom")
                .and_then(|c| c.get(&d.key))
                .cloned()
                .unwrap_or(Json::Null),
        };
        let cursor = Cursor {
            s: sort_key(&self.sort),
            v,
            id: last_id,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
    }
}

fn sort_key(sort: &Sort) -> String {
    format!(
        "{}{}",
        if sort.descending { "-" } else { "" },
        sort.target.name()
    )
}

fn decode_cursor(raw: &str) -> Result<Cursor> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| Error::InvalidCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| Error::InvalidCursor)
}

fn filter_expr(f: &Filter, dialect: Dialect) -> std::result::Result<Condition, String> {
    let t = &f.target;
    let e = t.expr(dialect);
    let single = |raw: &str| t.value(raw, dialect);
    let cond = Condition::all();
    Ok(match f.op {
        Op::IsNull => match f.raw.as_str() {
            "true" => cond.add(e.is_null()),
            "false" => cond.add(e.is_not_null()),
            _ => return Err("is_null takes true or false".to_owned()),
        },
        Op::Contains if t.is_array() => {
            let v = single(&f.raw)?;
            let sql = match t {
                Target::Custom(d) => dialect.custom_array_contains(&d.key),
                Target::Builtin(b) => dialect.array_column_contains(b.column),
            };
            cond.add(Expr::cust_with_values(sql, [v]))
        }
        Op::Contains | Op::StartsWith => {
            if !t.is_text() {
                return Err("contains and starts_with apply to text fields".to_owned());
            }
            let pattern = match f.op {
                Op::Contains => format!("%{}%", like_escape(&f.raw)),
                _ => format!("{}%", like_escape(&f.raw)),
            };
            let sql = dialect.ilike(&expr_sql(t, dialect));
            cond.add(Expr::cust_with_values(sql, [pattern]))
        }
        _ if t.is_array() => return Err("list fields support contains and is_null".to_owned()),
        Op::In => {
            let values = f
                .raw
                .split(',')
                .map(|s| single(s.trim()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if values.is_empty() || values.len() > 100 {
                return Err("in takes 1 to 100 comma-separated values".to_owned());
            }
            cond.add(e.is_in(values))
        }
        op => {
            let v = single(&f.raw)?;
            cond.add(match op {
                Op::Eq => e.eq(v),
                Op::Ne => Expr::cust_with_values(
                    format!(
                        "({} IS DISTINCT FROM {})",
                        expr_sql(t, dialect),
                        dialect.placeholder()
                    ),
                    [v],
                ),
                Op::Lt => e.lt(v),
                Op::Lte => e.lte(v),
                Op::Gt => e.gt(v),
                _ => e.gte(v),
            })
        }
    })
}

/// The SQL text of a target, for the few conditions written as raw SQL.
fn expr_sql(t: &Target, dialect: Dialect) -> String {
    match t {
        Target::Builtin(f) => format!("\"{}\"", f.column),
        Target::Custom(d) => dialect.custom_value(&d.key, d.json_kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[FieldSpec] = &[
        FieldSpec::new("created_at", Kind::Timestamp).required(),
        FieldSpec::new("email", Kind::Text),
        FieldSpec::new("tags", Kind::StringArray).unsortable(),
    ];

    #[test]
    fn money_is_exact_and_bounded() {
        assert_eq!(money_to_minor("12.5").unwrap(), 125_000);
        assert_eq!(minor_to_decimal(125_000).to_string(), "12.5");
        assert!(money_to_minor("0.00001").is_err());
        assert!(money_to_minor("1e400").is_err());
    }

    #[test]
    fn parse_rejects_unknown_fields_operators_and_bad_limits() {
        let err = ListQuery::parse(
            Some("filter=nope:eq:1&filter=email:like:x&limit=0&sort=tags"),
            FIELDS,
            &[],
            "-created_at",
        )
        .unwrap_err();
        let Error::Validation(errors) = err else {
            panic!("{err:?}")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["filter.nope", "filter.email", "limit", "sort"]);
    }

    #[test]
    fn cursor_must_match_the_sort() {
        let q = ListQuery::parse(None, FIELDS, &[], "-created_at").unwrap();
        let c = q.next_cursor(
            &serde_json::json!({"created_at": "2026-01-01T00:00:00Z"}),
            Uuid::nil(),
        );
        assert!(ListQuery::parse(Some(&format!("cursor={c}")), FIELDS, &[], "-created_at").is_ok());
        let err = ListQuery::parse(
            Some(&format!("cursor={c}&sort=email")),
            FIELDS,
            &[],
            "-created_at",
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidCursor));
        assert!(matches!(
            ListQuery::parse(Some("cursor=garbage!"), FIELDS, &[], "-created_at").unwrap_err(),
            Error::InvalidCursor
        ));
    }
}
