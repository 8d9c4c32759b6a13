//! Support access: a tenant lets the operators who manage it (its
//! reseller's, or the platform's) act inside it, until a time it chooses
//! and only with one of its roles. Without that grant an operator sees
//! nothing inside a tenant.
//!
//! An operator then calls the tenant API with its own key and the tenant
//! named (`X-Trellis-Tenant` or the tenant's host name); every write is
//! audited with actor kind `operator` and the operator's id.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::AppState;
use crate::audit::{self, AuditAction, AuditEntry};
use crate::auth::tokens;
use crate::context::{ActorKind, Client, RequestContext};
use crate::entities::{operator, tenant};
use crate::error::{Error, Result};
use crate::permissions::{Action, ObjectType};
use crate::tenancy::plans::Plan;

/// The longest support access a tenant can grant at once.
const MAX_DAYS: i64 = 30;

/// A grant of support access.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportGrant {
    /// Until when (at most 30 days ahead).
    pub until: DateTime<Utc>,
    /// The tenant's role the operators act with (`read_only` is the
    /// cautious choice).
    pub role: String,
}

/// The tenant's current grant, if any.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupportAccess {
    pub until: Option<DateTime<Utc>>,
    pub role: Option<String>,
    /// Whether operators can act inside the tenant now.
    pub active: bool,
}

fn out(t: &tenant::Model) -> SupportAccess {
    SupportAccess {
        until: t.support_access_until,
        role: t.support_access_role.clone(),
        active: t.support_access_until.is_some_and(|u| u > Utc::now()),
    }
}

/// Grants (or changes) support access to the caller's tenant.
pub async fn grant(
    state: &AppState,
    ctx: &RequestContext,
    g: SupportGrant,
) -> Result<SupportAccess> {
    ctx.require(ObjectType::Tenant, Action::ManageSettings)?;
    let now = Utc::now();
    if g.until <= now || g.until > now + chrono::Duration::days(MAX_DAYS) {
        return Err(Error::field(
            "until",
            "out_of_range",
            format!("a time in the next {MAX_DAYS} days"),
        ));
    }
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    crate::directory::roles::check_exist(&tx, ctx.tenant_id, std::slice::from_ref(&g.role), "role")
        .await
        .map_err(|_| {
            Error::field(
                "role",
                "unknown_role",
                format!("there is no role `{}`", g.role),
            )
        })?;
    crate::directory::roles::check_grantable(ctx, std::slice::from_ref(&g.role), "role")?;
    let t = tenant::Entity::find_by_id(ctx.tenant_id)
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let mut a: tenant::ActiveModel = t.into();
    a.support_access_until = Set(Some(g.until));
    a.support_access_role = Set(Some(g.role.clone()));
    let saved = a.update(&tx).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Tenant,
            ctx.tenant_id,
            AuditAction::Configure,
            json!({"support_access": {"until": g.until, "role": g.role}}),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.tenants.remove(&ctx.tenant_id);
    Ok(out(&saved))
}

/// Ends support access to the caller's tenant at once.
pub async fn revoke(state: &AppState, ctx: &RequestContext) -> Result<SupportAccess> {
    ctx.require(ObjectType::Tenant, Action::ManageSettings)?;
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let t = tenant::Entity::find_by_id(ctx.tenant_id)
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let mut a: tenant::ActiveModel = t.into();
    a.support_access_until = Set(None);
    a.support_access_role = Set(None);
    let saved = a.update(&tx).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Tenant,
            ctx.tenant_id,
            AuditAction::Revoke,
            json!({"support_access": null}),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.tenants.remove(&ctx.tenant_id);
    Ok(out(&saved))
}

/// The caller's tenant's grant.
pub async fn current(state: &AppState, ctx: &RequestContext) -> Result<SupportAccess> {
    ctx.require(ObjectType::Tenant, Action::Read)?;
    let t = crate::crm::tenants::cached(state, ctx.tenant_id).await?;
    Ok(out(&t))
}

/// Resolves an operator key used inside a tenant: the operator must manage
/// the tenant, and the tenant must have granted support access that has
/// not ended. The context acts with the granted role.
pub async fn authenticate(state: &AppState, client: &Client, key: &str) -> Result<RequestContext> {
    let op = operator::Entity::find()
        .filter(operator::Column::TokenHash.eq(tokens::hash(key)))
        .filter(operator::Column::RevokedAt.is_null())
        .one(&state.db)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let addressed = match (&client.host, &client.tenant_header) {
        (_, Some(_)) | (Some(_), None) => crate::auth::addressed_tenant(state, client, None)
            .await
            .map_err(|_| Error::Unauthenticated)?,
        (None, None) => return Err(Error::Unauthenticated),
    };
    // Fresh, not cached: a revoked grant ends at once.
    let t = tenant::Entity::find_by_id(addressed.id)
        .one(&state.db)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let manages = op.reseller_id.is_none() || op.reseller_id == t.reseller_id;
    if !manages {
        // Another reseller's tenant does not exist for this operator.
        return Err(Error::NotFound("tenant"));
    }
    let role = match (&t.support_access_role, t.support_access_until) {
        (Some(role), Some(until)) if until > Utc::now() => role.clone(),
        _ => {
            return Err(Error::Forbidden(
                "this tenant has not granted support access (or the grant has ended)".to_owned(),
            ));
        }
    };
    if t.status != "active" {
        return Err(Error::TenantSuspended);
    }
    let policy = crate::directory::roles::policy(state, t.id, std::slice::from_ref(&role)).await?;
    let limits = Plan::parse(&t.plan).map(Plan::limits).unwrap_or_default();
    crate::tenancy::usage::hit_rate(&state.db, t.id, limits.api_requests_per_minute).await?;
    let mut ctx = RequestContext::anonymous(t.id, client);
    ctx.actor_kind = ActorKind::Operator;
    ctx.actor_id = Some(op.id);
    ctx.roles = vec![role];
    ctx.policy = policy;
    ctx.limits = limits;
    ctx.storage_used = t.storage_bytes;
    ctx.keyring = Some(state.keyring.clone());
    ctx.plugins = state.plugins.clone();
    Ok(ctx)
}
