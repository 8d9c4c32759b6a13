//! Write Trellis plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`] (every method has a default,
//! so implement only what the plugin does), registered with
//! [`register_plugin!`], built for `wasm32-wasip2` (`trellis plugin build`).
//! The generated WIT bindings stay private to this crate: plugins see the
//! trait, the typed helpers below ([`records`], [`kv`], [`log`], [`host`])
//! and plain `serde_json` values for records, in the shape the REST API uses.
//!
//! ```ignore
//! use trellis_plugin_sdk::{Plugin, WriteEvent, HookOutcome, FieldError, register_plugin};
//!
//! struct Tidy;
//!
//! impl Plugin for Tidy {
//!     fn new() -> Self { Tidy }
//!     fn before_write(&mut self, event: WriteEvent) -> HookOutcome {
//!         match event.after_str("job_title") {
//!             Some(t) if t != t.trim() => HookOutcome::patch(serde_json::json!({"job_title": t.trim()})),
//!             _ => HookOutcome::Accept,
//!         }
//!     }
//! }
//!
//! register_plugin!(Tidy);
//! ```
//!
//! Each call runs in a fresh instance: a plugin keeps state between calls
//! only in [`kv`] (per tenant) or in records.

extern crate self as trellis_plugin_sdk;

use serde_json::Value;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/trellis-plugin@0.2.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "::trellis_plugin_sdk::bindings",
        runtime_path: "::trellis_plugin_sdk::__wit_bindgen::rt",
    });
}

use bindings::exports::trellis::plugin::guest;
use bindings::trellis::plugin::types as wit;

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Why a host call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The plugin lacks the grant (or the field, or the host).
    Denied(String),
    /// No such record (or none the plugin may see).
    NotFound(String),
    /// The input failed validation.
    Invalid(Vec<FieldError>),
    /// A limit was reached.
    Limit(String),
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Denied(m) => write!(f, "denied: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Invalid(errors) => {
                write!(f, "invalid:")?;
                for e in errors {
                    write!(f, " {}: {};", e.field, e.message)?;
                }
                Ok(())
            }
            Error::Limit(m) => write!(f, "limit: {m}"),
            Error::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::HostError> for Error {
    fn from(e: wit::HostError) -> Self {
        match e {
            wit::HostError::Denied(m) => Error::Denied(m),
            wit::HostError::NotFound(m) => Error::NotFound(m),
            wit::HostError::Invalid(list) => {
                Error::Invalid(list.into_iter().map(FieldError::from).collect())
            }
            wit::HostError::Limit(m) => Error::Limit(m),
            wit::HostError::Failed(m) => Error::Failed(m),
        }
    }
}

/// A problem with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: &str) -> Self {
        FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl From<wit::FieldError> for FieldError {
    fn from(e: wit::FieldError) -> Self {
        FieldError {
            field: e.field,
            code: e.code,
            message: e.message,
        }
    }
}

impl From<FieldError> for wit::FieldError {
    fn from(e: FieldError) -> Self {
        wit::FieldError {
            field: e.field,
            code: e.code,
            message: e.message,
        }
    }
}

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Create,
    Update,
    Delete,
}

