//! Choosing the survivor's value of each field from the records merged.
//!
//! Works on the records' input form (what a client writes), so the result
//! goes through the ordinary update path and its validation. A field the
//! request names takes that record's value as it is; every other field
//! follows the rule: the first non-blank value in the rule's order of
//! records, and lists (emails, phones, tags, multi-selects) the union of
//! all, so no address or number is lost. A `true` flag is kept over a
//! `false` one: a do-not-call on any of the records stays.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};

/// How fields not chosen one by one are filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The survivor's value; where it has none, the merged records' in the
    /// order given.
    #[default]
    Survivor,
    /// The most recently updated record's value.
    Newest,
    /// The value of the record with the most fields filled in.
    MostComplete,
}

/// One record taking part, in input form.
pub struct Source {
    pub id: Uuid,
    pub input: Value,
    pub updated_at: DateTime<Utc>,
}

/// The survivor's new input: `sources[0]` is the survivor. `choices` maps a
/// field (`custom.KEY` for custom fields) to the record whose value wins.
pub fn choose(sources: &[Source], rule: Rule, choices: &BTreeMap<String, Uuid>) -> Result<Value> {
    let order = ordered(sources, rule);
    let mut keys: Vec<String> = Vec::new();
    let mut custom_keys: Vec<String> = Vec::new();
    for s in sources {
        for (k, v) in s.input.as_object().into_iter().flatten() {
            if k == "custom" {
                for ck in v.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !custom_keys.contains(ck) {
                        custom_keys.push(ck.clone());
                    }
                }
            } else if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let mut errors = Vec::new();
    for (field, from) in choices {
        let known = match field.strip_prefix("custom.") {
            Some(ck) => custom_keys.iter().any(|k| k == ck),
            None => keys.iter().any(|k| k == field),
        };
        if !known {
            errors.push(FieldError::new(
                format!("fields.{field}"),
                "unknown_field",
                "no such field on these records",
            ));
        } else if !sources.iter().any(|s| s.id == *from) {
            errors.push(FieldError::new(
                format!("fields.{field}"),
                "not_in_merge",
                "choose one of the records being merged",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let value_of = |s: &Source, path: (&str, Option<&str>)| -> Value {
        let top = s.input.get(path.0).cloned().unwrap_or(Value::Null);
        match path.1 {
            Some(ck) => top.get(ck).cloned().unwrap_or(Value::Null),
            None => top,
        }
    };
    let pick = |name: &str, path: (&str, Option<&str>)| -> Value {
        if let Some(from) = choices.get(name)
            && let Some(s) = sources.iter().find(|s| s.id == *from)
        {
            return value_of(s, path);
        }
        let values: Vec<Value> = order.iter().map(|s| value_of(s, path)).collect();
        combine(name, &values)
    };
    let mut out = Map::new();
    for k in &keys {
        out.insert(k.clone(), pick(k, (k, None)));
    }
    let mut custom = Map::new();
    for ck in &custom_keys {
        let v = pick(&format!("custom.{ck}"), ("custom", Some(ck)));
        if !v.is_null() {
            custom.insert(ck.clone(), v);
        }
    }
    out.insert("custom".to_owned(), Value::Object(custom));
    Ok(Value::Object(out))
}

/// The records in the order the rule gives them precedence.
fn ordered(sources: &[Source], rule: Rule) -> Vec<&Source> {
    let mut order: Vec<&Source> = sources.iter().collect();
    match rule {
        Rule::Survivor => {}
        // Stable sorts: ties keep the survivor first.
        // Timestamps are whole seconds; ids (UUIDv7) order records made
        // within one second.
        Rule::Newest => order.sort_by_key(|s| std::cmp::Reverse((s.updated_at, s.id))),
        Rule::MostComplete => order.sort_by_key(|s| std::cmp::Reverse(filled(&s.input))),
    }
    order
}

/// How many fields of an input are filled in.
fn filled(input: &Value) -> usize {
    input
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            if k == "custom" {
                v.as_object()
                    .map_or(0, |m| m.values().filter(|v| !is_blank(v)).count())
            } else {
                usize::from(!is_blank(v))
            }
        })
        .sum()
}

pub(crate) fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// One field's merged value from the records' values in precedence order.
fn combine(name: &str, values: &[Value]) -> Value {
    if values.iter().any(Value::is_array) {
        return Value::Array(union(name, values));
    }
    values
        .iter()
        .find(|v| !is_blank(v))
        .or_else(|| values.first())
        .cloned()
        .unwrap_or(Value::Null)
}

/// The lists' items without repeats, first occurrence first. Emails are
/// the same address whatever the case, phones the same digits; a contact
/// keeps one primary address (the first record's).
fn union(name: &str, values: &[Value]) -> Vec<Value> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for item in values.iter().filter_map(Value::as_array).flatten() {
        let key = match item {
            Value::Object(o) if o.contains_key("address") => o
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_lowercase(),
            Value::Object(o) if o.contains_key("number") => o
                .get("number")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_digit)
                .collect(),
            Value::String(s) => s.trim().to_lowercase(),
            other => other.to_string(),
        };
        if !seen.contains(&key) {
            seen.push(key);
            out.push(item.clone());
        }
    }
    if name == "emails" {
        let mut primary_seen = false;
        for item in out.iter_mut().filter_map(Value::as_object_mut) {
            let primary = item.get("primary").and_then(Value::as_bool) == Some(true);
            if primary && !primary_seen {
                primary_seen = true;
            } else if primary {
                item.insert("primary".to_owned(), Value::Bool(false));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(n: u128, input: Value, age_days: i64) -> Source {
        Source {
            id: Uuid::from_u128(n),
            input,
            updated_at: Utc::now() - chrono::Duration::days(age_days),
        }
    }

    #[test]
    fn survivor_values_win_and_blanks_are_filled() {
        let s = [
            src(
                1,
                json!({"first_name": "Ada", "job_title": null, "custom": {}}),
                5,
            ),
            src(
                2,
                json!({"first_name": "Augusta", "job_title": "Countess", "custom": {"tier": "gold"}}),
                1,
            ),
        ];
        let out = choose(&s, Rule::Survivor, &BTreeMap::new()).unwrap();
        assert_eq!(out["first_name"], "Ada");
        assert_eq!(out["job_title"], "Countess");
        assert_eq!(out["custom"]["tier"], "gold");
        let newest = choose(&s, Rule::Newest, &BTreeMap::new()).unwrap();
        assert_eq!(newest["first_name"], "Augusta");
    }

    #[test]
    fn lists_are_united_with_one_primary_email() {
        let s = [
            src(
                1,
                json!({"emails": [{"address": "a@x.io", "primary": true}], "tags": ["vip"], "custom": {}}),
                0,
            ),
            src(
                2,
                json!({"emails": [{"address": "A@X.io", "primary": true}, {"address": "b@y.io", "primary": true}], "tags": ["VIP", "new"], "custom": {}}),
                0,
            ),
        ];
        let out = choose(&s, Rule::Survivor, &BTreeMap::new()).unwrap();
        assert_eq!(
            out["emails"],
            json!([{"address": "a@x.io", "primary": true}, {"address": "b@y.io", "primary": false}])
        );
        assert_eq!(out["tags"], json!(["vip", "new"]));
    }

    #[test]
    fn a_chosen_field_takes_that_records_value_and_unknown_choices_fail() {
        let s = [
            src(
                1,
                json!({"job_title": "CTO", "tags": ["a"], "custom": {}}),
                0,
            ),
            src(
                2,
                json!({"job_title": null, "tags": ["b"], "custom": {}}),
                0,
            ),
        ];
        let mut choices = BTreeMap::new();
        choices.insert("job_title".to_owned(), Uuid::from_u128(2));
        choices.insert("tags".to_owned(), Uuid::from_u128(2));
        let out = choose(&s, Rule::Survivor, &choices).unwrap();
        assert_eq!(out["job_title"], Value::Null);
        assert_eq!(out["tags"], json!(["b"]));
        choices.insert("nope".to_owned(), Uuid::from_u128(2));
        choices.insert("job_title".to_owned(), Uuid::from_u128(9));
        match choose(&s, Rule::Survivor, &choices) {
            Err(Error::Validation(errs)) => {
                let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["fields.job_title", "fields.nope"]);
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn most_complete_prefers_the_fuller_record() {
        let s = [
            src(
                1,
                json!({"name": "Acme", "industry": null, "custom": {}}),
                0,
            ),
            src(
                2,
                json!({"name": "ACME Corp", "industry": "Tools", "custom": {"x": 1}}),
                9,
            ),
        ];
        let out = choose(&s, Rule::MostComplete, &BTreeMap::new()).unwrap();
        assert_eq!(out["name"], "ACME Corp");
    }
}
