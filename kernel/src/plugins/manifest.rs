//! `plugin.toml`: what a plugin is, which contract it was built for, and
//! which capabilities, hooks, routes, schedules, fields and configuration it
//! asks for. The manifest is data the kernel reads before it runs any code;
//! the tenant's admin grants capabilities from it (the second key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::permissions::ObjectType;

/// Record types plugins can hook and reach.
pub const RECORD_TYPES: &[ObjectType] = &[
    ObjectType::Contact,
    ObjectType::Account,
    ObjectType::Deal,
    ObjectType::Activity,
];

/// A plugin's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and `-`; unique on the platform.
    pub id: String,
    pub name: String,
    /// Semantic version of the plugin.
    pub version: String,
    /// The contract version it was built for (`0.2.0`; older ones run
    /// through a shim, see `plugins::contract`).
    pub contract: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub custom_fields: Vec<CustomFieldDecl>,
    /// Custom objects the plugin declares (created, or given new fields,
    /// when it is enabled or upgraded).
    #[serde(default)]
    pub custom_objects: Vec<CustomObjectDecl>,
    /// JSON Schema the tenant's configuration must satisfy.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config_schema: Option<serde_json::Value>,
    /// Limits the plugin asks for (capped by the kernel's maximums).
    #[serde(default)]
    pub limits: RequestedLimits,
}

/// What a plugin may ask for. Each becomes a capability string the admin
/// grants: `records:contact:read`, `kv`, `http:api.example.com`, `email`,
/// `jobs`, `events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Actions per record type: `read`, `create`, `update`, `delete`.
    #[serde(default)]
    pub records: BTreeMap<String, Vec<String>>,
    /// Per record type, the only fields the plugin sees and writes (absent:
    /// every field its actions reach). `custom.KEY` for custom fields.
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub kv: bool,
    /// Hosts outbound HTTP may reach (exact names, with `:port` if not the
    /// scheme's default).
    #[serde(default)]
    pub http: Vec<String>,
    /// Outbound HTTP to hosts the tenant's admin names when enabling the
    /// plugin (an MLS server, an ERP), which its author cannot know: the
    /// admin may grant `http:HOST` for hosts of their choosing.
    #[serde(default)]
    pub http_configurable: bool,
    #[serde(default)]
    pub email: bool,
    #[serde(default)]
    pub jobs: bool,
    #[serde(default)]
    pub events: bool,
}

/// Record types whose writes call the plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default)]
    pub before_write: Vec<String>,
    #[serde(default)]
    pub after_write: Vec<String>,
}

/// An HTTP route under `/api/v1/plugins/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub method: String,
    /// Starts with `/`; a trailing `/*` matches any rest.
    pub path: String,
    /// `user` (default): the caller signs in like for any API call and the
    /// plugin acts for the tenant; `public`: anyone may call (an inbound
    /// webhook, which must check its own signature); the tenant is then
    /// named by the host name or `X-Trellis-Tenant`.
    #[serde(default = "user_auth")]
    pub auth: String,
    /// For `user` routes: a permission the caller must hold,
    /// `object:action` (`contact:update`). The plugin acts with its own
    /// grants, so a route that writes should name the right a caller needs
    /// to ask for that write.
    #[serde(default)]
    pub requires: Option<String>,
}

fn user_auth() -> String {
    "user".to_owned()
}

/// A recurring job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The job name passed to `run-job`.
    pub job: String,
    /// Run every this many seconds (at least 60).
    pub every_seconds: u64,
}

/// A custom field the plugin declares on a record type: the same fields as
/// `POST /api/v1/custom-fields`.
pub type CustomFieldDecl = crate::crm::custom_fields::CustomFieldInput;

/// A custom object the plugin declares.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomObjectDecl {
    pub key: String,
    pub label: String,
    pub plural_label: String,
    /// As `PUT /api/v1/objects/{key}` takes them.
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<serde_json::Value>,
}