/// A write of a record as a hook sees it (only granted fields present).
#[derive(Debug, Clone)]
pub struct WriteEvent {
    /// `contact`, `account`, `deal` or `activity`.
    pub object_type: String,
    pub op: WriteOp,
    pub record_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl WriteEvent {
    /// A string field of the record as it will be (or was) written.
    pub fn after_str(&self, field: &str) -> Option<&str> {
        field_of(self.after.as_ref()?, field)?.as_str()
    }

    /// A field of the record as it will be (or was) written: `name` or
    /// `custom.key`.
    pub fn after_field(&self, field: &str) -> Option<&Value> {
        field_of(self.after.as_ref()?, field)
    }

    /// A field of the stored record before the write.
    pub fn before_field(&self, field: &str) -> Option<&Value> {
        field_of(self.before.as_ref()?, field)
    }

    /// Whether the write changes `field`.
    pub fn changes(&self, field: &str) -> bool {
        self.before_field(field) != self.after_field(field)
    }
}

/// A field of a record's JSON: `name`, or `custom.key` for custom fields.
pub fn field_of<'a>(record: &'a Value, field: &str) -> Option<&'a Value> {
    match field.strip_prefix("custom.") {
        Some(key) => record.get("custom")?.get(key),
        None => record.get(field),
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl From<wit::WriteEvent> for WriteEvent {
    fn from(e: wit::WriteEvent) -> Self {
        WriteEvent {
            object_type: e.object_type,
            op: match e.op {
                wit::WriteOp::Create => WriteOp::Create,
                wit::WriteOp::Update => WriteOp::Update,
                wit::WriteOp::Delete => WriteOp::Delete,
            },
            record_id: e.record_id,
            before: e.before.as_deref().map(parse_json),
            after: e.after.as_deref().map(parse_json),
        }
    }
}

/// A before-write hook's answer.
#[derive(Debug, Clone)]
pub enum HookOutcome {
    /// Write as proposed.
    Accept,
    /// Write with these changes: a JSON merge patch of granted fields.
    Patch(Value),
    /// Refuse the write (422 with these errors).
    Reject(Vec<FieldError>),
}

impl HookOutcome {
    pub fn patch(changes: Value) -> Self {
        HookOutcome::Patch(changes)
    }

    /// Refuses the write for one field.
    pub fn reject(field: &str, code: &str, message: &str) -> Self {
        HookOutcome::Reject(vec![FieldError::new(field, code, message)])
    }
}

/// An HTTP request to one of the plugin's routes.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Below `/api/v1/plugins/{plugin-id}`, starting with `/`.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The signed-in caller's user id (set by the kernel, never by the
    /// client); `None` on public routes and for keys without a user.
    pub fn caller_user_id(&self) -> Option<&str> {
        self.header("trellis-user-id").filter(|v| !v.is_empty())
    }

    /// Whether the signed-in caller holds `permission` (`deal:export`), as
    /// the kernel says; always `false` on public routes.
    pub fn caller_may(&self, permission: &str) -> bool {
        self.header("trellis-permissions")
            .is_some_and(|held| held.split(' ').any(|p| p == permission))
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, body: &Value) -> Self {
        Response {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    /// The body parsed as JSON.
    pub fn body_json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }
}

/// A panel on a record page: a title and labelled values (the kernel's UI
/// renders and escapes it).
#[derive(Debug, Clone)]
pub struct Panel {
    pub id: String,
    pub title: String,
    pub items: Vec<PanelItem>,
}

/// One line of a [`Panel`].
#[derive(Debug, Clone)]
pub struct PanelItem {
    pub label: String,
    pub value: String,
    pub link: Option<String>,
}

impl Panel {
    pub fn new(id: &str, title: &str) -> Self {
        Panel {
            id: id.to_owned(),
            title: title.to_owned(),
            items: Vec::new(),
        }
    }

    /// Adds a line.
    pub fn item(mut self, label: &str, value: impl Into<String>) -> Self {
        self.items.push(PanelItem {
            label: label.to_owned(),
            value: value.into(),
            link: None,
        });
        self
    }

    /// Adds a line linking to `link`.
    pub fn link(mut self, label: &str, value: impl Into<String>, link: &str) -> Self {
        self.items.push(PanelItem {
            label: label.to_owned(),
            value: value.into(),
            link: Some(link.to_owned()),
        });
        self
    }
}

/// A Trellis plugin. Every method has a default that does nothing, so a
/// plugin implements only the exports it uses; the manifest (`plugin.toml`)
/// says which hooks, routes and schedules the kernel calls.
pub trait Plugin: 'static {
    /// Builds the plugin for one call.
    fn new() -> Self
    where
        Self: Sized;

    /// Once per tenant when enabled, and on upgrade with the version it
    /// upgrades from.
    fn install(&mut self, previous_version: Option<String>) -> Result<(), String> {
        let _ = previous_version;
        Ok(())
    }

    /// Before a record of a subscribed type is written.
    fn before_write(&mut self, event: WriteEvent) -> HookOutcome {
        let _ = event;
        HookOutcome::Accept
    }

    /// Before the records of one bulk request or import batch are written
    /// (one type, one operation): one outcome per event, in order. A large
    /// batch comes in slices of at most 100 events, one call each under the
    /// plugin's limits; a slice whose call fails is asked again event by
    /// event through [`Plugin::before_write`]. The default answers each with
    /// [`Plugin::before_write`]; override it when the batch can be checked
    /// together (one query for all the records instead of one each).
    fn before_write_batch(&mut self, events: Vec<WriteEvent>) -> Vec<HookOutcome> {
        events.into_iter().map(|e| self.before_write(e)).collect()
    }

    /// After a write was committed (at least once; an error is retried).
    fn after_write(&mut self, event: WriteEvent) -> Result<(), String> {
        let _ = event;
        Ok(())
    }

    /// A scheduled or enqueued job.
    fn run_job(&mut self, name: &str, payload: Value) -> Result<(), String> {
        let _ = payload;
        Err(format!("this plugin has no job `{name}`"))
    }

    /// A request to one of the plugin's routes.
    fn handle_http(&mut self, request: Request) -> Response {
        let _ = request;
        Response::status(404)
    }

    /// Panels for a record page.
    fn panels(&mut self, object_type: &str, record: &Value) -> Vec<Panel> {
        let _ = (object_type, record);
        Vec::new()
    }

    /// What the plugin keeps about a contact (in its key-value store or
    /// elsewhere outside records), for a data subject's access request.
    /// Records the plugin created are exported by the kernel already.
    fn personal_data(&mut self, contact_id: &str) -> Option<Value> {
        let _ = contact_id;
        None
    }

    /// Removes what the plugin keeps about an erased contact.
    fn erase_personal_data(&mut self, contact_id: &str) -> Result<(), String> {
        let _ = contact_id;
        Ok(())
    }
}

