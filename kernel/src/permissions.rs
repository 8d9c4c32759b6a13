//! What each caller may do. Every service call asks here before it touches
//! data.
//!
//! A tenant's roles (built-in ones seeded per tenant, and its own) are rows
//! of `roles`; a caller's roles resolve to one [`Policy`]: per object type,
//! the actions allowed and the record scope (own, team, all), and per field,
//! whether it is hidden or read-only. Several roles combine to the most
//! permissive of each. An API key may narrow its policy further with scopes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::collections::HashMap;

use crate::context::RequestContext;
use crate::error::{Error, Result};

/// The kinds of record the kernel stores.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    Contact,
    Account,
    Deal,
    Activity,
    Pipeline,
    CustomField,
    User,
    Role,
    Team,
    ApiKey,
    Session,
    Tenant,
    AuditLog,
    /// A plugin enabled for the tenant (managing it, its grants and logs).
    Plugin,
    /// Records of the tenant's custom objects (one permission for all of
    /// them; defining objects is `manage_settings`).
    CustomObject,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Contact => "contact",
            ObjectType::Account => "account",
            ObjectType::Deal => "deal",
            ObjectType::Activity => "activity",
            ObjectType::Pipeline => "pipeline",
            ObjectType::CustomField => "custom_field",
            ObjectType::User => "user",
            ObjectType::Role => "role",
            ObjectType::Team => "team",
            ObjectType::ApiKey => "api_key",
            ObjectType::Session => "session",
            ObjectType::Tenant => "tenant",
            ObjectType::AuditLog => "audit_log",
            ObjectType::Plugin => "plugin",
            ObjectType::CustomObject => "custom_object",
        }
    }

    /// Every object type, for permission tables and role editors.
    pub const ALL: [ObjectType; 15] = [
        ObjectType::Contact,
        ObjectType::Account,
        ObjectType::Deal,
        ObjectType::Activity,
        ObjectType::Pipeline,
        ObjectType::CustomField,
        ObjectType::User,
        ObjectType::Role,
        ObjectType::Team,
        ObjectType::ApiKey,
        ObjectType::Session,
        ObjectType::Tenant,
        ObjectType::AuditLog,
        ObjectType::Plugin,
        ObjectType::CustomObject,
    ];

    pub fn parse(s: &str) -> Option<ObjectType> {
        Some(match s {
            "contact" => ObjectType::Contact,
            "account" => ObjectType::Account,
            "deal" => ObjectType::Deal,
            "activity" => ObjectType::Activity,
            "pipeline" => ObjectType::Pipeline,
            "custom_field" => ObjectType::CustomField,
            "user" => ObjectType::User,
            "role" => ObjectType::Role,
            "team" => ObjectType::Team,
            "api_key" => ObjectType::ApiKey,
            "session" => ObjectType::Session,
            "tenant" => ObjectType::Tenant,
            "audit_log" => ObjectType::AuditLog,
            "plugin" => ObjectType::Plugin,
            "custom_object" => ObjectType::CustomObject,
            _ => return None,
        })
    }

    /// The table holding records of this type.
    pub fn table(self) -> &'static str {
        match self {
            ObjectType::Contact => "contacts",
            ObjectType::Account => "accounts",
            ObjectType::Deal => "deals",
            ObjectType::Activity => "activities",
            ObjectType::Pipeline => "pipelines",
            ObjectType::CustomField => "custom_fields",
            ObjectType::User => "users",
            ObjectType::Role => "roles",
            ObjectType::Team => "teams",
            ObjectType::ApiKey => "api_tokens",
            ObjectType::Session => "sessions",
            ObjectType::Tenant => "tenants",
            ObjectType::AuditLog => "audit_log",
            ObjectType::Plugin => "tenant_plugins",
            ObjectType::CustomObject => "object_records",
        }
    }

    /// Object types a tenant can add custom fields to.
    pub fn has_custom_fields(self) -> bool {
        matches!(
            self,
            ObjectType::Contact | ObjectType::Account | ObjectType::Deal | ObjectType::Activity
        )
    }
}

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    Export,
    Import,
    ManageSettings,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Export,
        Action::Import,
        Action::ManageSettings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Export => "export",
            Action::Import => "import",
            Action::ManageSettings => "manage_settings",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which records of a type a role reaches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Records the caller owns.
    Own,
    /// Records owned by the caller or by members of the caller's teams.
    Team,
    #[default]
    All,
}

/// A field's restriction for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    /// Readable, not writable.
    ReadOnly,
    /// Never sent to this role, and not writable.
    Hidden,
}

/// One object type's rule in a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectRule {
    pub actions: Vec<Action>,
    #[serde(default)]
    pub scope: Scope,
}

