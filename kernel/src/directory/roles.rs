//! A tenant's roles: the built-in four, seeded with every tenant and
//! editable (except their keys), and the tenant's own. Every change is
//! audited and drops this process's cached policies; other processes see it
//! within the cache's time to live.

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::{ActorKind, RequestContext};
use crate::entities::{role, user};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType, Policy, RoleRules, built_in_roles};

/// Creates the built-in roles of a tenant that lack them.
pub async fn ensure_built_in<C: ConnectionTrait>(db: &C, tenant_id: Uuid) -> Result<()> {
    let existing: Vec<String> = role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant_id))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect();
    let now = crate::clock::now();
    for (key, name, rules) in built_in_roles() {
        if existing.iter().any(|k| k == key) {
            continue;
        }
        role::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant_id),
            key: Set(key.to_owned()),
            name: Set(name.to_owned()),
            permissions: Set(json!(rules.permissions)),
            field_rules: Set(json!(rules.field_rules)),
            mfa_required: Set(rules.mfa_required),
            built_in: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

fn rules_of(r: &role::Model) -> RoleRules {
    let mut rules = RoleRules {
        permissions: serde_json::from_value(r.permissions.clone()).unwrap_or_default(),
        field_rules: serde_json::from_value(r.field_rules.clone()).unwrap_or_default(),
        mfa_required: r.mfa_required,
    };
    // The built-in admin can do everything, including on object types added
    // by a kernel upgrade after the tenant's roles were seeded.
    if r.built_in && r.key == "admin" {
        for o in ObjectType::ALL {
            rules.permissions.insert(
                o,
                crate::permissions::ObjectRule {
                    actions: Action::ALL.to_vec(),
                    scope: crate::permissions::Scope::All,
                },
            );
        }
    }
    rules
}

/// The policy of a set of role keys in a tenant, through the process cache.
pub async fn policy(state: &AppState, tenant_id: Uuid, keys: &[String]) -> Result<Arc<Policy>> {
    let mut sorted = keys.to_vec();
    sorted.sort();
    let cache_key = (tenant_id, sorted.join(","));
    if let Some(p) = state.caches.policies.get(&cache_key) {
        return Ok(p);
    }
    let rows = role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant_id))
        .filter(role::Column::Key.is_in(sorted.iter().map(String::as_str)))
        .all(&state.db)
        .await?;
    let rules: Vec<RoleRules> = rows.iter().map(rules_of).collect();
    let p = Arc::new(Policy::combine(rules.iter()));
    state.caches.policies.insert(cache_key, p.clone());
    Ok(p)
}

/// A role as the API shows and takes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleOut {
    pub key: String,
    pub name: String,
    #[serde(flatten)]
    pub rules: RoleRules,
    pub built_in: bool,
}

fn out(r: &role::Model) -> RoleOut {
    RoleOut {
        key: r.key.clone(),
        name: r.name.clone(),
        rules: rules_of(r),
        built_in: r.built_in,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// Lower-case letters, digits and `_`; fixed once created.
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub permissions: std::collections::HashMap<ObjectType, crate::permissions::ObjectRule>,
    #[serde(default)]
    pub field_rules: std::collections::HashMap<
        ObjectType,
        std::collections::HashMap<String, crate::permissions::FieldAccess>,
    >,
    #[serde(default)]
    pub mfa_required: bool,
}

pub async fn list(db: &DatabaseConnection, ctx: &RequestContext) -> Result<Vec<RoleOut>> {
    ctx.require(ObjectType::Role, Action::Read)?;
    Ok(role::Entity::find()
        .filter(role::Column::TenantId.eq(ctx.tenant_id))
        .order_by_asc(role::Column::Key)
        .all(db)
        .await?
        .iter()
        .map(out)
        .collect())
}

/// Creates a role, or replaces the rules of an existing one (`PUT`).
pub async fn put(state: &AppState, ctx: &RequestContext, input: RoleInput) -> Result<RoleOut> {
    ctx.require(ObjectType::Role, Action::ManageSettings)?;
    crate::crm::checks::identifier("key", &input.key)?;
    if input.name.trim().is_empty() {
        return Err(Error::field("name", "required", "a role needs a name"));
    }
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let existing = role::Entity::find()
        .filter(role::Column::TenantId.eq(ctx.tenant_id))
        .filter(role::Column::Key.eq(input.key.as_str()))
        .one(&tx)
        .await?;
    let now = crate::clock::now();
    let before = existing.as_ref().map(|r| json!(out(r)));
    let saved = match existing {
        Some(r) => {
            let mut a: role::ActiveModel = r.into();
            a.name = Set(input.name);
            a.permissions = Set(json!(input.permissions));
            a.field_rules = Set(json!(input.field_rules));
            a.mfa_required = Set(input.mfa_required);
            a.updated_at = Set(now);
            a.update(&tx).await?
        }
        None => {
            role::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id),
                key: Set(input.key),
                name: Set(input.name),
                permissions: Set(json!(input.permissions)),
                field_rules: Set(json!(input.field_rules)),
                mfa_required: Set(input.mfa_required),
                built_in: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&tx)
            .await?
        }
    };
    let after = json!(out(&saved));
    let (action, changes) = match before {
        Some(b) => (AuditAction::Update, audit::diff(&b, &after)),
        None => (AuditAction::Create, json!({ "after": after })),
    };
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(ObjectType::Role, saved.id, action, changes)],
    )
    .await?;
    tx.commit().await?;
    state.caches.policies.clear();
    Ok(out(&saved))
}

