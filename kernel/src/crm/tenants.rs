//! Tenants. A default tenant, with an admin user, exists from the first
//! start, so a fresh install is usable at once.

use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::auth::tokens;
use crate::entities::{api_token, tenant, user};
use crate::error::Result;

pub const DEFAULT_SLUG: &str = "default";
pub const ADMIN_EMAIL: &str = "admin@trellis.local";

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
            tenant::ActiveModel {
                id: Set(Uuid::now_v7()),
                slug: Set(slug.to_owned()),
                name: Set(name.to_owned()),
                created_at: Set(crate::clock::now()),
            }
            .insert(&tx)
            .await?
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
