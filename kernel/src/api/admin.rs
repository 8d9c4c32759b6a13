//! Handlers for a tenant's administration: users, roles, teams, tenant
//! settings and the audit trail.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::api::extract::JsonBody;
use crate::audit::query::{AuditPage, AuditQuery};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::context::RequestContext;
use crate::directory::roles::{self, RoleInput, RoleOut};
use crate::directory::teams::{self, TeamInput, TeamOut};
use crate::directory::users::{self, Invitation, UserOut, UserPatch};
use crate::entities::tenant;
use crate::error::{Error, Problem, Result};
use crate::permissions::{Action, ObjectType};

#[utoipa::path(get, path = "/api/v1/users", tag = "admin", responses((status = 200, body = Vec<UserOut>)))]
pub async fn list_users(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<UserOut>>> {
    Ok(Json(users::list(&state.db, &ctx).await?))
}

/// Invites a user (an email with a single-use link goes to the outbox).
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", request_body = Invitation,
    responses((status = 201, body = UserOut), (status = 402, body = Problem), (status = 422, body = Problem)))]
pub async fn invite_user(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(input): JsonBody<Invitation>,
) -> Result<(StatusCode, Json<UserOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(users::invite(&state, &ctx, input).await?),
    ))
}

/// Changes a user's name, roles or status.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "admin", request_body = UserPatch,
    responses((status = 200, body = UserOut), (status = 404, body = Problem)))]
pub async fn update_user(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(patch): JsonBody<UserPatch>,
) -> Result<Json<UserOut>> {
    Ok(Json(users::update(&state, &ctx, id, patch).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Ends every session of a user.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions", tag = "admin", responses((status = 200, body = Revoked)))]
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<Json<Revoked>> {
    ctx.require(ObjectType::Session, Action::ManageSettings)?;
    users::load(&state.db, &ctx, id).await?;
    let revoked = crate::auth::login::revoke_sessions(&state, &ctx, id, None).await?;
    Ok(Json(Revoked { revoked }))
}

#[utoipa::path(get, path = "/api/v1/roles", tag = "admin", responses((status = 200, body = Vec<RoleOut>)))]
pub async fn list_roles(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<RoleOut>>> {
    Ok(Json(roles::list(&state.db, &ctx).await?))
}

/// Creates a role or replaces its rules (built-in roles included).
#[utoipa::path(put, path = "/api/v1/roles", tag = "admin", request_body = RoleInput,
    responses((status = 200, body = RoleOut), (status = 422, body = Problem)))]
pub async fn put_role(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(input): JsonBody<RoleInput>,
) -> Result<Json<RoleOut>> {
    Ok(Json(roles::put(&state, &ctx, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/roles/{key}", tag = "admin", responses((status = 204), (status = 409, body = Problem)))]
pub async fn delete_role(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(key): Path<String>,
) -> Result<StatusCode> {
    roles::delete(&state, &ctx, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "admin", responses((status = 200, body = Vec<TeamOut>)))]
pub async fn list_teams(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Vec<TeamOut>>> {
    Ok(Json(teams::list(&state.db, &ctx).await?))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "admin", request_body = TeamInput,
    responses((status = 201, body = TeamOut), (status = 422, body = Problem)))]
pub async fn create_team(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(input): JsonBody<TeamInput>,
) -> Result<(StatusCode, Json<TeamOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(teams::save(&state.db, &ctx, None, input).await?),
    ))
}

#[utoipa::path(put, path = "/api/v1/teams/{id}", tag = "admin", request_body = TeamInput,
    responses((status = 200, body = TeamOut), (status = 404, body = Problem)))]
pub async fn update_team(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
    JsonBody(input): JsonBody<TeamInput>,
) -> Result<Json<TeamOut>> {
    Ok(Json(teams::save(&state.db, &ctx, Some(id), input).await?))
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "admin", responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_team(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    teams::delete(&state.db, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A tenant's own settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSettings {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: crate::tenancy::plans::Plan,
    pub limits: crate::tenancy::plans::Limits,
    pub hostname: Option<String>,
    pub mfa_required: bool,
    pub session_idle_seconds: i64,
    pub session_absolute_seconds: i64,
    /// The tenant's own theme; none: its reseller's or the default.
    pub theme: Option<String>,
    /// `off`, `warn` (created, with a `Trellis-Duplicates` count and a
    /// link to the candidates) or `block` (a near-certain duplicate is
    /// refused with 409 and the candidates).
    pub duplicate_policy: String,
    /// How many days a merge can be undone.
    pub merge_undo_days: i32,
}

fn settings_out(t: &tenant::Model) -> TenantSettings {
    let o = crate::tenancy::operators::tenant_out(t);
    TenantSettings {
        id: t.id,
        slug: t.slug.clone(),
        name: t.name.clone(),
        plan: o.plan,
        limits: o.limits,
        hostname: t.hostname.clone(),
        mfa_required: t.mfa_required,
        session_idle_seconds: t.session_idle_seconds,
        session_absolute_seconds: t.session_absolute_seconds,
        theme: t.theme.clone(),
        duplicate_policy: t.duplicate_policy.clone(),
        merge_undo_days: t.merge_undo_days,
    }
}

#[utoipa::path(get, path = "/api/v1/tenant", tag = "admin", responses((status = 200, body = TenantSettings)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<TenantSettings>> {
    ctx.require(ObjectType::Tenant, Action::Read)?;
    let t = crate::crm::tenants::cached(&state, ctx.tenant_id).await?;
    Ok(Json(settings_out(&t)))
}

/// One limited quantity: what the tenant uses and its plan's limit (none:
/// unlimited).
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub used: i64,
    pub limit: Option<i64>,
}

/// The tenant's use of its plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantUsage {
    pub plan: String,
    pub contacts: Usage,
    pub users: Usage,
    pub plugins: Usage,
    /// Measured, not counted: see `measured_at`.
    pub storage_bytes: Usage,
    pub storage_measured_at: Option<chrono::DateTime<chrono::Utc>>,
    pub api_requests_per_minute: Option<i64>,
}

/// The tenant's use of its plan's limits. Storage is the last measurement,
/// taken now when it is older than an hour.
#[utoipa::path(get, path = "/api/v1/tenant/usage", tag = "admin",
    responses((status = 200, body = TenantUsage), (status = 403, body = Problem)))]
