//! Turning a row's cells into a record's fields through the mapping: each
//! cell trimmed, transformed and converted to the field's JSON, with every
//! problem named by its column.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crm::custom_fields::FieldType;
use crate::imports::mapping::{ColumnMapping, Kind, Target, Transform};

/// Why a row was not written.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct RowError {
    /// The file's column, when one column is to blame.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<String>,
    /// The field, as the API names it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

impl RowError {
    pub fn new(
        column: Option<&str>,
        field: Option<&str>,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        RowError {
            column: column.map(str::to_owned),
            field: field.map(str::to_owned),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The account a contact row links to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountRef {
    pub name: Option<String>,
    pub domain: Option<String>,
}

/// A row ready to write: the fields its cells set, in the API's input form.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub fields: Map<String, Value>,
    pub account: Option<AccountRef>,
    pub errors: Vec<RowError>,
}

/// A mapping resolved against the file and the fields, once per import.
pub struct Plan {
    columns: Vec<(usize, ColumnMapping, Target)>,
    /// Users by lower-case email, for owner columns.
    owners: HashMap<String, Uuid>,
}

impl Plan {
    /// `mapping` must have passed [`crate::imports::mapping::check`].
    pub fn new(
        mapping: &[ColumnMapping],
        headers: &[String],
        targets: &[Target],
        owners: HashMap<String, Uuid>,
    ) -> Plan {
        let columns = mapping
            .iter()
            .filter_map(|m| {
                let index = headers.iter().position(|h| *h == m.column)?;
                let target = targets.iter().find(|t| t.key == m.field)?;
                Some((index, m.clone(), target.clone()))
            })
            .collect();
        Plan { columns, owners }
    }

    /// The column that fills `field` (for naming it in errors).
    pub fn column_of(&self, field: &str) -> Option<&str> {
        let root = field.split(['[', '.']).next().unwrap_or(field);
        let key = if root == "custom" {
            field.split('[').next().unwrap_or(field)
        } else {
            root
        };
        self.columns
            .iter()
            .find(|(_, m, _)| {
                m.field == key
                    || (m.field == "full_name" && (key == "first_name" || key == "last_name"))
            })
            .map(|(_, m, _)| m.column.as_str())
    }

    /// The fields a row's cells set.
    pub fn prepare(&self, cells: &[String]) -> Prepared {
        let mut out = Prepared::default();
        let mut custom = Map::new();
        for (index, m, target) in &self.columns {
            let raw = cells.get(*index).map(String::as_str).unwrap_or_default();
            let mut value = raw.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            match &m.transform {
                Some(Transform::Lowercase) => value = value.to_lowercase(),
                Some(Transform::Map { values }) => {
                    if let Some(v) = values.get(&value).or_else(|| {
                        values
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&value))
                            .map(|(_, v)| v)
                    }) {
                        value = v.clone();
                    }
                }
                _ => {}
            }
            let fail = |code: &str, message: String| {
                RowError::new(Some(&m.column), Some(&target.key), code, message)
            };
            let result: Result<(), RowError> = (|| {
                match &target.kind {
                    Kind::Text => {
                        out.fields.insert(target.key.clone(), Value::String(value));
                    }
                    Kind::Enum(allowed) => {
                        let v = enum_value(&value, allowed).ok_or_else(|| {
                            fail(
                                "invalid_option",
                                format!("`{value}` is not one of: {}", allowed.join(", ")),
                            )
                        })?;
                        out.fields.insert(target.key.clone(), Value::String(v));
                    }
                    Kind::Bool => {
                        let b = boolean(&value).ok_or_else(|| {
                            fail(
                                "invalid_type",
                                format!("`{value}` is not yes/no or true/false"),
                            )
                        })?;
                        out.fields.insert(target.key.clone(), Value::Bool(b));
                    }
                    Kind::Id => {
                        let id = record_id(&value).ok_or_else(|| {
                            fail("invalid_type", format!("`{value}` is not a record id"))
                        })?;
                        out.fields
                            .insert(target.key.clone(), Value::String(id.to_string()));
                    }
                    Kind::Owner => {
                        let id = record_id(&value)
                            .or_else(|| self.owners.get(&value.to_lowercase()).copied())
                            .ok_or_else(|| {
                                fail("not_found", format!("no user `{value}` in this workspace"))
                            })?;
                        out.fields
                            .insert(target.key.clone(), Value::String(id.to_string()));
                    }
                    Kind::List => {
                        let list = out
                            .fields
                            .entry(target.key.clone())
                            .or_insert_with(|| json!([]));
                        if let Value::Array(items) = list {
                            items.extend(split_list(&value).into_iter().map(Value::String));
                        }
                    }
                    Kind::Emails => {
                        let emails = emails(&value).ok_or_else(|| {
                            fail("invalid_format", "not a list of email addresses".to_owned())
                        })?;
                        push_all(&mut out.fields, "emails", emails);
                    }
                    Kind::Phones => {
                        let mut phones = phones(&value).ok_or_else(|| {
                            fail("invalid_format", "not a list of phone numbers".to_owned())
                        })?;
                        if let Some(Transform::E164 { region }) = &m.transform {
                            for p in &mut phones {
                                let n = p["number"].as_str().unwrap_or_default().to_owned();
                                p["number"] = Value::String(e164(&n, region).ok_or_else(|| {
                                    fail(
                                        "invalid_format",
                                        format!("`{n}` is not a valid phone number in {region}"),
                                    )
                                })?);
                            }
                        }
                        push_all(&mut out.fields, "phones", phones);
                    }
                    Kind::FullName => {
                        let (first, last) = split_name(&value);
                        if let Some(f) = first {
                            out.fields.insert("first_name".to_owned(), Value::String(f));
                        }
                        if let Some(l) = last {
                            out.fields.insert("last_name".to_owned(), Value::String(l));
                        }
                    }
                    Kind::AccountName => {
                        out.account.get_or_insert_with(AccountRef::default).name = Some(value);
                    }
                    Kind::AccountDomain => {
                        out.account.get_or_insert_with(AccountRef::default).domain =
                            Some(domain_of(&value));
                    }
                    Kind::Custom(def) => {
                        let v = custom_value(
                            def.field_type,
                            &def.options,
                            &value,
                            m.transform.as_ref(),
                        )
                        .map_err(|msg| fail("invalid_type", msg))?;
                        custom.insert(def.key.clone(), v);
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                out.errors.push(e);
            }
        }
        if !custom.is_empty() {
            out.fields
                .insert("custom".to_owned(), Value::Object(custom));
        }
        out
    }
}

fn push_all(fields: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    let list = fields.entry(key.to_owned()).or_insert_with(|| json!([]));
    if let Value::Array(existing) = list {
        existing.extend(items);
    }
}

/// `Marketing Qualified`, `marketing-qualified` → `marketing_qualified`.
fn enum_value(value: &str, allowed: &[&str]) -> Option<String> {
    let norm: String = value
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    allowed
        .iter()
        .find(|a| **a == norm)
        .map(|a| (*a).to_owned())
}

fn boolean(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "t" | "x" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "f" | "off" => Some(false),
        _ => None,
    }
}

fn record_id(value: &str) -> Option<Uuid> {
    Uuid::parse_str(value.trim().trim_start_matches("urn:uuid:")).ok()
}

/// A list cell: `;`-separated when it has a `;` (how exports write lists),
/// else `,`-separated.
/// A list: a JSON array of text (as exports write lists whose items hold
/// a `;`), else items separated by `;` (or `,` when there is no `;`).
fn split_list(value: &str) -> Vec<String> {
    if value.starts_with('[')
        && let Ok(items) = serde_json::from_str::<Vec<String>>(value)
    {
        return items;
    }
    let sep = if value.contains(';') { ';' } else { ',' };
    value
        .split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Email addresses: a JSON list (as exports write them) or addresses
/// separated by `;`, `,` or spaces.
fn emails(value: &str) -> Option<Vec<Value>> {
    if value.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(value).ok()?;
        return list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(json!({"address": s})),
                Value::Object(_) => Some(v),
                _ => None,
            })
            .collect();
    }
    Some(
        value
            .split([';', ',', ' ', '\t', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| json!({"address": s.trim_start_matches("mailto:").to_lowercase()}))
            .collect(),
    )
}

/// Phone numbers: a JSON list (as exports write them) or numbers separated
/// by `;` or `,`.
fn phones(value: &str) -> Option<Vec<Value>> {
    if value.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(value).ok()?;
        return list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(json!({"number": s})),
                Value::Object(_) => Some(v),
                _ => None,
            })
            .collect();
    }
    Some(
        value
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| json!({"number": s}))
            .collect(),
    )
}

