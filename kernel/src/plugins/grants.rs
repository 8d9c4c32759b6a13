//! What a plugin may do for a tenant: the capabilities its manifest asks
//! for *and* the tenant's admin granted (two keys), turned into the same
//! [`Policy`] the API's callers get, so record access goes through the same
//! checks. Host calls consult it on every call.

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::permissions::{Action, FieldAccess, ObjectRule, ObjectType, Policy, RoleRules, Scope};
use crate::plugins::manifest::Manifest;

/// Fields every record shows whatever the field grants (identity and
/// concurrency; a plugin cannot update a record without its version).
const ALWAYS_VISIBLE: &[&str] = &["id", "version", "created_at", "updated_at"];

/// The built-in fields of each record type as the API shows them; a field
/// grant hides the rest. (A unit test checks these against the outputs.)
pub fn built_in_fields(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Contact => &[
            "first_name",
            "last_name",
            "name",
            "email",
            "emails",
            "phones",
            "job_title",
            "lifecycle_stage",
            "lead_source",
            "owner_id",
            "tags",
            "do_not_email",
            "do_not_call",
            "preferred_channel",
        ],
        ObjectType::Account => &[
            "name",
            "domain",
            "industry",
            "size",
            "territory",
            "owner_id",
            "parent_id",
        ],
        ObjectType::Deal => &[
            "name",
            "amount",
            "currency",
            "pipeline_id",
            "stage_id",
            "expected_close_date",
            "owner_id",
            "contact_id",
            "account_id",
            "lost_reason",
            "stage_changed_at",
            "closed_at",
        ],
        ObjectType::Activity => &[
            "kind",
            "subject",
            "body",
            "due_at",
            "starts_at",
            "ends_at",
            "done",
            "done_at",
            "outcome",
            "owner_id",
            "contact_id",
            "account_id",
            "deal_id",
        ],
        _ => &[],
    }
}

/// Checks an admin's grant against the manifest: only what it asks for.
pub fn check(manifest: &Manifest, grants: &[String]) -> Result<()> {
    let asked = manifest.capabilities();
    for (i, g) in grants.iter().enumerate() {
        // A configurable plugin reaches the hosts its admin names.
        let configured_host = manifest.capabilities.http_configurable
            && g.strip_prefix("http:")
                .is_some_and(crate::plugins::manifest::is_host);
        if !asked.contains(g) && !configured_host {
            return Err(Error::field(
                format!("grants[{i}]"),
                "not_requested",
                format!(
                    "`{g}` is not among the capabilities the plugin asks for: {}",
                    asked.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The granted capabilities of one plugin for one tenant.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    set: BTreeSet<String>,
}

impl Grants {
    pub fn new(granted: &[String]) -> Self {
        Grants {
            set: granted.iter().cloned().collect(),
        }
    }

    pub fn has(&self, capability: &str) -> bool {
        self.set.contains(capability)
    }

    /// Whether outbound HTTP may reach `host` (`name` or `name:port`).
    pub fn allows_host(&self, host: &str) -> bool {
        self.has(&format!("http:{host}"))
    }

    /// The policy a plugin's record calls run under: the granted actions on
    /// each record type, every record of the tenant (plugins act for the
    /// tenant, not for a user), and, where the manifest lists fields, every
    /// other field hidden. `custom_keys` are the tenant's custom field keys
    /// per record type.
    pub fn policy(
        &self,
        manifest: &Manifest,
        custom_keys: &HashMap<ObjectType, Vec<String>>,
    ) -> Policy {
        let mut rules = RoleRules::default();
        for object in crate::plugins::manifest::RECORD_TYPES
            .iter()
            .chain([&ObjectType::CustomObject])
        {
            let actions: Vec<Action> = [
                ("read", Action::Read),
                ("create", Action::Create),
                ("update", Action::Update),
                ("delete", Action::Delete),
            ]
            .into_iter()
            .filter(|(name, _)| self.has(&format!("records:{}:{name}", object.as_str())))
            .map(|(_, a)| a)
            .collect();
            if actions.is_empty() {
                continue;
            }
            rules.permissions.insert(
                *object,
                ObjectRule {
                    actions,
                    scope: Scope::All,
                },
            );
            if let Some(allowed) = manifest.capabilities.fields.get(object.as_str()) {
                let mut hidden = HashMap::new();
                let custom = custom_keys
                    .get(object)
                    .into_iter()
                    .flatten()
                    .map(|k| format!("custom.{k}"));
                for field in built_in_fields(*object)
                    .iter()
                    .map(|f| (*f).to_owned())
                    .chain(custom)
                {
                    if !allowed.contains(&field) && !ALWAYS_VISIBLE.contains(&field.as_str()) {
                        hidden.insert(field, FieldAccess::Hidden);
                    }
                }
                rules.field_rules.insert(*object, hidden);
            }
        }
        Policy::combine([&rules])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists above must name every field the API shows, or a field
    /// grant would leave a new field visible.
    #[test]
    fn built_in_field_lists_cover_every_output_field() {
        fn keys<T: utoipa::PartialSchema>() -> Vec<String> {
            use utoipa::openapi::{RefOr, Schema};
            match T::schema() {
                RefOr::T(Schema::Object(o)) => o
                    .properties
                    .keys()
                    .filter(|k| *k != "custom" && !ALWAYS_VISIBLE.contains(&k.as_str()))
                    .cloned()
                    .collect(),
                _ => panic!("not an object schema"),
            }
        }
        for (object, fields) in [
            (ObjectType::Contact, keys::<crate::crm::contacts::Contact>()),
            (ObjectType::Account, keys::<crate::crm::accounts::Account>()),
            (ObjectType::Deal, keys::<crate::crm::deals::Deal>()),
            (
                ObjectType::Activity,
                keys::<crate::crm::activities::Activity>(),
            ),
        ] {
            let mut listed: Vec<&str> = built_in_fields(object).to_vec();
            listed.sort_unstable();
            let mut shown: Vec<&str> = fields.iter().map(String::as_str).collect();
            shown.sort_unstable();
            assert_eq!(listed, shown, "{object:?}");
        }
    }

    #[test]
    fn field_grants_hide_every_other_field() {
        let manifest = Manifest::parse(
            r#"
            id = "p"
            name = "P"
            version = "1.0.0"
            contract = "0.1.0"
            [capabilities]
            records = { contact = ["read"] }
            fields = { contact = ["first_name", "custom.score"] }
            "#,
        )
        .unwrap();
        let grants = Grants::new(&["records:contact:read".to_owned()]);
        let custom = HashMap::from([(
            ObjectType::Contact,
            vec!["score".to_owned(), "ssn".to_owned()],
        )]);
        let p = grants.policy(&manifest, &custom);
        assert!(p.allows(ObjectType::Contact, Action::Read));
        assert!(!p.allows(ObjectType::Contact, Action::Update));
        assert!(!p.allows(ObjectType::Deal, Action::Read));
        assert_eq!(p.field_access(ObjectType::Contact, "first_name"), None);
        assert_eq!(p.field_access(ObjectType::Contact, "custom.score"), None);
        assert_eq!(
            p.field_access(ObjectType::Contact, "custom.ssn"),
            Some(FieldAccess::Hidden)
        );
        assert_eq!(
            p.field_access(ObjectType::Contact, "emails"),
            Some(FieldAccess::Hidden)
        );
    }
}