pub async fn get_usage(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<TenantUsage>> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    ctx.require(ObjectType::Tenant, Action::Read)?;
    let mut t = crate::crm::tenants::cached(&state, ctx.tenant_id).await?;
    let stale = t
        .storage_measured_at
        .is_none_or(|at| at < crate::clock::now() - crate::tenancy::storage::STALE_AFTER);
    if stale {
        crate::tenancy::storage::refresh(&state.db, ctx.tenant_id).await?;
        state.caches.tenants.remove(&ctx.tenant_id);
        t = crate::crm::tenants::cached(&state, ctx.tenant_id).await?;
    }
    let limits = crate::tenancy::plans::Plan::parse(&t.plan)
        .map(crate::tenancy::plans::Plan::limits)
        .unwrap_or_default();
    let tx = crate::db::tenant_tx(&state.db, &ctx).await?;
    let contacts = crate::entities::contact::Entity::find()
        .filter(crate::entities::contact::Column::TenantId.eq(ctx.tenant_id))
        .count(&tx)
        .await?;
    let users = crate::entities::user::Entity::find()
        .filter(crate::entities::user::Column::TenantId.eq(ctx.tenant_id))
        .filter(crate::entities::user::Column::Status.ne("disabled"))
        .count(&tx)
        .await?;
    let plugins = crate::entities::tenant_plugin::Entity::find()
        .filter(crate::entities::tenant_plugin::Column::TenantId.eq(ctx.tenant_id))
        .filter(crate::entities::tenant_plugin::Column::Enabled.eq(true))
        .count(&tx)
        .await?;
    tx.commit().await?;
    Ok(Json(TenantUsage {
        plan: t.plan.clone(),
        contacts: Usage {
            used: contacts as i64,
            limit: limits.contacts,
        },
        users: Usage {
            used: users as i64,
            limit: limits.users,
        },
        plugins: Usage {
            used: plugins as i64,
            limit: limits.plugins,
        },
        storage_bytes: Usage {
            used: t.storage_bytes,
            limit: limits.storage_bytes,
        },
        storage_measured_at: t.storage_measured_at,
        api_requests_per_minute: limits.api_requests_per_minute,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettingsPatch {
    pub name: Option<String>,
    pub mfa_required: Option<bool>,
    /// 60 s to 7 days.
    pub session_idle_seconds: Option<i64>,
    /// 5 min to 90 days.
    pub session_absolute_seconds: Option<i64>,
    /// The white-label theme (a loaded theme's folder name); empty: the
    /// reseller's or the default.
    pub theme: Option<String>,
    /// `off`, `warn` or `block`.
    pub duplicate_policy: Option<String>,
    /// 0 to 365.
    pub merge_undo_days: Option<i32>,
}

/// Changes the tenant's name, MFA requirement, session timeouts and theme
/// (plan, status and domain belong to the operator).
#[utoipa::path(patch, path = "/api/v1/tenant", tag = "admin", request_body = TenantSettingsPatch,
    responses((status = 200, body = TenantSettings), (status = 422, body = Problem)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(p): JsonBody<TenantSettingsPatch>,
) -> Result<Json<TenantSettings>> {
    let saved = update_settings(&state, &ctx, p).await?;
    Ok(Json(settings_out(&saved)))
}

/// The slug of the tenant's reseller, if it has one.
pub async fn reseller_slug(state: &AppState, tenant_id: Uuid) -> Result<Option<String>> {
    use sea_orm::EntityTrait;
    let t = crate::crm::tenants::cached(state, tenant_id).await?;
    Ok(match t.reseller_id {
        Some(r) => crate::entities::reseller::Entity::find_by_id(r)
            .one(&state.db)
            .await?
            .map(|r| r.slug),
        None => None,
    })
}

/// Applies a settings patch to the caller's tenant, audited.
pub async fn update_settings(
    state: &AppState,
    ctx: &RequestContext,
    p: TenantSettingsPatch,
) -> Result<tenant::Model> {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    ctx.require(ObjectType::Tenant, Action::ManageSettings)?;
    let tx = crate::db::tenant_tx(&state.db, ctx).await?;
    let t = tenant::Entity::find_by_id(ctx.tenant_id)
        .one(&tx)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let before = json!(settings_out(&t));
    let mut a: tenant::ActiveModel = t.into();
    if let Some(n) = p.name {
        if n.trim().is_empty() {
            return Err(Error::field("name", "required", "the name cannot be blank"));
        }
        a.name = Set(n.trim().to_owned());
    }
    if let Some(m) = p.mfa_required {
        a.mfa_required = Set(m);
    }
    if let Some(s) = p.session_idle_seconds {
        if !(60..=7 * 86_400).contains(&s) {
            return Err(Error::field(
                "session_idle_seconds",
                "out_of_range",
                "use 60 to 604800",
            ));
        }
        a.session_idle_seconds = Set(s);
    }
    if let Some(s) = p.session_absolute_seconds {
        if !(300..=90 * 86_400).contains(&s) {
            return Err(Error::field(
                "session_absolute_seconds",
                "out_of_range",
                "use 300 to 7776000",
            ));
        }
        a.session_absolute_seconds = Set(s);
    }
    if let Some(theme) = p.theme {
        let theme = theme.trim().to_owned();
        if theme.is_empty() {
            a.theme = Set(None);
        } else if state.themes.contains(&theme)
            && state
                .themes
                .get(Some(&theme))
                .available_to(reseller_slug(state, ctx.tenant_id).await?.as_deref())
        {
            a.theme = Set(Some(theme));
        } else {
            return Err(Error::field(
                "theme",
                "unknown_theme",
                format!("no theme `{theme}` is available to this workspace"),
            ));
        }
    }
    if let Some(policy) = p.duplicate_policy {
        let policy = crate::crm::duplicates::Policy::parse(policy.trim()).ok_or_else(|| {
            Error::field(
                "duplicate_policy",
                "invalid_value",
                "use off, warn or block",
            )
        })?;
        a.duplicate_policy = Set(policy.as_str().to_owned());
    }
    if let Some(days) = p.merge_undo_days {
        if !(0..=365).contains(&days) {
            return Err(Error::field(
                "merge_undo_days",
                "out_of_range",
                "use 0 to 365",
            ));
        }
        a.merge_undo_days = Set(days);
    }
    let saved = a.update(&tx).await?;
    audit::write(
        &tx,
        ctx,
        vec![AuditEntry::new(
            ObjectType::Tenant,
            ctx.tenant_id,
            AuditAction::Update,
            audit::diff(&before, &json!(settings_out(&saved))),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.tenants.remove(&ctx.tenant_id);
    Ok(saved)
}

/// Searches the audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)))]
pub async fn search_audit(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>> {
    ctx.require(ObjectType::AuditLog, Action::Read)?;
    Ok(Json(audit::query::search(&state.db, &ctx, &q).await?))
}

/// The matching audit entries as JSON lines (newest first, up to 100,000
/// per request; page on with `before`). The export itself is audited.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, content_type = "application/x-ndjson")))]
pub async fn export_audit(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(mut q): Query<AuditQuery>,
) -> Result<Response> {
    ctx.require(ObjectType::AuditLog, Action::Export)?;
    let mut out = String::new();
    let mut written = 0u64;
    q.limit = Some(1000);
    loop {
        let page = audit::query::search(&state.db, &ctx, &q).await?;
        for e in &page.data {
            out.push_str(&serde_json::to_string(e).map_err(|e| Error::Internal(e.to_string()))?);
            out.push('\n');
            written += 1;
        }
        match page.next_before {
            Some(b) if written < 100_000 => q.before = Some(b),
            _ => break,
        }
    }
    audit::record(
        &state.db,
        &ctx,
        vec![AuditEntry::new(
            ObjectType::AuditLog,
            ctx.tenant_id,
            AuditAction::Export,
            json!({"entries": written}),
        )],
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    pub entries: u64,
    pub valid: bool,
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<crate::audit::chain::Finding>,
    pub head_seq: i64,
    pub head_hash: String,
}

/// Verifies the tenant's audit chain.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = Verification)))]
pub async fn verify_audit(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<Verification>> {
    ctx.require(ObjectType::AuditLog, Action::Read)?;
    let r = audit::chain::verify(&state.db, Some(ctx.tenant_id)).await?;
    let (head_seq, head_hash) = r
        .heads
        .first()
        .map(|(_, s, h)| (*s, h.clone()))
        .unwrap_or_default();
    Ok(Json(Verification {
        entries: r.entries,
        valid: r.findings.is_empty(),
        findings: r.findings,
        head_seq,
        head_hash,
    }))
}

/// One edition this kernel can apply.
#[derive(Debug, Serialize, ToSchema)]
pub struct EditionOut {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
}

/// The editions built into this kernel.
#[utoipa::path(get, path = "/api/v1/editions", tag = "admin", responses((status = 200, body = Vec<EditionOut>)))]
pub async fn list_editions(_ctx: RequestContext) -> Result<Json<Vec<EditionOut>>> {
    let mut out = Vec::new();
    for (id, _) in crate::editions::BUILT_IN {
        let e = crate::editions::Edition::built_in(id)?;
        out.push(EditionOut {
            id: e.id,
            name: e.name,
            version: e.version,
            description: e.description,
        });
    }
    Ok(Json(out))
}

/// Which edition to apply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyEdition {
    pub edition: String,
}

/// Applies an edition to the caller's tenant: idempotent, and additive
/// (what the tenant changed or removed stays so).
#[utoipa::path(post, path = "/api/v1/tenant/edition", tag = "admin", request_body = ApplyEdition,
    responses((status = 200, body = crate::editions::Applied), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn apply_edition(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(req): JsonBody<ApplyEdition>,
) -> Result<Json<crate::editions::Applied>> {
    let edition = crate::editions::Edition::built_in(&req.edition)?;
    Ok(Json(crate::editions::apply(&state, &ctx, &edition).await?))
}

/// The tenant's support access for its operators (reseller or platform).
#[utoipa::path(get, path = "/api/v1/tenant/support-access", tag = "admin",
    responses((status = 200, body = crate::tenancy::support::SupportAccess)))]
pub async fn get_support_access(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<crate::tenancy::support::SupportAccess>> {
    Ok(Json(crate::tenancy::support::current(&state, &ctx).await?))
}

/// Lets the tenant's operators act inside it, with one of its roles, until
/// a time at most 30 days ahead.
#[utoipa::path(put, path = "/api/v1/tenant/support-access", tag = "admin",
    request_body = crate::tenancy::support::SupportGrant,
    responses((status = 200, body = crate::tenancy::support::SupportAccess), (status = 422, body = Problem)))]
pub async fn grant_support_access(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(g): JsonBody<crate::tenancy::support::SupportGrant>,
) -> Result<Json<crate::tenancy::support::SupportAccess>> {
    Ok(Json(crate::tenancy::support::grant(&state, &ctx, g).await?))
}

/// Ends support access at once.
#[utoipa::path(delete, path = "/api/v1/tenant/support-access", tag = "admin",
    responses((status = 200, body = crate::tenancy::support::SupportAccess)))]
pub async fn revoke_support_access(
    State(state): State<AppState>,
    ctx: RequestContext,
) -> Result<Json<crate::tenancy::support::SupportAccess>> {
    Ok(Json(crate::tenancy::support::revoke(&state, &ctx).await?))
}