/// Exports a [`Plugin`] type as the component's implementation. The
/// plugin describes itself by its crate's name and version, or by an `id`
/// and `version` given here (when the crate's name cannot be the plugin's:
/// two versions of one plugin built side by side).
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        $crate::register_plugin!($plugin, id = env!("CARGO_PKG_NAME"), version = env!("CARGO_PKG_VERSION"));
    };
    ($plugin:ty, id = $id:expr, version = $version:expr) => {
        #[doc(hidden)]
        struct __TrellisPlugin;

        impl $crate::Guest for __TrellisPlugin {
            type Plugin = $plugin;
            const ID: &'static str = $id;
            const VERSION: &'static str = $version;
        }

        $crate::bindings::__export_plugin!(__TrellisPlugin with_types_in $crate::bindings);
    };
}

/// The glue [`register_plugin!`] implements; not for direct use.
#[doc(hidden)]
pub trait Guest {
    type Plugin: Plugin;
    const ID: &'static str;
    const VERSION: &'static str;
}

impl<G: Guest> guest::Guest for G {
    fn describe() -> String {
        serde_json::json!({
            "id": G::ID,
            "version": G::VERSION,
            "contract": CONTRACT_VERSION,
            "sdk": env!("CARGO_PKG_VERSION"),
        })
        .to_string()
    }

    fn install(previous_version: Option<String>) -> Result<(), String> {
        G::Plugin::new().install(previous_version)
    }

    fn before_write(event: wit::WriteEvent) -> wit::HookOutcome {
        G::Plugin::new().before_write(event.into()).into()
    }

    fn before_write_batch(events: Vec<wit::WriteEvent>) -> Vec<wit::HookOutcome> {
        G::Plugin::new()
            .before_write_batch(events.into_iter().map(Into::into).collect())
            .into_iter()
            .map(Into::into)
            .collect()
    }

    fn after_write(event: wit::WriteEvent) -> Result<(), String> {
        G::Plugin::new().after_write(event.into())
    }

    fn run_job(name: String, payload: String) -> Result<(), String> {
        G::Plugin::new().run_job(&name, parse_json(&payload))
    }

    fn handle_http(request: wit::HttpRequest) -> wit::HttpResponse {
        let r = G::Plugin::new().handle_http(Request {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
        });
        wit::HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }

    fn personal_data(contact_id: String) -> Option<String> {
        G::Plugin::new()
            .personal_data(&contact_id)
            .map(|v| v.to_string())
    }

    fn erase_personal_data(contact_id: String) -> Result<(), String> {
        G::Plugin::new().erase_personal_data(&contact_id)
    }