/// A role as stored: rules per object type, field restrictions per object
/// type (`field` or `custom.key` → access).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoleRules {
    pub permissions: HashMap<ObjectType, ObjectRule>,
    pub field_rules: HashMap<ObjectType, HashMap<String, FieldAccess>>,
    pub mfa_required: bool,
}

/// The built-in roles every tenant starts with, as `(key, name, rules)`.
pub fn built_in_roles() -> Vec<(&'static str, &'static str, RoleRules)> {
    let crm = [
        ObjectType::Contact,
        ObjectType::Account,
        ObjectType::Deal,
        ObjectType::Activity,
        ObjectType::CustomObject,
    ];
    let settings = [
        ObjectType::Pipeline,
        ObjectType::CustomField,
        ObjectType::User,
        ObjectType::Role,
        ObjectType::Team,
    ];
    let rule = |actions: &[Action]| ObjectRule {
        actions: actions.to_vec(),
        scope: Scope::All,
    };
    let mut admin = RoleRules::default();
    for o in ObjectType::ALL {
        admin.permissions.insert(o, rule(&Action::ALL));
    }
    let mut manager = RoleRules::default();
    let mut sales = RoleRules::default();
    let mut read_only = RoleRules::default();
    for o in crm {
        manager.permissions.insert(
            o,
            rule(&[
                Action::Read,
                Action::Create,
                Action::Update,
                Action::Delete,
                Action::Export,
                Action::Import,
            ]),
        );
        sales
            .permissions
            .insert(o, rule(&[Action::Read, Action::Create, Action::Update]));
        read_only.permissions.insert(o, rule(&[Action::Read]));
    }
    for o in settings {
        manager.permissions.insert(o, rule(&[Action::Read]));
    }
    for o in [ObjectType::Pipeline, ObjectType::CustomField] {
        sales.permissions.insert(o, rule(&[Action::Read]));
        read_only.permissions.insert(o, rule(&[Action::Read]));
    }
    vec![
        ("admin", "Administrator", admin),
        ("manager", "Manager", manager),
        ("sales_rep", "Sales rep", sales),
        ("read_only", "Read only", read_only),
    ]
}

#[derive(Debug, Clone, Copy, Default)]
struct Grant {
    actions: u8,
    scope: Scope,
}

/// The resolved permissions of one caller.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    grants: HashMap<ObjectType, Grant>,
    fields: HashMap<ObjectType, HashMap<String, FieldAccess>>,
    /// Whether any of the roles requires MFA.
    pub mfa_required: bool,
}

impl Policy {
    /// Everything allowed: the kernel acting for itself.
    pub fn unrestricted() -> Policy {
        let mut p = Policy::default();
        for o in ObjectType::ALL {
            p.grants.insert(
                o,
                Grant {
                    actions: u8::MAX,
                    scope: Scope::All,
                },
            );
        }
        p
    }

