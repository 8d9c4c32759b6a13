//! Operators manage tenants from outside them: the platform administrator
//! manages resellers and every tenant; a reseller administrator creates,
//! re-plans and suspends its own tenants and nothing else. Neither holds
//! any right inside a tenant: their key is not a tenant credential, so the
//! CRM API refuses it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, TimeDelta, Utc};
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
use crate::auth::tokens;
use crate::context::{ActorKind, Client, RequestContext};
use crate::entities::{operator, reseller, tenant, user};
use crate::error::{Error, Result};
use crate::permissions::ObjectType;
use crate::tenancy::plans::Plan;

/// Operator keys start with this, so they are told apart from tenant keys.
pub const PREFIX: &str = "trlop_";

/// The authenticated operator of a request.
#[derive(Debug, Clone)]
pub struct Operator {
    pub id: Uuid,
    /// `None` for the platform administrator.
    pub reseller_id: Option<Uuid>,
    pub client: Client,
}

impl Operator {
    pub fn require_platform(&self) -> Result<()> {
        if self.reseller_id.is_none() {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only the platform administrator may do this".to_owned(),
            ))
        }
    }

    /// A context for auditing an operator's action inside `tenant_id`.
    fn audit_ctx(&self, tenant_id: Uuid) -> RequestContext {
        let mut ctx = RequestContext::anonymous(tenant_id, &self.client);
        ctx.actor_kind = ActorKind::Operator;
        ctx.actor_id = Some(self.id);
        ctx
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let client = Client::from_parts(parts, state.config.trust_forwarded_for);
        let key = client
            .bearer
            .as_deref()
            .filter(|b| b.starts_with(PREFIX))
            .ok_or(Error::Unauthenticated)?;
        let op = operator::Entity::find()
            .filter(operator::Column::TokenHash.eq(tokens::hash(key)))
            .filter(operator::Column::RevokedAt.is_null())
            .one(&state.db)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(Operator {
            id: op.id,
            reseller_id: op.reseller_id,
            client,
        })
    }
}

/// Creates an operator key: platform (`reseller` None) or for a reseller
/// slug. Returns the key, shown once.
pub async fn create_operator(
    db: &DatabaseConnection,
    name: &str,
    reseller_slug: Option<&str>,
) -> Result<String> {
    let reseller_id = match reseller_slug {
        Some(slug) => Some(
            reseller::Entity::find()
                .filter(reseller::Column::Slug.eq(slug))
                .one(db)
                .await?
                .ok_or(Error::NotFound("reseller"))?
                .id,
        ),
        None => None,
    };
    let key = tokens::generate_with_prefix(PREFIX);
    operator::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(if reseller_id.is_some() {
            "reseller"
        } else {
            "platform"
        }
        .to_owned()),
        reseller_id: Set(reseller_id),
        name: Set(name.to_owned()),
        token_hash: Set(tokens::hash(&key)),
        created_at: Set(crate::clock::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(key)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResellerInput {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResellerOut {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

fn check_slug(field: &str, slug: &str) -> Result<()> {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            field,
            "invalid_format",
            "use 2-63 lower-case letters, digits and `-`",
        ))
    }
}

pub async fn create_reseller(
    db: &DatabaseConnection,
    op: &Operator,
    input: ResellerInput,
) -> Result<ResellerOut> {
    op.require_platform()?;
    check_slug("slug", &input.slug)?;
    let r = reseller::ActiveModel {
        theme: Set(None),
        id: Set(Uuid::now_v7()),
        slug: Set(input.slug),
        name: Set(input.name),
        created_at: Set(crate::clock::now()),
    }
    .insert(db)
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::field("slug", "not_unique", "a reseller with this slug exists")
        } else {
            e.into()
        }
    })?;
    Ok(ResellerOut {
        id: r.id,
        slug: r.slug,
        name: r.name,
    })
}

pub async fn list_resellers(db: &DatabaseConnection, op: &Operator) -> Result<Vec<ResellerOut>> {
    op.require_platform()?;
    Ok(reseller::Entity::find()
        .order_by_asc(reseller::Column::Slug)
        .all(db)
        .await?
        .into_iter()
        .map(|r| ResellerOut {
            id: r.id,
            slug: r.slug,
            name: r.name,
        })
        .collect())
}