    fn panels(object_type: String, record: String) -> Vec<wit::Panel> {
        G::Plugin::new()
            .panels(&object_type, &parse_json(&record))
            .into_iter()
            .map(|p| wit::Panel {
                id: p.id,
                title: p.title,
                items: p
                    .items
                    .into_iter()
                    .map(|i| wit::PanelItem {
                        label: i.label,
                        value: i.value,
                        link: i.link,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Typed views of the built-in records, for plugins that prefer structs to
/// JSON. Fields the plugin was not granted are absent (`None` or empty);
/// unknown fields are ignored, so a newer kernel adding fields does not
/// break a plugin.
pub mod types {
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    /// An email address of a contact.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Email {
        pub address: String,
        #[serde(default)]
        pub primary: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub label: Option<String>,
    }

    /// A phone number of a contact.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Phone {
        pub number: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub label: Option<String>,
    }

    /// A contact.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Contact {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(default)]
        pub first_name: Option<String>,
        #[serde(default)]
        pub last_name: Option<String>,
        #[serde(default)]
        pub emails: Vec<Email>,
        #[serde(default)]
        pub phones: Vec<Phone>,
        #[serde(default)]
        pub job_title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub lifecycle_stage: Option<String>,
        #[serde(default)]
        pub tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner_id: Option<String>,
        /// Custom field values by key.
        #[serde(default)]
        pub custom: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version: Option<i64>,
    }

    /// A deal (amounts are exact decimals as strings).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Deal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(default)]
        pub name: Option<String>,
        #[serde(default)]
        pub amount: Option<String>,
        #[serde(default)]
        pub currency: Option<String>,
        #[serde(default)]
        pub pipeline_id: Option<String>,
        #[serde(default)]
        pub stage_id: Option<String>,
        #[serde(default)]
        pub contact_id: Option<String>,
        #[serde(default)]
        pub account_id: Option<String>,
        #[serde(default)]
        pub owner_id: Option<String>,
        #[serde(default)]
        pub custom: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version: Option<i64>,
    }

    /// An activity (task, call, meeting, email, note).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Activity {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(default)]
        pub kind: Option<String>,
        #[serde(default)]
        pub subject: Option<String>,
        #[serde(default)]
        pub body: Option<String>,
        #[serde(default)]
        pub due_at: Option<String>,
        #[serde(default)]
        pub done: Option<bool>,
        #[serde(default)]
        pub contact_id: Option<String>,
        #[serde(default)]
        pub account_id: Option<String>,
        #[serde(default)]
        pub deal_id: Option<String>,
        #[serde(default)]
        pub custom: Map<String, Value>,
    }
}

impl From<HookOutcome> for wit::HookOutcome {
    fn from(o: HookOutcome) -> Self {
        match o {
            HookOutcome::Accept => wit::HookOutcome::Accept,
            HookOutcome::Patch(v) => wit::HookOutcome::Patch(v.to_string()),
            HookOutcome::Reject(errors) => {
                wit::HookOutcome::Reject(errors.into_iter().map(Into::into).collect())
            }
        }
    }
}

impl WriteEvent {
    /// The record as it will be (or was) written, as a typed view.
    pub fn after_as<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.after.clone()?).ok()
    }
}

/// Records of the plugin's tenant, through the same services as the API:
/// tenant scoping, granted object types and fields, validation, audit.
pub mod records {
    use super::{Error, Value, parse_json};
    use crate::bindings::trellis::plugin::records as wit;

    /// One record by id.
    pub fn get(object_type: &str, id: &str) -> Result<Value, Error> {
        Ok(parse_json(&wit::get(object_type, id)?))
    }

    /// The records of `ids` (at most 200) in one host call, in the order
    /// asked, each once; a merged-away id answers with its survivor (as
    /// [`get`] does); ids of no record, or of one the plugin may not see,
    /// are left out.
    pub fn get_many(object_type: &str, ids: &[String]) -> Result<Vec<Value>, Error> {
        match parse_json(&wit::get_many(object_type, ids)?) {
            Value::Array(list) => Ok(list),
            other => Err(Error::Failed(format!("get-many answered {other}"))),
        }
    }

    /// One record by id as a typed view (`types::Contact`...).
    pub fn get_as<T: serde::de::DeserializeOwned>(object_type: &str, id: &str) -> Result<T, Error> {
        serde_json::from_value(get(object_type, id)?).map_err(|e| Error::Failed(e.to_string()))
    }

    /// Creates a record; returns it as stored.
    pub fn create(object_type: &str, record: &Value) -> Result<Value, Error> {
        Ok(parse_json(&wit::create(object_type, &record.to_string())?))
    }

    /// Applies a JSON merge patch to the record at `version`.
    pub fn update(
        object_type: &str,
        id: &str,
        patch: &Value,
        version: i64,
    ) -> Result<Value, Error> {
        Ok(parse_json(&wit::update(
            object_type,
            id,
            &patch.to_string(),
            version,
        )?))
    }

    pub fn delete(object_type: &str, id: &str) -> Result<(), Error> {
        Ok(wit::delete(object_type, id)?)
    }

    /// A list query, built up and then [`Query::fetch`]ed.
    #[derive(Debug, Clone)]
    pub struct Query {
        object_type: String,
        filters: Vec<String>,
        sort: String,
        limit: u32,
        cursor: Option<String>,
    }

    /// One page of a query.
    #[derive(Debug, Clone)]
    pub struct Page {
        pub data: Vec<Value>,
        /// Pass to [`Query::after`] for the next page.
        pub next_cursor: Option<String>,
    }