/// A number in E.164, read as a number of `region` when it has no country
/// code.
pub fn e164(number: &str, region: &str) -> Option<String> {
    let country = region.parse::<phonenumber::country::Id>().ok()?;
    let parsed = phonenumber::parse(Some(country), number).ok()?;
    phonenumber::is_valid(&parsed)
        .then(|| parsed.format().mode(phonenumber::Mode::E164).to_string())
}

/// `Ada Lovelace` → (Ada, Lovelace); `Lovelace, Ada` → (Ada, Lovelace);
/// `Mary Ann van der Berg` → (Mary Ann van der, Berg) is wrong, so name
/// particles stay with the last name; `Cher` → (Cher, -).
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let some = |s: &str| {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        (!s.is_empty()).then_some(s)
    };
    if let Some((last, first)) = full.split_once(',') {
        return (some(first), some(last));
    }
    let words: Vec<&str> = full.split_whitespace().collect();
    if words.len() < 2 {
        return (some(full), None);
    }
    const PARTICLES: &[&str] = &[
        "van", "von", "der", "den", "de", "del", "della", "di", "da", "du", "la", "le", "dos",
        "das", "bin", "al", "ter", "ten",
    ];
    let mut split = words.len() - 1;
    while split > 1 && PARTICLES.contains(&words[split - 1].to_lowercase().as_str()) {
        split -= 1;
    }
    (
        some(&words[..split].join(" ")),
        some(&words[split..].join(" ")),
    )
}