/// A tenant as operators see it: its settings, never its data.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub reseller_id: Option<Uuid>,
    pub plan: Plan,
    pub limits: crate::tenancy::plans::Limits,
    /// `active` or `suspended`.
    pub status: String,
    pub hostname: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub fn tenant_out(t: &tenant::Model) -> TenantOut {
    let plan = Plan::parse(&t.plan).unwrap_or(Plan::Custom);
    TenantOut {
        id: t.id,
        slug: t.slug.clone(),
        name: t.name.clone(),
        reseller_id: t.reseller_id,
        plan,
        limits: plan.limits(),
        status: t.status.clone(),
        hostname: t.hostname.clone(),
        created_at: t.created_at,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    #[serde(default = "starter")]
    pub plan: Plan,
    /// The platform administrator may place the tenant under a reseller;
    /// a reseller's tenants are always its own.
    pub reseller_id: Option<Uuid>,
    pub hostname: Option<String>,
    /// The tenant's first administrator; gets an invitation email.
    pub admin_email: String,
    pub admin_name: Option<String>,
    /// An edition to apply (`real-estate`); see `GET /api/v1/editions`.
    pub edition: Option<String>,
}

fn starter() -> Plan {
    Plan::Starter
}

/// A custom domain a tenant may claim: well-formed, and not the platform's
/// own host (which would route every sign-in page to one tenant).
fn check_hostname(h: &str, public_url: &str) -> Result<String> {
    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
    let platform = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if h == platform {
        return Err(Error::field(
            "hostname",
            "not_allowed",
            "this is the platform's own hostname",
        ));
    }
    let ok = h.len() <= 253
        && h.contains('.')
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(h)
    } else {
        Err(Error::field("hostname", "invalid_format", "not a hostname"))
    }
}

/// Creates a tenant with its built-in roles and an invited administrator.
pub async fn create_tenant(state: &AppState, op: &Operator, input: NewTenant) -> Result<TenantOut> {
    check_slug("slug", &input.slug)?;
    let edition = input
        .edition
        .as_deref()
        .map(crate::editions::Edition::built_in)
        .transpose()?;
    let reseller_id = match op.reseller_id {
        Some(own) => {
            if input.reseller_id.is_some_and(|r| r != own) {
                return Err(Error::Forbidden(
                    "a reseller creates tenants for itself only".to_owned(),
                ));
            }
            Some(own)
        }
        None => input.reseller_id,
    };
    let hostname = input
        .hostname
        .as_deref()
        .map(|h| check_hostname(h, &state.config.public_url))
        .transpose()?;
    let tx = crate::db::write_tx(&state.db).await?;
    let now = crate::clock::now();
    let t = tenant::ActiveModel {
        theme: Set(None),
        id: Set(Uuid::now_v7()),
        slug: Set(input.slug),
        name: Set(input.name),
        created_at: Set(now),
        reseller_id: Set(reseller_id),
        plan: Set(input.plan.as_str().to_owned()),
        status: Set("active".to_owned()),
        hostname: Set(hostname),
        mfa_required: Set(false),
        session_idle_seconds: Set(crate::crm::tenants::DEFAULT_IDLE_SECONDS),
        session_absolute_seconds: Set(crate::crm::tenants::DEFAULT_ABSOLUTE_SECONDS),
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
    .await
    .map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::field("slug", "not_unique", "the slug or hostname is taken")
        } else {
            e.into()
        }
    })?;
    crate::directory::roles::ensure_built_in(&tx, t.id).await?;
    let admin = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(t.id),
        email: Set(input.admin_email.trim().to_lowercase()),
        name: Set(input
            .admin_name
            .unwrap_or_else(|| "Administrator".to_owned())),
        created_at: Set(now),
        password_hash: Set(None),
        status: Set("invited".to_owned()),
        roles: Set(json!(["admin"])),
        totp_secret: Set(None),
        mfa_enabled_at: Set(None),
        last_login_at: Set(None),
        totp_last_step: Set(None),
    }
    .insert(&tx)
    .await?;
    let token = crate::directory::users::issue_one_time(
        &tx,
        &admin,
        "invite",
        TimeDelta::days(crate::directory::users::INVITATION_DAYS),
    )
    .await?;
    let brand = crate::web::branding(state, &t).await;
    crate::directory::users::send(
        &tx,
        t.id,
        &admin.email,
        &format!("Your {} workspace is ready", brand.product_name),
        &format!(
            "Your workspace {} is ready. Choose your password here:\n{}/accept-invitation?token={token}\n{}",
            t.name,
            brand.base_url,
            brand.signature()
        ),
    )
    .await?;
    audit::write(
        &tx,
        &op.audit_ctx(t.id),
        vec![AuditEntry::new(
            ObjectType::Tenant,
            t.id,
            AuditAction::Create,
            json!({"after": tenant_out(&t)}),
        )],
    )
    .await?;
    tx.commit().await?;
    if let Some(edition) = edition {
        let mut ctx = op.audit_ctx(t.id);
        ctx.policy = std::sync::Arc::new(crate::permissions::Policy::unrestricted());
        ctx.plugins = state.plugins.clone();
        ctx.keyring = Some(state.keyring.clone());
        if let Err(e) = crate::editions::apply(state, &ctx, &edition).await {
            // Nothing half-created: the new tenant goes again, with
            // everything under it.
            tenant::Entity::delete_by_id(t.id).exec(&state.db).await?;
            state.caches.tenants.remove(&t.id);
            return Err(e);
        }
    }
    Ok(tenant_out(&t))
}