    /// The combination of `roles`: the union of actions, the widest scope,
    /// and per field the least restrictive access among the roles that may
    /// read the object (a role that does not mention a field leaves it open).
    pub fn combine<'a>(roles: impl IntoIterator<Item = &'a RoleRules>) -> Policy {
        let mut p = Policy::default();
        let roles: Vec<&RoleRules> = roles.into_iter().collect();
        for r in &roles {
            p.mfa_required |= r.mfa_required;
            for (o, rule) in &r.permissions {
                let g = p.grants.entry(*o).or_insert(Grant {
                    actions: 0,
                    scope: Scope::Own,
                });
                for a in &rule.actions {
                    g.actions |= a.bit();
                }
                g.scope = g.scope.max(rule.scope);
            }
        }
        for o in ObjectType::ALL {
            let readers: Vec<&&RoleRules> = roles
                .iter()
                .filter(|r| {
                    r.permissions
                        .get(&o)
                        .is_some_and(|rule| rule.actions.contains(&Action::Read))
                })
                .collect();
            let Some(first) = readers.first() else {
                continue;
            };
            let mut fields = HashMap::new();
            // A field every reader restricts is restricted by the first.
            if let Some(rules) = first.field_rules.get(&o) {
                for field in rules.keys() {
                    let least = readers
                        .iter()
                        .map(|r| r.field_rules.get(&o).and_then(|f| f.get(field)).copied())
                        .min_by_key(|a| a.map(|a| a as u8 + 1).unwrap_or(0))
                        .flatten();
                    if let Some(a) = least {
                        fields.insert(field.clone(), a);
                    }
                }
            }
            if !fields.is_empty() {
                p.fields.insert(o, fields);
            }
        }
        p
    }

    pub fn allows(&self, object: ObjectType, action: Action) -> bool {
        self.grants
            .get(&object)
            .is_some_and(|g| g.actions & action.bit() != 0)
    }

    pub fn scope(&self, object: ObjectType) -> Scope {
        self.grants
            .get(&object)
            .map(|g| g.scope)
            .unwrap_or(Scope::Own)
    }

    /// Restricted fields of an object type (`field` or `custom.key`).
    pub fn field_rules(&self, object: ObjectType) -> Option<&HashMap<String, FieldAccess>> {
        self.fields.get(&object)
    }

    pub fn field_access(&self, object: ObjectType, field: &str) -> Option<FieldAccess> {
        self.fields.get(&object)?.get(field).copied()
    }

    /// Removes the hidden fields of `object` from a record's JSON (built-in
    /// keys and `custom.*` keys).
    pub fn redact(&self, object: ObjectType, value: &mut serde_json::Value) {
        let Some(rules) = self.fields.get(&object) else {
            return;
        };
        let mut removed = Vec::new();
        for (field, access) in rules {
            if *access != FieldAccess::Hidden {
                continue;
            }
            match field.strip_prefix("custom.") {
                Some(key) => {
                    if let Some(custom) = value.get_mut("custom").and_then(|c| c.as_object_mut()) {
                        removed.extend(custom.remove(key));
                    }
                }
                None => {
                    if let Some(obj) = value.as_object_mut() {
                        removed.extend(obj.remove(field));
                    }
                }
            }
        }
        // Display fields are derived from others (a contact's `name` from
        // its first and last name or primary email, `email` from `emails`):
        // one that repeats a hidden value goes too.
        let mut hidden_text = Vec::new();
        for v in &removed {
            string_leaves(v, &mut hidden_text);
        }
        if let Some(obj) = value.as_object_mut() {
            for derived in DERIVED_FIELDS {
                let leaks = obj
                    .get(*derived)
                    .and_then(|v| v.as_str())
                    .is_some_and(|shown| {
                        hidden_text
                            .iter()
                            .any(|h| !h.is_empty() && shown.contains(h.as_str()))
                    });
                if leaks {
                    obj.remove(*derived);
                }
            }
        }
    }

    /// Removes hidden fields from an audit diff (`field` / `custom.key` keys)
    /// or a `{before|after: record}` body.
    pub fn redact_changes(&self, object: ObjectType, changes: &mut serde_json::Value) {
        let Some(rules) = self.fields.get(&object) else {
            return;
        };
        if let Some(obj) = changes.as_object_mut() {
            // Diff keys are `field`, `custom.key`, and for sealed values
            // `custom.key.$enc` / `custom.key.$bidx`: all go with the field.
            obj.retain(|key, _| {
                !rules.iter().any(|(field, access)| {
                    *access == FieldAccess::Hidden
                        && (key == field
                            || key
                                .strip_prefix(field.as_str())
                                .is_some_and(|rest| rest.starts_with('.')))
                })
            });
            for key in ["before", "after"] {
                if let Some(inner) = obj.get_mut(key) {
                    self.redact(object, inner);
                }
            }
        }
    }
}

/// Output fields computed from other fields, which can repeat a hidden value.
const DERIVED_FIELDS: &[&str] = &["name", "email", "title"];

fn string_leaves(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| string_leaves(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| string_leaves(x, out)),
        _ => {}
    }
}

/// Whether an API key scope (`object:action`, `*` as either part) covers
/// the action.
fn scope_covers(scope: &str, object: ObjectType, action: Action) -> bool {
    let Some((o, a)) = scope.split_once(':') else {
        return false;
    };
    (o == "*" || o == object.as_str()) && (a == "*" || a == action.as_str())
}

/// Whether `scope` grants nothing beyond `held` (empty `held`: unscoped,
/// which holds everything).
pub fn within_scopes(scope: &str, held: &[String]) -> bool {
    if held.is_empty() {
        return true;
    }
    let Some((o, a)) = scope.split_once(':') else {
        return false;
    };
    held.iter().any(|h| {
        h.split_once(':')
            .is_some_and(|(ho, ha)| (ho == "*" || ho == o) && (ha == "*" || ha == a))
    })
}

/// Parses `object:action` (`contact:update`).
pub fn parse_permission(s: &str) -> Option<(ObjectType, Action)> {
    let (o, a) = s.split_once(':')?;
    let object = ObjectType::parse(o)?;
    let action = Action::ALL.iter().find(|x| x.as_str() == a)?;
    Some((object, *action))
}

