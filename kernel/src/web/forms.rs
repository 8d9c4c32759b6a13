//! HTML forms: reading a posted form, describing a record's fields as form
//! inputs (built-in and custom, each by type), turning a posted form into
//! the JSON the services take, and putting the services' validation errors
//! back next to the fields they name.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::crm::custom_fields::{FieldDef, FieldType};
use crate::error::{Error, FieldError};
use crate::permissions::{FieldAccess, ObjectType};
use crate::web::PageError;

/// A posted `application/x-www-form-urlencoded` body, in order.
#[derive(Debug, Default)]
pub struct FormData {
    pairs: Vec<(String, String)>,
}

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData {
            pairs: form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or `None` when blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name` (checkbox groups, multiple selects).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }
}

impl FromRequest<AppState> for FormData {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError(Error::UnsupportedMediaType));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError(Error::PayloadTooLarge))?;
        Ok(FormData::parse(&body))
    }
}

/// How a field is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Text,
    Email,
    Tel,
    Url,
    Textarea,
    Integer,
    Decimal,
    Date,
    /// A UTC timestamp (`datetime-local`, read as UTC).
    Datetime,
    Checkbox,
    Select,
    MultiSelect,
    /// Several values, one per line (a contact's emails and phones).
    Lines,
    /// Comma-separated values (tags).
    Tags,
    /// Another record, chosen from a list.
    Reference(ObjectType),
}

impl Input {
    fn as_str(self) -> &'static str {
        match self {
            Input::Text => "text",
            Input::Email => "email",
            Input::Tel => "tel",
            Input::Url => "url",
            Input::Textarea => "textarea",
            Input::Integer => "integer",
            Input::Decimal => "decimal",
            Input::Date => "date",
            Input::Datetime => "datetime",
            Input::Checkbox => "checkbox",
            Input::Select => "select",
            Input::MultiSelect => "multiselect",
            Input::Lines => "lines",
            Input::Tags => "tags",
            Input::Reference(_) => "reference",
        }
    }
}

/// One field of a record's form.
#[derive(Debug, Clone)]
pub struct Field {
    /// The input's name: a built-in field, or `custom.KEY`.
    pub name: String,
    pub label: String,
    pub input: Input,
    pub required: bool,
    /// Allowed values of selects: (value, label).
    pub options: Vec<(String, String)>,
    pub help: Option<String>,
    /// The caller may see but not change it.
    pub read_only: bool,
}

impl Field {
    pub fn new(name: &str, label: &str, input: Input) -> Field {
        Field {
            name: name.to_owned(),
            label: label.to_owned(),
            input,
            required: false,
            options: Vec::new(),
            help: None,
            read_only: false,
        }
    }

    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub fn options(mut self, values: &[&str]) -> Field {
        self.options = values.iter().map(|v| ((*v).to_owned(), label(v))).collect();
        self
    }

    pub fn help(mut self, text: &str) -> Field {
        self.help = Some(text.to_owned());
        self
    }

    /// A custom field as a form input.
    pub fn custom(d: &FieldDef) -> Field {
        let input = match d.field_type {
            FieldType::Text => Input::Text,
            FieldType::LongText => Input::Textarea,
            FieldType::Integer => Input::Integer,
            FieldType::Decimal | FieldType::Currency => Input::Decimal,
            FieldType::Date => Input::Date,
            FieldType::Datetime => Input::Datetime,
            FieldType::Boolean => Input::Checkbox,
            FieldType::SingleSelect => Input::Select,
            FieldType::MultiSelect => Input::MultiSelect,
            FieldType::Email => Input::Email,
            FieldType::Phone => Input::Tel,
            FieldType::Url => Input::Url,
            FieldType::Reference => {
                Input::Reference(d.reference_type.unwrap_or(ObjectType::Contact))
            }
        };
        let mut f = Field::new(&format!("custom.{}", d.key), &d.label, input);
        f.required = d.required && d.default.is_none();
        f.options = d.options.iter().map(|o| (o.clone(), o.clone())).collect();
        if d.field_type == FieldType::Currency {
            f.help = Some("An exact amount, e.g. 1250.00".to_owned());
        }
        f
    }

    /// The field as a template sees it, holding `value` from the record
    /// (`current`) and the error the last submission got.
    pub fn view(&self, current: &Value, error: Option<&str>) -> Value {
        let value = display_value(self.input, current);
        let selected: Vec<String> = match current {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            Value::Null => Vec::new(),
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        let mut options: Vec<Value> = self
            .options
            .iter()
            .map(|(v, l)| json!({"value": v, "label": l, "selected": selected.contains(v)}))
            .collect();
        // A value no longer among the options stays selectable, so saving
        // the form does not drop it silently.
        if matches!(self.input, Input::Select | Input::Reference(_)) {
            for s in &selected {
                if !self.options.iter().any(|(v, _)| v == s) {
                    options.push(json!({"value": s, "label": s, "selected": true}));
                }
            }
        }
        json!({
            "name": self.name,
            "id": format!("f-{}", self.name.replace('.', "-")),
            "label": self.label,
            "input": self.input.as_str(),
            "required": self.required,
            "read_only": self.read_only,
            "help": self.help,
            "value": value,
            "checked": current.as_bool().unwrap_or(false),
            "options": options,
            "error": error,
        })
    }

    /// Reads this field from a posted form as the JSON a service takes.
    fn read(&self, form: &FormData) -> Value {
        let text = form.text(&self.name);
        // A reference's list offers the most recent records; any other is
        // given by pasting its link (`/accounts/ID`) or id, which wins.
        if let Input::Reference(_) = self.input
            && let Some(pasted) = form.text(&format!("{}__link", self.name))
        {
            let id = pasted
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            return Value::String(id);
        }
        match self.input {
            Input::Checkbox => Value::Bool(form.has(&self.name)),
            Input::MultiSelect => Value::Array(
                form.all(&self.name)
                    .into_iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| Value::String(v.to_owned()))
                    .collect(),
            ),
            Input::Tags => Value::Array(
                text.unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect(),
            ),
            Input::Lines => Value::Array(
                text.unwrap_or_default()
                    .lines()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect(),
            ),
            Input::Integer => match text {
                None => Value::Null,
                Some(t) => t
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(t)),
            },
            Input::Datetime => match text {
                None => Value::Null,
                // `datetime-local` sends `2026-11-24T09:30`; the UI shows UTC.
                Some(t) if t.len() == 16 => Value::String(format!("{t}:00Z")),
                Some(t) => Value::String(t),
            },
            _ => text.map_or(Value::Null, Value::String),
        }
    }
}

/// `sales_qualified` → `Sales qualified`.
pub fn label(raw: &str) -> String {
    let text = raw.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A stored value as an input shows it.
fn display_value(input: Input, v: &Value) -> String {
    match (input, v) {
        (_, Value::Null) => String::new(),
        (Input::Lines, Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("\n"),
        (Input::Tags, Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        // `datetime-local` wants `YYYY-MM-DDTHH:MM`.
        (Input::Datetime, Value::String(s)) => s.get(..16).unwrap_or(s).to_owned(),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// The value of `name` (`field` or `custom.key`) in a record's JSON.
pub fn value_at<'a>(record: &'a Value, name: &str) -> &'a Value {
    match name.strip_prefix("custom.") {
        Some(k) => record
            .get("custom")
            .and_then(|c| c.get(k))
            .unwrap_or(&Value::Null),
        None => record.get(name).unwrap_or(&Value::Null),
    }
}

/// Marks fields the caller's role may not change read-only, and drops those
/// it may not see. `aliases` are (output, input) names of one value (a
/// contact's `email` is written through `emails`): a rule on either name
/// holds for the form's field, the stricter one winning.
pub fn apply_field_rules(
    ctx: &crate::context::RequestContext,
    object: ObjectType,
    aliases: &[(&str, &str)],
    fields: Vec<Field>,
) -> Vec<Field> {
    fields
        .into_iter()
        .filter_map(|mut f| {
            let names = std::iter::once(f.name.as_str()).chain(
                aliases
                    .iter()
                    .filter(|(_, input)| *input == f.name)
                    .map(|(output, _)| *output),
            );
            let access = names
                .filter_map(|n| ctx.policy.field_access(object, n))
                .max_by_key(|a| match a {
                    FieldAccess::Hidden => 2,
                    FieldAccess::ReadOnly => 1,
                });
            match access {
                Some(FieldAccess::Hidden) => None,
                Some(FieldAccess::ReadOnly) => {
                    f.read_only = true;
                    Some(f)
                }
                None => Some(f),
            }
        })
        .collect()
}

/// The JSON a posted form asks to write: built-in fields at the top, custom
/// ones under `custom`. Read-only fields are left out, so they keep their
/// values.
pub fn to_input(fields: &[Field], form: &FormData) -> Value {
    let mut top = Map::new();
    let mut custom = Map::new();
    for f in fields.iter().filter(|f| !f.read_only) {
        let v = f.read(form);
        match f.name.strip_prefix("custom.") {
            Some(k) => {
                custom.insert(k.to_owned(), v);
            }
            None => {
                top.insert(f.name.clone(), v);
            }
        }
    }
    if !custom.is_empty() {
        top.insert("custom".to_owned(), Value::Object(custom));
    }
    Value::Object(top)
}

/// The form field a service's error path belongs to: `emails[0].address` →
/// `emails`, `custom.budget` → `custom.budget`.
pub fn field_of(path: &str) -> String {
    let path = path.trim_start_matches('.');
    if let Some(rest) = path.strip_prefix("custom.") {
        let key: String = rest
            .chars()
            .take_while(|c| *c != '.' && *c != '[')
            .collect();
        return format!("custom.{key}");
    }
    path.chars()
        .take_while(|c| *c != '.' && *c != '[')
        .collect()
}

/// Errors by form field; errors naming no field of the form are `""`.
pub fn errors_by_field(fields: &[Field], errors: &[FieldError]) -> Map<String, Value> {
    let mut out = Map::new();
    for e in errors {
        let name = field_of(&e.field);
        let key = if fields.iter().any(|f| f.name == name) {
            name
        } else {
            String::new()
        };
        let message = if key.is_empty() && !e.field.is_empty() {
            format!("{}: {}", e.field, e.message)
        } else {
            e.message.clone()
        };
        out.entry(key)
            .and_modify(|v| {
                if let Value::String(s) = v {
                    s.push_str("; ");
                    s.push_str(&message);
                }
            })
            .or_insert(Value::String(message));
    }
    out
}
