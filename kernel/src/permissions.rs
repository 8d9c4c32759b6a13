//! What each role may do. Every service call asks here before it touches data.
//!
//! The built-in roles are fixed tables for now; per-tenant roles, record
//! scopes and field-level permissions extend this module (see the identity
//! issue), and the call sites do not change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
        }
    }

    pub fn parse(s: &str) -> Option<ObjectType> {
        Some(match s {
            "contact" => ObjectType::Contact,
            "account" => ObjectType::Account,
            "deal" => ObjectType::Deal,
            "activity" => ObjectType::Activity,
            "pipeline" => ObjectType::Pipeline,
            "custom_field" => ObjectType::CustomField,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    Export,
    Import,
    ManageSettings,
}

/// Whether `role` may do `action` on `object`.
fn role_allows(role: &str, object: ObjectType, action: Action) -> bool {
    let settings = matches!(object, ObjectType::Pipeline | ObjectType::CustomField);
    match role {
        "admin" => true,
        "manager" => !settings || action == Action::Read,
        "sales_rep" => match action {
            Action::Read => true,
            Action::Create | Action::Update => !settings,
            _ => false,
        },
        "read_only" => action == Action::Read,
        _ => false,
    }
}

impl RequestContext {
    /// Fails with 403 unless one of the caller's roles allows the action.
    pub fn require(&self, object: ObjectType, action: Action) -> Result<()> {
        if self.roles.iter().any(|r| role_allows(r, object, action)) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "your role may not {action:?} {}",
                object.as_str()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_follow_their_tables() {
        assert!(role_allows(
            "admin",
            ObjectType::CustomField,
            Action::ManageSettings
        ));
        assert!(!role_allows(
            "manager",
            ObjectType::CustomField,
            Action::Update
        ));
        assert!(role_allows("manager", ObjectType::Contact, Action::Delete));
        assert!(role_allows("sales_rep", ObjectType::Deal, Action::Update));
        assert!(!role_allows("sales_rep", ObjectType::Deal, Action::Delete));
        assert!(!role_allows(
            "read_only",
            ObjectType::Contact,
            Action::Create
        ));
        assert!(!role_allows("nobody", ObjectType::Contact, Action::Read));
    }
}