/// Checks that every scope names a real object type and action.
pub fn check_scopes(scopes: &[String]) -> Result<()> {
    for (i, s) in scopes.iter().enumerate() {
        let ok = s.split_once(':').is_some_and(|(o, a)| {
            (o == "*" || ObjectType::parse(o).is_some())
                && (a == "*" || Action::ALL.iter().any(|x| x.as_str() == a))
        });
        if !ok {
            return Err(Error::field(
                format!("scopes[{i}]"),
                "invalid_value",
                "a scope is `object:action`, e.g. `contact:read` or `deal:*`",
            ));
        }
    }
    Ok(())
}

impl RequestContext {
    /// Whether the caller may do `action` on `object`.
    pub fn can(&self, object: ObjectType, action: Action) -> bool {
        self.policy.allows(object, action)
            && (self.scopes.is_empty()
                || self.scopes.iter().any(|s| scope_covers(s, object, action)))
    }

    /// Fails with 403 unless the caller may do `action` on `object`.
    pub fn require(&self, object: ObjectType, action: Action) -> Result<()> {
        if self.can(object, action) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "you may not {} {}",
                action.as_str(),
                object.as_str()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of(keys: &[&str]) -> Policy {
        let roles = built_in_roles();
        Policy::combine(
            roles
                .iter()
                .filter(|(k, _, _)| keys.contains(k))
                .map(|(_, _, r)| r),
        )
    }

    #[test]
    fn built_in_roles_follow_their_tables() {
        assert!(policy_of(&["admin"]).allows(ObjectType::CustomField, Action::ManageSettings));
        assert!(!policy_of(&["manager"]).allows(ObjectType::CustomField, Action::Update));
        assert!(policy_of(&["manager"]).allows(ObjectType::Contact, Action::Delete));
        assert!(policy_of(&["sales_rep"]).allows(ObjectType::Deal, Action::Update));
        assert!(!policy_of(&["sales_rep"]).allows(ObjectType::Deal, Action::Delete));
        assert!(!policy_of(&["read_only"]).allows(ObjectType::Contact, Action::Create));
        assert!(!policy_of(&["nobody"]).allows(ObjectType::Contact, Action::Read));
    }

    #[test]
    fn roles_combine_to_the_most_permissive() {
        let mut narrow = RoleRules::default();
        narrow.permissions.insert(
            ObjectType::Contact,
            ObjectRule {
                actions: vec![Action::Read],
                scope: Scope::Own,
            },
        );
        narrow.field_rules.insert(
            ObjectType::Contact,
            HashMap::from([
                ("email".to_owned(), FieldAccess::Hidden),
                ("custom.ssn".to_owned(), FieldAccess::Hidden),
            ]),
        );
        let mut wide = narrow.clone();
        wide.permissions.insert(
            ObjectType::Contact,
            ObjectRule {
                actions: vec![Action::Read, Action::Update],
                scope: Scope::Team,
            },
        );
        wide.field_rules.insert(
            ObjectType::Contact,
            HashMap::from([("custom.ssn".to_owned(), FieldAccess::ReadOnly)]),
        );
        let p = Policy::combine([&narrow, &wide]);
        assert!(p.allows(ObjectType::Contact, Action::Update));
        assert_eq!(p.scope(ObjectType::Contact), Scope::Team);
        // `wide` does not mention email: open.
        assert_eq!(p.field_access(ObjectType::Contact, "email"), None);
        assert_eq!(
            p.field_access(ObjectType::Contact, "custom.ssn"),
            Some(FieldAccess::ReadOnly)
        );
        let alone = Policy::combine([&narrow]);
        let mut v = serde_json::json!({"email": "a@b.c", "custom": {"ssn": "1", "x": 2}});
        alone.redact(ObjectType::Contact, &mut v);
        assert_eq!(v, serde_json::json!({"custom": {"x": 2}}));
    }

    #[test]
    fn api_key_scopes_match_object_and_action() {
        assert!(scope_covers(
            "contact:read",
            ObjectType::Contact,
            Action::Read
        ));
        assert!(!scope_covers(
            "contact:read",
            ObjectType::Contact,
            Action::Update
        ));
        assert!(scope_covers("*:read", ObjectType::Deal, Action::Read));
        assert!(scope_covers("deal:*", ObjectType::Deal, Action::Delete));
        assert!(!scope_covers("deal", ObjectType::Deal, Action::Delete));
        assert!(check_scopes(&["contact:read".to_owned()]).is_ok());
        let held = ["contact:*".to_owned(), "deal:read".to_owned()];
        assert!(within_scopes("contact:update", &held));
        assert!(within_scopes("deal:read", &held));
        assert!(!within_scopes("deal:update", &held));
        assert!(!within_scopes("*:read", &held));
        assert!(!within_scopes("contact:*", &["contact:read".to_owned()]));
        assert!(within_scopes("*:*", &[]));
        assert!(check_scopes(&["contacts:read".to_owned()]).is_err());
    }
}
