//! API keys: long-lived, scoped, revocable credentials for integrations.
//! Only a hash is stored; the key itself is shown once, when created. A
//! key never holds more than its creator: no role, scope or lifetime the
//! creating credential lacks.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::auth::tokens;
use crate::context::RequestContext;
use crate::entities::api_token;
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType, check_scopes, within_scopes};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// Roles the key acts with; default the caller's. Never more than the caller's.
    pub roles: Option<Vec<String>>,
    /// `object:action` scopes narrowing the roles (`contact:read`, `deal:*`).
    #[serde(default)]
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// The key itself: present only in the response that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

pub fn key_out(k: api_token::Model, key: Option<String>) -> ApiKeyOut {
    ApiKeyOut {
        id: k.id,
        name: k.name,
        user_id: k.user_id,
        roles: serde_json::from_value(k.roles).unwrap_or_default(),
        scopes: serde_json::from_value(k.scopes).unwrap_or_default(),
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked: k.revoked_at.is_some(),
        key,
    }
}

/// Creates a key for the caller; the returned `key` is shown once.
pub async fn create(state: &AppState, ctx: &RequestContext, req: NewApiKey) -> Result<ApiKeyOut> {
    let user_id = crate::auth::user_of(ctx)?;
    if req.name.trim().is_empty() {
        return Err(Error::field("name", "required", "name the key"));
    }
    check_scopes(&req.scopes)?;
    // A scoped caller mints only keys within its own scopes (none asked:
    // the caller's own), so a narrow key cannot widen itself by proxy.
    let scopes = if req.scopes.is_empty() {
        ctx.scopes.clone()
    } else {
        req.scopes.clone()
    };
    if let Some(i) = scopes.iter().position(|s| !within_scopes(s, &ctx.scopes)) {
        return Err(Error::field(
            format!("scopes[{i}]"),
            "not_allowed",
            "a key cannot hold a scope its creator lacks",
        ));
    }
    let roles = req.roles.unwrap_or_else(|| ctx.roles.clone());
    if let Some(i) = roles.iter().position(|r| !ctx.roles.contains(r)) {
        return Err(Error::field(
            format!("roles[{i}]"),
            "not_allowed",
            "a key cannot hold a role its creator lacks",
        ));
    }
    if req.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(Error::field(
            "expires_at",
            "invalid_value",
            "must be in the future",
        ));
    }
    // Stored to the microsecond (PostgreSQL's precision) on every database.
    let expires_at = req
        .expires_at
        .map(|e| chrono::SubsecRound::trunc_subsecs(e, 6));
    if let Some(limit) = ctx.credential_expires_at
        && expires_at.is_none_or(|e| e > limit)
    {
        return Err(Error::field(
            "expires_at",
            "not_allowed",
            format!("a key cannot outlive the key that creates it ({limit})"),
        ));
    }
    let key = tokens::generate();
    let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let id = tokens::store_key(
        &tx,
        ctx.tenant_id,
        user_id,
        req.name.trim(),
        &key,
        &role_refs,
        &scopes,
        expires_at,
    )
    .await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::ApiKey,
            id,
            AuditAction::Create,
            json!({"after": {"name": req.name, "roles": roles, "scopes": scopes}}),
        )],
    )
    .await?;
    tx.commit().await?;
    let row = api_token::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or(Error::NotFound("api_key"))?;
    Ok(key_out(row, Some(key)))
}

/// The caller's keys (all of the tenant's for those who manage keys).
pub async fn list(state: &AppState, ctx: &RequestContext) -> Result<Vec<ApiKeyOut>> {
    let user_id = crate::auth::user_of(ctx)?;
    let mut q = api_token::Entity::find().filter(api_token::Column::TenantId.eq(ctx.tenant_id));
    if !ctx.can(ObjectType::ApiKey, Action::ManageSettings) {
        q = q.filter(api_token::Column::UserId.eq(user_id));
    }
    let rows = q
        .order_by_desc(api_token::Column::CreatedAt)
        .all(&state.db)
        .await?;
    Ok(rows.into_iter().map(|k| key_out(k, None)).collect())
}

/// Revokes a key: the caller's own, or any with key management rights.
pub async fn revoke(state: &AppState, ctx: &RequestContext, id: Uuid) -> Result<()> {
    let user_id = crate::auth::user_of(ctx)?;
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let mut q = api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            Expr::value(crate::clock::now()),
        )
        .filter(api_token::Column::TenantId.eq(ctx.tenant_id))
        .filter(api_token::Column::Id.eq(id))
        .filter(api_token::Column::RevokedAt.is_null());
    if !ctx.can(ObjectType::ApiKey, Action::ManageSettings) {
        q = q.filter(api_token::Column::UserId.eq(user_id));
    }
    if q.exec(&tx).await?.rows_affected != 1 {
        return Err(Error::NotFound("api_key"));
    }
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::ApiKey,
            id,
            AuditAction::Revoke,
            json!({}),
        )],
    )
    .await?;
    tx.commit().await?;
    state.tokens.clear();
    Ok(())
}