    impl Query {
        pub fn new(object_type: &str) -> Self {
            Query {
                object_type: object_type.to_owned(),
                filters: Vec::new(),
                sort: String::new(),
                limit: 50,
                cursor: None,
            }
        }

        /// Adds a filter: `field` (`custom.key` for custom fields), an
        /// operator (`eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `contains`, `in`...)
        /// and a value, as the API's `filter` parameter takes them.
        pub fn filter(mut self, field: &str, op: &str, value: &str) -> Self {
            self.filters.push(format!("{field}:{op}:{value}"));
            self
        }

        /// Sort by `field` (`-field` for descending).
        pub fn sort(mut self, sort: &str) -> Self {
            self.sort = sort.to_owned();
            self
        }

        /// At most `limit` records per page (1-500).
        pub fn limit(mut self, limit: u32) -> Self {
            self.limit = limit;
            self
        }

        /// Continues after a previous page.
        pub fn after(mut self, cursor: Option<String>) -> Self {
            self.cursor = cursor;
            self
        }

        /// Runs the query.
        pub fn fetch(&self) -> Result<Page, Error> {
            let text = wit::query(
                &self.object_type,
                &self.filters.join("\n"),
                &self.sort,
                self.limit,
                self.cursor.as_deref(),
            )?;
            let mut v = parse_json(&text);
            let data = match v.get_mut("data").map(Value::take) {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            let next_cursor = v
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(Page { data, next_cursor })
        }
    }
}

/// A key-value store private to the plugin and the tenant.
pub mod kv {
    use super::Error;
    use crate::bindings::trellis::plugin::kv as wit;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(wit::get(key)?)
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
        Ok(wit::set(key, value)?)
    }

    pub fn delete(key: &str) -> Result<(), Error> {
        Ok(wit::delete(key)?)
    }

    /// Keys starting with `prefix`, in order.
    pub fn keys(prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
        Ok(wit::list_keys(prefix, limit)?)
    }

    /// A JSON value stored under `key`.
    pub fn get_json(key: &str) -> Result<Option<serde_json::Value>, Error> {
        get(key)?
            .map(|b| serde_json::from_slice(&b).map_err(|e| Error::Failed(e.to_string())))
            .transpose()
    }

    pub fn set_json(key: &str, value: &serde_json::Value) -> Result<(), Error> {
        set(key, value.to_string().as_bytes())
    }
}

/// The plugin's log (`trellis plugin logs`).
pub mod log {
    use crate::bindings::trellis::plugin::log as wit;

    pub fn debug(message: &str) {
        wit::write(wit::Level::Debug, message);
    }

    pub fn info(message: &str) {
        wit::write(wit::Level::Info, message);
    }

    pub fn warn(message: &str) {
        wit::write(wit::Level::Warn, message);
    }

    pub fn error(message: &str) {
        wit::write(wit::Level::Error, message);
    }
}

/// The host's services.
pub mod host {
    use super::{Error, Response, Value, parse_json};
    use crate::bindings::trellis::plugin::host as wit;
    use crate::bindings::trellis::plugin::types::OutboundRequest;

    /// Milliseconds since the Unix epoch.
    pub fn now_ms() -> i64 {
        wit::now_ms()
    }

    /// Random bytes from the host (at most 4096 per call).
    pub fn random_bytes(n: u32) -> Vec<u8> {
        wit::random_bytes(n)
    }

    /// The tenant's configuration of the plugin.
    pub fn config() -> Value {
        parse_json(&wit::config())
    }

    pub fn tenant_id() -> String {
        wit::tenant_id()
    }

    /// An HTTP request to a host on the manifest's allow-list.
    pub fn fetch(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let r = wit::http_fetch(&OutboundRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        })?;
        Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }

    /// Queues an email in the tenant's outbox.
    pub fn send_email(to: &str, subject: &str, body: &str) -> Result<(), Error> {
        Ok(wit::send_email(to, subject, body)?)
    }

    /// Runs the plugin's job `name` later; returns the job id.
    pub fn enqueue_job(name: &str, payload: &Value, delay_ms: u64) -> Result<String, Error> {
        Ok(wit::enqueue_job(name, &payload.to_string(), delay_ms)?)
    }

    /// Publishes an event `{plugin-id}.{name}`.
    pub fn emit_event(name: &str, payload: &Value) -> Result<(), Error> {
        Ok(wit::emit_event(name, &payload.to_string())?)
    }
}