/// Per-invocation limits a manifest asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    pub deadline_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub host_calls: Option<u32>,
}

impl Manifest {
    /// Parses and checks a `plugin.toml`.
    pub fn parse(text: &str) -> Result<Manifest> {
        let m: Manifest = toml::from_str(text)
            .map_err(|e| Error::field("manifest", "invalid_format", e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !self.id.starts_with('-');
        if !id_ok {
            return Err(Error::field(
                "manifest.id",
                "invalid_format",
                "lower-case letters, digits and `-`, at most 64",
            ));
        }
        if !crate::plugins::contract::SUPPORTED.contains(&self.contract.as_str()) {
            return Err(Error::field(
                "manifest.contract",
                "unsupported_contract",
                format!(
                    "this plugin was built for contract {}; this kernel supports {}",
                    self.contract,
                    crate::plugins::contract::SUPPORTED.join(", ")
                ),
            ));
        }
        let version_ok = self.version.split('.').count() == 3
            && self
                .version
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !version_ok {
            return Err(Error::field(
                "manifest.version",
                "invalid_format",
                "a version is MAJOR.MINOR.PATCH",
            ));
        }
        for (object, actions) in &self.capabilities.records {
            grantable_type(object, "manifest.capabilities.records")?;
            for a in actions {
                if !["read", "create", "update", "delete"].contains(&a.as_str()) {
                    return Err(Error::field(
                        format!("manifest.capabilities.records.{object}"),
                        "invalid_value",
                        format!("`{a}`: use read, create, update, delete"),
                    ));
                }
            }
        }
        for object in self.capabilities.fields.keys() {
            grantable_type(object, "manifest.capabilities.fields")?;
        }
        for (i, h) in self.capabilities.http.iter().enumerate() {
            if !is_host(h) {
                return Err(Error::field(
                    format!("manifest.capabilities.http[{i}]"),
                    "invalid_value",
                    "a host name (with `:port` if needed), no scheme, path or wildcard",
                ));
            }
        }
        for t in self
            .hooks
            .before_write
            .iter()
            .chain(&self.hooks.after_write)
        {
            // A built-in record type, or a custom object's key.
            let hookable = match ObjectType::parse(t) {
                Some(o) => RECORD_TYPES.contains(&o),
                None => is_object_key(t),
            };
            if !hookable {
                return Err(Error::field(
                    "manifest.hooks",
                    "invalid_value",
                    format!("`{t}`: use contact, account, deal, activity or a custom object's key"),
                ));
            }
        }
        for (i, o) in self.custom_objects.iter().enumerate() {
            if !is_object_key(&o.key) {
                return Err(Error::field(
                    format!("manifest.custom_objects[{i}].key"),
                    "invalid_value",
                    "lower-case letters, digits and `_`, not a built-in type",
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(req) = &r.requires
                && (r.auth != "user" || crate::permissions::parse_permission(req).is_none())
            {
                return Err(Error::field(
                    format!("manifest.routes[{i}].requires"),
                    "invalid_value",
                    "`object:action` (`contact:update`), on a `user` route",
                ));
            }
            let ok = r.path.starts_with('/')
                && ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str())
                && ["user", "public"].contains(&r.auth.as_str());
            if !ok {
                return Err(Error::field(
                    format!("manifest.routes[{i}]"),
                    "invalid_value",
                    "a route has an upper-case method, a path starting with `/`, and auth `user` or `public`",
                ));
            }
        }
        for (i, s) in self.schedules.iter().enumerate() {
            if s.every_seconds < 60 {
                return Err(Error::field(
                    format!("manifest.schedules[{i}].every_seconds"),
                    "out_of_range",
                    "at least 60",
                ));
            }
        }
        if !self.schedules.is_empty() && !self.capabilities.jobs {
            return Err(Error::field(
                "manifest.schedules",
                "invalid_value",
                "schedules need the `jobs` capability",
            ));
        }
        for (i, f) in self.custom_fields.iter().enumerate() {
            if let Err(errors) = crate::crm::custom_fields::check_definition(f, uuid::Uuid::nil()) {
                let detail: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                return Err(Error::field(
                    format!("manifest.custom_fields[{i}]"),
                    "invalid_value",
                    detail.join("; "),
                ));
            }
        }
        if let Some(schema) = &self.config_schema
            && jsonschema::validator_for(schema).is_err()
        {
            return Err(Error::field(
                "manifest.config_schema",
                "invalid_value",
                "not a valid JSON Schema",
            ));
        }
        Ok(())
    }

    /// Every capability the manifest asks for, as grant strings.
    pub fn capabilities(&self) -> Vec<String> {
        let c = &self.capabilities;
        let mut out = Vec::new();
        for (object, actions) in &c.records {
            for a in actions {
                out.push(format!("records:{object}:{a}"));
            }
        }
        if c.kv {
            out.push("kv".to_owned());
        }
        for h in &c.http {
            out.push(format!("http:{h}"));
        }
        for (flag, name) in [(c.email, "email"), (c.jobs, "jobs"), (c.events, "events")] {
            if flag {
                out.push(name.to_owned());
            }
        }
        out
    }

    /// Whether writes of `name` (a record type, or a custom object's key)
    /// call the plugin before (`before`) or after.
    pub fn hooks(&self, name: &str, before: bool) -> bool {
        let list = if before {
            &self.hooks.before_write
        } else {
            &self.hooks.after_write
        };
        list.iter().any(|t| t == name)
    }
}

/// Whether `h` names a host for the outbound allow-list: a host name (and
/// `:port`), no scheme, path, credentials or wildcard.
pub fn is_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Whether `name` can be a custom object's key.
fn is_object_key(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && ObjectType::parse(name).is_none()
}

/// A type a plugin can be granted records of: the built-in record types,
/// and `custom_object` for every custom object.
fn grantable_type(name: &str, field: &str) -> Result<ObjectType> {
    if name == ObjectType::CustomObject.as_str() {
        return Ok(ObjectType::CustomObject);
    }
    record_type(name, field)
}

fn record_type(name: &str, field: &str) -> Result<ObjectType> {
    ObjectType::parse(name)
        .filter(|o| RECORD_TYPES.contains(o))
        .ok_or_else(|| {
            Error::field(
                field,
                "invalid_value",
                format!("`{name}`: use contact, account, deal or activity"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        id = "tidy"
        name = "Tidy"
        version = "1.2.3"
        contract = "0.1.0"
        [capabilities]
        records = { contact = ["read", "update"] }
        http = ["api.example.com"]
        kv = true
        [hooks]
        before_write = ["contact"]
    "#;

    #[test]
    fn capabilities_become_grant_strings() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(
            m.capabilities(),
            [
                "records:contact:read",
                "records:contact:update",
                "kv",
                "http:api.example.com"
            ]
        );
        assert!(m.hooks("contact", true));
        assert!(!m.hooks("contact", false));
    }

    #[test]
    fn an_unknown_contract_names_the_supported_ones() {
        let text = GOOD.replace("0.1.0", "9.0.0");
        let err = Manifest::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("9.0.0") && err.contains("supports 0.1.0, 0.2.0"),
            "{err}"
        );
    }

    #[test]
    fn bad_manifests_name_the_field() {
        for (from, to, field) in [
            ("id = \"tidy\"", "id = \"Tidy!\"", "manifest.id"),
            (
                "contact = [\"read\", \"update\"]",
                "contact = [\"fly\"]",
                "manifest.capabilities.records.contact",
            ),
            (
                "\"api.example.com\"",
                "\"*.example.com\"",
                "manifest.capabilities.http[0]",
            ),
            (
                "before_write = [\"contact\"]",
                "before_write = [\"user\"]",
                "manifest.hooks",
            ),
        ] {
            let err = Manifest::parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(format!("{err:?}").contains(field), "{field}: {err:?}");
        }
    }
}
