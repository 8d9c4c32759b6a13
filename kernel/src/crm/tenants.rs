//! Tenants. A default tenant, with an admin user, exists from the first
//! start, so a fresh install is usable at once.

use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::AppState;
use crate::auth::tokens;
use crate::entities::{api_token, tenant, user};
use crate::error::{Error, Result};
use crate::tenancy::plans::Plan;

pub const DEFAULT_SLUG: &str = "default";
pub const ADMIN_EMAIL: &str = "admin@trellis.local";
/// Sessions end after 30 minutes without activity...
pub const DEFAULT_IDLE_SECONDS: i64 = 1800;
/// ...and after 12 hours in any case.
pub const DEFAULT_ABSOLUTE_SECONDS: i64 = 43_200;

/// The default tenant and its admin user, created if missing.
pub async fn ensure_default(db: &DatabaseConnection) -> Result<(tenant::Model, user::Model)> {
    ensure(db, DEFAULT_SLUG, "Default", ADMIN_EMAIL).await
}

/// A tenant with the given slug and an admin user, created if missing.
pub async fn ensure(
    db: &DatabaseConnection,
    slug: &str,
    name: &str,
    admin_email: &str,
) -> Result<(tenant::Model, user::Model)> {
    let tx = crate::db::write_tx(db).await?;
    let t = match tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug))
        .one(&tx)
        .await?
    {
        Some(t) => t,
        None => {
            let t = tenant::ActiveModel {
                theme: Set(None),
                id: Set(Uuid::now_v7()),
                slug: Set(slug.to_owned()),
                name: Set(name.to_owned()),
                created_at: Set(crate::clock::now()),
                reseller_id: Set(None),
                plan: Set(Plan::Custom.as_str().to_owned()),
                status: Set("active".to_owned()),
                hostname: Set(None),
                mfa_required: Set(false),
                session_idle_seconds: Set(DEFAULT_IDLE_SECONDS),
                session_absolute_seconds: Set(DEFAULT_ABSOLUTE_SECONDS),
                support_access_until: Set(None),
                support_access_role: Set(None),
                duplicate_policy: Set(crate::crm::duplicates::Policy::default()
                    .as_str()
                    .to_owned()),
                merge_undo_days: Set(crate::crm::merge::DEFAULT_UNDO_DAYS),
                storage_bytes: Set(0),
                storage_measured_at: Set(None),
            }
            .insert(&tx)
            .await?;
            crate::directory::roles::ensure_built_in(&tx, t.id).await?;
            t
        }
    };
    let u = match user::Entity::find()
        .filter(user::Column::TenantId.eq(t.id))
        .filter(user::Column::Email.eq(admin_email))
        .one(&tx)
        .await?
    {
        Some(u) => u,
        None => {
            user::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(t.id),
                email: Set(admin_email.to_owned()),
                name: Set("Administrator".to_owned()),
                created_at: Set(crate::clock::now()),
                password_hash: Set(None),
                status: Set("active".to_owned()),
                roles: Set(serde_json::json!(["admin"])),
                totp_secret: Set(None),
                mfa_enabled_at: Set(None),
                last_login_at: Set(None),
                totp_last_step: Set(None),
            }
            .insert(&tx)
            .await?
        }
    };
    tx.commit().await?;
    Ok((t, u))
}

/// Makes sure `token` authenticates as `user` with `roles`: stored once,
/// re-used on later starts.
pub async fn ensure_token(
    db: &DatabaseConnection,
    t: &tenant::Model,
    u: &user::Model,
    name: &str,
    token: &str,
    roles: &[&str],
) -> Result<()> {
    let exists = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(tokens::hash(token)))
        .one(db)
        .await?
        .is_some();
    if !exists {
        tokens::store(db, t.id, u.id, name, token, roles).await?;
    }
    Ok(())
}

/// A tenant by id, through the process cache.
pub async fn cached(state: &AppState, id: Uuid) -> Result<tenant::Model> {
    if let Some(t) = state.caches.tenants.get(&id) {
        return Ok(t);
    }
    let t = tenant::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or(Error::Unauthenticated)?;
    state.caches.tenants.insert(id, t.clone());
    Ok(t)
}

/// The tenant whose custom domain is `host`, if any.
pub async fn by_host(state: &AppState, host: &str) -> Result<Option<Uuid>> {
    if let Some(hit) = state.caches.hosts.get(&host.to_owned()) {
        return Ok(hit);
    }
    let found = tenant::Entity::find()
        .filter(tenant::Column::Hostname.eq(host))
        .one(&state.db)
        .await?
        .map(|t| t.id);
    state.caches.hosts.insert(host.to_owned(), found);
    Ok(found)
}