/// The tenants an operator manages: all for the platform, its own for a
/// reseller.
pub async fn list_tenants(db: &DatabaseConnection, op: &Operator) -> Result<Vec<TenantOut>> {
    let mut q = tenant::Entity::find().order_by_asc(tenant::Column::Slug);
    if let Some(r) = op.reseller_id {
        q = q.filter(tenant::Column::ResellerId.eq(r));
    }
    Ok(q.all(db).await?.iter().map(tenant_out).collect())
}

/// A tenant the operator manages; another reseller's is not found.
async fn managed<C: ConnectionTrait>(db: &C, op: &Operator, id: Uuid) -> Result<tenant::Model> {
    let t = tenant::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    match op.reseller_id {
        Some(r) if t.reseller_id != Some(r) => Err(Error::NotFound("tenant")),
        _ => Ok(t),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    /// `active` or `suspended`: a suspended tenant's users and keys get 403.
    pub status: Option<String>,
    /// A custom domain; `""` removes it.
    pub hostname: Option<String>,
}

pub async fn update_tenant(
    state: &AppState,
    op: &Operator,
    id: Uuid,
    patch: TenantPatch,
) -> Result<TenantOut> {
    let tx = crate::db::write_tx(&state.db).await?;
    let t = managed(&tx, op, id).await?;
    let before = json!(tenant_out(&t));
    let old_host = t.hostname.clone();
    let mut a: tenant::ActiveModel = t.clone().into();
    if let Some(n) = patch.name {
        a.name = Set(n);
    }
    if let Some(p) = patch.plan {
        a.plan = Set(p.as_str().to_owned());
        crate::tenancy::usage::reset_stocks(&tx, id).await?;
    }
    if let Some(s) = patch.status {
        if s != "active" && s != "suspended" {
            return Err(Error::field(
                "status",
                "invalid_value",
                "use `active` or `suspended`",
            ));
        }
        a.status = Set(s);
    }
    if let Some(h) = patch.hostname {
        a.hostname = Set(if h.is_empty() {
            None
        } else {
            Some(check_hostname(&h, &state.config.public_url)?)
        });
    }
    let saved = a.update(&tx).await.map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            Error::field(
                "hostname",
                "not_unique",
                "another tenant uses this hostname",
            )
        } else {
            e.into()
        }
    })?;
    audit::write(
        &tx,
        &op.audit_ctx(id),
        vec![AuditEntry::new(
            ObjectType::Tenant,
            id,
            AuditAction::Update,
            audit::diff(&before, &json!(tenant_out(&saved))),
        )],
    )
    .await?;
    tx.commit().await?;
    state.caches.tenants.remove(&id);
    // Plugins act under the tenant's plan too (this process at once,
    // others when their cache entry ends).
    if let Some(rt) = &state.plugins {
        rt.invalidate(id);
    }
    for h in [old_host, saved.hostname.clone()].into_iter().flatten() {
        state.caches.hosts.remove(&h);
    }
    Ok(tenant_out(&saved))
}