/// `https://www.Example.com/about` → `example.com`.
fn domain_of(value: &str) -> String {
    let v = value.trim().to_lowercase();
    let v = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .unwrap_or(&v);
    let v = v.split(['/', '?', '#']).next().unwrap_or(v);
    v.strip_prefix("www.").unwrap_or(v).to_owned()
}

fn parse_date(value: &str, format: Option<&str>) -> Option<NaiveDate> {
    match format {
        Some(f) => NaiveDate::parse_from_str(value, f).ok().or_else(|| {
            NaiveDateTime::parse_from_str(value, f)
                .ok()
                .map(|t| t.date())
        }),
        None => NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .or_else(|| parse_datetime(value, None).map(|t| t.date())),
    }
}

fn parse_datetime(value: &str, format: Option<&str>) -> Option<NaiveDateTime> {
    if let Some(f) = format {
        return NaiveDateTime::parse_from_str(value, f).ok().or_else(|| {
            NaiveDate::parse_from_str(value, f)
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        });
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.naive_utc())
        .or_else(|| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M").ok())
}

fn custom_value(
    field_type: FieldType,
    options: &[String],
    value: &str,
    transform: Option<&Transform>,
) -> Result<Value, String> {
    let format = match transform {
        Some(Transform::Date { format }) => Some(format.as_str()),
        _ => None,
    };
    let option = |v: &str| -> Result<String, String> {
        options
            .iter()
            .find(|o| o.as_str() == v)
            .or_else(|| options.iter().find(|o| o.eq_ignore_ascii_case(v)))
            .cloned()
            .ok_or_else(|| format!("`{v}` is not one of: {}", options.join(", ")))
    };
    Ok(match field_type {
        FieldType::Text | FieldType::LongText | FieldType::Url => Value::String(value.to_owned()),
        FieldType::Email => Value::String(value.to_lowercase()),
        FieldType::Phone => match transform {
            Some(Transform::E164 { region }) => Value::String(
                e164(value, region)
                    .ok_or_else(|| format!("`{value}` is not a valid phone number in {region}"))?,
            ),
            _ => Value::String(value.to_owned()),
        },
        FieldType::Integer => Value::from(
            value
                .parse::<i64>()
                .map_err(|_| format!("`{value}` is not a whole number"))?,
        ),
        FieldType::Decimal | FieldType::Currency => Value::String(value.replace([' ', '_'], "")),
        FieldType::Date => {
            let d = parse_date(value, format).ok_or_else(|| match format {
                Some(f) => format!("`{value}` is not a date in the format {f}"),
                None => format!("`{value}` is not a date (YYYY-MM-DD)"),
            })?;
            Value::String(d.format("%Y-%m-%d").to_string())
        }
        FieldType::Datetime => {
            let t = parse_datetime(value, format).ok_or_else(|| match format {
                Some(f) => format!("`{value}` is not a date-time in the format {f}"),
                None => format!("`{value}` is not a date-time (RFC 3339)"),
            })?;
            Value::String(
                t.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        }
        FieldType::Boolean => Value::Bool(
            boolean(value).ok_or_else(|| format!("`{value}` is not yes/no or true/false"))?,
        ),
        FieldType::SingleSelect => Value::String(option(value)?),
        FieldType::MultiSelect => {
            let items: Result<Vec<String>, String> =
                split_list(value).iter().map(|v| option(v)).collect();
            json!(items?)
        }
        FieldType::Reference => Value::String(
            record_id(value)
                .ok_or_else(|| format!("`{value}` is not a record id"))?
                .to_string(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_the_way_people_write_them() {
        assert_eq!(
            split_name("Ada Lovelace"),
            (Some("Ada".into()), Some("Lovelace".into()))
        );
        assert_eq!(
            split_name("Lovelace, Ada"),
            (Some("Ada".into()), Some("Lovelace".into()))
        );
        assert_eq!(
            split_name("Ludwig van Beethoven"),
            (Some("Ludwig".into()), Some("van Beethoven".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
    }

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(
            e164("(415) 555-2671", "US").as_deref(),
            Some("+14155552671")
        );
        assert_eq!(e164("030 901820", "DE").as_deref(), Some("+4930901820"));
        assert_eq!(
            e164("+44 20 7946 0958", "US").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(e164("12", "US"), None);
    }

    #[test]
    fn dates_follow_the_stated_format() {
        assert_eq!(
            custom_value(
                FieldType::Date,
                &[],
                "24/11/2026",
                Some(&Transform::Date {
                    format: "%d/%m/%Y".into()
                })
            ),
            Ok(json!("2026-11-24"))
        );
        assert!(
            custom_value(
                FieldType::Date,
                &[],
                "11/24/2026",
                Some(&Transform::Date {
                    format: "%d/%m/%Y".into()
                })
            )
            .is_err()
        );
        assert_eq!(
            custom_value(FieldType::Date, &[], "2026-11-24", None),
            Ok(json!("2026-11-24"))
        );
    }

    #[test]
    fn display_spellings_of_choices_are_accepted() {
        assert_eq!(
            enum_value("Marketing Qualified", crate::crm::contacts::STAGES).as_deref(),
            Some("marketing_qualified")
        );
        assert_eq!(domain_of("https://www.Example.com/about"), "example.com");
    }
}