/// Deletes a tenant-defined role and takes it from every user holding it.
pub async fn delete(state: &AppState, ctx: &RequestContext, key: &str) -> Result<()> {
    ctx.require(ObjectType::Role, Action::ManageSettings)?;
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let r = role::Entity::find()
        .filter(role::Column::TenantId.eq(ctx.tenant_id))
        .filter(role::Column::Key.eq(key))
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("role"))?;
    if r.built_in {
        return Err(Error::Conflict {
            code: "built_in_role",
            message: "built-in roles cannot be deleted; change their rules instead".to_owned(),
        });
    }
    let holders = user::Entity::find()
        .filter(user::Column::TenantId.eq(ctx.tenant_id))
        .all(&tx)
        .await?;
    let mut entries = Vec::new();
    for u in holders {
        let roles: Vec<String> = serde_json::from_value(u.roles.clone()).unwrap_or_default();
        if roles.iter().any(|k| k == key) {
            let kept: Vec<String> = roles.iter().filter(|k| *k != key).cloned().collect();
            entries.push(AuditEntry::new(
                ObjectType::User,
                u.id,
                AuditAction::Update,
                json!({"roles": {"before": roles, "after": kept}}),
            ));
            let mut a: user::ActiveModel = u.into();
            a.roles = Set(json!(kept));
            a.update(&tx).await?;
        }
    }
    role::Entity::delete_by_id(r.id).exec(&tx).await?;
    entries.push(AuditEntry::new(
        ObjectType::Role,
        r.id,
        AuditAction::Delete,
        json!({"before": out(&r)}),
    ));
    audit::write(&tx, ctx, entries).await?;
    tx.commit().await?;
    state.caches.policies.clear();
    state.caches.users.clear();
    Ok(())
}

/// Fails unless every key names a role of the tenant.
pub async fn check_exist<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    keys: &[String],
    field: &str,
) -> Result<()> {
    let found: Vec<String> = role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant_id))
        .filter(role::Column::Key.is_in(keys.iter().map(String::as_str)))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect();
    for (i, k) in keys.iter().enumerate() {
        if !found.contains(k) {
            return Err(Error::field(
                format!("{field}[{i}]"),
                "unknown_role",
                format!("there is no role `{k}`"),
            ));
        }
    }
    Ok(())
}

/// Checks that the caller may hand out (or take away) each of `keys`: a
/// role it holds itself, or any role for an admin. Without this, a user
/// trusted only to manage users could make anyone, itself included, an admin.
pub fn check_grantable(ctx: &RequestContext, keys: &[String], field: &str) -> Result<()> {
    let is_admin = ctx.roles.iter().any(|r| r == "admin")
        || matches!(ctx.actor_kind, ActorKind::System | ActorKind::Operator);
    if is_admin {
        return Ok(());
    }
    match keys.iter().position(|k| !ctx.roles.contains(k)) {
        Some(i) => Err(Error::field(
            format!("{field}[{i}]"),
            "not_allowed",
            format!(
                "you cannot grant or remove the role `{}`, which you do not hold",
                keys[i]
            ),
        )),
        None => Ok(()),
    }
}
